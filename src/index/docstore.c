/* index/docstore.c — documents in SQLite, addressed by the row number their vector has in
 * FAISS, their chunks, and the writing side of their BM25 index (an FTS5 table with the
 * documents as external content; searching it is index/docstore_bm25.c). Statements are
 * prepared once per handle; a writer batches adds into transactions and runs in WAL mode
 * while open. */
#define _POSIX_C_SOURCE 200809L
#include "index/docstore.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "index/docstore_impl.h"

/* A failed read or write of the files is DRE_ERR_IO, with the system's reason: SQLite
 * says only "disk I/O error" where the disk is full or a file size limit was hit. */
static dre_status db_failure(const docstore *ds, const char *what, const char *msg) {
    int code = sqlite3_errcode(ds->db) & 0xff, err = sqlite3_system_errno(ds->db);
    if ((code == SQLITE_IOERR || code == SQLITE_FULL) && err)
        return dre_set_error(DRE_ERR_IO, "%s: %s: %s (%s)", ds->path, what, msg, strerror(err));
    return dre_set_error(DRE_ERR_INDEX, "%s: %s: %s", ds->path, what, msg);
}

dre_status dre_docstore_db_error(const docstore *ds, const char *what) {
    return db_failure(ds, what, sqlite3_errmsg(ds->db));
}

dre_status dre_docstore_exec(docstore *ds, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(ds->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        dre_status st = db_failure(ds, sql, msg ? msg : "?");
        sqlite3_free(msg);
        return st;
    }
    return DRE_OK;
}

dre_status dre_docstore_prepare(docstore *ds, const char *sql, sqlite3_stmt **stmt) {
    if (sqlite3_prepare_v2(ds->db, sql, -1, stmt, NULL) != SQLITE_OK)
        return dre_docstore_db_error(ds, sql);
    return DRE_OK;
}

