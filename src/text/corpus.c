/* text/corpus.c — streaming corpus reader: one line at a time from a FILE, parsed as BEIR
 * JSONL ({"_id", "title", "text"}), TSV (id, [title,] text) or a bare text per line.
 * Every bad line becomes a DRE_ERR_FORMAT naming the file and line; the reader has then
 * already moved on, so skipping a bad line is just calling dre_corpus_next again. */
#define _POSIX_C_SOURCE 200809L
#include "text/corpus.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/common.h"

struct dre_corpus {
    FILE *f;
    char *path;
    dre_corpus_format format;
    char *id_field, *title_field, *text_field; /* title_field "" reads no title */
    char *line;                                /* the current line, NUL-terminated */
    size_t line_cap;
    int64_t offset;  /* byte offset of the next line */
    int64_t line_no; /* lines read so far */
    int64_t size;
    int64_t end; /* a part of the file: no line starts at or after this byte; -1: none */
    cJSON *doc; /* the parsed current JSONL line, freed on the next read */
    char *joined;
    size_t joined_cap;
    char id_buf[32]; /* ids made from numbers: JSON integers, line numbers */
};

dre_corpus_format dre_corpus_guess_format(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return DRE_CORPUS_LINES;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json") || !strcasecmp(dot, ".ndjson"))
        return DRE_CORPUS_JSONL;
    if (!strcasecmp(dot, ".tsv")) return DRE_CORPUS_TSV;
    return DRE_CORPUS_LINES;
}

const char *dre_corpus_format_name(dre_corpus_format format) {
    switch (format) {
    case DRE_CORPUS_AUTO: return "auto";
    case DRE_CORPUS_JSONL: return "jsonl";
    case DRE_CORPUS_TSV: return "tsv";
    case DRE_CORPUS_LINES: return "lines";
    }
    return "?";
}

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

dre_status dre_corpus_open(const char *path, dre_corpus_format format, const char *id_field,
                           const char *title_field, const char *text_field, dre_corpus **out) {
    if (!path || !out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_corpus_open: NULL argument");
    *out = NULL;
    if (format < DRE_CORPUS_AUTO || format > DRE_CORPUS_LINES)
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: unknown corpus format %d", path,
                             (int)format);
    FILE *f = fopen(path, "rb");
    if (!f) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int err = errno;
        fclose(f);
        return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return dre_set_error(DRE_ERR_IO, "%s: is a directory, not a corpus file", path);
    }
    dre_corpus *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(f);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    r->f = f;
    r->format = format == DRE_CORPUS_AUTO ? dre_corpus_guess_format(path) : format;
    r->size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    r->end = -1;
    r->path = copy_string(path);
    r->id_field = copy_string(id_field ? id_field : "_id");
    r->title_field = copy_string(title_field ? title_field : "title");
    r->text_field = copy_string(text_field ? text_field : "text");
    if (!r->path || !r->id_field || !r->title_field || !r->text_field) {
        dre_corpus_close(r);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = r;
    return DRE_OK;
}

void dre_corpus_close(dre_corpus *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    cJSON_Delete(r->doc);
    free(r->path);
    free(r->id_field);
    free(r->title_field);
    free(r->text_field);
    free(r->line);
    free(r->joined);
    free(r);
}

int64_t dre_corpus_offset(const dre_corpus *r) { return r->offset; }
int64_t dre_corpus_line(const dre_corpus *r) { return r->line_no; }
int64_t dre_corpus_size(const dre_corpus *r) { return r->size; }
dre_corpus_format dre_corpus_format_of(const dre_corpus *r) { return r->format; }
const char *dre_corpus_path(const dre_corpus *r) { return r->path; }

void dre_corpus_set_end(dre_corpus *r, int64_t end) {
    r->end = end;
    if (end >= 0 && (r->size < 0 || end < r->size)) r->size = end;
}

dre_status dre_corpus_seek(dre_corpus *r, int64_t offset, int64_t line) {
    if (offset < 0 || line < 0 || (r->size >= 0 && offset > r->size))
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: cannot resume at byte %lld (file has %lld)",
                             r->path, (long long)offset, (long long)r->size);
    if (fseeko(r->f, (off_t)offset, SEEK_SET) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: seek to byte %lld: %s", r->path, (long long)offset,
                             strerror(errno));
    r->offset = offset;
    r->line_no = line;
    return DRE_OK;
}

