/* cpu/gemm.h — the CPU encoder's matrix products.
 *
 * Weights are packed once into panels of 32 output columns ([k][32] each, zero past n); an
 * AVX-512 micro-kernel keeps a tile of up to 14 rows x 32 columns in registers and applies
 * the bias, or bias + GELU, before the tile is stored. A's rows are packed 56 at a time, so
 * each panel read from memory serves 56 rows (a single tile, a query, is read in place).
 * Every output is one chain of fused multiply-adds over k in order, whatever the tiling and
 * thread count, so results never depend on either. Without AVX-512 (or with
 * DRE_CPU_GEMM=openblas in the environment) the products go to OpenBLAS and the plain
 * operators of cpu/ops.h instead. Packed as bf16 (cpu/gemm_bf16.c, --precision bf16), the
 * same driver runs a bf16 micro-kernel: inputs rounded to bf16, sums in fp32 (AMX tiles where
 * the CPU has them, cpu/amx.h). Packed as int8 (cpu/gemm_int8.c, --precision int8): int8
 * weights with a scale per group of a column, widened to bf16, A in bf16 as bf16's, sums in
 * fp32. */
#ifndef DRE_CPU_GEMM_H
#define DRE_CPU_GEMM_H

#include <stdint.h>

#include "cpu/workspace.h"
#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPU_PANEL 32     /* output columns a panel */
#define CPU_TILE_ROWS 14 /* rows a micro-kernel call */
#ifndef CPU_INT8_GROUP
#define CPU_INT8_GROUP 64 /* int8: k-values of a column sharing a scale (even) */
#endif

typedef enum { CPU_EPI_NONE = 0, CPU_EPI_BIAS, CPU_EPI_BIAS_GELU } cpu_epilogue;

/* w [n][k] (nn.Linear's [out][in]) for out = in @ w^T */
typedef struct cpu_packed {
    float *panels;   /* [n_panels][k][32], 64-byte aligned; NULL on the OpenBLAS path */
    uint32_t *pairs; /* or bf16 pairs: [n_panels][dre_cpu_bf16_row_words(k)][32] (gemm_bf16.c) */
    int8_t *codes;   /* or int8: [n_panels][ceil(k / 2)][32][2] (cpu/gemm_int8.c) */
    float *scales;   /* int8's: [n_panels][ceil(k / CPU_INT8_GROUP)][32][2], a group's scale
                      * twice a column (once for each code of a pair) */
    const float *w;  /* the weights as given (the OpenBLAS path reads them) */
    int32_t n, k, n_panels;
} cpu_packed;

/* 1 when the AVX-512 path runs: the CPU has AVX-512F and DRE_CPU_GEMM is not "openblas" */
int dre_cpu_gemm_vectorised(void);

/* Packs w (kept by reference: it must outlive the result) */
dre_status dre_cpu_pack(const float *w, int32_t n, int32_t k, cpu_packed *out);
/* Packs w as bf16 pairs, for CPUs where dre_cpu_bf16_supported() */
dre_status dre_cpu_pack_bf16(const float *w, int32_t n, int32_t k, cpu_packed *out);
/* 1 when the CPU has AVX-512 BF16 (VDPBF16PS) */
int dre_cpu_bf16_supported(void);
/* x rounded to the nearest bf16 (ties to even), its 16 bits */
uint16_t dre_bf16_of(float x);
/* Packs w as int8 codes with a scale per CPU_INT8_GROUP weights of a row of w (an output
 * column), for CPUs where dre_cpu_int8_supported() */
dre_status dre_cpu_pack_int8(const float *w, int32_t n, int32_t k, cpu_packed *out);
/* 1 when the CPU runs int8's products: AVX-512 BF16, as bf16's */
int dre_cpu_int8_supported(void);
/* One group of weights w[0..k) as int8 (dre_cpu_pack_int8 calls it on each group of each
 * column): returns scale = max |w| / 127 (0 for zeros) and codes[j] = w[j] / scale rounded to
 * nearest even, within [-127, 127] (all 0 for zeros) */
