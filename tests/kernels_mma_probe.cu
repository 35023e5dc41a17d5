// kernels_mma_probe.cu — one warp running each instruction of mma.cuh on matrices from global
// memory, with every lane placing and reading its registers by the PTX manual's layouts written out
// here element by element (see mma.cuh), so tests/kernels_mma_test.cc can hold the
// fragments against plain matrix products: on the GPU that checks these layouts (and so the
// attention kernel's use of them) against the hardware; on the emulation, the emulation.
// Not used by the encoder, and not in libdre: built into kernels_mma_test alone.
#include <cuda_fp16.h>

#include "kernels_mma_probe.h"
#include "mma.cuh"

namespace {

__device__ __forceinline__ uint32_t two_halves(const __half *m, int i0, int i1) {
    return (uint32_t)__half_as_ushort(m[i0]) | ((uint32_t)__half_as_ushort(m[i1]) << 16);
}

// sass-gate: mma_probe_kernel regs<=64 hmma>=1
// d (16x8) = a (16x16, row-major) b (16x8, row-major k x n) + c (16x8), one warp.
__global__ void __launch_bounds__(32)
    mma_probe_kernel(const __half *a, const __half *b, const float *c, float *d) {
    const int g = threadIdx.x / 4, t = threadIdx.x % 4;
    uint32_t af[4];
    for (int r = 0; r < 4; r++) { // a(2r), a(2r+1): row g + 8 (r & 1), columns 2t + 8 (r >> 1)
        const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
        af[r] = two_halves(a, row * 16 + col, row * 16 + col + 1);
    }
    // b(2r), b(2r+1): k = 2t + 8r, 2t + 8r + 1; n = g
    const uint32_t b0 = two_halves(b, (2 * t) * 8 + g, (2 * t + 1) * 8 + g);
    const uint32_t b1 = two_halves(b, (2 * t + 8) * 8 + g, (2 * t + 9) * 8 + g);
    float acc[4];
    for (int i = 0; i < 4; i++) // c(i): row g + 8 (i >> 1), column 2t + (i & 1)
        acc[i] = c[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
    mma_m16n8k16(acc, af, b0, b1);
    for (int i = 0; i < 4; i++)
        d[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = acc[i];
}

// sass-gate: ldmatrix_probe_kernel<*> regs<=64 hmma=0
// 32 rows of 8 halves (4 matrices) into shared memory (rows 24 halves apart, as a padded
// tile), then ldmatrix .x{n}[.trans]: out[lane * 4 + m] = lane's register of matrix m.
template <int N, bool TRANS>
__global__ void __launch_bounds__(32) ldmatrix_probe_kernel(const __half *src, uint32_t *out) {
    constexpr int ld = 24;
    __shared__ uint4 storage[32 * ld / 8]; // 16-byte aligned rows
    __half *tile = reinterpret_cast<__half *>(storage);
    const int lane = threadIdx.x;
    for (int j = 0; j < 8; j++)
        tile[lane * ld + j] = src[lane * 8 + j];
    __syncwarp();
    uint32_t r[N];
    if constexpr (TRANS)
        ldmatrix_trans<N>(r, tile + lane * ld);
    else
        ldmatrix<N>(r, tile + lane * ld);
    for (int m = 0; m < 4; m++)
        out[lane * 4 + m] = m < N ? r[m] : 0u;
}

} // namespace

// kernel launchers

extern "C" cudaError_t mma_probe_launch(const fp16_t *a, const fp16_t *b, const float *c, float *d,
                                        cudaStream_t stream) {
    if (!a || !b || !c || !d) return cudaErrorInvalidValue;
    mma_probe_kernel<<<1, 32, 0, stream>>>(reinterpret_cast<const __half *>(a),
                                           reinterpret_cast<const __half *>(b), c, d);
    return cudaGetLastError();
}

extern "C" cudaError_t ldmatrix_probe_launch(const fp16_t *src, int32_t n_matrices, int trans,
                                             uint32_t *out, cudaStream_t stream) {
    if (!src || !out) return cudaErrorInvalidValue;
    const __half *s = reinterpret_cast<const __half *>(src);
    switch (n_matrices * 2 + (trans ? 1 : 0)) {
    case 2: ldmatrix_probe_kernel<1, false><<<1, 32, 0, stream>>>(s, out); break;
    case 3: ldmatrix_probe_kernel<1, true><<<1, 32, 0, stream>>>(s, out); break;
    case 4: ldmatrix_probe_kernel<2, false><<<1, 32, 0, stream>>>(s, out); break;
    case 5: ldmatrix_probe_kernel<2, true><<<1, 32, 0, stream>>>(s, out); break;
    case 8: ldmatrix_probe_kernel<4, false><<<1, 32, 0, stream>>>(s, out); break;
    case 9: ldmatrix_probe_kernel<4, true><<<1, 32, 0, stream>>>(s, out); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
