// gpu_search_test.cc — exact GPU search (cuBLAS scores + our top-k, merged over chunks)
// against FAISS IndexFlat with inner product on the CPU: the same ids, and exact ties in
// FAISS's order (ascending id). On random vectors a GPU id
// FAISS did not return is accepted only when its exact score (double precision) is within
// 1e-5 of FAISS's k-th score, i.e. the two disagree about a near-tie. Without a GPU,
// dre_gpu_search_open must say DRE_ERR_NO_GPU.
#include "gpu_test_util.h"

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <set>

#include "dre.h"

namespace {

using namespace gpu_test;

std::vector<float> unit_vectors(int64_t n, int32_t dim, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v((size_t)n * dim);
    for (int64_t i = 0; i < n; i++) {
        double sq = 0;
        for (int32_t d = 0; d < dim; d++) {
            const float x = normal(rng);
            v[(size_t)i * dim + d] = x;
            sq += (double)x * x;
        }
        const float inv = (float)(1.0 / std::sqrt(sq));
        for (int32_t d = 0; d < dim; d++)
            v[(size_t)i * dim + d] *= inv;
    }
    return v;
}

struct knn {
    std::vector<float> scores;
    std::vector<int64_t> ids;
};

knn faiss_flat(const std::vector<float> &xb, int64_t n, int32_t dim, const std::vector<float> &xq,
               int64_t nq, int32_t k) {
    FaissIndex *index = nullptr;
    knn out{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
    EXPECT_EQ(0, faiss_index_factory(&index, dim, "Flat", METRIC_INNER_PRODUCT))
        << faiss_get_last_error();
    EXPECT_EQ(0, faiss_Index_add(index, n, xb.data())) << faiss_get_last_error();
    EXPECT_EQ(0, faiss_Index_search(index, nq, xq.data(), k, out.scores.data(), out.ids.data()))
        << faiss_get_last_error();
    faiss_Index_free(index);
    return out;
}

double exact_score(const std::vector<float> &xb, const std::vector<float> &xq, int64_t row,
                   int64_t q, int32_t dim) {
    double s = 0;
    for (int32_t d = 0; d < dim; d++)
        s += (double)xb[(size_t)row * dim + d] * xq[(size_t)q * dim + d];
    return s;
}

// Compares GPU results with FAISS's; returns the number of ids in agreement.
int64_t compare(const knn &gpu, const knn &ref, const std::vector<float> &xb,
                const std::vector<float> &xq, int64_t n, int64_t nq, int32_t dim, int32_t k,
                double tie_tol, double score_tol) {
    int64_t agree = 0;
    for (int64_t q = 0; q < nq; q++) {
        std::set<int64_t> ref_ids(ref.ids.begin() + q * k, ref.ids.begin() + (q + 1) * k);
        const double kth = ref.scores[(size_t)q * k + k - 1];
        std::set<int64_t> seen;
        for (int32_t i = 0; i < k; i++) {
            const int64_t id = gpu.ids[(size_t)q * k + i];
            const float score = gpu.scores[(size_t)q * k + i];
            if (i >= n) {
                EXPECT_EQ(-1, id) << "query " << q << " rank " << i;
                continue;
            }
            EXPECT_TRUE(id >= 0 && id < n) << "query " << q << " rank " << i << " id " << id;
            if (id < 0 || id >= n) continue;
            EXPECT_TRUE(seen.insert(id).second) << "query " << q << ": id " << id << " twice";
            EXPECT_NEAR(ref.scores[(size_t)q * k + i], score, score_tol)
                << "query " << q << " rank " << i;
            if (i > 0) EXPECT_LE(score, gpu.scores[(size_t)q * k + i - 1]) << "not sorted";
            if (ref_ids.count(id)) {
                agree++;
            } else {
                EXPECT_GE(exact_score(xb, xq, id, q, dim), kth - tie_tol)
                    << "query " << q << " rank " << i << ": id " << id
                    << " is not among FAISS's and not a tie with its k-th score " << kth;
            }
        }
    }
    return agree;
}

void run_case(int64_t n, int32_t dim, int64_t nq, int32_t k, bool fp16) {
    SCOPED_TRACE("n " + std::to_string(n) + " dim " + std::to_string(dim) + " queries " +
                 std::to_string(nq) + " k " + std::to_string(k) + (fp16 ? " fp16" : " fp32"));
    const std::vector<float> xb = unit_vectors(n, dim, 1), xq = unit_vectors(nq, dim, 2);
    dre_gpu_search *gs = nullptr;
    const dre_status st = fp16 ? dre_gpu_search_open_fp16(xb.data(), n, dim, &gs)
                               : dre_gpu_search_open(xb.data(), n, dim, &gs);
    ASSERT_EQ(DRE_OK, st) << dre_last_error();
    knn gpu{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
    ASSERT_EQ(DRE_OK, dre_gpu_search_run(gs, xq.data(), nq, k, gpu.scores.data(), gpu.ids.data()))
        << dre_last_error();
    dre_gpu_search_close(gs);
    const int32_t k_ref = (int32_t)std::min<int64_t>(k, n);
    knn ref = faiss_flat(xb, n, dim, xq, nq, k_ref);
    if (k_ref < k) { // FAISS returns only n per query here: pad like ours
        knn padded{std::vector<float>((size_t)nq * k, -INFINITY),
                   std::vector<int64_t>((size_t)nq * k, -1)};
        for (int64_t q = 0; q < nq; q++)
            for (int32_t i = 0; i < k_ref; i++) {
                padded.scores[(size_t)q * k + i] = ref.scores[(size_t)q * k_ref + i];
                padded.ids[(size_t)q * k + i] = ref.ids[(size_t)q * k_ref + i];
            }
        ref = padded;
    }
    // cuBLAS and BLAS (or the fp16 path's fp32 re-scoring) differ only in summation order
    const double tie_tol = 1e-5, score_tol = 1e-5;
    const int64_t agree = compare(gpu, ref, xb, xq, n, nq, dim, k, tie_tol, score_tol);
    const int64_t total = nq * k_ref;
    std::printf("  ids in agreement with FAISS Flat: %lld / %lld\n", (long long)agree,
                (long long)total);
    EXPECT_GE(agree, total - total / 1000) << "more disagreements than near-ties explain";
}

TEST(GpuSearch, OpenWithoutGpuSaysNoGpu) {
    if (gpu_available()) GTEST_SKIP() << "a GPU is present";
    const std::vector<float> xb = unit_vectors(10, 8, 1);
    dre_gpu_search *gs = nullptr;
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_gpu_search_open(xb.data(), 10, 8, &gs));
    EXPECT_EQ(nullptr, gs);
    EXPECT_NE(std::string(dre_last_error()).find("CUDA device"), std::string::npos)
        << dre_last_error();
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_gpu_search_open_fp16(xb.data(), 10, 8, &gs));
}

TEST(GpuSearch, SameIdsAsFaissFlat) {
    SKIP_WITHOUT_GPU();
    run_case(20000, 384, 100, 10, false);
    run_case(5000, 64, 37, 1024, false);
    run_case(3000, 32, 1, 1, false);
}

TEST(GpuSearch, SeveralChunksAndQueryBatches) {
    // a batch of 1024 queries scores 6144 vectors a chunk (24 MiB of scores): 150001 vectors
    // make 25 chunks (the last one short; 13000 make 3 under the emulation), 1100 queries two
    // batches
    SKIP_WITHOUT_GPU();
    run_case(emulated() ? 13000 : 150001, 48, 1100, 20, false);
    run_case(140000, 32, 50, 1024, false);
}

TEST(GpuSearch, FewerVectorsThanK) {
    SKIP_WITHOUT_GPU();
    run_case(7, 16, 5, 10, false);
}

TEST(GpuSearch, Fp16StorageRescoredEqualsFp32) {
    // fp16 candidates, fp32 re-scoring: FAISS's answers, as from the fp32 vectors
    SKIP_WITHOUT_GPU();
    run_case(20000, 384, 100, 10, true);
    run_case(5000, 64, 37, 300, true); // many candidates, near the 1024 a search finds
    run_case(30, 16, 5, 20, true);     // every vector a candidate
}

// Duplicate vectors give exactly equal scores (small multiples of 1/4: every product and
// sum is exact in fp32, whatever the summation order); ties must come back in FAISS's
// order, by ascending id, across chunk merges too, so ids compare one for one.
// With fewer copies of each vector than k (a second case), the k-th place falls inside a
// group of equal scores, and which of them a better score evicts decides the answer: FAISS's
// heap evicts the lowest id first. (Only below k = 100: from there FAISS 1.7.3 keeps a
// reservoir instead of a heap, whose pick among such equals is its own.)
void ties_case(int64_t n, int32_t k, int64_t chunk_rows) {
    SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k));
    const int32_t dim = 48, distinct = 40;
    const int64_t nq = 300;
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> coord(-2, 2);
    std::vector<float> patterns((size_t)distinct * dim), xq((size_t)nq * dim);
    for (auto &x : patterns)
        x = coord(rng) / 4.0f;
    for (auto &x : xq)
        x = coord(rng) / 4.0f;
    std::vector<float> xb((size_t)n * dim);
    for (int64_t i = 0; i < n; i++)
        std::copy_n(&patterns[(size_t)(i * 7 % distinct) * dim], dim, &xb[(size_t)i * dim]);
    for (const bool fp16 : {false, true}) { // quarters are exact in fp16 too
        SCOPED_TRACE(fp16 ? "fp16" : "fp32");
        dre_gpu_search *gs = nullptr;
        ASSERT_EQ(DRE_OK, fp16 ? dre_gpu_search_open_fp16(xb.data(), n, dim, &gs)
                               : dre_gpu_search_open(xb.data(), n, dim, &gs))
            << dre_last_error();
        dre_gpu_search_set_chunk_rows(gs, chunk_rows);
        knn gpu{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
        ASSERT_EQ(DRE_OK,
                  dre_gpu_search_run(gs, xq.data(), nq, k, gpu.scores.data(), gpu.ids.data()))
            << dre_last_error();
        dre_gpu_search_close(gs);
        const knn ref = faiss_flat(xb, n, dim, xq, nq, k);
        for (int64_t i = 0; i < nq * k; i++) {
            ASSERT_EQ(ref.ids[i], gpu.ids[i]) << "query " << i / k << " rank " << i % k;
            ASSERT_EQ(ref.scores[i], gpu.scores[i]) << "query " << i / k << " rank " << i % k;
        }
    }
}

