/* index.c — an index folder: index.faiss (FAISS through its C API, ids = docstore rows),
 * docs.sqlite and meta.json. Reading side: dre_index_*; writing side (index.h): FAISS
 * indexes from factory strings and meta.json. */
#define _POSIX_C_SOURCE 200809L
#include "index.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "docstore.h"
#include "fileio.h"

struct dre_index {
    FaissIndex *faiss;
    docstore *docs;
    dre_index_info info;
};

/* ------------------------------------------------------------------ FAISS */

dre_status index_faiss_error(const char *what) {
    const char *msg = faiss_get_last_error();
    return set_error(DRE_ERR_INDEX, "%s: %s", what, msg && msg[0] ? msg : "FAISS error");
}

dre_status index_faiss_create(const char *factory, int32_t dim, FaissIndex **out) {
    *out = NULL;
    if (!factory || !factory[0]) factory = INDEX_DEFAULT_FACTORY;
    if (dim <= 0) return set_error(DRE_ERR_INVALID_ARG, "index dimension %d", dim);
    char what[256];
    snprintf(what, sizeof what, "index factory \"%s\" (dim %d)", factory, dim);
    if (faiss_index_factory(out, dim, factory, METRIC_INNER_PRODUCT) != 0) {
        *out = NULL;
        return index_faiss_error(what);
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

int64_t index_faiss_train_size(FaissIndex *ix) {
    if (faiss_Index_is_trained(ix)) return 0;
    FaissIndexIVF *ivf = find_ivf(ix);
    if (!ivf) return 65536;
    int64_t n = 64 * (int64_t)faiss_IndexIVF_nlist(ivf);
    if (n < 65536) n = 65536;
    if (n > (1 << 20)) n = 1 << 20;
    return n;
}

dre_status index_faiss_train(FaissIndex *ix, int64_t n, const float *x) {
    /* FAISS would refuse too, after printing its exception to stderr. */
    FaissIndexIVF *ivf = find_ivf(ix);
    if (ivf && (size_t)n < faiss_IndexIVF_nlist(ivf))
        return set_error(DRE_ERR_INVALID_ARG,
                         "an IVF index of %zu lists needs at least %zu training vectors, not %lld "
                         "(use fewer lists, or Flat, for a corpus this small)",
                         faiss_IndexIVF_nlist(ivf), faiss_IndexIVF_nlist(ivf), (long long)n);
    if (faiss_Index_train(ix, n, x) != 0) {
        char what[96];
        snprintf(what, sizeof what, "training the index on %lld vectors", (long long)n);
        return index_faiss_error(what);
    }
    return DRE_OK;
}

dre_status index_faiss_add(FaissIndex *ix, int64_t n, const float *x) {
    if (n <= 0) return DRE_OK;
    int rc;
    if (faiss_IndexIDMap_cast(ix) || faiss_IndexIDMap2_cast(ix)) {
        idx_t *ids = malloc((size_t)n * sizeof *ids);
        if (!ids) return set_error(DRE_ERR_NOMEM, "index add: out of memory");
        idx_t first = faiss_Index_ntotal(ix);
        for (int64_t i = 0; i < n; i++)
            ids[i] = first + i;
        rc = faiss_Index_add_with_ids(ix, n, x, ids);
        free(ids);
    } else {
        rc = faiss_Index_add(ix, n, x);
    }
    return rc == 0 ? DRE_OK : index_faiss_error("adding vectors to the index");
}

dre_status index_faiss_write(FaissIndex *ix, const char *path) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return set_error(DRE_ERR_INVALID_ARG, "path too long: %s", path);
    /* Our own FILE rather than faiss_write_index_fname: FAISS closes its file in a
     * destructor and only prints a failed fclose, so a full disk hit while flushing the
     * last buffered block would pass for a complete index. */
    FILE *f = fopen(tmp, "wb");
    if (!f) return set_error(DRE_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (faiss_write_index(ix, f) != 0) {
        fclose(f);
        unlink(tmp);
        char what[PATH_MAX + 16];
        snprintf(what, sizeof what, "writing %s", tmp);
        return index_faiss_error(what);
    }
    int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int err = errno;
    if (fclose(f) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    if (failed) {
        unlink(tmp);
        return set_error(DRE_ERR_IO, "%s: write: %s", tmp, strerror(err));
    }
    return rename_synced(tmp, path);
}

dre_status index_faiss_read(const char *path, FaissIndex **out) {
    *out = NULL;
    if (access(path, R_OK) != 0) return set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    if (faiss_read_index_fname(path, 0, out) != 0) {
        *out = NULL;
        char what[PATH_MAX + 16];
        snprintf(what, sizeof what, "reading %s", path);
        return index_faiss_error(what);
    }
    return DRE_OK;
}

/* ------------------------------------------------------------------ checksum */

#define CHECKSUM_P1 0x9E3779B185EBCA87ull
#define CHECKSUM_P2 0xC2B2AE3D27D4EB4Full
#define CHECKSUM_CHUNK (1 << 20) /* bytes read at a time; a multiple of 32 */

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t load_le64(const uint8_t *p) {
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--)
        w = w << 8 | p[i];
    return w;
}

/* A 64-bit checksum of a file, kept in meta.json so that dre_index_open notices an
 * index.faiss damaged on disk before FAISS reads it: FAISS checks sizes, not contents,
 * and a damaged HNSW graph crashes a search. Four lanes of acc = rotl(acc + w * P2, 31) *
 * P1 over little-endian 8-byte words (xxHash64's round), then the length and the tail
 * bytes, then a final mix. It catches corruption, not deliberate tampering. */
static dre_status file_checksum(const char *path, char hex[17]) {
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(CHECKSUM_CHUNK);
    if (!buf) {
        fclose(f);
        return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t acc[4] = {CHECKSUM_P1 + CHECKSUM_P2, CHECKSUM_P2, 0, 0 - CHECKSUM_P1};
    uint64_t total = 0;
    size_t n = 0, stripes = 0;
    for (;;) {
        size_t got;
        n = 0;
        while (n < CHECKSUM_CHUNK && (got = fread(buf + n, 1, CHECKSUM_CHUNK - n, f)) > 0)
            n += got;
        stripes = n / 32 * 32;
        for (size_t i = 0; i < stripes; i += 32)
            for (int lane = 0; lane < 4; lane++)
                acc[lane] = rotl64(acc[lane] + load_le64(buf + i + 8 * lane) * CHECKSUM_P2, 31) *
                            CHECKSUM_P1;
        total += n;
        if (n < CHECKSUM_CHUNK) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return set_error(DRE_ERR_IO, "%s: read error", path);
    }
    uint64_t h = rotl64(acc[0], 1) + rotl64(acc[1], 7) + rotl64(acc[2], 12) + rotl64(acc[3], 18);
    h ^= total;
    for (size_t i = stripes; i < n; i++)
        h = rotl64(h ^ (buf[i] * CHECKSUM_P1), 11) * CHECKSUM_P2;
    free(buf);
    h ^= h >> 33;
    h *= CHECKSUM_P2;
    h ^= h >> 29;
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return DRE_OK;
}

/* ------------------------------------------------------------------ meta.json */

const char *pooling_name(dre_pooling pooling) { return pooling == DRE_POOL_CLS ? "cls" : "mean"; }

dre_status index_meta_write(const char *dir, const dre_index_info *info) {
    char path[PATH_MAX];
    DRE_TRY(path_join(path, sizeof path, dir, INDEX_META_FILE));
    cJSON *root = cJSON_CreateObject();
    if (!root) return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    cJSON_AddNumberToObject(root, "format_version", info->format_version);
    cJSON_AddStringToObject(root, "model", info->model_name);
    cJSON_AddStringToObject(root, "weights_sha256", info->weights_sha256);
    cJSON_AddNumberToObject(root, "dim", info->dim);
    cJSON_AddStringToObject(root, "pooling", pooling_name(info->pooling));
    cJSON_AddBoolToObject(root, "normalize", info->normalize);
    cJSON_AddNumberToObject(root, "max_length", info->max_length);
    cJSON_AddNumberToObject(root, "count", (double)info->count);
    cJSON_AddStringToObject(root, "factory", info->factory);
    cJSON_AddStringToObject(root, "metric", "inner_product");
    /* The checksum of the index.faiss beside it, when there is one (see file_checksum). */
    char faiss_path[PATH_MAX], checksum[17];
    DRE_TRY(path_join(faiss_path, sizeof faiss_path, dir, INDEX_FAISS_FILE));
    if (access(faiss_path, F_OK) == 0) {
        dre_status st = file_checksum(faiss_path, checksum);
        if (st != DRE_OK) {
            cJSON_Delete(root);
            return st;
        }
        cJSON_AddStringToObject(root, "index_checksum", checksum);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    char *with_newline = realloc(text, len + 2);
    if (!with_newline) {
        free(text);
        return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    with_newline[len] = '\n';
    with_newline[len + 1] = '\0';
    dre_status st = write_file_atomic(path, with_newline, len + 1);
    free(with_newline);
    return st;
}

static dre_status meta_string(const cJSON *root, const char *path, const char *key, char *out,
                              size_t cap) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(item))
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a string", path, key);
    if (strlen(item->valuestring) >= cap)
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" is too long", path, key);
    strcpy(out, item->valuestring);
    return DRE_OK;
}

static dre_status meta_number(const cJSON *root, const char *path, const char *key, double *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item))
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a number", path, key);
    *out = item->valuedouble;
    return DRE_OK;
}

