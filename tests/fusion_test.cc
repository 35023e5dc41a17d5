// fusion_test.cc — hybrid search's arithmetic on hand-made lists: reciprocal-rank fusion
// (sum of 1 / (k + rank)) and convex fusion (alpha * dense + (1 - alpha) * bm25 over
// min-max normalised scores), ties by row, lists missing a document, empty lists, k.
#include <gtest/gtest.h>

#include <vector>

#include "search/fusion.h"

namespace {

// Rows: A = 10, B = 20, C = 30, D = 40.
const std::vector<ranked> kDense = {{10, 0.9}, {20, 0.8}, {30, 0.7}};
const std::vector<ranked> kBm25 = {{30, 12.0}, {40, 10.0}, {10, 5.0}};

std::vector<dre_hit> run(dre_fusion fusion, double rrf_k, double alpha,
                         const std::vector<ranked> &dense, const std::vector<ranked> &bm25,
                         int32_t k) {
    std::vector<dre_hit> scratch(dense.size() + bm25.size() + 1), out(k);
    int32_t n = dre_fuse(fusion, rrf_k, alpha, dense.data(), (int32_t)dense.size(), bm25.data(),
                         (int32_t)bm25.size(), k, scratch.data(), out.data());
    out.resize(n);
    return out;
}

TEST(Fusion, ReciprocalRank) {
    auto hits = run(DRE_FUSION_RRF, 60, 0.5, kDense, kBm25, 10);
    ASSERT_EQ(hits.size(), 4u);
    // A: 1/61 + 1/63; C: 1/63 + 1/61 (equal: row order); B: 1/62; D: 1/62.
    EXPECT_EQ(hits[0].row, 10);
    EXPECT_EQ(hits[1].row, 30);
    EXPECT_EQ(hits[2].row, 20);
    EXPECT_EQ(hits[3].row, 40);
    EXPECT_DOUBLE_EQ(hits[0].score, 1.0 / 61 + 1.0 / 63);
    EXPECT_DOUBLE_EQ(hits[1].score, 1.0 / 63 + 1.0 / 61);
    EXPECT_DOUBLE_EQ(hits[2].score, 1.0 / 62);
    EXPECT_DOUBLE_EQ(hits[3].score, 1.0 / 62);
    // each hit carries both lists' ranks and scores, 0 where it is not in a list
    EXPECT_EQ(hits[0].dense_rank, 1);
    EXPECT_FLOAT_EQ(hits[0].dense_score, 0.9f);
    EXPECT_EQ(hits[0].bm25_rank, 3);
    EXPECT_DOUBLE_EQ(hits[0].bm25_score, 5.0);
    EXPECT_EQ(hits[2].dense_rank, 2);
    EXPECT_EQ(hits[2].bm25_rank, 0);
    EXPECT_EQ(hits[3].dense_rank, 0);
    EXPECT_EQ(hits[3].bm25_rank, 2);
    EXPECT_DOUBLE_EQ(hits[3].bm25_score, 10.0);
    // another k changes the sums; k = 0 is 1/rank
    hits = run(DRE_FUSION_RRF, 0, 0.5, kDense, kBm25, 10);
    EXPECT_EQ(hits[0].row, 10); // 1 + 1/3 beats C's 1/3 + 1 only by row
    EXPECT_DOUBLE_EQ(hits[0].score, 1.0 + 1.0 / 3);
    EXPECT_DOUBLE_EQ(hits[2].score, 0.5);
}

TEST(Fusion, ConvexOfMinMaxNormalisedScores) {
    // dense normalised: A 1, B 0.5, C 0; BM25 normalised: C 1, D 5/7, A 0.
    auto hits = run(DRE_FUSION_CONVEX, 60, 0.3, kDense, kBm25, 10);
    ASSERT_EQ(hits.size(), 4u);
    EXPECT_EQ(hits[0].row, 30);
    EXPECT_DOUBLE_EQ(hits[0].score, 0.7);
    EXPECT_EQ(hits[1].row, 40);
    EXPECT_DOUBLE_EQ(hits[1].score, 0.7 * 5.0 / 7.0);
    EXPECT_EQ(hits[2].row, 10);
    EXPECT_DOUBLE_EQ(hits[2].score, 0.3);
    EXPECT_EQ(hits[3].row, 20);
    EXPECT_DOUBLE_EQ(hits[3].score, 0.3 * 0.5);
    // alpha 1 is the dense order, alpha 0 the BM25 order (documents outside a list at 0)
    hits = run(DRE_FUSION_CONVEX, 60, 1.0, kDense, kBm25, 10);
    EXPECT_EQ(hits[0].row, 10);
    EXPECT_EQ(hits[1].row, 20);
    EXPECT_DOUBLE_EQ(hits[1].score, 0.5);
    hits = run(DRE_FUSION_CONVEX, 60, 0.0, kDense, kBm25, 10);
    EXPECT_EQ(hits[0].row, 30);
    EXPECT_EQ(hits[1].row, 40);
}

TEST(Fusion, EqualScoresInAListNormaliseToOne) {
    std::vector<ranked> flat = {{5, 2.0}, {6, 2.0}};
    auto hits = run(DRE_FUSION_CONVEX, 60, 0.25, flat, {}, 10);
    ASSERT_EQ(hits.size(), 2u);
    EXPECT_DOUBLE_EQ(hits[0].score, 0.25);
    EXPECT_DOUBLE_EQ(hits[1].score, 0.25);
    EXPECT_EQ(hits[0].row, 5);
}

TEST(Fusion, EmptyListsAndK) {
    EXPECT_TRUE(run(DRE_FUSION_RRF, 60, 0.5, {}, {}, 10).empty());
    auto hits = run(DRE_FUSION_RRF, 60, 0.5, {}, kBm25, 2); // BM25 only, cut to k
    ASSERT_EQ(hits.size(), 2u);
    EXPECT_EQ(hits[0].row, 30);
    EXPECT_DOUBLE_EQ(hits[0].score, 1.0 / 61);
    EXPECT_EQ(hits[1].row, 40);
    hits = run(DRE_FUSION_CONVEX, 60, 0.5, kDense, {}, 1);
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].row, 10);
    EXPECT_DOUBLE_EQ(hits[0].score, 0.5);
}

TEST(Fusion, SingleListKeepsItsOrderAndScores) {
    std::vector<dre_hit> out(2);
    ASSERT_EQ(dre_fuse_single(kBm25.data(), 3, 1, 2, out.data()), 2);
    EXPECT_EQ(out[0].row, 30);
    EXPECT_DOUBLE_EQ(out[0].score, 12.0);
    EXPECT_EQ(out[0].bm25_rank, 1);
    EXPECT_EQ(out[0].dense_rank, 0);
    EXPECT_EQ(out[1].bm25_rank, 2);
    ASSERT_EQ(dre_fuse_single(kDense.data(), 3, 0, 2, out.data()), 2);
    EXPECT_EQ(out[1].row, 20);
    EXPECT_EQ(out[1].dense_rank, 2);
    EXPECT_FLOAT_EQ(out[1].dense_score, 0.8f);
    EXPECT_EQ(out[1].bm25_rank, 0);
}

} // namespace
