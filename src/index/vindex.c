/* index/vindex.c — index.faiss as searched in RAM: a FAISS float index (index/faiss.c) or a
 * FAISS binary index of sign bits (index/faiss_gaps.cpp for what the C API lacks). */
#define _POSIX_C_SOURCE 200809L
#include "index/vindex.h"

#include <errno.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "index/hamming.h"
#include "index/index.h"
#include "index/ranking.h"

/* Query or added vectors packed into sign bits at a time. */
#define PACK_BLOCK 65536

struct vindex {
    FaissIndex *flt;         /* a float index, or */
    FaissIndexBinary *bin;   /* a binary one */
    int32_t dim;
};

static const char *const quantize_names[] = {"none", "int8", "binary"};

dre_status dre_quantize_parse(const char *name, dre_quantize *out) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, quantize_names[i])) {
            *out = (dre_quantize)i;
            return DRE_OK;
        }
    return dre_set_error(DRE_ERR_INVALID_ARG, "quantization \"%s\" (none, int8 or binary)",
                         name ? name : "(null)");
}

const char *dre_quantize_name(dre_quantize quantize) {
    return quantize >= 0 && quantize < 3 ? quantize_names[quantize] : "?";
}

const char *dre_vindex_default_factory(dre_quantize quantize) {
    return quantize == DRE_QUANTIZE_BINARY ? "BFlat"
           : quantize == DRE_QUANTIZE_INT8 ? "SQ8"
                                           : INDEX_DEFAULT_FACTORY;
}

void dre_vindex_pack_signs(const float *x, int64_t n, int32_t dim, uint8_t *codes) {
    const int32_t bytes = dim / 8;
    for (int64_t i = 0; i < n; i++) {
        const float *v = x + i * dim;
        uint8_t *c = codes + i * bytes;
        for (int32_t j = 0; j < bytes; j++) {
            unsigned byte = 0;
            for (int b = 0; b < 8; b++)
                byte = byte << 1 | (v[8 * j + b] > 0.0f);
            c[j] = (uint8_t)byte;
        }
    }
}

dre_status dre_vindex_create(const char *factory, dre_quantize quantize, int32_t dim,
                             vindex **out) {
    *out = NULL;
    if (!factory || !factory[0]) factory = dre_vindex_default_factory(quantize);
    vindex *v = calloc(1, sizeof *v);
    if (!v) return dre_set_error(DRE_ERR_NOMEM, "index: out of memory");
    v->dim = dim;
    if (quantize != DRE_QUANTIZE_BINARY) {
        dre_status st = dre_index_faiss_create(factory, dim, &v->flt);
        if (st != DRE_OK) {
            free(v);
            return st;
        }
        *out = v;
        return DRE_OK;
    }
    if (dim <= 0 || dim % 8 != 0) {
        free(v);
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "a binary index needs a dimension that is a multiple of 8, not %d",
                             dim);
    }
    if (factory[0] != 'B') {
        free(v);
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "binary index factory \"%s\": FAISS's binary factories start with "
                             "B (BFlat, BHNSW32, BIVF1024...)",
                             factory);
    }
    char err[512] = "";
    if (dre_faiss_binary_create(factory, dim, &v->bin, err, sizeof err) != 0) {
        free(v);
        return dre_set_error(DRE_ERR_INDEX, "binary index factory \"%s\" (dim %d): %s", factory,
                             dim, err);
    }
    *out = v;
    return DRE_OK;
}

dre_status dre_vindex_read(const char *path, dre_quantize quantize, vindex **out) {
    *out = NULL;
    vindex *v = calloc(1, sizeof *v);
    if (!v) return dre_set_error(DRE_ERR_NOMEM, "index: out of memory");
    if (quantize != DRE_QUANTIZE_BINARY) {
        dre_status st = dre_index_faiss_read(path, &v->flt);
        if (st != DRE_OK) {
            free(v);
            return st;
        }
        v->dim = faiss_Index_d(v->flt);
        *out = v;
        return DRE_OK;
    }
    if (access(path, R_OK) != 0) {
        free(v);
        return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (faiss_read_index_binary_fname(path, 0, &v->bin) != 0) {
        free(v);
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "reading %s (a binary index)", path);
        return dre_index_faiss_error(what);
    }
    v->dim = faiss_IndexBinary_d(v->bin);
    *out = v;
    return DRE_OK;
}

dre_status dre_vindex_write(const vindex *v, const char *path) {
    return v->flt ? dre_index_faiss_write(v->flt, path)
                  : dre_index_faiss_write_binary(v->bin, path);
}

