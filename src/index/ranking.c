/* index/ranking.c — see index/ranking.h. */
#include "index/ranking.h"

#include <stdlib.h>

static int up_rows(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static int down_rows(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->row < b->row) - (a->row > b->row);
}

int32_t dre_rank_vectors(ranked *c, int64_t m, int32_t k) {
    qsort(c, (size_t)m, sizeof *c, up_rows);
    const int32_t kept = m < k ? (int32_t)m : k;
    qsort(c, (size_t)kept, sizeof *c, down_rows);
    return kept;
}

int32_t dre_rank_bm25(ranked *c, int64_t m, int32_t k) {
    qsort(c, (size_t)m, sizeof *c, up_rows);
    return m < k ? (int32_t)m : k;
}

int32_t dre_shard_of_row(const int64_t *starts, int32_t n_shards, int64_t row) {
    int32_t lo = 0, hi = n_shards - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        if (starts[mid] <= row)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}
