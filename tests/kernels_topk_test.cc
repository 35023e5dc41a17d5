// kernels_topk_test.cc — dre_topk_launch (radix select, FAISS's tie rule, bitonic sort) against
// its CPU twin: FAISS's k-heap run step by step over the row's entries in id order (replace
// the worst only when strictly better; the worst is the lowest score, of equal scores the
// lowest id), output by score then descending id. Scores and ids must be equal in order,
// ties included. Rows shorter than k pad with -inf / -1; earlier entries (prev) take explicit
// ids; chunks chained through TOPK_BY_ID give the result of the whole row.
#include "gpu_test_util.h"

#include <cstring>
#include <map>
#include <set>
#include <utility>

namespace {

using namespace gpu_test;

// The kernel's order-preserving key: NaN lowest of all numbers.
uint32_t key_of(float f) {
    if (std::isnan(f)) return 1u;
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct topk_result {
    std::vector<float> scores;
    std::vector<int64_t> ids;
};

// FAISS's heap over (score, id) entries in the given (id) order, starting empty; the k kept,
// by score then descending id (or by ascending id), padded with (-inf, -1).
topk_result faiss_heap_topk(const std::vector<std::pair<float, int64_t>> &entries, int32_t k,
                            topk_order order) {
    std::set<std::pair<uint32_t, int64_t>> heap; // begin() is the worst
    for (const auto &e : entries) {
        const std::pair<uint32_t, int64_t> item(key_of(e.first), e.second);
        if ((int32_t)heap.size() < k) {
            heap.insert(item);
        } else if (item.first > heap.begin()->first) {
            heap.erase(heap.begin());
            heap.insert(item);
        }
    }
    std::vector<std::pair<uint32_t, int64_t>> kept(heap.begin(), heap.end());
    if (order == TOPK_BY_SCORE)
        std::reverse(kept.begin(), kept.end()); // score descending, equal scores id descending
    else
        std::sort(kept.begin(), kept.end(),
                  [](const auto &a, const auto &b) { return a.second < b.second; });
    std::map<int64_t, float> score_of;
    for (const auto &e : entries)
        score_of[e.second] = e.first;
    topk_result r{std::vector<float>(k, -INFINITY), std::vector<int64_t>(k, -1)};
    for (size_t i = 0; i < kept.size(); i++) {
        r.scores[i] = score_of[kept[i].second];
        r.ids[i] = kept[i].second;
    }
    return r;
}

struct row_case {
    int32_t rows, n_cols, n_prev, k;
    int64_t in_stride, prev_stride, out_stride, id_offset;
    std::vector<float> scores, prev_scores;
    std::vector<int64_t> prev_ids;
};

topk_result run_gpu(const row_case &c, topk_order order, cudaError_t *err) {
    device_buffer<float> d_scores(c.scores.empty() ? std::vector<float>(1) : c.scores);
    device_buffer<float> d_prev_scores(c.prev_scores.empty() ? std::vector<float>(1)
                                                             : c.prev_scores);
    device_buffer<int64_t> d_prev_ids(c.prev_ids.empty() ? std::vector<int64_t>(1) : c.prev_ids);
    device_buffer<float> d_out_scores((size_t)c.rows * c.out_stride);
    device_buffer<int64_t> d_out_ids((size_t)c.rows * c.out_stride);
    *err = dre_topk_launch(d_scores.get(), c.in_stride, c.n_cols, c.id_offset, d_prev_scores.get(),
                           d_prev_ids.get(), c.prev_stride, c.n_prev, c.rows, c.k, order,
                           d_out_scores.get(), d_out_ids.get(), c.out_stride, nullptr);
    if (*err == cudaSuccess) *err = cudaDeviceSynchronize();
    return {d_out_scores.download(), d_out_ids.download()};
}

// Row r's entries in id order: its prev entries (padding left out), then its columns.
std::vector<std::pair<float, int64_t>> entries_of(const row_case &c, int32_t r) {
    std::vector<std::pair<float, int64_t>> e;
    for (int32_t i = 0; i < c.n_prev; i++) {
        const int64_t id = c.prev_ids[(size_t)r * c.prev_stride + i];
        if (id >= 0) e.emplace_back(c.prev_scores[(size_t)r * c.prev_stride + i], id);
    }
    for (int32_t j = 0; j < c.n_cols; j++)
        e.emplace_back(c.scores[(size_t)r * c.in_stride + j], c.id_offset + j);
    return e;
}

void check(const row_case &c, topk_order order) {
    cudaError_t err;
    const topk_result got = run_gpu(c, order, &err);
    ASSERT_EQ(cudaSuccess, err) << cudaGetErrorString(err);
    for (int32_t r = 0; r < c.rows; r++) {
        SCOPED_TRACE("row " + std::to_string(r));
        const topk_result want = faiss_heap_topk(entries_of(c, r), c.k, order);
        for (int32_t i = 0; i < c.k; i++) {
            const size_t at = (size_t)r * c.out_stride + i;
            ASSERT_EQ(want.ids[i], got.ids[at]) << "rank " << i << ", score " << got.scores[at];
            if (std::isnan(want.scores[i])) // the kernel's NaN need not keep the payload
                ASSERT_TRUE(std::isnan(got.scores[at])) << "rank " << i;
            else // bit for bit: -0.0 stays -0.0
                ASSERT_EQ(0, std::memcmp(&want.scores[i], &got.scores[at], sizeof(float)))
                    << "rank " << i << ": " << want.scores[i] << " vs " << got.scores[at];
        }
    }
}

// rows x n_cols uniform scores in [-1, 1); quantize > 0 rounds them to multiples of
// 1 / quantize (few distinct values: ties everywhere, at the k-th score too).
row_case random_case(int32_t rows, int32_t n_cols, int32_t k, int quantize, uint32_t seed) {
    row_case c{rows, n_cols, 0, k, n_cols + 3, 0, k + 5, 1000000, {}, {}, {}};
    c.scores = uniform((size_t)rows * c.in_stride, -1.0f, 1.0f, seed);
    if (quantize)
        for (auto &s : c.scores)
            s = std::round(s * quantize) / quantize;
    return c;
}

void run_case(int32_t rows, int32_t n_cols, int32_t k, int quantize, uint32_t seed) {
    SCOPED_TRACE("rows " + std::to_string(rows) + " n_cols " + std::to_string(n_cols) + " k " +
                 std::to_string(k) + (quantize ? " with ties" : ""));
    const row_case c = random_case(rows, n_cols, k, quantize, seed);
    check(c, TOPK_BY_SCORE);
}

TEST(KernelsTopk, MatchesFaissHeapAcrossSizes) {
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

TEST(KernelsTopk, TiesFollowFaissHeapRule) {
    SKIP_WITHOUT_GPU();
    run_case(3, 5000, 10, 4, 21);   // 9 distinct values
    run_case(3, 5000, 1000, 2, 22); // 5 distinct values, k cuts through a huge tie
    run_case(2, 70000, 17, 1000, 23);
    run_case(4, 3000, 37, 8, 24);
    // the examples that tell FAISS's rule from "smallest ids": a tie at T early, the
    // entries above T after it (FAISS keeps the last tied ones) ...
    row_case c{1, 40, 0, 4, 40, 0, 4, 0, std::vector<float>(40, 0.0f), {}, {}};
    for (int j : {2, 3, 4})
        c.scores[j] = 0.5f;
    for (int j : {20, 21, 22})
        c.scores[j] = 0.9f;
    check(c, TOPK_BY_SCORE); // keeps 20, 21, 22 and 4
    // ... and tied entries after t*, the k-th entry >= T (never let in)
    for (int j : {30, 35})
        c.scores[j] = 0.5f;
    check(c, TOPK_BY_SCORE);
    check(c, TOPK_BY_ID);
}

TEST(KernelsTopk, AllEqualAndSpecialValues) {
    SKIP_WITHOUT_GPU();
    const int32_t n = 3000, k = 50;
    row_case c{1, n, 0, k, n, 0, k, 0, std::vector<float>(n, 0.25f), {}, {}};
    check(c, TOPK_BY_SCORE); // ids 49 .. 0: the first k, descending

    c.scores = uniform(n, -1.0f, 1.0f, 31);
    c.scores[5] = INFINITY;
    c.scores[6] = -INFINITY;
    c.scores[7] = -0.0f;
    c.scores[8] = 0.0f;
    c.scores[9] = 3e38f;
    c.scores[10] = -3e38f;
    c.scores[11] = 1e-40f; // subnormal
    c.scores[12] = NAN;
    check(c, TOPK_BY_SCORE);
    cudaError_t err;
    const topk_result r = run_gpu(c, TOPK_BY_SCORE, &err);
    ASSERT_EQ(cudaSuccess, err);
    EXPECT_EQ(INFINITY, r.scores[0]);
    EXPECT_EQ(5, r.ids[0]);
    EXPECT_EQ(3e38f, r.scores[1]);

    row_case few{1, 3, 0, 8, 3, 0, 8, 0, {NAN, -INFINITY, 1.0f}, {}, {}}; // all kept, NaN last
    check(few, TOPK_BY_SCORE);
    check(few, TOPK_BY_ID);
}

TEST(KernelsTopk, PrevEntriesComeFirst) {
    // as in exact search: the k best of the chunks before (ids ascending, some padding)
    // ahead of this chunk's scores
    SKIP_WITHOUT_GPU();
    for (const int quantize : {0, 4}) {
        SCOPED_TRACE(quantize ? "with ties" : "distinct");
        const int32_t rows = 5, k = 100, n_cols = 700;
        row_case c = random_case(rows, n_cols, k, quantize, 41);
        c.n_prev = k;
        c.prev_stride = k + 2;
        c.id_offset = 10 * k * 7;
        c.prev_scores = uniform((size_t)rows * c.prev_stride, -1.0f, 1.0f, 42);
        if (quantize)
            for (auto &s : c.prev_scores)
                s = std::round(s * quantize) / quantize;
        c.prev_ids.resize((size_t)rows * c.prev_stride);
        for (int32_t r = 0; r < rows; r++)
            for (int32_t i = 0; i < c.prev_stride; i++)
                c.prev_ids[(size_t)r * c.prev_stride + i] = 7 * i + 3;
        for (int32_t i = 70; i < k; i++) // row 0 has only 70 earlier entries
            c.prev_ids[i] = -1;
        check(c, TOPK_BY_SCORE);
        check(c, TOPK_BY_ID);
    }
}

TEST(KernelsTopk, ChainedChunksEqualTheWholeRow) {
    // each chunk reduced with the result so far (TOPK_BY_ID), the last one by score: the
    // same as FAISS's heap over the whole row
    SKIP_WITHOUT_GPU();
    const int32_t rows = 3, n = 9000, k = 64, chunk = 2500;
    for (const int quantize : {0, 3}) {
        SCOPED_TRACE(quantize ? "with ties" : "distinct");
        const row_case whole = random_case(rows, n, k, quantize, 51);
        std::vector<float> best_scores((size_t)rows * k);
        std::vector<int64_t> best_ids((size_t)rows * k);
        int32_t n_prev = 0;
        for (int32_t c0 = 0; c0 < n; c0 += chunk) {
            const int32_t m = std::min(chunk, n - c0);
            row_case part{rows, m, n_prev, k, m, k, k, c0, {}, best_scores, best_ids};
            for (int32_t r = 0; r < rows; r++)
                for (int32_t j = 0; j < m; j++)
                    part.scores.push_back(whole.scores[(size_t)r * whole.in_stride + c0 + j]);
            cudaError_t err;
            const topk_result got = run_gpu(part, c0 + m < n ? TOPK_BY_ID : TOPK_BY_SCORE, &err);
            ASSERT_EQ(cudaSuccess, err);
            best_scores = got.scores;
            best_ids = got.ids;
            n_prev = k;
        }
        for (int32_t r = 0; r < rows; r++) {
            std::vector<std::pair<float, int64_t>> e;
            for (int32_t j = 0; j < n; j++)
                e.emplace_back(whole.scores[(size_t)r * whole.in_stride + j], j);
            const topk_result want = faiss_heap_topk(e, k, TOPK_BY_SCORE);
            for (int32_t i = 0; i < k; i++) {
                ASSERT_EQ(want.ids[i], best_ids[(size_t)r * k + i]) << "row " << r << " rank " << i;
                ASSERT_EQ(want.scores[i], best_scores[(size_t)r * k + i]) << "rank " << i;
            }
        }
    }
}

TEST(KernelsTopk, EmptyRowIsAllPadding) {
    SKIP_WITHOUT_GPU();
    row_case c{2, 0, 0, 7, 1, 0, 7, 0, {}, {}, {}};
    cudaError_t err;
    const topk_result r = run_gpu(c, TOPK_BY_SCORE, &err);
    ASSERT_EQ(cudaSuccess, err);
    for (int i = 0; i < 14; i++) {
        EXPECT_EQ(-1, r.ids[i]);
        EXPECT_TRUE(std::isinf(r.scores[i]) && r.scores[i] < 0);
    }
}

TEST(KernelsTopk, RejectsBadArguments) {
    // host-side checks: runs without a GPU too
    float *s = reinterpret_cast<float *>(256);
    int64_t *i = reinterpret_cast<int64_t *>(256);
    EXPECT_EQ(cudaErrorInvalidValue, dre_topk_launch(s, 10, 10, 0, nullptr, nullptr, 0, 0, 1, 0,
                                                     TOPK_BY_SCORE, s, i, 10, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_topk_launch(s, 10, 10, 0, nullptr, nullptr, 0, 0, 1, TOPK_MAX_K + 1,
                              TOPK_BY_SCORE, s, i, 2048, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, dre_topk_launch(s, 10, 10, 0, nullptr, nullptr, 0, 0, 1, 8,
                                                     TOPK_BY_SCORE, s, i, 4, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, dre_topk_launch(s, 10, 10, 0, nullptr, nullptr, 0, 5, 1, 8,
                                                     TOPK_BY_SCORE, s, i, 8, nullptr)); // prev NULL
    EXPECT_EQ(cudaErrorInvalidValue,
              dre_topk_launch(s, 10, 10, 0, s, i, 4, 5, 1, 8, TOPK_BY_SCORE, s, i, 8, nullptr));
}

} // namespace
