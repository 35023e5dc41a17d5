/* search/searcher.c — the read side in one handle: an index, the model it was embedded with and
 * an encoder, answering queries by dense search, BM25 or both fused (dre_search). The
 * CLI's search and eval commands both go through it. On the GPU, dense search of a Flat
 * index runs there too (src/gpu/search.c), its vectors uploaded once. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "search/searcher.h"
#include "index/index.h"
#include "search/fusion.h"
#include "text/packer.h"

/* Chunked indexes: vectors searched per document wanted, at first (a document's later
 * chunks take places in the list; a query whose list holds too few documents searches
 * again, twice as deep). */
#define CHUNKS_PER_DOC 4
#define GPU_SEARCH_MAX_K 1024 /* deeper searches go to FAISS */

struct dre_searcher {
    dre_index *index;
    dre_model *model;
    dre_tokenizer *tok;
    dre_encoder *enc;
    seq_tokenizer tokenizer; /* its prompt set for each call */
    seq_packer packer;
    token_seqs seqs;
    int32_t *seen; /* chunked: per document, the last query that listed it */
    int32_t stamp;
    pthread_mutex_t
        mu;    /* one dre_search at a time: the encoder, tokenizer, packer and SQLite handles */
    int ready; /* everything above opened */
    dre_search_precision precision; /* fixed by the first dense search */
    int searched;
    dre_gpu_search *gpu; /* the Flat index's vectors on the GPU, or NULL */
};

dre_status dre_searcher_open(const char *index_dir, const char *model_dir, dre_device device,
                             dre_searcher **out) {
    return dre_searcher_open_with(index_dir, model_dir, device, DRE_PRECISION_FP32, out);
}

