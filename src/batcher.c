/* batcher.c — texts to token sequences on threads, sequences to packed batches through
 * the encoder (see batcher.h), and dre_encode_texts on top of the two. */
#define _POSIX_C_SOURCE 200809L
#include "batcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tokenizer.h"

/* Texts tokenized, sorted and packed together by dre_encode_texts; bounds memory to
 * about CHUNK_TEXTS * max_length ids however many texts there are, while giving the sort
 * enough texts to pack well. */
#define CHUNK_TEXTS 8192

/* ------------------------------------------------------------------ token sequences */

void token_seqs_free(token_seqs *s) {
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
        if (!ids) return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %zu ids", cap);
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
            return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d sequences", cap);
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
            if (!p) return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", need);
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
    DRE_TRY(tokenize_ids(t->tok, text, len, max_length, out->ids + out->n_ids, &n, &cut));
    out->n_truncated += cut;
    seqs_close(out, n, index, 0);
    return DRE_OK;
}

/* All the wordpieces of a text into job->pieces (grown until they fit). */
static dre_status all_pieces(seq_job *job, const char *text, size_t len, int32_t *n) {
    for (;;) {
        int cut = 0;
        DRE_TRY(tokenize_pieces(job->t->tok, text, len, job->pieces, job->pieces_cap, n, &cut));
        if (!cut) return DRE_OK;
        if (job->pieces_cap > INT32_MAX / 2)
            return set_error(DRE_ERR_UNSUPPORTED, "a text of more than %d wordpieces",
                             INT32_MAX / 2);
        int32_t cap = job->pieces_cap ? job->pieces_cap * 2 : 4096;
        int32_t *p = realloc(job->pieces, (size_t)cap * sizeof *p);
        if (!p) return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d pieces", cap);
        job->pieces = p;
        job->pieces_cap = cap;
    }
}

/* A text longer than chunk_tokens as overlapping windows of its wordpieces (see
 * seq_tokenizer_chunk); one that fits as the whole text. */
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
        ids[k++] = tokenizer_cls_id(t->tok);
        memcpy(ids + k, t->prompt_pieces, (size_t)t->n_prompt_pieces * sizeof *ids);
        k += t->n_prompt_pieces;
        memcpy(ids + k, job->pieces + start, (size_t)(end - start) * sizeof *ids);
        k += end - start;
        ids[k++] = tokenizer_sep_id(t->tok);
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

dre_status seq_tokenizer_init(seq_tokenizer *t, const dre_tokenizer *tok, int32_t max_length,
                              const char *prompt, int n_threads) {
    memset(t, 0, sizeof *t);
    t->tok = tok;
    t->max_length = max_length;
    t->prompt = prompt ? prompt : "";
    t->prompt_len = strlen(t->prompt);
    t->n_threads = n_threads > 0 ? n_threads : cpu_count();
    t->jobs = calloc((size_t)t->n_threads, sizeof *t->jobs);
    t->threads = calloc((size_t)t->n_threads, sizeof *t->threads);
    if (!t->jobs || !t->threads) {
        seq_tokenizer_free(t);
        return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory for %d threads", n_threads);
    }
    return DRE_OK;
}

dre_status seq_tokenizer_chunk(seq_tokenizer *t, int32_t chunk_tokens, int32_t overlap) {
    if (chunk_tokens < 3 || chunk_tokens > t->max_length)
        return set_error(DRE_ERR_INVALID_ARG,
                         "chunks of %d tokens: the model takes 3 to %d (with [CLS] and [SEP])",
                         chunk_tokens, t->max_length);
    free(t->prompt_pieces);
    t->prompt_pieces = malloc((size_t)chunk_tokens * sizeof *t->prompt_pieces);
    if (!t->prompt_pieces) return set_error(DRE_ERR_NOMEM, "tokenizer: out of memory");
    int cut = 0;
    DRE_TRY(tokenize_pieces(t->tok, t->prompt, t->prompt_len, t->prompt_pieces, chunk_tokens,
                            &t->n_prompt_pieces, &cut));
    int32_t window = chunk_tokens - 2 - t->n_prompt_pieces;
    if (cut || overlap < 0 || overlap >= window)
        return set_error(DRE_ERR_INVALID_ARG,
                         "chunks of %d tokens hold %d of a text's (after [CLS], [SEP] and the "
                         "prompt's %d): an overlap of %d leaves no room to move on",
                         chunk_tokens, window, t->n_prompt_pieces, overlap);
    t->chunk_tokens = chunk_tokens;
    t->chunk_overlap = overlap;
    return DRE_OK;
}

