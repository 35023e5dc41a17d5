// kernels_mma_test.cc — the fragment layouts of kernels/mma.cuh, lane by lane: an
// m16n8k16 product with every lane's registers placed by the PTX manual's formulas must
// equal a plain matrix product in every element, and ldmatrix (.x1, .x2, .x4, with and
// without .trans) must hand each lane exactly the elements the manual says. On a GPU this
// holds the layouts the attention kernel relies on against the hardware; on the CUDA
// emulation, the emulation against the manual.
#include "gpu_test_util.h"
#include "kernels_mma_probe.h"

namespace {

using namespace gpu_test;

TEST(KernelsMma, M16n8k16EqualsAPlainProduct) {
    SKIP_WITHOUT_GPU();
    for (uint32_t seed : {1u, 2u, 3u}) {
        // distinct small values: a misplaced element shows in the sums
        const std::vector<float> a = round_fp16(uniform(16 * 16, -2.0f, 2.0f, seed));
        const std::vector<float> b = round_fp16(uniform(16 * 8, -2.0f, 2.0f, seed + 10));
        const std::vector<float> c = uniform(16 * 8, -1.0f, 1.0f, seed + 20);
        device_buffer<fp16_t> d_a(to_fp16(a)), d_b(to_fp16(b));
        device_buffer<float> d_c(c), d_d(16 * 8);
        ASSERT_CUDA(mma_probe_launch(d_a.get(), d_b.get(), d_c.get(), d_d.get(), nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        const std::vector<float> d = d_d.download();
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 8; n++) {
                double want = c[r * 8 + n];
                for (int k = 0; k < 16; k++)
                    want += (double)a[r * 16 + k] * b[k * 8 + n];
                // fp16 products are exact in fp32; only the fp32 sums round
                ASSERT_NEAR(want, d[r * 8 + n], 1e-5) << "row " << r << " column " << n;
            }
    }
    // one element at a time: a single 1 in A and in B lands in exactly one D element
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 16; k += 5) {
            std::vector<float> a(256, 0.0f), b(128, 0.0f), c(128, 0.0f);
            a[i * 16 + k] = 1.0f;
            b[k * 8 + (i + k) % 8] = 3.0f;
            device_buffer<fp16_t> d_a(to_fp16(a)), d_b(to_fp16(b));
            device_buffer<float> d_c(c), d_d(128);
            ASSERT_CUDA(mma_probe_launch(d_a.get(), d_b.get(), d_c.get(), d_d.get(), nullptr));
            ASSERT_CUDA(cudaDeviceSynchronize());
            const std::vector<float> d = d_d.download();
            for (int e = 0; e < 128; e++)
                ASSERT_EQ(e == i * 8 + (i + k) % 8 ? 3.0f : 0.0f, d[e])
                    << "A(" << i << "," << k << ") element " << e;
        }
}

TEST(KernelsMma, LdmatrixGivesEachLaneItsElements) {
    SKIP_WITHOUT_GPU();
    // element (row, col) of the 32 x 8 source is the half whose value is row * 8 + col
    std::vector<float> src(32 * 8);
    for (int i = 0; i < 256; i++)
        src[i] = (float)i;
    device_buffer<fp16_t> d_src(to_fp16(src));
    for (int n : {1, 2, 4})
        for (int trans : {0, 1}) {
            SCOPED_TRACE(".x" + std::to_string(n) + (trans ? ".trans" : ""));
            device_buffer<uint32_t> d_out(32 * 4);
            ASSERT_CUDA(ldmatrix_probe_launch(d_src.get(), n, trans, d_out.get(), nullptr));
            ASSERT_CUDA(cudaDeviceSynchronize());
            const std::vector<uint32_t> out = d_out.download();
            for (int lane = 0; lane < 32; lane++)
                for (int m = 0; m < n; m++)
                    for (int j = 0; j < 2; j++) {
                        // the manual: row lane / 4, column 2 (lane % 4) + j of matrix m, or the
                        // transpose's (row 2 (lane % 4) + j, column lane / 4)
                        const int row = trans ? 2 * (lane % 4) + j : lane / 4;
                        const int col = trans ? lane / 4 : 2 * (lane % 4) + j;
                        const fp16_t got = (fp16_t)(out[lane * 4 + m] >> (16 * j));
                        ASSERT_EQ((float)((8 * m + row) * 8 + col), fp16_to_float(got))
                            << "lane " << lane << " matrix " << m << " half " << j;
                    }
        }
}

TEST(KernelsMma, RejectsBadArguments) {
    float *f = reinterpret_cast<float *>(256);
    fp16_t *h = reinterpret_cast<fp16_t *>(256);
    uint32_t *u = reinterpret_cast<uint32_t *>(256);
    EXPECT_EQ(cudaErrorInvalidValue, mma_probe_launch(nullptr, h, f, f, nullptr));
    EXPECT_EQ(cudaErrorInvalidValue, ldmatrix_probe_launch(h, 3, 0, u, nullptr));
}

} // namespace
