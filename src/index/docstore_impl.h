/* index/docstore_impl.h — the docstore handle's insides, shared by its two files:
 * index/docstore.c (documents, chunks, the BM25 table's writing side) and
 * index/docstore_bm25.c (BM25 queries, statistics and ranking). Nothing else includes it. */
#ifndef DRE_DOCSTORE_IMPL_H
#define DRE_DOCSTORE_IMPL_H

#include <sqlite3.h>

#include "index/docstore.h"

struct docstore {
    sqlite3 *db;
    char *path;
    int writable;
    int in_transaction;
    sqlite3_stmt *insert, *select_row, *select_id, *max_row;
    int bm25;   /* docs_fts exists */
    int chunks; /* the chunks table exists */
    sqlite3_stmt *chunk_insert;
    sqlite3_stmt *fts_insert;
    /* BM25 (docstore_bm25.c): ranked search, statistics of a query, and of the table */
    sqlite3_stmt *fts_search, *fts_phrase_stats, *fts_table_stats;
    /* FTS5's unicode61 tokenizer, for cutting queries into terms (made on first use) */
    fts5_tokenizer splitter;
    Fts5Tokenizer *splitter_handle;
};

/* SQLite's last error on ds as a dre_status: DRE_ERR_IO with the system's reason for a failed
 * read or write, else DRE_ERR_INDEX; the message names the file and what was being done. */
dre_status dre_docstore_db_error(const docstore *ds, const char *what);
dre_status dre_docstore_exec(docstore *ds, const char *sql);
dre_status dre_docstore_prepare(docstore *ds, const char *sql, sqlite3_stmt **stmt);

/* For a store with docs_fts: registers dre's FTS5 functions on the connection and prepares
 * the BM25 statements (the insert too when writable). */
dre_status dre_docstore_bm25_open(docstore *ds);
/* Finalizes them. */
void dre_docstore_bm25_close(docstore *ds);

#endif
