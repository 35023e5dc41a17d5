// gpu_test_util.h — shared by the GPU tests: the skip-without-GPU helper, a small device
// buffer, fp16 rounding on the host, random data and an element-wise closeness check.
#ifndef DRE_GPU_TEST_UTIL_H
#define DRE_GPU_TEST_UTIL_H

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

namespace gpu_test {

// True when the CUDA runtime finds a device (false with no driver, too).
inline bool gpu_available() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return n > 0;
}

// True in the emu_* test binaries, where the "GPU" is the CPU emulation of CUDA in
// tests/emu: there the largest cases are cut down to keep CI fast; the GPU machine runs
// them whole.
constexpr bool emulated() {
#ifdef DRE_CUDA_EMU
    return true;
#else
    return false;
#endif
}

// True under AddressSanitizer (-DDRE_SANITIZE=ON), where the emulated kernels run several
// times slower still: the emulated cases are thinned further there.
constexpr bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
    return true;
#else
    return false;
#endif
}

// Under the emulation, every stride-th case of a large set runs: the given stride, three
// times it under ASan. On a GPU every case runs (stride 1).
constexpr size_t emulation_stride(size_t stride) {
    return !emulated() ? 1 : sanitized() ? 3 * stride : stride;
}

// The source folder: $DRE_SOURCE_DIR where set (the GPU machine runs binaries built
// elsewhere, in a copy of the tree at another path), else the one the build was made from.
inline std::string source_dir() {
    const char *env = std::getenv("DRE_SOURCE_DIR");
    return env && env[0] ? env : DRE_SOURCE_DIR;
}

// The build folder for binaries and scratch files: $DRE_BINARY_DIR where set (on the GPU
// machine gpu_proof.py points it at the pack's bin/, which holds dre; build/ is not there),
// else the one the build was made in.
inline std::string binary_dir() {
    const char *env = std::getenv("DRE_BINARY_DIR");
    return env && env[0] ? env : DRE_BINARY_DIR;
}

} // namespace gpu_test

// First line of every GPU test.
#define SKIP_WITHOUT_GPU()                                                                         \
    do {                                                                                           \
        if (!gpu_test::gpu_available()) GTEST_SKIP() << "no CUDA device: GPU test skipped";        \
    } while (0)

#define ASSERT_CUDA(call)                                                                          \
    do {                                                                                           \
        const cudaError_t cuda_err_ = (call);                                                      \
        ASSERT_EQ(cudaSuccess, cuda_err_) << #call << ": " << cudaGetErrorString(cuda_err_);       \
    } while (0)

namespace gpu_test {

// A device array of n T, freed with the object; copies in and out are synchronous.
template <typename T> class device_buffer {
  public:
    explicit device_buffer(size_t n) : n_(n) {
        if (cudaMalloc(reinterpret_cast<void **>(&ptr_), std::max<size_t>(n, 1) * sizeof(T)) !=
            cudaSuccess)
            ptr_ = nullptr;
    }
    explicit device_buffer(const std::vector<T> &host) : device_buffer(host.size()) {
        upload(host);
    }
    ~device_buffer() { cudaFree(ptr_); }
    device_buffer(const device_buffer &) = delete;
    device_buffer &operator=(const device_buffer &) = delete;

    T *get() const { return ptr_; }
    size_t size() const { return n_; }
    void upload(const std::vector<T> &host) {
        if (ptr_ && !host.empty())
            cudaMemcpy(ptr_, host.data(), std::min(host.size(), n_) * sizeof(T),
                       cudaMemcpyHostToDevice);
    }
    std::vector<T> download() const {
        std::vector<T> host(n_);
        if (ptr_ && n_) cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
        return host;
    }

  private:
    T *ptr_ = nullptr;
    size_t n_;
};

inline std::vector<fp16_t> to_fp16(const std::vector<float> &v) {
    std::vector<fp16_t> h(v.size());
    for (size_t i = 0; i < v.size(); i++)
        h[i] = float_to_fp16(v[i]);
    return h;
}

inline std::vector<float> to_float(const std::vector<fp16_t> &h) {
    std::vector<float> v(h.size());
    for (size_t i = 0; i < h.size(); i++)
        v[i] = fp16_to_float(h[i]);
    return v;
}

// The values the GPU will actually see once stored as fp16.
inline std::vector<float> round_fp16(const std::vector<float> &v) { return to_float(to_fp16(v)); }

inline std::vector<float> uniform(size_t n, float lo, float hi, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v)
        x = dist(rng);
    return v;
}

// cu_seqlens of a packed batch with these lengths.
inline std::vector<int32_t> cu_seqlens_of(const std::vector<int32_t> &lengths) {
    std::vector<int32_t> cu(lengths.size() + 1, 0);
    for (size_t i = 0; i < lengths.size(); i++)
        cu[i + 1] = cu[i] + lengths[i];
    return cu;
}

inline std::string lengths_str(const std::vector<int32_t> &lengths) {
    std::string s;
    for (size_t i = 0; i < lengths.size() && i < 12; i++)
        s += (i ? "," : "") + std::to_string(lengths[i]);
    if (lengths.size() > 12) s += ",... (" + std::to_string(lengths.size()) + " sequences)";
    return s;
}

// |got - want| <= atol + rtol |want| everywhere; prints the largest error either way.
inline ::testing::AssertionResult all_close(const std::vector<float> &got,
                                            const std::vector<float> &want, float atol, float rtol,
                                            const std::string &what) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure()
               << what << ": sizes differ, " << got.size() << " vs " << want.size();
    double max_err = 0.0;
    size_t n_bad = 0, first_bad = 0;
    for (size_t i = 0; i < got.size(); i++) {
        const double err = std::fabs((double)got[i] - (double)want[i]);
        const bool ok = err <= atol + rtol * std::fabs((double)want[i]);
        if (!(err <= max_err) || std::isnan(err)) max_err = err;
        if (!ok) {
            if (!n_bad) first_bad = i;
            n_bad++;
        }
    }
    std::printf("  %s: max |gpu - cpu| = %.3g over %zu values\n", what.c_str(), max_err,
                got.size());
    if (!n_bad) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << what << ": " << n_bad << " of " << got.size() << " values off (atol " << atol
           << ", rtol " << rtol << "); first at " << first_bad << ": gpu " << got[first_bad]
           << " cpu " << want[first_bad] << "; max error " << max_err;
}

} // namespace gpu_test

#endif
