/* text/tokenizer_impl.h — the tokenizer's handle, shared by its two files: text/tokenizer.c
 * (tokenizing) and text/tokenizer_load.c (opening one from a model folder). */
#ifndef DRE_TEXT_TOKENIZER_IMPL_H
#define DRE_TEXT_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dre.h"
#include "text/vocab.h"

#define MAX_WORD_CHARS 100                  /* WordPiece's max_input_chars_per_word */
#define MAX_WORD_BYTES (4 * MAX_WORD_CHARS) /* a stored word: at most 100 chars of UTF-8 */
#define PENDING_MAX 32                      /* surviving non-starters awaiting reordering */
#define MAX_SPECIALS 64

/* What an ASCII byte does; ACT_SPECIAL marks bytes that may start a special token. */
enum { ACT_APPEND = 0, ACT_SPACE = 1, ACT_PUNCT = 2, ACT_DROP = 3, ACT_SPECIAL = 0x80 };

typedef struct special_token {
    const char *text; /* points into the vocabulary text */
    size_t len;
    int32_t id;
} special_token;

struct dre_tokenizer {
    char *vocab_text;    /* vocab.txt, each line NUL-terminated in place */
    const char **tokens; /* id -> vocabulary entry */
    int32_t vocab_size;
    vocab_table words;  /* every entry */
    vocab_table pieces; /* entries starting with "##", without the prefix */
    int32_t unk_id, cls_id, sep_id;
    int32_t max_length;
    bool lowercase, strip_accents, chinese;
    uint8_t slow_mask; /* CP_* classes that leave the plain append path */
    special_token specials[MAX_SPECIALS];
    int n_specials;
    bool special_first[256]; /* bytes that start some special token */
    uint8_t ascii_action[128];
    uint8_t ascii_map[128]; /* lower-cased when lower-casing */
    uint8_t flags[0x10000]; /* CP_* of every BMP code point */
};

#endif
