// pooling.cu — sentence embedding from token states: mean over the sequence's tokens
// (or its first token, CLS), then optionally x / max(||x||_2, 1e-12); fp32 out.
// CPU twin: pool_normalize_cpu in src/encoder_cpu.c.
//
// One block per sequence; thread j owns columns j, j + blockDim, ... and sums them down
// the sequence (rows are read coalesced across the block), then a block reduction gives
// ||x||^2 and each thread rescales the columns it wrote.
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

// sass-gate: pool_normalize_kernel regs<=64 hmma=0
__global__ void __launch_bounds__(kThreads)
    pool_normalize_kernel(const __half *hidden, const int32_t *cu_seqlens, int32_t dim, int cls,
                          int normalize, float *out) {
    __shared__ float warp_sums[kWarps];
    const int32_t s = blockIdx.x;
    const int32_t start = cu_seqlens[s];
    const int32_t len = cu_seqlens[s + 1] - start;
    const int32_t n_rows = cls ? 1 : len;
    const float inv_rows = 1.0f / (float)n_rows;
    float *o = out + (size_t)s * dim;

    float sq = 0.0f;
    for (int32_t c = threadIdx.x; c < dim; c += kThreads) {
        float acc = 0.0f;
        for (int32_t t = 0; t < n_rows; t++)
            acc += __half2float(hidden[(size_t)(start + t) * dim + c]);
        const float m = acc * inv_rows;
        o[c] = m;
        sq += m * m;
    }
    if (!normalize) return; // uniform across the block

    // block sum of sq: per warp, then the first warp over the warp sums
    sq = warp_sum(sq);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_sums[warp] = sq;
    __syncthreads();
    if (warp == 0) {
        float v = lane < kWarps ? warp_sums[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) warp_sums[0] = v;
    }
    __syncthreads();
    const float scale = 1.0f / fmaxf(sqrtf(warp_sums[0]), 1e-12f);
    for (int32_t c = threadIdx.x; c < dim; c += kThreads)
        o[c] *= scale;
}

} // namespace

// kernel launcher

extern "C" cudaError_t pool_normalize_launch(const fp16_t *hidden, const int32_t *cu_seqlens,
                                             int32_t n_seqs, int32_t dim, dre_pooling pooling,
                                             int normalize, float *out, cudaStream_t stream) {
    if (n_seqs < 0 || dim <= 0 || !hidden || !cu_seqlens || !out) return cudaErrorInvalidValue;
    if (n_seqs == 0) return cudaSuccess;
    pool_normalize_kernel<<<(unsigned)n_seqs, kThreads, 0, stream>>>(
        reinterpret_cast<const __half *>(hidden), cu_seqlens, dim, pooling == DRE_POOL_CLS,
        normalize != 0, out);
    return cudaGetLastError();
}
