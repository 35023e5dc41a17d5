/* cpu/amx_emu.c — a C model of the AMX tile instructions the kernel uses (TILEZERO,
 * TILELOADD, TILESTORED, TDPBF16PS), every tile configured as 16 rows x 64 bytes, and the
 * kernel of cpu/amx_kernel.h run on it (DRE_CPU_AMX=emulate; the tests). TDPBF16PS as Intel
 * documents it: for each row m of A and column n of B, for each k-pair in order,
 *   c[m][n] += a[m][k].lo * b[k][n].lo, then c[m][n] += a[m][k].hi * b[k][n].hi,
 * each an fp32 multiply-add rounded to nearest even (a product of two bf16 is exact in fp32),
 * bf16 denormal inputs taken as zero and denormal sums flushed to zero. */
#include <math.h>
#include <string.h>

#include "cpu/amx.h"

/* the eight tile registers of the thread running the model */
static _Thread_local uint32_t tiles[8][16][16];

static void tile_zero(int t) { memset(tiles[t], 0, sizeof tiles[t]); }

static void tile_load(int t, const void *base, size_t stride) {
    for (int r = 0; r < 16; r++)
        memcpy(tiles[t][r], (const char *)base + (size_t)r * stride, 64);
}

static void tile_store(int t, void *base, size_t stride) {
    for (int r = 0; r < 16; r++)
        memcpy((char *)base + (size_t)r * stride, tiles[t][r], 64);
}

/* one half of a pair as fp32, a denormal as zero (of its sign) */
static float bf16_in(uint32_t pair, int high) {
    uint32_t bits = (high ? pair >> 16 : pair & 0xffffu) << 16;
    if ((bits & 0x7f800000u) == 0) bits &= 0x80000000u;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* a denormal sum flushed to zero (of its sign); a macro, so the vectorised loop keeps it */
#define FLUSH(x) (fabsf(x) < 0x1p-126f ? copysignf(0.0f, (x)) : (x))

/* Compiled twice, for AVX-512F (16 columns a vector) and for any x86-64, the CPU choosing at
 * load time, so the model runs anywhere and fast where the products do; it reads and writes
 * its own fixed-size arrays only, so a sanitizer build leaves it unchecked (and vectorised). */
__attribute__((target_clones("avx512f", "default"),
               no_sanitize("address", "undefined"))) static void
tile_dpbf16ps(int c, int a, int b) {
    float av[16][32], bv[16][32], sum[16][16];
    for (int r = 0; r < 16; r++)
        for (int h = 0; h < 32; h++) {
            av[r][h] = bf16_in(tiles[a][r][h / 2], h % 2);
            bv[r][h] = bf16_in(tiles[b][r][h / 2], h % 2);
        }
    memcpy(sum, tiles[c], sizeof sum);
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 16; n++) {
                /* each product exact in fp32: multiply-add and add-of-product round alike */
                const float s = sum[m][n] + av[m][2 * k] * bv[k][2 * n];
                const float t = FLUSH(s) + av[m][2 * k + 1] * bv[k][2 * n + 1];
                sum[m][n] = FLUSH(t);
            }
    memcpy(tiles[c], sum, sizeof sum);
}

#define AMX_BLOCK dre_cpu_amx_block_emu
#define AMX_BLOCK_OF block_emu
#define AMX_TARGET
#define AMX_ZERO(t) tile_zero(t)
#define AMX_LOAD(t, base, stride) tile_load(t, base, stride)
#define AMX_DP(c, a, b) tile_dpbf16ps(c, a, b)
#define AMX_STORE(t, base, stride) tile_store(t, base, stride)
#include "cpu/amx_kernel.h"
