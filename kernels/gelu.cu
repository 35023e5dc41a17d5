// gelu.cu — bias + GELU fused, after the first FFN GEMM, in place:
// x[t][c] = gelu(x[t][c] + bias[c]),  gelu(v) = 0.5 v (1 + erf(v / sqrt 2))  (BERT's exact form).
// CPU twin: dre_bias_gelu_cpu in src/cpu/ops.c.
//
// Elementwise and memory bound: 2 bytes read and 2 written per value (4 * intermediate
// bytes a token, 6 KiB for MiniLM), 16 bytes (8 values) a step; the bias, 32 bytes a step,
// comes from cache. A grid-stride loop with 32-bit indices, the bias column advanced by a
// constant each step (no division in the loop), math in fp32.
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 8192; // 2 M threads; the loop covers the rest

__device__ __forceinline__ float gelu_erf(float v) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

// sass-gate: bias_gelu_kernel regs<=64 hmma=0 ldg128>=1 stg128>=1
__global__ void __launch_bounds__(kThreads)
    bias_gelu_kernel(uint4 *x, const float4 *bias, uint32_t n_chunks, uint32_t chunks_per_row) {
    const uint32_t step = gridDim.x * blockDim.x;
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_chunks) return;
    uint32_t col = i % chunks_per_row; // this thread's column chunk, kept up without division
    const uint32_t col_step = step % chunks_per_row;
    for (; i < n_chunks; i += step) {
        float v[8];
        widen8(x[i], v);
        if (bias) {
            const float4 b0 = bias[2 * col], b1 = bias[2 * col + 1];
            v[0] += b0.x, v[1] += b0.y, v[2] += b0.z, v[3] += b0.w;
            v[4] += b1.x, v[5] += b1.y, v[6] += b1.z, v[7] += b1.w;
        }
#pragma unroll
        for (int j = 0; j < 8; j++)
            v[j] = gelu_erf(v[j]);
        x[i] = narrow8(v);
        col += col_step;
        if (col >= chunks_per_row) col -= chunks_per_row;
    }
}

} // namespace

// kernel launcher

extern "C" cudaError_t dre_bias_gelu_launch(fp16_t *x, const float *bias, int32_t n_tokens,
                                            int32_t dim, cudaStream_t stream) {
    if (n_tokens < 0 || dim <= 0 || dim % 8 != 0 || !x ||
        ((uintptr_t)x | (uintptr_t)bias) % 16 != 0)
        return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    const int64_t n_chunks = (int64_t)n_tokens * (dim / 8);
    if (n_chunks > UINT32_MAX - (int64_t)kMaxBlocks * kThreads) return cudaErrorInvalidValue;
    int64_t blocks = (n_chunks + kThreads - 1) / kThreads;
    if (blocks > kMaxBlocks) blocks = kMaxBlocks;
    bias_gelu_kernel<<<(unsigned)blocks, kThreads, 0, stream>>>(
        reinterpret_cast<uint4 *>(x), reinterpret_cast<const float4 *>(bias), (uint32_t)n_chunks,
        (uint32_t)(dim / 8));
    return cudaGetLastError();
}
