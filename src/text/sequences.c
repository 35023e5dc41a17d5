/* text/sequences.c — texts to token sequences on tokenizer threads, whole or cut into
 * chunks (text/sequences.h). */
#define _POSIX_C_SOURCE 200809L
#include "text/sequences.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "text/tokenizer.h"

/* ------------------------------------------------------------------ token sequences */

void dre_token_seqs_free(token_seqs *s) {
    free(s->ids);
    free(s->start);
    free(s->length);
    free(s->text);
    free(s->first);
    memset(s, 0, sizeof *s);
}

/* Room for n_ids more ids and one more sequence. */
static dre_status seqs_reserve(token_seqs *s, size_t n_ids) {
    if (s->n_ids + n_ids > s->ids_cap) {
        size_t cap = s->ids_cap ? s->ids_cap * 2 : 4096;
        while (cap < s->n_ids + n_ids)
            cap *= 2;
        int32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %zu ids", cap);
        s->ids = ids;
        s->ids_cap = cap;
    }
    if (s->n == s->cap) {
        int32_t cap = s->cap ? s->cap * 2 : 256;
        size_t *start = realloc(s->start, (size_t)cap * sizeof *start);
        if (start) s->start = start;
        int32_t *length = realloc(s->length, (size_t)cap * sizeof *length);
        if (length) s->length = length;
        int32_t *text = realloc(s->text, (size_t)cap * sizeof *text);
        if (text) s->text = text;
        int32_t *first = realloc(s->first, (size_t)cap * sizeof *first);
        if (first) s->first = first;
        if (!start || !length || !text || !first)
            return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d sequences", cap);
        s->cap = cap;
    }
    return DRE_OK;
}

/* Ends the sequence whose n ids were written at s->ids + s->n_ids. */
static void seqs_close(token_seqs *s, int32_t n, int32_t text, int32_t first) {
    s->start[s->n] = s->n_ids;
    s->length[s->n] = n;
    s->text[s->n] = text;
    s->first[s->n] = first;
    s->n_ids += (size_t)n;
    s->n++;
}

dre_status dre_token_seqs_set(token_seqs *s, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n) {
    s->n = 0;
    s->n_ids = 0;
    s->n_truncated = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t len = cu_seqlens[i + 1] - cu_seqlens[i];
        DRE_TRY(seqs_reserve(s, (size_t)len));
        memcpy(s->ids + s->n_ids, ids + cu_seqlens[i], (size_t)len * sizeof *ids);
        seqs_close(s, len, i, 0);
    }
    return DRE_OK;
}

/* Appends src's sequences to dst, their text numbers unchanged. */
static dre_status seqs_append(token_seqs *dst, const token_seqs *src) {
    for (int32_t i = 0; i < src->n; i++) {
        DRE_TRY(seqs_reserve(dst, (size_t)src->length[i]));
        memcpy(dst->ids + dst->n_ids, src->ids + src->start[i],
               (size_t)src->length[i] * sizeof *dst->ids);
        seqs_close(dst, src->length[i], src->text[i], src->first[i]);
    }
    dst->n_truncated += src->n_truncated;
    return DRE_OK;
}

/* ------------------------------------------------------------------ tokenizing */

struct seq_job {
    const seq_tokenizer *t;
    const char *const *texts;
    const size_t *lens;
    int32_t first, last; /* texts [first, last) */
    token_seqs seqs;
    char *joined; /* prompt + text */
    size_t joined_cap;
    int32_t *pieces; /* a long text's wordpieces */
    int32_t pieces_cap;
    dre_status status;
    char error[1024]; /* dre_last_error is per thread: carried back to the caller */
};

