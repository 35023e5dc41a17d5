/* index/faiss.c — FAISS indexes through FAISS's C API: made from factory strings
 * (inner product), trained, filled, written and read. */
#define _POSIX_C_SOURCE 200809L
#include "index/index.h"

#include <errno.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"

dre_status dre_index_faiss_error(const char *what) {
    const char *msg = faiss_get_last_error();
    return dre_set_error(DRE_ERR_INDEX, "%s: %s", what, msg && msg[0] ? msg : "FAISS error");
}

dre_status dre_index_faiss_create(const char *factory, int32_t dim, FaissIndex **out) {
    *out = NULL;
    if (!factory || !factory[0]) factory = INDEX_DEFAULT_FACTORY;
    if (dim <= 0) return dre_set_error(DRE_ERR_INVALID_ARG, "index dimension %d", dim);
    char what[256];
    snprintf(what, sizeof what, "index factory \"%s\" (dim %d)", factory, dim);
    if (faiss_index_factory(out, dim, factory, METRIC_INNER_PRODUCT) != 0) {
        *out = NULL;
        return dre_index_faiss_error(what);
    }
    return DRE_OK;
}

/* The IVF index inside ix (itself, or under a pre-transform such as PCA), or NULL. */
static FaissIndexIVF *find_ivf(FaissIndex *ix) {
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(ix);
    if (ivf) return ivf;
    FaissIndexPreTransform *pt = faiss_IndexPreTransform_cast(ix);
    return pt ? faiss_IndexIVF_cast(faiss_IndexPreTransform_index(pt)) : NULL;
}

int64_t dre_index_faiss_train_size(FaissIndex *ix) {
    if (faiss_Index_is_trained(ix)) return 0;
    FaissIndexIVF *ivf = find_ivf(ix);
    if (!ivf) return 65536;
    int64_t n = 64 * (int64_t)faiss_IndexIVF_nlist(ivf);
    if (n < 65536) n = 65536;
    if (n > (1 << 20)) n = 1 << 20;
    return n;
}

dre_status dre_index_faiss_train(FaissIndex *ix, int64_t n, const float *x) {
    /* FAISS would refuse too, after printing its exception to stderr. */
    FaissIndexIVF *ivf = find_ivf(ix);
    if (ivf && (size_t)n < faiss_IndexIVF_nlist(ivf))
        return dre_set_error(
            DRE_ERR_INVALID_ARG,
            "an IVF index of %zu lists needs at least %zu training vectors, not %lld "
            "(use fewer lists, or Flat, for a corpus this small)",
            faiss_IndexIVF_nlist(ivf), faiss_IndexIVF_nlist(ivf), (long long)n);
    if (faiss_Index_train(ix, n, x) != 0) {
        char what[96];
        snprintf(what, sizeof what, "training the index on %lld vectors", (long long)n);
        return dre_index_faiss_error(what);
    }
    return DRE_OK;
}

dre_status dre_index_faiss_add(FaissIndex *ix, int64_t n, const float *x) {
    if (n <= 0) return DRE_OK;
    int rc;
    if (faiss_IndexIDMap_cast(ix) || faiss_IndexIDMap2_cast(ix)) {
        idx_t *ids = malloc((size_t)n * sizeof *ids);
        if (!ids) return dre_set_error(DRE_ERR_NOMEM, "index add: out of memory");
        idx_t first = faiss_Index_ntotal(ix);
        for (int64_t i = 0; i < n; i++)
            ids[i] = first + i;
        rc = faiss_Index_add_with_ids(ix, n, x, ids);
        free(ids);
    } else {
        rc = faiss_Index_add(ix, n, x);
    }
    return rc == 0 ? DRE_OK : dre_index_faiss_error("adding vectors to the index");
}

/* Writes a FAISS index (float or binary: the writer given) to path.tmp, then renames it. Our
 * own FILE rather than FAISS's *_fname calls: FAISS closes its file in a destructor and only
 * prints a failed fclose, so a full disk hit while flushing the last buffered block would pass
 * for a complete index. */
static dre_status write_atomically(const char *path, int (*write)(const void *ix, FILE *f),
                                   const void *ix) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return dre_set_error(DRE_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (write(ix, f) != 0) {
        fclose(f);
        unlink(tmp);
        char what[PATH_MAX + 16];
        snprintf(what, sizeof what, "writing %s", tmp);
        return dre_index_faiss_error(what);
    }
    int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int err = errno;
    if (fclose(f) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    if (failed) {
        unlink(tmp);
        return dre_set_error(DRE_ERR_IO, "%s: write: %s", tmp, strerror(err));
    }
    return dre_rename_synced(tmp, path);
}

static int write_float(const void *ix, FILE *f) { return faiss_write_index(ix, f); }
static int write_binary(const void *ix, FILE *f) { return faiss_write_index_binary(ix, f); }

dre_status dre_index_faiss_write(FaissIndex *ix, const char *path) {
    return write_atomically(path, write_float, ix);
}

dre_status dre_index_faiss_write_binary(FaissIndexBinary *ix, const char *path) {
    return write_atomically(path, write_binary, ix);
}

dre_status dre_index_faiss_read(const char *path, FaissIndex **out) {
    *out = NULL;
    if (access(path, R_OK) != 0) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    if (faiss_read_index_fname(path, 0, out) != 0) {
        *out = NULL;
        char what[PATH_MAX + 16];
        snprintf(what, sizeof what, "reading %s", path);
        return dre_index_faiss_error(what);
    }
    return DRE_OK;
}

dre_status dre_index_faiss_param_set(FaissIndex *ix, const char *name, double value) {
    FaissParameterSpace *space = NULL;
    if (faiss_ParameterSpace_new(&space) != 0) return dre_index_faiss_error("parameter space");
    int rc = faiss_ParameterSpace_set_index_parameter(space, ix, name, value);
    faiss_ParameterSpace_free(space);
    if (rc != 0) {
        const char *msg = faiss_get_last_error();
        return dre_set_error(DRE_ERR_INVALID_ARG, "index parameter %s = %g: %s", name, value,
                             msg && msg[0] ? msg : "not supported by this index");
    }
    return DRE_OK;
}
