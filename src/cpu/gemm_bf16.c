/* cpu/gemm_bf16.c — the CPU encoder's products in bf16 (--precision bf16), on CPUs with
 * AVX-512 BF16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later).
 *
 * Weights are packed once as bf16 pairs: panel p holds [w][32] 32-bit words, w =
 * dre_cpu_bf16_row_words(k) (k/2 rounded up to 16, zero pairs past k: the AMX tile's depth),
 * word (j, l) the weights w[32p + l][2j] (low half) and w[32p + l][2j + 1] (high half). A's
 * rows are rounded to bf16 and packed row by row, w words a row. One VDPBF16PS adds two
 * products a lane, each exact in fp32 (8-bit by 8-bit mantissas), to an fp32 sum: twice the
 * multiply-adds of an fp32 FMA an instruction, and half the weight bytes to read. The sums
 * stay in fp32 and the epilogues (bias, GELU) are gemm.c's, in fp32. Where AMX runs
 * (cpu/amx.h), dre_cpu_bf16_panel gives every row count to the tiles instead, so a row's
 * result never depends on how many rows share its call. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/amx.h"
#include "cpu/gemm.h"
#include "cpu/tile.h"
#include "cpu/vmath.h"

#define DRE_AVX512_BF16 __attribute__((target("avx512f,avx512bf16")))

/* fp32 to bf16, rounded to nearest even (NaN kept a NaN), as VCVTNEPS2BF16 rounds (which also
 * takes a denormal input as zero) */
uint16_t dre_bf16_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* 16 words from 16 low and 16 high floats, each rounded by VCVTNEPS2BF16: word l = (bf16 of
 * lo[l]) | (bf16 of hi[l]) << 16 */
static inline DRE_AVX512_BF16 __m512i pairs_of16(__m512 lo, __m512 hi) {
    const __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
    const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
    return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

/* 16 columns' values at k-position `at`: contiguous when the columns are (col_stride 1),
 * gathered otherwise; zero where the mask is off */
static inline DRE_AVX512_BF16 __m512 column_values(const float *at, size_t col_stride,
                                                   __m512i lanes, __mmask16 m) {
    if (col_stride == 1) return _mm512_maskz_loadu_ps(m, at);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lanes, at, 4);
}

DRE_AVX512_BF16 void dre_cpu_bf16_pack_panels(const float *src, size_t col_stride, size_t k_stride,
                                              int32_t n, int32_t k, uint32_t *dst) {
    const int32_t n_panels = (n + CPU_PANEL - 1) / CPU_PANEL, k2 = (k + 1) / 2;
    const int32_t words = dre_cpu_bf16_row_words(k);
    const __m512i lanes =
        _mm512_mullo_epi32(_mm512_set1_epi32((int)col_stride),
                           _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    for (int32_t p = 0; p < n_panels; p++)
        for (int32_t half = 0; half < 2; half++) {
            const int32_t c0 = p * CPU_PANEL + 16 * half;
            const __mmask16 m = vtail_mask(n - c0);
            const float *col = src + (size_t)(c0 < n ? c0 : 0) * col_stride;
            for (int32_t j = 0; j < k2; j++) {
                const float *at = col + (size_t)2 * j * k_stride;
                const __m512 lo = column_values(at, col_stride, lanes, m);
                const __m512 hi = 2 * j + 1 < k ? column_values(at + k_stride, col_stride, lanes, m)
                                                : _mm512_setzero_ps();
                _mm512_store_si512(dst + ((size_t)p * words + j) * CPU_PANEL + 16 * half,
                                   pairs_of16(lo, hi));
            }
            for (int32_t j = k2; j < words; j++)
                _mm512_store_si512(dst + ((size_t)p * words + j) * CPU_PANEL + 16 * half,
                                   _mm512_setzero_si512());
        }
}

dre_status dre_cpu_pack_bf16(const float *w, int32_t n, int32_t k, cpu_packed *out) {
    memset(out, 0, sizeof *out);
    out->w = w, out->n = n, out->k = k;
    out->n_panels = (n + CPU_PANEL - 1) / CPU_PANEL;
    const size_t bytes =
        (size_t)out->n_panels * dre_cpu_bf16_row_words(k) * CPU_PANEL * sizeof(uint32_t);
    out->pairs = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!out->pairs)
        return dre_set_error(DRE_ERR_NOMEM, "dre_cpu_pack_bf16: out of memory for %zu MiB",
                             bytes >> 20);
    dre_cpu_bf16_pack_panels(w, (size_t)k, 1, n, k, out->pairs);
    return DRE_OK;
}

int32_t dre_cpu_bf16_row_words(int32_t k) { return ((k + 1) / 2 + 15) / 16 * 16; }

/* 32 floats of a row at a time: VCVTNE2PS2BF16 rounds them to nearest even (a denormal
 * input counts as zero: the one difference from dre_bf16_of) into 16 pairs, in order, stored
 * as they come, zero pairs to the row's end (row-major, unlike fp32's [k][14], which a
 * conversion would have to scatter); rows past `rows` up to a multiple of 16 zero. */
