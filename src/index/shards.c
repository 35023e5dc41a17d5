/* index/shards.c — a sharded index (index/shards.h): its manifest, written after the shards and
 * read before them, and the dre_index_* calls on it. Each shard is an ordinary dre_index
 * (index/index.c); this file maps its rows to global ones (shard r's rows follow those of the
 * shards before it) and merges the shards' answers as the one index would rank them: best
 * first, equal scores by global row, BM25 with statistics summed over the shards. */
#define _POSIX_C_SOURCE 200809L
#include "index/shards.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "index/index.h"
#include "index/ranking.h"

/* Queries merged at a time: bounds the rankeds held (shards x block x k). */
#define MERGE_QUERY_BLOCK 256

struct shard_set {
    int32_t n_shards;      /* in the manifest */
    int32_t first, n_open; /* the shards opened: first .. first + n_open - 1 */
    dre_index **shards;    /* [n_shards], NULL where not opened */
    char **dirs;           /* [n_shards]: each shard's folder */
    int64_t *first_row;    /* [n_shards + 1]: global row of each shard's first document */
    int64_t *first_vector; /* [n_shards + 1]: and of its first vector */
    const shards_remote *remote; /* the shards not opened, held elsewhere; NULL: none */
};

void dre_shards_set_remote(shard_set *set, const shards_remote *remote) { set->remote = remote; }

/* Whether global row `row` (of starts) is in a shard held elsewhere. */
static int is_remote(const shard_set *set, const int64_t *starts, int64_t row) {
    return set->remote && row >= 0 && row < starts[set->n_shards] &&
           (row < starts[set->first] || row >= starts[set->first + set->n_open]);
}

/* ------------------------------------------------------------------ shared fields */

/* The fields every shard of an index must share, by meta.json's names. */
static const char *const shared_fields[] = {
    "model",        "weights_sha256", "dim",      "pooling",    "normalize",
    "max_length",   "factory",        "bm25",     "doc_prompt", "query_prompt",
    "chunk_tokens", "chunk_overlap",  "quantize", "rescore",    "rescore_factor",
    "doc_precision"};
#define N_SHARED_FIELDS (sizeof shared_fields / sizeof *shared_fields)

/* Shared field f of info as text, the form two shards' values are compared (and shown) in. */
static void field_text(const dre_index_info *info, size_t f, char *out, size_t cap) {
    switch (f) {
    case 0: snprintf(out, cap, "\"%s\"", info->model_name); break;
    case 1: snprintf(out, cap, "%s", info->weights_sha256); break;
    case 2: snprintf(out, cap, "%d", info->dim); break;
    case 3: snprintf(out, cap, "%s", dre_pooling_name(info->pooling)); break;
    case 4: snprintf(out, cap, "%d", info->normalize); break;
    case 5: snprintf(out, cap, "%d", info->max_length); break;
    case 6: snprintf(out, cap, "\"%s\"", info->factory); break;
    case 7: snprintf(out, cap, "%d", info->bm25); break;
    case 8: snprintf(out, cap, "\"%s\"", info->doc_prompt); break;
    case 9: snprintf(out, cap, "\"%s\"", info->query_prompt); break;
    case 10: snprintf(out, cap, "%d", info->chunk_tokens); break;
    case 11: snprintf(out, cap, "%d", info->chunk_overlap); break;
    case 12: snprintf(out, cap, "%s", dre_quantize_name(info->quantize)); break;
    case 13: snprintf(out, cap, "%s", dre_rescore_name(info->rescore)); break;
    case 14: snprintf(out, cap, "%d", info->rescore_factor); break;
    default: snprintf(out, cap, "\"%s\"", info->doc_precision); break;
    }
}

/* DRE_ERR_MISMATCH naming both folders and the first shared field where a and b differ. */
static dre_status check_shared(const char *what_a, const dre_index_info *a, const char *what_b,
                               const dre_index_info *b) {
    char va[DRE_PROMPT_CAP + 8], vb[DRE_PROMPT_CAP + 8];
    for (size_t f = 0; f < N_SHARED_FIELDS; f++) {
        field_text(a, f, va, sizeof va);
        field_text(b, f, vb, sizeof vb);
        if (strcmp(va, vb) != 0)
            return dre_set_error(DRE_ERR_MISMATCH,
                                 "%s and %s disagree on \"%s\": %s and %s (the shards of an "
                                 "index are embedded alike)",
                                 what_a, what_b, shared_fields[f], va, vb);
    }
    return DRE_OK;
}

