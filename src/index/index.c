/* index/index.c — reading an index folder (dre_index_*): index.faiss (index/vindex.h: FAISS
 * through its C API, ids = docstore rows), the rescoring vectors of a quantized index
 * (index/rescore.h, memory-mapped), docs.sqlite and meta.json, checked to agree when opened.
 * A sharded index is a handle over one such handle per shard: each call branches to
 * index/shards.c at its top. The writing side is index/writer.c; FAISS helpers are in
 * index/faiss.c, meta.json in index/meta.c. */
#define _POSIX_C_SOURCE 200809L
#include "index/index.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/docstore.h"
#include "index/rescore.h"
#include "index/shards.h"
#include "index/vindex.h"

/* Queries searched at a time for rescoring: bounds the candidates held. */
#define RESCORE_QUERY_BLOCK 256
/* The most candidates per result a search may rescore. */
#define RESCORE_FACTOR_MAX 1000

struct dre_index {
    vindex *vx;
    rescore_vectors *rescore; /* a quantized index's, else NULL */
    docstore *docs;
    dre_index_info info;
    int64_t *chunk_doc; /* chunked: the document of each vector row */
    int32_t *chunk_ord; /* and which of its chunks it is */
    shard_set *shards;  /* a sharded index's shards (and nothing above but info), else NULL */
};

/* A chunked index's map from vector rows to documents, checked against the documents. */
static dre_status load_chunks(dre_index *ix, const char *dir) {
    int64_t n = ix->info.n_vectors, n_chunks = 0;
    if (!dre_docstore_has_chunks(ix->docs))
        return dre_set_error(DRE_ERR_INDEX,
                             "%s: meta.json says documents are chunked, but "
                             "docs.sqlite has no chunks table",
                             dir);
    DRE_TRY(dre_docstore_chunk_count(ix->docs, &n_chunks));
    if (n_chunks != n)
        return dre_set_error(DRE_ERR_INDEX, "%s: files disagree: %lld vectors, %lld chunks", dir,
                             (long long)n, (long long)n_chunks);
    ix->chunk_doc = malloc((size_t)(n ? n : 1) * sizeof *ix->chunk_doc);
    ix->chunk_ord = malloc((size_t)(n ? n : 1) * sizeof *ix->chunk_ord);
    if (!ix->chunk_doc || !ix->chunk_ord)
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory for %lld chunks", dir, (long long)n);
    DRE_TRY(dre_docstore_chunk_map(ix->docs, n, ix->chunk_doc, ix->chunk_ord));
    for (int64_t i = 0; i < n; i++)
        if (ix->chunk_doc[i] < 0 || ix->chunk_doc[i] >= ix->info.count)
            return dre_set_error(DRE_ERR_INDEX, "%s: chunk %lld belongs to document %lld of %lld",
                                 dir, (long long)i, (long long)ix->chunk_doc[i],
                                 (long long)ix->info.count);
    return DRE_OK;
}

/* Explains a folder that holds no complete index: nothing, or an unfinished embed. */
static dre_status no_index_error(const char *dir, dre_status st) {
    char path[PATH_MAX], shard[64];
    snprintf(shard, sizeof shard, INDEX_SHARD_DIR_FORMAT, 0);
    if (!dre_file_exists_in(dir, INDEX_META_FILE) && dre_file_exists_in(dir, shard))
        return dre_set_error(st,
                             "%s: shard folders (%s, ...) but no manifest (%s): a sharded embed "
                             "into it has not finished",
                             dir, shard, INDEX_META_FILE);
    if (dre_path_join(path, sizeof path, dir, INDEX_CHECKPOINT_FILE) == DRE_OK &&
        access(path, F_OK) == 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", dre_last_error());
        return dre_set_error(
            st,
            "%s: an embed into this folder has not finished (%s is there); run the "
            "same `dre embed` again with --resume to complete it (%s)",
            dir, INDEX_CHECKPOINT_FILE, why);
    }
    return st;
}

/* DRE_OK if dir is a folder. */
static dre_status check_folder(const char *dir) {
    struct stat st_dir;
    if (stat(dir, &st_dir) != 0) return dre_set_error(DRE_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st_dir.st_mode))
        return dre_set_error(DRE_ERR_IO, "%s: not a folder (an index is a folder)", dir);
    return DRE_OK;
}