dre_status dre_searcher_open_with(const char *index_dir, const char *model_dir,
                                  dre_device device, dre_precision precision,
                                  dre_searcher **out) {
    if (!index_dir || !model_dir || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_searcher_open: NULL argument");
    *out = NULL;
    dre_index *index = NULL;
    DRE_TRY(dre_index_open(index_dir, &index));
    return dre_searcher_open_index(index, index_dir, model_dir, device, precision, out);
}

dre_status dre_searcher_open_index(dre_index *index, const char *index_dir, const char *model_dir,
                                   dre_device device, dre_precision precision,
                                   dre_searcher **out) {
    *out = NULL;
    dre_searcher *s = calloc(1, sizeof *s);
    if (!s) {
        dre_index_close(index);
        return dre_set_error(DRE_ERR_NOMEM, "dre_searcher_open: out of memory");
    }
    s->index = index;
    dre_status st = DRE_OK;
    char what[4200];
    snprintf(what, sizeof what, "%s/meta.json", index_dir);
    if (st == DRE_OK && !dre_index_get_info(s->index)->weights_sha256[0])
        st = dre_set_error(DRE_ERR_MISMATCH,
                           "%s: the index was imported without its model (model \"%s\"), so "
                           "dre cannot embed queries for it: search it with query vectors (dre "
                           "search --query-vectors Q.npy), or import it again with --model",
                           what, dre_index_get_info(s->index)->model_name);
    if (st == DRE_OK) st = dre_model_open(model_dir, &s->model);
    if (st == DRE_OK) {
        const dre_index_info *ii = dre_index_get_info(s->index);
        st = dre_index_model_matches(what, dre_model_get_info(s->model), ii->dim,
                                     ii->weights_sha256, ii);
    }
    if (st == DRE_OK) st = dre_tokenizer_open(model_dir, &s->tok);
    if (st == DRE_OK) st = dre_encoder_open_with(s->model, device, 0, precision, &s->enc);
    if (st == DRE_OK)
        st = dre_seq_tokenizer_init(&s->tokenizer, s->tok,
                                    dre_seq_packer_max_length(s->enc, s->tok), NULL, 0);
    if (st == DRE_OK) st = dre_seq_packer_init(&s->packer, s->enc, 0);
    const dre_index_info *info = st == DRE_OK ? dre_index_get_info(s->index) : NULL;
    if (info && info->chunk_tokens > 0 &&
        !(s->seen = calloc((size_t)(info->count ? info->count : 1), sizeof *s->seen)))
        st = dre_set_error(DRE_ERR_NOMEM, "dre_searcher_open: out of memory");
    if (st != DRE_OK) {
        dre_searcher_close(s);
        return st;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->ready = 1;
    *out = s;
    return DRE_OK;
}

void dre_searcher_close(dre_searcher *s) {
    if (!s) return;
    dre_gpu_search_close(s->gpu);
    if (s->ready) pthread_mutex_destroy(&s->mu);
    free(s->seen);
    dre_token_seqs_free(&s->seqs);
    dre_seq_packer_free(&s->packer);
    dre_seq_tokenizer_free(&s->tokenizer);
    dre_encoder_close(s->enc);
    dre_tokenizer_close(s->tok);
    dre_model_close(s->model);
    dre_index_close(s->index);
    free(s);
}

dre_index *dre_searcher_index(dre_searcher *s) { return s->index; }

dre_device dre_searcher_device(const dre_searcher *s) { return dre_encoder_device(s->enc); }

dre_precision dre_searcher_precision(const dre_searcher *s) {
    return dre_encoder_precision(s->enc);
}

int dre_searcher_gpu_search(const dre_searcher *s) { return s->gpu != NULL; }

/* At the first dense search: the index's vectors onto the GPU where that is the way (a GPU
 * searcher, an unquantized Flat index, GPU search wanted). They are FAISS's own, uploaded
 * from where they are; the fp16 search re-scores from them there too (no copy). */
static dre_status gpu_search_start(dre_searcher *s, dre_search_precision precision) {
    if (s->searched) {
        if (precision == s->precision) return DRE_OK;
        return dre_set_error(
            DRE_ERR_INVALID_ARG,
            "search precision %s: this searcher searches at %s (fixed by its first "
            "search); open another for %s",
            dre_search_precision_name(precision), dre_search_precision_name(s->precision),
            dre_search_precision_name(precision));
    }
    s->searched = 1;
    s->precision = precision;
    const dre_index_info *info = dre_index_get_info(s->index);
    const float *vectors = dre_index_flat_vectors(s->index);
    if (s->precision == DRE_SEARCH_FAISS_CPU || dre_encoder_device(s->enc) != DRE_DEVICE_GPU ||
        !vectors || info->n_vectors < 1)
        return DRE_OK;
    return s->precision == DRE_SEARCH_GPU_FP16
               ? dre_gpu_search_open_fp16(vectors, info->n_vectors, info->dim, &s->gpu)
               : dre_gpu_search_open(vectors, info->n_vectors, info->dim, &s->gpu);
}

/* The k nearest vectors of n query embeddings: on the GPU where it holds them (a Flat index:
 * no search parameters), else FAISS with the request's parameters. */
static dre_status nearest(dre_searcher *s, const dre_search_options *o, const float *vectors,
                          int64_t n, int32_t k, float *scores, int64_t *rows) {
    if (s->gpu && k <= GPU_SEARCH_MAX_K && o->n_params == 0)
        return dre_gpu_search_run(s->gpu, vectors, n, k, scores, rows);
    return dre_index_search_with(s->index, vectors, n, k, o->params, o->n_params, scores, rows);
}

/* The work space of one dre_search call. */
typedef struct search_buffers {
    float *vectors;    /* [n, dim] query embeddings */
    int32_t k_vectors; /* vectors searched per query */
    float *scores;     /* [n, k_vectors] dense scores */
    int64_t *rows;     /* [n, k_vectors] vector rows */
    ranked *dense;     /* [depth] */
    ranked *bm25;      /* [depth] */
    double *bm25_scores;
    int64_t *bm25_rows;
    dre_hit *scratch; /* [2 * depth] */
} search_buffers;

static void buffers_free(search_buffers *b) {
    free(b->vectors);
    free(b->scores);
    free(b->rows);
    free(b->dense);
    free(b->bm25);
    free(b->bm25_scores);
    free(b->bm25_rows);
    free(b->scratch);
}

/* A query's nearest vectors as documents, best first, each once with its best chunk: at
 * most depth of them into out; returns how many. */
static int32_t documents_of(dre_searcher *s, const float *scores, const int64_t *rows, int32_t n,
                            int32_t depth, ranked *out) {
    int32_t m = 0;
    if (!s->seen) { /* a vector per document */
        for (int32_t j = 0; j < n && rows[j] >= 0 && m < depth; j++)
            out[m++] = (ranked){rows[j], scores[j], 0};
        return m;
    }
    s->stamp++;
    for (int32_t j = 0; j < n && rows[j] >= 0 && m < depth; j++) {
        int64_t doc = 0;
        int32_t chunk = 0;
        if (dre_index_chunk(s->index, rows[j], &doc, &chunk) != DRE_OK) continue;
        if (s->seen[doc] == s->stamp) continue;
        s->seen[doc] = s->stamp;
        out[m++] = (ranked){doc, scores[j], chunk};
    }
    return m;
}

/* Query q's dense list: depth documents, searching deeper where chunks crowd it. */
static dre_status dense_list(dre_searcher *s, const dre_search_options *o, size_t q, int32_t depth,
                             search_buffers *b, int32_t *n_dense) {
    const dre_index_info *info = dre_index_get_info(s->index);
    int32_t k = b->k_vectors;
    *n_dense =
        documents_of(s, b->scores + q * (size_t)k, b->rows + q * (size_t)k, k, depth, b->dense);
    int64_t all = info->n_vectors;
    while (*n_dense < depth && *n_dense < info->count && k < all) {
        k = (int64_t)k * 2 < all ? k * 2 : (int32_t)all;
        float *scores = malloc((size_t)k * sizeof *scores);
        int64_t *rows = malloc((size_t)k * sizeof *rows);
        dre_status st = DRE_OK;
        if (!scores || !rows)
            st = dre_set_error(DRE_ERR_NOMEM, "search: out of memory for %d vectors", k);
        if (st == DRE_OK)
            st = nearest(s, o, b->vectors + q * (size_t)info->dim, 1, k, scores, rows);
        if (st == DRE_OK) *n_dense = documents_of(s, scores, rows, k, depth, b->dense);
        free(scores);
        free(rows);
        DRE_TRY(st);
    }
    return DRE_OK;
}

/* n texts (prompt before each) to n x dim vectors; text_tokens (if given) gets each text's
 * tokens, [CLS] and [SEP] included. */
static dre_status embed_locked(dre_searcher *s, const char *const *texts, size_t n,
                               const char *prompt, float *out, int32_t *text_tokens) {
    s->tokenizer.prompt = prompt ? prompt : "";
    s->tokenizer.prompt_len = strlen(s->tokenizer.prompt);
    return dre_seq_packer_encode_texts(&s->tokenizer, &s->packer, &s->seqs, texts, n, out,
                                       text_tokens);
}

/* Embeds n queries (prompt before each), unless given, and finds their nearest vectors. */
static dre_status dense_search(dre_searcher *s, const char *const *queries, size_t n,
                               const char *prompt, const float *given, const dre_search_options *o,
                               search_buffers *b) {
    const int32_t dim = dre_index_get_info(s->index)->dim;
    if (given)
        memcpy(b->vectors, given, n * (size_t)dim * sizeof *b->vectors);
    else
        DRE_TRY(embed_locked(s, queries, n, prompt, b->vectors, NULL));
    DRE_TRY(gpu_search_start(s, o->precision));
    return nearest(s, o, b->vectors, (int64_t)n, b->k_vectors, b->scores, b->rows);
}

static dre_status search_locked(dre_searcher *s, const char *const *queries, const float *vectors,
                                size_t n, const dre_search_options *o, dre_hit *hits,
                                int32_t *n_hits) {
    const dre_index_info *info = dre_index_get_info(s->index);
    dre_search_mode mode = o->mode;
    if (mode == DRE_SEARCH_AUTO) mode = info->bm25 ? DRE_SEARCH_HYBRID : DRE_SEARCH_DENSE;
    if ((mode == DRE_SEARCH_BM25 || mode == DRE_SEARCH_HYBRID) && !info->bm25)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "--mode %s needs a BM25 table, and this index has none: add one with "
                             "`dre index add-bm25 DIR`",
                             dre_search_mode_name(mode));
    int32_t k = o->k;
    int32_t depth = mode == DRE_SEARCH_HYBRID ? (o->depth > k ? o->depth : k) : k;
    if (depth > info->count && info->count > 0) depth = (int32_t)info->count;
    search_buffers b = {0};
    int32_t dim = info->dim;
    int dense = mode != DRE_SEARCH_BM25, lexical = mode != DRE_SEARCH_DENSE;
    b.k_vectors = depth;
    if (info->chunk_tokens > 0)
        b.k_vectors = (int64_t)depth * CHUNKS_PER_DOC < info->n_vectors
                          ? depth * CHUNKS_PER_DOC
                          : (int32_t)(info->n_vectors > 0 ? info->n_vectors : 1);
    if (dense) {
        b.vectors = malloc(n * (size_t)dim * sizeof *b.vectors);
        b.scores = malloc(n * (size_t)b.k_vectors * sizeof *b.scores);
        b.rows = malloc(n * (size_t)b.k_vectors * sizeof *b.rows);
    }
    b.dense = malloc((size_t)depth * sizeof *b.dense);
    b.bm25 = malloc((size_t)depth * sizeof *b.bm25);
    b.bm25_scores = malloc((size_t)depth * sizeof *b.bm25_scores);
    b.bm25_rows = malloc((size_t)depth * sizeof *b.bm25_rows);
    b.scratch = malloc(2 * (size_t)depth * sizeof *b.scratch);
    dre_status st = DRE_OK;
    if ((dense && (!b.vectors || !b.scores || !b.rows)) || !b.dense || !b.bm25 || !b.bm25_scores ||
        !b.bm25_rows || !b.scratch)
        st = dre_set_error(DRE_ERR_NOMEM, "search: out of memory for %zu queries of depth %d", n,
                           depth);
    const char *prompt = o->query_prompt ? o->query_prompt : info->query_prompt;
    if (st == DRE_OK && dense && info->count > 0)
        st = dense_search(s, queries, n, prompt, vectors, o, &b);
    for (size_t q = 0; q < n && st == DRE_OK; q++) {
        int32_t n_dense = 0, n_bm25 = 0;
        if (dense && info->count > 0) st = dense_list(s, o, q, depth, &b, &n_dense);
        if (st == DRE_OK && lexical) {
            st = dre_index_bm25_search(s->index, queries[q], depth, b.bm25_scores, b.bm25_rows,
                                       &n_bm25);
            for (int32_t j = 0; j < n_bm25; j++)
                b.bm25[j] = (ranked){b.bm25_rows[j], b.bm25_scores[j], -1};
        }
        dre_hit *out = hits + q * (size_t)k;
        if (mode == DRE_SEARCH_DENSE)
            n_hits[q] = dre_fuse_single(b.dense, n_dense, 0, k, out);
        else if (mode == DRE_SEARCH_BM25)
            n_hits[q] = dre_fuse_single(b.bm25, n_bm25, 1, k, out);
        else
            n_hits[q] = dre_fuse(o->fusion, o->rrf_k, o->alpha, b.dense, n_dense, b.bm25, n_bm25, k,
                                 b.scratch, out);
    }
    buffers_free(&b);
    return st;
}

dre_status dre_searcher_embed(dre_searcher *s, const char *const *texts, size_t n,
                              const char *prompt, float *out, int32_t *text_tokens) {
    if (!s || (n > 0 && (!texts || !out)))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_searcher_embed: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return dre_set_error(DRE_ERR_INVALID_ARG, "dre_searcher_embed: text %zu is NULL", i);
    if (n == 0) return DRE_OK;
    pthread_mutex_lock(&s->mu);
    const dre_status st = embed_locked(s, texts, n, prompt, out, text_tokens);
    pthread_mutex_unlock(&s->mu);
    return st;
}

dre_status dre_searcher_embed_ids(dre_searcher *s, const int32_t *ids, const int32_t *cu_seqlens,
                                  size_t n, int normalize, float *out) {
    if (!s || (n > 0 && (!ids || !cu_seqlens || !out)))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_searcher_embed_ids: NULL argument");
    if (n > INT32_MAX)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_searcher_embed_ids: %zu sequences", n);
    const int32_t max_length = s->tokenizer.max_length;
    for (size_t i = 0; i < n; i++) {
        const int32_t len = cu_seqlens[i + 1] - cu_seqlens[i];
        if (len < 1 || len > max_length)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "dre_searcher_embed_ids: sequence %zu has %d ids (1..%d)", i, len,
                                 max_length);
    }
    if (n == 0) return DRE_OK;
    pthread_mutex_lock(&s->mu);
    dre_status st = dre_token_seqs_set(&s->seqs, ids, cu_seqlens, (int32_t)n);
    dre_encoder_set_raw_pooling(s->enc, !normalize);
    if (st == DRE_OK) st = dre_seq_packer_encode(&s->packer, &s->seqs, out);
    dre_encoder_set_raw_pooling(s->enc, 0);
    pthread_mutex_unlock(&s->mu);
    return st;
}

