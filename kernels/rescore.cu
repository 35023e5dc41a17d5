// rescore.cu — exact fp32 scores for the candidates of an fp16 search, read from fp32 vectors
// the GPU reaches in host memory (mapped, page-locked: only the rows it scores cross the bus).
// CPU twin: rescore_twin / masked_twin in tests/kernels_rescore_test.cc.
//
//   dre_rescore_launch: each query's m candidates (ids from the fp16 top-k, -1 padding) get
//     q . x in fp32; and the query's floor: the lowest fp16 score among them, the most any
//     vector left out can have scored (-inf when a candidate is padding: every vector was one).
//   dre_masked_exact_launch: a chunk of fp16 scores becomes exact where it may matter: q . x
//     where the fp16 score reaches the query's threshold, -inf where it cannot.
//
// A dot product is one warp's, summed in the order FAISS's Flat index sums one for a few
// queries (fvec_inner_product; from 20 queries on it calls BLAS, whose order is its own):
// sum += q[d] * x[d] for d = 0, 1, ..., each product and each sum rounded once, never fused.
// The lanes load and multiply 32 components at a time (coalesced reads of the row); lane 0
// adds them in order. So a row's score is the same in both kernels and on the host.
#include <cuda_runtime.h>

#include "kernels.h"

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float warp_dot(const float *q, const float *x, int32_t dim,
                                          int lane) {
    float sum = 0.0f;
    for (int32_t base = 0; base < dim; base += 32) {
        const int32_t d = base + lane;
        const float product = d < dim ? __fmul_rn(q[d], x[d]) : 0.0f;
        const int32_t count = dim - base < 32 ? dim - base : 32;
        for (int32_t i = 0; i < count; i++) { // every lane takes part in the shuffle
            const float p = __shfl_sync(0xffffffffu, product, i);
            if (lane == 0) sum = __fadd_rn(sum, p);
        }
    }
    return sum; // lane 0's
}

// One block per query: its warps take the candidates in turn.
// sass-gate: rescore_kernel regs<=64 smem<=2048 hmma=0
__global__ void __launch_bounds__(kThreads)
    rescore_kernel(const float *queries, const float *vectors, int64_t n_vectors, int32_t dim,
                   const int64_t *ids, const float *scores16, int64_t stride, int32_t m,
                   float *out, float *floor16) {
    const int64_t q = blockIdx.x;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float *query = queries + q * dim;
    __shared__ float s_floor[kWarps];
    float lowest = INFINITY;
    bool padding = false;
    for (int32_t j = warp; j < m; j += kWarps) {
        const int64_t id = ids[q * stride + j];
        float exact = -INFINITY;
        if (id >= 0 && id < n_vectors) {
            exact = warp_dot(query, vectors + id * dim, dim, lane);
            lowest = fminf(lowest, scores16[q * stride + j]);
        } else {
            padding = true;
        }
        if (lane == 0) out[q * stride + j] = exact;
    }
    if (padding) lowest = -INFINITY;
    if (lane == 0) s_floor[warp] = lowest;
    __syncthreads();
    if (threadIdx.x == 0) {
        float f = s_floor[0];
        for (int w = 1; w < kWarps; w++)
            f = fminf(f, s_floor[w]);
        floor16[q] = f;
    }
}

// Blocks of kWarps columns of one query (blockIdx.y): a warp a column.
// sass-gate: masked_exact_kernel regs<=64 hmma=0
__global__ void __launch_bounds__(kThreads)
    masked_exact_kernel(float *scores, int64_t stride, int32_t n_cols, int64_t id_offset,
                        const float *thresholds, const float *queries, const float *vectors,
                        int32_t dim) {
    const int64_t q = blockIdx.y;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t col = (int64_t)blockIdx.x * kWarps + warp;
    if (col >= n_cols) return;
    float *s = scores + q * stride + col;
    const float fp16_score = *s; // every lane reads it before lane 0 writes
    __syncwarp();
    if (!(fp16_score >= thresholds[q])) {
        if (lane == 0) *s = -INFINITY;
        return;
    }
    const float exact = warp_dot(queries + q * dim, vectors + (id_offset + col) * dim, dim, lane);
    if (lane == 0) *s = exact;
}

} // namespace

// kernel launchers

extern "C" cudaError_t dre_rescore_launch(const float *queries, const float *vectors,
                                          int64_t n_vectors, int32_t dim, const int64_t *ids,
                                          const float *scores16, int64_t stride, int32_t m,
                                          int32_t n_queries, float *out, float *floor16,
                                          cudaStream_t stream) {
    if (n_queries < 0 || m < 0 || dim < 1 || stride < m || !out || !floor16 ||
        (n_queries > 0 && (!queries || !vectors || !ids || !scores16)))
        return cudaErrorInvalidValue;
    if (n_queries == 0) return cudaSuccess;
    rescore_kernel<<<(unsigned)n_queries, kThreads, 0, stream>>>(
        queries, vectors, n_vectors, dim, ids, scores16, stride, m, out, floor16);
    return cudaGetLastError();
}

extern "C" cudaError_t dre_masked_exact_launch(float *scores, int64_t stride, int32_t n_cols,
                                               int64_t id_offset, const float *thresholds,
                                               const float *queries, const float *vectors,
                                               int32_t dim, int32_t n_queries,
                                               cudaStream_t stream) {
    if (n_queries < 0 || n_cols < 0 || dim < 1 || stride < n_cols ||
        (n_queries > 0 && n_cols > 0 && (!scores || !thresholds || !queries || !vectors)) ||
        n_queries > 65535)
        return cudaErrorInvalidValue;
    if (n_queries == 0 || n_cols == 0) return cudaSuccess;
    const dim3 grid((unsigned)((n_cols + kWarps - 1) / kWarps), (unsigned)n_queries);
    masked_exact_kernel<<<grid, kThreads, 0, stream>>>(scores, stride, n_cols, id_offset,
                                                       thresholds, queries, vectors, dim);
    return cudaGetLastError();
}
