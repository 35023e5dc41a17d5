// gelu.cu — bias + GELU fused, after the first FFN GEMM, in place:
// x[t][c] = gelu(x[t][c] + bias[c]),  gelu(v) = 0.5 v (1 + erf(v / sqrt 2))  (BERT's exact form).
// CPU twin: bias_gelu_cpu in src/encoder_cpu.c.
//
// Elementwise and memory bound: a grid-stride loop over half2 pairs, math in fp32.
#include <cuda_fp16.h>

#include "kernels.h"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float gelu_erf(float v) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

// sass-gate: bias_gelu_kernel regs<=32 hmma=0
__global__ void __launch_bounds__(kThreads)
    bias_gelu_kernel(__half2 *x, const float2 *bias, int64_t n_pairs, int32_t pairs_per_row) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_pairs; i += step) {
        float2 v = __half22float2(x[i]);
        if (bias) {
            const float2 bb = bias[i % pairs_per_row];
            v.x += bb.x;
            v.y += bb.y;
        }
        x[i] = __floats2half2_rn(gelu_erf(v.x), gelu_erf(v.y));
    }
}

} // namespace

// kernel launcher

extern "C" cudaError_t bias_gelu_launch(fp16_t *x, const float *bias, int32_t n_tokens, int32_t dim,
                                        cudaStream_t stream) {
    if (n_tokens < 0 || dim <= 0 || dim % 2 != 0 || !x) return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    const int64_t n_pairs = (int64_t)n_tokens * (dim / 2);
    int64_t blocks = (n_pairs + kThreads - 1) / kThreads;
    if (blocks > 65536) blocks = 65536; // the grid-stride loop covers the rest
    bias_gelu_kernel<<<(unsigned)blocks, kThreads, 0, stream>>>(
        reinterpret_cast<__half2 *>(x), reinterpret_cast<const float2 *>(bias), n_pairs, dim / 2);
    return cudaGetLastError();
}
