/* bench_texts.c — the texts `dre bench encoder` encodes (bench_texts.h). */
#define _POSIX_C_SOURCE 200809L
#include "bench_texts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int by_length_desc(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x < y) - (x > y);
}

static void pack_batches(bench_texts *c, int32_t budget);

int bench_texts_synthetic(bench_texts *c, int32_t n, int queries, int32_t max_length, int32_t vocab,
                          int32_t budget, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->lengths = malloc((size_t)n * sizeof *c->lengths);
    c->batch_first = malloc(((size_t)n + 1) * sizeof *c->batch_first);
    c->batch_token0 = malloc(((size_t)n + 1) * sizeof *c->batch_token0);
    if (!c->lengths || !c->batch_first || !c->batch_token0) return -1;
    const int32_t lo = queries ? 8 : 200, hi = queries ? 32 : 560;
    uint64_t state = seed;
    for (int32_t i = 0; i < n; i++) {
        int32_t len = lo + (int32_t)(cli_splitmix64(&state) % (uint64_t)(hi - lo + 1));
        c->lengths[i] = len < max_length ? len : max_length;
        c->n_tokens += c->lengths[i];
    }
    qsort(c->lengths, (size_t)n, sizeof *c->lengths, by_length_desc);
    c->ids = malloc((size_t)c->n_tokens * sizeof *c->ids);
    if (!c->ids) return -1;
    uint64_t id_state = seed + 1;
    int64_t t = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t len = c->lengths[i];
        for (int32_t j = 0; j < len; j++) {
            int32_t id = 1000 + (int32_t)(cli_splitmix64(&id_state) % (uint64_t)(vocab - 1000));
            if (j == 0)
                id = 101; /* [CLS] */
            else if (j == len - 1)
                id = 102; /* [SEP] */
            c->ids[t + j] = id;
        }
        t += len;
    }
    pack_batches(c, budget);
    return 0;
}

/* Packs c's texts (longest first) into batches of at most budget tokens. */
static void pack_batches(bench_texts *c, int32_t budget) {
    const int32_t n = c->n;
    int64_t batch_tokens = 0, t = 0;
    c->batch_first[0] = 0;
    c->batch_token0[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        if (batch_tokens + c->lengths[i] > budget) {
            c->n_batches++;
            c->batch_first[c->n_batches] = i;
            c->batch_token0[c->n_batches] = t;
            batch_tokens = 0;
        }
        batch_tokens += c->lengths[i];
        t += c->lengths[i];
    }
    c->n_batches++;
    c->batch_first[c->n_batches] = n;
    c->batch_token0[c->n_batches] = t;
}

void bench_texts_free(bench_texts *c) {
    free(c->lengths);
    free(c->ids);
    free(c->batch_first);
    free(c->batch_token0);
}

typedef struct text_ids {
    int32_t len;
    int32_t *ids;
} text_ids;

static int by_text_length_desc(const void *a, const void *b) {
    const int32_t x = ((const text_ids *)a)->len, y = ((const text_ids *)b)->len;
    return (x < y) - (x > y);
}

/* The first n documents of a corpus file, embedded as dre embed embeds them (title + " " +
 * text, tokenized by the model's tokenizer and cut at its max length), longest first. */
dre_status bench_texts_from_file(bench_texts *c, const char *path, int32_t n, const char *model_dir,
                                 int32_t max_length, int32_t budget) {
    memset(c, 0, sizeof *c);
    dre_tokenizer *tok = NULL;
    dre_status st = dre_tokenizer_open(model_dir, &tok);
    if (st != DRE_OK) return st;
    dre_corpus *r = NULL;
    st = dre_corpus_open(path, DRE_CORPUS_AUTO, NULL, NULL, NULL, &r);
    text_ids *texts = st == DRE_OK ? calloc((size_t)n, sizeof *texts) : NULL;
    if (st == DRE_OK && !texts) st = DRE_ERR_NOMEM;
    int32_t got_n = 0;
    while (st == DRE_OK && got_n < n) {
        dre_corpus_doc rec;
        int got = 0;
        st = dre_corpus_next(r, &rec, &got);
        if (st != DRE_OK || !got) break;
        text_ids *t = &texts[got_n];
        t->ids = malloc((size_t)max_length * sizeof *t->ids);
        if (!t->ids) {
            st = DRE_ERR_NOMEM;
            break;
        }
        got_n++;
        st = dre_tokenize(tok, rec.joined, rec.joined_len, max_length, t->ids, &t->len);
    }
    if (r) dre_corpus_close(r);
    dre_tokenizer_close(tok);
    if (st == DRE_OK) {
        qsort(texts, (size_t)got_n, sizeof *texts, by_text_length_desc);
        c->n = got_n;
        for (int32_t i = 0; i < got_n; i++)
            c->n_tokens += texts[i].len;
        c->lengths = malloc((size_t)got_n * sizeof *c->lengths);
        c->ids = malloc((size_t)c->n_tokens * sizeof *c->ids);
        c->batch_first = malloc(((size_t)got_n + 1) * sizeof *c->batch_first);
        c->batch_token0 = malloc(((size_t)got_n + 1) * sizeof *c->batch_token0);
        if (!c->lengths || !c->ids || !c->batch_first || !c->batch_token0) st = DRE_ERR_NOMEM;
    }
    if (st == DRE_OK) {
        int64_t t = 0;
        for (int32_t i = 0; i < got_n; i++) {
            c->lengths[i] = texts[i].len;
            memcpy(c->ids + t, texts[i].ids, (size_t)texts[i].len * sizeof *c->ids);
            t += texts[i].len;
        }
        pack_batches(c, budget);
    }
    for (int32_t i = 0; texts && i < n; i++)
        free(texts[i].ids);
    free(texts);
    return st;
}

/* cu_seqlens of batch b into cu (room for its texts + 1). */
int32_t bench_texts_batch_cu(const bench_texts *c, int32_t b, int32_t *cu) {
    const int32_t first = c->batch_first[b], n = c->batch_first[b + 1] - first;
    cu[0] = 0;
    for (int32_t i = 0; i < n; i++)
        cu[i + 1] = cu[i] + c->lengths[first + i];
    return n;
}
