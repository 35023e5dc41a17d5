/* index/docstore_bm25.c — BM25 over a docstore's FTS5 table (docs_fts): queries made safe
 * (every token a quoted phrase, OR-ed), their collection statistics, and ranking by FTS5's
 * bm25() formula with statistics given from outside, so that the shards of an index rank as
 * the one index holding all their documents would (index/shards.c sums the statistics). Two
 * FTS5 auxiliary functions do the work inside SQLite: dre_bm25_stats counts, dre_bm25 ranks. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "index/docstore_impl.h"

/* sqlite3_bind_pointer's type tag of a bm25_stats passed to the two functions. */
#define STATS_POINTER "dre_bm25_stats"

int dre_docstore_has_bm25(const docstore *ds) { return ds->bm25; }

dre_status dre_docstore_add_bm25(docstore *ds) {
    if (!ds->writable) return dre_set_error(DRE_ERR_INVALID_ARG, "%s: opened read-only", ds->path);
    if (ds->bm25) return DRE_OK;
    DRE_TRY(dre_docstore_exec(
        ds, "CREATE VIRTUAL TABLE docs_fts USING fts5(title, text, "
            "content='docs', content_rowid='row', tokenize='" DOCSTORE_BM25_TOKENIZER "')"));
    DRE_TRY(dre_docstore_exec(ds, "INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')"));
    ds->bm25 = 1;
    return dre_docstore_bm25_open(ds);
}

/* The FTS5 API of a connection (SQLite's documented way to reach it). */
static fts5_api *fts5_api_of(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(s, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(s);
    }
    sqlite3_finalize(s);
    return api;
}

typedef struct expr_builder {
    const char *query;
    char *out;
    size_t len, cap;
    int n_terms;
    int failed;
} expr_builder;

static int expr_put(expr_builder *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->out, cap);
        if (!p) return 0;
        b->out = p;
        b->cap = cap;
    }
    memcpy(b->out + b->len, s, n);
    b->len += n;
    b->out[b->len] = '\0';
    return 1;
}

/* A token of the query: its bytes in the query, start .. end, as a quoted phrase. */
static int expr_term(void *ctx, int flags, const char *token, int n_token, int start, int end) {
    expr_builder *b = ctx;
    if (flags & FTS5_TOKEN_COLOCATED) return SQLITE_OK; /* a synonym of the last term */
    int ok = b->n_terms == 0 || expr_put(b, " OR ", 4);
    ok = ok && expr_put(b, "\"", 1);
    for (int i = start; ok && i < end; i++) /* a quote inside a phrase is doubled */
        ok = b->query[i] == '"' ? expr_put(b, "\"\"", 2) : expr_put(b, b->query + i, 1);
    ok = ok && expr_put(b, "\"", 1);
    if (!ok) {
        b->failed = 1;
        return SQLITE_NOMEM;
    }
    b->n_terms++;
    return SQLITE_OK;
}

/* The expression of a query and how many phrases it has. */
static dre_status build_expression(docstore *ds, const char *query, size_t len, char **expr,
                                   int32_t *n_terms) {
    *expr = NULL;
    *n_terms = 0;
    if (len > INT_MAX) return dre_set_error(DRE_ERR_INVALID_ARG, "a query of %zu bytes", len);
    if (!ds->splitter_handle) {
        fts5_api *api = fts5_api_of(ds->db);
        void *user = NULL;
        if (!api || api->xFindTokenizer(api, "unicode61", &user, &ds->splitter) != SQLITE_OK ||
            ds->splitter.xCreate(user, NULL, 0, &ds->splitter_handle) != SQLITE_OK) {
            ds->splitter_handle = NULL;
            return dre_set_error(DRE_ERR_UNSUPPORTED,
                                 "%s: this SQLite has no FTS5 unicode61 tokenizer", ds->path);
        }
    }
    expr_builder b = {.query = query};
    if (!expr_put(&b, "", 0)) return dre_set_error(DRE_ERR_NOMEM, "BM25 query: out of memory");
    int rc = ds->splitter.xTokenize(ds->splitter_handle, &b, FTS5_TOKENIZE_QUERY, query, (int)len,
                                    expr_term);
    if (rc != SQLITE_OK || b.failed) {
        free(b.out);
        return b.failed
                   ? dre_set_error(DRE_ERR_NOMEM, "BM25 query: out of memory")
                   : dre_set_error(DRE_ERR_INDEX, "BM25 query: tokenizer: %s", sqlite3_errstr(rc));
    }
    *expr = b.out;
    *n_terms = b.n_terms;
    return DRE_OK;
}

