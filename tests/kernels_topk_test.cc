// kernels_topk_test.cc — topk_launch (radix select + bitonic sort) against a CPU reference:
// std::sort of each row. The k scores must equal the reference's exactly (they are copies),
// and each returned id must name a column holding that score, with no id twice — so ties
// may come back in any order but nothing else may differ. Rows shorter than k pad with
// -inf / -1; merge mode takes explicit ids.
#include "gpu_test_util.h"

#include <functional>
#include <map>
#include <set>

namespace {

using namespace gpu_test;

struct topk_result {
    std::vector<float> scores;
    std::vector<int64_t> ids;
};

// Runs topk_launch on rows x n_cols scores (row stride in_stride), output stride out_stride.
topk_result run_gpu(const std::vector<float> &scores, const std::vector<int64_t> *ids,
                    int64_t id_offset, int32_t rows, int32_t n_cols, int64_t in_stride, int32_t k,
                    int64_t out_stride, cudaError_t *err) {
    device_buffer<float> d_scores(scores), d_out_scores((size_t)rows * out_stride);
    device_buffer<int64_t> d_ids(ids ? *ids : std::vector<int64_t>(1)),
        d_out_ids((size_t)rows * out_stride);
    *err = topk_launch(d_scores.get(), ids ? d_ids.get() : nullptr, id_offset, rows, n_cols,
                       in_stride, k, d_out_scores.get(), d_out_ids.get(), out_stride, nullptr);
    if (*err == cudaSuccess) *err = cudaDeviceSynchronize();
    return {d_out_scores.download(), d_out_ids.download()};
}

// Checks one row's result against the row's scores and ids (id of column c: id_of(c)).
void check_row(const float *row, int32_t n_cols, const std::function<int64_t(int32_t)> &id_of,
               int32_t k, const float *got_scores, const int64_t *got_ids) {
    std::vector<float> sorted(row, row + n_cols);
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    std::map<int64_t, float> score_of;
    for (int32_t c = 0; c < n_cols; c++)
        score_of[id_of(c)] = row[c];
    std::set<int64_t> seen;
    for (int32_t i = 0; i < k; i++) {
        if (i < n_cols) {
            ASSERT_EQ(sorted[i], got_scores[i]) << "rank " << i;
            ASSERT_TRUE(score_of.count(got_ids[i]))
                << "rank " << i << ": unknown id " << got_ids[i];
            ASSERT_EQ(score_of[got_ids[i]], got_scores[i]) << "rank " << i << " id " << got_ids[i];
            ASSERT_TRUE(seen.insert(got_ids[i]).second) << "id " << got_ids[i] << " twice";
        } else {
            ASSERT_EQ(-1, got_ids[i]) << "rank " << i << " past the row's end";
            ASSERT_TRUE(std::isinf(got_scores[i]) && got_scores[i] < 0) << "rank " << i;
        }
    }
}

void run_case(int32_t rows, int32_t n_cols, int32_t k, int quantize, uint32_t seed) {
    SCOPED_TRACE("rows " + std::to_string(rows) + " n_cols " + std::to_string(n_cols) + " k " +
                 std::to_string(k) + (quantize ? " with ties" : ""));
    const int64_t in_stride = n_cols + 3, out_stride = k + 5, id_offset = 1000000;
    std::vector<float> scores = uniform((size_t)rows * in_stride, -1.0f, 1.0f, seed);
    if (quantize) // few distinct values: many ties at the k-th score
        for (auto &s : scores)
            s = std::round(s * quantize) / quantize;
    cudaError_t err;
    const topk_result r =
        run_gpu(scores, nullptr, id_offset, rows, n_cols, in_stride, k, out_stride, &err);
    ASSERT_EQ(cudaSuccess, err) << cudaGetErrorString(err);
    for (int32_t row = 0; row < rows; row++) {
        SCOPED_TRACE("row " + std::to_string(row));
        check_row(
            &scores[row * in_stride], n_cols, [&](int32_t c) { return id_offset + c; }, k,
            &r.scores[row * out_stride], &r.ids[row * out_stride]);
    }
}

TEST(KernelsTopk, MatchesSortAcrossSizes) {
    SKIP_WITHOUT_GPU();
    run_case(3, 1, 1, 0, 1);
    run_case(3, 5, 10, 0, 2);  // fewer columns than k: padding
    run_case(3, 10, 10, 0, 3); // exactly k
    run_case(3, 11, 10, 0, 4);
    run_case(4, 1000, 1, 0, 5);
    run_case(4, 1000, 100, 0, 6);
    run_case(2, 65536, 10, 0, 7);
    run_case(2, 100003, 1000, 0, 8);
    run_case(2, 70000, 1024, 0, 9);
    run_case(2, 1024, 1024, 0, 10);
    run_case(64, 4096, 10, 0, 11);
}

TEST(KernelsTopk, ManyTies) {
    SKIP_WITHOUT_GPU();
    run_case(3, 5000, 10, 4, 21);   // 9 distinct values
    run_case(3, 5000, 1000, 2, 22); // 5 distinct values, k cuts through a huge tie
    run_case(2, 70000, 17, 1000, 23);
}

TEST(KernelsTopk, AllEqualAndSpecialValues) {
    SKIP_WITHOUT_GPU();
    const int32_t n = 3000, k = 50;
    std::vector<float> same(n, 0.25f);
    cudaError_t err;
    topk_result r = run_gpu(same, nullptr, 0, 1, n, n, k, k, &err);
    ASSERT_EQ(cudaSuccess, err);
    check_row(
        same.data(), n, [](int32_t c) { return (int64_t)c; }, k, r.scores.data(), r.ids.data());

    std::vector<float> special = uniform(n, -1.0f, 1.0f, 31);
    special[5] = INFINITY;
    special[6] = -INFINITY;
    special[7] = -0.0f;
    special[8] = 0.0f;
    special[9] = 3e38f;
    special[10] = -3e38f;
    special[11] = 1e-40f; // subnormal
    r = run_gpu(special, nullptr, 0, 1, n, n, k, k, &err);
    ASSERT_EQ(cudaSuccess, err);
    EXPECT_EQ(INFINITY, r.scores[0]);
    EXPECT_EQ(5, r.ids[0]);
    EXPECT_EQ(3e38f, r.scores[1]);
    check_row(
        special.data(), n, [](int32_t c) { return (int64_t)c; }, k, r.scores.data(), r.ids.data());
}

TEST(KernelsTopk, MergeWithExplicitIds) {
    // as in exact search: the k best so far (with -1 padding) beside a chunk's k best
    SKIP_WITHOUT_GPU();
    const int32_t rows = 5, k = 100, n_cols = 2 * k;
    std::vector<float> scores = uniform((size_t)rows * n_cols, -1.0f, 1.0f, 41);
    std::vector<int64_t> ids((size_t)rows * n_cols);
    for (size_t i = 0; i < ids.size(); i++)
        ids[i] = 7 * (int64_t)i + 3;
    for (int32_t c = 0; c < 30; c++) { // row 0 holds some padding entries
        scores[c] = -INFINITY;
        ids[c] = -1;
    }
    cudaError_t err;
    const topk_result r = run_gpu(scores, &ids, 0, rows, n_cols, n_cols, k, k, &err);
    ASSERT_EQ(cudaSuccess, err);
    for (int32_t row = 0; row < rows; row++) {
        SCOPED_TRACE("row " + std::to_string(row));
        const int64_t *row_ids = &ids[(size_t)row * n_cols];
        check_row(
            &scores[(size_t)row * n_cols], n_cols, [&](int32_t c) { return row_ids[c]; }, k,
            &r.scores[(size_t)row * k], &r.ids[(size_t)row * k]);
    }
}

TEST(KernelsTopk, EmptyRowIsAllPadding) {
    SKIP_WITHOUT_GPU();
    cudaError_t err;
    const topk_result r = run_gpu(std::vector<float>(1), nullptr, 0, 2, 0, 1, 7, 7, &err);
    ASSERT_EQ(cudaSuccess, err);
    for (int i = 0; i < 14; i++) {
        EXPECT_EQ(-1, r.ids[i]);
        EXPECT_TRUE(std::isinf(r.scores[i]) && r.scores[i] < 0);
    }
}

TEST(KernelsTopk, RejectsBadK) {
    // host-side checks: runs without a GPU too
    float *s = reinterpret_cast<float *>(256);
    int64_t *i = reinterpret_cast<int64_t *>(256);
    EXPECT_EQ(cudaErrorInvalidValue, topk_launch(s, nullptr, 0, 1, 10, 10, 0, s, i, 10, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue,
              topk_launch(s, nullptr, 0, 1, 10, 10, TOPK_MAX_K + 1, s, i, 2048, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, topk_launch(s, nullptr, 0, 1, 10, 10, 8, s, i, 4, nullptr));
}

} // namespace
