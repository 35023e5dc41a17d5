/* search/searcher.h — a searcher over an index already opened: what a process of an MPI job
 * (dist/) searches through, its index a run of shards that asks the other ranks for the rest. */
#ifndef DRE_SEARCH_SEARCHER_H
#define DRE_SEARCH_SEARCHER_H

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dre_searcher_open_with, on index (the searcher's from then on, closed with it, even when
 * this fails); index_dir names it in messages. */
dre_status dre_searcher_open_index(dre_index *index, const char *index_dir, const char *model_dir,
                                   dre_device device, dre_precision precision,
                                   dre_searcher **out);

#ifdef __cplusplus
}
#endif
#endif
