/* fuzz_bm25.c — libFuzzer target: a query of arbitrary bytes through the BM25 query
 * builder and search of a small docstore. The expression must be quoted phrases joined by
 * " OR ", each phrase (its doubled quotes undone) a piece of the query in query order, and
 * the search must run: no input may be an FTS5 syntax error. */
#include "fuzz_util.h"

#include "index/docstore.h"

static docstore *bm25_fuzz_store(void) {
    static docstore *ds = NULL;
    if (ds) return ds;
    char path[4096];
    fuzz_path(path, sizeof path, "bm25.sqlite");
    unlink(path);
    int64_t dup = 0;
    FUZZ_CHECK(dre_docstore_open(path, 1, &ds) == DRE_OK);
    FUZZ_CHECK(dre_docstore_add_bm25(ds) == DRE_OK);
    FUZZ_CHECK(dre_docstore_add(ds, 0, "a", "Sparse attention", "near and or not", &dup) == DRE_OK);
    FUZZ_CHECK(dre_docstore_add(ds, 1, "b", NULL, "caf\xc3\xa9 title text 42", &dup) == DRE_OK);
    FUZZ_CHECK(dre_docstore_add(ds, 2, "c", "x", "\xff\xfe broken \x01 bytes", &dup) == DRE_OK);
    return ds;
}

int fuzz_bm25_input(const uint8_t *data, size_t size) {
    docstore *ds = bm25_fuzz_store();
    const char *query = (const char *)data;
    char *expr = NULL;
    FUZZ_CHECK(dre_docstore_bm25_expression(ds, query, size, &expr) == DRE_OK);
    if (!expr) return 0;
    /* "p1" OR "p2" ...: each phrase found in the query after the previous one */
    const char *e = expr;
    size_t at = 0;
    char *phrase = (char *)malloc(strlen(expr) + 1);
    FUZZ_CHECK(phrase != NULL);
    while (phrase && *e) {
        FUZZ_CHECK(*e == '"');
        size_t n = 0;
        for (e++; *e && !(e[0] == '"' && e[1] != '"'); e++) {
            if (e[0] == '"') e++; /* "" inside a phrase is one quote */
            phrase[n++] = *e;
        }
        FUZZ_CHECK(*e == '"' && n > 0);
        e++;
        int found = 0;
        for (; !found && at + n <= size; at++)
            found = memcmp(query + at, phrase, n) == 0;
        FUZZ_CHECK(found);
        at += n - 1;
        if (*e) {
            FUZZ_CHECK(strncmp(e, " OR ", 4) == 0);
            e += 4;
            FUZZ_CHECK(*e == '"');
        }
    }
    free(phrase);
    free(expr);
    int64_t rows[4];
    double scores[4];
    int32_t n = -1;
    FUZZ_CHECK(dre_docstore_bm25_search(ds, query, size, 4, rows, scores, &n) == DRE_OK);
    FUZZ_CHECK(n >= 0 && n <= 3);
    for (int32_t i = 0; i < n; i++)
        FUZZ_CHECK(rows[i] >= 0 && rows[i] <= 2 && scores[i] > 0);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_bm25_input(data, size); }
#endif