float dre_cpu_int8_quantize_row(const float *w, int32_t k, int8_t *codes);
void dre_cpu_pack_free(cpu_packed *p);

/* floats a thread of dre_cpu_gemm needs, for inner dimension k */
size_t dre_cpu_gemm_scratch_floats(int32_t k);

/* out[m][n] (row stride ldo) = epilogue(a[m][k] (row stride lda) @ w^T + bias); bias may be
 * NULL with CPU_EPI_NONE. Threads (OpenMP) over row blocks and panels; ws->floats_per_thread
 * >= dre_cpu_gemm_scratch_floats(w->k). */
void dre_cpu_gemm(const float *a, int32_t lda, int32_t m, const cpu_packed *w, const float *bias,
                  cpu_epilogue epi, float *out, int32_t ldo, const cpu_workspace *ws);

/* The pieces attention builds on (AVX-512 path only). Packs a [rows][cols] block of src
 * (row stride ld) as panels: transpose = 0 gives panels over cols ([rows][32] each, for
 * B = src), transpose = 1 panels over rows ([cols][32] each, for B = src^T). dst holds
 * ceil(panel dimension / 32) panels, zero-filled past the end. */
void dre_cpu_pack_block(const float *src, int32_t ld, int32_t rows, int32_t cols, int transpose,
                        float *dst);
/* c[r][0..ncols) = sum over j < k of a[r][j] * panel[j][col] (a's row stride lda >= 1),
 * r < rows <= CPU_TILE_ROWS, ncols <= 32; panel 64-byte aligned */
void dre_cpu_tile(int32_t rows, int32_t k, const float *a, int32_t lda, const float *panel,
                  float *c, int32_t ldc, int32_t ncols);

/* bf16's pieces. A's rows and the panels' depth in 32-bit words (bf16 pairs): k/2 rounded up
 * to a multiple of 16, the pairs past k zero */
int32_t dre_cpu_bf16_row_words(int32_t k);
/* rows of src (row stride ld) rounded to bf16 as pairs, dre_cpu_bf16_row_words(k) words a
 * row; dst holds rows rounded up to 16, the rows past `rows` zeroed */
void dre_cpu_bf16_pack_rows(const float *src, int32_t ld, int32_t rows, int32_t k, uint32_t *dst);
/* bf16 panels of pairs for B = w^T, w [n][k] read as w[col][j] = src[col * col_stride +
 * j * k_stride] (the weights: k, 1; attention's K: its row stride, 1; its V: 1, row stride):
 * ceil(n / 32) panels of [dre_cpu_bf16_row_words(k)][32] words, zero past n and k */
void dre_cpu_bf16_pack_panels(const float *src, size_t col_stride, size_t k_stride, int32_t n,
                              int32_t k, uint32_t *dst);
/* one tile (rows <= CPU_TILE_ROWS) of packed rows by a panel on AVX-512 BF16, with gemm's
 * epilogue */
void dre_cpu_bf16_tile(int32_t rows, int32_t k, const uint32_t *a, const uint32_t *panel, float *c,
                       int32_t ldc, int32_t ncols, const float *bias, cpu_epilogue epi);
/* any number of packed rows by a panel: AMX tiles where they run (cpu/amx.h), else tiles of
 * CPU_TILE_ROWS */
void dre_cpu_bf16_panel(int32_t rows, int32_t k, const uint32_t *a, const uint32_t *panel, float *c,
                        int32_t ldc, int32_t ncols, const float *bias, cpu_epilogue epi);
/* int8's: one panel's product for `rows` rows of A packed as bf16, codes and scale the
 * panel's. One tile of rows without AMX widens the codes in registers as it reads them;
 * otherwise the panel is widened once into `widened` (dre_cpu_bf16_row_words(k) * 32 words,
 * 64-byte aligned) and dre_cpu_bf16_panel runs it */
void dre_cpu_int8_panel(int32_t rows, int32_t k, const uint32_t *a, const int8_t *codes,
                        const float *scale, uint32_t *widened, float *c, int32_t ldc, int32_t ncols,
                        const float *bias, cpu_epilogue epi);

#ifdef __cplusplus
}
#endif
#endif
