/* fuzz_queries.c — libFuzzer target: dre_queries_open on an arbitrary file, under each
 * of the names that select its formats (.jsonl, .tsv, anything else: lines). What opens
 * must hold non-empty, unique ids and a text for each. */
#include "fuzz_util.h"

#include "dre.h"

static int queries_fuzz_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void queries_fuzz_open(const char *name, const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write(name, data, size, path, sizeof path);
    dre_queries *q = NULL;
    dre_status st = dre_queries_open(path, &q);
    FUZZ_CHECK((st == DRE_OK) == (q != NULL));
    if (!q) {
        FUZZ_CHECK(st == DRE_ERR_FORMAT);
        FUZZ_CHECK(strstr(dre_last_error(), path) == dre_last_error()); /* names the file */
        return;
    }
    size_t n = dre_queries_count(q);
    FUZZ_CHECK(n <= size); /* a query takes a line of at least one byte */
    const char **ids = (const char **)malloc((n ? n : 1) * sizeof *ids);
    FUZZ_CHECK(ids != NULL);
    for (size_t i = 0; i < n; i++) {
        ids[i] = dre_queries_id(q, i);
        FUZZ_CHECK(ids[i] != NULL && ids[i][0] != '\0');
        FUZZ_CHECK(dre_queries_text(q, i) != NULL);
        if (!ids[i]) ids[i] = "";
    }
    FUZZ_CHECK(dre_queries_id(q, n) == NULL && dre_queries_text(q, n) == NULL);
    qsort(ids, n, sizeof *ids, queries_fuzz_cmp);
    for (size_t i = 1; i < n; i++)
        FUZZ_CHECK(strcmp(ids[i - 1], ids[i]) != 0);
    free(ids);
    dre_queries_close(q);
}

int fuzz_queries_input(const uint8_t *data, size_t size) {
    queries_fuzz_open("queries.jsonl", data, size);
    queries_fuzz_open("queries.tsv", data, size);
    queries_fuzz_open("queries.txt", data, size);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_queries_input(data, size);
}
#endif
