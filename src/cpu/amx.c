/* cpu/amx.c — bf16 products on AMX tiles (see cpu/amx.h): the mode, the tile state's
 * permission and configuration, the kernel on hardware, and the panel driver with gemm's
 * epilogues. */
#include "cpu/amx.h"

#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/tile.h"
#include "cpu/vmath.h"

#define DRE_AMX __attribute__((target("amx-tile,amx-bf16")))

/* Linux's arch_prctl codes for the tile data state (asm/prctl.h; absent from older headers) */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static pthread_once_t once = PTHREAD_ONCE_INIT;
static cpu_amx_mode mode = CPU_AMX_OFF, hardware_mode = CPU_AMX_OFF;
static char why_text[160];

/* CPUID leaf 7: AMX-BF16 (edx bit 22), AMX-TILE (24); the OS enables the tile state in
 * XCR0 (bits 17 and 18) when it supports it */
static int cpu_has_amx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((lo >> 17) & 3) == 3;
}

static void decide(void) {
    const char *env = getenv("DRE_CPU_AMX");
    if (cpu_has_amx()) {
        if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0) {
            hardware_mode = CPU_AMX_HARDWARE;
            snprintf(why_text, sizeof why_text, "AMX-BF16 tiles (TDPBF16PS)");
        } else {
            snprintf(why_text, sizeof why_text,
                     "AMX present, but Linux refused the tile state (arch_prctl: %s)",
                     strerror(errno));
        }
    } else {
        snprintf(why_text, sizeof why_text, "no AMX on this CPU");
    }
    mode = hardware_mode;
    if (!env || !*env) return;
    if (strcmp(env, "off") == 0) {
        mode = CPU_AMX_OFF;
        snprintf(why_text, sizeof why_text, "AMX off (DRE_CPU_AMX=off)");
    } else if (strcmp(env, "emulate") == 0 && dre_cpu_bf16_supported()) {
        mode = CPU_AMX_EMULATED;
        snprintf(why_text, sizeof why_text,
                 "AMX tiles emulated in C (DRE_CPU_AMX=emulate: for tests, slow)");
    } else {
        /* said, not fatal: the products run as they would without it */
        const size_t used = strlen(why_text);
        snprintf(why_text + used, sizeof why_text - used, "; DRE_CPU_AMX=%.24s ignored (%s)", env,
                 strcmp(env, "emulate") == 0 ? "the model needs AVX-512 BF16"
                                             : "it takes off or emulate");
    }
}

cpu_amx_mode dre_cpu_amx_mode(const char **why) {
    pthread_once(&once, decide);
    if (why) *why = why_text;
    return mode;
}

cpu_amx_mode dre_cpu_amx_set_mode(cpu_amx_mode want) {
    pthread_once(&once, decide);
    if (want == CPU_AMX_OFF || (want == CPU_AMX_EMULATED && dre_cpu_bf16_supported()) ||
        want == hardware_mode)
        mode = want;
    return mode;
}

/* palette 1, tiles 0-7 each 16 rows of 64 bytes. A static object, not one filled on the
 * stack: GCC's _tile_loadconfig tells the compiler it reads 8 bytes of the configuration, so
 * the stores to the rest of a local one were dropped as dead (seen in the object code). */
typedef struct __attribute__((aligned(64))) tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static const tile_config config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

const void *dre_cpu_amx_tile_config(void) { return &config; }

static DRE_AMX void configure(void) { _tile_loadconfig(&config); }

static DRE_AMX void release(void) { _tile_release(); }

void dre_cpu_amx_begin(void) {
    if (dre_cpu_amx_mode(NULL) == CPU_AMX_HARDWARE) configure();
}

void dre_cpu_amx_end(void) {
    if (dre_cpu_amx_mode(NULL) == CPU_AMX_HARDWARE) release();
}

#define AMX_BLOCK dre_cpu_amx_block_hw
#define AMX_BLOCK_OF block_hw
#define AMX_TARGET DRE_AMX
#define AMX_ZERO(t) _tile_zero(t)
#define AMX_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define AMX_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define AMX_STORE(t, base, stride) _tile_stored(t, base, stride)
#include "cpu/amx_kernel.h"

/* rows r < rows of the 32 x 32 sums to c, through the AVX-512 kernels' own epilogue
 * (cpu/tile.h), 16 rows at a time */
static DRE_AVX512 void store_sums(int32_t rows, const float *sums, float *c, int32_t ldc,
                                  int32_t ncols, const float *bias, cpu_epilogue epi) {
    const __mmask16 m0 = vtail_mask(ncols), m1 = vtail_mask(ncols - 16);
    for (int32_t r0 = 0; r0 < rows; r0 += 16) {
        const int n = rows - r0 < 16 ? rows - r0 : 16;
        __m512 s0[16], s1[16];
        for (int r = 0; r < n; r++) {
            s0[r] = _mm512_load_ps(sums + (size_t)(r0 + r) * CPU_PANEL);
            s1[r] = _mm512_load_ps(sums + (size_t)(r0 + r) * CPU_PANEL + 16);
        }
        cpu_tile_store(n, s0, s1, c + (size_t)r0 * ldc, ldc, m0, m1, bias, epi);
    }
}

void dre_cpu_amx_panel(int32_t rows, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                       float *c, int32_t ldc, int32_t ncols, const float *bias, cpu_epilogue epi) {
    const cpu_amx_block_fn block =
        dre_cpu_amx_mode(NULL) == CPU_AMX_HARDWARE ? dre_cpu_amx_block_hw : dre_cpu_amx_block_emu;
    float sums[32 * CPU_PANEL] __attribute__((aligned(64)));
    for (int32_t r = 0; r < rows; r += 32) {
        const int32_t here = rows - r < 32 ? rows - r : 32;
        block(here > 16, a_words, a + (size_t)r * a_words, panel, sums);
        store_sums(here, sums, c + (size_t)r * ldc, ldc, ncols, bias, epi);
    }
}
