/* index/docstore_merge.h — one docstore from several (index/docstore_merge.c). */
#ifndef DRE_INDEX_DOCSTORE_MERGE_H
#define DRE_INDEX_DOCSTORE_MERGE_H

#include <stdint.h>

#include "index/docstore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Appends the documents (and chunks) of the finished docs.sqlite at src_path to ds (open for
 * writing), their rows shifted by row_offset, their chunks' vector rows by vector_offset. The
 * BM25 table is left behind until dre_docstore_rebuild_bm25. */
dre_status dre_docstore_append_from(docstore *ds, const char *src_path, int64_t row_offset,
                                    int64_t vector_offset);
/* Rebuilds the BM25 table from the documents (nothing without one). */
dre_status dre_docstore_rebuild_bm25(docstore *ds);

#ifdef __cplusplus
}
#endif
#endif
