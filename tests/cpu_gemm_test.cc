// cpu_gemm_test.cc — the CPU encoder's fast path (src/cpu/gemm.c, cpu/attention.c,
// cpu/vmath.h) against plain references: products and epilogues against sums in double
// with libm's erf; the tiled attention and dre_attention_cpu against attention in double; exp and
// the erf GELU over their whole range against libm; the residual + LayerNorm row against the plain
// operator; bf16's and int8's products (int8's quantisation too). Plus what the encoder relies
// on: results bit-identical at 1 and 2 threads and whatever rows a call covers, and the
// OpenBLAS path (a CPU without AVX-512) giving the same products. The
// AVX-512 cases skip, saying so, on a CPU without it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/vmath.h"
#include "cpu_amx_modes.h"

namespace {

#define REQUIRE_AVX512()                                                                           \
    if (!dre_cpu_gemm_vectorised())                                                                \
    GTEST_SKIP() << "this CPU has no AVX-512F (or DRE_CPU_GEMM=openblas)"

std::vector<float> uniform(size_t n, float lo, float hi, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float &x : v)
        x = dist(rng);
    return v;
}

// 64-byte aligned scratch for n_threads threads
struct workspace {
    cpu_workspace ws{};
    explicit workspace(size_t per_thread, int n_threads) {
        ws.floats_per_thread = (per_thread + 15) / 16 * 16;
        ws.n_threads = n_threads;
        ws.data = static_cast<float *>(
            aligned_alloc(64, ws.floats_per_thread * n_threads * sizeof(float)));
    }
    ~workspace() { free(ws.data); }
    workspace(const workspace &) = delete;
    workspace &operator=(const workspace &) = delete;
};

struct packed {
    cpu_packed p{};
    packed(const std::vector<float> &w, int32_t n, int32_t k) {
        EXPECT_EQ(dre_cpu_pack(w.data(), n, k, &p), DRE_OK);
    }
    ~packed() { dre_cpu_pack_free(&p); }
    packed(const packed &) = delete;
    packed &operator=(const packed &) = delete;
};

// 16 values at a time through the vector functions (compiled for AVX-512, called only
// where the CPU has it)
DRE_AVX512 void exp16(const float *in, float *out) {
    _mm512_storeu_ps(out, vexp(_mm512_loadu_ps(in)));
}
DRE_AVX512 void gelu16(const float *in, float *out) {
    _mm512_storeu_ps(out, vgelu_erf(_mm512_loadu_ps(in)));
}

