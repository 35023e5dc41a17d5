// kernels_layernorm_test.cc — dre_bias_residual_layernorm_launch (fp16 in/out) against its CPU
// twin dre_bias_residual_layernorm_cpu on random data: the CPU gets the same fp16-rounded
// inputs, so the difference is the fp16 rounding of the output plus fp32 statistics.
#include "gpu_test_util.h"

#include "cpu/ops.h"

namespace {

using namespace gpu_test;

struct ln_case {
    int32_t n_tokens, hidden;
    bool with_bias, in_place;  // in_place: out is the residual buffer
    bool with_residual = true; // without: x alone, as the encoder calls it (its GEMMs add
                               // bias and residual)
};

void run_case(const ln_case &c) {
    SCOPED_TRACE("n_tokens " + std::to_string(c.n_tokens) + " hidden " + std::to_string(c.hidden) +
                 (c.with_bias ? " bias" : " no bias") + (c.in_place ? " in place" : "") +
                 (c.with_residual ? "" : " no residual"));
    const size_t n = (size_t)c.n_tokens * c.hidden;
    const std::vector<float> x = round_fp16(uniform(n, -3.0f, 3.0f, 1));
    const std::vector<float> residual = round_fp16(uniform(n, -3.0f, 3.0f, 2));
    const std::vector<float> bias = uniform(c.hidden, -0.5f, 0.5f, 3);
    const std::vector<float> g = uniform(c.hidden, 0.5f, 1.5f, 4);
    const std::vector<float> b = uniform(c.hidden, -0.5f, 0.5f, 5);
    const float eps = 1e-12f;

    std::vector<float> want = x;
    dre_bias_residual_layernorm_cpu(want.data(), c.with_bias ? bias.data() : nullptr,
                                    c.with_residual ? residual.data() : nullptr, g.data(), b.data(),
                                    eps, c.n_tokens, c.hidden);

    device_buffer<fp16_t> d_x(to_fp16(x)), d_res(to_fp16(residual)), d_out(n);
    device_buffer<float> d_bias(bias), d_g(g), d_b(b);
    fp16_t *out = c.in_place ? (c.with_residual ? d_res.get() : d_x.get()) : d_out.get();
    ASSERT_CUDA(dre_bias_residual_layernorm_launch(
        d_x.get(), c.with_bias ? d_bias.get() : nullptr, c.with_residual ? d_res.get() : nullptr,
        d_g.get(), d_b.get(), eps, c.n_tokens, c.hidden, out, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<float> got = to_float(out == d_res.get() ? d_res.download()
                                            : out == d_x.get() ? d_x.download()
                                                               : d_out.download());
    EXPECT_TRUE(all_close(got, want, 1e-3f, 1e-3f, "layernorm"));
}

TEST(KernelsLayernorm, MatchesCpuAcrossShapes) {
    SKIP_WITHOUT_GPU();
    const ln_case cases[] = {
        {1, 384, true, false},         {2, 384, true, true},           {513, 384, true, true},
        {7, 768, false, false},        {1000, 768, true, true},        {33, 32, true, false},
        {5, 1024, true, true},         {3, 1024, true, false},         {64, 8, true, false},
        {17, 384, false, true, false}, {40, 768, false, false, false}, {3, 136, true, false},
    };
    for (const ln_case &c : cases)
        run_case(c);
}

// A row whose every value is the same has variance 0: only eps keeps 1 / sqrt(var + eps)
// finite, and the output is then exactly beta (0 * rstd * g + b). Dropping eps gives NaN;
// the random rows above, of variance ~6, never show eps at all.
TEST(KernelsLayernorm, ConstantRowGivesBetaExactly) {
    SKIP_WITHOUT_GPU();
    const int32_t n_tokens = 3, hidden = 384;
    const size_t n = (size_t)n_tokens * hidden;
    const std::vector<float> x(n, 1.25f), residual(n, -0.5f), bias(hidden, 0.25f);
    const std::vector<float> g = uniform(hidden, 0.5f, 1.5f, 4);
    const std::vector<float> b = round_fp16(uniform(hidden, -0.5f, 0.5f, 5));
    const float eps = 1e-5f;
    std::vector<float> want = x;
    dre_bias_residual_layernorm_cpu(want.data(), bias.data(), residual.data(), g.data(), b.data(),
                                    eps, n_tokens, hidden);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(want[i], b[i % hidden]) << "the CPU twin, element " << i;
    device_buffer<fp16_t> d_x(to_fp16(x)), d_res(to_fp16(residual)), d_out(n);
    device_buffer<float> d_bias(bias), d_g(g), d_b(b);
    ASSERT_CUDA(dre_bias_residual_layernorm_launch(d_x.get(), d_bias.get(), d_res.get(), d_g.get(),
                                                   d_b.get(), eps, n_tokens, hidden, d_out.get(),
                                                   nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<float> got = to_float(d_out.download());
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(got[i], b[i % hidden]) << "element " << i;
}

TEST(KernelsLayernorm, ZeroTokensIsANoOp) {
    SKIP_WITHOUT_GPU();
    device_buffer<fp16_t> x(8);
    device_buffer<float> g(8);
    ASSERT_CUDA(dre_bias_residual_layernorm_launch(x.get(), nullptr, x.get(), g.get(), g.get(),
                                                   1e-5f, 0, 8, x.get(), nullptr));
}

TEST(KernelsLayernorm, RejectsOddOrHugeHidden) {
    // Checked on the host before any launch: runs without a GPU too.
    fp16_t *x = reinterpret_cast<fp16_t *>(256);
    float *g = reinterpret_cast<float *>(256);
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_bias_residual_layernorm_launch(x, nullptr, x, g, g, 1e-5f, 4, 383, x, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, // 16-byte chunks: a multiple of 8
              dre_bias_residual_layernorm_launch(x, nullptr, x, g, g, 1e-5f, 4, 388, x, nullptr));
    EXPECT_EQ(
        cudaErrorInvalidValue, // misaligned
        dre_bias_residual_layernorm_launch(x + 1, nullptr, x, g, g, 1e-5f, 4, 384, x, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_bias_residual_layernorm_launch(x, nullptr, x, g, g, 1e-5f, 4,
                                                 KERNELS_MAX_HIDDEN + 8, x, nullptr));
}

} // namespace
