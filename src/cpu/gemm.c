/* cpu/gemm.c — packed-weight matrix products for the CPU encoder (see cpu/gemm.h). */
#include "cpu/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/amx.h"
#include "cpu/ops.h"
#include "cpu/tile.h"
#include "cpu/vmath.h"

/* ------------------------------------------------------------------ packing */

void dre_cpu_pack_block(const float *src, int32_t ld, int32_t rows, int32_t cols, int transpose,
                        float *dst) {
    /* panel p, row j, lane l: transpose = 0 -> src[j][32p + l] (j < rows);
     * transpose = 1 -> src[32p + l][j] (j < cols) */
    const int32_t along = transpose ? rows : cols, depth = transpose ? cols : rows;
    const int32_t n_panels = (along + CPU_PANEL - 1) / CPU_PANEL;
    for (int32_t p = 0; p < n_panels; p++) {
        float *panel = dst + (size_t)p * depth * CPU_PANEL;
        const int32_t lanes = along - p * CPU_PANEL < CPU_PANEL ? along - p * CPU_PANEL : CPU_PANEL;
        for (int32_t j = 0; j < depth; j++) {
            float *row = panel + (size_t)j * CPU_PANEL;
            for (int32_t l = 0; l < lanes; l++)
                row[l] = transpose ? src[(size_t)(p * CPU_PANEL + l) * ld + j]
                                   : src[(size_t)j * ld + p * CPU_PANEL + l];
            for (int32_t l = lanes; l < CPU_PANEL; l++)
                row[l] = 0.0f;
        }
    }
}

dre_status dre_cpu_pack(const float *w, int32_t n, int32_t k, cpu_packed *out) {
    memset(out, 0, sizeof *out);
    out->w = w, out->n = n, out->k = k;
    out->n_panels = (n + CPU_PANEL - 1) / CPU_PANEL;
    if (!dre_cpu_gemm_vectorised()) return DRE_OK;
    const size_t bytes = (size_t)out->n_panels * k * CPU_PANEL * sizeof(float);
    out->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!out->panels)
        return dre_set_error(DRE_ERR_NOMEM, "dre_cpu_pack: out of memory for %zu MiB of weights",
                             bytes >> 20);
    /* w is [n][k]: panels over its rows, each panel [k][32] */
    dre_cpu_pack_block(w, k, n, k, 1, out->panels);
    return DRE_OK;
}

void dre_cpu_pack_free(cpu_packed *p) {
    if (!p) return;
    free(p->panels);
    free(p->pairs);
    free(p->codes);
    free(p->scales);
    p->panels = NULL;
    p->pairs = NULL;
    p->codes = NULL;
    p->scales = NULL;
}

/* ------------------------------------------------------------ micro-kernel */

/* k-steps ahead the kernel asks for its panel: when few rows share a panel (a query), the
 * weights stream from L3 or memory faster than the hardware prefetcher alone brings them */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 64
#endif

/* One tile: rows R (a constant once inlined) x 32 columns, the sums in 2R zmm registers.
 * Per k: two panel loads, R broadcasts of A, 2R fused multiply-adds. A is packed
 * (lda = 0: a[j][r], one sequential stream) or read in place (a[r][j], row stride lda). */
static inline __attribute__((always_inline)) DRE_AVX512 void
tile_kernel(const int R, int32_t k, const float *a, int32_t lda, const float *panel, float *c,
            int32_t ldc, __mmask16 m0, __mmask16 m1, const float *bias, cpu_epilogue epi) {
    __m512 s0[CPU_TILE_ROWS], s1[CPU_TILE_ROWS];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++)
        s0[r] = s1[r] = _mm512_setzero_ps();
    for (int32_t j = 0; j < k; j++) {
        const __m512 b0 = _mm512_load_ps(panel + (size_t)j * CPU_PANEL);
        const __m512 b1 = _mm512_load_ps(panel + (size_t)j * CPU_PANEL + 16);
        _mm_prefetch((const char *)(panel + (size_t)(j + PREFETCH_AHEAD) * CPU_PANEL), _MM_HINT_T0);
        _mm_prefetch((const char *)(panel + (size_t)(j + PREFETCH_AHEAD) * CPU_PANEL + 16),
                     _MM_HINT_T0);
#pragma GCC unroll 14
        for (int r = 0; r < R; r++) {
            const __m512 av =
                _mm512_set1_ps(lda ? a[(size_t)r * lda + j] : a[(size_t)j * CPU_TILE_ROWS + r]);
            s0[r] = _mm512_fmadd_ps(av, b0, s0[r]);
            s1[r] = _mm512_fmadd_ps(av, b1, s1[r]);
        }
    }
    cpu_tile_store(R, s0, s1, c, ldc, m0, m1, bias, epi);
}

