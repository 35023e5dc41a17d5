/* index/checkpoint.c — embed-checkpoint.json: the state of an interrupted embed, as JSON. */
#define _POSIX_C_SOURCE 200809L
#include "index/checkpoint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/fileio.h"

#define CHECKPOINT_FORMAT_VERSION 1

/* The corpus formats as the checkpoint names them (text/corpus.c's names). */
static const char *const format_names[] = {"auto", "jsonl", "tsv", "lines"};

dre_status dre_checkpoint_write(const char *path, const checkpoint *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    cJSON_AddNumberToObject(root, "format_version", CHECKPOINT_FORMAT_VERSION);
    cJSON_AddNumberToObject(root, "offset", (double)c->offset);
    cJSON_AddNumberToObject(root, "line", (double)c->line);
    cJSON_AddNumberToObject(root, "count", (double)c->count);
    cJSON_AddNumberToObject(root, "base_count", (double)c->base_count);
    cJSON_AddNumberToObject(root, "vectors", (double)c->vectors);
    cJSON_AddNumberToObject(root, "base_vectors", (double)c->base_vectors);
    cJSON_AddNumberToObject(root, "chunk_tokens", c->chunk_tokens);
    cJSON_AddNumberToObject(root, "chunk_overlap", c->chunk_overlap);
    cJSON_AddNumberToObject(root, "skipped", (double)c->skipped);
    cJSON_AddNumberToObject(root, "tokens", (double)c->tokens);
    cJSON_AddNumberToObject(root, "window", (double)c->window_cap);
    cJSON_AddNumberToObject(root, "checkpoint_every", (double)c->every);
    cJSON_AddNumberToObject(root, "budget_tokens", (double)c->budget_tokens);
    cJSON_AddNumberToObject(root, "dim", c->dim);
    cJSON_AddStringToObject(root, "weights_sha256", c->weights_sha256);
    cJSON_AddStringToObject(root, "factory", c->factory);
    cJSON_AddStringToObject(root, "quantize", dre_quantize_name(c->quantize));
    cJSON_AddStringToObject(root, "rescore", dre_rescore_name(c->rescore));
    cJSON_AddNumberToObject(root, "rescore_factor", c->rescore_factor);
    cJSON_AddBoolToObject(root, "bm25", c->bm25);
    cJSON_AddStringToObject(root, "doc_prompt", c->doc_prompt);
    cJSON_AddStringToObject(root, "query_prompt", c->query_prompt);
    cJSON_AddStringToObject(root, "format", format_names[c->format]);
    cJSON_AddStringToObject(root, "id_field", c->id_field);
    cJSON_AddStringToObject(root, "title_field", c->title_field);
    cJSON_AddStringToObject(root, "text_field", c->text_field);
    cJSON_AddNumberToObject(root, "errors_bytes", (double)c->errors_bytes);
    cJSON_AddStringToObject(root, "errors_path", c->errors_path);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    dre_status st = dre_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static dre_status ck_number(const cJSON *root, const char *path, const char *key, int64_t *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item) || item->valuedouble < 0)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a count", path, key);
    *out = (int64_t)item->valuedouble;
    return DRE_OK;
}

static dre_status ck_string(const cJSON *root, const char *path, const char *key, char *out,
                            size_t cap) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= cap)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a string", path, key);
    strcpy(out, item->valuestring);
    return DRE_OK;
}

