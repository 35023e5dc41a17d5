/* serve/request.c — dre serve's request bodies, parsed and checked into a server_request;
 * every error names its field. Fuzzed on its own (tests/fuzz/fuzz_serve_request.c). */
#define _POSIX_C_SOURCE 200809L
#include "serve/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* ---------------------------------------------------------------- requests */

/* Whether s[0 .. n) is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF). */
int dre_server_valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned c = s[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n) return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

/* Formats err and returns status. */
static int fail(int status, char *err, size_t cap, const char *fmt, const char *field,
                const char *what) {
    snprintf(err, cap, fmt, field, what);
    return status;
}

/* The texts of a string or an array of strings (non-empty, at most max_inputs). */
static int read_texts(const cJSON *v, const char *field, int32_t max_inputs, server_request *r,
                      char *err, size_t cap) {
    const int one = cJSON_IsString(v);
    if (!one && !cJSON_IsArray(v))
        return fail(400, err, cap, "'%s' must be %s", field, "a string or an array of strings");
    const int n = one ? 1 : cJSON_GetArraySize(v);
    if (n == 0) return fail(400, err, cap, "'%s' %s", field, "must not be empty");
    if (n > max_inputs) {
        snprintf(err, cap, "'%s' has %d texts; this server takes at most %d a request", field, n,
                 max_inputs);
        return 422;
    }
    r->texts = calloc((size_t)n, sizeof *r->texts);
    if (!r->texts) return fail(400, err, cap, "'%s': %s", field, "out of memory");
    const cJSON *item = one ? v : v->child;
    for (int i = 0; i < n; i++, item = item->next) {
        if (!cJSON_IsString(item)) {
            snprintf(err, cap,
                     "'%s[%d]' must be a string (token arrays are not supported: send text)", field,
                     i);
            return 400;
        }
        const char *t = item->valuestring;
        if (!dre_server_valid_utf8((const unsigned char *)t, strlen(t))) {
            if (one)
                snprintf(err, cap, "'%s' is not valid UTF-8", field);
            else
                snprintf(err, cap, "'%s[%d]' is not valid UTF-8", field, i);
            return 400;
        }
        if (!(r->texts[i] = strdup(t)))
            return fail(400, err, cap, "'%s': %s", field, "out of memory");
        r->n_texts = i + 1;
    }
    return 0;
}

/* An optional integer field in [lo, hi]: 0 absent or set, else the status. */
static int read_int(const cJSON *root, const char *field, long lo, long hi, int32_t *out, char *err,
                    size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        snprintf(err, cap, "'%s' must be an integer in %ld..%ld", field, lo, hi);
        return 400;
    }
    *out = (int32_t)v->valuedouble;
    return 0;
}

static int read_number(const cJSON *root, const char *field, double lo, double hi, double *out,
                       char *err, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        snprintf(err, cap, "'%s' must be a number in %g..%g", field, lo, hi);
        return 400;
    }
    *out = v->valuedouble;
    return 0;
}

/* An optional string field given to parse (a dre_*_parse): 0, or 400. */
static int read_choice(const cJSON *root, const char *field, const char *choices, char *err,
                       size_t cap, dre_status (*parse)(const char *, void *), void *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v) return 0;
    if (!cJSON_IsString(v) || parse(v->valuestring, out) != DRE_OK)
        return fail(400, err, cap, "'%s' must be one of %s", field, choices);
    return 0;
}

static dre_status parse_mode(const char *s, void *out) { return dre_search_mode_parse(s, out); }
static dre_status parse_fusion(const char *s, void *out) { return dre_fusion_parse(s, out); }

static int parse_embeddings(const cJSON *root, int32_t max_inputs, int32_t dim, server_request *r,
                            char *err, size_t cap) {
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!input) return fail(400, err, cap, "'%s' %s", "input", "is required");
    int st = read_texts(input, "input", max_inputs, r, err, cap);
    if (st) return st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsString(model))
        return fail(400, err, cap, "'%s' must be %s", "model", "a string");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (format) {
        if (!cJSON_IsString(format) ||
            (strcmp(format->valuestring, "float") && strcmp(format->valuestring, "base64")))
            return fail(400, err, cap, "'%s' must be %s", "encoding_format",
                        "\"float\" or \"base64\"");
        r->base64 = !strcmp(format->valuestring, "base64");
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    if (dims && (!cJSON_IsNumber(dims) || dims->valuedouble != floor(dims->valuedouble) ||
                 dims->valuedouble < 1 || dims->valuedouble > dim)) {
        snprintf(err, cap, "'dimensions' must be an integer in 1..%d (the model's dimension)", dim);
        return 400;
    }
    if (dims) r->dimensions = (int32_t)dims->valuedouble;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    if (user && !cJSON_IsString(user))
        return fail(400, err, cap, "'%s' must be %s", "user", "a string");
    return 0;
}

