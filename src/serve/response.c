/* serve/response.c — dre serve's response bodies: embeddings (floats or base64), search
 * results with their documents, errors; cJSON builds them, so strings are escaped as JSON
 * wants. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "serve/request.h"

static char *base64_of(const unsigned char *data, size_t n) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        const unsigned v = (unsigned)data[i] << 16 | (i + 1 < n ? (unsigned)data[i + 1] << 8 : 0) |
                           (i + 2 < n ? data[i + 2] : 0);
        out[o++] = table[v >> 18 & 63];
        out[o++] = table[v >> 12 & 63];
        out[o++] = i + 1 < n ? table[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? table[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Adds one embedding (d floats, renormalised when cut) to item. 0 on success. */
static int add_embedding(cJSON *item, const float *v, int32_t dim, int32_t d, int base64) {
    float *row = malloc((size_t)d * sizeof *row);
    if (!row) return -1;
    double sq = 0;
    for (int32_t j = 0; j < d; j++)
        sq += (double)v[j] * v[j];
    const double scale = d < dim && sq > 0 ? 1.0 / sqrt(sq) : 1.0;
    for (int32_t j = 0; j < d; j++)
        row[j] = (float)(v[j] * scale);
    int rc = -1;
    if (base64) { /* little-endian float32 (the hosts dre runs on are little-endian) */
        char *b = base64_of((const unsigned char *)row, (size_t)d * sizeof *row);
        if (b && cJSON_AddStringToObject(item, "embedding", b)) rc = 0;
        free(b);
    } else {
        cJSON *arr = cJSON_AddArrayToObject(item, "embedding");
        rc = arr ? 0 : -1;
        for (int32_t j = 0; rc == 0 && j < d; j++) {
            cJSON *x = cJSON_CreateNumber((double)row[j]);
            if (!x || !cJSON_AddItemToArray(arr, x)) rc = -1;
        }
    }
    free(row);
    return rc;
}

char *dre_server_embeddings_json(const server_request *r, const float *vectors, int32_t dim,
                                 const char *model, int64_t tokens) {
    cJSON *root = cJSON_CreateObject();
    int ok = root && cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = ok ? cJSON_AddArrayToObject(root, "data") : NULL;
    ok = ok && data;
    const int32_t d = r->dimensions > 0 ? r->dimensions : dim;
    for (int32_t i = 0; ok && i < r->n_texts; i++) {
        cJSON *item = cJSON_CreateObject();
        ok = item && cJSON_AddItemToArray(data, item) &&
             cJSON_AddStringToObject(item, "object", "embedding") &&
             cJSON_AddNumberToObject(item, "index", i) &&
             add_embedding(item, vectors + (size_t)i * dim, dim, d, r->base64) == 0;
    }
    cJSON *usage = ok ? cJSON_CreateObject() : NULL;
    ok = ok && usage && cJSON_AddStringToObject(root, "model", model) &&
         cJSON_AddItemToObject(root, "usage", usage) &&
         cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens) &&
         cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

/* One hit as an object of the results array. 0 on success, -1 out of memory, -2 docstore. */
static int add_hit(cJSON *arr, dre_index *index, const dre_hit *h, int rank, int with_text) {
    dre_doc doc;
    if (dre_index_doc(index, h->row, &doc) != DRE_OK) return -2;
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddItemToArray(arr, o) && cJSON_AddNumberToObject(o, "rank", rank) &&
             cJSON_AddStringToObject(o, "id", doc.id ? doc.id : "") &&
             cJSON_AddNumberToObject(o, "score", h->score) &&
             cJSON_AddStringToObject(o, "title", doc.title ? doc.title : "");
    if (ok && with_text) ok = cJSON_AddStringToObject(o, "text", doc.text ? doc.text : "") != NULL;
    if (ok && h->dense_rank > 0)
        ok = cJSON_AddNumberToObject(o, "dense_rank", h->dense_rank) &&
             cJSON_AddNumberToObject(o, "dense_score", h->dense_score);
    if (ok && h->bm25_rank > 0)
        ok = cJSON_AddNumberToObject(o, "bm25_rank", h->bm25_rank) &&
             cJSON_AddNumberToObject(o, "bm25_score", h->bm25_score);
    dre_doc_clear(&doc);
    return ok ? 0 : -1;
}

char *dre_server_search_json(const server_request *r, dre_index *index, const dre_hit *hits,
                             const int32_t *n_hits) {
    cJSON *root = cJSON_CreateObject();
    cJSON *results = root ? cJSON_AddArrayToObject(root, "results") : NULL;
    int rc = results ? 0 : -1;
    for (int32_t q = 0; rc == 0 && q < r->n_texts; q++) {
        cJSON *one = cJSON_CreateObject();
        cJSON *arr = NULL;
        if (!one || !cJSON_AddItemToArray(results, one) ||
            !cJSON_AddStringToObject(one, "query", r->texts[q]) ||
            !(arr = cJSON_AddArrayToObject(one, "hits"))) {
            rc = -1;
            break;
        }
        for (int32_t i = 0; rc == 0 && i < n_hits[q]; i++)
            rc = add_hit(arr, index, hits + (size_t)q * r->search.k + i, i + 1, r->return_text);
    }
    char *out = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == -1) dre_set_error(DRE_ERR_NOMEM, "search response: out of memory");
    return out;
}

char *dre_server_error_json(const char *message, const char *type) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = root ? cJSON_AddObjectToObject(root, "error") : NULL;
    char *out = NULL;
    if (e && cJSON_AddStringToObject(e, "message", message) &&
        cJSON_AddStringToObject(e, "type", type))
        out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