/* ------------------------------------------------------------------ the manifest */

static dre_status shard_path(const char *dir, const char *name, char *out, size_t cap) {
    return dre_path_join(out, cap, dir, name);
}

dre_status dre_shards_manifest_write(const char *dir, int32_t n_shards) {
    if (!dir || n_shards < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_shards_manifest_write: %d shards", n_shards);
    dre_index_info *infos = calloc((size_t)n_shards, sizeof *infos);
    char(*names)[64] = calloc((size_t)n_shards, sizeof *names);
    char path[PATH_MAX], first_path[PATH_MAX];
    cJSON *root = NULL;
    dre_status st =
        infos && names ? DRE_OK : dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", dir);
    for (int32_t r = 0; st == DRE_OK && r < n_shards; r++) {
        snprintf(names[r], sizeof names[r], INDEX_SHARD_DIR_FORMAT, r);
        st = shard_path(dir, names[r], path, sizeof path);
        if (st == DRE_OK) st = dre_index_meta_read(path, &infos[r]);
        if (st == DRE_OK && r == 0) snprintf(first_path, sizeof first_path, "%s", path);
        if (st == DRE_OK && r > 0) st = check_shared(first_path, &infos[0], path, &infos[r]);
    }
    if (st == DRE_OK) {
        dre_index_info total = infos[0];
        total.format_version = INDEX_FORMAT_SHARDED;
        total.count = total.n_vectors = 0;
        for (int32_t r = 0; r < n_shards; r++) {
            total.count += infos[r].count;
            total.n_vectors += infos[r].n_vectors;
        }
        total.n_shards = n_shards;
        root = dre_index_meta_object(&total);
        cJSON *list = NULL;
        /* meta.json writes n_vectors for chunked indexes alone; a manifest always has it */
        if (root && !cJSON_GetObjectItemCaseSensitive(root, "n_vectors"))
            cJSON_AddNumberToObject(root, "n_vectors", (double)total.n_vectors);
        if (root) list = cJSON_AddArrayToObject(root, "shards");
        for (int32_t r = 0; list && r < n_shards; r++) {
            cJSON *entry = cJSON_CreateObject();
            if (!entry || !cJSON_AddItemToArray(list, entry) ||
                !cJSON_AddStringToObject(entry, "dir", names[r]) ||
                !cJSON_AddNumberToObject(entry, "count", (double)infos[r].count) ||
                !cJSON_AddNumberToObject(entry, "n_vectors", (double)infos[r].n_vectors))
                list = NULL;
        }
        st = list ? shard_path(dir, INDEX_META_FILE, path, sizeof path)
                  : dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", dir);
        if (st == DRE_OK) st = dre_index_json_write(path, root);
    }
    cJSON_Delete(root);
    free(infos);
    free(names);
    return st;
}

/* The manifest's object, or NULL (an ordinary meta.json, none, or not JSON). */
static cJSON *manifest_json(const char *dir, char *path, size_t cap) {
    char *text = NULL;
    size_t len = 0;
    if (shard_path(dir, INDEX_META_FILE, path, cap) != DRE_OK ||
        dre_read_file(path, &text, &len) != DRE_OK)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "format_version");
    if (!cJSON_IsNumber(version) || version->valuedouble != INDEX_FORMAT_SHARDED) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int dre_shards_is_sharded(const char *dir) {
    char path[PATH_MAX];
    cJSON *root = dir ? manifest_json(dir, path, sizeof path) : NULL;
    cJSON_Delete(root);
    return root != NULL;
}

static dre_status count_of(const cJSON *obj, const char *path, const char *key, int64_t *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > (double)INT64_MAX ||
        item->valuedouble != (double)(int64_t)item->valuedouble)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a count", path, key);
    *out = (int64_t)item->valuedouble;
    return DRE_OK;
}

