/* text/queries.c — reads the queries of an evaluation: BEIR JSONL ({"_id", "text"}), TSV
 * (id <tab> text, header optional) or plain lines (id = line number), chosen by the
 * file's extension. Every error names the file and line. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

typedef enum { FORMAT_JSONL, FORMAT_TSV, FORMAT_LINES } queries_format;

struct dre_queries {
    size_t n, cap;
    char **ids;
    char **texts;
    long *lines; /* 1-based line of each query, for the duplicate message */
};

static queries_format format_of(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return FORMAT_LINES;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json")) return FORMAT_JSONL;
    if (!strcasecmp(dot, ".tsv")) return FORMAT_TSV;
    return FORMAT_LINES;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r') return 0;
    return 1;
}

/* Takes ownership of id and text (freed on failure). */
static dre_status push(dre_queries *q, char *id, char *text, long line, const char *path) {
    if (!id || !text) {
        free(id);
        free(text);
        return dre_set_error(DRE_ERR_NOMEM, "%s:%ld: out of memory", path, line);
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        char **ids = realloc(q->ids, cap * sizeof *ids);
        if (ids) q->ids = ids;
        char **texts = realloc(q->texts, cap * sizeof *texts);
        if (texts) q->texts = texts;
        long *lines = realloc(q->lines, cap * sizeof *lines);
        if (lines) q->lines = lines;
        if (!ids || !texts || !lines) {
            free(id);
            free(text);
            return dre_set_error(DRE_ERR_NOMEM, "%s:%ld: out of memory", path, line);
        }
        q->cap = cap;
    }
    q->ids[q->n] = id;
    q->texts[q->n] = text;
    q->lines[q->n] = line;
    q->n++;
    return DRE_OK;
}

/* {"_id": "q1", "text": "..."}; other fields (BEIR's "metadata") are ignored. An
 * integer _id is accepted and kept as its decimal form. */
static dre_status parse_jsonl(dre_queries *q, const char *path, long line, const char *s) {
    cJSON *obj = cJSON_ParseWithOpts(s, NULL, 1);
    if (!obj || !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: malformed JSON (expected an object per line)",
                             path, line);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "_id");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
    char number[32];
    const char *id_str = NULL;
    if (cJSON_IsString(id)) {
        id_str = id->valuestring;
    } else if (cJSON_IsNumber(id) && dre_integer_id_text(id->valuedouble, number, sizeof number)) {
        id_str = number;
    }
    dre_status st = DRE_OK;
    if (!id)
        st = dre_set_error(DRE_ERR_FORMAT, "%s:%ld: missing field \"_id\"", path, line);
    else if (!id_str || !id_str[0])
        st =
            dre_set_error(DRE_ERR_FORMAT, "%s:%ld: \"_id\" must be a non-empty string", path, line);
    else if (!text)
        st = dre_set_error(DRE_ERR_FORMAT, "%s:%ld: missing field \"text\"", path, line);
    else if (!cJSON_IsString(text))
        st = dre_set_error(DRE_ERR_FORMAT, "%s:%ld: \"text\" must be a string", path, line);
    else
        st = push(q, strdup(id_str), strdup(text->valuestring), line, path);
    cJSON_Delete(obj);
    return st;
}

/* A first TSV line whose id field is one of these names is a header. */
static int is_tsv_header(const char *id) {
    static const char *names[] = {"id", "_id", "qid", "query-id", "query_id", "queryid", "query"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(id, names[i])) return 1;
    return 0;
}

static dre_status parse_tsv(dre_queries *q, const char *path, long line, char *s, int first) {
    char *tab = strchr(s, '\t');
    if (!tab)
        return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: expected id<TAB>text, found no tab", path,
                             line);
    *tab = '\0';
    if (first && is_tsv_header(s)) return DRE_OK;
    if (!s[0]) return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: empty query id", path, line);
    return push(q, strdup(s), strdup(tab + 1), line, path);
}

static dre_status parse_line(dre_queries *q, const char *path, long line, const char *s) {
    char id[32];
    snprintf(id, sizeof id, "%ld", line);
    return push(q, strdup(id), strdup(s), line, path);
}

typedef struct {
    const char *id;
    long line;
} id_line;

static int cmp_id_line(const void *a, const void *b) {
    const id_line *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* Ids must be unique: a metric per query needs an unambiguous query. Reports the
 * repeat that comes first in the file. */
static dre_status check_duplicates(const dre_queries *q, const char *path) {
    if (q->n < 2) return DRE_OK;
    id_line *order = malloc(q->n * sizeof *order);
    if (!order) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < q->n; i++)
        order[i] = (id_line){q->ids[i], q->lines[i]};
    qsort(order, q->n, sizeof *order, cmp_id_line);
    size_t worst = 0; /* index into order of the earliest repeat; 0 = none */
    for (size_t i = 1; i < q->n; i++)
        if (!strcmp(order[i].id, order[i - 1].id) && (!worst || order[i].line < order[worst].line))
            worst = i;
    dre_status st = DRE_OK;
    if (worst) {
        size_t first = worst;
        while (first > 0 && !strcmp(order[first - 1].id, order[worst].id))
            first--;
        st = dre_set_error(DRE_ERR_FORMAT, "%s:%ld: duplicate query id \"%s\" (first at line %ld)",
                           path, order[worst].line, order[worst].id, order[first].line);
    }
    free(order);
    return st;
}

static dre_status parse_all(dre_queries *q, const char *path, char *data, size_t len) {
    queries_format format = format_of(path);
    char *p = data, *end = data + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* UTF-8 byte-order mark */
    int first = 1;
    for (long line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        if (memchr(p, '\0', (size_t)(stop - p)))
            return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: NUL byte in line", path, line);
        *stop = '\0';
        if (stop > p && stop[-1] == '\r') stop[-1] = '\0';
        if (!is_blank(p)) {
            if (format == FORMAT_JSONL)
                DRE_TRY(parse_jsonl(q, path, line, p));
            else if (format == FORMAT_TSV)
                DRE_TRY(parse_tsv(q, path, line, p, first));
            else
                DRE_TRY(parse_line(q, path, line, p));
            first = 0;
        }
        p = stop + 1;
    }
    return check_duplicates(q, path);
}

dre_status dre_queries_open(const char *path, dre_queries **out) {
    if (!path || !out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_queries_open: NULL argument");
    *out = NULL;
    char *data;
    size_t len;
    DRE_TRY(dre_read_file(path, &data, &len));
    dre_queries *q = calloc(1, sizeof *q);
    if (!q) {
        free(data);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    dre_status st = parse_all(q, path, data, len);
    free(data);
    if (st != DRE_OK) {
        dre_queries_close(q);
        return st;
    }
    *out = q;
    return DRE_OK;
}

void dre_queries_close(dre_queries *q) {
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->ids[i]);
        free(q->texts[i]);
    }
    free(q->ids);
    free(q->texts);
    free(q->lines);
    free(q);
}

size_t dre_queries_count(const dre_queries *q) { return q ? q->n : 0; }

const char *dre_queries_id(const dre_queries *q, size_t i) {
    return q && i < q->n ? q->ids[i] : NULL;
}

const char *dre_queries_text(const dre_queries *q, size_t i) {
    return q && i < q->n ? q->texts[i] : NULL;
}
