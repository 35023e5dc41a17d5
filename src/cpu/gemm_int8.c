/* cpu/gemm_int8.c — the CPU encoder's products with int8 weights (--precision int8), on CPUs
 * with AVX-512 BF16.
 *
 * Weights are quantised once, at pack time, in groups of CPU_INT8_GROUP (64) along k within
 * each output column: scale = max |w| / 127 over the group, code = w / scale rounded to
 * nearest even, symmetric in [-127, 127]. (One scale a whole column, the usual per-channel
 * int8, left MiniLM at cosine 0.9965 to fp32 on some texts; groups of 64 give 0.9995.) Panel p
 * holds [k/2][32][2] codes, 64 bytes a k-pair, byte 2l + h the code of w[32p + l][2j + h] (the
 * order of bf16's pairs, cpu/gemm_bf16.c), and beside them each group's scales, twice a
 * column ([32][2] floats: one for each code of a pair). A's rows are rounded to bf16 and
 * packed as bf16's are. A weight is widened to bf16(code * scale) (int8 to int32 to float,
 * exact, times the scale, rounded to bf16), then multiplied as bf16's (VDPBF16PS):
 *   out[r][c] = epi(sum_j bf16(a[r][j]) * bf16(code[c][j] * scale[c][j / 64]) + bias[c]),
 * every product exact in fp32, sums in fp32, gemm's epilogues. A query (one tile of rows)
 * widens each pair in registers as it reads it, reading a quarter of fp32's weight bytes
 * (plus an eighth for the scales); more rows, or any rows where AMX runs (it has no
 * int8-by-bf16 product), widen a panel once into scratch, multiplied as bf16's panels are.
 * VNNI (VPDPBUSD, int8 by int8) and AMX-INT8 are not used: they need the activations in 8
 * bits too, and rounding them per row to u8 with a zero point on top of these weights left
 * MiniLM at cosine 0.9949 to fp32 (0.9832 as symmetric s8). */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/amx.h"
#include "cpu/gemm.h"
#include "cpu/tile.h"
#include "cpu/vmath.h"

#define DRE_AVX512_BF16 __attribute__((target("avx512f,avx512bf16")))

float dre_cpu_int8_quantize_row(const float *w, int32_t k, int8_t *codes) {
    float amax = 0.0f;
    for (int32_t j = 0; j < k; j++)
        amax = fabsf(w[j]) > amax ? fabsf(w[j]) : amax;
    const float scale = amax / 127.0f;
    for (int32_t j = 0; j < k; j++) {
        /* a zero row (or one too small for a normal scale) is all zeros */
        const float q = scale > 0.0f ? nearbyintf(w[j] / scale) : 0.0f;
        codes[j] = (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : q);
    }
    return scale > 0.0f ? scale : 0.0f;
}

dre_status dre_cpu_pack_int8(const float *w, int32_t n, int32_t k, cpu_packed *out) {
    memset(out, 0, sizeof *out);
    out->w = w, out->n = n, out->k = k;
    out->n_panels = (n + CPU_PANEL - 1) / CPU_PANEL;
    const int32_t k2 = (k + 1) / 2, n_groups = (k + CPU_INT8_GROUP - 1) / CPU_INT8_GROUP;
    const size_t bytes = (size_t)out->n_panels * k2 * CPU_PANEL * 2;
    const size_t scale_bytes = (size_t)out->n_panels * n_groups * 2 * CPU_PANEL * sizeof(float);
    out->codes = aligned_alloc(64, (bytes + 63) / 64 * 64);
    out->scales = aligned_alloc(64, (scale_bytes + 63) / 64 * 64);
    int8_t *row = malloc((size_t)k + 1);
    if (!out->codes || !out->scales || !row) {
        free(row);
        free(out->codes);
        free(out->scales);
        out->codes = NULL, out->scales = NULL;
        return dre_set_error(DRE_ERR_NOMEM, "dre_cpu_pack_int8: out of memory for %zu MiB",
                             bytes >> 20);
    }
    memset(out->codes, 0, bytes);
    memset(out->scales, 0, scale_bytes);
    row[k] = 0; /* odd k: the last pair's second code */
    for (int32_t col = 0; col < n; col++) {
        const int32_t p = col / CPU_PANEL, l = col % CPU_PANEL;
        for (int32_t g = 0; g < n_groups; g++) {
            const int32_t j0 = g * CPU_INT8_GROUP;
            const int32_t len = k - j0 < CPU_INT8_GROUP ? k - j0 : CPU_INT8_GROUP;
            const float scale = dre_cpu_int8_quantize_row(w + (size_t)col * k + j0, len, row + j0);
            float *at = out->scales + ((size_t)p * n_groups + g) * 2 * CPU_PANEL + 2 * l;
            at[0] = at[1] = scale; /* one for each code of a pair */
        }
        for (int32_t j = 0; j < k2; j++) {
            int8_t *pair = out->codes + (((size_t)p * k2 + j) * CPU_PANEL + l) * 2;
            pair[0] = row[2 * j], pair[1] = row[2 * j + 1];
        }
    }
    free(row);
    return DRE_OK;
}

