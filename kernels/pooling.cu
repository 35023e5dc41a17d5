// pooling.cu — sentence embedding from token states: mean over the sequence's tokens
// (or its first token, CLS), then optionally x / max(||x||_2, 1e-12); fp32 out.
// CPU twin: dre_pool_normalize_cpu in src/cpu/ops.c.
//
// Memory bound: each token row is read once (2 * dim bytes), each output written once (4 *
// dim) and, with the norm, read and written once more. Blocks are (sequence, 64 columns),
// so even a batch of a few queries spreads over dim / 64 blocks per query: a thread owns
// one 16-byte chunk of 8 columns and every 16th row, partial sums meet in shared memory.
// Then one warp per sequence takes the norm and rescales (float4 accesses).
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kChunksPerBlock = 8; // 64 columns
constexpr int kSlices = 16;        // rows a block reads side by side
constexpr int kThreads = kChunksPerBlock * kSlices;

// sass-gate: pool_kernel regs<=64 hmma=0 ldg128>=1
__global__ void __launch_bounds__(kThreads)
    pool_kernel(const uint4 *hidden, const int32_t *cu_seqlens, int32_t chunks, int cls,
                float *out) {
    __shared__ float partial[kSlices][kChunksPerBlock][8];
    const int32_t s = blockIdx.x;
    const int cc = threadIdx.x % kChunksPerBlock, slice = threadIdx.x / kChunksPerBlock;
    const int32_t c = blockIdx.y * kChunksPerBlock + cc;
    const int32_t start = cu_seqlens[s];
    const int32_t n_rows = cls ? 1 : cu_seqlens[s + 1] - start;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (c < chunks)
        for (int32_t r = slice; r < n_rows; r += kSlices) {
            float v[8];
            widen8(hidden[(size_t)(start + r) * chunks + c], v);
#pragma unroll
            for (int j = 0; j < 8; j++)
                acc[j] += v[j];
        }
#pragma unroll
    for (int j = 0; j < 8; j++)
        partial[slice][cc][j] = acc[j];
    __syncthreads();
    if (threadIdx.x >= kChunksPerBlock * 8) return; // no barrier follows
    const int oc = threadIdx.x / 8, j = threadIdx.x % 8;
    const int32_t col_chunk = blockIdx.y * kChunksPerBlock + oc;
    if (col_chunk >= chunks) return;
    float sum = 0.0f;
    for (int sl = 0; sl < kSlices; sl++)
        sum += partial[sl][oc][j];
    out[(size_t)s * chunks * 8 + (size_t)col_chunk * 8 + j] = sum / (float)n_rows;
}

// sass-gate: normalize_rows_kernel regs<=64 hmma=0
// rows x / max(||x||, 1e-12), one warp per row of dim floats (dim a multiple of 4)
__global__ void __launch_bounds__(128)
    normalize_rows_kernel(float4 *rows, int32_t n_rows, int32_t quads) {
    const int32_t r = blockIdx.x * 4 + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    float4 *row = rows + (size_t)(r < n_rows ? r : 0) * quads;
    float sq = 0.0f;
    if (r < n_rows)
        for (int32_t i = lane; i < quads; i += 32) {
            const float4 v = row[i];
            sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    const float scale = 1.0f / fmaxf(sqrtf(warp_sum(sq)), 1e-12f);
    if (r >= n_rows) return;
    for (int32_t i = lane; i < quads; i += 32) {
        float4 v = row[i];
        v.x *= scale, v.y *= scale, v.z *= scale, v.w *= scale;
        row[i] = v;
    }
}

} // namespace

// kernel launcher

extern "C" cudaError_t dre_pool_normalize_launch(const fp16_t *hidden, const int32_t *cu_seqlens,
                                                 int32_t n_seqs, int32_t dim, dre_pooling pooling,
                                                 int normalize, float *out, cudaStream_t stream) {
    if (n_seqs < 0 || dim <= 0 || dim % 8 != 0 || !hidden || !cu_seqlens || !out ||
        ((uintptr_t)hidden | (uintptr_t)out) % 16 != 0)
        return cudaErrorInvalidValue;
    if (n_seqs == 0) return cudaSuccess;
    const int32_t chunks = dim / 8;
    const dim3 grid((unsigned)n_seqs, (unsigned)((chunks + kChunksPerBlock - 1) / kChunksPerBlock));
    pool_kernel<<<grid, kThreads, 0, stream>>>(reinterpret_cast<const uint4 *>(hidden), cu_seqlens,
                                               chunks, pooling == DRE_POOL_CLS, out);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess || !normalize) return err;
    normalize_rows_kernel<<<(unsigned)((n_seqs + 3) / 4), 128, 0, stream>>>(
        reinterpret_cast<float4 *>(out), n_seqs, dim / 4);
    return cudaGetLastError();
}