DRE_AVX512_BF16 void dre_cpu_bf16_pack_rows(const float *src, int32_t ld, int32_t rows, int32_t k,
                                            uint32_t *dst) {
    const int32_t words = dre_cpu_bf16_row_words(k);
    for (int32_t r = 0; r < rows; r++) {
        const float *row = src + (size_t)r * ld;
        uint32_t *out = dst + (size_t)r * words;
        for (int32_t c = 0; c < 2 * words; c += 32) {
            const __m512 lo = _mm512_maskz_loadu_ps(vtail_mask(k - c), row + c);
            const __m512 hi = _mm512_maskz_loadu_ps(vtail_mask(k - c - 16), row + c + 16);
            _mm512_storeu_si512(out + c / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
    const int32_t padded = (rows + 15) / 16 * 16;
    memset(dst + (size_t)rows * words, 0, (size_t)(padded - rows) * words * sizeof *dst);
}

/* k-pairs ahead the kernel asks for its panel (gemm.c's PREFETCH_AHEAD, in pairs) */
#define PREFETCH_PAIRS 32

/* One tile: rows R (a constant once inlined) x 32 columns, the sums in 2R zmm registers.
 * Per k-pair: two panel loads, R broadcasts of an A pair, 2R VDPBF16PS. */
static inline __attribute__((always_inline)) DRE_AVX512_BF16 void
tile_kernel(const int R, int32_t k2, int32_t words, const uint32_t *a, const uint32_t *panel,
            float *c, int32_t ldc, __mmask16 m0, __mmask16 m1, const float *bias,
            cpu_epilogue epi) {
    __m512 s0[CPU_TILE_ROWS], s1[CPU_TILE_ROWS];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++)
        s0[r] = s1[r] = _mm512_setzero_ps();
    for (int32_t j = 0; j < k2; j++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(panel + (size_t)j * CPU_PANEL);
        const __m512bh b1 = (__m512bh)_mm512_load_si512(panel + (size_t)j * CPU_PANEL + 16);
        _mm_prefetch((const char *)(panel + (size_t)(j + PREFETCH_PAIRS) * CPU_PANEL), _MM_HINT_T0);
        _mm_prefetch((const char *)(panel + (size_t)(j + PREFETCH_PAIRS) * CPU_PANEL + 16),
                     _MM_HINT_T0);
#pragma GCC unroll 14
        for (int r = 0; r < R; r++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[(size_t)r * words + j]);
            s0[r] = _mm512_dpbf16_ps(s0[r], av, b0);
            s1[r] = _mm512_dpbf16_ps(s1[r], av, b1);
        }
    }
    cpu_tile_store(R, s0, s1, c, ldc, m0, m1, bias, epi);
}

#define TILE_CASE(R)                                                                               \
    case R:                                                                                        \
        if (epi == CPU_EPI_NONE)                                                                   \
            tile_kernel(R, k2, words, a, panel, c, ldc, m0, m1, bias, CPU_EPI_NONE);               \
        else if (epi == CPU_EPI_BIAS)                                                              \
            tile_kernel(R, k2, words, a, panel, c, ldc, m0, m1, bias, CPU_EPI_BIAS);               \
        else                                                                                       \
            tile_kernel(R, k2, words, a, panel, c, ldc, m0, m1, bias, CPU_EPI_BIAS_GELU);          \
        break;

DRE_AVX512_BF16 void dre_cpu_bf16_tile(int32_t rows, int32_t k, const uint32_t *a,
                                       const uint32_t *panel, float *c, int32_t ldc, int32_t ncols,
                                       const float *bias, cpu_epilogue epi) {
    const int32_t k2 = (k + 1) / 2, words = dre_cpu_bf16_row_words(k);
    const __mmask16 m0 = vtail_mask(ncols), m1 = vtail_mask(ncols - 16);
    // clang-format off
    switch (rows) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
        TILE_CASE(13) TILE_CASE(14)
    default:
        break;
    }
    // clang-format on
}

void dre_cpu_bf16_panel(int32_t rows, int32_t k, const uint32_t *a, const uint32_t *panel, float *c,
                        int32_t ldc, int32_t ncols, const float *bias, cpu_epilogue epi) {
    const int32_t words = dre_cpu_bf16_row_words(k);
    if (dre_cpu_amx_mode(NULL) != CPU_AMX_OFF) {
        dre_cpu_amx_panel(rows, words, a, panel, c, ldc, ncols, bias, epi);
        return;
    }
    for (int32_t r = 0; r < rows; r += CPU_TILE_ROWS)
        dre_cpu_bf16_tile(rows - r < CPU_TILE_ROWS ? rows - r : CPU_TILE_ROWS, k,
                          a + (size_t)r * words, panel, c + (size_t)r * ldc, ldc, ncols, bias, epi);
}