/* The manifest's "shards" list into m->shards, checked to add up to the totals. */
static dre_status read_entries(const cJSON *root, const char *path, shards_manifest *m) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "shards");
    const int n = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || n < 1)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"shards\" missing or empty", path);
    m->shards = calloc((size_t)n, sizeof *m->shards);
    if (!m->shards) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    m->info.n_shards = n;
    int64_t count = 0, n_vectors = 0;
    for (int r = 0; r < n; r++) {
        const cJSON *entry = cJSON_GetArrayItem(list, r);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "dir");
        shard_entry *e = &m->shards[r];
        /* one component inside the folder: a manifest never points elsewhere */
        if (!cJSON_IsString(name) || !name->valuestring[0] ||
            strlen(name->valuestring) >= sizeof e->dir || strchr(name->valuestring, '/') ||
            !strcmp(name->valuestring, ".") || !strcmp(name->valuestring, ".."))
            return dre_set_error(DRE_ERR_FORMAT, "%s: shard %d: \"dir\" is not a folder name", path,
                                 r);
        strcpy(e->dir, name->valuestring);
        DRE_TRY(count_of(entry, path, "count", &e->count));
        DRE_TRY(count_of(entry, path, "n_vectors", &e->n_vectors));
        count += e->count;
        n_vectors += e->n_vectors;
    }
    if (count != m->info.count || n_vectors != m->info.n_vectors)
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: the shards hold %lld documents and %lld vectors, the totals say "
                             "%lld and %lld",
                             path, (long long)count, (long long)n_vectors, (long long)m->info.count,
                             (long long)m->info.n_vectors);
    return DRE_OK;
}

dre_status dre_shards_manifest_read(const char *dir, shards_manifest *m) {
    memset(m, 0, sizeof *m);
    char path[PATH_MAX], checksum[17];
    cJSON *root = manifest_json(dir, path, sizeof path);
    if (!root)
        return dre_set_error(DRE_ERR_FORMAT, "%s: not the manifest of a sharded index", path);
    dre_status st = dre_index_meta_parse(root, path, INDEX_FORMAT_SHARDED, &m->info, checksum);
    if (st == DRE_OK) st = count_of(root, path, "n_vectors", &m->info.n_vectors);
    if (st == DRE_OK) st = read_entries(root, path, m);
    cJSON_Delete(root);
    if (st != DRE_OK) dre_shards_manifest_free(m);
    return st;
}

void dre_shards_manifest_free(shards_manifest *m) {
    if (!m) return;
    free(m->shards);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ open, close */

void dre_shards_close(shard_set *set) {
    if (!set) return;
    for (int32_t r = 0; r < set->n_shards; r++) {
        if (set->shards) dre_index_close(set->shards[r]);
        if (set->dirs) free(set->dirs[r]);
    }
    free(set->shards);
    free(set->dirs);
    free(set->first_row);
    free(set->first_vector);
    free(set);
}

/* Opens shard r and checks it against the manifest: an ordinary index with the manifest's
 * counts and shared fields. */
static dre_status open_shard(shard_set *set, const shards_manifest *m, const char *dir, int32_t r) {
    const shard_entry *e = &m->shards[r];
    char path[PATH_MAX], manifest[PATH_MAX];
    DRE_TRY(shard_path(dir, e->dir, path, sizeof path));
    DRE_TRY(shard_path(dir, INDEX_META_FILE, manifest, sizeof manifest));
    set->dirs[r] = strdup(path);
    if (!set->dirs[r]) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    dre_status st = dre_index_open(path, &set->shards[r]);
    if (st != DRE_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dre_last_error());
        return dre_set_error(st, "%s: shard %d of %d: %s", manifest, r, m->info.n_shards, why);
    }
    const dre_index_info *info = dre_index_get_info(set->shards[r]);
    if (info->n_shards != 0)
        return dre_set_error(DRE_ERR_INDEX, "%s: shard %d is itself a sharded index", manifest, r);
    if (info->count != e->count || info->n_vectors != e->n_vectors)
        return dre_set_error(DRE_ERR_INDEX,
                             "%s: files disagree: the manifest says shard %d (%s) holds %lld "
                             "documents and %lld vectors, it holds %lld and %lld",
                             manifest, r, path, (long long)e->count, (long long)e->n_vectors,
                             (long long)info->count, (long long)info->n_vectors);
    return check_shared(manifest, &m->info, path, info);
}