/* 1 if the database has a table (or virtual table) of that name. */
static dre_status has_table(docstore *ds, const char *name, int *out) {
    sqlite3_stmt *s = NULL;
    DRE_TRY(dre_docstore_prepare(
        ds, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", &s));
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return dre_docstore_db_error(ds, "schema");
    *out = rc == SQLITE_ROW;
    return DRE_OK;
}

static dre_status open_chunk_statements(docstore *ds) {
    return dre_docstore_prepare(
        ds, "INSERT INTO chunks (row, doc, ord, first, tokens) VALUES (?, ?, ?, ?, ?)",
        &ds->chunk_insert);
}

static dre_status open_statements(docstore *ds) {
    if (ds->writable) {
        DRE_TRY(dre_docstore_exec(ds, "PRAGMA journal_mode=WAL"));
        DRE_TRY(dre_docstore_exec(ds, "PRAGMA synchronous=NORMAL"));
        DRE_TRY(dre_docstore_exec(ds, "CREATE TABLE IF NOT EXISTS docs (row INTEGER PRIMARY KEY, "
                                      "id TEXT NOT NULL UNIQUE, title TEXT, text TEXT NOT NULL)"));
        DRE_TRY(dre_docstore_prepare(
            ds, "INSERT INTO docs (row, id, title, text) VALUES (?, ?, ?, ?)", &ds->insert));
    }
    DRE_TRY(dre_docstore_prepare(ds, "SELECT id, title, text FROM docs WHERE row = ?",
                                 &ds->select_row));
    DRE_TRY(dre_docstore_prepare(ds, "SELECT row FROM docs WHERE id = ?", &ds->select_id));
    DRE_TRY(dre_docstore_prepare(ds, "SELECT MAX(row) FROM docs", &ds->max_row));
    DRE_TRY(has_table(ds, "docs_fts", &ds->bm25));
    if (ds->bm25) DRE_TRY(dre_docstore_bm25_open(ds));
    DRE_TRY(has_table(ds, "chunks", &ds->chunks));
    if (ds->chunks && ds->writable) DRE_TRY(open_chunk_statements(ds));
    return DRE_OK;
}

dre_status dre_docstore_open(const char *path, int writable, docstore **out) {
    if (!path || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_docstore_open: NULL argument");
    *out = NULL;
    docstore *ds = calloc(1, sizeof *ds);
    if (!ds) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    ds->path = malloc(strlen(path) + 1);
    if (!ds->path) {
        free(ds);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(ds->path, path);
    ds->writable = writable;
    int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &ds->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        dre_status st = dre_set_error(writable ? DRE_ERR_IO : DRE_ERR_INDEX, "%s: cannot open: %s",
                                      path, ds->db ? sqlite3_errmsg(ds->db) : "out of memory");
        dre_docstore_close(ds);
        return st;
    }
    sqlite3_busy_timeout(ds->db, 5000);
    dre_status st = open_statements(ds);
    if (st != DRE_OK) {
        dre_docstore_close(ds);
        return st;
    }
    *out = ds;
    return DRE_OK;
}

void dre_docstore_close(docstore *ds) {
    if (!ds) return;
    if (ds->in_transaction) sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(ds->insert);
    sqlite3_finalize(ds->select_row);
    sqlite3_finalize(ds->select_id);
    sqlite3_finalize(ds->max_row);
    sqlite3_finalize(ds->chunk_insert);
    dre_docstore_bm25_close(ds);
    /* Leave a single file behind: readers open it read-only, and a WAL database opened
     * read-only needs its -shm file. */
    if (ds->writable && ds->db)
        sqlite3_exec(ds->db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    sqlite3_close(ds->db);
    free(ds->path);
    free(ds);
}

dre_status dre_docstore_begin(docstore *ds) {
    if (ds->in_transaction) return DRE_OK;
    DRE_TRY(dre_docstore_exec(ds, "BEGIN"));
    ds->in_transaction = 1;
    return DRE_OK;
}

dre_status dre_docstore_commit(docstore *ds) {
    if (!ds->in_transaction) return DRE_OK;
    ds->in_transaction = 0;
    return dre_docstore_exec(ds, "COMMIT");
}

dre_status dre_docstore_sync(docstore *ds) {
    DRE_TRY(dre_docstore_commit(ds));
    /* Copies the log into the database file and syncs it (synchronous=NORMAL). */
    if (sqlite3_wal_checkpoint_v2(ds->db, NULL, SQLITE_CHECKPOINT_FULL, NULL, NULL) != SQLITE_OK)
        return dre_docstore_db_error(ds, "checkpoint");
    return DRE_OK;
}

dre_status dre_docstore_find(docstore *ds, const char *id, int64_t *row) {
    sqlite3_stmt *s = ds->select_id;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *row = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return dre_docstore_db_error(ds, "find id");
    return DRE_OK;
}

static dre_status bm25_add(docstore *ds, int64_t row, const char *title, const char *text) {
    sqlite3_stmt *s = ds->fts_insert;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, row);
    if (title)
        sqlite3_bind_text(s, 2, title, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_text(s, 3, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? DRE_OK : dre_docstore_db_error(ds, "BM25 insert");
}

dre_status dre_docstore_add(docstore *ds, int64_t row, const char *id, const char *title,
                            const char *text, int64_t *duplicate_row) {
    if (!ds->writable) return dre_set_error(DRE_ERR_INVALID_ARG, "%s: opened read-only", ds->path);
    *duplicate_row = -1;
    sqlite3_stmt *s = ds->insert;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, row);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (title)
        sqlite3_bind_text(s, 3, title, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_text(s, 4, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_DONE) return ds->bm25 ? bm25_add(ds, row, title, text) : DRE_OK;
    if (sqlite3_extended_errcode(ds->db) == SQLITE_CONSTRAINT_UNIQUE) {
        DRE_TRY(dre_docstore_find(ds, id, duplicate_row));
        if (*duplicate_row >= 0) return DRE_OK;
    }
    return dre_docstore_db_error(ds, "insert");
}

dre_status dre_docstore_count(docstore *ds, int64_t *count) {
    sqlite3_stmt *s = ds->max_row;
    sqlite3_reset(s);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return dre_docstore_db_error(ds, "count rows");
    }
    *count = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 0) + 1;
    sqlite3_reset(s);
    return DRE_OK;
}

static char *column_copy(sqlite3_stmt *s, int col) {
    const unsigned char *v = sqlite3_column_text(s, col);
    size_t n = v ? (size_t)sqlite3_column_bytes(s, col) : 0;
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, v, n);
    p[n] = '\0';
    return p;
}

dre_status dre_docstore_get(docstore *ds, int64_t row, dre_doc *doc) {
    memset(doc, 0, sizeof *doc);
    sqlite3_stmt *s = ds->select_row;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, row);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: no document at row %lld", ds->path,
                             (long long)row);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return dre_docstore_db_error(ds, "read row");
    }
    doc->row = row;
    doc->id = column_copy(s, 0);
    doc->title = column_copy(s, 1);
    doc->text = column_copy(s, 2);
    sqlite3_reset(s);
    if (!doc->id || !doc->title || !doc->text) {
        free(doc->id);
        free(doc->title);
        free(doc->text);
        memset(doc, 0, sizeof *doc);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", ds->path);
    }
    return DRE_OK;
}

