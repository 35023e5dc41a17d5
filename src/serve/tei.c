/* serve/tei.c — Text Embeddings Inference's API (serve/tei.h): its request bodies checked and
 * tokenized, its replies and errors. Vectors print as /v1/embeddings prints them (cJSON's
 * doubles of the floats), so both APIs give the same digits. */
#define _POSIX_C_SOURCE 200809L
#include "serve/tei.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "text/tokenizer.h"

/* ---------------------------------------------------------------- errors */

int dre_tei_status(tei_error e) {
    switch (e) {
    case TEI_OK: return 200;
    case TEI_VALIDATION: return 413;
    case TEI_TOKENIZER: return 422;
    case TEI_EMPTY: return 400;
    case TEI_OVERLOADED: return 429;
    case TEI_BACKEND: return 424;
    case TEI_UNHEALTHY: return 503;
    }
    return 500;
}

const char *dre_tei_error_name(tei_error e) {
    switch (e) {
    case TEI_OK: return "";
    case TEI_VALIDATION: return "Validation";
    case TEI_TOKENIZER: return "Tokenizer";
    case TEI_EMPTY: return "Empty";
    case TEI_OVERLOADED: return "Overloaded";
    case TEI_BACKEND: return "Backend";
    case TEI_UNHEALTHY: return "Unhealthy";
    }
    return "Backend";
}

char *dre_tei_error_json_typed(const char *message, const char *type) {
    cJSON *root = cJSON_CreateObject();
    char *out = NULL;
    if (root && cJSON_AddStringToObject(root, "error", message) &&
        cJSON_AddStringToObject(root, "error_type", type))
        out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

char *dre_tei_error_json(const char *message, tei_error e) {
    return dre_tei_error_json_typed(message, dre_tei_error_name(e));
}

/* ---------------------------------------------------------------- requests */

typedef struct embed_options {
    int truncate, left;
    const char *prompt;
} embed_options;

static tei_error fail(tei_error e, char *err, size_t cap, const char *message) {
    snprintf(err, cap, "%s", message);
    return e;
}

/* An optional boolean field (null: the default). */
static tei_error read_bool(const cJSON *root, const char *field, int *out, char *err,
                           size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return TEI_OK;
    if (!cJSON_IsBool(v)) {
        snprintf(err, cap, "'%s' must be true or false", field);
        return TEI_VALIDATION;
    }
    *out = cJSON_IsTrue(v);
    return TEI_OK;
}

/* "inputs": a string or an array of them, copied into r->texts. */
static tei_error read_inputs(const cJSON *root, const tei_model *m, server_request *r, char *err,
                             size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!v) return fail(TEI_VALIDATION, err, cap, "missing field `inputs`");
    const int one = cJSON_IsString(v);
    if (!one && !cJSON_IsArray(v))
        return fail(TEI_VALIDATION, err, cap, "'inputs' must be a string or an array of strings");
    const int n = one ? 1 : cJSON_GetArraySize(v);
    if (n == 0) return fail(TEI_EMPTY, err, cap, "Batch is empty");
    if (n > m->max_inputs) {
        snprintf(err, cap, "batch size %d > maximum allowed batch size %d", n, m->max_inputs);
        return TEI_VALIDATION;
    }
    if (!(r->texts = calloc((size_t)n, sizeof *r->texts)))
        return fail(TEI_BACKEND, err, cap, "out of memory");
    const cJSON *item = one ? v : v->child;
    for (int i = 0; i < n; i++, item = item->next) {
        if (!cJSON_IsString(item)) {
            snprintf(err, cap, "'inputs[%d]' must be a string (token ids are not supported)", i);
            return TEI_VALIDATION;
        }
        if (!item->valuestring[0]) return fail(TEI_EMPTY, err, cap, "`inputs` cannot be empty");
        if (!(r->texts[i] = strdup(item->valuestring)))
            return fail(TEI_BACKEND, err, cap, "out of memory");
        r->n_texts = i + 1;
    }
    return TEI_OK;
}

