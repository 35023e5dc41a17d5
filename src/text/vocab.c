/* text/vocab.c — the tokenizer's vocabulary table (text/vocab.h). */
#include "text/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static uint64_t fnv_hash(const uint8_t *s, size_t n) {
    uint64_t h = DRE_FNV_SEED;
    for (size_t i = 0; i < n; i++)
        h = dre_fnv_step(h, s[i]);
    return h;
}

dre_status dre_vocab_init(vocab_table *t, size_t n_keys, size_t skip) {
    int bits = 4;
    while (((size_t)1 << bits) < 2 * n_keys)
        bits++;
    size_t cap = (size_t)1 << bits;
    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->slots)
        return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for the vocabulary");
    for (size_t i = 0; i < cap; i++)
        t->slots[i].id = -1;
    t->mask = cap - 1;
    t->shift = 64 - bits;
    t->max_len = 0;
    t->skip = skip;
    return DRE_OK;
}

void dre_vocab_put(vocab_table *t, const char *const *tokens, int32_t id) {
    const uint8_t *key = (const uint8_t *)tokens[id] + t->skip;
    size_t len = strlen((const char *)key);
    uint64_t h = fnv_hash(key, len), head = dre_vocab_head(key, len);
    size_t i = dre_vocab_slot(t, h);
    for (;; i = (i + 1) & t->mask) {
        vocab_slot *s = &t->slots[i];
        if (s->id < 0) break;
        if (s->head == head && s->len == len &&
            (len <= 8 || memcmp(tokens[s->id] + t->skip + 8, key + 8, len - 8) == 0)) {
            s->id = id;
            return;
        }
    }
    t->slots[i] = (vocab_slot){.head = head, .len = (uint32_t)len, .id = id};
    if (len > t->max_len) t->max_len = len;
}

void dre_vocab_free(vocab_table *t) {
    free(t->slots);
    t->slots = NULL;
}

int32_t dre_vocab_lookup(const vocab_table *t, const char *const *tokens, const char *s) {
    const size_t len = strlen(s);
    const uint8_t *key = (const uint8_t *)s;
    return dre_vocab_find(t, tokens, key, len, fnv_hash(key, len), dre_vocab_head(key, len));
}