dre_status dre_index_open_shards(const char *dir, int32_t first, int32_t n, dre_index **out) {
    if (!dir || !out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_open: NULL argument");
    *out = NULL;
    DRE_TRY(check_folder(dir));
    dre_index *ix = calloc(1, sizeof *ix);
    if (!ix) return dre_set_error(DRE_ERR_NOMEM, "dre_index_open: out of memory");
    dre_status st = dre_shards_open(dir, first, n, &ix->shards, &ix->info);
    if (st != DRE_OK) {
        free(ix);
        return st;
    }
    *out = ix;
    return DRE_OK;
}

/* One index folder into ix: its files opened and checked against each other. */
static dre_status open_folder(const char *index_dir, dre_index *ix) {
    char path[PATH_MAX];
    char want[17], got[17];
    dre_status st = dre_index_meta_read_checksum(index_dir, &ix->info, want);
    if (st == DRE_OK) st = dre_path_join(path, sizeof path, index_dir, INDEX_FAISS_FILE);
    if (st == DRE_OK && want[0]) {
        st = dre_index_file_checksum(path, got);
        if (st == DRE_OK && strcmp(got, want) != 0)
            st = dre_set_error(DRE_ERR_INDEX,
                               "%s: damaged: its checksum is %s, but meta.json recorded %s when it "
                               "was written",
                               path, got, want);
    }
    if (st == DRE_OK) st = dre_vindex_read(path, ix->info.quantize, &ix->vx);
    if (st == DRE_OK && ix->info.quantize != DRE_QUANTIZE_NONE) {
        st = dre_path_join(path, sizeof path, index_dir, dre_rescore_file_name(ix->info.rescore));
        if (st == DRE_OK)
            st = dre_rescore_open(path, ix->info.rescore, ix->info.dim, ix->info.n_vectors,
                                  &ix->rescore);
    }
    if (st == DRE_OK) st = dre_path_join(path, sizeof path, index_dir, INDEX_DOCS_FILE);
    if (st == DRE_OK && access(path, R_OK) != 0)
        st = dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == DRE_OK) st = dre_docstore_open(path, 0, &ix->docs);
    int64_t n_docs = 0;
    if (st == DRE_OK) st = dre_docstore_count(ix->docs, &n_docs);
    if (st == DRE_OK) {
        int64_t n_vectors = dre_vindex_ntotal(ix->vx);
        int dim = dre_vindex_dim(ix->vx);
        if (dim != ix->info.dim || n_vectors != ix->info.n_vectors || n_docs != ix->info.count)
            st = dre_set_error(DRE_ERR_INDEX,
                               "%s: files disagree: meta.json says %lld vectors of dim %d for %lld "
                               "documents, index.faiss holds %lld of dim %d, docs.sqlite %lld "
                               "documents",
                               index_dir, (long long)ix->info.n_vectors, ix->info.dim,
                               (long long)ix->info.count, (long long)n_vectors, dim,
                               (long long)n_docs);
    }
    if (st == DRE_OK && ix->info.chunk_tokens > 0) st = load_chunks(ix, index_dir);
    if (st == DRE_OK && ix->info.bm25 && !dre_docstore_has_bm25(ix->docs))
        st =
            dre_set_error(DRE_ERR_INDEX,
                          "%s: files disagree: meta.json says docs.sqlite has a BM25 table, but it "
                          "has none (docs_fts)",
                          index_dir);
    return st;
}