const dre_tokenizer *dre_searcher_tokenizer(const dre_searcher *s) { return s->tok; }

int32_t dre_searcher_max_length(const dre_searcher *s) { return s->tokenizer.max_length; }

const char *dre_searcher_query_prompt(const dre_searcher *s) {
    return dre_index_get_info(s->index)->query_prompt;
}

static dre_status search_checked(dre_searcher *s, const char *const *queries, const float *vectors,
                                 size_t n, const dre_search_options *opts, dre_hit *hits,
                                 int32_t *n_hits);

dre_status dre_search(dre_searcher *s, const char *const *queries, size_t n,
                      const dre_search_options *opts, dre_hit *hits, int32_t *n_hits) {
    return search_checked(s, queries, NULL, n, opts, hits, n_hits);
}

dre_status dre_search_embedded(dre_searcher *s, const char *const *queries, const float *vectors,
                               size_t n, const dre_search_options *opts, dre_hit *hits,
                               int32_t *n_hits) {
    if (n > 0 && !vectors)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_search_embedded: NULL vectors");
    return search_checked(s, queries, vectors, n, opts, hits, n_hits);
}

static dre_status search_checked(dre_searcher *s, const char *const *queries, const float *vectors,
                                 size_t n, const dre_search_options *opts, dre_hit *hits,
                                 int32_t *n_hits) {
    dre_search_options defaults;
    if (!opts) {
        dre_search_options_init(&defaults);
        opts = &defaults;
    }
    if (!s || (n > 0 && (!queries || !hits || !n_hits)))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_search: NULL argument");
    if (opts->k < 1 || opts->depth < 1 || !(opts->rrf_k >= 0) ||
        !(opts->alpha >= 0 && opts->alpha <= 1) || opts->mode < DRE_SEARCH_AUTO ||
        opts->mode > DRE_SEARCH_HYBRID || opts->fusion < DRE_FUSION_CONVEX ||
        opts->fusion > DRE_FUSION_RRF || opts->precision < DRE_SEARCH_GPU_FP16 ||
        opts->precision > DRE_SEARCH_FAISS_CPU || opts->n_params < 0 ||
        opts->n_params > DRE_SEARCH_MAX_PARAMS)
        return dre_set_error(
            DRE_ERR_INVALID_ARG,
            "dre_search: k %d, depth %d, rrf_k %g, alpha %g, %d parameters (k, depth "
            ">= 1, rrf_k >= 0, alpha in 0..1, at most %d parameters)",
            opts->k, opts->depth, opts->rrf_k, opts->alpha, opts->n_params, DRE_SEARCH_MAX_PARAMS);
    for (size_t i = 0; i < n; i++)
        if (!queries[i])
            return dre_set_error(DRE_ERR_INVALID_ARG, "dre_search: query %zu is NULL", i);
    if (n == 0) return DRE_OK;
    pthread_mutex_lock(&s->mu);
    dre_status st = search_locked(s, queries, vectors, n, opts, hits, n_hits);
    pthread_mutex_unlock(&s->mu);
    return st;
}