/* the row count and epilogue made constants, one specialised kernel each */
#define TILE_EPI(R, LDA)                                                                           \
    if (epi == CPU_EPI_NONE)                                                                       \
        tile_kernel(R, k, a, LDA, panel, c, ldc, m0, m1, bias, CPU_EPI_NONE);                      \
    else if (epi == CPU_EPI_BIAS)                                                                  \
        tile_kernel(R, k, a, LDA, panel, c, ldc, m0, m1, bias, CPU_EPI_BIAS);                      \
    else                                                                                           \
        tile_kernel(R, k, a, LDA, panel, c, ldc, m0, m1, bias, CPU_EPI_BIAS_GELU);
#define TILE_CASE(R)                                                                               \
    case R:                                                                                        \
        if (lda == 0) {                                                                            \
            TILE_EPI(R, 0)                                                                         \
        } else {                                                                                   \
            TILE_EPI(R, lda)                                                                       \
        }                                                                                          \
        break;

/* lda = 0: A packed; else A in place (attention's products, and a single tile of rows) */
static DRE_AVX512 void tile_dispatch(int32_t rows, int32_t k, const float *a, int32_t lda,
                                     const float *panel, float *c, int32_t ldc, int32_t ncols,
                                     const float *bias, cpu_epilogue epi) {
    const __mmask16 m0 = vtail_mask(ncols), m1 = vtail_mask(ncols - 16);
    // clang-format off
    switch (rows) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
        TILE_CASE(13) TILE_CASE(14)
    default:
        break;
    }
    // clang-format on
}

void dre_cpu_tile(int32_t rows, int32_t k, const float *a, int32_t lda, const float *panel,
                  float *c, int32_t ldc, int32_t ncols) {
    tile_dispatch(rows, k, a, lda, panel, c, ldc, ncols, NULL, CPU_EPI_NONE);
}

/* A's rows of one tile as the kernel reads them: dst[j][r] = src[r][j], [k][CPU_TILE_ROWS]
 * (rows past `rows` are never read) */
static void pack_rows(const float *src, int32_t ld, int32_t rows, int32_t k, float *dst) {
    for (int32_t r = 0; r < rows; r++) {
        const float *row = src + (size_t)r * ld;
        for (int32_t j = 0; j < k; j++)
            dst[(size_t)j * CPU_TILE_ROWS + r] = row[j];
    }
}

/* ------------------------------------------------------------------ driver */

/* tiles a work item covers: their A rows, packed (4 x 14 x k floats: 86 KiB at k = 384),
 * stay in L2 while each panel, read once from memory, serves all four. On AMX, 64 rows (four
 * tiles of 16) as bf16 pairs. */
#define GROUP_TILES 4
#define GROUP_ROWS (GROUP_TILES * CPU_TILE_ROWS)
#define AMX_GROUP_ROWS 64

/* A's rows (fp32, or bf16 pairs in fewer words), then int8's widened panel, 64-byte aligned */
static size_t widened_offset(int32_t k) {
    const size_t fp32 = (size_t)GROUP_ROWS * k;
    const size_t pairs = (size_t)AMX_GROUP_ROWS * dre_cpu_bf16_row_words(k);
    return ((fp32 > pairs ? fp32 : pairs) + 15) / 16 * 16;
}

size_t dre_cpu_gemm_scratch_floats(int32_t k) {
    return widened_offset(k) + (size_t)CPU_PANEL * dre_cpu_bf16_row_words(k);
}

static void gemm_openblas(const float *a, int32_t lda, int32_t m, const cpu_packed *w,
                          const float *bias, cpu_epilogue epi, float *out, int32_t ldo) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w->n, w->k, 1.0f, a, lda, w->w, w->k,
                0.0f, out, ldo);
    if (epi == CPU_EPI_NONE) return;
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < m; t++) {
        float *o = out + (size_t)t * ldo;
        if (epi == CPU_EPI_BIAS_GELU) {
            dre_bias_gelu_cpu(o, bias, 1, w->n); /* one row: no nested parallelism */
        } else {
            for (int32_t j = 0; j < w->n; j++)
                o[j] += bias[j];
        }
    }
}