dre_status dre_index_open(const char *index_dir, dre_index **out) {
    if (!index_dir || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_open: NULL argument");
    *out = NULL;
    DRE_TRY(check_folder(index_dir));
    if (dre_shards_is_sharded(index_dir)) return dre_index_open_shards(index_dir, 0, -1, out);
    dre_index *ix = calloc(1, sizeof *ix);
    if (!ix) return dre_set_error(DRE_ERR_NOMEM, "dre_index_open: out of memory");
    dre_status st = open_folder(index_dir, ix);
    if (st != DRE_OK) {
        dre_index_close(ix);
        return no_index_error(index_dir, st);
    }
    *out = ix;
    return DRE_OK;
}

void dre_index_close(dre_index *index) {
    if (!index) return;
    dre_vindex_free(index->vx);
    dre_rescore_close(index->rescore);
    dre_docstore_close(index->docs);
    dre_shards_close(index->shards);
    free(index->chunk_doc);
    free(index->chunk_ord);
    free(index);
}

const dre_index_info *dre_index_get_info(const dre_index *index) { return &index->info; }

const dre_index_info *dre_index_shard_info(const dre_index *index, int32_t i, const char **dir,
                                           int64_t *first_row, int64_t *first_vector) {
    if (!index || !index->shards) return NULL;
    return dre_shards_shard_info(index->shards, i, dir, first_row, first_vector);
}

typedef struct scored_row {
    float score;
    int64_t row;
} scored_row;

/* Best first; equal scores by row. */
static int by_score_then_row(const void *pa, const void *pb) {
    const scored_row *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* A quantized index: the top k x factor of the codes, rescored from the rescoring vectors,
 * the best k kept. factor 0: the codes' own top k and scores. */
static dre_status search_rescored(dre_index *index, const float *queries, int64_t n, int32_t k,
                                  int32_t factor, float *scores, int64_t *rows) {
    if (factor == 0) return dre_vindex_search(index->vx, queries, n, k, scores, rows);
    int64_t kc = (int64_t)k * factor;
    if (kc > index->info.n_vectors) kc = index->info.n_vectors;
    if (kc < k) kc = k;
    const int64_t block = n < RESCORE_QUERY_BLOCK ? n : RESCORE_QUERY_BLOCK;
    float *cscores = malloc((size_t)(block * kc) * sizeof *cscores);
    int64_t *crows = malloc((size_t)(block * kc) * sizeof *crows);
    scored_row *ranked = malloc((size_t)kc * sizeof *ranked);
    dre_status st = DRE_OK;
    if (!cscores || !crows || !ranked)
        st = dre_set_error(DRE_ERR_NOMEM, "search: out of memory for %lld candidates a query",
                           (long long)kc);
    const int32_t dim = index->info.dim;
    for (int64_t first = 0; st == DRE_OK && first < n; first += block) {
        const int64_t m = n - first < block ? n - first : block;
        st = dre_vindex_search(index->vx, queries + first * dim, m, (int32_t)kc, cscores, crows);
        for (int64_t i = 0; st == DRE_OK && i < m; i++) {
            const int64_t *cr = crows + i * kc;
            float *cs = cscores + i * kc;
            st = dre_rescore_score(index->rescore, queries + (first + i) * dim, cr, kc, cs);
            if (st != DRE_OK) break;
            int64_t found = 0;
            for (int64_t j = 0; j < kc; j++)
                if (cr[j] >= 0) ranked[found++] = (scored_row){cs[j], cr[j]};
            qsort(ranked, (size_t)found, sizeof *ranked, by_score_then_row);
            for (int32_t j = 0; j < k; j++) {
                scores[(first + i) * k + j] = j < found ? ranked[j].score : -INFINITY;
                rows[(first + i) * k + j] = j < found ? ranked[j].row : -1;
            }
        }
    }
    free(cscores);
    free(crows);
    free(ranked);
    return st;
}

static dre_status check_search(const dre_index *index, const float *queries, int64_t n, int32_t k,
                               const float *scores, const int64_t *rows) {
    if (!index || (n > 0 && (!queries || !scores || !rows)) || n < 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_search: bad argument");
    if (k < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_search: k = %d (must be >= 1)", k);
    return DRE_OK;
}

/* dre_index_search with a rescore factor (< 0: the index's). */
static dre_status search_factor(dre_index *index, const float *queries, int64_t n, int32_t k,
                                int32_t factor, float *scores, int64_t *rows) {
    DRE_TRY(check_search(index, queries, n, k, scores, rows));
    if (n == 0) return DRE_OK;
    if (index->shards)
        return dre_shards_search(index->shards, queries, n, k, NULL, 0, scores, rows);
    if (index->info.n_vectors == 0) {
        /* FAISS refuses some searches on empty indexes; the answer is simply "none". */
        for (int64_t i = 0; i < n * k; i++) {
            scores[i] = -INFINITY;
            rows[i] = -1;
        }
        return DRE_OK;
    }
    if (index->rescore)
        return search_rescored(index, queries, n, k,
                               factor >= 0 ? factor : index->info.rescore_factor, scores, rows);
    return dre_vindex_search(index->vx, queries, n, k, scores, rows);
}

dre_status dre_index_search(dre_index *index, const float *queries, int64_t n, int32_t k,
                            float *scores, int64_t *rows) {
    return search_factor(index, queries, n, k, -1, scores, rows);
}

dre_status dre_index_set_param(dre_index *index, const char *name, double value) {
    if (!index || !name)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_set_param: NULL argument");
    if (index->shards) {
        DRE_TRY(dre_shards_set_param(index->shards, name, value));
        if (!strcmp(name, "rescore_factor")) index->info.rescore_factor = (int32_t)value;
        return DRE_OK;
    }
    if (!strcmp(name, "rescore_factor")) {
        if (!index->rescore)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "rescore_factor: the index is not quantized (dre embed "
                                 "--quantize)");
        if (!(value >= 0 && value <= RESCORE_FACTOR_MAX) || value != (int32_t)value)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "rescore_factor = %g: a whole number from 0 to %d", value,
                                 RESCORE_FACTOR_MAX);
        index->info.rescore_factor = (int32_t)value;
        return DRE_OK;
    }
    return dre_vindex_param_set(index->vx, name, value);
}

/* Whether a value can be set for this parameter: FAISS turns it into an int or a size_t
 * unchecked, and nprobe, efSearch or a k_factor of 0 would search nothing. */
static int param_value_ok(const char *name, double value) {
    static const char *const at_least_one[] = {"nprobe", "efSearch", "k_factor", "k_factor_rf"};
    if (!isfinite(value) || value < 0 || value > INT_MAX) return 0;
    const char *base = strncmp(name, "quantizer_", 10) == 0 ? name + 10 : name;
    for (size_t i = 0; i < sizeof at_least_one / sizeof *at_least_one; i++)
        if (!strcmp(base, at_least_one[i])) return value >= 1;
    return 1;
}

dre_status dre_index_search_with(dre_index *index, const float *queries, int64_t n, int32_t k,
                                 const dre_search_param *params, int32_t n_params, float *scores,
                                 int64_t *rows) {
    if (!index || n_params < 0 || n_params > DRE_SEARCH_MAX_PARAMS || (n_params > 0 && !params))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_search_with: %d parameters (0..%d)",
                             n_params, DRE_SEARCH_MAX_PARAMS);
    if (index->shards) { /* each shard sets, searches and puts back its own */
        DRE_TRY(check_search(index, queries, n, k, scores, rows));
        if (n == 0) return DRE_OK;
        return dre_shards_search(index->shards, queries, n, k, params, n_params, scores, rows);
    }
    double saved[DRE_SEARCH_MAX_PARAMS];
    int32_t n_set = 0, factor = -1;
    dre_status st = DRE_OK;
    for (; n_set < n_params; n_set++) {
        const dre_search_param *p = &params[n_set];
        if (memchr(p->name, '\0', sizeof p->name) && !strcmp(p->name, "rescore_factor")) {
            /* dre's own, for this call alone: nothing to put back */
            const int32_t keep = index->info.rescore_factor;
            st = dre_index_set_param(index, p->name, p->value);
            if (st != DRE_OK) break;
            factor = index->info.rescore_factor;
            index->info.rescore_factor = keep;
            saved[n_set] = NAN;
            continue;
        }
        if (!memchr(p->name, '\0', sizeof p->name) ||
            dre_vindex_param_get(index->vx, p->name, &saved[n_set]) != 0) {
            st = dre_set_error(DRE_ERR_INVALID_ARG,
                               "search parameter \"%.31s\": not a search parameter of this index "
                               "(%s)",
                               p->name, index->info.factory);
            break;
        }
        if (!param_value_ok(p->name, p->value)) {
            st = dre_set_error(DRE_ERR_INVALID_ARG, "search parameter %s = %g: out of range",
                               p->name, p->value);
            break;
        }
        if ((st = dre_index_set_param(index, p->name, p->value)) != DRE_OK) break;
    }
    if (st == DRE_OK) st = search_factor(index, queries, n, k, factor, scores, rows);
    /* back to the index's own values, the last set first */
    while (n_set-- > 0) {
        if (isnan(saved[n_set])) continue;
        const dre_status back = dre_index_set_param(index, params[n_set].name, saved[n_set]);
        if (st == DRE_OK) st = back;
    }
    return st;
}

dre_status dre_index_doc(dre_index *index, int64_t row, dre_doc *doc) {
    if (!index || !doc) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_doc: NULL argument");
    memset(doc, 0, sizeof *doc);
    if (row < 0 || row >= index->info.count)
        return dre_set_error(DRE_ERR_INVALID_ARG, "row %lld out of range (index has %lld)",
                             (long long)row, (long long)index->info.count);
    if (index->shards) return dre_shards_doc(index->shards, row, doc);
    return dre_docstore_get(index->docs, row, doc);
}

void dre_doc_clear(dre_doc *doc) {
    if (!doc) return;
    free(doc->id);
    free(doc->title);
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

dre_status dre_index_vectors(dre_index *index, int64_t first, int64_t n, float *out) {
    if (!index || (n > 0 && !out) || first < 0 || n < 0 || first + n > index->info.n_vectors)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_vectors: rows [%lld, %lld) of %lld",
                             (long long)first, (long long)(first + n),
                             (long long)(index ? index->info.n_vectors : 0));
    if (n == 0) return DRE_OK;
    if (index->shards) return dre_shards_vectors(index->shards, index->info.dim, first, n, out);
    if (index->rescore) {
        dre_rescore_decode(index->rescore, first, n, out);
        return DRE_OK;
    }
    return dre_vindex_reconstruct(index->vx, first, n, out);
}

dre_status dre_index_bm25_search(dre_index *index, const char *query, int32_t k, double *scores,
                                 int64_t *rows, int32_t *n) {
    if (!index || !query || !scores || !rows || !n)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_bm25_search: NULL argument");
    *n = 0;
    if (!index->info.bm25)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "the index has no BM25 table: add one with `dre index add-bm25 DIR`");
    if (k < 1) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_bm25_search: k = %d", k);
    /* one path for both kinds: an index's own statistics (a sharded one's summed) */
    bm25_stats stats;
    DRE_TRY(dre_index_bm25_stats(index, query, &stats));
    dre_status st = dre_index_bm25_search_stats(index, query, &stats, k, scores, rows, n);
    dre_bm25_stats_free(&stats);
    return st;
}