/* checksum receives meta.json's "index_checksum", "" where it has none (older folders). */
static dre_status meta_parse(const cJSON *root, const char *path, dre_index_info *info,
                             char checksum[17]) {
    if (!cJSON_IsObject(root)) return set_error(DRE_ERR_FORMAT, "%s: not a JSON object", path);
    double v = 0;
    DRE_TRY(meta_number(root, path, "format_version", &v));
    info->format_version = (int32_t)v;
    if (info->format_version < 1 || info->format_version > INDEX_FORMAT_VERSION)
        return set_error(DRE_ERR_UNSUPPORTED,
                         "%s: format_version %d (this dre reads up to %d; a newer dre wrote it?)",
                         path, info->format_version, INDEX_FORMAT_VERSION);
    DRE_TRY(meta_string(root, path, "model", info->model_name, sizeof info->model_name));
    DRE_TRY(meta_string(root, path, "weights_sha256", info->weights_sha256,
                        sizeof info->weights_sha256));
    DRE_TRY(meta_number(root, path, "dim", &v));
    info->dim = (int32_t)v;
    char pooling[16];
    DRE_TRY(meta_string(root, path, "pooling", pooling, sizeof pooling));
    if (!strcmp(pooling, "mean"))
        info->pooling = DRE_POOL_MEAN;
    else if (!strcmp(pooling, "cls"))
        info->pooling = DRE_POOL_CLS;
    else
        return set_error(DRE_ERR_FORMAT, "%s: unknown pooling \"%s\"", path, pooling);
    const cJSON *normalize = cJSON_GetObjectItemCaseSensitive(root, "normalize");
    if (!cJSON_IsBool(normalize))
        return set_error(DRE_ERR_FORMAT, "%s: \"normalize\" missing or not a boolean", path);
    info->normalize = cJSON_IsTrue(normalize);
    DRE_TRY(meta_number(root, path, "max_length", &v));
    info->max_length = (int32_t)v;
    DRE_TRY(meta_number(root, path, "count", &v));
    info->count = (int64_t)v;
    DRE_TRY(meta_string(root, path, "factory", info->factory, sizeof info->factory));
    if (info->dim <= 0 || info->count < 0)
        return set_error(DRE_ERR_FORMAT, "%s: dim %d, count %lld", path, info->dim,
                         (long long)info->count);
    checksum[0] = '\0';
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "index_checksum");
    if (sum) {
        if (!cJSON_IsString(sum) || strlen(sum->valuestring) != 16 ||
            strspn(sum->valuestring, "0123456789abcdef") != 16)
            return set_error(DRE_ERR_FORMAT, "%s: \"index_checksum\" is not 16 hex digits", path);
        strcpy(checksum, sum->valuestring);
    }
    return DRE_OK;
}

