/* gpu/search.c — exact inner-product search on the GPU. The vectors are uploaded once (fp32,
 * or fp16 for half the memory). Queries go in batches of up to 1024: cuBLAS scores a batch
 * against one chunk of the vectors at a time, and dre_topk_launch reduces each chunk's scores
 * together with the k best of the chunks before, as FAISS's Flat index would (ties too).
 *
 * With fp16 vectors the GPU finds more candidates than asked for and re-scores them in fp32
 * (kernels/rescore.cu) from the caller's fp32 vectors, which stay in host memory, page-locked
 * and mapped: only the candidates' rows cross the bus, and no copy of them is made. Where the
 * fp16 error bound proves that no vector left out could reach the k-th exact score, the
 * answer is FAISS's (scores to fp32 rounding). Where it cannot (a crowd of near-ties at the
 * boundary: near-duplicate documents), the query is searched again on the GPU: every chunk's
 * fp16 scores, and the exact score of each vector whose fp16 score comes within the error
 * bound of the k-th exact score, the rest left out. Nothing is scanned on the host. */
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
    const float *host_vectors; /* fp16: the caller's fp32 vectors, page-locked and mapped */
    const float *mapped;       /* their address on the device */
    float max_norm;            /* fp16: the largest vector norm, for the error bound */
    int64_t widened;           /* fp16: queries searched again (dre_gpu_search_widened) */
    int64_t chunk_cap;         /* rows a chunk at most (dre_gpu_search_set_chunk_rows); 0: L2's */
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
    /* fp16 re-scoring */
    float *queries32;       /* device [QUERY_BATCH, dim] */
    float *rescored;        /* device [QUERY_BATCH, TOPK_MAX_K] */
    float *floor16;         /* device [QUERY_BATCH] */
    float *thresholds;      /* device [QUERY_BATCH] */
    float *host_queries32;  /* pinned [QUERY_BATCH, dim] */
    float *host_floor16;    /* pinned [QUERY_BATCH] */
    float *host_thresholds; /* pinned [QUERY_BATCH] */
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
    if (!gs->fp16) return DRE_OK;
    /* the fp32 vectors the candidates are re-scored from: the caller's, where they are */
    const size_t bytes = (size_t)gs->n * (size_t)gs->dim * sizeof(float);
    cudaError_t err = cudaHostRegister((void *)gs->host_vectors, bytes, cudaHostRegisterMapped);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return dre_gpu_cuda_error(err, "gpu_search: cudaHostRegister of the fp32 vectors",
                                  " (page-locking them failed: search with --search-precision "
                                  "fp32 or faiss instead)",
                                  __FILE__, __LINE__);
    }
    gs->mapped = gs->host_vectors; /* registered: unregister at close */
    void *device = NULL;
    CUDA_CHECK(cudaHostGetDevicePointer(&device, (void *)gs->host_vectors, 0));
    gs->mapped = device;
    DRE_TRY(device_alloc((void **)&gs->queries32, qb * (size_t)gs->dim * sizeof(float), "queries",
                         ""));
    DRE_TRY(device_alloc((void **)&gs->rescored, qb * kmax * sizeof(float), "re-scoring", ""));
    DRE_TRY(device_alloc((void **)&gs->floor16, qb * sizeof(float), "re-scoring", ""));
    DRE_TRY(device_alloc((void **)&gs->thresholds, qb * sizeof(float), "re-scoring", ""));
    CUDA_CHECK(cudaMallocHost((void **)&gs->host_queries32, qb * (size_t)gs->dim * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&gs->host_floor16, qb * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&gs->host_thresholds, qb * sizeof(float)));
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
    (void)cudaFree(gs->queries32);
    (void)cudaFree(gs->rescored);
    (void)cudaFree(gs->floor16);
    (void)cudaFree(gs->thresholds);
    (void)cudaFreeHost(gs->host_queries32);
    (void)cudaFreeHost(gs->host_floor16);
    (void)cudaFreeHost(gs->host_thresholds);
    if (gs->mapped) (void)cudaHostUnregister((void *)gs->host_vectors);
    free(gs);
}

int64_t dre_gpu_search_widened(const dre_gpu_search *gs) { return gs ? gs->widened : 0; }

void dre_gpu_search_set_chunk_rows(dre_gpu_search *gs, int64_t rows) {
    if (gs) gs->chunk_cap = rows > 0 ? rows : 0;
}

