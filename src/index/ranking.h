/* index/ranking.h — the one rule for ordering a ranked list, wherever lists are made or merged
 * (a Flat search in vindex.c, shards in shards.c, ranks of mpirun serve in dist/serve.c), so
 * that a list merged from parts equals the list of the whole, ties included; and the shard that
 * holds a global row. */
#ifndef DRE_INDEX_RANKING_H
#define DRE_INDEX_RANKING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ranked {
    double score;
    int64_t row;
} ranked;

/* Keeps the k best of c[0 .. m) at its front and returns how many (min(m, k)), best first.
 * Vectors as FAISS's k-heap keeps them: of equal scores at the k-th place the lowest rows,
 * then equal scores by descending row. */
int32_t dre_rank_vectors(ranked *c, int64_t m, int32_t k);
/* BM25: equal scores by ascending row, as its ORDER BY gives them. */
int32_t dre_rank_bm25(ranked *c, int64_t m, int32_t k);

/* The shard holding global row `row` of starts[0 .. n_shards] (document or vector rows): the
 * last r with starts[r] <= row, so empty shards (starts[r] == starts[r + 1]) are passed. */
int32_t dre_shard_of_row(const int64_t *starts, int32_t n_shards, int64_t row);

#ifdef __cplusplus
}
#endif
#endif
