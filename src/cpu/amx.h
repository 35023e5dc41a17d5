/* cpu/amx.h — bf16 products on Intel AMX tiles (Sapphire Rapids and later), for
 * --precision bf16 and int8 (whose weights are widened to bf16 a panel at a time first).
 *
 * A tile register holds 16 rows of 64 bytes; TDPBF16PS multiplies a 16 x 32 bf16 tile of A
 * (16 rows of 16 pairs) by a 32 x 16 tile of B stored as 16 rows of 16 pairs — exactly 16
 * rows of a bf16 panel (cpu/gemm_bf16.c: [k/2][32] words, read 16 columns at a time with a
 * 128-byte stride) — into 16 x 16 fp32 sums. So weights packed for AVX-512 BF16 are already
 * in the tile layout; panels and A's rows are padded with zero pairs to a multiple of 16
 * (dre_cpu_bf16_row_words). The kernel keeps four sum tiles (32 rows x 32 columns): per 16
 * k-pairs, two A tiles, two B tiles, four TDPBF16PS. The sums go through a 32 x 32 buffer to
 * gemm's epilogues (bias, bias + GELU), in fp32.
 *
 * The mode is chosen once: AMX where CPUID says AMX-TILE and AMX-BF16 and Linux grants the
 * process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), unless DRE_CPU_AMX=off.
 * DRE_CPU_AMX=emulate runs the same kernel on a C model of the tiles (cpu/amx_emu.c: the
 * instructions' documented arithmetic), so the AMX path's layout, padding and driver are
 * tested on CPUs without AMX. */
#ifndef DRE_CPU_AMX_H
#define DRE_CPU_AMX_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CPU_AMX_OFF = 0, CPU_AMX_HARDWARE, CPU_AMX_EMULATED } cpu_amx_mode;

/* the mode bf16 and int8 products take, decided on the first call (see above); *why, when
 * not NULL, says why in words */
cpu_amx_mode dre_cpu_amx_mode(const char **why);
/* tests: force a mode (CPU_AMX_HARDWARE only where the CPU has it); returns the mode now in
 * force */
cpu_amx_mode dre_cpu_amx_set_mode(cpu_amx_mode mode);

/* a thread's products between begin and end: begin loads the tile configuration (every tile
 * 16 rows x 64 bytes), end releases the tile state; both nothing when emulating */
void dre_cpu_amx_begin(void);
void dre_cpu_amx_end(void);
/* the 64 bytes begin's LDTILECFG loads (for tests) */
const void *dre_cpu_amx_tile_config(void);

/* c[r][0..ncols) = epi(sum over j < k of a[r][j] * panel[j][col] + bias[col]) for r < rows,
 * ncols <= 32: a is rows of bf16 pairs, a_words words apart (a multiple of 16; pairs past
 * k zero), readable for rows rounded up to 16; panel is [a_words][32] words, zero past k */
void dre_cpu_amx_panel(int32_t rows, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                       float *c, int32_t ldc, int32_t ncols, const float *bias, cpu_epilogue epi);

/* The tile kernel (cpu/amx_kernel.h) on hardware and on the model: the sums of 16 rows (two
 * = 0) or 32 (two = 1) of A by one panel, stored to sums [32][32] */
typedef void (*cpu_amx_block_fn)(int two, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                                 float *sums);
void dre_cpu_amx_block_hw(int two, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                          float *sums);
void dre_cpu_amx_block_emu(int two, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                           float *sums);

#ifdef __cplusplus
}
#endif
#endif