static dre_status checkpoint_parse(const cJSON *root, const char *path, checkpoint *c) {
    int64_t version = 0, dim = 0;
    DRE_TRY(ck_number(root, path, "format_version", &version));
    if (version != CHECKPOINT_FORMAT_VERSION)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "%s: checkpoint format %lld (expected %d)", path,
                             (long long)version, CHECKPOINT_FORMAT_VERSION);
    DRE_TRY(ck_number(root, path, "offset", &c->offset));
    DRE_TRY(ck_number(root, path, "line", &c->line));
    DRE_TRY(ck_number(root, path, "count", &c->count));
    DRE_TRY(ck_number(root, path, "base_count", &c->base_count));
    /* absent from checkpoints older than chunking: a vector per document */
    c->vectors = c->count;
    c->base_vectors = c->base_count;
    if (cJSON_GetObjectItemCaseSensitive(root, "vectors")) {
        int64_t chunk_tokens = 0, chunk_overlap = 0;
        DRE_TRY(ck_number(root, path, "vectors", &c->vectors));
        DRE_TRY(ck_number(root, path, "base_vectors", &c->base_vectors));
        DRE_TRY(ck_number(root, path, "chunk_tokens", &chunk_tokens));
        DRE_TRY(ck_number(root, path, "chunk_overlap", &chunk_overlap));
        if (chunk_tokens > INT32_MAX || chunk_overlap > INT32_MAX)
            return dre_set_error(DRE_ERR_FORMAT, "%s: chunk_tokens %lld", path,
                                 (long long)chunk_tokens);
        c->chunk_tokens = (int32_t)chunk_tokens;
        c->chunk_overlap = (int32_t)chunk_overlap;
    }
    DRE_TRY(ck_number(root, path, "skipped", &c->skipped));
    DRE_TRY(ck_number(root, path, "tokens", &c->tokens));
    DRE_TRY(ck_number(root, path, "window", &c->window_cap));
    DRE_TRY(ck_number(root, path, "checkpoint_every", &c->every));
    DRE_TRY(ck_number(root, path, "budget_tokens", &c->budget_tokens));
    DRE_TRY(ck_number(root, path, "dim", &dim));
    c->dim = (int32_t)dim;
    DRE_TRY(ck_string(root, path, "weights_sha256", c->weights_sha256, sizeof c->weights_sha256));
    DRE_TRY(ck_string(root, path, "factory", c->factory, sizeof c->factory));
    /* absent from older checkpoints: not quantized, no BM25, no prompts */
    if (cJSON_GetObjectItemCaseSensitive(root, "quantize")) {
        char name[16];
        int64_t factor = 0;
        DRE_TRY(ck_string(root, path, "quantize", name, sizeof name));
        if (dre_quantize_parse(name, &c->quantize) != DRE_OK)
            return dre_set_error(DRE_ERR_FORMAT, "%s: unknown quantization \"%s\"", path, name);
        DRE_TRY(ck_string(root, path, "rescore", name, sizeof name));
        if (strcmp(name, "none") != 0 && dre_rescore_parse(name, &c->rescore) != DRE_OK)
            return dre_set_error(DRE_ERR_FORMAT, "%s: unknown rescoring vectors \"%s\"", path,
                                 name);
        DRE_TRY(ck_number(root, path, "rescore_factor", &factor));
        c->rescore_factor = (int32_t)factor;
        if ((c->quantize == DRE_QUANTIZE_NONE) != (c->rescore == DRE_RESCORE_NONE))
            return dre_set_error(DRE_ERR_FORMAT, "%s: quantize %s with rescore %s", path,
                                 dre_quantize_name(c->quantize), dre_rescore_name(c->rescore));
    }
    c->bm25 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "bm25"));
    if (cJSON_GetObjectItemCaseSensitive(root, "doc_prompt"))
        DRE_TRY(ck_string(root, path, "doc_prompt", c->doc_prompt, sizeof c->doc_prompt));
    if (cJSON_GetObjectItemCaseSensitive(root, "query_prompt"))
        DRE_TRY(ck_string(root, path, "query_prompt", c->query_prompt, sizeof c->query_prompt));
    char format[16];
    DRE_TRY(ck_string(root, path, "format", format, sizeof format));
    c->format = DRE_CORPUS_AUTO;
    for (int f = DRE_CORPUS_JSONL; f <= DRE_CORPUS_LINES; f++)
        if (!strcmp(format, format_names[f])) c->format = (dre_corpus_format)f;
    if (c->format == DRE_CORPUS_AUTO)
        return dre_set_error(DRE_ERR_FORMAT, "%s: unknown corpus format \"%s\"", path, format);
    DRE_TRY(ck_string(root, path, "id_field", c->id_field, sizeof c->id_field));
    DRE_TRY(ck_string(root, path, "title_field", c->title_field, sizeof c->title_field));
    DRE_TRY(ck_string(root, path, "text_field", c->text_field, sizeof c->text_field));
    if (c->window_cap < 1 || c->every < 1 || c->dim < 1)
        return dre_set_error(DRE_ERR_FORMAT, "%s: window %lld, dim %d", path,
                             (long long)c->window_cap, c->dim);
    c->errors_bytes = -1; /* optional: the errors file is then only appended to */
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(root, "errors_bytes");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors_path");
    if (cJSON_IsNumber(bytes) && cJSON_IsString(errors) &&
        strlen(errors->valuestring) < sizeof c->errors_path) {
        c->errors_bytes = (int64_t)bytes->valuedouble;
        strcpy(c->errors_path, errors->valuestring);
    }
    return DRE_OK;
}

dre_status dre_checkpoint_read(const char *path, checkpoint *c) {
    memset(c, 0, sizeof *c);
    char *text = NULL;
    size_t len = 0;
    DRE_TRY(dre_read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
    dre_status st = root ? checkpoint_parse(root, path, c)
                         : dre_set_error(DRE_ERR_FORMAT, "%s: malformed JSON", path);
    cJSON_Delete(root);
    free(text);
    return st;
}

dre_status dre_checkpoint_names(checkpoint *c, const char *factory, const char *id_field,
                                const char *title_field, const char *text_field) {
    const char *fields[3] = {id_field ? id_field : "_id", title_field ? title_field : "title",
                             text_field ? text_field : "text"};
    if (strlen(factory) >= CHECKPOINT_FIELD_CAP || strlen(fields[0]) >= CHECKPOINT_FIELD_CAP ||
        strlen(fields[1]) >= CHECKPOINT_FIELD_CAP || strlen(fields[2]) >= CHECKPOINT_FIELD_CAP)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "index factory or field name longer than %d bytes",
                             CHECKPOINT_FIELD_CAP - 1);
    strcpy(c->factory, factory);
    strcpy(c->id_field, fields[0]);
    strcpy(c->title_field, fields[1]);
    strcpy(c->text_field, fields[2]);
    return DRE_OK;
}

dre_status dre_checkpoint_quantize(checkpoint *c, dre_quantize quantize, dre_rescore rescore,
                                   int32_t factor) {
    c->quantize = quantize;
    c->rescore = rescore;
    c->rescore_factor = factor > 0 ? factor : DRE_DEFAULT_RESCORE_FACTOR;
    switch (quantize) {
    case DRE_QUANTIZE_NONE:
        if (rescore != DRE_RESCORE_NONE || factor > 0)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "rescoring applies to quantized indexes only (--quantize int8 "
                                 "or binary)");
        c->rescore_factor = 0;
        return DRE_OK;
    case DRE_QUANTIZE_INT8:
        if (rescore == DRE_RESCORE_INT8)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "an int8 index rescores from fp32 vectors (--rescore fp32)");
        c->rescore = DRE_RESCORE_FP32;
        return DRE_OK;
    case DRE_QUANTIZE_BINARY:
        if (rescore == DRE_RESCORE_NONE) c->rescore = DRE_RESCORE_INT8;
        return DRE_OK;
    }
    return dre_set_error(DRE_ERR_INVALID_ARG, "quantization %d", (int)quantize);
}
