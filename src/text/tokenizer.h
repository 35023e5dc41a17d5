/* text/tokenizer.h — what the rest of dre needs from the tokenizer beyond dre_tokenize: whether
 * a text was cut at the max length, and its wordpieces without [CLS]/[SEP] and without a
 * length limit (for cutting long documents into chunks). */
#ifndef DRE_TOKENIZER_H
#define DRE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dre_tokenize, and *truncated (if not NULL) set when the text had more wordpieces than
 * fit. */
dre_status dre_tokenize_ids(const dre_tokenizer *tok, const char *text, size_t len,
                            int32_t max_length, int32_t *ids, int32_t *n_ids, int *truncated);

/* The wordpieces of text alone (no [CLS], [SEP]): up to cap of them into pieces, their
 * number in *n_pieces; *truncated set when the text has more than cap. */
dre_status dre_tokenize_pieces(const dre_tokenizer *tok, const char *text, size_t len,
                               int32_t *pieces, int32_t cap, int32_t *n_pieces, int *truncated);

int32_t dre_tokenizer_cls_id(const dre_tokenizer *tok);
int32_t dre_tokenizer_sep_id(const dre_tokenizer *tok);

#ifdef __cplusplus
}
#endif
#endif
