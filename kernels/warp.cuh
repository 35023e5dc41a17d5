// warp.cuh — device helpers shared by the kernels: warp-wide reductions, 16-byte fp16
// chunks, and the LayerNorm tail that the embedding and the bias+residual kernels end with.
#pragma once

#include <cuda_fp16.h>

// Sum and max over the 32 lanes of a fully active warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// 8 halves (16 bytes) to 8 floats and back.
union eight_halves {
    uint4 raw;
    __half2 h2[4];
};

__device__ __forceinline__ void widen8(uint4 raw, float (&f)[8]) {
    eight_halves x;
    x.raw = raw;
    for (int j = 0; j < 4; j++) {
        const float2 p = __half22float2(x.h2[j]);
        f[2 * j] = p.x;
        f[2 * j + 1] = p.y;
    }
}

__device__ __forceinline__ uint4 narrow8(const float (&f)[8]) {
    eight_halves x;
    for (int j = 0; j < 4; j++)
        x.h2[j] = __floats2half2_rn(f[2 * j], f[2 * j + 1]);
    return x.raw;
}

// Sum over the 16 lanes of a half-warp (the whole warp calls it; halves stay apart).
__device__ __forceinline__ float halfwarp_sum(float v) {
    for (int offset = 8; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// The LayerNorm tail of a row held in registers by a half-warp: lane l of the half holds
// 16-byte chunks l, l + 16, ... (CPL of them, those at or past `chunks` zero). Two-pass
// statistics (no cancellation), biased variance, then out = (v - mean) * rstd * g + b as
// fp16, 16 bytes a store; g and b are fp32, read 32 bytes a chunk. With store false (a
// half-warp without a row) it only takes part in the shuffles.
template <int CPL>
__device__ __forceinline__ void
halfwarp_layernorm_store(const float (&v)[CPL][8], float sum, int chunks, float inv_hidden,
                         const float4 *g, const float4 *b, float eps, uint4 *out, bool store) {
    const int l = threadIdx.x % 16;
    // __fmul_rn: never contracted into the subtraction below (v - sum * inv_hidden as one
    // FMA would keep the product's rounding error: a constant row would not give exactly
    // beta, and the CPU twin rounds the mean first)
    const float mean = __fmul_rn(halfwarp_sum(sum), inv_hidden);
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < CPL; i++)
        if (l + 16 * i < chunks)
#pragma unroll
            for (int j = 0; j < 8; j++)
                sq += (v[i][j] - mean) * (v[i][j] - mean);
    const float rstd = rsqrtf(halfwarp_sum(sq) * inv_hidden + eps);
    if (!store) return;
#pragma unroll
    for (int i = 0; i < CPL; i++) {
        const int c = l + 16 * i;
        if (c >= chunks) break;
        const float4 g0 = g[2 * c], g1 = g[2 * c + 1], b0 = b[2 * c], b1 = b[2 * c + 1];
        const float gg[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
        const float bb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
        float y[8];
#pragma unroll
        for (int j = 0; j < 8; j++)
            y[j] = (v[i][j] - mean) * rstd * gg[j] + bb[j];
        out[c] = narrow8(y);
    }
}

// Calls body.template operator()<CPL>() with the smallest chunks-per-lane count that holds
// a row of `chunks` 16-byte chunks on a half-warp (hidden <= 1024, BERT-large's: at most 8;
// past that a row would not fit a half-warp's registers without spilling).
template <class Body> __host__ cudaError_t with_chunks_per_lane(int chunks, Body body) {
    if (chunks <= 16) return body.template operator()<1>();
    if (chunks <= 32) return body.template operator()<2>();
    if (chunks <= 48) return body.template operator()<3>();
    if (chunks <= 64) return body.template operator()<4>();
    if (chunks <= 96) return body.template operator()<6>();
    if (chunks <= 128) return body.template operator()<8>();
    return cudaErrorInvalidValue;
}