dre_status dre_shards_open(const char *dir, int32_t first, int32_t n, shard_set **out,
                           dre_index_info *info) {
    *out = NULL;
    shards_manifest m;
    DRE_TRY(dre_shards_manifest_read(dir, &m));
    const int32_t n_shards = m.info.n_shards;
    if (n < 0) n = n_shards - first;
    if (first < 0 || n < 1 || first > n_shards - n) {
        dre_shards_manifest_free(&m);
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: shards %d .. %d of %d", dir, first,
                             first + n - 1, n_shards);
    }
    shard_set *set = calloc(1, sizeof *set);
    dre_status st = set ? DRE_OK : dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", dir);
    if (st == DRE_OK) {
        set->n_shards = n_shards;
        set->first = first;
        set->n_open = n;
        set->shards = calloc((size_t)n_shards, sizeof *set->shards);
        set->dirs = calloc((size_t)n_shards, sizeof *set->dirs);
        set->first_row = calloc((size_t)n_shards + 1, sizeof *set->first_row);
        set->first_vector = calloc((size_t)n_shards + 1, sizeof *set->first_vector);
        if (!set->shards || !set->dirs || !set->first_row || !set->first_vector)
            st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", dir);
    }
    for (int32_t r = 0; st == DRE_OK && r < n_shards; r++) {
        set->first_row[r + 1] = set->first_row[r] + m.shards[r].count;
        set->first_vector[r + 1] = set->first_vector[r] + m.shards[r].n_vectors;
    }
    for (int32_t r = first; st == DRE_OK && r < first + n; r++)
        st = open_shard(set, &m, dir, r);
    if (st == DRE_OK) {
        *info = m.info;
        *out = set;
    } else {
        dre_shards_close(set);
    }
    dre_shards_manifest_free(&m);
    return st;
}

const dre_index_info *dre_shards_shard_info(const shard_set *set, int32_t i, const char **dir,
                                            int64_t *first_row, int64_t *first_vector) {
    if (i < 0 || i >= set->n_shards || !set->shards[i]) return NULL;
    if (dir) *dir = set->dirs[i];
    if (first_row) *first_row = set->first_row[i];
    if (first_vector) *first_vector = set->first_vector[i];
    return dre_index_get_info(set->shards[i]);
}

/* The open shard holding a global row, or DRE_ERR_INVALID_ARG. */
static dre_status find_shard(const shard_set *set, const int64_t *starts, int64_t row,
                             const char *what, int32_t *r) {
    if (row < 0 || row >= starts[set->n_shards])
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s %lld out of range (index has %lld)", what,
                             (long long)row, (long long)starts[set->n_shards]);
    *r = dre_shard_of_row(starts, set->n_shards, row);
    if (!set->shards[*r])
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s %lld is in shard %d, which this handle has not opened (shards "
                             "%d .. %d)",
                             what, (long long)row, *r, set->first, set->first + set->n_open - 1);
    return DRE_OK;
}

/* ------------------------------------------------------------------ rows */

dre_status dre_shards_doc(shard_set *set, int64_t row, dre_doc *doc) {
    if (is_remote(set, set->first_row, row)) return set->remote->doc(set->remote->ctx, row, doc);
    int32_t r = 0;
    DRE_TRY(find_shard(set, set->first_row, row, "row", &r));
    DRE_TRY(dre_index_doc(set->shards[r], row - set->first_row[r], doc));
    doc->row = row;
    return DRE_OK;
}

dre_status dre_shards_vectors(shard_set *set, int32_t dim, int64_t first, int64_t n, float *out) {
    for (int64_t row = first; row < first + n;) {
        int32_t r = 0;
        DRE_TRY(find_shard(set, set->first_vector, row, "vector row", &r));
        const int64_t end =
            set->first_vector[r + 1] < first + n ? set->first_vector[r + 1] : first + n;
        DRE_TRY(dre_index_vectors(set->shards[r], row - set->first_vector[r], end - row,
                                  out + (row - first) * dim));
        row = end;
    }
    return DRE_OK;
}

