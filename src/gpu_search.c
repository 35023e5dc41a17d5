/* gpu_search.c — exact inner-product search on the GPU. The vectors are uploaded once (fp32,
 * or fp16 for half the memory). Queries go in batches of up to 1024: cuBLAS scores a batch
 * against one chunk of the vectors at a time, and topk_launch reduces each chunk's scores
 * together with the k best of the chunks before, as FAISS's Flat index would (ties too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cuda_check.h"
#include "kernels.h"

#define QUERY_BATCH 1024
/* A chunk's score matrix stays within this, so that the GEMM writes it to L2 and the top-k
 * reads it back from there, never from DRAM (H100: 50 MB of L2, H200: 60): 6,144 vectors a
 * chunk for a batch of 1,024 queries, all of a million for one query. */
#define SCORE_L2_BYTES ((size_t)24 << 20)
#define CONVERT_PIECE ((size_t)1 << 22) /* floats converted to fp16 per upload */

struct dre_gpu_search {
    int64_t n;
    int32_t dim;
    int fp16;
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
        return gpu_cuda_error(err, what, hint, __FILE__, __LINE__);
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
    if (!staging) return set_error(DRE_ERR_NOMEM, "gpu_search: out of host memory");
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
            return gpu_cuda_error(err, "gpu_search: cudaMemcpy of vectors", NULL, __FILE__,
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
    if (!out) return set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_open: NULL out");
    *out = NULL;
    if (!vectors || n < 1 || dim < 1)
        return set_error(DRE_ERR_INVALID_ARG,
                         "dre_gpu_search_open: need vectors, n >= 1 and dim >= 1 (got n %lld, "
                         "dim %d)",
                         (long long)n, dim);
    if (gpu_device_count() == 0)
        return set_error(DRE_ERR_NO_GPU,
                         "exact GPU search: no usable CUDA device (driver missing or no GPU)");
    DRE_TRY(gpu_context_check());
    dre_gpu_search *gs = calloc(1, sizeof *gs);
    if (!gs) return set_error(DRE_ERR_NOMEM, "dre_gpu_search_open: out of memory");
    gs->n = n;
    gs->dim = dim;
    gs->fp16 = fp16;
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
        CUDA_CHECK(topk_launch(gs->scores, chunk, n_rows, r0, gs->best_scores[cur],
                               gs->best_ids[cur], k, n_prev, nq, k, order, gs->best_scores[!cur],
                               gs->best_ids[!cur], k, gs->stream));
        cur = !cur;
        n_prev = k;
    }
    *result = cur;
    return DRE_OK;
}

dre_status dre_gpu_search_run(dre_gpu_search *gs, const float *queries, int64_t n_queries,
                              int32_t k, float *scores, int64_t *rows) {
    if (!gs || n_queries < 0 || (n_queries > 0 && (!queries || !scores || !rows)))
        return set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_run: bad argument");
    if (k < 1 || k > TOPK_MAX_K)
        return set_error(DRE_ERR_INVALID_ARG, "dre_gpu_search_run: k = %d (allowed 1..%d)", k,
                         TOPK_MAX_K);
    DRE_TRY(gpu_context_check());
    const size_t dim = (size_t)gs->dim;
    /* an earlier call that failed half-way may still have copies from the pinned buffers
     * in flight; they are overwritten below */
    CUDA_CHECK(cudaStreamSynchronize(gs->stream));
    for (int64_t q0 = 0; q0 < n_queries; q0 += QUERY_BATCH) {
        const int32_t nq = (int32_t)(n_queries - q0 < QUERY_BATCH ? n_queries - q0 : QUERY_BATCH);
        const float *src = queries + (size_t)q0 * dim;
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
                                   (size_t)nq * k * sizeof(float), cudaMemcpyDeviceToHost,
                                   gs->stream));
        CUDA_CHECK(cudaMemcpyAsync(gs->host_ids, gs->best_ids[best],
                                   (size_t)nq * k * sizeof(int64_t), cudaMemcpyDeviceToHost,
                                   gs->stream));
        CUDA_CHECK(cudaStreamSynchronize(gs->stream));
        memcpy(scores + (size_t)q0 * k, gs->host_scores, (size_t)nq * k * sizeof(float));
        memcpy(rows + (size_t)q0 * k, gs->host_ids, (size_t)nq * k * sizeof(int64_t));
    }
    return DRE_OK;
}
