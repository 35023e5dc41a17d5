/* search/fusion.c — reciprocal-rank and convex fusion of a dense and a BM25 list (search/fusion.h).
 */
#include "search/fusion.h"

#include <stdlib.h>
#include <string.h>

/* Best fused score first; equal scores by row, so the order depends on nothing else. */
static int by_score(const void *a, const void *b) {
    const dre_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* (s - min) / (max - min) over a list; 1 for every entry when they are all equal. */
static void min_max(const ranked *list, int32_t n, double *lo, double *span) {
    *lo = n > 0 ? list[0].score : 0;
    double hi = *lo;
    for (int32_t i = 1; i < n; i++) {
        if (list[i].score < *lo) *lo = list[i].score;
        if (list[i].score > hi) hi = list[i].score;
    }
    *span = hi - *lo;
}

static double normalised(double score, double lo, double span) {
    return span > 0 ? (score - lo) / span : 1.0;
}

int32_t dre_fuse(dre_fusion fusion, double rrf_k, double alpha, const ranked *dense,
                 int32_t n_dense, const ranked *bm25, int32_t n_bm25, int32_t k, dre_hit *scratch,
                 dre_hit *out) {
    int32_t n = 0;
    for (int32_t i = 0; i < n_dense; i++)
        scratch[n++] = (dre_hit){.row = dense[i].row,
                                 .dense_rank = i + 1,
                                 .dense_score = (float)dense[i].score,
                                 .chunk = dense[i].chunk};
    /* lists are short (depth): a linear look-up per BM25 entry is cheap enough */
    for (int32_t i = 0; i < n_bm25; i++) {
        int32_t j = 0;
        while (j < n_dense && scratch[j].row != bm25[i].row)
            j++;
        if (j == n_dense) {
            j = n++;
            scratch[j] = (dre_hit){.row = bm25[i].row, .chunk = -1};
        }
        scratch[j].bm25_rank = i + 1;
        scratch[j].bm25_score = bm25[i].score;
    }
    double dense_lo, dense_span, bm25_lo, bm25_span;
    min_max(dense, n_dense, &dense_lo, &dense_span);
    min_max(bm25, n_bm25, &bm25_lo, &bm25_span);
    for (int32_t j = 0; j < n; j++) {
        dre_hit *h = &scratch[j];
        double s = 0;
        if (fusion == DRE_FUSION_CONVEX) {
            if (h->dense_rank)
                s += alpha * normalised(dense[h->dense_rank - 1].score, dense_lo, dense_span);
            if (h->bm25_rank) s += (1 - alpha) * normalised(h->bm25_score, bm25_lo, bm25_span);
        } else {
            if (h->dense_rank) s += 1.0 / (rrf_k + h->dense_rank);
            if (h->bm25_rank) s += 1.0 / (rrf_k + h->bm25_rank);
        }
        h->score = s;
    }
    qsort(scratch, (size_t)n, sizeof *scratch, by_score);
    if (n > k) n = k;
    memcpy(out, scratch, (size_t)n * sizeof *out);
    return n;
}

int32_t dre_fuse_single(const ranked *list, int32_t n, int is_bm25, int32_t k, dre_hit *out) {
    if (n > k) n = k;
    for (int32_t i = 0; i < n; i++) {
        out[i] = (dre_hit){.row = list[i].row, .score = list[i].score, .chunk = -1};
        if (is_bm25) {
            out[i].bm25_rank = i + 1;
            out[i].bm25_score = list[i].score;
        } else {
            out[i].dense_rank = i + 1;
            out[i].dense_score = (float)list[i].score;
            out[i].chunk = list[i].chunk;
        }
    }
    return n;
}
