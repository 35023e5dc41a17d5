// layernorm.cu — (bias +) (residual +) LayerNorm, after the attention output projection and
// after the second FFN GEMM: out[t] = LN(x[t] (+ bias) (+ residual[t])) * g + b.
// CPU twin: dre_bias_residual_layernorm_cpu in src/cpu/ops.c.
//
// The encoder's GEMMs add the bias and the residual in their epilogue, so here x is read
// once and out written once: 2 * 2 * hidden bytes a row (g and b come from cache), which
// bounds the kernel by DRAM bandwidth: 4 hidden bytes a token, 1.5 KiB for MiniLM.
// One half-warp per row, the row in registers: lane l takes 16-byte chunks l, l + 16, ...
// (3 for hidden 384: 48 chunks, no lane idle), two-pass statistics from the registers
// (no shared memory, no cancellation), 16-byte loads and stores, 32-bit indices. A
// half-warp past the last row takes part in the shuffles and stores nothing. out may
// alias x or residual (each row is read completely before it is written).
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 16;

// sass-gate: bias_residual_layernorm_kernel<*> regs<=128 hmma=0 ldg128>=1 stg128>=1
template <int CPL>
__global__ void __launch_bounds__(kThreads)
    bias_residual_layernorm_kernel(const uint4 *x, const float4 *bias, const uint4 *residual,
                                   const float4 *g, const float4 *b, float eps, int32_t n_tokens,
                                   int32_t chunks, float inv_hidden, uint4 *out) {
    const int l = threadIdx.x % 16;
    const int32_t t = blockIdx.x * kRowsPerBlock + threadIdx.x / 16;
    const bool row = t < n_tokens;
    const uint32_t at = row ? (uint32_t)t * (uint32_t)chunks : 0; // chunks before row t
    float v[CPL][8];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < CPL; i++) {
        const int c = l + 16 * i;
#pragma unroll
        for (int j = 0; j < 8; j++)
            v[i][j] = 0.0f;
        if (!row || c >= chunks) continue;
        widen8(x[at + c], v[i]);
        if (residual) {
            float r[8];
            widen8(residual[at + c], r);
#pragma unroll
            for (int j = 0; j < 8; j++)
                v[i][j] += r[j];
        }
        if (bias) {
            const float4 b0 = bias[2 * c], b1 = bias[2 * c + 1];
            v[i][0] += b0.x, v[i][1] += b0.y, v[i][2] += b0.z, v[i][3] += b0.w;
            v[i][4] += b1.x, v[i][5] += b1.y, v[i][6] += b1.z, v[i][7] += b1.w;
        }
#pragma unroll
        for (int j = 0; j < 8; j++)
            sum += v[i][j];
    }
    // y = (v - mean) * rstd * g + b
    halfwarp_layernorm_store<CPL>(v, sum, chunks, inv_hidden, g, b, eps, out + at, row);
}

struct launch {
    const uint4 *x, *residual;
    const float4 *bias, *g, *b;
    float eps;
    int32_t n_tokens, chunks;
    float inv_hidden;
    uint4 *out;
    cudaStream_t stream;

    template <int CPL> cudaError_t operator()() const {
        const unsigned blocks = (unsigned)((n_tokens + kRowsPerBlock - 1) / kRowsPerBlock);
        bias_residual_layernorm_kernel<CPL><<<blocks, kThreads, 0, stream>>>(
            x, bias, residual, g, b, eps, n_tokens, chunks, inv_hidden, out);
        return cudaGetLastError();
    }
};

} // namespace

// kernel launcher

extern "C" cudaError_t dre_bias_residual_layernorm_launch(const fp16_t *x, const float *bias,
                                                          const fp16_t *residual, const float *g,
                                                          const float *b, float eps,
                                                          int32_t n_tokens, int32_t hidden,
                                                          fp16_t *out, cudaStream_t stream) {
    if (n_tokens < 0 || hidden <= 0 || hidden % 8 != 0 || hidden > KERNELS_MAX_HIDDEN || !x || !g ||
        !b || !out ||
        ((uintptr_t)x | (uintptr_t)residual | (uintptr_t)out | (uintptr_t)g | (uintptr_t)b |
         (uintptr_t)bias) %
                16 !=
            0)
        return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    if ((int64_t)n_tokens * hidden / 8 > UINT32_MAX) return cudaErrorInvalidValue;
    const launch l = {reinterpret_cast<const uint4 *>(x),
                      reinterpret_cast<const uint4 *>(residual),
                      reinterpret_cast<const float4 *>(bias),
                      reinterpret_cast<const float4 *>(g),
                      reinterpret_cast<const float4 *>(b),
                      eps,
                      n_tokens,
                      hidden / 8,
                      1.0f / (float)hidden,
                      reinterpret_cast<uint4 *>(out),
                      stream};
    return with_chunks_per_lane(hidden / 8, l);
}
