/* index/docstore.h — the SQLite side of an index: one row per document, keyed by the same
 * row number as its vector in FAISS, holding the external id, title and text, and
 * optionally an FTS5 index of title and text for BM25.
 * Tables: docs(row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, text TEXT);
 * docs_fts, an FTS5 table over docs' title and text (external content, rowid = row),
 * tokenized by DOCSTORE_BM25_TOKENIZER. */
#ifndef DRE_DOCSTORE_H
#define DRE_DOCSTORE_H

#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct docstore docstore;

/* The FTS5 tokenizer of docs_fts, and how its matches are ranked: FTS5's bm25() with its
 * constants, both columns weighted 1, every query term OR-ed (recorded in meta.json). */
#define DOCSTORE_BM25_TOKENIZER "porter unicode61"
#define DOCSTORE_BM25_RANKING "bm25 (FTS5: k1 = 1.2, b = 0.75; title and text weighted 1)"
#define DOCSTORE_BM25_QUERY "every query term OR-ed"

/* Opens path read-only, or for writing (creating the file and table if needed). A
 * writable store uses SQLite's write-ahead log, so a killed writer loses at most the
 * transaction in flight and never corrupts what was committed; dre_docstore_close turns the
 * log back into a single file. */
dre_status dre_docstore_open(const char *path, int writable, docstore **out);
void dre_docstore_close(docstore *ds);

/* Groups the following adds into one transaction; commit makes them durable against a
 * killed process (and, with dre_docstore_sync, against a crash of the machine). */
dre_status dre_docstore_begin(docstore *ds);
dre_status dre_docstore_commit(docstore *ds);
dre_status dre_docstore_sync(docstore *ds);

/* Adds a document (and its BM25 entry where the store has docs_fts). title may be NULL
 * (stored as NULL, read back as ""). If id is already present nothing is added and
 * *duplicate_row receives the row holding it; otherwise *duplicate_row is -1. */
dre_status dre_docstore_add(docstore *ds, int64_t row, const char *id, const char *title,
                            const char *text, int64_t *duplicate_row);

/* One past the largest row (rows are dense from 0, so this is the count). */
dre_status dre_docstore_count(docstore *ds, int64_t *count);

/* Fills doc with copies of the row's strings (free with dre_doc_clear). DRE_ERR_INVALID_ARG
 * if the row does not exist. */
dre_status dre_docstore_get(docstore *ds, int64_t row, dre_doc *doc);

/* The row of an external id, or -1 if absent. */
dre_status dre_docstore_find(docstore *ds, const char *id, int64_t *row);

/* Deletes rows >= first_row (an interrupted embed's uncheckpointed tail), their BM25
 * entries and chunks included. */
dre_status dre_docstore_truncate(docstore *ds, int64_t first_row);

/* ---- chunks: a chunked index's vector rows and the documents they come from.
 * Table chunks(row INTEGER PRIMARY KEY, doc INTEGER NOT NULL, ord INTEGER NOT NULL,
 * first INTEGER NOT NULL, tokens INTEGER NOT NULL): vector row -> document row, the
 * chunk's number in its document, its first wordpiece and its length in tokens. */

int dre_docstore_has_chunks(const docstore *ds);
/* Creates the table (writable store). */
dre_status dre_docstore_add_chunks_table(docstore *ds);
dre_status dre_docstore_add_chunk(docstore *ds, int64_t row, int64_t doc, int32_t ord,
                                  int32_t first, int32_t tokens);
/* One past the largest chunk row (0 without chunks). */
dre_status dre_docstore_chunk_count(docstore *ds, int64_t *count);
/* doc[i], ord[i] for chunk rows i in 0 .. n - 1, which must all exist. */
dre_status dre_docstore_chunk_map(docstore *ds, int64_t n, int64_t *doc, int32_t *ord);

/* ---- BM25 */

/* Whether the store has docs_fts. */
int dre_docstore_has_bm25(const docstore *ds);
/* Creates docs_fts (writable store) and indexes every document already in docs. */
dre_status dre_docstore_add_bm25(docstore *ds);

/* The FTS5 expression for a query of len bytes: each token FTS5's tokenizer finds in it
 * becomes a quoted phrase, the phrases OR-ed ("a b" -> "a" OR "b"). So no query can be a
 * syntax error or change meaning: quotes, operators (AND OR NOT NEAR), column filters,
 * prefixes (*), parentheses, control characters and invalid UTF-8 are separators or
 * plain words. *expr receives a malloc'ed string, "" when the query has no token. */
dre_status dre_docstore_bm25_expression(docstore *ds, const char *query, size_t len, char **expr);

/* The k best documents for a query (len bytes) by BM25, best first: rows and scores
 * (FTS5's bm25() negated, so higher is better; equal scores by row). *n receives how
 * many matched, at most k. DRE_ERR_UNSUPPORTED without docs_fts. The same as
 * dre_docstore_bm25_search_stats with the store's own statistics. */
dre_status dre_docstore_bm25_search(docstore *ds, const char *query, size_t len, int32_t k,
                                    int64_t *rows, double *scores, int32_t *n);

/* The collection statistics FTS5's bm25() ranks a query's matches by: how many documents,
 * their tokens (title and text together), and for each phrase of the query's expression
 * (dre_docstore_bm25_expression: one per query token, in order) how many documents hold it.
 * Counts alone, so the statistics of several stores (the shards of an index, in one process
 * or many) add up field by field to those of one store holding all their documents; as a
 * message they are 2 + n_phrases int64 values. */
typedef struct bm25_stats {
    int64_t n_rows;       /* documents (FTS5's xRowCount) */
    int64_t n_tokens;     /* their tokens, every column (xColumnTotalSize(-1)) */
    int32_t n_phrases;    /* phrases of the query's expression */
    int64_t *phrase_rows; /* [n_phrases]: documents holding each (malloc'ed) */
} bm25_stats;

/* A store's statistics for a query (len bytes); release with dre_bm25_stats_free. */
dre_status dre_docstore_bm25_stats(docstore *ds, const char *query, size_t len, bm25_stats *stats);
/* into += add, field by field; DRE_ERR_INVALID_ARG if they count different phrases. An
 * all-zero into (n_phrases 0, phrase_rows NULL) takes add's phrases. */
dre_status dre_bm25_stats_add(bm25_stats *into, const bm25_stats *add);
void dre_bm25_stats_free(bm25_stats *stats);

/* dre_docstore_bm25_search ranking by the given statistics in place of the store's own:
 * FTS5's bm25() formula, operation for operation (so with the store's own statistics the
 * scores are bm25()'s bit for bit), its N, average length and document frequencies taken
 * from stats. stats->n_phrases must be the query's. */
dre_status dre_docstore_bm25_search_stats(docstore *ds, const char *query, size_t len,
                                          const bm25_stats *stats, int32_t k, int64_t *rows,
                                          double *scores, int32_t *n);

/* Copies the database at src_path to dst_path (replacing it) with SQLite's backup API. */
dre_status dre_docstore_copy(const char *src_path, const char *dst_path);

#ifdef __cplusplus
}
#endif
#endif