dre_status dre_docstore_bm25_expression(docstore *ds, const char *query, size_t len, char **expr) {
    int32_t n_terms = 0;
    return build_expression(ds, query, len, expr, &n_terms);
}

/* ------------------------------------------------------------------ statistics */

/* fts5CountCb of SQLite's fts5_aux.c: one more document holds the phrase. */
static int count_row(const Fts5ExtensionApi *api, Fts5Context *fts, void *user) {
    (void)api;
    (void)fts;
    (*(int64_t *)user)++;
    return SQLITE_OK;
}

/* dre_bm25_stats(docs_fts, stats): fills stats from the row it is called on: the table's
 * documents and tokens, and where the query has phrases, the documents holding each — what
 * bm25() asks FTS5 for (fts5Bm25GetData). Called on one row: any row gives the same. */
static void stats_function(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                           int n_val, sqlite3_value **val) {
    bm25_stats *stats = n_val == 1 ? sqlite3_value_pointer(val[0], STATS_POINTER) : NULL;
    if (!stats) {
        sqlite3_result_error(ctx, "dre_bm25_stats: no statistics to fill", -1);
        return;
    }
    sqlite3_int64 n_rows = 0, n_tokens = 0;
    int rc = api->xRowCount(fts, &n_rows);
    if (rc == SQLITE_OK) rc = api->xColumnTotalSize(fts, -1, &n_tokens);
    stats->n_rows = n_rows;
    stats->n_tokens = n_tokens;
    const int n_phrases = api->xPhraseCount(fts);
    if (rc == SQLITE_OK && n_phrases > 0 && n_phrases != stats->n_phrases) {
        sqlite3_result_error(ctx, "dre_bm25_stats: the expression's phrases are not the query's",
                             -1);
        return;
    }
    for (int i = 0; rc == SQLITE_OK && i < n_phrases; i++) {
        stats->phrase_rows[i] = 0;
        rc = api->xQueryPhrase(fts, i, &stats->phrase_rows[i], count_row);
    }
    if (rc != SQLITE_OK)
        sqlite3_result_error_code(ctx, rc);
    else
        sqlite3_result_int(ctx, 1);
}

/* Runs a statistics statement (bound: ?1 stats, ?2 the expression if it has one); *filled
 * says whether a row called dre_bm25_stats. */
static dre_status run_stats(docstore *ds, sqlite3_stmt *s, bm25_stats *stats, const char *expr,
                            int *filled) {
    sqlite3_reset(s);
    sqlite3_bind_pointer(s, 1, stats, STATS_POINTER, NULL);
    if (expr) sqlite3_bind_text(s, 2, expr, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    dre_status st = rc == SQLITE_ROW || rc == SQLITE_DONE
                        ? DRE_OK
                        : dre_docstore_db_error(ds, "BM25 statistics");
    *filled = rc == SQLITE_ROW;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

static dre_status stats_of_expression(docstore *ds, const char *expr, int32_t n_terms,
                                      bm25_stats *stats) {
    stats->n_phrases = n_terms;
    stats->phrase_rows = calloc((size_t)(n_terms > 0 ? n_terms : 1), sizeof *stats->phrase_rows);
    if (!stats->phrase_rows)
        return dre_set_error(DRE_ERR_NOMEM, "BM25 statistics: out of memory for %d phrases",
                             n_terms);
    int filled = 0;
    if (n_terms > 0) DRE_TRY(run_stats(ds, ds->fts_phrase_stats, stats, expr, &filled));
    /* No document holds any phrase (each count is 0), but the table's documents and tokens
     * still count towards other stores' scores: read them from any row. */
    if (!filled) DRE_TRY(run_stats(ds, ds->fts_table_stats, stats, NULL, &filled));
    return DRE_OK;
}

dre_status dre_docstore_bm25_stats(docstore *ds, const char *query, size_t len, bm25_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (!ds->bm25)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "%s has no BM25 table (docs_fts); add one with `dre index add-bm25`",
                             ds->path);
    char *expr = NULL;
    int32_t n_terms = 0;
    DRE_TRY(build_expression(ds, query, len, &expr, &n_terms));
    dre_status st = stats_of_expression(ds, expr, n_terms, stats);
    free(expr);
    if (st != DRE_OK) dre_bm25_stats_free(stats);
    return st;
}

dre_status dre_bm25_stats_add(bm25_stats *into, const bm25_stats *add) {
    if (!into->phrase_rows && into->n_phrases == 0 && add->n_phrases > 0) {
        into->phrase_rows = calloc((size_t)add->n_phrases, sizeof *into->phrase_rows);
        if (!into->phrase_rows)
            return dre_set_error(DRE_ERR_NOMEM, "BM25 statistics: out of memory");
        into->n_phrases = add->n_phrases;
    }
    if (into->n_phrases != add->n_phrases)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "BM25 statistics: adding %d phrases' counts to %d phrases'",
                             add->n_phrases, into->n_phrases);
    into->n_rows += add->n_rows;
    into->n_tokens += add->n_tokens;
    for (int32_t i = 0; i < add->n_phrases; i++)
        into->phrase_rows[i] += add->phrase_rows[i];
    return DRE_OK;
}

