// kernels_embed_layernorm_test.cc — dre_embed_layernorm_launch (fp16 tables and output) against
// its CPU twin dre_embed_layernorm_cpu on random tables and packed batches of edge lengths:
// 1, 2, 511, 512, mixed, one long among short, and many short sequences (positions
// restart per sequence, found by binary search on the GPU).
#include "gpu_test_util.h"

#include "cpu/ops.h"

namespace {

using namespace gpu_test;

constexpr int32_t kVocab = 1000, kMaxPositions = 512, kTypes = 2;

void run_case(const std::vector<int32_t> &lengths, int32_t hidden) {
    SCOPED_TRACE("lengths " + lengths_str(lengths) + " hidden " + std::to_string(hidden));
    const std::vector<int32_t> cu = cu_seqlens_of(lengths);
    const int32_t n_seqs = (int32_t)lengths.size(), n_tokens = cu.back();
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> pick(0, kVocab - 1);
    std::vector<int32_t> ids(n_tokens);
    for (auto &id : ids)
        id = pick(rng);

    const std::vector<float> word = round_fp16(uniform((size_t)kVocab * hidden, -1.0f, 1.0f, 11));
    const std::vector<float> pos =
        round_fp16(uniform((size_t)kMaxPositions * hidden, -1.0f, 1.0f, 12));
    const std::vector<float> type = round_fp16(uniform((size_t)kTypes * hidden, -1.0f, 1.0f, 13));
    const std::vector<float> g = uniform(hidden, 0.5f, 1.5f, 14);
    const std::vector<float> b = uniform(hidden, -0.5f, 0.5f, 15);
    const float eps = 1e-12f;

    std::vector<float> want((size_t)n_tokens * hidden);
    dre_embed_layernorm_cpu(ids.data(), cu.data(), n_seqs, word.data(), pos.data(), type.data(),
                            g.data(), b.data(), eps, hidden, want.data());

    device_buffer<int32_t> d_ids(ids), d_cu(cu);
    device_buffer<fp16_t> d_word(to_fp16(word)), d_pos(to_fp16(pos)), d_type(to_fp16(type));
    device_buffer<float> d_g(g), d_b(b);
    device_buffer<fp16_t> d_out((size_t)n_tokens * hidden);
    ASSERT_CUDA(dre_embed_layernorm_launch(
        d_ids.get(), d_cu.get(), n_seqs, n_tokens, d_word.get(), d_pos.get(), d_type.get(), kVocab,
        kMaxPositions, d_g.get(), d_b.get(), eps, hidden, d_out.get(), nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    EXPECT_TRUE(all_close(to_float(d_out.download()), want, 1e-3f, 1e-3f, "embed_layernorm"));
}

TEST(KernelsEmbedLayernorm, EdgeLengths) {
    SKIP_WITHOUT_GPU();
    run_case({1}, 384);
    run_case({2}, 384);
    run_case({511}, 384);
    run_case({512}, 384);
    run_case({512}, 768);
    run_case({3, 17, 64, 65, 128, 200}, 384);
    run_case({1, 512, 2, 7}, 768);
}

// Constant tables make every embedded row constant: variance 0, so only eps keeps the
// LayerNorm finite, and each output is exactly beta (the random rows never show eps).
TEST(KernelsEmbedLayernorm, ConstantRowsGiveBetaExactly) {
    SKIP_WITHOUT_GPU();
    const int32_t hidden = 384;
    const std::vector<int32_t> cu = cu_seqlens_of({3, 5});
    const int32_t n_tokens = cu.back();
    const std::vector<int32_t> ids = {0, 5, 999, 1, 2, 3, 4, 7};
    const std::vector<float> word((size_t)kVocab * hidden, 0.5f),
        pos((size_t)kMaxPositions * hidden, 0.25f), type((size_t)kTypes * hidden, -0.125f);
    const std::vector<float> g = uniform(hidden, 0.5f, 1.5f, 14);
    const std::vector<float> b = round_fp16(uniform(hidden, -0.5f, 0.5f, 15));
    const float eps = 1e-5f;
    std::vector<float> want((size_t)n_tokens * hidden);
    dre_embed_layernorm_cpu(ids.data(), cu.data(), 2, word.data(), pos.data(), type.data(),
                            g.data(), b.data(), eps, hidden, want.data());
    for (size_t i = 0; i < want.size(); i++)
        ASSERT_EQ(want[i], b[i % hidden]) << "the CPU twin, element " << i;
    device_buffer<int32_t> d_ids(ids), d_cu(cu);
    device_buffer<fp16_t> d_word(to_fp16(word)), d_pos(to_fp16(pos)), d_type(to_fp16(type));
    device_buffer<float> d_g(g), d_b(b);
    device_buffer<fp16_t> d_out((size_t)n_tokens * hidden);
    ASSERT_CUDA(dre_embed_layernorm_launch(
        d_ids.get(), d_cu.get(), 2, n_tokens, d_word.get(), d_pos.get(), d_type.get(), kVocab,
        kMaxPositions, d_g.get(), d_b.get(), eps, hidden, d_out.get(), nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<float> got = to_float(d_out.download());
    for (size_t i = 0; i < got.size(); i++)
        ASSERT_EQ(got[i], b[i % hidden]) << "element " << i;
}

TEST(KernelsEmbedLayernorm, ManyShortSequences) {
    SKIP_WITHOUT_GPU();
    std::mt19937 rng(3);
    std::uniform_int_distribution<int32_t> len(1, 40);
    std::vector<int32_t> lengths(777);
    for (auto &l : lengths)
        l = len(rng);
    run_case(lengths, 384);
    run_case(std::vector<int32_t>(300, 1), 64);
}

} // namespace
