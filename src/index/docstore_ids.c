/* index/docstore_ids.c — every (row, id) of a finished docs.sqlite, in row order, through a
 * connection of its own: what a sharded embed reads to find an id in two shards. */
#include <sqlite3.h>

#include "common/common.h"
#include "index/docstore_ids.h"

dre_status dre_docstore_each_id(const char *path, docstore_id_fn fn, void *user) {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    dre_status st = DRE_OK;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT row, id FROM docs ORDER BY row", -1, &stmt, NULL) !=
            SQLITE_OK) {
        st = dre_set_error(DRE_ERR_INDEX, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    }
    int rc = SQLITE_DONE;
    while (st == DRE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        st = fn(user, sqlite3_column_int64(stmt, 0), (const char *)sqlite3_column_text(stmt, 1),
                (size_t)sqlite3_column_bytes(stmt, 1));
    if (st == DRE_OK && rc != SQLITE_DONE)
        st = dre_set_error(DRE_ERR_INDEX, "%s: reading ids: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return st;
}
