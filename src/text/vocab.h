/* text/vocab.h — the tokenizer's vocabulary as a hash table: FNV-1a over a key's bytes
 * (byte at a time, so one pass over a word hashes every prefix of it), open addressing. */
#ifndef DRE_TEXT_VOCAB_H
#define DRE_TEXT_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open addressing, linear probing. A slot holds a key's first 8 bytes, so most lookups
 * touch one cache line; the rest of a longer key is compared in the vocabulary text. */
typedef struct vocab_slot {
    uint64_t head; /* the key's first 8 bytes, little-endian, zero-padded */
    uint32_t len;
    int32_t id; /* -1: empty */
} vocab_slot;

typedef struct vocab_table {
    vocab_slot *slots;
    size_t mask;
    int shift;      /* 64 - log2(capacity) */
    size_t max_len; /* longest key, in bytes: longer candidates cannot match */
    size_t skip;    /* where keys start in their vocabulary entries: 0, or 2 past "##" */
} vocab_table;

#define DRE_FNV_SEED 0xcbf29ce484222325ULL
/* FNV-1a's step: the hash of a key one byte longer. */
static inline uint64_t dre_fnv_step(uint64_t h, uint8_t b) { return (h ^ b) * 0x100000001b3ULL; }
/* A key's first 8 bytes, little-endian, zero-padded. */
static inline uint64_t dre_vocab_head(const uint8_t *key, size_t len) {
    uint64_t head = 0;
    for (size_t i = 0; i < len && i < 8; i++)
        head |= (uint64_t)key[i] << (8 * i);
    return head;
}

/* Room for n_keys; keys start skip bytes into their vocabulary entries. */
dre_status dre_vocab_init(vocab_table *t, size_t n_keys, size_t skip);
void dre_vocab_free(vocab_table *t);
/* Adds entry id of tokens; a repeated entry keeps the last id, as Hugging Face's vocabulary
 * dict does. */
void dre_vocab_put(vocab_table *t, const char *const *tokens, int32_t id);
/* The id of key (len bytes, hash h, first 8 bytes head), or -1: inline, WordPiece calls it
 * for every prefix it tries. */
/* FNV's low bits mix poorly; the slot comes from the high bits of h * golden ratio. */
static inline size_t dre_vocab_slot(const vocab_table *t, uint64_t h) {
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> t->shift);
}

static inline int32_t dre_vocab_find(const vocab_table *t, const char *const *tokens,
                                     const uint8_t *key, size_t len, uint64_t h, uint64_t head) {
    for (size_t i = dre_vocab_slot(t, h);; i = (i + 1) & t->mask) {
        const vocab_slot *s = &t->slots[i];
        if (s->id < 0) return -1;
        if (s->head == head && s->len == len &&
            (len <= 8 || memcmp(tokens[s->id] + t->skip + 8, key + 8, len - 8) == 0))
            return s->id;
    }
}

/* The id of a NUL-terminated key, or -1. */
int32_t dre_vocab_lookup(const vocab_table *t, const char *const *tokens, const char *s);

#ifdef __cplusplus
}
#endif
#endif