void seq_tokenizer_free(seq_tokenizer *t) {
    if (t->jobs)
        for (int j = 0; j < t->n_threads; j++) {
            token_seqs_free(&t->jobs[j].seqs);
            free(t->jobs[j].joined);
            free(t->jobs[j].pieces);
        }
    free(t->jobs);
    free(t->threads);
    free(t->prompt_pieces);
    memset(t, 0, sizeof *t);
}

dre_status seq_tokenizer_run(seq_tokenizer *t, const char *const *texts, const size_t *lens,
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
            return set_error(t->jobs[j].status, "%s", t->jobs[j].error);
    for (int j = 0; j < n_jobs; j++)
        DRE_TRY(seqs_append(out, &t->jobs[j].seqs));
    return DRE_OK;
}

/* ------------------------------------------------------------------ packing */

struct length_key {
    int32_t length, index;
};

/* Ascending length; equal lengths keep their order, so packing is deterministic. */
static int compare_length(const void *a, const void *b) {
    const length_key *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

dre_status seq_packer_init(seq_packer *p, dre_encoder *enc, int32_t budget_tokens) {
    memset(p, 0, sizeof *p);
    p->enc = enc;
    p->budget_tokens = budget_tokens > 0 ? budget_tokens : dre_encoder_budget_tokens(enc);
    p->dim = dre_encoder_dim(enc);
    p->max_seqs = p->budget_tokens / 2 + 1; /* a sequence has [CLS] and [SEP] at least */
    p->ids = malloc((size_t)p->budget_tokens * sizeof *p->ids);
    p->cu_seqlens = malloc(((size_t)p->max_seqs + 1) * sizeof *p->cu_seqlens);
    p->out = malloc((size_t)p->max_seqs * (size_t)p->dim * sizeof *p->out);
    if (!p->ids || !p->cu_seqlens || !p->out) {
        seq_packer_free(p);
        return set_error(DRE_ERR_NOMEM, "out of memory for batches of %d tokens", budget_tokens);
    }
    return DRE_OK;
}

void seq_packer_free(seq_packer *p) {
    free(p->order);
    free(p->ids);
    free(p->cu_seqlens);
    free(p->out);
    memset(p, 0, sizeof *p);
}

/* Collects the oldest queued batch, whose sequences are p->order[first ..], into out. */
static dre_status collect_batch(seq_packer *p, int32_t first, float *out) {
    int32_t n_seqs = 0;
    DRE_TRY(dre_encoder_collect(p->enc, p->out, &n_seqs));
    for (int32_t s = 0; s < n_seqs; s++)
        memcpy(out + (size_t)p->order[first + s].index * p->dim, p->out + (size_t)s * p->dim,
               (size_t)p->dim * sizeof(float));
    return DRE_OK;
}

dre_status seq_packer_encode(seq_packer *p, const token_seqs *seqs, float *out) {
    if (seqs->n == 0) return DRE_OK; /* a window can be empty: the corpus ended with it */
    if (seqs->n > p->order_cap) {
        length_key *order = realloc(p->order, (size_t)seqs->n * sizeof *order);
        if (!order) return set_error(DRE_ERR_NOMEM, "out of memory sorting %d texts", seqs->n);
        p->order = order;
        p->order_cap = seqs->n;
    }
    for (int32_t i = 0; i < seqs->n; i++)
        p->order[i] = (length_key){seqs->length[i], i};
    qsort(p->order, (size_t)seqs->n, sizeof *p->order, compare_length);
    int32_t queued_first[DRE_ENCODER_DEPTH]; /* first sequence of each queued batch, oldest first */
    int n_queued = 0;
    int32_t i = 0;
    while (i < seqs->n) {
        int32_t n_seqs = 0, n_tokens = 0;
        p->cu_seqlens[0] = 0;
        while (i + n_seqs < seqs->n && n_seqs < p->max_seqs &&
               n_tokens + p->order[i + n_seqs].length <= p->budget_tokens) {
            int32_t s = p->order[i + n_seqs].index;
            memcpy(p->ids + n_tokens, seqs->ids + seqs->start[s],
                   (size_t)seqs->length[s] * sizeof *p->ids);
            n_tokens += seqs->length[s];
            p->cu_seqlens[++n_seqs] = n_tokens;
        }
        if (n_seqs == 0)
            return set_error(DRE_ERR_INVALID_ARG, "a text of %d tokens exceeds the budget of %d",
                             p->order[i].length, p->budget_tokens);
        if (n_queued == DRE_ENCODER_DEPTH) {
            DRE_TRY(collect_batch(p, queued_first[0], out));
            memmove(queued_first, queued_first + 1, (size_t)(--n_queued) * sizeof *queued_first);
        }
        DRE_TRY(dre_encoder_submit(p->enc, p->ids, p->cu_seqlens, n_seqs));
        queued_first[n_queued++] = i;
        i += n_seqs;
    }
    for (int q = 0; q < n_queued; q++)
        DRE_TRY(collect_batch(p, queued_first[q], out));
    return DRE_OK;
}

/* ------------------------------------------------------------------ texts to vectors */

int32_t batcher_max_length(const dre_encoder *enc, const dre_tokenizer *tok) {
    int32_t max_length = dre_tokenizer_max_length(tok);
    if (max_length > dre_encoder_max_length(enc)) max_length = dre_encoder_max_length(enc);
    if (max_length > dre_encoder_budget_tokens(enc)) max_length = dre_encoder_budget_tokens(enc);
    return max_length;
}

dre_status batcher_encode(seq_tokenizer *t, seq_packer *p, token_seqs *seqs,
                          const char *const *texts, size_t n, float *out, int32_t *text_tokens) {
    for (size_t base = 0; base < n; base += CHUNK_TEXTS) {
        int32_t count = (int32_t)(n - base < CHUNK_TEXTS ? n - base : CHUNK_TEXTS);
        DRE_TRY(seq_tokenizer_run(t, texts + base, NULL, count, seqs));
        DRE_TRY(seq_packer_encode(p, seqs, out + base * (size_t)p->dim));
        if (!text_tokens) continue;
        memset(text_tokens + base, 0, (size_t)count * sizeof *text_tokens);
        for (int32_t i = 0; i < seqs->n; i++)
            text_tokens[base + (size_t)seqs->text[i]] += seqs->length[i];
    }
    return DRE_OK;
}

dre_status dre_encode_texts(dre_encoder *enc, const dre_tokenizer *tok, const char *const *texts,
                            size_t n, int n_threads, float *out) {
    if (!enc || !tok || (n > 0 && (!texts || !out)))
        return set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: text %zu is NULL", i);
    if (n == 0) return DRE_OK;
    seq_tokenizer tokenizer;
    seq_packer packer;
    token_seqs seqs = {0};
    DRE_TRY(seq_tokenizer_init(&tokenizer, tok, batcher_max_length(enc, tok), NULL, n_threads));
    dre_status st = seq_packer_init(&packer, enc, 0);
    if (st == DRE_OK) st = batcher_encode(&tokenizer, &packer, &seqs, texts, n, out, NULL);
    token_seqs_free(&seqs);
    seq_packer_free(&packer);
    seq_tokenizer_free(&tokenizer);
    return st;
}
