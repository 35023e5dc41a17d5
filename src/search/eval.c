/* search/eval.c — relevance judgements (BEIR qrels) and the per-query metrics nDCG@10,
 * Recall@10, Recall@100 and MRR@10, computed exactly as trec_eval (pytrec_eval, which
 * BEIR's EvaluateRetrieval calls) computes ndcg_cut_10, recall_10, recall_100 and
 * recip_rank on the top 10. tests/eval_test.cc checks them against pytrec_eval.
 * BEIR's own MRR@k ranks by score alone (Python's stable sort); it differs from this
 * only where scores tie, which trec_eval breaks by doc id, descending. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

typedef struct {
    const char *query; /* points into the file buffer */
    const char *doc;
    int32_t grade;
    long line;
} judgement;

typedef struct {
    const char *id;
    size_t first, count; /* its judgements: judgements[first .. first + count), by doc id */
    int64_t n_relevant;  /* grade >= 1 */
    double ideal_dcg_10; /* DCG of the best possible top 10 */
} judged_query;

struct dre_qrels {
    char *data; /* the file, fields cut out of it with NULs */
    judgement *judgements;
    size_t n_judgements;
    judged_query *queries; /* sorted by id */
    size_t n_queries;
};

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *e = '\0';
    return s;
}

/* Splits line in place: on tabs if it has any (BEIR's TSV, ids may hold spaces), else
 * on runs of spaces (TREC qrels). Returns the number of fields, up to max_fields + 1
 * (more than max_fields means too many). */
static int split(char *line, char **fields, int max_fields) {
    int n = 0;
    if (strchr(line, '\t')) {
        char *p = line;
        for (;;) {
            char *tab = strchr(p, '\t');
            if (n == max_fields) return max_fields + 1;
            if (tab) *tab = '\0';
            fields[n++] = trim(p);
            if (!tab) break;
            p = tab + 1;
        }
        return n;
    }
    char *p = line;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p) break;
        if (n == max_fields) return max_fields + 1;
        fields[n++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

/* An integer score, as BEIR's int(row[2]) reads it. */
static int parse_grade(const char *s, int32_t *out) {
    if (!*s) return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < INT32_MIN || v > INT32_MAX) return 0;
    *out = (int32_t)v;
    return 1;
}

static int cmp_judgement(const void *a, const void *b) {
    const judgement *x = a, *y = b;
    int c = strcmp(x->query, y->query);
    if (c) return c;
    c = strcmp(x->doc, y->doc);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

static int cmp_grade_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x < y) - (x > y);
}

/* Reads the lines into q->judgements. */
static dre_status parse_lines(dre_qrels *q, const char *path, size_t len) {
    size_t cap = 0;
    char *p = q->data, *end = q->data + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* UTF-8 byte-order mark */
    int first = 1;
    for (long line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        if (memchr(p, '\0', (size_t)(stop - p)))
            return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: NUL byte in line", path, line);
        *stop = '\0';
        if (stop > p && stop[-1] == '\r') stop[-1] = '\0';
        char *s = p;
        p = stop + 1;
        char *fields[4];
        int n = split(s, fields, 4);
        if (n == 0) continue; /* blank line */
        int was_first = first;
        first = 0;
        if (n != 3 && n != 4)
            return dre_set_error(DRE_ERR_FORMAT,
                                 "%s:%ld: expected query-id<TAB>corpus-id<TAB>score (or TREC's "
                                 "query-id iteration doc-id score), found %s%d field%s",
                                 path, line, n > 4 ? "more than " : "", n > 4 ? 4 : n,
                                 n == 1 ? "" : "s");
        const char *query = fields[0], *doc = fields[n == 4 ? 2 : 1], *score = fields[n - 1];
        int32_t grade;
        if (!parse_grade(score, &grade)) {
            if (was_first) continue; /* the header: query-id corpus-id score */
            return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: score \"%s\" is not an integer", path,
                                 line, score);
        }
        if (!query[0] || !doc[0])
            return dre_set_error(DRE_ERR_FORMAT, "%s:%ld: empty %s id", path, line,
                                 query[0] ? "corpus" : "query");
        if (q->n_judgements == cap) {
            cap = cap ? cap * 2 : 256;
            judgement *bigger = realloc(q->judgements, cap * sizeof *bigger);
            if (!bigger) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
            q->judgements = bigger;
        }
        q->judgements[q->n_judgements++] = (judgement){query, doc, grade, line};
    }
    return DRE_OK;
}

/* Sorts by (query, doc), keeps the last line of a repeated pair, and indexes queries. */
static dre_status build_index(dre_qrels *q, const char *path) {
    if (q->n_judgements > 1)
        qsort(q->judgements, q->n_judgements, sizeof *q->judgements, cmp_judgement);
    size_t kept = 0;
    for (size_t i = 0; i < q->n_judgements; i++) {
        const judgement *j = &q->judgements[i];
        if (kept > 0 && !strcmp(q->judgements[kept - 1].query, j->query) &&
            !strcmp(q->judgements[kept - 1].doc, j->doc))
            q->judgements[kept - 1] = *j; /* later line wins */
        else
            q->judgements[kept++] = *j;
    }
    q->n_judgements = kept;

    size_t n_queries = 0;
    for (size_t i = 0; i < kept; i++)
        if (i == 0 || strcmp(q->judgements[i - 1].query, q->judgements[i].query)) n_queries++;
    q->queries = calloc(n_queries ? n_queries : 1, sizeof *q->queries);
    int32_t *grades = malloc((kept ? kept : 1) * sizeof *grades);
    if (!q->queries || !grades) {
        free(grades);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < kept;) {
        judged_query *jq = &q->queries[q->n_queries++];
        jq->id = q->judgements[i].query;
        jq->first = i;
        size_t n_pos = 0;
        for (; i < kept && !strcmp(q->judgements[i].query, jq->id); i++) {
            int32_t g = q->judgements[i].grade;
            if (g >= 1) jq->n_relevant++;
            if (g > 0) grades[n_pos++] = g;
        }
        jq->count = i - jq->first;
        /* ideal DCG@10: the judged gains best first, sum g_i / log2(i + 2) */
        qsort(grades, n_pos, sizeof *grades, cmp_grade_desc);
        for (size_t r = 0; r < n_pos && r < 10; r++)
            jq->ideal_dcg_10 += (double)grades[r] / log2((double)(r + 2));
    }
    free(grades);
    return DRE_OK;
}

