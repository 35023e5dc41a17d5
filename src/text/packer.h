/* text/packer.h — the one place that packs: token sequences sorted by length and packed
 * without padding into batches of at most the encoder's token budget (seq_packer), the next
 * batch queued while the last is collected; and texts to vectors through both halves. */
#ifndef DRE_TEXT_PACKER_H
#define DRE_TEXT_PACKER_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"
#include "text/sequences.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Packs sequences into batches and encodes them; buffers sized once from the budget. */
typedef struct length_key length_key;
typedef struct seq_packer {
    dre_encoder *enc;
    int32_t budget_tokens, dim, max_seqs; /* max_seqs: sequences per batch */
    length_key *order;
    int32_t order_cap;
    int32_t *ids;        /* [budget_tokens] */
    int32_t *cu_seqlens; /* [max_seqs + 1] */
    float *out;          /* [max_seqs, dim] */
} seq_packer;

/* budget_tokens <= 0: the encoder's. */
dre_status dre_seq_packer_init(seq_packer *p, dre_encoder *enc, int32_t budget_tokens);
void dre_seq_packer_free(seq_packer *p);
/* Encodes every sequence: shortest first (equal lengths in order, so the batches depend
 * on nothing but the sequences), packed greedily into batches of at most budget_tokens,
 * the next batch queued on the encoder while the last is collected. out receives
 * seqs->n x dim floats, row i for sequence i. */
dre_status dre_seq_packer_encode(seq_packer *p, const token_seqs *seqs, float *out);

/* Tokens per text for an encoder: the tokenizer's length, capped by the model's positions
 * and the encoder's budget. */
int32_t dre_seq_packer_max_length(const dre_encoder *enc, const dre_tokenizer *tok);

/* n NUL-terminated texts to n x dim vectors in input order, through t and p, a few
 * thousand texts at a time (seqs is the work space); text_tokens (if given) gets each
 * text's tokens encoded, [CLS] and [SEP] included. */
dre_status dre_seq_packer_encode_texts(seq_tokenizer *t, seq_packer *p, token_seqs *seqs,
                                       const char *const *texts, size_t n, float *out,
                                       int32_t *text_tokens);

#ifdef __cplusplus
}
#endif
#endif