/* Python's str.isspace() for ASCII: what str.strip() removes at the ends. */
static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space((unsigned char)s[i])) return 0;
    return 1;
}

/* Reads one line into r->line without its newline (and a CR before it). Returns 1 for
 * a line, 0 at end of file; *len is its length in bytes. */
static dre_status read_line(dre_corpus *r, size_t *len, int *got) {
    if (r->end >= 0 && r->offset >= r->end) {
        *got = 0;
        return DRE_OK;
    }
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f))
            return dre_set_error(DRE_ERR_IO, "%s:%lld: read error: %s", r->path,
                                 (long long)r->line_no + 1, strerror(errno));
        if (errno == ENOMEM) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", r->path);
        *got = 0;
        return DRE_OK;
    }
    int64_t start = r->offset;
    r->offset += n;
    r->line_no++;
    size_t m = (size_t)n;
    if (m > 0 && r->line[m - 1] == '\n') m--;
    if (m > 0 && r->line[m - 1] == '\r') m--;
    r->line[m] = '\0';
    /* A UTF-8 byte order mark at the start of the file is not part of the text. */
    if (start == 0 && m >= 3 && !memcmp(r->line, "\xEF\xBB\xBF", 3)) {
        memmove(r->line, r->line + 3, m - 3 + 1);
        m -= 3;
    }
    *len = m;
    *got = 1;
    return DRE_OK;
}

static dre_status bad_line(const dre_corpus *r, const char *what) {
    return dre_set_error(DRE_ERR_FORMAT, "%s:%lld: %s", r->path, (long long)r->line_no, what);
}

/* rec->joined = (title + " " + text).strip() if a title exists, else text.strip(). */
static dre_status join_text(dre_corpus *r, dre_corpus_doc *rec) {
    size_t title_len = rec->title ? strlen(rec->title) : 0;
    size_t text_len = strlen(rec->text);
    size_t need = title_len + 1 + text_len + 1;
    if (need > r->joined_cap) {
        char *p = realloc(r->joined, need);
        if (!p) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", r->path);
        r->joined = p;
        r->joined_cap = need;
    }
    size_t n = 0;
    if (rec->title) {
        memcpy(r->joined, rec->title, title_len);
        r->joined[title_len] = ' ';
        n = title_len + 1;
    }
    memcpy(r->joined + n, rec->text, text_len);
    n += text_len;
    size_t begin = 0;
    while (begin < n && is_space((unsigned char)r->joined[begin]))
        begin++;
    while (n > begin && is_space((unsigned char)r->joined[n - 1]))
        n--;
    r->joined[n] = '\0';
    rec->joined = r->joined + begin;
    rec->joined_len = n - begin;
    if (rec->joined_len == 0)
        return bad_line(r, rec->title ? "empty title and text" : "empty text");
    return DRE_OK;
}

static const char *json_type_name(const cJSON *item) {
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "not a string";
}

