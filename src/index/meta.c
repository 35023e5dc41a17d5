/* index/meta.c — meta.json, the last word on what an index folder holds, and the
 * checksum of index.faiss it records. */
#define _POSIX_C_SOURCE 200809L
#include "index/index.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/docstore.h"
#include "index/shards.h"

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
dre_status dre_index_file_checksum(const char *path, char hex[17]) {
    FILE *f = fopen(path, "rb");
    if (!f) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(CHECKSUM_CHUNK);
    if (!buf) {
        fclose(f);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
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
        return dre_set_error(DRE_ERR_IO, "%s: read error", path);
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

const char *dre_pooling_name(dre_pooling pooling) {
    return pooling == DRE_POOL_CLS ? "cls" : "mean";
}

cJSON *dre_index_meta_object(const dre_index_info *info) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "format_version", info->format_version);
    cJSON_AddStringToObject(root, "model", info->model_name);
    cJSON_AddStringToObject(root, "weights_sha256", info->weights_sha256);
    cJSON_AddNumberToObject(root, "dim", info->dim);
    cJSON_AddStringToObject(root, "pooling", dre_pooling_name(info->pooling));
    cJSON_AddBoolToObject(root, "normalize", info->normalize);
    cJSON_AddNumberToObject(root, "max_length", info->max_length);
    cJSON_AddNumberToObject(root, "count", (double)info->count);
    if (info->chunk_tokens > 0) {
        cJSON_AddNumberToObject(root, "n_vectors", (double)info->n_vectors);
        cJSON_AddNumberToObject(root, "chunk_tokens", info->chunk_tokens);
        cJSON_AddNumberToObject(root, "chunk_overlap", info->chunk_overlap);
    }
    cJSON_AddStringToObject(root, "factory", info->factory);
    cJSON_AddStringToObject(root, "metric", "inner_product");
    if (info->quantize != DRE_QUANTIZE_NONE) {
        cJSON_AddStringToObject(root, "quantize", dre_quantize_name(info->quantize));
        cJSON_AddStringToObject(root, "rescore", dre_rescore_name(info->rescore));
        cJSON_AddNumberToObject(root, "rescore_factor", info->rescore_factor);
    }
    if (info->doc_precision[0])
        cJSON_AddStringToObject(root, "doc_precision", info->doc_precision);
    if (info->doc_prompt[0]) cJSON_AddStringToObject(root, "doc_prompt", info->doc_prompt);
    if (info->query_prompt[0]) cJSON_AddStringToObject(root, "query_prompt", info->query_prompt);
    if (info->bm25) {
        cJSON *bm25 = cJSON_AddObjectToObject(root, "bm25");
        if (bm25) {
            cJSON_AddStringToObject(bm25, "table", "docs_fts");
            cJSON_AddStringToObject(bm25, "tokenizer", DOCSTORE_BM25_TOKENIZER);
            cJSON_AddStringToObject(bm25, "ranking", DOCSTORE_BM25_RANKING);
            cJSON_AddStringToObject(bm25, "query", DOCSTORE_BM25_QUERY);
        }
    }
    return root;
}

dre_status dre_index_json_write(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    char *with_newline = realloc(text, len + 2);
    if (!with_newline) {
        free(text);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    with_newline[len] = '\n';
    with_newline[len + 1] = '\0';
    dre_status st = dre_write_file_atomic(path, with_newline, len + 1);
    free(with_newline);
    return st;
}

dre_status dre_index_meta_write(const char *dir, const dre_index_info *info) {
    char path[PATH_MAX], faiss_path[PATH_MAX], checksum[17];
    DRE_TRY(dre_path_join(path, sizeof path, dir, INDEX_META_FILE));
    DRE_TRY(dre_path_join(faiss_path, sizeof faiss_path, dir, INDEX_FAISS_FILE));
    cJSON *root = dre_index_meta_object(info);
    if (!root) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    /* The checksum of the index.faiss beside it, when there is one (see dre_index_file_checksum).
     */
    dre_status st = DRE_OK;
    if (access(faiss_path, F_OK) == 0) {
        st = dre_index_file_checksum(faiss_path, checksum);
        if (st == DRE_OK && !cJSON_AddStringToObject(root, "index_checksum", checksum))
            st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == DRE_OK) st = dre_index_json_write(path, root);
    cJSON_Delete(root);
    return st;
}

static dre_status meta_string(const cJSON *root, const char *path, const char *key, char *out,
                              size_t cap) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(item))
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a string", path, key);
    if (strlen(item->valuestring) >= cap)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" is too long", path, key);
    strcpy(out, item->valuestring);
    return DRE_OK;
}