/* 16 code pairs (32 bytes: 16 columns of one k-pair) as 32 bf16 weights, in order: widened
 * to int32, converted to float (exact), times their scales, rounded to bf16 */
static inline __attribute__((always_inline)) DRE_AVX512_BF16 __m512bh
widen_pairs(const int8_t *src, const float *scale) {
    const __m512 lo = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)src))),
        _mm512_load_ps(scale));
    const __m512 hi = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(src + 16)))),
        _mm512_load_ps(scale + 16));
    return _mm512_cvtne2ps_pbh(hi, lo);
}

/* k-pairs ahead the kernel asks for its panel: 64 bytes (a cache line) a pair */
#define PREFETCH_PAIRS 32

/* One tile: rows R x 32 columns (R and epi constants once inlined), reading the panel's codes
 * and widening them as it goes. Per k-pair: the panel pair, R broadcasts of an A pair, 2R
 * VDPBF16PS. (A panel already widened is bf16's: dre_cpu_bf16_tile runs it.) */
static inline __attribute__((always_inline)) DRE_AVX512_BF16 void
tile_kernel(const int R, int32_t k2, int32_t words, const uint32_t *a, const int8_t *panel,
            const float *scale, float *c, int32_t ldc, __mmask16 m0, __mmask16 m1,
            const float *bias, cpu_epilogue epi) {
    __m512 s0[CPU_TILE_ROWS], s1[CPU_TILE_ROWS];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++)
        s0[r] = s1[r] = _mm512_setzero_ps();
    for (int32_t j = 0; j < k2; j++) {
        const int8_t *pair = panel + (size_t)j * 2 * CPU_PANEL;
        _mm_prefetch((const char *)(pair + PREFETCH_PAIRS * 2 * CPU_PANEL), _MM_HINT_T0);
        const float *sc = scale + (size_t)(j / (CPU_INT8_GROUP / 2)) * 2 * CPU_PANEL;
        const __m512bh b0 = widen_pairs(pair, sc);
        const __m512bh b1 = widen_pairs(pair + CPU_PANEL, sc + CPU_PANEL);
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
            tile_kernel(R, k2, words, a, panel, scale, c, ldc, m0, m1, bias, CPU_EPI_NONE);        \
        else if (epi == CPU_EPI_BIAS)                                                              \
            tile_kernel(R, k2, words, a, panel, scale, c, ldc, m0, m1, bias, CPU_EPI_BIAS);        \
        else                                                                                       \
            tile_kernel(R, k2, words, a, panel, scale, c, ldc, m0, m1, bias, CPU_EPI_BIAS_GELU);   \
        break;

static DRE_AVX512_BF16 void tile_dispatch(int32_t rows, int32_t k2, int32_t words,
                                          const uint32_t *a, const int8_t *panel,
                                          const float *scale, float *c, int32_t ldc, int32_t ncols,
                                          const float *bias, cpu_epilogue epi) {
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

/* a panel's codes widened to bf16 weights, [words][32] pairs as bf16's, zero past k2 */
static DRE_AVX512_BF16 void widen_panel(const int8_t *codes, const float *scale, int32_t k2,
                                        int32_t words, uint32_t *dst) {
    memset(dst + (size_t)k2 * CPU_PANEL, 0, (size_t)(words - k2) * CPU_PANEL * sizeof *dst);
    for (int32_t j = 0; j < k2; j++) {
        const int8_t *pair = codes + (size_t)j * 2 * CPU_PANEL;
        const float *sc = scale + (size_t)(j / (CPU_INT8_GROUP / 2)) * 2 * CPU_PANEL;
        _mm512_store_si512(dst + (size_t)j * CPU_PANEL, (__m512i)widen_pairs(pair, sc));
        _mm512_store_si512(dst + (size_t)j * CPU_PANEL + 16,
                           (__m512i)widen_pairs(pair + CPU_PANEL, sc + CPU_PANEL));
    }
}

void dre_cpu_int8_panel(int32_t rows, int32_t k, const uint32_t *a, const int8_t *codes,
                        const float *scale, uint32_t *widened, float *c, int32_t ldc, int32_t ncols,
                        const float *bias, cpu_epilogue epi) {
    const int32_t k2 = (k + 1) / 2, words = dre_cpu_bf16_row_words(k);
    if (rows <= CPU_TILE_ROWS && dre_cpu_amx_mode(NULL) == CPU_AMX_OFF) {
        tile_dispatch(rows, k2, words, a, codes, scale, c, ldc, ncols, bias, epi);
        return;
    }
    widen_panel(codes, scale, k2, words, widened);
    dre_cpu_bf16_panel(rows, k, a, widened, c, ldc, ncols, bias, epi);
}
