/* batcher.c — dre_encode_texts: tokenizes texts on worker threads, sorts them by length,
 * packs them without padding into batches of at most the encoder's token budget,
 * encodes each batch and scatters the embeddings back to the input order. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Texts tokenized, sorted and packed together; bounds memory to CHUNK_TEXTS * max_length
 * ids however many texts there are, while giving the sort enough texts to pack well. */
#define CHUNK_TEXTS 8192

typedef struct tokenize_job {
    const dre_tokenizer *tok;
    const char *const *texts;
    size_t first, count; /* texts [first, first + count) of the chunk */
    size_t chunk_base;   /* the chunk's first text in the caller's numbering */
    int32_t max_length;
    int32_t *ids;     /* [chunk, max_length] */
    int32_t *lengths; /* [chunk] */
    dre_status status;
    char error[1024]; /* dre_last_error is per thread: carried back to the caller */
} tokenize_job;

static void *tokenize_worker(void *arg) {
    tokenize_job *job = arg;
    for (size_t i = job->first; i < job->first + job->count; i++) {
        const char *text = job->texts[i];
        dre_status st = dre_tokenize(job->tok, text, strlen(text), job->max_length,
                                     job->ids + i * (size_t)job->max_length, &job->lengths[i]);
        if (st != DRE_OK) {
            job->status = st;
            snprintf(job->error, sizeof job->error, "text %zu: %s", job->chunk_base + i,
                     dre_last_error());
            break;
        }
    }
    return NULL;
}

/* Tokenizes n texts of a chunk on up to n_threads threads (the calling one included). */
static dre_status tokenize_chunk(const dre_tokenizer *tok, const char *const *texts, size_t n,
                                 size_t chunk_base, int n_threads, int32_t max_length, int32_t *ids,
                                 int32_t *lengths, tokenize_job *jobs, pthread_t *threads) {
    if ((size_t)n_threads > n) n_threads = (int)n;
    size_t per = n / (size_t)n_threads, extra = n % (size_t)n_threads, first = 0;
    int started = 0;
    dre_status st = DRE_OK;
    for (int i = 0; i < n_threads; i++) {
        tokenize_job *job = &jobs[i];
        *job = (tokenize_job){.tok = tok,
                              .texts = texts,
                              .first = first,
                              .count = per + ((size_t)i < extra),
                              .chunk_base = chunk_base,
                              .max_length = max_length,
                              .ids = ids,
                              .lengths = lengths,
                              .status = DRE_OK};
        first += job->count;
        if (i == 0) continue; /* job 0 runs on this thread */
        if (pthread_create(&threads[i], NULL, tokenize_worker, job) != 0) {
            st = set_error(DRE_ERR_NOMEM, "dre_encode_texts: cannot start a tokenizer thread");
            break;
        }
        started = i;
    }
    if (st == DRE_OK) tokenize_worker(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(threads[i], NULL);
    if (st != DRE_OK) return st;
    for (int i = 0; i < n_threads; i++)
        if (jobs[i].status != DRE_OK) return set_error(jobs[i].status, "%s", jobs[i].error);
    return DRE_OK;
}

/* Sort key: longest first, then input order, so the result does not depend on qsort. */
typedef struct by_length {
    int32_t length;
    uint32_t index;
} by_length;

static int cmp_by_length(const void *a, const void *b) {
    const by_length *x = a, *y = b;
    if (x->length != y->length) return x->length > y->length ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

dre_status dre_encode_texts(dre_encoder *enc, const dre_tokenizer *tok, const char *const *texts,
                            size_t n, int n_threads, float *out) {
    if (!enc || !tok || (n > 0 && (!texts || !out)))
        return set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: text %zu is NULL", i);
    if (n == 0) return DRE_OK;
    if (n_threads <= 0) n_threads = cpu_count();

    const int32_t budget = dre_encoder_budget_tokens(enc), dim = dre_encoder_dim(enc);
    /* the tokenizer's length, capped by what the model's positions allow */
    int32_t max_length = dre_tokenizer_max_length(tok);
    if (max_length > dre_encoder_max_length(enc)) max_length = dre_encoder_max_length(enc);
    if (max_length > budget) max_length = budget;
    const size_t chunk_cap = n < CHUNK_TEXTS ? n : CHUNK_TEXTS;

    /* every buffer is sized once here and reused for each chunk and batch */
    int32_t *ids = malloc(chunk_cap * (size_t)max_length * sizeof *ids);
    int32_t *lengths = malloc(chunk_cap * sizeof *lengths);
    by_length *order = malloc(chunk_cap * sizeof *order);
    int32_t *batch_ids = malloc((size_t)budget * sizeof *batch_ids);
    int32_t *cu_seqlens = malloc(((size_t)budget + 1) * sizeof *cu_seqlens);
    float *batch_out = malloc((size_t)budget * (size_t)dim * sizeof *batch_out);
    tokenize_job *jobs = malloc((size_t)n_threads * sizeof *jobs);
    pthread_t *threads = malloc((size_t)n_threads * sizeof *threads);
    dre_status st = DRE_OK;
    if (!ids || !lengths || !order || !batch_ids || !cu_seqlens || !batch_out || !jobs ||
        !threads) {
        st = set_error(DRE_ERR_NOMEM, "dre_encode_texts: out of memory");
        goto done;
    }

    for (size_t base = 0; base < n && st == DRE_OK; base += chunk_cap) {
        size_t count = n - base < chunk_cap ? n - base : chunk_cap;
        st = tokenize_chunk(tok, texts + base, count, base, n_threads, max_length, ids, lengths,
                            jobs, threads);
        if (st != DRE_OK) break;
        for (size_t i = 0; i < count; i++)
            order[i] = (by_length){lengths[i], (uint32_t)i};
        qsort(order, count, sizeof *order, cmp_by_length);

        /* greedy packing of the sorted texts: fill a batch up to the budget, encode it */
        size_t next = 0;
        while (next < count && st == DRE_OK) {
            int32_t n_seqs = 0, n_tokens = 0;
            cu_seqlens[0] = 0;
            size_t first = next;
            while (next < count && n_tokens + order[next].length <= budget) {
                const by_length *o = &order[next++];
                memcpy(batch_ids + n_tokens, ids + (size_t)o->index * (size_t)max_length,
                       (size_t)o->length * sizeof *batch_ids);
                n_tokens += o->length;
                cu_seqlens[++n_seqs] = n_tokens;
            }
            st = dre_encoder_encode(enc, batch_ids, cu_seqlens, n_seqs, batch_out);
            for (int32_t s = 0; s < n_seqs && st == DRE_OK; s++)
                memcpy(out + (base + order[first + (size_t)s].index) * (size_t)dim,
                       batch_out + (size_t)s * (size_t)dim, (size_t)dim * sizeof *out);
        }
    }
done:
    free(ids);
    free(lengths);
    free(order);
    free(batch_ids);
    free(cu_seqlens);
    free(batch_out);
    free(jobs);
    free(threads);
    return st;
}