static dre_status meta_number(const cJSON *root, const char *path, const char *key, double *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item))
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a number", path, key);
    *out = item->valuedouble;
    return DRE_OK;
}

dre_status dre_index_meta_parse(const cJSON *root, const char *path, int32_t max_format,
                                dre_index_info *info, char checksum[17]) {
    if (!cJSON_IsObject(root)) return dre_set_error(DRE_ERR_FORMAT, "%s: not a JSON object", path);
    double v = 0;
    DRE_TRY(meta_number(root, path, "format_version", &v));
    info->format_version = (int32_t)v;
    if (info->format_version == INDEX_FORMAT_SHARDED && max_format < INDEX_FORMAT_SHARDED)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "%s: the manifest of a sharded index (its shards are the shard-* "
                             "folders beside it), not one index folder's meta.json",
                             path);
    if (info->format_version < 1 || info->format_version > max_format)
        return dre_set_error(
            DRE_ERR_UNSUPPORTED,
            "%s: format_version %d (this dre reads up to %d; a newer dre wrote it?)", path,
            info->format_version, max_format);
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
        return dre_set_error(DRE_ERR_FORMAT, "%s: unknown pooling \"%s\"", path, pooling);
    const cJSON *normalize = cJSON_GetObjectItemCaseSensitive(root, "normalize");
    if (!cJSON_IsBool(normalize))
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"normalize\" missing or not a boolean", path);
    info->normalize = cJSON_IsTrue(normalize);
    DRE_TRY(meta_number(root, path, "max_length", &v));
    info->max_length = (int32_t)v;
    DRE_TRY(meta_number(root, path, "count", &v));
    info->count = (int64_t)v;
    DRE_TRY(meta_string(root, path, "factory", info->factory, sizeof info->factory));
    if (info->dim <= 0 || info->count < 0)
        return dre_set_error(DRE_ERR_FORMAT, "%s: dim %d, count %lld", path, info->dim,
                             (long long)info->count);
    info->n_vectors = info->count;
    if (cJSON_GetObjectItemCaseSensitive(root, "chunk_tokens")) { /* chunked (format 2) */
        if (info->format_version < 2)
            return dre_set_error(DRE_ERR_FORMAT, "%s: chunks in a format %d index", path,
                                 info->format_version);
        DRE_TRY(meta_number(root, path, "n_vectors", &v));
        info->n_vectors = (int64_t)v;
        DRE_TRY(meta_number(root, path, "chunk_tokens", &v));
        info->chunk_tokens = (int32_t)v;
        DRE_TRY(meta_number(root, path, "chunk_overlap", &v));
        info->chunk_overlap = (int32_t)v;
        if (info->n_vectors < info->count || info->chunk_tokens < 3 || info->chunk_overlap < 0 ||
            info->chunk_overlap >= info->chunk_tokens)
            return dre_set_error(DRE_ERR_FORMAT,
                                 "%s: n_vectors %lld for %lld documents, chunk_tokens %d, "
                                 "chunk_overlap %d",
                                 path, (long long)info->n_vectors, (long long)info->count,
                                 info->chunk_tokens, info->chunk_overlap);
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "quantize")) { /* format 3 */
        char name[16];
        DRE_TRY(meta_string(root, path, "quantize", name, sizeof name));
        if (dre_quantize_parse(name, &info->quantize) != DRE_OK)
            return dre_set_error(DRE_ERR_FORMAT, "%s: unknown quantization \"%s\"", path, name);
        DRE_TRY(meta_string(root, path, "rescore", name, sizeof name));
        if (dre_rescore_parse(name, &info->rescore) != DRE_OK)
            return dre_set_error(DRE_ERR_FORMAT, "%s: unknown rescoring vectors \"%s\"", path,
                                 name);
        DRE_TRY(meta_number(root, path, "rescore_factor", &v));
        info->rescore_factor = (int32_t)v;
        if (info->format_version < 3 || info->quantize == DRE_QUANTIZE_NONE ||
            info->rescore_factor < 0 || v != info->rescore_factor)
            return dre_set_error(DRE_ERR_FORMAT,
                                 "%s: format_version %d, quantize %s, rescore_factor %g", path,
                                 info->format_version, name, v);
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "doc_precision"))
        DRE_TRY(meta_string(root, path, "doc_precision", info->doc_precision,
                            sizeof info->doc_precision));
    if (cJSON_GetObjectItemCaseSensitive(root, "doc_prompt"))
        DRE_TRY(meta_string(root, path, "doc_prompt", info->doc_prompt, sizeof info->doc_prompt));
    if (cJSON_GetObjectItemCaseSensitive(root, "query_prompt"))
        DRE_TRY(
            meta_string(root, path, "query_prompt", info->query_prompt, sizeof info->query_prompt));
    const cJSON *bm25 = cJSON_GetObjectItemCaseSensitive(root, "bm25");
    if (bm25 && !cJSON_IsNull(bm25)) {
        const cJSON *tokenizer = cJSON_GetObjectItemCaseSensitive(bm25, "tokenizer");
        if (!cJSON_IsObject(bm25) || !cJSON_IsString(tokenizer))
            return dre_set_error(DRE_ERR_FORMAT, "%s: \"bm25\" is not an object with a tokenizer",
                                 path);
        if (strcmp(tokenizer->valuestring, DOCSTORE_BM25_TOKENIZER) != 0)
            return dre_set_error(DRE_ERR_UNSUPPORTED,
                                 "%s: BM25 tokenizer \"%s\" (this dre uses \"%s\")", path,
                                 tokenizer->valuestring, DOCSTORE_BM25_TOKENIZER);
        info->bm25 = 1;
    }
    checksum[0] = '\0';
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "index_checksum");
    if (sum) {
        if (!cJSON_IsString(sum) || strlen(sum->valuestring) != 16 ||
            strspn(sum->valuestring, "0123456789abcdef") != 16)
            return dre_set_error(DRE_ERR_FORMAT, "%s: \"index_checksum\" is not 16 hex digits",
                                 path);
        strcpy(checksum, sum->valuestring);
    }
    return DRE_OK;
}

