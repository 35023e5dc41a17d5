/* index/docstore_ids.h — reading the ids of a finished docs.sqlite (index/docstore_ids.c). */
#ifndef DRE_INDEX_DOCSTORE_IDS_H
#define DRE_INDEX_DOCSTORE_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called for each document, in row order; a status other than DRE_OK stops the walk. */
typedef dre_status (*docstore_id_fn)(void *user, int64_t row, const char *id, size_t len);

/* Walks the (row, id) pairs of the docs.sqlite at path, read-only. */
dre_status dre_docstore_each_id(const char *path, docstore_id_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