static dre_status meta_read(const char *dir, dre_index_info *info, char checksum[17]) {
    char path[PATH_MAX];
    DRE_TRY(path_join(path, sizeof path, dir, INDEX_META_FILE));
    memset(info, 0, sizeof *info);
    char *text = NULL;
    size_t len = 0;
    DRE_TRY(read_file(path, &text, &len));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    dre_status st;
    if (!root)
        st = set_error(DRE_ERR_FORMAT, "%s: malformed JSON at byte %zu", path,
                       end && end >= text ? (size_t)(end - text) : 0);
    else
        st = meta_parse(root, path, info, checksum);
    cJSON_Delete(root);
    free(text);
    return st;
}

dre_status index_meta_read(const char *dir, dre_index_info *info) {
    char checksum[17];
    return meta_read(dir, info, checksum);
}

/* ------------------------------------------------------------------ reading */

/* Explains a folder that holds no complete index: nothing, or an unfinished embed. */
static dre_status no_index_error(const char *dir, dre_status st) {
    char path[PATH_MAX];
    if (path_join(path, sizeof path, dir, INDEX_CHECKPOINT_FILE) == DRE_OK &&
        access(path, F_OK) == 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", dre_last_error());
        return set_error(st,
                         "%s: an embed into this folder has not finished (%s is there); run the "
                         "same `dre embed` again with --resume to complete it (%s)",
                         dir, INDEX_CHECKPOINT_FILE, why);
    }
    return st;
}

