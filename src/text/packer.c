/* text/packer.c — token sequences sorted by length and packed without padding into the
 * encoder's batches, two queued at a time; texts to vectors through the tokenizer threads
 * and the packer; dre_encode_texts (text/packer.h). */
#define _POSIX_C_SOURCE 200809L
#include "text/packer.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* Texts tokenized, sorted and packed together by dre_encode_texts; bounds memory to
 * about CHUNK_TEXTS * max_length ids however many texts there are, while giving the sort
 * enough texts to pack well. */
#define CHUNK_TEXTS 8192

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

dre_status dre_seq_packer_init(seq_packer *p, dre_encoder *enc, int32_t budget_tokens) {
    memset(p, 0, sizeof *p);
    p->enc = enc;
    p->budget_tokens = budget_tokens > 0 ? budget_tokens : dre_encoder_budget_tokens(enc);
    p->dim = dre_encoder_dim(enc);
    p->max_seqs = p->budget_tokens / 2 + 1; /* a sequence has [CLS] and [SEP] at least */
    p->ids = malloc((size_t)p->budget_tokens * sizeof *p->ids);
    p->cu_seqlens = malloc(((size_t)p->max_seqs + 1) * sizeof *p->cu_seqlens);
    p->out = malloc((size_t)p->max_seqs * (size_t)p->dim * sizeof *p->out);
    if (!p->ids || !p->cu_seqlens || !p->out) {
        dre_seq_packer_free(p);
        return dre_set_error(DRE_ERR_NOMEM, "out of memory for batches of %d tokens",
                             budget_tokens);
    }
    return DRE_OK;
}

void dre_seq_packer_free(seq_packer *p) {
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

dre_status dre_seq_packer_encode(seq_packer *p, const token_seqs *seqs, float *out) {
    if (seqs->n == 0) return DRE_OK; /* a window can be empty: the corpus ended with it */
    if (seqs->n > p->order_cap) {
        length_key *order = realloc(p->order, (size_t)seqs->n * sizeof *order);
        if (!order) return dre_set_error(DRE_ERR_NOMEM, "out of memory sorting %d texts", seqs->n);
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
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "a text of %d tokens exceeds the budget of %d", p->order[i].length,
                                 p->budget_tokens);
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

int32_t dre_seq_packer_max_length(const dre_encoder *enc, const dre_tokenizer *tok) {
    int32_t max_length = dre_tokenizer_max_length(tok);
    if (max_length > dre_encoder_max_length(enc)) max_length = dre_encoder_max_length(enc);
    if (max_length > dre_encoder_budget_tokens(enc)) max_length = dre_encoder_budget_tokens(enc);
    return max_length;
}

dre_status dre_seq_packer_encode_texts(seq_tokenizer *t, seq_packer *p, token_seqs *seqs,
                                       const char *const *texts, size_t n, float *out,
                                       int32_t *text_tokens) {
    for (size_t base = 0; base < n; base += CHUNK_TEXTS) {
        int32_t count = (int32_t)(n - base < CHUNK_TEXTS ? n - base : CHUNK_TEXTS);
        DRE_TRY(dre_seq_tokenizer_run(t, texts + base, NULL, count, seqs));
        DRE_TRY(dre_seq_packer_encode(p, seqs, out + base * (size_t)p->dim));
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
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encode_texts: text %zu is NULL", i);
    if (n == 0) return DRE_OK;
    seq_tokenizer tokenizer;
    seq_packer packer;
    token_seqs seqs = {0};
    DRE_TRY(dre_seq_tokenizer_init(&tokenizer, tok, dre_seq_packer_max_length(enc, tok), NULL,
                                   n_threads));
    dre_status st = dre_seq_packer_init(&packer, enc, 0);
    if (st == DRE_OK)
        st = dre_seq_packer_encode_texts(&tokenizer, &packer, &seqs, texts, n, out, NULL);
    dre_token_seqs_free(&seqs);
    dre_seq_packer_free(&packer);
    dre_seq_tokenizer_free(&tokenizer);
    return st;
}
