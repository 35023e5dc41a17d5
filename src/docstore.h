/* docstore.h — the SQLite side of an index: one row per document, keyed by the same
 * row number as its vector in FAISS, holding the external id, title and text.
 * Table: docs(row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, text TEXT). */
#ifndef DRE_DOCSTORE_H
#define DRE_DOCSTORE_H

#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct docstore docstore;

/* Opens path read-only, or for writing (creating the file and table if needed). A
 * writable store uses SQLite's write-ahead log, so a killed writer loses at most the
 * transaction in flight and never corrupts what was committed; docstore_close turns the
 * log back into a single file. */
dre_status docstore_open(const char *path, int writable, docstore **out);
void docstore_close(docstore *ds);

/* Groups the following adds into one transaction; commit makes them durable against a
 * killed process (and, with docstore_sync, against a crash of the machine). */
dre_status docstore_begin(docstore *ds);
dre_status docstore_commit(docstore *ds);
dre_status docstore_sync(docstore *ds);

/* Adds a document. title may be NULL (stored as NULL, read back as ""). If id is already
 * present nothing is added and *duplicate_row receives the row holding it; otherwise
 * *duplicate_row is -1. */
dre_status docstore_add(docstore *ds, int64_t row, const char *id, const char *title,
                        const char *text, int64_t *duplicate_row);

/* One past the largest row (rows are dense from 0, so this is the count). */
dre_status docstore_count(docstore *ds, int64_t *count);

/* Fills doc with copies of the row's strings (free with dre_doc_clear). DRE_ERR_INVALID_ARG
 * if the row does not exist. */
dre_status docstore_get(docstore *ds, int64_t row, dre_doc *doc);

/* The row of an external id, or -1 if absent. */
dre_status docstore_find(docstore *ds, const char *id, int64_t *row);

/* Deletes rows >= first_row (an interrupted embed's uncheckpointed tail). */
dre_status docstore_truncate(docstore *ds, int64_t first_row);

/* Copies the database at src_path to dst_path (replacing it) with SQLite's backup API. */
dre_status docstore_copy(const char *src_path, const char *dst_path);

#ifdef __cplusplus
}
#endif
#endif