/* prompt + text, tokenized as one string into a sequence of at most max_length tokens. */
static dre_status whole_text(seq_job *job, const char *text, size_t len, int32_t index,
                             int32_t max_length) {
    const seq_tokenizer *t = job->t;
    token_seqs *out = &job->seqs;
    if (t->prompt_len > 0) {
        size_t need = t->prompt_len + len;
        if (need > job->joined_cap) {
            char *p = realloc(job->joined, need);
            if (!p)
                return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", need);
            job->joined = p;
            job->joined_cap = need;
        }
        memcpy(job->joined, t->prompt, t->prompt_len);
        memcpy(job->joined + t->prompt_len, text, len);
        text = job->joined;
        len = need;
    }
    DRE_TRY(seqs_reserve(out, (size_t)max_length));
    int32_t n = 0;
    int cut = 0;
    DRE_TRY(dre_tokenize_ids(t->tok, text, len, max_length, out->ids + out->n_ids, &n, &cut));
    out->n_truncated += cut;
    seqs_close(out, n, index, 0);
    return DRE_OK;
}

/* All the wordpieces of a text into job->pieces (grown until they fit). */
static dre_status all_pieces(seq_job *job, const char *text, size_t len, int32_t *n) {
    for (;;) {
        int cut = 0;
        DRE_TRY(dre_tokenize_pieces(job->t->tok, text, len, job->pieces, job->pieces_cap, n, &cut));
        if (!cut) return DRE_OK;
        if (job->pieces_cap > INT32_MAX / 2)
            return dre_set_error(DRE_ERR_UNSUPPORTED, "a text of more than %d wordpieces",
                                 INT32_MAX / 2);
        int32_t cap = job->pieces_cap ? job->pieces_cap * 2 : 4096;
        int32_t *p = realloc(job->pieces, (size_t)cap * sizeof *p);
        if (!p) return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d pieces", cap);
        job->pieces = p;
        job->pieces_cap = cap;
    }
}

/* A text longer than chunk_tokens as overlapping windows of its wordpieces (see
 * dre_seq_tokenizer_chunk); one that fits as the whole text. */
static dre_status chunk_text(seq_job *job, const char *text, size_t len, int32_t index) {
    const seq_tokenizer *t = job->t;
    int32_t n = 0;
    DRE_TRY(all_pieces(job, text, len, &n));
    if (2 + t->n_prompt_pieces + n <= t->chunk_tokens)
        return whole_text(job, text, len, index, t->chunk_tokens);
    int32_t window = t->chunk_tokens - 2 - t->n_prompt_pieces;
    int32_t stride = window - t->chunk_overlap;
    token_seqs *out = &job->seqs;
    for (int32_t start = 0;; start += stride) {
        int32_t end = start + window < n ? start + window : n;
        DRE_TRY(seqs_reserve(out, (size_t)t->chunk_tokens));
        int32_t *ids = out->ids + out->n_ids, k = 0;
        ids[k++] = dre_tokenizer_cls_id(t->tok);
        memcpy(ids + k, t->prompt_pieces, (size_t)t->n_prompt_pieces * sizeof *ids);
        k += t->n_prompt_pieces;
        memcpy(ids + k, job->pieces + start, (size_t)(end - start) * sizeof *ids);
        k += end - start;
        ids[k++] = dre_tokenizer_sep_id(t->tok);
        seqs_close(out, k, index, start);
        if (end == n) return DRE_OK;
    }
}

static void *run_job(void *arg) {
    seq_job *job = arg;
    job->seqs.n = 0;
    job->seqs.n_ids = 0;
    job->seqs.n_truncated = 0;
    job->status = DRE_OK;
    const seq_tokenizer *t = job->t;
    for (int32_t i = job->first; i < job->last; i++) {
        size_t len = job->lens ? job->lens[i] : strlen(job->texts[i]);
        dre_status st = t->chunk_tokens > 0 ? chunk_text(job, job->texts[i], len, i)
                                            : whole_text(job, job->texts[i], len, i, t->max_length);
        if (st != DRE_OK) {
            job->status = st;
            snprintf(job->error, sizeof job->error, "text %d: %s", (int)i, dre_last_error());
            break;
        }
    }
    return NULL;
}

