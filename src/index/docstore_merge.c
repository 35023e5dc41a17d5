/* index/docstore_merge.c — one docstore from several (dre index merge): the documents and
 * chunks of finished docs.sqlite files appended with their rows shifted, then the BM25 table
 * rebuilt over them all. */
#include <sqlite3.h>

#include "common/common.h"
#include "index/docstore_impl.h"
#include "index/docstore_merge.h"

/* Runs an sqlite3_mprintf-made statement (NULL: out of memory) and frees it. */
static dre_status exec_made(docstore *ds, char *sql) {
    if (!sql) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", ds->path);
    dre_status st = dre_docstore_exec(ds, sql);
    sqlite3_free(sql);
    return st;
}

dre_status dre_docstore_append_from(docstore *ds, const char *src_path, int64_t row_offset,
                                    int64_t vector_offset) {
    if (!ds->writable) return dre_set_error(DRE_ERR_INVALID_ARG, "%s: opened read-only", ds->path);
    DRE_TRY(exec_made(ds, sqlite3_mprintf("ATTACH DATABASE %Q AS src", src_path)));
    dre_status st = exec_made(ds, sqlite3_mprintf("INSERT INTO main.docs (row, id, title, text) "
                                                  "SELECT row + %lld, id, title, text FROM "
                                                  "src.docs ORDER BY row",
                                                  (long long)row_offset));
    if (st == DRE_OK && ds->chunks)
        st = exec_made(ds, sqlite3_mprintf("INSERT INTO main.chunks (row, doc, ord, first, tokens) "
                                           "SELECT row + %lld, doc + %lld, ord, first, tokens FROM "
                                           "src.chunks ORDER BY row",
                                           (long long)vector_offset, (long long)row_offset));
    dre_status detach = dre_docstore_exec(ds, "DETACH DATABASE src");
    return st != DRE_OK ? st : detach;
}

dre_status dre_docstore_rebuild_bm25(docstore *ds) {
    if (!ds->bm25) return DRE_OK;
    return dre_docstore_exec(ds, "INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')");
}
