/* cpu/vmath.h — exp and the erf GELU on 16 floats at a time (AVX-512), for the CPU encoder's
 * fused epilogues and softmax, and its residual + LayerNorm row. Functions here carry their
 * own target attribute, so the file compiles without -mavx512f; callers check the CPU
 * (dre_cpu_gemm_vectorised) before calling.
 *
 * Accuracy, against the C library in double (tests/cpu_gemm_test.cc holds it):
 * - vexp: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^7
 *   (truncation below 6e-9 relative), 2^n applied by scalef: within 2 float ulps.
 * - vgelu_erf: 0.5 v (1 + erf(v / sqrt 2)) with 1 + erf(x) = erfc(-x), computed as erfc(|x|)
 *   or 2 - erfc(|x|) so neither tail cancels; erfc(x) = exp(-x^2) t P(t), t = 1 / (1 + x/2),
 *   P fitted by tools/fixtures/fit_gelu_erfc.py: 1 + erf within 2.5e-7 absolute (about 2 ulps).
 * - vlayernorm_row: the plain operator's arithmetic (mean and variance summed in double, two
 *   passes; the rest in float), only the order of the double sums differs. */
#ifndef DRE_CPU_VMATH_H
#define DRE_CPU_VMATH_H

#include <immintrin.h>

#define DRE_AVX512 __attribute__((target("avx512f")))

/* the lanes of a 16-float vector that hold one of `left` remaining values: all 16 when
 * left >= 16, none when left <= 0 */
static inline __mmask16 vtail_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

static inline DRE_AVX512 __m512 vexp(__m512 x) {
    /* below -103 the result is 0 in float (denormals included), above 88.73 it is inf */
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.73f)), _mm512_set1_ps(-103.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln 2 in two parts: n * hi is exact for |n| < 2^9 */
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline DRE_AVX512 __m512 vgelu_erf(__m512 v) {
    const __m512 x = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f));
    const __m512 ax = _mm512_abs_ps(x);
    /* t = 1 / (1 + |x|/2): the 14-bit reciprocal and one Newton step (about 2^-27 relative) */
    const __m512 d = _mm512_fmadd_ps(ax, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f));
    __m512 t = _mm512_rcp14_ps(d);
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(3.232920170e-02f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-2.297162116e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(6.695866585e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-9.695616364e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(6.413428187e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.910524219e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.432512343e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.399239689e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.816823423e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.822140455e-01f));
    const __m512 erfc = _mm512_mul_ps(
        _mm512_mul_ps(p, t), vexp(_mm512_mul_ps(ax, _mm512_sub_ps(_mm512_setzero_ps(), ax))));
    /* 1 + erf(x): erfc(|x|) where x < 0, 2 - erfc(|x|) elsewhere */
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 one_plus_erf =
        _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), erfc);
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)), one_plus_erf);
}

/* the low and high 8 floats of v, widened to double */
static inline DRE_AVX512 __m512d vlo_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}
static inline DRE_AVX512 __m512d vhi_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* x = LayerNorm(x + residual) over one row of n values (residual may be NULL) */
static inline DRE_AVX512 void vlayernorm_row(float *x, const float *residual, const float *g,
                                             const float *b, float eps, int n) {
    __m512d sum = _mm512_setzero_pd();
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = vtail_mask(n - j);
        __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + j));
        _mm512_mask_storeu_ps(x + j, m, v);
        sum = _mm512_add_pd(sum, _mm512_add_pd(vlo_pd(v), vhi_pd(v)));
    }
    const double mean = _mm512_reduce_add_pd(sum) / n;
    const __m512d mean_d = _mm512_set1_pd(mean);
    __m512d sq = _mm512_setzero_pd();
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = vtail_mask(n - j);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        /* lanes past n stay 0, not -mean */
        const __m512d lo = _mm512_maskz_sub_pd((__mmask8)m, vlo_pd(v), mean_d);
        const __m512d hi = _mm512_maskz_sub_pd((__mmask8)(m >> 8), vhi_pd(v), mean_d);
        sq = _mm512_fmadd_pd(lo, lo, sq);
        sq = _mm512_fmadd_pd(hi, hi, sq);
    }
    const double var = _mm512_reduce_add_pd(sq) / n;
    const __m512 rstd = _mm512_set1_ps((float)(1.0 / __builtin_sqrt(var + (double)eps)));
    const __m512 mean_f = _mm512_set1_ps((float)mean);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = vtail_mask(n - j);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(v, mean_f), rstd),
                                       _mm512_maskz_loadu_ps(m, g + j));
        _mm512_mask_storeu_ps(x + j, m, _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, b + j)));
    }
}

#endif