void dre_vindex_free(vindex *v) {
    if (!v) return;
    if (v->flt) faiss_Index_free(v->flt);
    if (v->bin) faiss_IndexBinary_free(v->bin);
    free(v);
}

int64_t dre_vindex_ntotal(const vindex *v) {
    return v->flt ? faiss_Index_ntotal(v->flt) : faiss_IndexBinary_ntotal(v->bin);
}

int32_t dre_vindex_dim(const vindex *v) { return v->dim; }

int dre_vindex_is_trained(const vindex *v) {
    return v->flt ? faiss_Index_is_trained(v->flt) : faiss_IndexBinary_is_trained(v->bin);
}

int64_t dre_vindex_train_size(const vindex *v) {
    if (v->flt) return dre_index_faiss_train_size(v->flt);
    if (faiss_IndexBinary_is_trained(v->bin)) return 0;
    int64_t n = 64 * (int64_t)dre_faiss_binary_nlist(v->bin);
    if (n < 65536) n = 65536;
    if (n > (1 << 20)) n = 1 << 20;
    return n;
}

/* x packed into sign bits, PACK_BLOCK vectors at a time, each block handed to fn. */
typedef int (*binary_fn)(FaissIndexBinary *ix, int64_t n, const uint8_t *codes);

static dre_status packed_blocks(vindex *v, int64_t n, const float *x, binary_fn fn,
                                const char *what) {
    const int32_t bytes = v->dim / 8;
    int64_t block = n < PACK_BLOCK ? n : PACK_BLOCK;
    uint8_t *codes = malloc((size_t)(block > 0 ? block : 1) * (size_t)bytes);
    if (!codes) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", what);
    dre_status st = DRE_OK;
    for (int64_t done = 0; done < n && st == DRE_OK; done += block) {
        int64_t m = n - done < block ? n - done : block;
        dre_vindex_pack_signs(x + done * v->dim, m, v->dim, codes);
        if (fn(v->bin, m, codes) != 0) st = dre_index_faiss_error(what);
    }
    free(codes);
    return st;
}

static int binary_train(FaissIndexBinary *ix, int64_t n, const uint8_t *codes) {
    return faiss_IndexBinary_train(ix, n, codes);
}

static int binary_add(FaissIndexBinary *ix, int64_t n, const uint8_t *codes) {
    return faiss_IndexBinary_add(ix, n, codes);
}

dre_status dre_vindex_train(vindex *v, int64_t n, const float *x) {
    if (v->flt) return dre_index_faiss_train(v->flt, n, x);
    size_t nlist = dre_faiss_binary_nlist(v->bin);
    if (nlist > 0 && (size_t)n < nlist)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "a binary IVF index of %zu lists needs at least %zu training "
                             "vectors, not %lld (use fewer lists, or BFlat)",
                             nlist, nlist, (long long)n);
    /* all at once: FAISS trains on what one call gives it */
    uint8_t *codes = malloc((size_t)(n > 0 ? n : 1) * (size_t)(v->dim / 8));
    if (!codes) return dre_set_error(DRE_ERR_NOMEM, "training: out of memory");
    dre_vindex_pack_signs(x, n, v->dim, codes);
    dre_status st = binary_train(v->bin, n, codes) == 0
                        ? DRE_OK
                        : dre_index_faiss_error("training the binary index");
    free(codes);
    return st;
}

void dre_vindex_reserve(vindex *v, int64_t n) {
    if (n > 0) (void)dre_faiss_reserve(v->flt, v->bin, n);
}

dre_status dre_vindex_add(vindex *v, int64_t n, const float *x) {
    if (n <= 0) return DRE_OK;
    if (v->flt) return dre_index_faiss_add(v->flt, n, x);
    return packed_blocks(v, n, x, binary_add, "adding vectors to the binary index");
}

/* FAISS's IndexFlat searches 20 or more queries at once with BLAS (its
 * distance_compute_blas_threshold), whose sums depend on where a vector sits in the
 * matrix product's blocks: the same vector scores a last bit differently in a batch than
 * alone, or in a shard than in the whole index. The candidates are therefore scored again
 * each on its own (compute_distance_subset: the per-vector inner product FAISS uses below
 * that threshold) and put in index/ranking.h's order (FAISS's k-heap's); a margin of extra
 * candidates keeps the near-ties at the k-th place. So a Flat search gives the same ids,
 * order and scores for a query alone or in a batch, and over shards or the whole index. */
#define FLAT_BLAS_QUERIES 20
#define FLAT_MARGIN 32

