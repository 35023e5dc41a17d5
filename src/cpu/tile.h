/* cpu/tile.h — how every micro-kernel of the CPU encoder (cpu/gemm.c's fp32, cpu/gemm_bf16.c's
 * bf16) ends: the R x 32 sums of a tile, held in s0 (columns 0..15) and s1 (16..31), get the
 * epilogue's bias, or bias + GELU, and are stored under the column masks. Inlined into each
 * kernel, so R and epi are constants there (cpu/amx.c's sums come through it too, 16 rows at a
 * time). */
#ifndef DRE_CPU_TILE_H
#define DRE_CPU_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/gemm.h"
#include "cpu/vmath.h"

static inline __attribute__((always_inline)) DRE_AVX512 void
cpu_tile_store(const int R, const __m512 *s0, const __m512 *s1, float *c, int32_t ldc,
               __mmask16 m0, __mmask16 m1, const float *bias, cpu_epilogue epi) {
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (epi != CPU_EPI_NONE) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        __m512 v0 = s0[r], v1 = s1[r];
        if (epi != CPU_EPI_NONE) v0 = _mm512_add_ps(v0, bias0), v1 = _mm512_add_ps(v1, bias1);
        if (epi == CPU_EPI_BIAS_GELU) v0 = vgelu_erf(v0), v1 = vgelu_erf(v1);
        _mm512_mask_storeu_ps(c + (size_t)r * ldc, m0, v0);
        _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16, m1, v1);
    }
}

#endif