dre_status dre_docstore_truncate(docstore *ds, int64_t first_row) {
    char sql[160];
    /* An external-content FTS5 table forgets a row given the values it indexed. */
    if (ds->bm25) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO docs_fts (docs_fts, rowid, title, text) SELECT 'delete', row, "
                 "title, text FROM docs WHERE row >= %lld",
                 (long long)first_row);
        DRE_TRY(dre_docstore_exec(ds, sql));
    }
    if (ds->chunks) {
        snprintf(sql, sizeof sql, "DELETE FROM chunks WHERE doc >= %lld", (long long)first_row);
        DRE_TRY(dre_docstore_exec(ds, sql));
    }
    snprintf(sql, sizeof sql, "DELETE FROM docs WHERE row >= %lld", (long long)first_row);
    return dre_docstore_exec(ds, sql);
}

/* ------------------------------------------------------------------ chunks */

int dre_docstore_has_chunks(const docstore *ds) { return ds->chunks; }

dre_status dre_docstore_add_chunks_table(docstore *ds) {
    if (!ds->writable) return dre_set_error(DRE_ERR_INVALID_ARG, "%s: opened read-only", ds->path);
    if (ds->chunks) return DRE_OK;
    DRE_TRY(dre_docstore_exec(
        ds, "CREATE TABLE chunks (row INTEGER PRIMARY KEY, doc INTEGER NOT NULL, "
            "ord INTEGER NOT NULL, first INTEGER NOT NULL, tokens INTEGER NOT NULL)"));
    ds->chunks = 1;
    return open_chunk_statements(ds);
}

dre_status dre_docstore_add_chunk(docstore *ds, int64_t row, int64_t doc, int32_t ord,
                                  int32_t first, int32_t tokens) {
    if (!ds->chunk_insert)
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: no chunks table", ds->path);
    sqlite3_stmt *s = ds->chunk_insert;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, row);
    sqlite3_bind_int64(s, 2, doc);
    sqlite3_bind_int(s, 3, ord);
    sqlite3_bind_int(s, 4, first);
    sqlite3_bind_int(s, 5, tokens);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? DRE_OK : dre_docstore_db_error(ds, "insert chunk");
}

dre_status dre_docstore_chunk_count(docstore *ds, int64_t *count) {
    *count = 0;
    if (!ds->chunks) return DRE_OK;
    sqlite3_stmt *s = NULL;
    DRE_TRY(dre_docstore_prepare(ds, "SELECT MAX(row) FROM chunks", &s));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        *count = sqlite3_column_int64(s, 0) + 1;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? DRE_OK : dre_docstore_db_error(ds, "count chunks");
}

dre_status dre_docstore_chunk_map(docstore *ds, int64_t n, int64_t *doc, int32_t *ord) {
    sqlite3_stmt *s = NULL;
    DRE_TRY(dre_docstore_prepare(ds, "SELECT row, doc, ord FROM chunks ORDER BY row", &s));
    int64_t i = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && i < n) {
        if (sqlite3_column_int64(s, 0) != i) break;
        doc[i] = sqlite3_column_int64(s, 1);
        ord[i] = sqlite3_column_int(s, 2);
        i++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return dre_docstore_db_error(ds, "read chunks");
    if (i != n)
        return dre_set_error(DRE_ERR_INDEX, "%s: the chunks table lacks row %lld of %lld", ds->path,
                             (long long)i, (long long)n);
    return DRE_OK;
}

dre_status dre_docstore_copy(const char *src_path, const char *dst_path) {
    sqlite3 *src = NULL, *dst = NULL;
    dre_status st = DRE_OK;
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = dre_set_error(DRE_ERR_INDEX, "%s: cannot open: %s", src_path,
                           src ? sqlite3_errmsg(src) : "out of memory");
        goto done;
    }
    if (sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        st = dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", dst_path,
                           dst ? sqlite3_errmsg(dst) : "out of memory");
        goto done;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        st = dre_set_error(DRE_ERR_INDEX, "%s -> %s: %s", src_path, dst_path, sqlite3_errmsg(dst));
        goto done;
    }
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    int err = sqlite3_system_errno(dst);
    if (rc != SQLITE_DONE && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL) && err)
        st = dre_set_error(DRE_ERR_IO, "%s -> %s: copy failed: %s (%s)", src_path, dst_path,
                           sqlite3_errstr(rc), strerror(err));
    else if (rc != SQLITE_DONE)
        st = dre_set_error(DRE_ERR_INDEX, "%s -> %s: copy failed: %s", src_path, dst_path,
                           sqlite3_errstr(rc));
done:
    sqlite3_close(src);
    sqlite3_close(dst);
    return st;
}