static tei_error read_embed_options(const cJSON *root, const tei_model *m, server_request *r,
                                    embed_options *o, char *err, size_t cap) {
    r->normalize = 1;
    tei_error e = read_bool(root, "normalize", &r->normalize, err, cap);
    if (!e) e = read_bool(root, "truncate", &o->truncate, err, cap);
    if (e) return e;
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(root, "truncation_direction");
    if (dir && !cJSON_IsNull(dir)) {
        const char *d = cJSON_IsString(dir) ? dir->valuestring : "";
        if (strcmp(d, "Left") && strcmp(d, "left") && strcmp(d, "Right") && strcmp(d, "right"))
            return fail(TEI_VALIDATION, err, cap,
                        "'truncation_direction' must be \"Left\" or \"Right\"");
        o->left = d[0] == 'L' || d[0] == 'l';
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "prompt_name");
    if (!name || cJSON_IsNull(name)) return TEI_OK;
    if (!cJSON_IsString(name))
        return fail(TEI_VALIDATION, err, cap, "'prompt_name' must be a string or null");
    if (!strcmp(name->valuestring, "query"))
        o->prompt = m->query_prompt;
    else if (!strcmp(name->valuestring, "document"))
        o->prompt = m->doc_prompt;
    else {
        snprintf(err, cap,
                 "Prompt name `%.100s` was not found in the prompts of this model (\"query\", "
                 "\"document\")",
                 name->valuestring);
        return TEI_VALIDATION;
    }
    return TEI_OK;
}

/* Text i (its prompt before it, tokenized as one string, as sentence-transformers does) to
 * [CLS] wordpieces [SEP] at r->ids + *n_ids: the whole text, or cut to the max length when
 * truncating (Right keeps the first wordpieces, Left the last). */
static tei_error tokenize_one(const tei_model *m, const embed_options *o, server_request *r,
                              int32_t i, size_t *ids_cap, char *err, size_t cap) {
    const char *text = r->texts[i];
    const size_t prompt_len = o->prompt ? strlen(o->prompt) : 0, len = prompt_len + strlen(text);
    char *joined = malloc(len + 1);
    const size_t most = len + 2; /* a wordpiece takes at least one byte */
    const int32_t at = r->cu_seqlens[i];
    if (*ids_cap < (size_t)at + most) {
        *ids_cap = ((size_t)at + most) * 2;
        int32_t *ids = realloc(r->ids, *ids_cap * sizeof *ids);
        if (ids) r->ids = ids;
        if (!ids) *ids_cap = 0;
    }
    if (!joined || !*ids_cap) {
        free(joined);
        return fail(TEI_BACKEND, err, cap, "out of memory");
    }
    memcpy(joined, o->prompt ? o->prompt : "", prompt_len);
    memcpy(joined + prompt_len, text, len - prompt_len);
    int32_t *ids = r->ids + at, n = 0;
    int cut = 0;
    dre_tokenize_pieces(m->tok, joined, len, ids + 1, (int32_t)(most - 2), &n, &cut);
    free(joined);
    if (n + 2 > m->max_length) {
        if (!o->truncate) {
            snprintf(err, cap, "`inputs` must have less than %d tokens. Given: %d", m->max_length,
                     n + 2);
            return TEI_VALIDATION;
        }
        const int32_t keep = m->max_length - 2;
        if (o->left) memmove(ids + 1, ids + 1 + (n - keep), (size_t)keep * sizeof *ids);
        n = keep;
    }
    ids[0] = dre_tokenizer_cls_id(m->tok);
    ids[n + 1] = dre_tokenizer_sep_id(m->tok);
    r->cu_seqlens[i + 1] = at + n + 2;
    return TEI_OK;
}

