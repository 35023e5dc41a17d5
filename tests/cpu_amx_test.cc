// cpu_amx_test.cc — the AMX tile kernel (src/cpu/amx.c, cpu/amx_kernel.h) and its C model
// (cpu/amx_emu.c). The model against TDPBF16PS's arithmetic as Intel's intrinsics guide
// writes it (each multiply-add rounded to nearest even in order, low half of a pair then
// high; bf16 denormal inputs as zero; denormal sums flushed), and the kernel on the model against
// sums in double over blocks of 16 and 32 rows, odd depths and every panel column. The products,
// attention and the encoder run on the model (and on the hardware where the CPU has AMX) in
// cpu_gemm_test and encoder_cpu_test; here, the hardware kernel against the model, skipped,
// saying so, on CPUs without AMX.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/amx.h"
#include "cpu/gemm.h"
#include "cpu_amx_modes.h"

namespace {

uint32_t pair_of(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

float float_of_bits(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

// A block's inputs: 32 rows of A and a panel, `words` pairs deep, zero past `pairs`
struct block_inputs {
    int32_t words;
    std::vector<uint32_t> a, panel;
    std::vector<float> sums = std::vector<float>(32 * 32, NAN);
    explicit block_inputs(int32_t depth_words) : words(depth_words) {
        a.assign((size_t)32 * words, 0);
        panel.assign((size_t)words * 32, 0);
    }
    uint32_t &at_a(int r, int j) { return a[(size_t)r * words + j]; }
    uint32_t &at_b(int j, int col) { return panel[(size_t)j * 32 + col]; }
    float run(int two, cpu_amx_block_fn block = dre_cpu_amx_block_emu) {
        block(two, words, a.data(), panel.data(), sums.data());
        return sums[0];
    }
};

// 1 + 2^-24 is halfway between 1 and the next float: to even, 1. One multiply-add at a time,
// in order, 1 + 2^-24 + 2^-24 stays 1, where a wider sum would give 1 + 2^-23; and within a
// pair the low half comes first: 2^-24 + 2^-24 (exact) + 1 gives 1 + 2^-23, where the high
// half first would give 1.
TEST(CpuAmx, ModelRoundsEachMultiplyAddInOrder) {
    const uint16_t one = 0x3f80, tiny = 0x3380; // 1 and 2^-24 as bf16
    block_inputs in(16);
    in.at_a(0, 0) = pair_of(one, one), in.at_b(0, 0) = pair_of(one, tiny);
    in.at_a(0, 1) = pair_of(one, 0), in.at_b(1, 0) = pair_of(tiny, 0);
    EXPECT_EQ(1.0f, in.run(0));
    block_inputs low_first(16);
    low_first.at_a(0, 0) = pair_of(one, 0), low_first.at_b(0, 0) = pair_of(tiny, 0);
    low_first.at_a(0, 1) = pair_of(one, one), low_first.at_b(1, 0) = pair_of(tiny, one);
    EXPECT_EQ(1.0f + 0x1p-23f, low_first.run(0));
}

TEST(CpuAmx, ModelTakesDenormalInputsAsZeroAndFlushesDenormalSums) {
    block_inputs in(16);
    in.at_a(0, 0) = pair_of(0x0001, 0); // the smallest bf16 denormal
    in.at_b(0, 0) = pair_of(0x7f00, 0); // 2^127: the product would be 2^-6, not zero
    EXPECT_EQ(0.0f, in.run(0));
    in.at_a(0, 0) = pair_of(0x1c80, 0); // 2^-70: normal
    in.at_b(0, 0) = pair_of(0x1c80, 0); // 2^-70 * 2^-70 = 2^-140: a denormal sum
    EXPECT_EQ(0u, bits_of(in.run(0)) & 0x7fffffffu);
    in.at_b(0, 0) = pair_of(0x3f80, 0); // 2^-70 * 1: normal, kept
    EXPECT_EQ(0x1p-70f, in.run(0));
}

// The kernel's block on the model: every row of 16 and 32 and every column of the panel
// against double sums of the same bf16 values (each product exact in fp32; the bound is
// fp32 accumulation's), at depths of one and several tiles, zero pairs past the last
void check_block(cpu_amx_block_fn block, const char *what, int32_t pairs, unsigned seed,
                 std::vector<float> *got = nullptr) {
    const int32_t words = (pairs + 15) / 16 * 16;
    block_inputs in(words);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int r = 0; r < 32; r++)
        for (int j = 0; j < pairs; j++)
            in.at_a(r, j) = pair_of(dre_bf16_of(dist(rng)), dre_bf16_of(dist(rng)));
    for (int j = 0; j < pairs; j++)
        for (int col = 0; col < 32; col++)
            in.at_b(j, col) = pair_of(dre_bf16_of(dist(rng)), dre_bf16_of(dist(rng)));
    auto lo = [](uint32_t w) { return (double)float_of_bits(w << 16); };
    auto hi = [](uint32_t w) { return (double)float_of_bits(w & 0xffff0000u); };
    for (int two : {0, 1}) {
        std::fill(in.sums.begin(), in.sums.end(), 12345.0f);
        in.run(two, block);
        for (int r = 0; r < 32; r++)
            for (int col = 0; col < 32; col++) {
                const float v = in.sums[(size_t)r * 32 + col];
                if (r >= 16 && !two) {
                    ASSERT_EQ(12345.0f, v) << what << ": 16 rows wrote row " << r;
                    continue;
                }
                double want = 0, mag = 0;
                for (int j = 0; j < pairs; j++) {
                    const double p = lo(in.at_a(r, j)) * lo(in.at_b(j, col)) +
                                     hi(in.at_a(r, j)) * hi(in.at_b(j, col));
                    want += p, mag += std::fabs(lo(in.at_a(r, j)) * lo(in.at_b(j, col))) +
                                      std::fabs(hi(in.at_a(r, j)) * hi(in.at_b(j, col)));
                }
                ASSERT_NEAR(v, want, 2 * pairs * 6e-8 * mag + 1e-30)
                    << what << ": row " << r << " column " << col << ", " << pairs << " pairs";
            }
    }
    if (got) *got = in.sums;
}

TEST(CpuAmx, ModelBlocksMatchDoubleSums) {
    unsigned seed = 900;
    for (int32_t pairs : {1, 7, 16, 17, 48, 192, 200})
        check_block(dre_cpu_amx_block_emu, "model", pairs, seed++);
}

// dre_cpu_amx_panel on the model: any row count (blocks of 32, a block of 16, rows past the
// last never stored), a partial panel, the epilogues, the output stride
TEST(CpuAmx, PanelsOfAnyRowCountOnTheModel) {
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    const amx_mode_scope scope(CPU_AMX_EMULATED);
    ASSERT_EQ(CPU_AMX_EMULATED, dre_cpu_amx_mode(nullptr));
    std::mt19937 rng(77);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int32_t k : {1, 31, 33, 384})
        for (int32_t rows : {1, 15, 16, 17, 33, 64}) {
            const int32_t ncols = 27, ldc = 40, words = dre_cpu_bf16_row_words(k);
            std::vector<float> a((size_t)rows * k), w((size_t)ncols * k), bias(ncols);
            for (float &x : a)
                x = dist(rng);
            for (float &x : w)
                x = dist(rng);
            for (float &x : bias)
                x = dist(rng);
            std::vector<uint32_t> packed((size_t)(rows + 15) / 16 * 16 * words);
            dre_cpu_bf16_pack_rows(a.data(), k, rows, k, packed.data());
            cpu_packed pw{};
            ASSERT_EQ(DRE_OK, dre_cpu_pack_bf16(w.data(), ncols, k, &pw));
            std::vector<float> c((size_t)(rows + 1) * ldc, 12345.0f);
            dre_cpu_amx_panel(rows, words, packed.data(), pw.pairs, c.data(), ldc, ncols,
                              bias.data(), CPU_EPI_BIAS);
            for (int32_t r = 0; r <= rows; r++)
                for (int32_t col = 0; col < ldc; col++) {
                    const float v = c[(size_t)r * ldc + col];
                    if (r == rows || col >= ncols) {
                        ASSERT_EQ(12345.0f, v) << "written outside: row " << r << " col " << col;
                        continue;
                    }
                    double want = bias[col], mag = std::fabs(bias[col]);
                    for (int32_t j = 0; j < k; j++) {
                        const double p =
                            (double)float_of_bits((uint32_t)dre_bf16_of(a[(size_t)r * k + j])
                                                  << 16) *
                            float_of_bits((uint32_t)dre_bf16_of(w[(size_t)col * k + j]) << 16);
                        want += p, mag += std::fabs(p);
                    }
                    ASSERT_NEAR(v, want, k * 6e-8 * mag + 1e-30)
                        << "k " << k << " rows " << rows << ": row " << r << " column " << col;
                }
            dre_cpu_pack_free(&pw);
        }
}

// What LDTILECFG loads, byte for byte as the instruction reads it: palette 1, start row 0,
// tiles 0-7 of 64 bytes (colsb, 16 bits each at byte 16) by 16 rows (a byte each at 48), the
// rest zero
TEST(CpuAmx, TileConfigurationIsEightTilesOf16RowsOf64Bytes) {
    const auto *cfg = static_cast<const uint8_t *>(dre_cpu_amx_tile_config());
    EXPECT_EQ(1, cfg[0]);
    for (int i = 1; i < 16; i++)
        EXPECT_EQ(0, cfg[i]) << "byte " << i;
    for (int t = 0; t < 16; t++) {
        const int colsb = cfg[16 + 2 * t] | cfg[16 + 2 * t + 1] << 8;
        EXPECT_EQ(t < 8 ? 64 : 0, colsb) << "tile " << t;
        EXPECT_EQ(t < 8 ? 16 : 0, cfg[48 + t]) << "tile " << t;
    }
}

TEST(CpuAmx, ModeIsSaidAndOnlyWhatTheCpuHasIsForced) {
    const char *why = nullptr;
    const cpu_amx_mode mode = dre_cpu_amx_mode(&why);
    ASSERT_NE(nullptr, why);
    EXPECT_GT(std::strlen(why), 5u);
    std::printf("AMX here: %s\n", why);
    const amx_mode_scope scope(mode);
    EXPECT_EQ(CPU_AMX_OFF, dre_cpu_amx_set_mode(CPU_AMX_OFF));
    const cpu_amx_mode hw = dre_cpu_amx_set_mode(CPU_AMX_HARDWARE);
    EXPECT_EQ(amx_hardware_present() ? CPU_AMX_HARDWARE : CPU_AMX_OFF, hw)
        << "hardware mode where the CPU has no AMX";
}

// On a CPU with AMX: the hardware's blocks against double sums as the model's are, and how
// many of their sums equal the model's bit for bit (printed: the documented order of
// rounding, which the model follows, is the hardware's to keep)
TEST(CpuAmx, HardwareBlocksMatchDoubleSumsAndTheModel) {
    if (!amx_hardware_present())
        GTEST_SKIP() << "this CPU has no AMX (AMX-TILE and AMX-BF16 with the tile state "
                        "granted): the hardware kernel runs on Intel Sapphire Rapids and later";
    const amx_mode_scope scope(CPU_AMX_HARDWARE);
    unsigned seed = 950;
    size_t same = 0, total = 0;
    for (int32_t pairs : {1, 17, 192, 200}) {
        std::vector<float> hw, model;
        dre_cpu_amx_begin();
        check_block(dre_cpu_amx_block_hw, "hardware", pairs, seed, &hw);
        dre_cpu_amx_end();
        check_block(dre_cpu_amx_block_emu, "model", pairs, seed++, &model);
        for (size_t i = 0; i < hw.size(); i++)
            same += bits_of(hw[i]) == bits_of(model[i]), total++;
    }
    std::printf("AMX hardware vs model: %zu of %zu sums bit-identical\n", same, total);
}

} // namespace