static dre_status parse_jsonl(dre_corpus *r, size_t len, dre_corpus_doc *rec) {
    char msg[512];
    const char *end = NULL;
    r->doc = cJSON_ParseWithLengthOpts(r->line, len, &end, 0);
    if (!r->doc) {
        size_t column = end && end >= r->line ? (size_t)(end - r->line) + 1 : 1;
        snprintf(msg, sizeof msg, "malformed JSON at column %zu", column);
        return bad_line(r, msg);
    }
    if (!cJSON_IsObject(r->doc)) {
        snprintf(msg, sizeof msg, "expected a JSON object, found %s", json_type_name(r->doc));
        return bad_line(r, msg);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r->doc, r->id_field);
    if (!id) {
        snprintf(msg, sizeof msg, "missing \"%s\"", r->id_field);
        return bad_line(r, msg);
    }
    if (cJSON_IsString(id)) {
        rec->id = id->valuestring;
    } else if (cJSON_IsNumber(id) &&
               dre_integer_id_text(id->valuedouble, r->id_buf, sizeof r->id_buf)) {
        /* Integer ids ({"_id": 17}) are common outside BEIR; keep their decimal text. */
        rec->id = r->id_buf;
    } else {
        snprintf(msg, sizeof msg, "\"%s\" is %s, expected a string", r->id_field,
                 json_type_name(id));
        return bad_line(r, msg);
    }
    if (!rec->id[0]) {
        snprintf(msg, sizeof msg, "empty \"%s\"", r->id_field);
        return bad_line(r, msg);
    }
    rec->title = NULL;
    if (r->title_field[0]) {
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(r->doc, r->title_field);
        if (title && !cJSON_IsNull(title)) {
            if (!cJSON_IsString(title)) {
                snprintf(msg, sizeof msg, "\"%s\" is %s, expected a string", r->title_field,
                         json_type_name(title));
                return bad_line(r, msg);
            }
            rec->title = title->valuestring;
        }
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(r->doc, r->text_field);
    if (!text) {
        snprintf(msg, sizeof msg, "missing \"%s\"", r->text_field);
        return bad_line(r, msg);
    }
    if (!cJSON_IsString(text)) {
        snprintf(msg, sizeof msg, "\"%s\" is %s, expected a string", r->text_field,
                 json_type_name(text));
        return bad_line(r, msg);
    }
    rec->text = text->valuestring;
    return DRE_OK;
}

static int contains_id(const char *s) {
    for (; *s; s++)
        if (tolower((unsigned char)s[0]) == 'i' && tolower((unsigned char)s[1]) == 'd') return 1;
    return 0;
}

/* Returns 1 when the fields of line 1 name columns ("id<TAB>text", "_id<TAB>title<TAB>text")
 * rather than holding a document. */
static int is_tsv_header(char **fields, int n_fields) {
    return contains_id(fields[0]) && !strcasecmp(fields[n_fields - 1], "text") &&
           (n_fields == 2 || !strcasecmp(fields[1], "title"));
}

/* Splits r->line at tabs. Returns 1 to use the record, 0 to skip a header line. */
static dre_status parse_tsv(dre_corpus *r, dre_corpus_doc *rec, int *use) {
    char *fields[3];
    int n_fields = 0;
    char *p = r->line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (n_fields < 3) fields[n_fields] = p;
        n_fields++;
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n_fields != 2 && n_fields != 3) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "expected 2 or 3 tab-separated fields (id, [title,] text), found %d", n_fields);
        return bad_line(r, msg);
    }
    if (r->line_no == 1 && is_tsv_header(fields, n_fields)) {
        *use = 0;
        return DRE_OK;
    }
    if (!fields[0][0]) return bad_line(r, "empty id");
    rec->id = fields[0];
    rec->title = n_fields == 3 ? fields[1] : NULL;
    rec->text = fields[n_fields - 1];
    *use = 1;
    return DRE_OK;
}

dre_status dre_corpus_next(dre_corpus *r, dre_corpus_doc *rec, int *got) {
    if (!r || !rec || !got)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_corpus_next: NULL argument");
    *got = 0;
    memset(rec, 0, sizeof *rec);
    cJSON_Delete(r->doc);
    r->doc = NULL;
    for (;;) {
        size_t len = 0;
        int have = 0;
        DRE_TRY(read_line(r, &len, &have));
        if (!have) return DRE_OK;
        rec->line = r->line_no;
        const char *nul = memchr(r->line, '\0', len);
        if (nul) {
            char msg[96];
            snprintf(msg, sizeof msg, "NUL byte at column %zu", (size_t)(nul - r->line) + 1);
            return bad_line(r, msg);
        }
        if (r->format == DRE_CORPUS_LINES) {
            snprintf(r->id_buf, sizeof r->id_buf, "%lld", (long long)r->line_no);
            rec->id = r->id_buf;
            rec->title = NULL;
            rec->text = r->line;
        } else {
            if (is_blank(r->line, len)) continue;
            if (r->format == DRE_CORPUS_JSONL) {
                DRE_TRY(parse_jsonl(r, len, rec));
            } else {
                int use = 0;
                DRE_TRY(parse_tsv(r, rec, &use));
                if (!use) continue;
            }
        }
        DRE_TRY(join_text(r, rec));
        *got = 1;
        return DRE_OK;
    }
}
