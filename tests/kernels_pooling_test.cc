// kernels_pooling_test.cc — dre_pool_normalize_launch (fp16 token states in, fp32 out) against
// its CPU twin dre_pool_normalize_cpu: mean and CLS pooling, with and without L2 normalisation,
// on packed batches of edge lengths.
#include "gpu_test_util.h"

#include "cpu/ops.h"

namespace {

using namespace gpu_test;

void run_case(const std::vector<int32_t> &lengths, int32_t dim, dre_pooling pooling,
              int normalize) {
    SCOPED_TRACE("lengths " + lengths_str(lengths) + " dim " + std::to_string(dim) +
                 (pooling == DRE_POOL_CLS ? " cls" : " mean") + (normalize ? " normalized" : ""));
    const std::vector<int32_t> cu = cu_seqlens_of(lengths);
    const int32_t n_seqs = (int32_t)lengths.size(), n_tokens = cu.back();
    const std::vector<float> hidden = round_fp16(uniform((size_t)n_tokens * dim, -2.0f, 2.0f, 31));
    std::vector<float> want((size_t)n_seqs * dim);
    dre_pool_normalize_cpu(hidden.data(), cu.data(), n_seqs, dim, pooling, normalize, want.data());

    device_buffer<fp16_t> d_hidden(to_fp16(hidden));
    device_buffer<int32_t> d_cu(cu);
    device_buffer<float> d_out((size_t)n_seqs * dim);
    ASSERT_CUDA(dre_pool_normalize_launch(d_hidden.get(), d_cu.get(), n_seqs, dim, pooling,
                                          normalize, d_out.get(), nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    // same fp16 inputs, fp32 sums on both sides: only summation order differs
    EXPECT_TRUE(all_close(d_out.download(), want, 1e-5f, 1e-4f, "pool_normalize"));
}

TEST(KernelsPooling, MeanAndClsWithAndWithoutNorm) {
    SKIP_WITHOUT_GPU();
    const std::vector<std::vector<int32_t>> batches = {
        {1}, {2}, {511}, {512}, {3, 17, 64, 65, 128, 200}, {1, 512, 2, 7}};
    for (const auto &lengths : batches)
        for (dre_pooling pooling : {DRE_POOL_MEAN, DRE_POOL_CLS})
            for (int normalize : {0, 1})
                run_case(lengths, 384, pooling, normalize);
    run_case({5, 9}, 768, DRE_POOL_MEAN, 1);
    run_case({5, 9}, 8, DRE_POOL_MEAN, 1);
    run_case({5, 9, 40}, 32, DRE_POOL_CLS, 1);  // the tiny model
    run_case({5, 9, 40}, 72, DRE_POOL_MEAN, 1); // 9 chunks: two column blocks, one partial
    run_case(std::vector<int32_t>(2000, 3), 384, DRE_POOL_MEAN, 1);
}

TEST(KernelsPooling, UnitNormAfterNormalize) {
    SKIP_WITHOUT_GPU();
    const std::vector<int32_t> lengths = {4, 100, 1};
    const std::vector<int32_t> cu = cu_seqlens_of(lengths);
    const std::vector<float> hidden = round_fp16(uniform((size_t)cu.back() * 384, -2.0f, 2.0f, 32));
    device_buffer<fp16_t> d_hidden(to_fp16(hidden));
    device_buffer<int32_t> d_cu(cu);
    device_buffer<float> d_out(3 * 384);
    ASSERT_CUDA(dre_pool_normalize_launch(d_hidden.get(), d_cu.get(), 3, 384, DRE_POOL_MEAN, 1,
                                          d_out.get(), nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<float> out = d_out.download();
    for (int s = 0; s < 3; s++) {
        double sq = 0;
        for (int c = 0; c < 384; c++)
            sq += (double)out[s * 384 + c] * out[s * 384 + c];
        EXPECT_NEAR(1.0, std::sqrt(sq), 1e-5) << "sequence " << s;
    }
}

TEST(KernelsPooling, RejectsBadDims) {
    // host-side checks: run without a GPU too
    const fp16_t *h = reinterpret_cast<const fp16_t *>(256);
    const int32_t *cu = reinterpret_cast<const int32_t *>(256);
    float *out = reinterpret_cast<float *>(256);
    EXPECT_EQ(cudaErrorInvalidValue, // 16-byte chunks: a multiple of 8
              dre_pool_normalize_launch(h, cu, 2, 12, DRE_POOL_MEAN, 1, out, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_pool_normalize_launch(h + 1, cu, 2, 16, DRE_POOL_MEAN, 1, out,
                                        nullptr)); // misaligned
}

} // namespace