static dre_status search_flat(FaissIndex *flat, const float *queries, int64_t n, int32_t k,
                              float *scores, int64_t *rows) {
    int64_t total = faiss_Index_ntotal(flat);
    int64_t kk = n >= FLAT_BLAS_QUERIES ? (int64_t)k + (k > FLAT_MARGIN ? k : FLAT_MARGIN) : k;
    if (kk > total) kk = total;
    if (kk < 1) kk = 1;
    float *s = malloc((size_t)n * (size_t)kk * sizeof *s);
    int64_t *r = malloc((size_t)n * (size_t)kk * sizeof *r);
    ranked *list = malloc((size_t)kk * sizeof *list);
    dre_status st = s && r && list ? DRE_OK : dre_set_error(DRE_ERR_NOMEM, "search: out of memory");
    if (st == DRE_OK && faiss_Index_search(flat, n, queries, kk, s, r) != 0)
        st = dre_index_faiss_error("search");
    if (st == DRE_OK && n >= FLAT_BLAS_QUERIES && total > 0 &&
        faiss_IndexFlat_compute_distance_subset(flat, n, queries, kk, s, r) != 0)
        st = dre_index_faiss_error("search: scoring the candidates");
    for (int64_t q = 0; st == DRE_OK && q < n; q++) {
        int64_t m = 0;
        for (int64_t j = 0; j < kk; j++)
            if (r[q * kk + j] >= 0) list[m++] = (ranked){s[q * kk + j], r[q * kk + j]};
        m = dre_rank_vectors(list, m, k);
        for (int64_t j = 0; j < k; j++) {
            scores[q * k + j] = j < m ? (float)list[j].score : -INFINITY;
            rows[q * k + j] = j < m ? list[j].row : -1;
        }
    }
    free(s);
    free(r);
    free(list);
    return st;
}

dre_status dre_vindex_search(const vindex *v, const float *queries, int64_t n, int32_t k,
                             float *scores, int64_t *rows) {
    if (v->flt) {
        if (faiss_IndexFlat_cast(v->flt)) return search_flat(v->flt, queries, n, k, scores, rows);
        if (faiss_Index_search(v->flt, n, queries, k, scores, rows) != 0)
            return dre_index_faiss_error("search");
        return DRE_OK;
    }
    const int32_t bytes = v->dim / 8;
    uint8_t *codes = malloc((size_t)(n > 0 ? n : 1) * (size_t)bytes);
    int32_t *hamming = malloc((size_t)(n > 0 ? n : 1) * (size_t)k * sizeof *hamming);
    dre_status st = DRE_OK;
    if (!codes || !hamming) st = dre_set_error(DRE_ERR_NOMEM, "search: out of memory");
    const uint8_t *flat = dre_faiss_binary_flat_codes(v->bin);
    if (st == DRE_OK) {
        dre_vindex_pack_signs(queries, n, v->dim, codes);
        if (flat)
            dre_hamming_knn(flat, faiss_IndexBinary_ntotal(v->bin), bytes, codes, n, k,
                            HAMMING_AUTO, hamming, rows);
        else if (faiss_IndexBinary_search(v->bin, n, codes, k, hamming, rows) != 0)
            st = dre_index_faiss_error("binary search");
    }
    for (int64_t i = 0; st == DRE_OK && i < n * k; i++)
        scores[i] = rows[i] < 0 ? -INFINITY : (float)(v->dim - 2 * hamming[i]) / (float)v->dim;
    free(codes);
    free(hamming);
    return st;
}

int dre_vindex_param_get(vindex *v, const char *name, double *value) {
    if (v->flt) return dre_index_faiss_param_get(v->flt, name, value);
    return dre_faiss_binary_param(v->bin, name, value, 0);
}

dre_status dre_vindex_param_set(vindex *v, const char *name, double value) {
    if (v->flt) return dre_index_faiss_param_set(v->flt, name, value);
    if (dre_faiss_binary_param(v->bin, name, NULL, value) != 0)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "index parameter %s = %g: not supported by this binary index", name,
                             value);
    return DRE_OK;
}

dre_status dre_vindex_reconstruct(const vindex *v, int64_t first, int64_t n, float *out) {
    if (!v->flt)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "a binary index keeps sign bits only; its vectors are in its "
                             "rescoring file");
    if (n > 0 && faiss_Index_reconstruct_n(v->flt, first, n, out) != 0)
        return dre_index_faiss_error("reconstructing vectors");
    return DRE_OK;
}

const float *dre_vindex_flat_data(const vindex *v) {
    return v->flt ? dre_faiss_flat_data(v->flt) : NULL;
}