dre_status dre_qrels_open(const char *path, dre_qrels **out) {
    if (!path || !out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_qrels_open: NULL argument");
    *out = NULL;
    dre_qrels *q = calloc(1, sizeof *q);
    if (!q) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    size_t len;
    dre_status st = dre_read_file(path, &q->data, &len);
    if (st == DRE_OK) st = parse_lines(q, path, len);
    if (st == DRE_OK) st = build_index(q, path);
    if (st != DRE_OK) {
        dre_qrels_close(q);
        return st;
    }
    *out = q;
    return DRE_OK;
}

void dre_qrels_close(dre_qrels *q) {
    if (!q) return;
    free(q->data);
    free(q->judgements);
    free(q->queries);
    free(q);
}

size_t dre_qrels_count(const dre_qrels *q) { return q ? q->n_queries : 0; }

static const judged_query *find_query(const dre_qrels *q, const char *id) {
    size_t lo = 0, hi = q->n_queries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(q->queries[mid].id, id);
        if (c == 0) return &q->queries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int dre_qrels_has_query(const dre_qrels *q, const char *query_id) {
    return q && query_id && find_query(q, query_id) != NULL;
}

/* The grade of doc for the query, 0 if unjudged. */
static int32_t grade_of(const dre_qrels *q, const judged_query *jq, const char *doc) {
    size_t lo = jq->first, hi = jq->first + jq->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(q->judgements[mid].doc, doc);
        if (c == 0) return q->judgements[mid].grade;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

typedef struct {
    float score; /* trec_eval keeps scores as float: ties are float ties */
    const char *doc;
    int32_t input_rank;
} ranked_doc;

/* trec_eval's order: score descending, then doc id descending (strcmp reversed). */
static int cmp_trec(const void *a, const void *b) {
    const ranked_doc *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return strcmp(y->doc, x->doc);
}

static int cmp_input(const void *a, const void *b) {
    const ranked_doc *x = a, *y = b;
    return (x->input_rank > y->input_rank) - (x->input_rank < y->input_rank);
}

static int cmp_doc(const void *a, const void *b) {
    return strcmp(((const ranked_doc *)a)->doc, ((const ranked_doc *)b)->doc);
}

dre_status dre_eval_query(const dre_qrels *qrels, const char *query_id, const char *const *doc_ids,
                          const double *scores, int32_t n, dre_metrics *out) {
    if (!qrels || !query_id || !out || n < 0 || (n > 0 && !doc_ids))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_eval_query: NULL argument or n < 0");
    const judged_query *jq = find_query(qrels, query_id);
    if (!jq)
        return dre_set_error(DRE_ERR_INVALID_ARG, "query \"%s\" has no judgements in the qrels",
                             query_id);
    ranked_doc *ranked = malloc((n ? (size_t)n : 1) * sizeof *ranked);
    if (!ranked) return dre_set_error(DRE_ERR_NOMEM, "dre_eval_query: out of memory");
    for (int32_t i = 0; i < n; i++) {
        if (!doc_ids[i] || (scores && isnan(scores[i]))) {
            free(ranked);
            return dre_set_error(DRE_ERR_INVALID_ARG, "query \"%s\": result %d has %s", query_id,
                                 i + 1, doc_ids[i] ? "a NaN score" : "no doc id");
        }
        ranked[i] = (ranked_doc){scores ? (float)scores[i] : 0.0f, doc_ids[i], i};
    }
    /* trec_eval refuses a run that lists a doc twice for a query; so do we */
    qsort(ranked, (size_t)n, sizeof *ranked, cmp_doc);
    for (int32_t i = 1; i < n; i++)
        if (!strcmp(ranked[i].doc, ranked[i - 1].doc)) {
            dre_status st =
                dre_set_error(DRE_ERR_INVALID_ARG, "query \"%s\": doc \"%s\" listed twice",
                              query_id, ranked[i].doc);
            free(ranked);
            return st;
        }
    qsort(ranked, (size_t)n, sizeof *ranked, scores ? cmp_trec : cmp_input);

    /* DCG@10 = sum over the top 10 of grade / log2(rank + 1), positive grades only */
    double dcg = 0.0;
    int64_t rel_10 = 0, rel_100 = 0;
    double rr = 0.0;
    for (int32_t i = 0; i < n && i < 100; i++) {
        int32_t g = grade_of(qrels, jq, ranked[i].doc);
        if (g < 1) continue;
        rel_100++;
        if (i < 10) {
            rel_10++;
            dcg += (double)g / log2((double)(i + 2));
            if (rr == 0.0) rr = 1.0 / (double)(i + 1);
        }
    }
    free(ranked);
    out->ndcg_10 = jq->ideal_dcg_10 > 0.0 ? dcg / jq->ideal_dcg_10 : 0.0;
    out->recall_10 = jq->n_relevant ? (double)rel_10 / (double)jq->n_relevant : 0.0;
    out->recall_100 = jq->n_relevant ? (double)rel_100 / (double)jq->n_relevant : 0.0;
    out->mrr_10 = rr;
    out->n_queries = 1;
    return DRE_OK;
}
