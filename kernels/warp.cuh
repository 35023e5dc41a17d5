// warp.cuh — device helpers shared by the kernels: warp-wide reductions, and the
// LayerNorm tail that the embedding and the bias+residual kernels both end with.
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

// One warp normalises a row v (fp32 pairs, lane j owning pairs j, j + 32, ...) whose lane
// partial sum is sum: two-pass statistics (no cancellation), biased variance, then
// o = (v - mean) * rstd * g + b as fp16.
__device__ __forceinline__ void warp_layernorm_store(const float2 *v, float sum, int pairs,
                                                     int hidden, const float2 *g, const float2 *b,
                                                     float eps, __half2 *o) {
    const int lane = threadIdx.x % 32;
    const float mean = warp_sum(sum) / hidden;
    float sq = 0.0f;
    for (int j = lane; j < pairs; j += 32) {
        const float dx = v[j].x - mean, dy = v[j].y - mean;
        sq += dx * dx + dy * dy;
    }
    const float rstd = rsqrtf(warp_sum(sq) / hidden + eps);
    for (int j = lane; j < pairs; j += 32) {
        const float yx = (v[j].x - mean) * rstd * g[j].x + b[j].x;
        const float yy = (v[j].y - mean) * rstd * g[j].y + b[j].y;
        o[j] = __floats2half2_rn(yx, yy);
    }
}
