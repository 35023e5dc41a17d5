/* gpu/search.c — exact inner-product search on the GPU. The vectors are uploaded once (fp32,
 * or fp16 for half the memory). Queries go in batches of up to 1024: cuBLAS scores a batch
 * against one chunk of the vectors at a time, and dre_topk_launch reduces each chunk's scores
 * together with the k best of the chunks before, as FAISS's Flat index would (ties too).
 * With fp16 vectors the GPU finds more candidates than asked for, and the host re-scores
 * them in fp32 from the caller's vectors: where the fp16 error bound proves that no vector
 * left out could reach the k-th exact score, the answer is FAISS's (scores to fp32
 * rounding); where it cannot (a crowd of near-ties at the boundary), that query is scanned
 * exactly on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gpu/cuda_check.h"
#include "kernels.h"

#define QUERY_BATCH 1024
/* A chunk's score matrix stays within this, so that the GEMM writes it to L2 and the top-k
 * reads it back from there, never from DRAM (H100: 50 MB of L2, H200: 60): 6,144 vectors a
 * chunk for a batch of 1,024 queries, all of a million for one query. */
#define SCORE_L2_BYTES ((size_t)24 << 20)
#define CONVERT_PIECE ((size_t)1 << 22) /* floats converted to fp16 per upload */
#define RESCORE_EXTRA 16                /* fp16 storage: candidates found beyond k, at the least */

struct dre_gpu_search {
    int64_t n;
    int32_t dim;
    int fp16;
    const float *host_vectors; /* fp16: the caller's fp32 vectors, for re-scoring */
    float max_norm;            /* fp16: the largest vector norm, for the error bound */
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *vectors;         /* device [n, dim], fp32 or fp16 */
    void *queries;         /* device [QUERY_BATCH, dim], same type */
    float *scores;         /* device [nq, chunk] for a batch of nq, SCORE_L2_BYTES */
    float *best_scores[2]; /* device [QUERY_BATCH, k] twice: the k best so far, and the next */
    int64_t *best_ids[2];
    void *host_queries; /* pinned [QUERY_BATCH, dim] */
    float *host_scores; /* pinned [QUERY_BATCH, TOPK_MAX_K] */
    int64_t *host_ids;
};

static size_t elem_size(const dre_gpu_search *gs) {
    return gs->fp16 ? sizeof(fp16_t) : sizeof(float);
}

static dre_status device_alloc(void **ptr, size_t bytes, const char *what_for, const char *hint) {
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err != cudaSuccess) {
        *ptr = NULL;
        (void)cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "gpu_search: cudaMalloc of %zu MiB for %s", bytes >> 20,
                 what_for);
        return dre_gpu_cuda_error(err, what, hint, __FILE__, __LINE__);
    }
    return DRE_OK;
}

static dre_status upload_vectors(dre_gpu_search *gs, const float *vectors) {
    const size_t count = (size_t)gs->n * (size_t)gs->dim;
    /* Copies go on gs->stream and are waited for: the non-blocking stream that searches run
     * on is not ordered after legacy default-stream work, and a pageable cudaMemcpy may
     * return before its DMA has landed. */
    if (!gs->fp16) {
        CUDA_CHECK(cudaMemcpyAsync(gs->vectors, vectors, count * sizeof(float),
                                   cudaMemcpyHostToDevice, gs->stream));
        CUDA_CHECK(cudaStreamSynchronize(gs->stream));
        return DRE_OK;
    }
    const size_t piece = count < CONVERT_PIECE ? count : CONVERT_PIECE;
    fp16_t *staging = malloc(piece * sizeof(fp16_t));
    if (!staging) return dre_set_error(DRE_ERR_NOMEM, "gpu_search: out of host memory");
    fp16_t *dst = gs->vectors;
    for (size_t at = 0; at < count; at += piece) {
        const size_t m = count - at < piece ? count - at : piece;
        for (size_t i = 0; i < m; i++)
            staging[i] = float_to_fp16(vectors[at + i]);
        cudaError_t err = cudaMemcpyAsync(dst + at, staging, m * sizeof(fp16_t),
                                          cudaMemcpyHostToDevice, gs->stream);
        if (err == cudaSuccess) err = cudaStreamSynchronize(gs->stream); /* staging is reused */
        if (err != cudaSuccess) {
            free(staging);
            return dre_gpu_cuda_error(err, "gpu_search: cudaMemcpy of vectors", NULL, __FILE__,
                                      __LINE__);
        }
    }
    free(staging);
    return DRE_OK;
}