dre_status dre_shards_chunk(const shard_set *set, int64_t vector_row, int64_t *doc_row,
                            int32_t *chunk) {
    if (is_remote(set, set->first_vector, vector_row))
        return set->remote->chunk(set->remote->ctx, vector_row, doc_row, chunk);
    int32_t r = 0;
    DRE_TRY(find_shard(set, set->first_vector, vector_row, "vector row", &r));
    DRE_TRY(dre_index_chunk(set->shards[r], vector_row - set->first_vector[r], doc_row, chunk));
    *doc_row += set->first_row[r];
    return DRE_OK;
}

dre_status dre_shards_set_param(shard_set *set, const char *name, double value) {
    for (int32_t r = set->first; r < set->first + set->n_open; r++)
        DRE_TRY(dre_index_set_param(set->shards[r], name, value));
    return DRE_OK;
}

/* ------------------------------------------------------------------ merging */

/* Searches queries first .. first + m - 1 in every open shard (shard s's results at
 * s * m * k of scores and rows) and merges each query's. */
static dre_status search_block(shard_set *set, const float *queries, int64_t m, int32_t k,
                               const dre_search_param *params, int32_t n_params, float *sscores,
                               int64_t *srows, ranked *c, float *scores, int64_t *rows) {
    const int64_t block = m * k;
    for (int32_t s = 0; s < set->n_open; s++)
        DRE_TRY(dre_index_search_with(set->shards[set->first + s], queries, m, k, params, n_params,
                                      sscores + s * block, srows + s * block));
    for (int64_t q = 0; q < m; q++) {
        int64_t found = 0;
        for (int32_t s = 0; s < set->n_open; s++) {
            const int64_t offset = set->first_vector[set->first + s];
            for (int32_t j = 0; j < k; j++) {
                const int64_t at = s * block + q * k + j;
                if (srows[at] >= 0) c[found++] = (ranked){sscores[at], srows[at] + offset};
            }
        }
        const int32_t kept = dre_rank_vectors(c, found, k);
        for (int32_t j = 0; j < k; j++) {
            scores[q * k + j] = j < kept ? (float)c[j].score : -INFINITY;
            rows[q * k + j] = j < kept ? c[j].row : -1;
        }
    }
    return DRE_OK;
}

/* Merges the remote shards' k best into each query's k best of the open shards. */
static dre_status merge_remote(shard_set *set, const float *queries, int64_t n, int32_t k,
                               const dre_search_param *params, int32_t n_params, float *scores,
                               int64_t *rows) {
    float *rscores = malloc((size_t)(n * k) * sizeof *rscores);
    int64_t *rrows = malloc((size_t)(n * k) * sizeof *rrows);
    ranked *c = malloc((size_t)k * 2 * sizeof *c);
    dre_status st = rscores && rrows && c ? DRE_OK
                                          : dre_set_error(DRE_ERR_NOMEM, "search: out of memory");
    if (st == DRE_OK)
        st = set->remote->search(set->remote->ctx, queries, n, k, params, n_params, rscores, rrows);
    for (int64_t q = 0; st == DRE_OK && q < n; q++) {
        int64_t found = 0;
        for (int32_t j = 0; j < k; j++) {
            if (rows[q * k + j] >= 0) c[found++] = (ranked){scores[q * k + j], rows[q * k + j]};
            if (rrows[q * k + j] >= 0) c[found++] = (ranked){rscores[q * k + j], rrows[q * k + j]};
        }
        const int32_t kept = dre_rank_vectors(c, found, k);
        for (int32_t j = 0; j < k; j++) {
            scores[q * k + j] = j < kept ? (float)c[j].score : -INFINITY;
            rows[q * k + j] = j < kept ? c[j].row : -1;
        }
    }
    free(rscores);
    free(rrows);
    free(c);
    return st;
}