static tei_error parse_embed(const cJSON *root, const tei_model *m, server_request *r, char *err,
                             size_t cap) {
    embed_options o = {0};
    tei_error e = read_inputs(root, m, r, err, cap);
    if (!e) e = read_embed_options(root, m, r, &o, err, cap);
    if (e) return e;
    if (!(r->cu_seqlens = calloc((size_t)r->n_texts + 1, sizeof *r->cu_seqlens)))
        return fail(TEI_BACKEND, err, cap, "out of memory");
    size_t ids_cap = 0;
    for (int32_t i = 0; !e && i < r->n_texts; i++)
        e = tokenize_one(m, &o, r, i, &ids_cap, err, cap);
    if (e == TEI_VALIDATION && r->n_texts > 1) { /* say which input */
        char one[256];
        snprintf(one, sizeof one, "%s", err);
        snprintf(err, cap, "%s (one of the %d inputs)", one, r->n_texts);
    }
    return e;
}

tei_error dre_tei_request_parse(const char *body, size_t len, server_endpoint endpoint,
                                const tei_model *m, server_request *out, int *status, char *err,
                                size_t err_cap) {
    memset(out, 0, sizeof *out);
    out->endpoint = endpoint;
    dre_search_options_init(&out->search);
    tei_error e = TEI_OK;
    cJSON *root = NULL;
    *status = 0;
    if (len == 0) {
        e = fail(TEI_EMPTY, err, err_cap, "the body is empty: send a JSON object with 'inputs'");
    } else if (!dre_server_valid_utf8((const unsigned char *)body, len) ||
               !(root = cJSON_ParseWithLength(body, len)) || !cJSON_IsObject(root)) {
        e = fail(TEI_VALIDATION, err, err_cap, "the body must be a JSON object (UTF-8)");
        *status = 422; /* as TEI's JSON extractor answers */
    } else if (endpoint == SERVER_TEI_EMBED) {
        e = parse_embed(root, m, out, err, err_cap);
    } else {
        e = read_inputs(root, m, out, err, err_cap);
        out->add_special_tokens = 1;
        if (!e) e = read_bool(root, "add_special_tokens", &out->add_special_tokens, err, err_cap);
    }
    cJSON_Delete(root);
    if (e) {
        if (!*status) *status = dre_tei_status(e);
        dre_server_request_free(out);
    }
    return e;
}

/* ---------------------------------------------------------------- replies */

