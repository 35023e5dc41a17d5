/* fuzz_qrels.c — libFuzzer target: dre_qrels_open on an arbitrary file, then
 * dre_eval_query for the judged queries found among the input's own words, ranking those
 * words as doc ids with scores taken from the input bytes. Metrics must lie in [0, 1],
 * and a list naming a doc twice or an unjudged query must be refused. */
#include "fuzz_util.h"

#include "dre.h"

#define QRELS_FUZZ_MAX_WORDS 256
#define QRELS_FUZZ_MAX_QUERIES 16

/* qsort has no context argument: the words being sorted by index. */
static char **qrels_fuzz_sort_words;

/* By word, then by position: the first of equal words comes first. */
static int qrels_fuzz_cmp_index(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(qrels_fuzz_sort_words[x], qrels_fuzz_sort_words[y]);
    if (c) return c;
    return (x > y) - (x < y);
}

/* Splits a copy of the input into words at the bytes in seps; returns the count. */
static size_t qrels_fuzz_words(char *text, const char *seps, char **words, size_t cap) {
    size_t n = 0;
    char *p = text;
    while (*p && n < cap) {
        p += strspn(p, seps);
        if (!*p) break;
        size_t len = strcspn(p, seps);
        words[n++] = p;
        if (!p[len]) break;
        p[len] = '\0';
        p += len + 1;
    }
    return n;
}

static void qrels_fuzz_check_metrics(const dre_metrics *m) {
    const double slack = 1e-9;
    FUZZ_CHECK(m->n_queries == 1);
    FUZZ_CHECK(m->ndcg_10 >= 0.0 && m->ndcg_10 <= 1.0 + slack);
    FUZZ_CHECK(m->recall_10 >= 0.0 && m->recall_10 <= 1.0);
    FUZZ_CHECK(m->recall_100 >= m->recall_10 && m->recall_100 <= 1.0);
    FUZZ_CHECK(m->mrr_10 >= 0.0 && m->mrr_10 <= 1.0);
    /* a relevant doc in the top 10 shows in all three */
    FUZZ_CHECK((m->mrr_10 > 0.0) == (m->recall_10 > 0.0));
}

int fuzz_qrels_input(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write("qrels.tsv", data, size, path, sizeof path);
    dre_qrels *qrels = NULL;
    dre_status st = dre_qrels_open(path, &qrels);
    FUZZ_CHECK((st == DRE_OK) == (qrels != NULL));
    if (!qrels) {
        FUZZ_CHECK(st == DRE_ERR_FORMAT);
        FUZZ_CHECK(strstr(dre_last_error(), path) == dre_last_error()); /* names the file */
        return 0;
    }
    FUZZ_CHECK(dre_qrels_count(qrels) <= size);

    /* candidate ids: the words of the input, split at white space and at tabs alone
     * (BEIR's ids may hold spaces) */
    char *text = (char *)malloc(2 * size + 2);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    memcpy(text + size + 1, data, size);
    text[2 * size + 1] = '\0';
    char *words[2 * QRELS_FUZZ_MAX_WORDS];
    size_t n_words = qrels_fuzz_words(text, " \t\r\n", words, QRELS_FUZZ_MAX_WORDS);
    n_words += qrels_fuzz_words(text + size + 1, "\t\r\n", words + n_words, QRELS_FUZZ_MAX_WORDS);

    /* the words as a run: each id once, in input order, scores from the input bytes (few
     * values, so that ties are common) */
    size_t *order = (size_t *)malloc((n_words ? n_words : 1) * sizeof *order);
    const char **docs = (const char **)malloc((n_words ? n_words : 1) * sizeof *docs);
    double *scores = (double *)malloc((n_words ? n_words : 1) * sizeof *scores);
    unsigned char *keep = (unsigned char *)calloc(n_words ? n_words : 1, 1);
    FUZZ_CHECK(order && docs && scores && keep);
    qrels_fuzz_sort_words = words;
    for (size_t i = 0; i < n_words; i++)
        order[i] = i;
    qsort(order, n_words, sizeof *order, qrels_fuzz_cmp_index);
    int has_repeat = 0;
    for (size_t i = 0; i < n_words; i++) {
        int repeat = i > 0 && strcmp(words[order[i - 1]], words[order[i]]) == 0;
        has_repeat |= repeat;
        keep[order[i]] = (unsigned char)!repeat; /* the first in the input of equal words */
    }
    int32_t n_docs = 0;
    for (size_t i = 0; i < n_words; i++) {
        if (!keep[i]) continue;
        docs[n_docs] = words[i];
        scores[n_docs] = (double)(data[i % size] % 5) * 0.25;
        n_docs++;
    }

    int n_queries = 0;
    for (int32_t i = 0; i < n_docs && n_queries < QRELS_FUZZ_MAX_QUERIES; i++) {
        if (!dre_qrels_has_query(qrels, docs[i])) continue;
        n_queries++;
        dre_metrics m;
        FUZZ_CHECK(dre_eval_query(qrels, docs[i], docs, scores, n_docs, &m) == DRE_OK);
        qrels_fuzz_check_metrics(&m);
        FUZZ_CHECK(dre_eval_query(qrels, docs[i], docs, NULL, n_docs, &m) == DRE_OK);
        qrels_fuzz_check_metrics(&m);
        FUZZ_CHECK(dre_eval_query(qrels, docs[i], docs, NULL, 0, &m) == DRE_OK);
        FUZZ_CHECK(m.ndcg_10 == 0.0 && m.recall_100 == 0.0 && m.mrr_10 == 0.0);
        /* every word, repeats included: refused exactly when an id repeats */
        st = dre_eval_query(qrels, docs[i], (const char *const *)words, NULL, (int32_t)n_words, &m);
        FUZZ_CHECK(st == (has_repeat ? DRE_ERR_INVALID_ARG : DRE_OK));
    }
    dre_metrics m;
    if (!dre_qrels_has_query(qrels, "\x01never-judged"))
        FUZZ_CHECK(dre_eval_query(qrels, "\x01never-judged", docs, NULL, n_docs, &m) ==
                   DRE_ERR_INVALID_ARG);
    free(order);
    free(docs);
    free(scores);
    free(keep);
    free(text);
    dre_qrels_close(qrels);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_qrels_input(data, size);
}
#endif