double gelu_ref(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

struct shape {
    int32_t m, n, k;
};

// out = epilogue(a @ w^T + bias) against double sums; the error bound: fp32 accumulation
// over k terms, k * 2^-24 * sum |a_j w_j| (a few times tighter in practice), plus the
// GELU's own 3e-7 |v|.
void check_product(const shape &s, cpu_epilogue epi, const float *got, int32_t ldo,
                   const std::vector<float> &a, int32_t lda, const std::vector<float> &w,
                   const std::vector<float> &bias) {
    for (int32_t i = 0; i < s.m; i++)
        for (int32_t j = 0; j < s.n; j++) {
            double sum = 0.0, mag = 0.0;
            for (int32_t t = 0; t < s.k; t++) {
                sum += (double)a[(size_t)i * lda + t] * w[(size_t)j * s.k + t];
                mag += std::fabs((double)a[(size_t)i * lda + t] * w[(size_t)j * s.k + t]);
            }
            if (epi != CPU_EPI_NONE) sum += bias[j], mag += std::fabs(bias[j]);
            double want = epi == CPU_EPI_BIAS_GELU ? gelu_ref(sum) : sum;
            double tol = s.k * 6e-8 * mag + 3e-7 * std::fabs(sum) + 1e-30;
            ASSERT_NEAR(got[(size_t)i * ldo + j], want, tol)
                << "row " << i << " column " << j << " of " << s.m << "x" << s.n << "x" << s.k
                << " epilogue " << epi;
        }
}

// dre_cpu_gemm of a (row stride lda) by the packed weights at each epilogue, into an output
// of row stride ldo, against double sums of want_a and want_w (the values the kernel
// multiplies: as given, or rounded as it rounds them); nothing written past n
void check_epilogues(const shape &s, const cpu_packed *pw, const std::vector<float> &a, int32_t lda,
                     int32_t ldo, const std::vector<float> &want_a,
                     const std::vector<float> &want_w, const std::vector<float> &bias) {
    workspace ws(dre_cpu_gemm_scratch_floats(s.k), 2);
    for (cpu_epilogue epi : {CPU_EPI_NONE, CPU_EPI_BIAS, CPU_EPI_BIAS_GELU}) {
        std::vector<float> out((size_t)s.m * ldo, 12345.0f);
        dre_cpu_gemm(a.data(), lda, s.m, pw, epi == CPU_EPI_NONE ? nullptr : bias.data(), epi,
                     out.data(), ldo, &ws.ws);
        ASSERT_NO_FATAL_FAILURE(check_product(s, epi, out.data(), ldo, want_a, lda, want_w, bias));
        for (int32_t i = 0; i < s.m; i++)
            for (int32_t j = s.n; j < ldo; j++)
                ASSERT_EQ(out[(size_t)i * ldo + j], 12345.0f) << "written past n";
    }
}

const shape kShapes[] = {{1, 1, 1},       {1, 32, 16},    {3, 17, 5},    {13, 40, 7},
                         {14, 64, 33},    {15, 96, 384},  {57, 100, 31}, {113, 384, 64},
                         {12, 1536, 384}, {40, 384, 1536}};

TEST(CpuGemm, ProductsAndEpiloguesMatchDoubleSums) {
    REQUIRE_AVX512();
    unsigned seed = 1;
    for (const shape &s : kShapes) {
        // A with a row stride wider than k and an output stride wider than n: both are
        // honoured, and nothing past them is written
        const int32_t lda = s.k + 3, ldo = s.n + 5;
        const std::vector<float> a = uniform((size_t)s.m * lda, -1.0f, 1.0f, seed++);
        const std::vector<float> w = uniform((size_t)s.n * s.k, -0.5f, 0.5f, seed++);
        const std::vector<float> bias = uniform((size_t)s.n, -2.0f, 2.0f, seed++);
        packed pw(w, s.n, s.k);
        ASSERT_NE(pw.p.panels, nullptr);
        ASSERT_NO_FATAL_FAILURE(check_epilogues(s, &pw.p, a, lda, ldo, a, w, bias));
    }
}

float bf16_rounded(float x) {
    const uint32_t u = (uint32_t)dre_bf16_of(x) << 16;
    float y;
    std::memcpy(&y, &u, sizeof y);
    return y;
}

// bf16 (--precision bf16): the same products with A and W rounded to bf16 (ties to even),
// against double sums of the rounded values: each product of two bf16 is exact in fp32, so
// the only error left is fp32 accumulation's, the bound above. Odd k (a zero pair past the
// end), every row count of a tile, strides, epilogues.
TEST(CpuGemm, Bf16ProductsMatchDoubleSumsOfRoundedInputs) {
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    for (cpu_amx_mode mode : amx_modes()) {
        const amx_mode_scope scope(mode);
        SCOPED_TRACE(amx_mode_name(mode));
        unsigned seed = 101;
        for (const shape &s : kShapes) {
            const int32_t lda = s.k + 3, ldo = s.n + 5;
            const std::vector<float> a = uniform((size_t)s.m * lda, -1.0f, 1.0f, seed++);
            const std::vector<float> w = uniform((size_t)s.n * s.k, -0.5f, 0.5f, seed++);
            const std::vector<float> bias = uniform((size_t)s.n, -2.0f, 2.0f, seed++);
            std::vector<float> a16(a), w16(w);
            for (float &x : a16)
                x = bf16_rounded(x);
            for (float &x : w16)
                x = bf16_rounded(x);
            cpu_packed pw{};
            ASSERT_EQ(dre_cpu_pack_bf16(w.data(), s.n, s.k, &pw), DRE_OK);
            ASSERT_NE(pw.pairs, nullptr);
            ASSERT_NO_FATAL_FAILURE(check_epilogues(s, &pw, a, lda, ldo, a16, w16, bias));
            dre_cpu_pack_free(&pw);
        }
    }
}

TEST(CpuGemm, Bf16RoundingIsToNearestEven) {
    EXPECT_EQ(dre_bf16_of(1.0f), 0x3f80);
    EXPECT_EQ(dre_bf16_of(-2.0f), 0xc000);
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: to the even one, 1
    EXPECT_EQ(dre_bf16_of(1.0f + 0x1p-8f), 0x3f80);
    // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, up
    EXPECT_EQ(dre_bf16_of(1.0f + 3 * 0x1p-8f), 0x3f82);
    EXPECT_EQ(dre_bf16_of(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); // past halfway: up
    EXPECT_EQ(dre_bf16_of(INFINITY), 0x7f80);
    EXPECT_EQ(dre_bf16_of(std::nanf("")) & 0x7fc0, 0x7fc0); // a NaN stays a NaN
    EXPECT_EQ(dre_bf16_of(3.0e38f), 0x7f62);                // large finite: not infinity
    // the packing (VCVTNEPS2BF16, gathered or loaded) rounds as dre_bf16_of: a 3 x 9 block of
    // these values and random ones, packed as weights, word for word
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    const int32_t n = 3, k = 9;
    std::vector<float> w = uniform((size_t)n * k, -3.0f, 3.0f, 41);
    const float special[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f,
                             INFINITY,       -3.0e38f,           -0.0f};
    std::copy(std::begin(special), std::end(special), w.begin() + 2);
    cpu_packed p{};
    ASSERT_EQ(DRE_OK, dre_cpu_pack_bf16(w.data(), n, k, &p));
    for (int32_t col = 0; col < CPU_PANEL; col++)
        for (int32_t j = 0; j < (k + 1) / 2; j++) {
            uint32_t want = 0;
            if (col < n) {
                const float lo = w[(size_t)col * k + 2 * j];
                const float hi = 2 * j + 1 < k ? w[(size_t)col * k + 2 * j + 1] : 0.0f;
                want = (uint32_t)dre_bf16_of(lo) | (uint32_t)dre_bf16_of(hi) << 16;
            }
            EXPECT_EQ(want, p.pairs[(size_t)j * CPU_PANEL + col])
                << "column " << col << " pair " << j;
        }
    dre_cpu_pack_free(&p);
}

// int8 (--precision int8): a column's weights are codes times its scale. One row against the
// definition: scale = max |w| / 127, codes w / scale rounded to nearest even, never -128.
TEST(CpuGemm, Int8QuantiseRowIsSymmetricRoundToNearest) {
    // max |w| = 127: scale 1, so the codes are w rounded, ties to even
    const float w[] = {127.0f, 2.5f, 3.5f, -2.5f, -0.4f, 0.5f, -127.0f, 1.5f, -1.5f, 0.51f};
    const int8_t want[] = {127, 2, 4, -2, 0, 0, -127, 2, -2, 1};
    int8_t codes[10];
    EXPECT_EQ(dre_cpu_int8_quantize_row(w, 10, codes), 1.0f);
    for (int j = 0; j < 10; j++)
        EXPECT_EQ(codes[j], want[j]) << "w " << w[j];
    // a zero row: scale 0 and zero codes (never a division by zero)
    const float zeros[5] = {0.0f, -0.0f, 0.0f, 0.0f, 0.0f};
    int8_t zc[5] = {9, 9, 9, 9, 9};
    EXPECT_EQ(dre_cpu_int8_quantize_row(zeros, 5, zc), 0.0f);
    for (int8_t c : zc)
        EXPECT_EQ(c, 0);
    // random rows: within half a step of w, the extreme at +-127, nothing past it
    for (unsigned seed = 200; seed < 230; seed++) {
        const int32_t k = 1 + (int32_t)(seed % 7) * 61;
        const std::vector<float> row = uniform((size_t)k, -0.3f * seed, 0.2f * seed, seed);
        std::vector<int8_t> c((size_t)k);
        const float scale = dre_cpu_int8_quantize_row(row.data(), k, c.data());
        float amax = 0.0f;
        for (float x : row)
            amax = std::max(amax, std::fabs(x));
        ASSERT_EQ(scale, amax / 127.0f);
        for (int32_t j = 0; j < k; j++) {
            ASSERT_GE(c[j], -127);
            ASSERT_NEAR((double)c[j], (double)row[j] / scale, 0.5 + 1e-5) << "seed " << seed;
            if (std::fabs(row[j]) == amax) ASSERT_EQ(std::abs(c[j]), 127);
        }
    }
}

// The int8 products against double sums of bf16-rounded A times the weights as the kernel
// widens them: each group of CPU_INT8_GROUP codes of a column has its scale (the packed codes
// and scales must be exactly dre_cpu_int8_quantize_row's), a weight is bf16(code * scale), so
// every product with a bf16 of A is exact in fp32 and the error left is fp32 accumulation's.
// Single tiles (codes widened in registers) and groups of tiles (a panel widened once), odd
// k, k across several groups and a partial one, strides, epilogues, a zero column.
TEST(CpuGemm, Int8ProductsMatchDoubleSumsOfQuantisedWeights) {
    if (!dre_cpu_int8_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    for (cpu_amx_mode mode : amx_modes()) {
        const amx_mode_scope scope(mode);
        SCOPED_TRACE(amx_mode_name(mode));
        unsigned seed = 301;
        for (const shape &s : kShapes) {
            const int32_t lda = s.k + 3, ldo = s.n + 5, k2 = (s.k + 1) / 2;
            const int32_t n_groups = (s.k + CPU_INT8_GROUP - 1) / CPU_INT8_GROUP;
            const std::vector<float> a = uniform((size_t)s.m * lda, -1.0f, 1.0f, seed++);
            std::vector<float> w = uniform((size_t)s.n * s.k, -0.5f, 0.5f, seed++);
            const std::vector<float> bias = uniform((size_t)s.n, -2.0f, 2.0f, seed++);
            if (s.n > 2)
                for (int32_t t = 0; t < s.k; t++)
                    w[(size_t)1 * s.k + t] = 0.0f; // a zero column
            std::vector<float> a16(a), wq((size_t)s.n * s.k);
            for (float &x : a16)
                x = bf16_rounded(x);
            cpu_packed pw{};
            ASSERT_EQ(dre_cpu_pack_int8(w.data(), s.n, s.k, &pw), DRE_OK);
            ASSERT_NE(pw.codes, nullptr);
            std::vector<int8_t> codes((size_t)s.k);
            for (int32_t col = 0; col < s.n; col++) {
                const int32_t p = col / 32, l = col % 32;
                for (int32_t g = 0; g < n_groups; g++) {
                    const int32_t j0 = g * CPU_INT8_GROUP, len = std::min(s.k - j0, CPU_INT8_GROUP);
                    const float scale =
                        dre_cpu_int8_quantize_row(&w[(size_t)col * s.k + j0], len, &codes[j0]);
                    const float *packed_scale = pw.scales + ((size_t)p * n_groups + g) * 64 + 2 * l;
                    ASSERT_EQ(packed_scale[0], scale) << "column " << col << " group " << g;
                    ASSERT_EQ(packed_scale[1], scale) << "column " << col << " group " << g;
                    for (int32_t t = j0; t < j0 + len; t++)
                        wq[(size_t)col * s.k + t] = bf16_rounded((float)codes[t] * scale);
                }
                for (int32_t t = 0; t < s.k; t++) {
                    const size_t at = (((size_t)p * k2 + t / 2) * 32 + l) * 2 + t % 2;
                    ASSERT_EQ(pw.codes[at], codes[t]) << "column " << col << " k " << t;
                }
            }
            ASSERT_NO_FATAL_FAILURE(check_epilogues(s, &pw, a, lda, ldo, a16, wq, bias));
            dre_cpu_pack_free(&pw);
        }
    }
}

// int8's outputs, like fp32's, never depend on the thread count or on which rows share a
// call: a query-sized call split over panels, a large one over row groups, rows alone
// (codes widened in registers) and in groups (a widened panel) all give the same bits.
TEST(CpuGemm, Int8BitIdenticalAcrossThreadsAndRowSplits) {
    if (!dre_cpu_int8_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    for (cpu_amx_mode mode : amx_modes()) {
        const amx_mode_scope scope(mode);
        SCOPED_TRACE(amx_mode_name(mode));
        const int32_t m = 300, n = 1152, k = 384;
        const std::vector<float> a = uniform((size_t)m * k, -1.0f, 1.0f, 17);
        const std::vector<float> w = uniform((size_t)n * k, -0.5f, 0.5f, 18);
        const std::vector<float> bias = uniform((size_t)n, -1.0f, 1.0f, 19);
        cpu_packed pw{};
        ASSERT_EQ(dre_cpu_pack_int8(w.data(), n, k, &pw), DRE_OK);
        workspace ws(dre_cpu_gemm_scratch_floats(k), 2);
        std::vector<float> two((size_t)m * n), one((size_t)m * n), rows((size_t)m * n),
            alone((size_t)m * n);
        dre_cpu_gemm(a.data(), k, m, &pw, bias.data(), CPU_EPI_BIAS_GELU, two.data(), n, &ws.ws);
        for (int32_t r = 0; r < m; r += 37) { // uneven groups: 37 rows, then the rest
            const int32_t here = m - r < 37 ? m - r : 37;
            dre_cpu_gemm(a.data() + (size_t)r * k, k, here, &pw, bias.data(), CPU_EPI_BIAS_GELU,
                         rows.data() + (size_t)r * n, n, &ws.ws);
        }
        for (int32_t r = 0; r < m; r += 12) { // query-sized calls, panels split over 2 threads
            const int32_t here = m - r < 12 ? m - r : 12;
            dre_cpu_gemm(a.data() + (size_t)r * k, k, here, &pw, bias.data(), CPU_EPI_BIAS_GELU,
                         alone.data() + (size_t)r * n, n, &ws.ws);
        }
        ws.ws.n_threads = 1;
        dre_cpu_gemm(a.data(), k, m, &pw, bias.data(), CPU_EPI_BIAS_GELU, one.data(), n, &ws.ws);
        std::vector<float> query((size_t)12 * n);
        dre_cpu_gemm(a.data(), k, 12, &pw, bias.data(), CPU_EPI_BIAS_GELU, query.data(), n, &ws.ws);
        for (size_t i = 0; i < two.size(); i++) {
            ASSERT_EQ(two[i], one[i]) << "element " << i;
            ASSERT_EQ(two[i], rows[i]) << "element " << i;
            ASSERT_EQ(two[i], alone[i]) << "element " << i;
            if (i < query.size()) ASSERT_EQ(query[i], alone[i]) << "query element " << i;
        }
        dre_cpu_pack_free(&pw);
    }
}

// Each output is one chain of multiply-adds over k in order: the same bits at 1 and 2
// threads, and whether a row is computed in a large call or alone (its tile, group and
// the split of panels all differ).
TEST(CpuGemm, BitIdenticalAcrossThreadsAndRowSplits) {
    REQUIRE_AVX512();
    const int32_t m = 300, n = 1152, k = 384;
    const std::vector<float> a = uniform((size_t)m * k, -1.0f, 1.0f, 7);
    const std::vector<float> w = uniform((size_t)n * k, -0.5f, 0.5f, 8);
    const std::vector<float> bias = uniform((size_t)n, -1.0f, 1.0f, 9);
    packed pw(w, n, k);
    workspace ws(dre_cpu_gemm_scratch_floats(k), 2);
    std::vector<float> two((size_t)m * n), one((size_t)m * n), rows((size_t)m * n);
    dre_cpu_gemm(a.data(), k, m, &pw.p, bias.data(), CPU_EPI_BIAS_GELU, two.data(), n, &ws.ws);
    ws.ws.n_threads = 1;
    dre_cpu_gemm(a.data(), k, m, &pw.p, bias.data(), CPU_EPI_BIAS_GELU, one.data(), n, &ws.ws);
    ws.ws.n_threads = 2;
    for (int32_t r = 0; r < m; r += 37) { // uneven pieces: 37 rows, then the rest
        const int32_t rows_here = m - r < 37 ? m - r : 37;
        dre_cpu_gemm(a.data() + (size_t)r * k, k, rows_here, &pw.p, bias.data(), CPU_EPI_BIAS_GELU,
                     rows.data() + (size_t)r * n, n, &ws.ws);
    }
    for (size_t i = 0; i < two.size(); i++) {
        ASSERT_EQ(two[i], one[i]) << "element " << i;
        ASSERT_EQ(two[i], rows[i]) << "element " << i;
    }
}

// The path a CPU without AVX-512 takes (no panels: OpenBLAS and the plain operators)
TEST(CpuGemm, OpenBlasPathMatchesDoubleSums) {
    const shape s{29, 70, 45};
    const std::vector<float> a = uniform((size_t)s.m * s.k, -1.0f, 1.0f, 11);
    const std::vector<float> w = uniform((size_t)s.n * s.k, -0.5f, 0.5f, 12);
    const std::vector<float> bias = uniform((size_t)s.n, -2.0f, 2.0f, 13);
    cpu_packed plain{};
    plain.w = w.data(), plain.n = s.n, plain.k = s.k, plain.n_panels = (s.n + 31) / 32;
    workspace ws(dre_cpu_gemm_scratch_floats(s.k), 2);
    for (cpu_epilogue epi : {CPU_EPI_NONE, CPU_EPI_BIAS, CPU_EPI_BIAS_GELU}) {
        std::vector<float> out((size_t)s.m * s.n);
        dre_cpu_gemm(a.data(), s.k, s.m, &plain, epi == CPU_EPI_NONE ? nullptr : bias.data(), epi,
                     out.data(), s.n, &ws.ws);
        check_product(s, epi, out.data(), s.n, a, s.k, w, bias);
    }
}

// exp within 2 ulps over its whole float range (and 0 / inf beyond it); the GELU within
// 3e-7 |v| of the double erf formula, both tails included
TEST(CpuVmath, ExpAndGeluAgainstLibm) {
    REQUIRE_AVX512();
    std::vector<float> xs;
    for (double x = -110.0; x <= 95.0; x += 0.00137)
        xs.push_back((float)x);
    for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.72f, -87.3f, -103.5f, 89.0f})
        xs.push_back(x);
    while (xs.size() % 16)
        xs.push_back(0.5f);
    double worst_exp = 0.0, worst_gelu = 0.0;
    for (size_t i = 0; i < xs.size(); i += 16) {
        float e[16], g[16];
        exp16(&xs[i], e);
        gelu16(&xs[i], g);
        for (int l = 0; l < 16; l++) {
            const double x = xs[i + l], want = std::exp(x);
            if (want > 3.4028234663852886e38) { // past FLT_MAX
                ASSERT_TRUE(std::isinf(e[l])) << "exp(" << x << ")";
            } else if (want < 1.2e-38) { // below the normal range: 0 or a denormal near it
                ASSERT_LE(e[l], 1.2e-38f) << "exp(" << x << ")";
            } else {
                const double rel = std::fabs(e[l] - want) / want;
                worst_exp = std::max(worst_exp, rel);
                ASSERT_LE(rel, 2.4e-7) << "exp(" << x << ") = " << e[l] << ", want " << want;
            }
            const double gw = gelu_ref(x), err = std::fabs(g[l] - gw);
            worst_gelu = std::max(worst_gelu, err / std::max(std::fabs(x), 1e-30));
            ASSERT_LE(err, 3e-7 * std::fabs(x) + 1e-37)
                << "gelu(" << x << ") = " << g[l] << ", want " << gw;
        }
    }
    std::printf("worst exp relative error %.3g, worst gelu error / |v| %.3g over %zu values\n",
                worst_exp, worst_gelu, xs.size());
}

// The residual + LayerNorm row against the plain operator (dre_bias_residual_layernorm_cpu):
// the same arithmetic but for the order of the double sums, so within an ulp or two. Rows
// whose length is not a multiple of 16 (the masked tail), and rows far from zero mean
// (a large mean makes a careless variance cancel).
TEST(CpuVmath, LayerNormRowMatchesPlainOperator) {
    REQUIRE_AVX512();
    unsigned seed = 40;
    for (int32_t n : {1, 7, 16, 17, 100, 384, 768, 1031}) {
        for (float offset : {0.0f, 300.0f}) {
            for (bool with_residual : {false, true}) {
                std::vector<float> x = uniform((size_t)n, offset - 2.0f, offset + 3.0f, seed++);
                const std::vector<float> res = uniform((size_t)n, -1.0f, 1.0f, seed++);
                const std::vector<float> g = uniform((size_t)n, 0.5f, 1.5f, seed++);
                const std::vector<float> b = uniform((size_t)n, -0.3f, 0.3f, seed++);
                std::vector<float> want = x, got = x;
                got.push_back(777.0f); // one past the row: must stay untouched
                const float *r = with_residual ? res.data() : nullptr;
                dre_bias_residual_layernorm_cpu(want.data(), nullptr, r, g.data(), b.data(), 1e-12f,
                                                1, n);
                vlayernorm_row(got.data(), r, g.data(), b.data(), 1e-12f, n);
                for (int32_t j = 0; j < n; j++)
                    ASSERT_NEAR(got[j], want[j], 3e-7f * std::fabs(want[j]) + 1e-7f)
                        << "n " << n << " offset " << offset << " residual " << with_residual
                        << " element " << j;
                ASSERT_EQ(got[n], 777.0f) << "n " << n;
            }
        }
    }
    // a constant row: variance 0, eps alone keeps it finite, and the output is beta exactly
    for (int32_t n : {7, 384}) {
        std::vector<float> x((size_t)n, 2.5f);
        const std::vector<float> g = uniform((size_t)n, 0.5f, 1.5f, seed++);
        const std::vector<float> b = uniform((size_t)n, -0.3f, 0.3f, seed++);
        vlayernorm_row(x.data(), nullptr, g.data(), b.data(), 1e-5f, n);
        for (int32_t j = 0; j < n; j++)
            ASSERT_EQ(x[j], b[j]) << "n " << n << " element " << j;
    }
}

// Attention in double from the same fp32 inputs, and for each output element the error an
// fp32 computation may carry: u = 2^-24 times max|v| times (2 scale sqrt(d) max_j sum_t
// |q_t k_jt| (the rounding of a row's logits, which the softmax turns into at most twice that
// relative change of its weights) + sqrt(len) (the weighted sum of v) + 4 (exp and the
// normalisation)): Higham and Mary's probabilistic sqrt(n) u per sum, not the worst case n u.
void attention_double(const std::vector<float> &qkv, const std::vector<int32_t> &cu,
                      int32_t n_heads, int32_t head_dim, std::vector<double> &out,
                      std::vector<double> &unit) {
    const int32_t hidden = n_heads * head_dim, ld = 3 * hidden;
    const double scale = 1.0 / std::sqrt((double)head_dim), u = std::ldexp(1.0, -24);
    out.assign((size_t)cu.back() * hidden, 0.0);
    unit.assign(out.size(), 0.0);
    for (size_t s = 0; s + 1 < cu.size(); s++)
        for (int32_t h = 0; h < n_heads; h++) {
            const int32_t start = cu[s], len = cu[s + 1] - start;
            double vmax = 0;
            for (int32_t j = 0; j < len; j++)
                for (int32_t t = 0; t < head_dim; t++)
                    vmax = std::max(
                        vmax, (double)std::fabs(
                                  qkv[(size_t)(start + j) * ld + 2 * hidden + h * head_dim + t]));
            for (int32_t i = 0; i < len; i++) {
                const float *q = &qkv[(size_t)(start + i) * ld + h * head_dim];
                std::vector<double> p(len);
                double mx = -INFINITY, sum = 0, mag = 0;
                for (int32_t j = 0; j < len; j++) {
                    const float *k = &qkv[(size_t)(start + j) * ld + hidden + h * head_dim];
                    double dot = 0, abs_dot = 0;
                    for (int32_t t = 0; t < head_dim; t++)
                        dot += (double)q[t] * k[t], abs_dot += std::fabs((double)q[t] * k[t]);
                    p[j] = dot * scale;
                    mx = std::max(mx, p[j]);
                    mag = std::max(mag, abs_dot * scale);
                }
                for (double &x : p)
                    sum += x = std::exp(x - mx);
                for (int32_t t = 0; t < head_dim; t++) {
                    double o = 0;
                    for (int32_t j = 0; j < len; j++)
                        o += p[j] / sum *
                             qkv[(size_t)(start + j) * ld + 2 * hidden + h * head_dim + t];
                    const size_t at = (size_t)(start + i) * hidden + h * head_dim + t;
                    out[at] = o;
                    unit[at] = u * vmax *
                               (2 * std::sqrt((double)head_dim) * mag + std::sqrt((double)len) + 4);
                }
            }
        }
}

struct attn_case {
    std::vector<int32_t> lengths;
    int32_t n_heads, head_dim;
    float amplitude;
};

// A case's inputs: its sequences' boundaries, the longest, and Q, K, V uniform within
// +-amplitude from seed
struct attn_inputs {
    std::vector<int32_t> cu{0};
    int32_t max_len = 0, n_seqs, n, hidden;
    std::vector<float> qkv;
    std::string trace; // the case, for SCOPED_TRACE
    attn_inputs(const attn_case &c, unsigned seed) {
        std::string lengths;
        for (int32_t l : c.lengths) {
            cu.push_back(cu.back() + l), max_len = std::max(max_len, l);
            lengths += std::to_string(l) + " ";
        }
        n_seqs = (int32_t)c.lengths.size(), n = cu.back(), hidden = c.n_heads * c.head_dim;
        qkv = uniform((size_t)n * 3 * hidden, -c.amplitude, c.amplitude, seed);
        trace = "lengths " + lengths + "heads " + std::to_string(c.n_heads) + " head_dim " +
                std::to_string(c.head_dim);
    }
};

TEST(CpuAttention, MatchesAttentionInDouble) {
    REQUIRE_AVX512();
    const attn_case cases[] = {
        {{1}, 2, 32, 1.0f},
        {{2, 13, 14, 15}, 3, 32, 1.0f},
        {{31, 32, 33, 1, 100}, 2, 64, 1.0f},
        {{256, 7}, 12, 32, 2.0f},
        {{512}, 2, 64, 1.5f},
        {{17, 45}, 4, 16, 1.0f},
        {{29, 64, 3}, 2, 24, 1.0f}, // a head narrower than a panel, not a multiple of 16
        {{40, 41}, 3, 32, 6.0f},    // peaked scores
    };
    unsigned seed = 100;
    double worst_tiled = 0, worst_plain = 0;
    for (const attn_case &c : cases) {
        const attn_inputs in(c, seed++);
        SCOPED_TRACE(in.trace);
        const std::vector<int32_t> &cu = in.cu;
        const std::vector<float> &qkv = in.qkv;
        const int32_t max_len = in.max_len, n_seqs = in.n_seqs, n = in.n, hidden = in.hidden;
        std::vector<float> plain((size_t)n * hidden), got((size_t)n * hidden, NAN);
        std::vector<double> want, unit;
        attention_double(qkv, cu, c.n_heads, c.head_dim, want, unit);
        dre_attention_cpu(qkv.data(), cu.data(), n_seqs, c.n_heads, c.head_dim, plain.data());
        for (size_t i = 0; i < plain.size(); i++) {
            const double e = std::fabs(plain[i] - want[i]) / unit[i];
            worst_plain = std::max(worst_plain, e);
            ASSERT_LE(e, 0.5) << "dre_attention_cpu, element " << i;
        }
        for (int threads : {1, 2}) {
            workspace ws(dre_cpu_attention_scratch_floats((max_len + 15) / 16 * 16, c.head_dim),
                         threads);
            std::vector<float> out((size_t)n * hidden, NAN);
            dre_cpu_attention(qkv.data(), cu.data(), n_seqs, c.n_heads, c.head_dim, 0, out.data(),
                              &ws.ws);
            for (size_t i = 0; i < out.size(); i++) {
                const double e = std::fabs(out[i] - want[i]) / unit[i];
                worst_tiled = std::max(worst_tiled, e);
                // measured up to 0.12 on these cases (the plain operator the same): a quarter
                // of the bound, whatever order a BLAS or the tiles sum in
                ASSERT_LE(e, 0.5) << "element " << i << ": " << out[i] << " vs " << want[i];
            }
            if (threads == 1) {
                got = out;
            } else {
                for (size_t i = 0; i < out.size(); i++)
                    ASSERT_EQ(out[i], got[i]) << "1 and 2 threads differ at " << i;
            }
        }
    }
    printf("attention: worst error / bound unit %.3f tiled, %.3f plain\n", worst_tiled,
           worst_plain);
}

} // namespace

namespace {

// bf16 attention against attention in double whose inputs Q, K, V are rounded to bf16 as the
// kernel rounds them. Bound per output element: the fp32 bound of attention_double (its
// unit) plus the rounding of the softmax's weights to bf16 (bf16's unit roundoff 2^-8 of each
// weight: at most 2^-8 max|v| over a row of weights summing to 1); the logits' own fp32
// error is inside unit. Also: 1 and 2 threads bit-identical, and how far it lands from fp32.
TEST(CpuAttention, Bf16MatchesAttentionInDoubleOfRoundedInputs) {
    REQUIRE_AVX512();
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    const attn_case cases[] = {
        {{1}, 2, 32, 1.0f},
        {{2, 13, 14, 15}, 3, 32, 1.0f},
        {{31, 32, 33, 1, 100}, 2, 64, 1.0f},
        {{256, 7}, 12, 32, 2.0f},
        {{17, 45}, 4, 16, 1.0f},
        {{29, 64, 3}, 2, 24, 1.0f}, // a head narrower than a panel, not a multiple of 16
        {{30, 9}, 2, 33, 1.0f},     // an odd head size: pairs padded with zero
        {{40, 41}, 3, 32, 6.0f},    // peaked scores
    };
    for (cpu_amx_mode mode : amx_modes()) {
        const amx_mode_scope scope(mode);
        SCOPED_TRACE(amx_mode_name(mode));
        unsigned seed = 300;
        double worst = 0, worst_vs_fp32 = 0, sum_err = 0;
        size_t count = 0;
        for (const attn_case &c : cases) {
            const attn_inputs in(c, seed++);
            SCOPED_TRACE(in.trace);
            const std::vector<int32_t> &cu = in.cu;
            const std::vector<float> &qkv = in.qkv;
            const int32_t max_len = in.max_len, n_seqs = in.n_seqs, n = in.n, hidden = in.hidden;
            std::vector<float> rounded(qkv);
            for (float &x : rounded)
                x = bf16_rounded(x);
            std::vector<double> want, unit;
            attention_double(rounded, cu, c.n_heads, c.head_dim, want, unit);
            std::vector<float> fp32((size_t)n * hidden), first;
            workspace ws1(dre_cpu_attention_scratch_floats((max_len + 15) / 16 * 16, c.head_dim),
                          1);
            dre_cpu_attention(qkv.data(), cu.data(), n_seqs, c.n_heads, c.head_dim, 0, fp32.data(),
                              &ws1.ws);
            for (int threads : {1, 2}) {
                workspace ws(dre_cpu_attention_scratch_floats((max_len + 15) / 16 * 16, c.head_dim),
                             threads);
                std::vector<float> out((size_t)n * hidden, NAN);
                dre_cpu_attention(qkv.data(), cu.data(), n_seqs, c.n_heads, c.head_dim, 1,
                                  out.data(), &ws.ws);
                for (size_t i = 0; i < out.size(); i++) {
                    // |v| <= amplitude
                    const double vmax_bound = std::ldexp(1.0, -8) * c.amplitude;
                    const double err = std::fabs(out[i] - want[i]);
                    ASSERT_LE(err, vmax_bound + unit[i])
                        << "element " << i << ": " << out[i] << " vs " << want[i];
                    worst = std::max(worst, err / (vmax_bound + unit[i]));
                    worst_vs_fp32 = std::max(worst_vs_fp32, (double)std::fabs(out[i] - fp32[i]));
                    sum_err += err / (vmax_bound + unit[i]), count++;
                }
                if (threads == 1) {
                    first = out;
                } else {
                    for (size_t i = 0; i < out.size(); i++)
                        ASSERT_EQ(out[i], first[i]) << "1 and 2 threads differ at " << i;
                }
            }
        }
        printf("bf16 attention: worst error / bound %.3f (mean %.4f), worst |bf16 - fp32| %.2e\n",
               worst, sum_err / count, worst_vs_fp32);
    }
}

} // namespace