static dre_status init(dre_gpu_search *gs, const float *vectors) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&gs->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&gs->cublas));
    CUBLAS_CHECK(cublasSetStream(gs->cublas, gs->stream));
    const size_t es = elem_size(gs);
    DRE_TRY(device_alloc(&gs->vectors, (size_t)gs->n * (size_t)gs->dim * es, "the vectors",
                         gs->fp16 ? "" : " (held as fp16 they need half)"));
    DRE_TRY(upload_vectors(gs, vectors));

    const size_t qb = QUERY_BATCH, kmax = TOPK_MAX_K;
    DRE_TRY(device_alloc(&gs->queries, qb * (size_t)gs->dim * es, "queries", ""));
    DRE_TRY(device_alloc((void **)&gs->scores, SCORE_L2_BYTES, "scores", ""));
    for (int i = 0; i < 2; i++) {
        DRE_TRY(device_alloc((void **)&gs->best_scores[i], qb * kmax * sizeof(float), "top-k", ""));
        DRE_TRY(device_alloc((void **)&gs->best_ids[i], qb * kmax * sizeof(int64_t), "top-k", ""));
    }
    CUDA_CHECK(cudaMallocHost(&gs->host_queries, qb * (size_t)gs->dim * es));
    CUDA_CHECK(cudaMallocHost((void **)&gs->host_scores, qb * kmax * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&gs->host_ids, qb * kmax * sizeof(int64_t)));
    return DRE_OK;
}