dre_status dre_index_meta_read_checksum(const char *dir, dre_index_info *info, char checksum[17]) {
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, dir, INDEX_META_FILE));
    memset(info, 0, sizeof *info);
    char *text = NULL;
    size_t len = 0;
    DRE_TRY(dre_read_file(path, &text, &len));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    dre_status st;
    if (!root)
        st = dre_set_error(DRE_ERR_FORMAT, "%s: malformed JSON at byte %zu", path,
                           end && end >= text ? (size_t)(end - text) : 0);
    else
        st = dre_index_meta_parse(root, path, INDEX_FORMAT_VERSION, info, checksum);
    cJSON_Delete(root);
    free(text);
    return st;
}

dre_status dre_index_meta_read(const char *dir, dre_index_info *info) {
    char checksum[17];
    return dre_index_meta_read_checksum(dir, info, checksum);
}

dre_status dre_index_model_matches(const char *what, const dre_model_info *m, int32_t dim,
                                   const char *sha256, const dre_index_info *meta) {
    if (dim != m->hidden || strcmp(sha256, m->weights_sha256) != 0)
        return dre_set_error(
            DRE_ERR_MISMATCH,
            "%s was made with another model (dim %d, weights sha256 %.12s...); this "
            "model has dim %d, weights sha256 %.12s...",
            what, dim, sha256, m->hidden, m->weights_sha256);
    if (meta && (meta->pooling != m->pooling || meta->normalize != m->normalize ||
                 meta->max_length != m->max_length))
        return dre_set_error(
            DRE_ERR_MISMATCH,
            "%s: pooling %s, normalize %d, max_length %d; the model has %s, %d, %d", what,
            dre_pooling_name(meta->pooling), meta->normalize, meta->max_length,
            dre_pooling_name(m->pooling), m->normalize, m->max_length);
    return DRE_OK;
}
