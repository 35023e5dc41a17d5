// kernels_rescore_test.cc — dre_rescore_launch and dre_masked_exact_launch against their CPU
// twins: the fp32 dot product summed in order (each product and sum rounded once, as FAISS's
// Flat index sums one for a few queries), bit for bit; the floor (lowest fp16 score of a real
// candidate, -inf with padding); the mask (exact at or above the threshold, -inf below). The
// fp32 vectors are host memory the GPU reads mapped (cudaHostRegister), as gpu/search.c
// gives them; dimensions that are and are not multiples of the warp's 32.
#include "gpu_test_util.h"

#include <cstring>

namespace {

using namespace gpu_test;

float twin_dot(const float *q, const float *x, int32_t dim) {
    float sum = 0.0f;
    for (int32_t d = 0; d < dim; d++) {
        const float product = q[d] * x[d];
        sum += product;
    }
    return sum;
}

// Page-locked and mapped for the kernels, as the search maps the index's vectors.
struct mapped_vectors {
    std::vector<float> host;
    const float *device = nullptr;
    explicit mapped_vectors(std::vector<float> v) : host(std::move(v)) {
        if (cudaHostRegister(host.data(), host.size() * sizeof(float), cudaHostRegisterMapped) !=
            cudaSuccess)
            return;
        void *d = nullptr;
        if (cudaHostGetDevicePointer(&d, host.data(), 0) == cudaSuccess) device = (float *)d;
    }
    ~mapped_vectors() {
        if (device) cudaHostUnregister(host.data());
    }
};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(KernelsRescore, CandidatesScoredInFaissOrderWithTheirFloor) {
    SKIP_WITHOUT_GPU();
    for (const int32_t dim : {16, 45, 384}) {
        SCOPED_TRACE("dim " + std::to_string(dim));
        const int64_t n = 500;
        const int32_t nq = 9, m = 37, stride = 40;
        mapped_vectors x(uniform((size_t)n * dim, -1, 1, 3));
        ASSERT_NE(x.device, nullptr) << "cudaHostRegister";
        const std::vector<float> q = uniform((size_t)nq * dim, -1, 1, 4);
        std::vector<int64_t> ids((size_t)nq * stride, -7);
        std::vector<float> s16((size_t)nq * stride, 1e9f);
        std::mt19937 rng(5);
        for (int32_t i = 0; i < nq; i++)
            for (int32_t j = 0; j < m; j++) {
                // query 3 has padding (fewer vectors than candidates); the others do not
                ids[(size_t)i * stride + j] = i == 3 && j >= 30 ? -1 : (int64_t)(rng() % n);
                s16[(size_t)i * stride + j] = (float)(rng() % 1000) / 1000.0f - 0.5f;
            }
        device_buffer<float> dq(q), ds16(s16), out((size_t)nq * stride), floor16(nq);
        device_buffer<int64_t> dids(ids);
        ASSERT_CUDA(dre_rescore_launch(dq.get(), x.device, n, dim, dids.get(), ds16.get(), stride,
                                       m, nq, out.get(), floor16.get(), nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        const std::vector<float> got = out.download(), got_floor = floor16.download();
        for (int32_t i = 0; i < nq; i++) {
            float lowest = INFINITY;
            bool padding = false;
            for (int32_t j = 0; j < m; j++) {
                const int64_t id = ids[(size_t)i * stride + j];
                const float want =
                    id < 0 ? -INFINITY
                           : twin_dot(&q[(size_t)i * dim], &x.host[(size_t)id * dim], dim);
                if (id < 0)
                    padding = true;
                else
                    lowest = std::min(lowest, s16[(size_t)i * stride + j]);
                EXPECT_TRUE(same_bits(got[(size_t)i * stride + j], want))
                    << "query " << i << " candidate " << j << ": " << got[(size_t)i * stride + j]
                    << " vs " << want;
            }
            EXPECT_TRUE(same_bits(got_floor[i], padding ? -INFINITY : lowest)) << "query " << i;
        }
    }
}

TEST(KernelsRescore, MaskedChunkIsExactAtOrAboveTheThreshold) {
    SKIP_WITHOUT_GPU();
    const int32_t dim = 72, nq = 5, n_cols = 300, stride = 320;
    const int64_t n = 1000, offset = 650; // the chunk is vectors 650 .. 949
    mapped_vectors x(uniform((size_t)n * dim, -1, 1, 8));
    ASSERT_NE(x.device, nullptr);
    const std::vector<float> q = uniform((size_t)nq * dim, -1, 1, 9);
    std::vector<float> scores = uniform((size_t)nq * stride, -1, 1, 10);
    // thresholds: everything, nothing, about a half, exactly one of the scores, NaN-free -inf
    std::vector<float> t = {-INFINITY, 2.0f, 0.0f, scores[(size_t)3 * stride + 17], -0.99f};
    device_buffer<float> ds(scores), dt(t), dq(q);
    ASSERT_CUDA(dre_masked_exact_launch(ds.get(), stride, n_cols, offset, dt.get(), dq.get(),
                                        x.device, dim, nq, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<float> got = ds.download();
    for (int32_t i = 0; i < nq; i++) {
        int exact = 0;
        for (int32_t j = 0; j < stride; j++) {
            const float before = scores[(size_t)i * stride + j];
            float want = before; // past n_cols: untouched
            if (j < n_cols) {
                want = before >= t[i]
                           ? twin_dot(&q[(size_t)i * dim], &x.host[(size_t)(offset + j) * dim], dim)
                           : -INFINITY;
                exact += before >= t[i];
            }
            EXPECT_TRUE(same_bits(got[(size_t)i * stride + j], want))
                << "query " << i << " column " << j;
        }
        if (i == 0) EXPECT_EQ(exact, n_cols);
        if (i == 1) EXPECT_EQ(exact, 0);
        if (i == 3) EXPECT_GE(exact, 1) << "a score equal to the threshold is kept";
    }
}

TEST(KernelsRescore, RejectsBadArguments) {
    SKIP_WITHOUT_GPU();
    device_buffer<float> f(64);
    device_buffer<int64_t> ids(64);
    EXPECT_EQ(cudaErrorInvalidValue, dre_rescore_launch(f.get(), f.get(), 8, 8, ids.get(),
                                                        f.get(), 4, 5, 1, f.get(), f.get(),
                                                        nullptr)); // stride < m
    EXPECT_EQ(cudaErrorInvalidValue, dre_masked_exact_launch(f.get(), 8, 8, 0, f.get(), f.get(),
                                                             f.get(), 8, 70000, nullptr));
    EXPECT_EQ(cudaSuccess, dre_rescore_launch(nullptr, nullptr, 0, 8, nullptr, nullptr, 4, 4, 0,
                                              f.get(), f.get(), nullptr));
    (void)cudaGetLastError();
}

} // namespace