dre_status dre_index_bm25_stats(dre_index *index, const char *query, bm25_stats *stats) {
    if (index->shards) return dre_shards_bm25_stats(index->shards, query, stats);
    return dre_docstore_bm25_stats(index->docs, query, strlen(query), stats);
}

dre_status dre_index_bm25_search_stats(dre_index *index, const char *query, const bm25_stats *stats,
                                       int32_t k, double *scores, int64_t *rows, int32_t *n) {
    *n = 0;
    if (k < 1) return dre_set_error(DRE_ERR_INVALID_ARG, "BM25 search: k = %d", k);
    if (index->shards)
        return dre_shards_bm25_search_stats(index->shards, query, stats, k, scores, rows, n);
    return dre_docstore_bm25_search_stats(index->docs, query, strlen(query), stats, k, rows, scores,
                                          n);
}

dre_status dre_index_chunk(const dre_index *index, int64_t vector_row, int64_t *doc_row,
                           int32_t *chunk) {
    if (!index || !doc_row || !chunk)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_chunk: NULL argument");
    if (vector_row < 0 || vector_row >= index->info.n_vectors)
        return dre_set_error(DRE_ERR_INVALID_ARG, "vector row %lld out of range (index has %lld)",
                             (long long)vector_row, (long long)index->info.n_vectors);
    if (index->shards) return dre_shards_chunk(index->shards, vector_row, doc_row, chunk);
    *doc_row = index->chunk_doc ? index->chunk_doc[vector_row] : vector_row;
    *chunk = index->chunk_ord ? index->chunk_ord[vector_row] : 0;
    return DRE_OK;
}

dre_status dre_index_set_remote(dre_index *index, const shards_remote *remote) {
    if (!index || !index->shards)
        return dre_set_error(DRE_ERR_INVALID_ARG, "remote shards: not a sharded index's handle");
    dre_shards_set_remote(index->shards, remote);
    return DRE_OK;
}

const float *dre_index_flat_vectors(const dre_index *index) {
    /* a sharded index's vectors are in no one array: its searchers search with FAISS */
    if (index->shards) return NULL;
    return index->rescore ? NULL : dre_vindex_flat_data(index->vx);
}