dre_status dre_index_open(const char *index_dir, dre_index **out) {
    if (!index_dir || !out) return set_error(DRE_ERR_INVALID_ARG, "dre_index_open: NULL argument");
    *out = NULL;
    struct stat st_dir;
    if (stat(index_dir, &st_dir) != 0)
        return set_error(DRE_ERR_IO, "%s: %s", index_dir, strerror(errno));
    if (!S_ISDIR(st_dir.st_mode))
        return set_error(DRE_ERR_IO, "%s: not a folder (an index is a folder)", index_dir);
    dre_index *ix = calloc(1, sizeof *ix);
    if (!ix) return set_error(DRE_ERR_NOMEM, "dre_index_open: out of memory");
    char path[PATH_MAX];
    char want[17], got[17];
    dre_status st = meta_read(index_dir, &ix->info, want);
    if (st == DRE_OK) st = path_join(path, sizeof path, index_dir, INDEX_FAISS_FILE);
    if (st == DRE_OK && want[0]) {
        st = file_checksum(path, got);
        if (st == DRE_OK && strcmp(got, want) != 0)
            st = set_error(DRE_ERR_INDEX,
                           "%s: damaged: its checksum is %s, but meta.json recorded %s when it "
                           "was written",
                           path, got, want);
    }
    if (st == DRE_OK) st = index_faiss_read(path, &ix->faiss);
    if (st == DRE_OK) st = path_join(path, sizeof path, index_dir, INDEX_DOCS_FILE);
    if (st == DRE_OK && access(path, R_OK) != 0)
        st = set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == DRE_OK) st = docstore_open(path, 0, &ix->docs);
    int64_t n_docs = 0;
    if (st == DRE_OK) st = docstore_count(ix->docs, &n_docs);
    if (st == DRE_OK) {
        int64_t n_vectors = faiss_Index_ntotal(ix->faiss);
        int dim = faiss_Index_d(ix->faiss);
        if (dim != ix->info.dim || n_vectors != ix->info.count || n_docs != ix->info.count)
            st = set_error(DRE_ERR_INDEX,
                           "%s: files disagree: meta.json says %lld vectors of dim %d, "
                           "index.faiss holds %lld of dim %d, docs.sqlite %lld documents",
                           index_dir, (long long)ix->info.count, ix->info.dim, (long long)n_vectors,
                           dim, (long long)n_docs);
    }
    if (st != DRE_OK) {
        dre_index_close(ix);
        return no_index_error(index_dir, st);
    }
    *out = ix;
    return DRE_OK;
}