static int parse_search(const cJSON *root, int32_t max_inputs, server_request *r, char *err,
                        size_t cap) {
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(root, "query");
    const cJSON *queries = cJSON_GetObjectItemCaseSensitive(root, "queries");
    if (!query == !queries)
        return fail(400, err, cap, "%s %s", "give 'query' (a string) or 'queries'",
                    "(an array of strings), one of them");
    if (query && !cJSON_IsString(query))
        return fail(400, err, cap, "'%s' must be %s", "query", "a string");
    if (queries && !cJSON_IsArray(queries))
        return fail(400, err, cap, "'%s' must be %s", "queries", "an array of strings");
    int st =
        read_texts(query ? query : queries, query ? "query" : "queries", max_inputs, r, err, cap);
    dre_search_options *o = &r->search;
    if (!st) st = read_int(root, "k", 1, 1000, &o->k, err, cap);
    if (!st) st = read_int(root, "depth", 1, 100000, &o->depth, err, cap);
    if (!st) st = read_number(root, "alpha", 0, 1, &o->alpha, err, cap);
    if (!st) st = read_number(root, "rrf_k", 0, 1e9, &o->rrf_k, err, cap);
    if (!st)
        st = read_choice(root, "mode", "\"dense\", \"bm25\", \"hybrid\"", err, cap, parse_mode,
                         &o->mode);
    if (!st)
        st = read_choice(root, "fusion", "\"rrf\", \"convex\"", err, cap, parse_fusion, &o->fusion);
    if (st) return st;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "return_text");
    if (text && !cJSON_IsBool(text))
        return fail(400, err, cap, "'%s' must be %s", "return_text", "true or false");
    r->return_text = cJSON_IsTrue(text);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
    if (params) {
        if (!cJSON_IsObject(params))
            return fail(400, err, cap, "'%s' must be %s", "params",
                        "an object of FAISS search parameters, e.g. {\"nprobe\": 16}");
        const cJSON *p;
        cJSON_ArrayForEach(p, params) {
            dre_search_param *to = &o->params[o->n_params];
            if (o->n_params == DRE_SEARCH_MAX_PARAMS || !cJSON_IsNumber(p) ||
                strlen(p->string) >= sizeof to->name) {
                snprintf(err, cap,
                         "'params' takes at most %d numeric FAISS parameters with short names",
                         DRE_SEARCH_MAX_PARAMS);
                return 400;
            }
            snprintf(to->name, sizeof to->name, "%s", p->string);
            to->value = p->valuedouble;
            o->n_params++;
        }
    }
    return 0;
}

int dre_server_request_parse(const char *body, size_t len, server_endpoint endpoint,
                             int32_t max_inputs, int32_t dim, server_request *out, char *err,
                             size_t err_cap) {
    memset(out, 0, sizeof *out);
    out->endpoint = endpoint;
    dre_search_options_init(&out->search);
    if (!dre_server_valid_utf8((const unsigned char *)body, len)) {
        snprintf(err, err_cap, "the body is not valid UTF-8");
        return 400;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        snprintf(err, err_cap, "the body is not valid JSON (or nests deeper than %d)",
                 CJSON_NESTING_LIMIT);
        return 400;
    }
    int st = 0;
    if (!cJSON_IsObject(root)) {
        snprintf(err, err_cap, "the body must be a JSON object");
        st = 400;
    } else if (endpoint == SERVER_EMBEDDINGS) {
        st = parse_embeddings(root, max_inputs, dim, out, err, err_cap);
    } else {
        st = parse_search(root, max_inputs, out, err, err_cap);
    }
    cJSON_Delete(root);
    if (st) dre_server_request_free(out);
    return st;
}

void dre_server_request_free(server_request *r) {
    if (!r) return;
    for (int32_t i = 0; i < r->n_texts; i++)
        free(r->texts[i]);
    free(r->texts);
    free(r->ids);
    free(r->cu_seqlens);
    r->texts = NULL;
    r->ids = NULL;
    r->cu_seqlens = NULL;
    r->n_texts = 0;
}
