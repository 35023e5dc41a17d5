// layernorm.cu — bias + residual + LayerNorm fused, after the attention output projection
// and after the second FFN GEMM: out[t] = LN(x[t] + bias + residual[t]) * g + b.
// CPU twin: bias_residual_layernorm_cpu in src/encoder_cpu.c.
//
// One warp per token row. Pass 1 forms v = x + bias + residual in fp32, keeps it in the
// warp's slice of shared memory and sums it; pass 2 sums (v - mean)^2 (two passes: no
// cancellation); pass 3 writes (v - mean) * rstd * g + b as fp16. Each lane only touches
// the columns it wrote, so no barrier is needed, and since the row is read completely in
// pass 1, out may alias x or residual.
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kRowsPerBlock = 4; // warps per block, one row each

// sass-gate: bias_residual_layernorm_kernel regs<=64 hmma=0
__global__ void __launch_bounds__(kRowsPerBlock * 32)
    bias_residual_layernorm_kernel(const __half2 *x, const float2 *bias, const __half2 *residual,
                                   const float2 *g, const float2 *b, float eps, int32_t n_tokens,
                                   int32_t hidden, __half2 *out) {
    extern __shared__ float2 row_buf[]; // [kRowsPerBlock][hidden / 2]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t t = (int64_t)blockIdx.x * kRowsPerBlock + warp;
    if (t >= n_tokens) return; // the whole warp leaves together; no block barrier follows
    const int pairs = hidden / 2;
    float2 *v = row_buf + (size_t)warp * pairs;
    const __half2 *xr = x + t * pairs, *rr = residual + t * pairs;

    float sum = 0.0f;
    for (int j = lane; j < pairs; j += 32) {
        float2 a = __half22float2(xr[j]), r = __half22float2(rr[j]);
        float2 s = make_float2(a.x + r.x, a.y + r.y);
        if (bias) {
            s.x += bias[j].x;
            s.y += bias[j].y;
        }
        v[j] = s;
        sum += s.x + s.y;
    }
    // y = (v - mean) * rstd * g + b
    warp_layernorm_store(v, sum, pairs, hidden, g, b, eps, out + t * pairs);
}

} // namespace

// kernel launcher

extern "C" cudaError_t bias_residual_layernorm_launch(const fp16_t *x, const float *bias,
                                                      const fp16_t *residual, const float *g,
                                                      const float *b, float eps, int32_t n_tokens,
                                                      int32_t hidden, fp16_t *out,
                                                      cudaStream_t stream) {
    if (n_tokens < 0 || hidden <= 0 || hidden % 2 != 0 || hidden > KERNELS_MAX_HIDDEN || !x ||
        !residual || !g || !b || !out)
        return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    const unsigned blocks = (unsigned)((n_tokens + kRowsPerBlock - 1) / kRowsPerBlock);
    const size_t smem = (size_t)kRowsPerBlock * hidden * sizeof(float);
    bias_residual_layernorm_kernel<<<blocks, kRowsPerBlock * 32, smem, stream>>>(
        reinterpret_cast<const __half2 *>(x), reinterpret_cast<const float2 *>(bias),
        reinterpret_cast<const __half2 *>(residual), reinterpret_cast<const float2 *>(g),
        reinterpret_cast<const float2 *>(b), eps, n_tokens, hidden,
        reinterpret_cast<__half2 *>(out));
    return cudaGetLastError();
}
