/* search/fusion.h — hybrid search's arithmetic: the dense and the BM25 lists of one query merged
 * into one ranking (reciprocal rank or convex combination; see dre_fusion in dre.h). */
#ifndef DRE_FUSION_H
#define DRE_FUSION_H

#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A retriever's result: a document and its score, lists best first. */
typedef struct ranked {
    int64_t row;
    double score;
    int32_t chunk; /* dense: the document's best chunk */
} ranked;

/* Fuses dense[0 .. n_dense) and bm25[0 .. n_bm25) (ranks are positions + 1; a row appears
 * at most once per list) into out, best first by fused score, equal scores by row: at most
 * k hits, each with both lists' ranks and scores. scratch holds n_dense + n_bm25 hits.
 * Returns how many were written. */
int32_t dre_fuse(dre_fusion fusion, double rrf_k, double alpha, const ranked *dense,
                 int32_t n_dense, const ranked *bm25, int32_t n_bm25, int32_t k, dre_hit *scratch,
                 dre_hit *out);

/* One list as hits (dense or BM25 mode): score = the list's, its rank set, the other 0. */
int32_t dre_fuse_single(const ranked *list, int32_t n, int is_bm25, int32_t k, dre_hit *out);

#ifdef __cplusplus
}
#endif
#endif