void dre_bm25_stats_free(bm25_stats *stats) {
    if (!stats) return;
    free(stats->phrase_rows);
    memset(stats, 0, sizeof *stats);
}

/* ------------------------------------------------------------------ ranking */

/* What dre_bm25 works out once per query (fts5Bm25Data): each phrase's IDF and the average
 * length, from the statistics; freq is room for one row's phrase frequencies. */
typedef struct rank_data {
    int n_phrases;
    double avgdl;
    double *idf, *freq;
} rank_data;

static int rank_data_make(const Fts5ExtensionApi *api, Fts5Context *fts, const bm25_stats *stats,
                          rank_data **out) {
    const int n_phrases = api->xPhraseCount(fts);
    if (n_phrases != stats->n_phrases || stats->n_rows < 1) return SQLITE_MISMATCH;
    rank_data *d = sqlite3_malloc64(sizeof *d + 2 * sizeof(double) * (size_t)n_phrases);
    if (!d) return SQLITE_NOMEM;
    d->n_phrases = n_phrases;
    d->idf = (double *)&d[1];
    d->freq = d->idf + n_phrases;
    d->avgdl = (double)stats->n_tokens / (double)stats->n_rows;
    for (int i = 0; i < n_phrases; i++) {
        /* log((N - n + 0.5) / (n + 0.5)), at least 1e-6: fts5_aux.c's int64 N - n, then doubles */
        const int64_t n_hit = stats->phrase_rows[i];
        double idf = log(((double)(stats->n_rows - n_hit) + 0.5) / ((double)n_hit + 0.5));
        if (idf <= 0.0) idf = 1e-6;
        d->idf[i] = idf;
    }
    int rc = api->xSetAuxdata(fts, d, sqlite3_free); /* frees d itself if it fails */
    *out = rc == SQLITE_OK ? d : NULL;
    return rc;
}

/* dre_bm25(docs_fts, stats): fts5Bm25Function of SQLite's fts5_aux.c (every column weighted 1)
 * with N, the average length and each phrase's document count from stats. The arithmetic is
 * that function's, in its order, so the doubles are bm25()'s bit for bit for the same
 * statistics (no -ffast-math, and no FMA contraction: the library is built for baseline
 * x86-64, as SQLite is). */
static void rank_function(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                          int n_val, sqlite3_value **val) {
    const double k1 = 1.2; /* FTS5's constants */
    const double b = 0.75;
    const bm25_stats *stats = n_val == 1 ? sqlite3_value_pointer(val[0], STATS_POINTER) : NULL;
    if (!stats) {
        sqlite3_result_error(ctx, "dre_bm25: no statistics", -1);
        return;
    }
    rank_data *d = api->xGetAuxdata(fts, 0);
    int rc = d ? SQLITE_OK : rank_data_make(api, fts, stats, &d);
    int n_inst = 0;
    if (rc == SQLITE_OK) {
        memset(d->freq, 0, sizeof(double) * (size_t)d->n_phrases);
        rc = api->xInstCount(fts, &n_inst);
    }
    for (int i = 0; rc == SQLITE_OK && i < n_inst; i++) {
        int phrase = 0, column = 0, offset = 0;
        rc = api->xInst(fts, i, &phrase, &column, &offset);
        if (rc == SQLITE_OK) d->freq[phrase] += 1.0;
    }
    double D = 0.0; /* the row's tokens */
    if (rc == SQLITE_OK) {
        int n_tokens = 0;
        rc = api->xColumnSize(fts, -1, &n_tokens);
        D = (double)n_tokens;
    }
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_MISMATCH)
            sqlite3_result_error(ctx, "dre_bm25: statistics not of this query", -1);
        else
            sqlite3_result_error_code(ctx, rc);
        return;
    }
    double score = 0.0;
    for (int i = 0; i < d->n_phrases; i++)
        score += d->idf[i] *
                 ((d->freq[i] * (k1 + 1.0)) / (d->freq[i] + k1 * (1 - b + b * D / d->avgdl)));
    sqlite3_result_double(ctx, -1.0 * score);
}

