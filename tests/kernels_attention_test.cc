// kernels_attention_test.cc — dre_attention_launch (fused varlen flash attention, fp16 in/out),
// both versions (mma, the FlashAttention-2 style default, and wmma), against its CPU twin
// dre_attention_cpu (fp32, explicit softmax): head dims 16, 32, 64; sequence lengths 1, 2, on
// both sides of every multiple of 16 and 64 up to 257, 511, 512; mixed batches, one long
// among many short, many short; flat, soft and peaked score distributions; with the QKV
// bias.
#include "gpu_test_util.h"

#include "cpu/ops.h"

namespace {

using namespace gpu_test;

struct attn_case {
    std::vector<int32_t> lengths;
    int32_t n_heads, head_dim;
    float amplitude; // q, k, v uniform in [-amplitude, amplitude]: larger = peakier softmax
    bool with_bias;
};

void run_case(const attn_case &c) {
    SCOPED_TRACE("lengths " + lengths_str(c.lengths) + " heads " + std::to_string(c.n_heads) +
                 " head_dim " + std::to_string(c.head_dim) + " amplitude " +
                 std::to_string(c.amplitude) + (c.with_bias ? " bias" : ""));
    const std::vector<int32_t> cu = cu_seqlens_of(c.lengths);
    const int32_t n_seqs = (int32_t)c.lengths.size(), n_tokens = cu.back();
    const int32_t hidden = c.n_heads * c.head_dim;
    const int32_t max_len = *std::max_element(c.lengths.begin(), c.lengths.end());
    const size_t n_qkv = (size_t)n_tokens * 3 * hidden;

    const std::vector<float> qkv = round_fp16(uniform(n_qkv, -c.amplitude, c.amplitude, 41));
    const std::vector<float> bias = uniform((size_t)3 * hidden, -0.5f, 0.5f, 42);

    // What the kernel attends over: qkv + bias rounded to fp16, as it loads them.
    std::vector<float> effective = qkv;
    if (c.with_bias) {
        for (size_t i = 0; i < n_qkv; i++)
            effective[i] += bias[i % (3 * hidden)];
        effective = round_fp16(effective);
    }
    std::vector<float> want((size_t)n_tokens * hidden);
    dre_attention_cpu(effective.data(), cu.data(), n_seqs, c.n_heads, c.head_dim, want.data());

    device_buffer<fp16_t> d_qkv(to_fp16(qkv)), d_out((size_t)n_tokens * hidden);
    device_buffer<float> d_bias(bias);
    device_buffer<int32_t> d_cu(cu);
    for (const attention_variant variant : {ATTENTION_MMA, ATTENTION_WMMA}) {
        const char *name = variant == ATTENTION_MMA ? "attention mma" : "attention wmma";
        ASSERT_CUDA(cudaMemset(d_out.get(), 0xff, (size_t)n_tokens * hidden * sizeof(fp16_t)));
        ASSERT_CUDA(dre_attention_launch(d_qkv.get(), c.with_bias ? d_bias.get() : nullptr,
                                         d_cu.get(), n_seqs, max_len, c.n_heads, c.head_dim,
                                         d_out.get(), variant, nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        // Outputs are averages of |v| <= amplitude (+0.5): P in fp16 (2^-11 relative) and
        // the fp16 output rounding bound the error (the mma version's v bias, added in
        // fp32 after the average, and its k bias, which the softmax does not see, differ
        // from the reference only by the reference's rounding of k + b and v + b to fp16);
        // the 0xff.. fill would show unwritten rows as NaN.
        const float scale = c.amplitude + (c.with_bias ? 0.5f : 0.0f);
        EXPECT_TRUE(all_close(to_float(d_out.download()), want, 3e-3f * scale, 2e-3f, name));
    }
}

// Lengths on both sides of every tile edge: 1, 2, 15-17, 63-65, 127-129, 255-257, 511, 512.
const std::vector<std::vector<int32_t>> kEdgeLengths = {{1},
                                                        {2},
                                                        {15},
                                                        {16},
                                                        {17},
                                                        {63},
                                                        {64},
                                                        {65},
                                                        {127},
                                                        {128},
                                                        {129},
                                                        {255},
                                                        {256},
                                                        {257},
                                                        {511},
                                                        {512},
                                                        {3, 17, 64, 65, 128, 200},
                                                        {1, 512, 2, 7}};

TEST(KernelsAttention, HeadDim64EdgeLengths) {
    SKIP_WITHOUT_GPU();
    for (const auto &lengths : kEdgeLengths)
        run_case({lengths, 2, 64, 1.0f, false});
}

TEST(KernelsAttention, HeadDim32EdgeLengths) {
    SKIP_WITHOUT_GPU();
    for (const auto &lengths : kEdgeLengths)
        run_case({lengths, 3, 32, 1.0f, false});        // MiniLM / bge-small head size
    run_case({{100, 256, 1, 33}, 12, 32, 1.0f, false}); // and their 12 heads
}

TEST(KernelsAttention, HeadDim16EdgeLengths) {
    SKIP_WITHOUT_GPU();
    for (const auto &lengths : kEdgeLengths)
        run_case({lengths, 2, 16, 1.0f, true}); // the tiny test model's heads
}

TEST(KernelsAttention, FlatScores) {
    // amplitude 0.02: all scores within 1e-3 of each other, P nearly uniform
    SKIP_WITHOUT_GPU();
    run_case({{257, 64, 3}, 2, 64, 0.02f, false});
    run_case({{129, 500}, 2, 32, 0.02f, true});
}

TEST(KernelsAttention, OneLongAmongManyShort) {
    SKIP_WITHOUT_GPU();
    std::vector<int32_t> lengths(60, 9);
    lengths[17] = 512;
    run_case({lengths, 4, 64, 1.0f, true});
}

TEST(KernelsAttention, PeakedScores) {
    // amplitude 4: score standard deviation about 5, so the online max really moves
    SKIP_WITHOUT_GPU();
    run_case({{300, 7, 129}, 2, 64, 4.0f, false});
    run_case({{512, 1, 77}, 3, 32, 4.0f, false});
}

TEST(KernelsAttention, FusedQkvBias) {
    SKIP_WITHOUT_GPU();
    run_case({{65, 130, 1}, 4, 32, 1.0f, true});
    run_case({{200, 3}, 12, 64, 1.0f, true}); // bert-base heads
}

TEST(KernelsAttention, ManyShortSequences) {
    SKIP_WITHOUT_GPU();
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> len(8, 32); // query lengths
    // 500 on a GPU; 200 under the emulation, 60 under the emulation with ASan
    std::vector<int32_t> lengths(!emulated() ? 500 : sanitized() ? 60 : 200);
    for (auto &l : lengths)
        l = len(rng);
    run_case({lengths, 12, 32, 1.0f, true});
}

TEST(KernelsAttention, RejectsUnsupportedShapes) {
    // Host-side checks, before any launch: runs without a GPU too.
    fp16_t *p = reinterpret_cast<fp16_t *>(4096);
    const int32_t *cu = reinterpret_cast<const int32_t *>(4096);
    for (const attention_variant v : {ATTENTION_MMA, ATTENTION_WMMA}) {
        EXPECT_EQ(cudaErrorInvalidValue,
                  dre_attention_launch(p, nullptr, cu, 1, 10, 4, 48, p, v, nullptr));
        EXPECT_EQ(cudaErrorInvalidValue, // misaligned qkv
                  dre_attention_launch(p + 1, nullptr, cu, 1, 10, 4, 64, p, v, nullptr));
        EXPECT_EQ(cudaSuccess, dre_attention_launch(p, nullptr, cu, 0, 0, 4, 64, p, v, nullptr));
    }
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_attention_launch(p, nullptr, cu, 1, 10, 4, 64, p, (attention_variant)7, nullptr));
}

} // namespace