static dre_status open_search(const float *vectors, int64_t n, int32_t dim, int fp16,
                              dre_gpu_search **out) {
    if (!out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_open: NULL out");
    *out = NULL;
    if (!vectors || n < 1 || dim < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "dre_gpu_search_open: need vectors, n >= 1 and dim >= 1 (got n %lld, "
                             "dim %d)",
                             (long long)n, dim);
    if (dre_gpu_device_count() == 0)
        return dre_set_error(DRE_ERR_NO_GPU,
                             "exact GPU search: no usable CUDA device (driver missing or no GPU)");
    DRE_TRY(dre_gpu_context_check());
    dre_gpu_search *gs = calloc(1, sizeof *gs);
    if (!gs) return dre_set_error(DRE_ERR_NOMEM, "dre_gpu_search_open: out of memory");
    gs->n = n;
    gs->dim = dim;
    gs->fp16 = fp16;
    if (fp16) {
        gs->host_vectors = vectors;
        for (int64_t i = 0; i < n; i++) {
            double sq = 0.0;
            for (int32_t d = 0; d < dim; d++)
                sq += (double)vectors[(size_t)i * dim + d] * vectors[(size_t)i * dim + d];
            if (sqrt(sq) > gs->max_norm) gs->max_norm = (float)sqrt(sq);
        }
    }
    dre_status st = init(gs, vectors);
    if (st != DRE_OK) {
        dre_gpu_search_close(gs);
        return st;
    }
    *out = gs;
    return DRE_OK;
}

dre_status dre_gpu_search_open(const float *vectors, int64_t n, int32_t dim, dre_gpu_search **out) {
    return open_search(vectors, n, dim, 0, out);
}

dre_status dre_gpu_search_open_fp16(const float *vectors, int64_t n, int32_t dim,
                                    dre_gpu_search **out) {
    return open_search(vectors, n, dim, 1, out);
}

void dre_gpu_search_close(dre_gpu_search *gs) {
    if (!gs) return;
    if (gs->stream) (void)cudaStreamSynchronize(gs->stream);
    if (gs->cublas) (void)cublasDestroy(gs->cublas);
    if (gs->stream) (void)cudaStreamDestroy(gs->stream);
    (void)cudaFree(gs->vectors);
    (void)cudaFree(gs->queries);
    (void)cudaFree(gs->scores);
    for (int i = 0; i < 2; i++) {
        (void)cudaFree(gs->best_scores[i]);
        (void)cudaFree(gs->best_ids[i]);
    }
    (void)cudaFreeHost(gs->host_queries);
    (void)cudaFreeHost(gs->host_scores);
    (void)cudaFreeHost(gs->host_ids);
    free(gs);
}

/* Vectors scored per GEMM for a batch of nq queries: as many as keep the scores in L2. */
static int64_t chunk_rows(const dre_gpu_search *gs, int32_t nq) {
    const int64_t rows = (int64_t)(SCORE_L2_BYTES / (sizeof(float) * (size_t)nq));
    return rows < gs->n ? rows : gs->n;
}

/* scores[q, j] = queries[q] . vectors[r0 + j] for j < n_rows: row-major [nq, chunk].
 * Column-major for cuBLAS: the vectors are [dim, n] (ld dim), the queries [dim, nq]
 * (ld dim) and the scores [chunk, nq] (ld chunk): scores = op_T(vectors) * queries. */
static dre_status score_chunk(dre_gpu_search *gs, int64_t r0, int32_t n_rows, int32_t nq,
                              int64_t chunk) {
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType_t type = gs->fp16 ? CUDA_R_16F : CUDA_R_32F;
    const unsigned char *a =
        (const unsigned char *)gs->vectors + (size_t)r0 * gs->dim * elem_size(gs);
    CUBLAS_CHECK(cublasGemmEx(gs->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n_rows, nq, gs->dim, &one, a,
                              type, gs->dim, gs->queries, type, gs->dim, &zero, gs->scores,
                              CUDA_R_32F, (int)chunk, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return DRE_OK;
}

/* The k best of nq staged queries over all vectors, in FAISS's order; returns which of the
 * best_* buffers holds them (row stride k). Each chunk's top-k takes the result so far (in id
 * order) as its earlier entries; the last chunk's is in score order. */
static dre_status search_batch(dre_gpu_search *gs, int32_t nq, int32_t k, int *result) {
    int cur = 0, n_prev = 0;
    const int64_t chunk = chunk_rows(gs, nq);
    for (int64_t r0 = 0; r0 < gs->n; r0 += chunk) {
        const int32_t n_rows = (int32_t)(gs->n - r0 < chunk ? gs->n - r0 : chunk);
        const topk_order order = r0 + n_rows < gs->n ? TOPK_BY_ID : TOPK_BY_SCORE;
        DRE_TRY(score_chunk(gs, r0, n_rows, nq, chunk));
        CUDA_CHECK(dre_topk_launch(gs->scores, chunk, n_rows, r0, gs->best_scores[cur],
                                   gs->best_ids[cur], k, n_prev, nq, k, order,
                                   gs->best_scores[!cur], gs->best_ids[!cur], k, gs->stream));
        cur = !cur;
        n_prev = k;
    }
    *result = cur;
    return DRE_OK;
}

/* ---------------------------------------------------------------- fp32 re-scoring */

/* FAISS's k-heap (replace the worst only when strictly better; the worst is the lowest
 * score, of equal scores the lowest id) over m entries given in id order; the k kept into
 * out, best first with equal scores by descending id (FAISS's order), padded (-inf, -1).
 * heap_s / heap_id: room for k. */
static void heap_topk(const float *s, const int64_t *id, int64_t m, int32_t k, float *heap_s,
                      int64_t *heap_id, float *out_s, int64_t *out_id) {
    int32_t size = 0;
#define WORSE(a, b) (heap_s[a] < heap_s[b] || (heap_s[a] == heap_s[b] && heap_id[a] < heap_id[b]))
#define SWAP(a, b)                                                                                 \
    do {                                                                                           \
        const float ts_ = heap_s[a];                                                               \
        const int64_t ti_ = heap_id[a];                                                            \
        heap_s[a] = heap_s[b], heap_id[a] = heap_id[b];                                            \
        heap_s[b] = ts_, heap_id[b] = ti_;                                                         \
    } while (0)
    for (int64_t j = 0; j < m; j++) {
        int32_t at;
        if (size < k) { /* grow: sift up from the end */
            at = size++;
            heap_s[at] = s[j], heap_id[at] = id[j];
            for (; at > 0 && WORSE(at, (at - 1) / 2); at = (at - 1) / 2)
                SWAP(at, (at - 1) / 2);
            continue;
        }
        if (!(s[j] > heap_s[0])) continue;
        heap_s[0] = s[j], heap_id[0] = id[j]; /* replace the worst, sift down */
        for (at = 0;;) {
            const int32_t l = 2 * at + 1, r = l + 1;
            int32_t w = at;
            if (l < size && WORSE(l, w)) w = l;
            if (r < size && WORSE(r, w)) w = r;
            if (w == at) break;
            SWAP(at, w);
            at = w;
        }
    }
#undef SWAP
#undef WORSE
    /* best first: score descending, equal scores by descending id (insertion: k is small) */
    for (int32_t i = 0; i < size; i++) {
        int32_t j = i;
        for (; j > 0 && (out_s[j - 1] < heap_s[i] ||
                         (out_s[j - 1] == heap_s[i] && out_id[j - 1] < heap_id[i]));
             j--)
            out_s[j] = out_s[j - 1], out_id[j] = out_id[j - 1];
        out_s[j] = heap_s[i], out_id[j] = heap_id[i];
    }
    for (int32_t i = size; i < k; i++)
        out_s[i] = -INFINITY, out_id[i] = -1;
}

static float dot(const float *a, const float *b, int32_t dim) {
    float sum = 0.0f;
    for (int32_t d = 0; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

static int by_id(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One query's answer from its m_all fp16 candidates (ids, best first by fp16 score, -1
 * padded): their fp32 scores and FAISS's choice among them; or, where the error bound leaves
 * doubt, an exact scan of every vector. work: room for 2 max(m_all, n) scores and ids. */
static void rescore_query(const dre_gpu_search *gs, const float *query, const float *cand_s16,
                          const int64_t *cand_id, int32_t m_all, int32_t k, float *work_s,
                          int64_t *work_id, float *out_s, int64_t *out_id) {
    const int32_t dim = gs->dim;
    int32_t m = 0;
    while (m < m_all && cand_id[m] >= 0)
        m++;
    int64_t *ids = work_id;
    memcpy(ids, cand_id, (size_t)m * sizeof *ids);
    qsort(ids, (size_t)m, sizeof *ids, by_id); /* FAISS's heap sees them in id order */
    float *exact = work_s;
    for (int32_t j = 0; j < m; j++)
        exact[j] = dot(query, gs->host_vectors + (size_t)ids[j] * dim, dim);
    heap_topk(exact, ids, m, k, exact + m, ids + m, out_s, out_id);
    if (m < m_all || (int64_t)m >= gs->n) return; /* every vector was a candidate */
    /* A vector left out scored at most the last candidate's fp16 score, and |fp16 score -
     * fp32 score| <= (2^-10 + dim 2^-24) |q| max|x| (each factor rounds by 2^-11 relative,
     * the fp32 sums add theirs): below the k-th exact score, none of them could change the
     * answer. */
    const float eps = 1.01f * (0.0009765625f + (float)dim * 5.96e-8f) *
                      sqrtf(dot(query, query, dim)) * gs->max_norm;
    if (out_id[k - 1] >= 0 && out_s[k - 1] > cand_s16[m - 1] + eps) return;
    for (int64_t i = 0; i < gs->n; i++) { /* doubt: every vector, in id order */
        work_s[i] = dot(query, gs->host_vectors + (size_t)i * dim, dim);
        work_id[i] = i;
    }
    heap_topk(work_s, work_id, gs->n, k, work_s + gs->n, work_id + gs->n, out_s, out_id);
}

/* One batch of nq queries to the GPU and back: their k best (by the stored precision's
 * scores) into host_scores / host_ids, row stride k. */
static dre_status run_batch(dre_gpu_search *gs, const float *src, int32_t nq, int32_t k) {
    const size_t dim = (size_t)gs->dim;
    if (gs->fp16) {
        fp16_t *dst = gs->host_queries;
        for (size_t i = 0; i < (size_t)nq * dim; i++)
            dst[i] = float_to_fp16(src[i]);
    } else {
        memcpy(gs->host_queries, src, (size_t)nq * dim * sizeof(float));
    }
    CUDA_CHECK(cudaMemcpyAsync(gs->queries, gs->host_queries, (size_t)nq * dim * elem_size(gs),
                               cudaMemcpyHostToDevice, gs->stream));
    int best = 0;
    DRE_TRY(search_batch(gs, nq, k, &best));
    CUDA_CHECK(cudaMemcpyAsync(gs->host_scores, gs->best_scores[best],
                               (size_t)nq * k * sizeof(float), cudaMemcpyDeviceToHost, gs->stream));
    CUDA_CHECK(cudaMemcpyAsync(gs->host_ids, gs->best_ids[best], (size_t)nq * k * sizeof(int64_t),
                               cudaMemcpyDeviceToHost, gs->stream));
    CUDA_CHECK(cudaStreamSynchronize(gs->stream));
    return DRE_OK;
}

dre_status dre_gpu_search_run(dre_gpu_search *gs, const float *queries, int64_t n_queries,
                              int32_t k, float *scores, int64_t *rows) {
    if (!gs || n_queries < 0 || (n_queries > 0 && (!queries || !scores || !rows)))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_run: bad argument");
    if (k < 1 || k > TOPK_MAX_K)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_run: k = %d (allowed 1..%d)", k,
                             TOPK_MAX_K);
    DRE_TRY(dre_gpu_context_check());
    const size_t dim = (size_t)gs->dim;
    /* fp16: candidates to re-score, RESCORE_EXTRA beyond k at the least and up to 2k */
    int32_t k_gpu = k;
    float *work_s = NULL;
    int64_t *work_id = NULL;
    if (gs->fp16) {
        k_gpu = k + (k > RESCORE_EXTRA ? k : RESCORE_EXTRA);
        if (k_gpu > TOPK_MAX_K) k_gpu = TOPK_MAX_K;
        const size_t room = 2 * (size_t)((int64_t)k_gpu > gs->n ? k_gpu : gs->n);
        work_s = malloc(room * sizeof *work_s);
        work_id = malloc(room * sizeof *work_id);
        if (!work_s || !work_id) {
            free(work_s);
            free(work_id);
            return dre_set_error(DRE_ERR_NOMEM, "dre_gpu_search_run: out of host memory");
        }
    }
    /* an earlier call that failed half-way may still have copies from the pinned buffers
     * in flight; they are overwritten below */
    dre_status st = DRE_OK;
    cudaError_t err = cudaStreamSynchronize(gs->stream);
    if (err != cudaSuccess)
        st = dre_gpu_cuda_error(err, "dre_gpu_search_run: an earlier search", NULL, __FILE__,
                                __LINE__);
    for (int64_t q0 = 0; q0 < n_queries && st == DRE_OK; q0 += QUERY_BATCH) {
        const int32_t nq = (int32_t)(n_queries - q0 < QUERY_BATCH ? n_queries - q0 : QUERY_BATCH);
        st = run_batch(gs, queries + (size_t)q0 * dim, nq, k_gpu);
        for (int32_t q = 0; st == DRE_OK && q < nq; q++) {
            const size_t at = (size_t)q * k_gpu, out = (size_t)(q0 + q) * k;
            if (gs->fp16) {
                rescore_query(gs, queries + (size_t)(q0 + q) * dim, gs->host_scores + at,
                              gs->host_ids + at, k_gpu, k, work_s, work_id, scores + out,
                              rows + out);
            } else {
                memcpy(scores + out, gs->host_scores + at, (size_t)k * sizeof(float));
                memcpy(rows + out, gs->host_ids + at, (size_t)k * sizeof(int64_t));
            }
        }
    }
    free(work_s);
    free(work_id);
    return st;
}
