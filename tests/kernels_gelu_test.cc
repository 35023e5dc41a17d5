// kernels_gelu_test.cc — dre_bias_gelu_launch (fp16, in place) against its CPU twin
// dre_bias_gelu_cpu (exact erf GELU) on random activations, with and without bias.
#include "gpu_test_util.h"

#include "cpu/ops.h"

namespace {

using namespace gpu_test;

void run_case(int32_t n_tokens, int32_t dim, bool with_bias) {
    SCOPED_TRACE("n_tokens " + std::to_string(n_tokens) + " dim " + std::to_string(dim));
    const size_t n = (size_t)n_tokens * dim;
    const std::vector<float> x = round_fp16(uniform(n, -6.0f, 6.0f, 21));
    const std::vector<float> bias = uniform(dim, -1.0f, 1.0f, 22);
    const std::vector<float> zeros(dim, 0.0f); // the CPU twin always takes a bias
    std::vector<float> want = x;
    dre_bias_gelu_cpu(want.data(), with_bias ? bias.data() : zeros.data(), n_tokens, dim);

    device_buffer<fp16_t> d_x(to_fp16(x));
    device_buffer<float> d_bias(bias);
    ASSERT_CUDA(dre_bias_gelu_launch(d_x.get(), with_bias ? d_bias.get() : nullptr, n_tokens, dim,
                                     nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    // fp16 output: half an ulp is 2^-11 relative; erff on the GPU is within 2 ulp (fp32)
    EXPECT_TRUE(all_close(to_float(d_x.download()), want, 1e-4f, 1e-3f, "bias_gelu"));
}

TEST(KernelsGelu, MatchesCpu) {
    SKIP_WITHOUT_GPU();
    run_case(1, 1536, true);
    run_case(3, 8, true);
    run_case(7, 136, true); // 17 chunks a row: the bias column wraps at odd places
    run_case(1000, 1536, true);
    run_case(257, 3072, true);
    run_case(5, 1536, false);
}

TEST(KernelsGelu, LargeGridWrapsAround) {
    // more chunks than the grid's threads (8192 blocks x 256): the grid-stride loop must
    // cover them, its bias column kept in step
    SKIP_WITHOUT_GPU();
    run_case(11000, 3072, true);
}

TEST(KernelsGelu, RejectsOddDim) {
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_bias_gelu_launch(reinterpret_cast<fp16_t *>(256), nullptr, 4, 1535, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, // 16-byte chunks: a multiple of 8
              dre_bias_gelu_launch(reinterpret_cast<fp16_t *>(256), nullptr, 4, 1532, nullptr));
}

} // namespace