/* ------------------------------------------------------------------ statements */

dre_status dre_docstore_bm25_open(docstore *ds) {
    fts5_api *api = fts5_api_of(ds->db);
    if (!api || api->xCreateFunction(api, "dre_bm25", NULL, rank_function, NULL) != SQLITE_OK ||
        api->xCreateFunction(api, "dre_bm25_stats", NULL, stats_function, NULL) != SQLITE_OK)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "%s: this SQLite has no FTS5 API", ds->path);
    if (ds->writable)
        DRE_TRY(dre_docstore_prepare(
            ds, "INSERT INTO docs_fts (rowid, title, text) VALUES (?, ?, ?)", &ds->fts_insert));
    /* ties by row, as the merge of shards' lists orders them */
    DRE_TRY(dre_docstore_prepare(ds,
                                 "SELECT rowid, dre_bm25(docs_fts, ?1) AS score FROM docs_fts "
                                 "WHERE docs_fts MATCH ?2 ORDER BY score, rowid LIMIT ?3",
                                 &ds->fts_search));
    DRE_TRY(dre_docstore_prepare(ds,
                                 "SELECT dre_bm25_stats(docs_fts, ?1) FROM docs_fts WHERE "
                                 "docs_fts MATCH ?2 LIMIT 1",
                                 &ds->fts_phrase_stats));
    return dre_docstore_prepare(ds, "SELECT dre_bm25_stats(docs_fts, ?1) FROM docs_fts LIMIT 1",
                                &ds->fts_table_stats);
}

void dre_docstore_bm25_close(docstore *ds) {
    sqlite3_finalize(ds->fts_insert);
    sqlite3_finalize(ds->fts_search);
    sqlite3_finalize(ds->fts_phrase_stats);
    sqlite3_finalize(ds->fts_table_stats);
    ds->fts_insert = ds->fts_search = ds->fts_phrase_stats = ds->fts_table_stats = NULL;
    if (ds->splitter_handle) ds->splitter.xDelete(ds->splitter_handle);
    ds->splitter_handle = NULL;
}

/* ------------------------------------------------------------------ search */

dre_status dre_docstore_bm25_search_stats(docstore *ds, const char *query, size_t len,
                                          const bm25_stats *stats, int32_t k, int64_t *rows,
                                          double *scores, int32_t *n) {
    *n = 0;
    if (!ds->bm25)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "%s has no BM25 table (docs_fts); add one with `dre index add-bm25`",
                             ds->path);
    if (k < 1) return dre_set_error(DRE_ERR_INVALID_ARG, "BM25 search: k = %d", k);
    char *expr = NULL;
    int32_t n_terms = 0;
    DRE_TRY(build_expression(ds, query, len, &expr, &n_terms));
    if (!expr[0]) { /* no term: nothing matches */
        free(expr);
        return DRE_OK;
    }
    if (n_terms != stats->n_phrases) {
        free(expr);
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s: BM25 statistics of %d phrases for a query of %d", ds->path,
                             stats->n_phrases, n_terms);
    }
    sqlite3_stmt *s = ds->fts_search;
    sqlite3_reset(s);
    sqlite3_bind_pointer(s, 1, (void *)stats, STATS_POINTER, NULL);
    sqlite3_bind_text(s, 2, expr, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, k);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < k) {
        rows[*n] = sqlite3_column_int64(s, 0);
        scores[*n] = -sqlite3_column_double(s, 1);
        (*n)++;
    }
    dre_status st =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? DRE_OK : dre_docstore_db_error(ds, "BM25 search");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    free(expr);
    return st;
}

dre_status dre_docstore_bm25_search(docstore *ds, const char *query, size_t len, int32_t k,
                                    int64_t *rows, double *scores, int32_t *n) {
    *n = 0;
    if (k < 1) return dre_set_error(DRE_ERR_INVALID_ARG, "BM25 search: k = %d", k);
    bm25_stats stats;
    DRE_TRY(dre_docstore_bm25_stats(ds, query, len, &stats));
    dre_status st = dre_docstore_bm25_search_stats(ds, query, len, &stats, k, rows, scores, n);
    dre_bm25_stats_free(&stats);
    return st;
}