void dre_cpu_gemm(const float *a, int32_t lda, int32_t m, const cpu_packed *w, const float *bias,
                  cpu_epilogue epi, float *out, int32_t ldo, const cpu_workspace *ws) {
    if (m <= 0) return;
    if (!w->panels && !w->pairs && !w->codes) {
        gemm_openblas(a, lda, m, w, bias, epi, out, ldo);
        return;
    }
    /* work items: (row group, run of panels). Many groups: a group each, all panels. Few
     * (a query): the panels split too, so every thread has work. */
    const int n_threads =
        omp_get_max_threads() < ws->n_threads ? omp_get_max_threads() : ws->n_threads;
    const int bf16 = w->pairs || w->codes;
    const int amx = bf16 && dre_cpu_amx_mode(NULL) != CPU_AMX_OFF;
    const int32_t group_rows = amx ? AMX_GROUP_ROWS : GROUP_ROWS;
    const int32_t groups = (m + group_rows - 1) / group_rows;
    int32_t runs = 1;
    if (n_threads > 1 && groups < 2 * n_threads) {
        runs = (2 * n_threads + groups - 1) / groups;
        runs = runs > w->n_panels ? w->n_panels : runs;
    }
    const int32_t per_run = (w->n_panels + runs - 1) / runs;
    const size_t tile_floats = (size_t)CPU_TILE_ROWS * w->k;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (groups * runs > 1)
    for (int32_t item = 0; item < groups * runs; item++) {
        const int32_t g = item / runs, run = item % runs;
        const int32_t row0 = g * group_rows;
        const int32_t row_end = row0 + group_rows < m ? row0 + group_rows : m;
        const int32_t p_end = (run + 1) * per_run < w->n_panels ? (run + 1) * per_run : w->n_panels;
        if (bf16) { /* bf16, int8: A's rows packed, rounded to bf16 */
            uint32_t *scratch =
                (uint32_t *)(ws->data + (size_t)omp_get_thread_num() * ws->floats_per_thread);
            dre_cpu_bf16_pack_rows(a + (size_t)row0 * lda, lda, row_end - row0, w->k, scratch);
            const int32_t words = dre_cpu_bf16_row_words(w->k), k2 = (w->k + 1) / 2;
            const size_t group_scales = (size_t)(w->k + CPU_INT8_GROUP - 1) / CPU_INT8_GROUP;
            if (amx) dre_cpu_amx_begin();
            for (int32_t p = run * per_run; p < p_end; p++) {
                const int32_t col = p * CPU_PANEL;
                const int32_t ncols = w->n - col < CPU_PANEL ? w->n - col : CPU_PANEL;
                float *c = out + (size_t)row0 * ldo + col;
                if (w->codes)
                    dre_cpu_int8_panel(row_end - row0, w->k, scratch,
                                       w->codes + (size_t)p * k2 * CPU_PANEL * 2,
                                       w->scales + p * group_scales * 2 * CPU_PANEL,
                                       scratch + widened_offset(w->k), c, ldo, ncols,
                                       bias ? bias + col : NULL, epi);
                else
                    dre_cpu_bf16_panel(row_end - row0, w->k, scratch,
                                       w->pairs + (size_t)p * words * CPU_PANEL, c, ldo, ncols,
                                       bias ? bias + col : NULL, epi);
            }
            if (amx) dre_cpu_amx_end();
            continue;
        }
        /* a single tile (a query) reads A in place: packing it would cost more than it saves */
        const float *packed = a;
        int32_t packed_ld = lda;
        size_t packed_step = (size_t)CPU_TILE_ROWS * lda;
        if (m > CPU_TILE_ROWS) {
            float *scratch = ws->data + (size_t)omp_get_thread_num() * ws->floats_per_thread;
            for (int32_t r = row0, t = 0; r < row_end; r += CPU_TILE_ROWS, t++) {
                const int32_t rows = row_end - r < CPU_TILE_ROWS ? row_end - r : CPU_TILE_ROWS;
                pack_rows(a + (size_t)r * lda, lda, rows, w->k, scratch + t * tile_floats);
            }
            packed = scratch, packed_ld = 0, packed_step = tile_floats;
        }
        for (int32_t p = run * per_run; p < p_end; p++) {
            const float *panel = w->panels + (size_t)p * w->k * CPU_PANEL;
            const int32_t col = p * CPU_PANEL;
            const int32_t ncols = w->n - col < CPU_PANEL ? w->n - col : CPU_PANEL;
            for (int32_t r = row0, t = 0; r < row_end; r += CPU_TILE_ROWS, t++) {
                const int32_t rows = row_end - r < CPU_TILE_ROWS ? row_end - r : CPU_TILE_ROWS;
                tile_dispatch(rows, w->k, packed + t * packed_step, packed_ld, panel,
                              out + (size_t)r * ldo + col, ldo, ncols, bias ? bias + col : NULL,
                              epi);
            }
        }
    }
}