void dre_index_close(dre_index *index) {
    if (!index) return;
    if (index->faiss) faiss_Index_free(index->faiss);
    docstore_close(index->docs);
    free(index);
}

const dre_index_info *dre_index_get_info(const dre_index *index) { return &index->info; }

dre_status dre_index_search(dre_index *index, const float *queries, int64_t n, int32_t k,
                            float *scores, int64_t *rows) {
    if (!index || (n > 0 && (!queries || !scores || !rows)) || n < 0)
        return set_error(DRE_ERR_INVALID_ARG, "dre_index_search: bad argument");
    if (k < 1) return set_error(DRE_ERR_INVALID_ARG, "dre_index_search: k = %d (must be >= 1)", k);
    if (n == 0) return DRE_OK;
    if (index->info.count == 0) {
        /* FAISS refuses some searches on empty indexes; the answer is simply "none". */
        for (int64_t i = 0; i < n * k; i++) {
            scores[i] = -INFINITY;
            rows[i] = -1;
        }
        return DRE_OK;
    }
    if (faiss_Index_search(index->faiss, n, queries, k, scores, rows) != 0)
        return index_faiss_error("search");
    return DRE_OK;
}

dre_status dre_index_set_param(dre_index *index, const char *name, double value) {
    if (!index || !name)
        return set_error(DRE_ERR_INVALID_ARG, "dre_index_set_param: NULL argument");
    FaissParameterSpace *space = NULL;
    if (faiss_ParameterSpace_new(&space) != 0) return index_faiss_error("parameter space");
    int rc = faiss_ParameterSpace_set_index_parameter(space, index->faiss, name, value);
    faiss_ParameterSpace_free(space);
    if (rc != 0) {
        const char *msg = faiss_get_last_error();
        return set_error(DRE_ERR_INVALID_ARG, "index parameter %s = %g: %s", name, value,
                         msg && msg[0] ? msg : "not supported by this index");
    }
    return DRE_OK;
}

dre_status dre_index_doc(dre_index *index, int64_t row, dre_doc *doc) {
    if (!index || !doc) return set_error(DRE_ERR_INVALID_ARG, "dre_index_doc: NULL argument");
    memset(doc, 0, sizeof *doc);
    if (row < 0 || row >= index->info.count)
        return set_error(DRE_ERR_INVALID_ARG, "row %lld out of range (index has %lld)",
                         (long long)row, (long long)index->info.count);
    return docstore_get(index->docs, row, doc);
}

void dre_doc_clear(dre_doc *doc) {
    if (!doc) return;
    free(doc->id);
    free(doc->title);
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

dre_status dre_index_vectors(dre_index *index, int64_t first, int64_t n, float *out) {
    if (!index || (n > 0 && !out) || first < 0 || n < 0 || first + n > index->info.count)
        return set_error(DRE_ERR_INVALID_ARG, "dre_index_vectors: rows [%lld, %lld) of %lld",
                         (long long)first, (long long)(first + n), (long long)index->info.count);
    if (n == 0) return DRE_OK;
    if (faiss_Index_reconstruct_n(index->faiss, first, n, out) != 0)
        return index_faiss_error("reconstructing vectors");
    return DRE_OK;
}