/* Vectors scored per GEMM for a batch of nq queries: as many as keep the scores in L2. */
static int64_t chunk_rows(const dre_gpu_search *gs, int32_t nq) {
    int64_t rows = (int64_t)(SCORE_L2_BYTES / (sizeof(float) * (size_t)nq));
    if (gs->chunk_cap > 0 && rows > gs->chunk_cap) rows = gs->chunk_cap;
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

/* The k best of nq staged queries over all vectors, in FAISS's order (or, `last` TOPK_BY_ID,
 * by ascending id); returns which of the best_* buffers holds them (row stride k). Each
 * chunk's top-k takes the result so far (in id order) as its earlier entries. masked: each
 * chunk's fp16 scores become exact where they reach the query's threshold (gs->thresholds),
 * -inf elsewhere, before the top-k. */
static dre_status search_batch(dre_gpu_search *gs, int32_t nq, int32_t k, topk_order last,
                               int masked, int *result) {
    int cur = 0, n_prev = 0;
    const int64_t chunk = chunk_rows(gs, nq);
    for (int64_t r0 = 0; r0 < gs->n; r0 += chunk) {
        const int32_t n_rows = (int32_t)(gs->n - r0 < chunk ? gs->n - r0 : chunk);
        const topk_order order = r0 + n_rows < gs->n ? TOPK_BY_ID : last;
        DRE_TRY(score_chunk(gs, r0, n_rows, nq, chunk));
        if (masked)
            CUDA_CHECK(dre_masked_exact_launch(gs->scores, chunk, n_rows, r0, gs->thresholds,
                                               gs->queries32, gs->mapped, gs->dim, nq,
                                               gs->stream));
        CUDA_CHECK(dre_topk_launch(gs->scores, chunk, n_rows, r0, gs->best_scores[cur],
                                   gs->best_ids[cur], k, n_prev, nq, k, order,
                                   gs->best_scores[!cur], gs->best_ids[!cur], k, gs->stream));
        cur = !cur;
        n_prev = k;
    }
    *result = cur;
    return DRE_OK;
}

/* ---------------------------------------------------------------- fp16: the batch */

/* nq queries into the device buffers: stored precision, and fp32 for re-scoring. */
static dre_status stage_queries(dre_gpu_search *gs, const float *src, int32_t nq) {
    const size_t count = (size_t)nq * (size_t)gs->dim;
    if (gs->fp16) {
        fp16_t *dst = gs->host_queries;
        for (size_t i = 0; i < count; i++)
            dst[i] = float_to_fp16(src[i]);
        memcpy(gs->host_queries32, src, count * sizeof(float));
        CUDA_CHECK(cudaMemcpyAsync(gs->queries32, gs->host_queries32, count * sizeof(float),
                                   cudaMemcpyHostToDevice, gs->stream));
    } else {
        memcpy(gs->host_queries, src, count * sizeof(float));
    }
    CUDA_CHECK(cudaMemcpyAsync(gs->queries, gs->host_queries, count * elem_size(gs),
                               cudaMemcpyHostToDevice, gs->stream));
    return DRE_OK;
}

/* best_* buffer `from` (row stride k) to host_scores / host_ids, and waits. */
static dre_status fetch(dre_gpu_search *gs, int from, int32_t nq, int32_t k) {
    CUDA_CHECK(cudaMemcpyAsync(gs->host_scores, gs->best_scores[from],
                               (size_t)nq * k * sizeof(float), cudaMemcpyDeviceToHost, gs->stream));
    CUDA_CHECK(cudaMemcpyAsync(gs->host_ids, gs->best_ids[from], (size_t)nq * k * sizeof(int64_t),
                               cudaMemcpyDeviceToHost, gs->stream));
    CUDA_CHECK(cudaStreamSynchronize(gs->stream));
    return DRE_OK;
}

/* One batch of nq queries: their k best into host_scores / host_ids (row stride k). fp16:
 * k_gpu candidates by fp16 score, in id order; their fp32 scores; FAISS's k among them; and
 * each query's floor (host_floor16), the most a vector left out scored in fp16. */
static dre_status run_batch(dre_gpu_search *gs, const float *src, int32_t nq, int32_t k,
                            int32_t k_gpu) {
    DRE_TRY(stage_queries(gs, src, nq));
    int best = 0;
    if (!gs->fp16) {
        DRE_TRY(search_batch(gs, nq, k, TOPK_BY_SCORE, 0, &best));
        return fetch(gs, best, nq, k);
    }
    DRE_TRY(search_batch(gs, nq, k_gpu, TOPK_BY_ID, 0, &best));
    CUDA_CHECK(dre_rescore_launch(gs->queries32, gs->mapped, gs->n, gs->dim, gs->best_ids[best],
                                  gs->best_scores[best], k_gpu, k_gpu, nq, gs->rescored,
                                  gs->floor16, gs->stream));
    CUDA_CHECK(dre_topk_launch(NULL, 0, 0, gs->n, gs->rescored, gs->best_ids[best], k_gpu, k_gpu,
                               nq, k, TOPK_BY_SCORE, gs->best_scores[!best], gs->best_ids[!best],
                               k, gs->stream));
    CUDA_CHECK(cudaMemcpyAsync(gs->host_floor16, gs->floor16, (size_t)nq * sizeof(float),
                               cudaMemcpyDeviceToHost, gs->stream));
    return fetch(gs, !best, nq, k);
}

static float norm(const float *x, int32_t dim) {
    double sq = 0;
    for (int32_t d = 0; d < dim; d++)
        sq += (double)x[d] * x[d];
    return (float)sqrt(sq);
}

/* How far an fp16 score may be from the fp32 one: each factor rounds by 2^-11 relative and
 * the fp32 sums add theirs, so |fp16 score - fp32 score| <= (2^-10 + dim 2^-24) |q| max|x|. */
static float error_bound(const dre_gpu_search *gs, const float *query) {
    return 1.01f * (0.0009765625f + (float)gs->dim * 5.96e-8f) * norm(query, gs->dim) *
           gs->max_norm;
}

/* The queries of a batch whose candidates cannot settle the answer (a vector left out may
 * still reach the k-th exact score), searched again: their k best over every vector, exact
 * wherever the fp16 score comes within the error bound of the k-th exact score found. The
 * doubtful queries' indexes in the batch are doubt[0 .. n_doubt - 1]; their answers are
 * written over host_scores / host_ids (row stride k) at those rows. */
static dre_status widen(dre_gpu_search *gs, const float *src, const int32_t *doubt,
                        int32_t n_doubt, int32_t k, float *out_scores, int64_t *out_ids) {
    const size_t dim = (size_t)gs->dim;
    float *staged = malloc((size_t)n_doubt * dim * sizeof *staged);
    if (!staged) return dre_set_error(DRE_ERR_NOMEM, "gpu_search: out of host memory");
    for (int32_t i = 0; i < n_doubt; i++) {
        memcpy(staged + i * dim, src + (size_t)doubt[i] * dim, dim * sizeof *staged);
        gs->host_thresholds[i] = out_scores[(size_t)doubt[i] * k + k - 1] -
                                 error_bound(gs, src + (size_t)doubt[i] * dim);
    }
    dre_status st = stage_queries(gs, staged, n_doubt);
    free(staged);
    DRE_TRY(st);
    CUDA_CHECK(cudaMemcpyAsync(gs->thresholds, gs->host_thresholds, (size_t)n_doubt * sizeof(float),
                               cudaMemcpyHostToDevice, gs->stream));
    int best = 0;
    DRE_TRY(search_batch(gs, n_doubt, k, TOPK_BY_SCORE, 1, &best));
    DRE_TRY(fetch(gs, best, n_doubt, k));
    for (int32_t i = 0; i < n_doubt; i++) {
        memcpy(out_scores + (size_t)doubt[i] * k, gs->host_scores + (size_t)i * k,
               (size_t)k * sizeof(float));
        memcpy(out_ids + (size_t)doubt[i] * k, gs->host_ids + (size_t)i * k,
               (size_t)k * sizeof(int64_t));
    }
    gs->widened += n_doubt;
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
    if (gs->fp16) {
        k_gpu = k + (k > RESCORE_EXTRA ? k : RESCORE_EXTRA);
        if (k_gpu > TOPK_MAX_K) k_gpu = TOPK_MAX_K;
    }
    int32_t *doubt = malloc(QUERY_BATCH * sizeof *doubt);
    if (!doubt) return dre_set_error(DRE_ERR_NOMEM, "dre_gpu_search_run: out of host memory");
    /* an earlier call that failed half-way may still have copies from the pinned buffers
     * in flight; they are overwritten below */
    dre_status st = DRE_OK;
    cudaError_t err = cudaStreamSynchronize(gs->stream);
    if (err != cudaSuccess)
        st = dre_gpu_cuda_error(err, "dre_gpu_search_run: an earlier search", NULL, __FILE__,
                                __LINE__);
    for (int64_t q0 = 0; q0 < n_queries && st == DRE_OK; q0 += QUERY_BATCH) {
        const int32_t nq = (int32_t)(n_queries - q0 < QUERY_BATCH ? n_queries - q0 : QUERY_BATCH);
        const float *src = queries + (size_t)q0 * dim;
        float *out_s = scores + (size_t)q0 * k;
        int64_t *out_id = rows + (size_t)q0 * k;
        st = run_batch(gs, src, nq, k, k_gpu);
        if (st != DRE_OK) break;
        memcpy(out_s, gs->host_scores, (size_t)nq * k * sizeof(float));
        memcpy(out_id, gs->host_ids, (size_t)nq * k * sizeof(int64_t));
        if (!gs->fp16) continue;
        /* a vector left out scored at most the floor in fp16, so at most floor + bound in
         * fp32: below the k-th exact score, none of them could change the answer */
        int32_t n_doubt = 0;
        for (int32_t q = 0; q < nq; q++) {
            const float floor16 = gs->host_floor16[q];
            const float kth = out_s[(size_t)q * k + k - 1];
            if (floor16 == -INFINITY || out_id[(size_t)q * k + k - 1] < 0) continue;
            if (!(kth > floor16 + error_bound(gs, src + (size_t)q * dim))) doubt[n_doubt++] = q;
        }
        if (n_doubt > 0) st = widen(gs, src, doubt, n_doubt, k, out_s, out_id);
    }
    free(doubt);
    return st;
}
