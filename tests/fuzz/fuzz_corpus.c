/* fuzz_corpus.c — libFuzzer target: the streaming corpus reader (src/text/corpus.h) on an
 * arbitrary file, read as JSONL (default and custom field names), TSV and lines, to the
 * end, skipping bad lines as `dre embed --on-error skip` does. Records must be sane, and
 * dre_corpus_seek to a remembered offset must read the same record again. */
#include "fuzz_util.h"

#include "text/corpus.h"

/* A record worth finding again after a seek. */
typedef struct corpus_fuzz_mark {
    int64_t offset, line; /* where the reader stood before the call that returned it */
    int64_t rec_line;
    char *id, *joined;
} corpus_fuzz_mark;

static char *corpus_fuzz_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);
    FUZZ_CHECK(p != NULL);
    if (p) memcpy(p, s, n);
    return p;
}

static int corpus_fuzz_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static void corpus_fuzz_check_record(const dre_corpus *r, const dre_corpus_doc *rec, int64_t size) {
    FUZZ_CHECK(rec->id != NULL && rec->id[0] != '\0');
    FUZZ_CHECK(rec->text != NULL);
    FUZZ_CHECK(rec->joined != NULL && rec->joined_len > 0);
    if (!rec->joined || !rec->joined_len) return;
    FUZZ_CHECK(strlen(rec->joined) == rec->joined_len);
    /* stripped as Python's str.strip() does */
    FUZZ_CHECK(!corpus_fuzz_space((unsigned char)rec->joined[0]));
    FUZZ_CHECK(!corpus_fuzz_space((unsigned char)rec->joined[rec->joined_len - 1]));
    FUZZ_CHECK(rec->line >= 1 && rec->line == dre_corpus_line(r));
    FUZZ_CHECK(dre_corpus_offset(r) >= 0 && dre_corpus_offset(r) <= size);
}

/* Reads the whole file in one format; returns the number of records. */
static int64_t corpus_fuzz_read(const char *path, int64_t size, dre_corpus_format format,
                                const char *id_field, const char *title_field,
                                const char *text_field) {
    dre_corpus *r = NULL;
    dre_status st = dre_corpus_open(path, format, id_field, title_field, text_field, &r);
    if (st != DRE_OK) {
        fprintf(stderr, "fuzz_corpus: %s\n", dre_last_error());
        FUZZ_FAIL("dre_corpus_open failed on a regular file");
        return 0;
    }
    FUZZ_CHECK(dre_corpus_format_of(r) == format);
    FUZZ_CHECK(dre_corpus_size(r) == size);
    corpus_fuzz_mark mark = {0, 0, 0, NULL, NULL};
    int64_t n_records = 0, n_calls = 0, last_offset = 0;
    for (;;) {
        /* every call consumes at least one line, so a reader that stops moving is a bug */
        FUZZ_CHECK(n_calls++ <= size + 1);
        if (n_calls > size + 2) break;
        int64_t offset = dre_corpus_offset(r), line = dre_corpus_line(r);
        dre_corpus_doc rec;
        int got = 0;
        st = dre_corpus_next(r, &rec, &got);
        FUZZ_CHECK(dre_corpus_offset(r) >= last_offset);
        last_offset = dre_corpus_offset(r);
        if (st == DRE_ERR_FORMAT) {
            FUZZ_CHECK(dre_corpus_line(r) > line); /* already past the bad line */
            FUZZ_CHECK(strstr(dre_last_error(), path) == dre_last_error());
            continue;
        }
        if (st != DRE_OK) {
            fprintf(stderr, "fuzz_corpus: %s\n", dre_last_error());
            FUZZ_FAIL("dre_corpus_next failed with neither DRE_OK nor DRE_ERR_FORMAT");
            break;
        }
        if (!got) break;
        corpus_fuzz_check_record(r, &rec, size);
        n_records++;
        /* remember every other record, so the last mark lies somewhere in the middle */
        if (n_records % 2 == 1 && rec.joined) {
            free(mark.id);
            free(mark.joined);
            mark.offset = offset;
            mark.line = line;
            mark.rec_line = rec.line;
            mark.id = corpus_fuzz_dup(rec.id);
            mark.joined = corpus_fuzz_dup(rec.joined);
        }
    }
    FUZZ_CHECK(dre_corpus_offset(r) == size);

    if (mark.id) {
        /* resume as an interrupted embed does: the same record comes back */
        FUZZ_CHECK(dre_corpus_seek(r, mark.offset, mark.line) == DRE_OK);
        dre_corpus_doc rec;
        int got = 0;
        st = dre_corpus_next(r, &rec, &got);
        FUZZ_CHECK(st == DRE_OK && got == 1);
        if (st == DRE_OK && got == 1) {
            FUZZ_CHECK(rec.line == mark.rec_line);
            FUZZ_CHECK(strcmp(rec.id, mark.id) == 0);
            FUZZ_CHECK(strcmp(rec.joined, mark.joined) == 0);
        }
        free(mark.id);
        free(mark.joined);
    }
    FUZZ_CHECK(dre_corpus_seek(r, size + 1, 0) == DRE_ERR_INVALID_ARG);
    dre_corpus_close(r);
    return n_records;
}

int fuzz_corpus_input(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write("corpus.txt", data, size, path, sizeof path);
    int64_t n = (int64_t)size;
    corpus_fuzz_read(path, n, DRE_CORPUS_JSONL, NULL, NULL, NULL);
    /* other field names, and no title at all */
    corpus_fuzz_read(path, n, DRE_CORPUS_JSONL, "id", "", "body");
    corpus_fuzz_read(path, n, DRE_CORPUS_TSV, NULL, NULL, NULL);
    int64_t n_lines = corpus_fuzz_read(path, n, DRE_CORPUS_LINES, NULL, NULL, NULL);
    FUZZ_CHECK(n_lines <= n);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_corpus_input(data, size);
}
#endif
