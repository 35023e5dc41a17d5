/* bench_texts.h — the texts `dre bench encoder` encodes: synthetic token ids of abstract or
 * query lengths, or a corpus file's documents tokenized as dre embed tokenizes them; sorted
 * longest first and packed into batches of at most a token budget. */
#ifndef DRE_BENCH_TEXTS_H
#define DRE_BENCH_TEXTS_H

#include <stdint.h>

#include "dre.h"

typedef struct bench_texts {
    int32_t n;
    int32_t *lengths; /* per text, sorted longest first */
    int32_t *ids;     /* all texts back to back in that order */
    int64_t n_tokens;
    int32_t n_batches;
    int32_t *batch_first;  /* n_batches + 1 text indices */
    int64_t *batch_token0; /* n_batches + 1 token offsets */
} bench_texts;

/* n synthetic texts (queries: 8-32 tokens, else 200-560), cut at max_length, ids drawn from
 * the vocabulary with [CLS] and [SEP] at the ends. 0, or -1 when out of memory. */
int bench_texts_synthetic(bench_texts *c, int32_t n, int queries, int32_t max_length, int32_t vocab,
                          int32_t budget, uint64_t seed);

/* The first n documents of a corpus file, embedded as dre embed embeds them (title + " " +
 * text, tokenized by the model's tokenizer and cut at its max length); c->n is 0 when the
 * file holds none. */
dre_status bench_texts_from_file(bench_texts *c, const char *path, int32_t n, const char *model_dir,
                                 int32_t max_length, int32_t budget);

void bench_texts_free(bench_texts *c);

/* cu_seqlens of batch b into cu (room for its texts + 1); returns its number of texts. */
int32_t bench_texts_batch_cu(const bench_texts *c, int32_t b, int32_t *cu);

#endif