TEST(GpuSearch, TiesComeBackInFaissOrder) {
    SKIP_WITHOUT_GPU();
    // 20,971 rows a chunk for 300 queries: 8 chunks on a GPU; the emulation, at the CPU's
    // pace, chains 4 chunks of 2,000 rows (the last of one) instead
    ties_case(emulated() ? 6001 : 150001, 100, emulated() ? 2000 : 0);
    ties_case(3001, 90, 0); // 75 copies a vector, fewer than k
}

// Vectors that differ below fp16's resolution but well above fp32's: every fp16 candidate
// ties, the error bound cannot prove the k best among them, and each query is searched again
// on the GPU (exact wherever an fp16 score comes within the bound); the answer is still
// FAISS's, id for id, and nothing was scanned on the host (there is no such path).
TEST(GpuSearch, Fp16NearTiesAreSearchedAgainOnTheGpu) {
    SKIP_WITHOUT_GPU();
    const int32_t dim = 64, k = 5;
    const int64_t n = 3000, nq = 4;
    std::vector<float> xb((size_t)n * dim), xq = unit_vectors(nq, dim, 9);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> tiny(-2e-5f, 2e-5f);
    for (int64_t i = 0; i < n; i++)
        for (int32_t d = 0; d < dim; d++)
            xb[(size_t)i * dim + d] = 0.125f + tiny(rng);
    for (auto &x : xq)
        x = std::fabs(x);
    dre_gpu_search *gs = nullptr;
    ASSERT_EQ(DRE_OK, dre_gpu_search_open_fp16(xb.data(), n, dim, &gs)) << dre_last_error();
    knn gpu{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
    ASSERT_EQ(DRE_OK, dre_gpu_search_run(gs, xq.data(), nq, k, gpu.scores.data(), gpu.ids.data()))
        << dre_last_error();
    EXPECT_EQ(dre_gpu_search_widened(gs), nq) << "every query was in doubt";
    dre_gpu_search_close(gs);
    const knn ref = faiss_flat(xb, n, dim, xq, nq, k);
    const int64_t agree = compare(gpu, ref, xb, xq, n, nq, dim, k, 1e-6, 1e-6);
    EXPECT_EQ(nq * k, agree);
}

// A corpus with crowds of near-duplicates, as real ones have (a paper in several versions,
// boilerplate abstracts): each query's best matches are a crowd larger than the candidates an
// fp16 search re-scores, so the queries near a crowd are searched again on the GPU, the
// others not; every answer is FAISS's.
TEST(GpuSearch, Fp16NearDuplicateCrowdsAnswerAsFaiss) {
    SKIP_WITHOUT_GPU();
    const int32_t dim = 96, k = 10;
    const int64_t n = emulated() ? 6000 : 200000, crowds = 8, crowd = 200, nq = 24;
    std::vector<float> xb = unit_vectors(n, dim, 21);
    const std::vector<float> centres = unit_vectors(crowds, dim, 22);
    std::mt19937 rng(23);
    std::uniform_real_distribution<float> tiny(-3e-5f, 3e-5f);
    for (int64_t c = 0; c < crowds; c++)
        for (int64_t j = 0; j < crowd; j++) {
            const int64_t row = (c * 7919 + j * 13) % n; // spread over the chunks
            for (int32_t d = 0; d < dim; d++)
                xb[(size_t)row * dim + d] = centres[(size_t)c * dim + d] + tiny(rng);
        }
    // half the queries near a crowd's centre, half anywhere
    std::vector<float> xq = unit_vectors(nq, dim, 24);
    for (int64_t i = 0; i < nq; i += 2)
        for (int32_t d = 0; d < dim; d++)
            xq[(size_t)i * dim + d] = centres[(size_t)(i / 2 % crowds) * dim + d] +
                                      0.05f * xq[(size_t)i * dim + d];
    dre_gpu_search *gs = nullptr;
    ASSERT_EQ(DRE_OK, dre_gpu_search_open_fp16(xb.data(), n, dim, &gs)) << dre_last_error();
    knn gpu{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
    ASSERT_EQ(DRE_OK, dre_gpu_search_run(gs, xq.data(), nq, k, gpu.scores.data(), gpu.ids.data()))
        << dre_last_error();
    const int64_t widened = dre_gpu_search_widened(gs);
    dre_gpu_search_close(gs);
    std::printf("  %lld of %lld queries searched again\n", (long long)widened, (long long)nq);
    EXPECT_GE(widened, nq / 2) << "the queries near a crowd";
    EXPECT_LT(widened, nq) << "not the others";
    // FAISS a query at a time: its sums in order, as the re-scoring sums (from 20 queries on
    // it calls BLAS, whose different order may swap scores one rounding apart)
    knn ref{std::vector<float>((size_t)nq * k), std::vector<int64_t>((size_t)nq * k)};
    for (int64_t i = 0; i < nq; i++) {
        const std::vector<float> one(xq.begin() + i * dim, xq.begin() + (i + 1) * dim);
        const knn r = faiss_flat(xb, n, dim, one, 1, k);
        std::copy(r.scores.begin(), r.scores.end(), ref.scores.begin() + i * k);
        std::copy(r.ids.begin(), r.ids.end(), ref.ids.begin() + i * k);
    }
    EXPECT_EQ(nq * k, compare(gpu, ref, xb, xq, n, nq, dim, k, 1e-6, 1e-6));
    for (int64_t i = 0; i < nq * k; i++)
        EXPECT_EQ(gpu.scores[i], ref.scores[i]) << "query " << i / k << " rank " << i % k;
}

TEST(GpuSearch, RejectsBadArguments) {
    SKIP_WITHOUT_GPU();
    const std::vector<float> xb = unit_vectors(100, 8, 1);
    dre_gpu_search *gs = nullptr;
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_gpu_search_open(xb.data(), 0, 8, &gs));
    ASSERT_EQ(DRE_OK, dre_gpu_search_open(xb.data(), 100, 8, &gs)) << dre_last_error();
    std::vector<float> scores(2000);
    std::vector<int64_t> ids(2000);
    EXPECT_EQ(DRE_ERR_INVALID_ARG,
              dre_gpu_search_run(gs, xb.data(), 1, 0, scores.data(), ids.data()));
    EXPECT_EQ(DRE_ERR_INVALID_ARG,
              dre_gpu_search_run(gs, xb.data(), 1, 1025, scores.data(), ids.data()));
    EXPECT_EQ(DRE_OK, dre_gpu_search_run(gs, xb.data(), 0, 5, scores.data(), ids.data()));
    dre_gpu_search_close(gs);
}

} // namespace