dre_status dre_shards_search(shard_set *set, const float *queries, int64_t n, int32_t k,
                             const dre_search_param *params, int32_t n_params, float *scores,
                             int64_t *rows) {
    const int32_t dim = dre_index_get_info(set->shards[set->first])->dim;
    const int64_t block = n < MERGE_QUERY_BLOCK ? n : MERGE_QUERY_BLOCK;
    const size_t per_shard = (size_t)(block * k);
    float *sscores = malloc(per_shard * (size_t)set->n_open * sizeof *sscores);
    int64_t *srows = malloc(per_shard * (size_t)set->n_open * sizeof *srows);
    ranked *c = malloc((size_t)k * (size_t)set->n_open * sizeof *c);
    dre_status st = DRE_OK;
    if (!sscores || !srows || !c)
        st = dre_set_error(DRE_ERR_NOMEM, "search: out of memory for %d shards' top %d",
                           set->n_open, k);
    for (int64_t first = 0; st == DRE_OK && first < n; first += block) {
        const int64_t m = n - first < block ? n - first : block;
        st = search_block(set, queries + first * dim, m, k, params, n_params, sscores, srows, c,
                          scores + first * k, rows + first * k);
    }
    free(sscores);
    free(srows);
    free(c);
    if (st == DRE_OK && set->remote) st = merge_remote(set, queries, n, k, params, n_params, scores, rows);
    return st;
}

/* ------------------------------------------------------------------ BM25 */

dre_status dre_shards_bm25_stats(shard_set *set, const char *query, bm25_stats *stats) {
    memset(stats, 0, sizeof *stats);
    for (int32_t r = set->first; r < set->first + set->n_open; r++) {
        bm25_stats one;
        dre_status st = dre_index_bm25_stats(set->shards[r], query, &one);
        if (st == DRE_OK) st = dre_bm25_stats_add(stats, &one);
        dre_bm25_stats_free(&one);
        if (st != DRE_OK) {
            dre_bm25_stats_free(stats);
            return st;
        }
    }
    if (!set->remote) return DRE_OK;
    bm25_stats other = {.n_phrases = stats->n_phrases};
    other.phrase_rows = calloc((size_t)(stats->n_phrases > 0 ? stats->n_phrases : 1),
                               sizeof *other.phrase_rows);
    dre_status st = other.phrase_rows ? DRE_OK
                                      : dre_set_error(DRE_ERR_NOMEM, "BM25: out of memory");
    if (st == DRE_OK) st = set->remote->bm25_counts(set->remote->ctx, query, &other);
    if (st == DRE_OK) st = dre_bm25_stats_add(stats, &other);
    dre_bm25_stats_free(&other);
    if (st != DRE_OK) dre_bm25_stats_free(stats);
    return st;
}

dre_status dre_shards_bm25_search_stats(shard_set *set, const char *query, const bm25_stats *stats,
                                        int32_t k, double *scores, int64_t *rows, int32_t *n) {
    *n = 0;
    double *sscores = malloc((size_t)k * sizeof *sscores);
    int64_t *srows = malloc((size_t)k * sizeof *srows);
    ranked *c = malloc((size_t)k * (size_t)(set->n_open + 1) * sizeof *c);
    dre_status st = DRE_OK;
    if (!sscores || !srows || !c)
        st = dre_set_error(DRE_ERR_NOMEM, "BM25 search: out of memory for %d shards' top %d",
                           set->n_open, k);
    int64_t found = 0;
    for (int32_t r = set->first; st == DRE_OK && r < set->first + set->n_open; r++) {
        int32_t got = 0;
        st = dre_index_bm25_search_stats(set->shards[r], query, stats, k, sscores, srows, &got);
        for (int32_t j = 0; st == DRE_OK && j < got; j++)
            c[found++] = (ranked){sscores[j], srows[j] + set->first_row[r]};
    }
    if (st == DRE_OK && set->remote) { /* the rest's k best, rows global already */
        int32_t got = 0;
        st = set->remote->bm25_search(set->remote->ctx, query, stats, k, sscores, srows, &got);
        for (int32_t j = 0; st == DRE_OK && j < got; j++)
            c[found++] = (ranked){sscores[j], srows[j]};
    }
    if (st == DRE_OK) {
        *n = dre_rank_bm25(c, found, k);
        for (int32_t j = 0; j < *n; j++) {
            scores[j] = c[j].score;
            rows[j] = c[j].row;
        }
    }
    free(sscores);
    free(srows);
    free(c);
    return st;
}