char *dre_tei_embed_json(const float *vectors, int32_t n, int32_t dim) {
    cJSON *root = cJSON_CreateArray();
    int ok = root != NULL;
    for (int32_t i = 0; ok && i < n; i++) {
        cJSON *row = cJSON_CreateArray();
        ok = row && cJSON_AddItemToArray(root, row);
        for (int32_t j = 0; ok && j < dim; j++) {
            cJSON *x = cJSON_CreateNumber((double)vectors[(size_t)i * dim + j]);
            ok = x && cJSON_AddItemToArray(row, x);
        }
    }
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

/* Whether a wordpiece (its "##" dropped) is spelled at text[at ..) (ASCII case aside). */
static size_t spelled_at(const char *text, size_t len, size_t at, const char *piece) {
    if (!strncmp(piece, "##", 2) && piece[2]) piece += 2;
    const size_t n = strlen(piece);
    if (at + n > len) return 0;
    for (size_t k = 0; k < n; k++)
        if (tolower((unsigned char)text[at + k]) != tolower((unsigned char)piece[k])) return 0;
    return n;
}

/* The start of the UTF-8 character after the one at text[at] (end at most). */
static size_t next_char(const char *text, size_t at, size_t end) {
    if (at < end) at++;
    while (at < end && ((unsigned char)text[at] & 0xC0) == 0x80)
        at++;
    return at;
}

/* Byte offsets of the wordpieces of text[0, len), found by spelling each after the one
 * before, words (runs between ASCII whitespace) one at a time: a piece whose spelling the
 * normaliser changed (accents stripped, [UNK]) spans up to the next piece found (one
 * character when that is not found), or, the word's last, to its end: starts in order,
 * start <= stop <= len. */
static void piece_offsets(const dre_tokenizer *tok, const char *text, size_t len,
                          const int32_t *pieces, int32_t n, int32_t *word, int32_t *start,
                          int32_t *stop) {
    int32_t p = 0;
    size_t at = 0;
    while (p < n && at < len) {
        while (at < len && isspace((unsigned char)text[at]))
            at++;
        size_t end = at;
        while (end < len && !isspace((unsigned char)text[end]))
            end++;
        int32_t in_word = 0;
        int cut = 0;
        dre_tokenize_pieces(tok, text + at, end - at, word, (int32_t)(end - at + 1), &in_word,
                            &cut);
        for (int32_t k = 0; k < in_word && p < n; k++, p++) {
            const size_t m = spelled_at(text, end, at, dre_tokenizer_token(tok, pieces[p]));
            start[p] = (int32_t)at;
            if (m) {
                at += m;
            } else if (k + 1 < in_word && p + 1 < n) {
                /* up to where the next piece of this word is spelled, or one character when
                 * it is not (two [UNK]s in a row: CJK characters outside the vocabulary) */
                const char *next = dre_tokenizer_token(tok, pieces[p + 1]);
                const size_t one = next_char(text, at, end);
                size_t to = one;
                while (to < end && !spelled_at(text, end, to, next))
                    to = next_char(text, to, end);
                at = to < end ? to : one;
            } else { /* the word's last piece: the rest of the word */
                at = end;
            }
            stop[p] = (int32_t)at;
        }
        at = end;
    }
    for (; p < n; p++)
        start[p] = stop[p] = (int32_t)len;
}

/* One text's tokens as TEI lists them; 0, or -1 when out of memory. */
static int add_tokens(cJSON *arr, const char *text, int special_tokens, const dre_tokenizer *tok) {
    const size_t len = strlen(text);
    int32_t *pieces = malloc((len + 2) * sizeof *pieces), n = 0;
    int32_t *word = malloc((len + 2) * sizeof *word);
    int32_t *start = malloc((len + 2) * sizeof *start), *stop = malloc((len + 2) * sizeof *stop);
    int cut = 0, ok = pieces && word && start && stop;
    if (ok) {
        dre_tokenize_pieces(tok, text, len, pieces, (int32_t)len + 1, &n, &cut);
        piece_offsets(tok, text, len, pieces, n, word, start, stop);
    }
    for (int32_t k = special_tokens ? -1 : 0; ok && k < n + (special_tokens ? 1 : 0); k++) {
        const int special = k < 0 || k == n;
        const int32_t id = k < 0    ? dre_tokenizer_cls_id(tok)
                           : k == n ? dre_tokenizer_sep_id(tok)
                                    : pieces[k];
        cJSON *t = cJSON_CreateObject();
        ok = t && cJSON_AddItemToArray(arr, t) && cJSON_AddNumberToObject(t, "id", id);
        if (ok && special)
            ok = cJSON_AddStringToObject(t, "text", dre_tokenizer_token(tok, id)) &&
                 cJSON_AddTrueToObject(t, "special") && cJSON_AddNullToObject(t, "start") &&
                 cJSON_AddNullToObject(t, "stop");
        else if (ok) {
            char *slice = strndup(text + start[k], (size_t)(stop[k] - start[k]));
            ok = slice && cJSON_AddStringToObject(t, "text", slice) &&
                 cJSON_AddFalseToObject(t, "special") &&
                 cJSON_AddNumberToObject(t, "start", start[k]) &&
                 cJSON_AddNumberToObject(t, "stop", stop[k]);
            free(slice);
        }
    }
    free(pieces);
    free(word);
    free(start);
    free(stop);
    return ok ? 0 : -1;
}

char *dre_tei_tokenize_json(const server_request *r, const dre_tokenizer *tok) {
    cJSON *root = cJSON_CreateArray();
    int ok = root != NULL;
    for (int32_t i = 0; ok && i < r->n_texts; i++) {
        cJSON *arr = cJSON_CreateArray();
        ok = arr && cJSON_AddItemToArray(root, arr) &&
             add_tokens(arr, r->texts[i], r->add_special_tokens, tok) == 0;
    }
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}