dre_status dre_seq_tokenizer_init(seq_tokenizer *t, const dre_tokenizer *tok, int32_t max_length,
                                  const char *prompt, int n_threads) {
    memset(t, 0, sizeof *t);
    t->tok = tok;
    t->max_length = max_length;
    t->prompt = prompt ? prompt : "";
    t->prompt_len = strlen(t->prompt);
    t->n_threads = n_threads > 0 ? n_threads : dre_cpu_count();
    t->jobs = calloc((size_t)t->n_threads, sizeof *t->jobs);
    t->threads = calloc((size_t)t->n_threads, sizeof *t->threads);
    if (!t->jobs || !t->threads) {
        dre_seq_tokenizer_free(t);
        return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d threads", n_threads);
    }
    return DRE_OK;
}

dre_status dre_seq_tokenizer_chunk(seq_tokenizer *t, int32_t chunk_tokens, int32_t overlap) {
    if (chunk_tokens < 3 || chunk_tokens > t->max_length)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "chunks of %d tokens: the model takes 3 to %d (with [CLS] and [SEP])",
                             chunk_tokens, t->max_length);
    free(t->prompt_pieces);
    t->prompt_pieces = malloc((size_t)chunk_tokens * sizeof *t->prompt_pieces);
    if (!t->prompt_pieces) return dre_set_error(DRE_ERR_NOMEM, "tokenizer: out of memory");
    int cut = 0;
    DRE_TRY(dre_tokenize_pieces(t->tok, t->prompt, t->prompt_len, t->prompt_pieces, chunk_tokens,
                                &t->n_prompt_pieces, &cut));
    int32_t window = chunk_tokens - 2 - t->n_prompt_pieces;
    if (cut || overlap < 0 || overlap >= window)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "chunks of %d tokens hold %d of a text's (after [CLS], [SEP] and the "
                             "prompt's %d): an overlap of %d leaves no room to move on",
                             chunk_tokens, window, t->n_prompt_pieces, overlap);
    t->chunk_tokens = chunk_tokens;
    t->chunk_overlap = overlap;
    return DRE_OK;
}

void dre_seq_tokenizer_free(seq_tokenizer *t) {
    if (t->jobs)
        for (int j = 0; j < t->n_threads; j++) {
            dre_token_seqs_free(&t->jobs[j].seqs);
            free(t->jobs[j].joined);
            free(t->jobs[j].pieces);
        }
    free(t->jobs);
    free(t->threads);
    free(t->prompt_pieces);
    memset(t, 0, sizeof *t);
}

dre_status dre_seq_tokenizer_run(seq_tokenizer *t, const char *const *texts, const size_t *lens,
                                 int32_t n, token_seqs *out) {
    out->n = 0;
    out->n_ids = 0;
    out->n_truncated = 0;
    int n_jobs = t->n_threads;
    if (n_jobs > n / 16) n_jobs = n / 16; /* a thread per >= 16 texts at least */
    if (n_jobs < 1) n_jobs = 1;
    for (int j = 0; j < n_jobs; j++) {
        seq_job *job = &t->jobs[j];
        job->t = t;
        job->texts = texts;
        job->lens = lens;
        job->first = (int32_t)((int64_t)n * j / n_jobs);
        job->last = (int32_t)((int64_t)n * (j + 1) / n_jobs);
    }
    /* Job 0 runs on this thread, the rest on their own (or here, if a thread won't start). */
    int started = 0;
    for (int j = 1; j < n_jobs; j++) {
        if (pthread_create(&t->threads[j], NULL, run_job, &t->jobs[j]) != 0) break;
        started = j;
    }
    run_job(&t->jobs[0]);
    for (int j = 1; j <= started; j++)
        pthread_join(t->threads[j], NULL);
    for (int j = started + 1; j < n_jobs; j++)
        run_job(&t->jobs[j]);
    for (int j = 0; j < n_jobs; j++)
        if (t->jobs[j].status != DRE_OK)
            return dre_set_error(t->jobs[j].status, "%s", t->jobs[j].error);
    for (int j = 0; j < n_jobs; j++)
        DRE_TRY(seqs_append(out, &t->jobs[j].seqs));
    return DRE_OK;
}
