/* cpu/attention.c — tiled attention for the CPU encoder (see cpu/attention.h). */
#include "cpu/attention.h"

#include <math.h>
#include <omp.h>

#include "cpu/amx.h"
#include "cpu/vmath.h"

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* rows of queries bf16's attention takes a step: two tiles of 14 on AVX-512 BF16, two of 16
 * on AMX */
#define BF16_STEP_ROWS 32

/* bf16's layout in a thread's scratch (32-bit words), each part 64-byte aligned: K^T panels
 * [keys/32][hd words][32], V panels [dims/32][len words][32], a step's scores [32][keys]
 * (fp32), and a step's rows of Q and of weights as bf16 pairs ([32][hd words],
 * [32][keys/2]); "words" are dre_cpu_bf16_row_words's */
typedef struct bf16_layout {
    size_t k_panels, v_panels, scores, q_rows, p_rows, total;
} bf16_layout;

static bf16_layout bf16_layout_of(int32_t len, int32_t head_dim) {
    const size_t keys = round_up((size_t)len, CPU_PANEL);
    const size_t hd_words = (size_t)dre_cpu_bf16_row_words(head_dim);
    bf16_layout l;
    l.k_panels = 0;
    l.v_panels = l.k_panels + keys * hd_words;
    l.scores =
        l.v_panels + round_up((size_t)head_dim, CPU_PANEL) * (size_t)dre_cpu_bf16_row_words(len);
    l.q_rows = l.scores + BF16_STEP_ROWS * keys;
    l.p_rows = l.q_rows + BF16_STEP_ROWS * hd_words;
    l.total = l.p_rows + BF16_STEP_ROWS * keys / 2;
    return l;
}

size_t dre_cpu_attention_scratch_floats(int32_t max_len, int32_t head_dim) {
    const size_t keys = round_up((size_t)max_len, CPU_PANEL);
    const size_t dims = round_up((size_t)head_dim, CPU_PANEL);
    /* fp32: K^T panels [keys/32][head_dim][32], V panels [dims/32][max_len][32], a tile of
     * scores [14][keys]; each part a multiple of 16 floats, so each stays 64-byte aligned */
    const size_t fp32 = keys * head_dim + dims * (size_t)max_len + CPU_TILE_ROWS * keys;
    const size_t bf16 = bf16_layout_of(max_len, head_dim).total;
    return fp32 > bf16 ? fp32 : bf16;
}

/* Row of scores s[0..len): s = softmax(s * scale), in place */
static DRE_AVX512 void softmax_row(float *s, int32_t len, float scale) {
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int32_t j = 0; j < len; j += 16) {
        const __mmask16 m = vtail_mask(len - j);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), vscale);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
        _mm512_mask_storeu_ps(s + j, m, v);
    }
    const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int32_t j = 0; j < len; j += 16) {
        const __mmask16 m = vtail_mask(len - j);
        const __m512 e = vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), max));
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
        _mm512_mask_storeu_ps(s + j, m, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int32_t j = 0; j < len; j += 16) {
        const __mmask16 m = vtail_mask(len - j);
        _mm512_mask_storeu_ps(s + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv));
    }
}

static void attend_one(const float *q, const float *k, const float *v, int32_t ld, int32_t len,
                       int32_t head_dim, float scale, float *out, int32_t ldo, float *scratch) {
    const int32_t keys = (int32_t)round_up((size_t)len, CPU_PANEL);
    float *k_panels = scratch;                            /* [keys/32][head_dim][32] */
    float *v_panels = k_panels + (size_t)keys * head_dim; /* [ceil(hd/32)][len][32] */
    float *scores = v_panels + round_up((size_t)head_dim, CPU_PANEL) * len; /* [14][keys] */
    dre_cpu_pack_block(k, ld, len, head_dim, 1, k_panels);
    dre_cpu_pack_block(v, ld, len, head_dim, 0, v_panels);
    for (int32_t i = 0; i < len; i += CPU_TILE_ROWS) {
        const int32_t rows = len - i < CPU_TILE_ROWS ? len - i : CPU_TILE_ROWS;
        for (int32_t kp = 0; kp < keys / CPU_PANEL; kp++) {
            const int32_t n = len - kp * CPU_PANEL < CPU_PANEL ? len - kp * CPU_PANEL : CPU_PANEL;
            dre_cpu_tile(rows, head_dim, q + (size_t)i * ld, ld,
                         k_panels + (size_t)kp * head_dim * CPU_PANEL, scores + kp * CPU_PANEL,
                         keys, n);
        }
        for (int32_t r = 0; r < rows; r++)
            softmax_row(scores + (size_t)r * keys, len, scale);
        for (int32_t vp = 0; vp * CPU_PANEL < head_dim; vp++) {
            const int32_t n =
                head_dim - vp * CPU_PANEL < CPU_PANEL ? head_dim - vp * CPU_PANEL : CPU_PANEL;
            dre_cpu_tile(rows, len, scores, keys, v_panels + (size_t)vp * len * CPU_PANEL,
                         out + (size_t)i * ldo + vp * CPU_PANEL, ldo, n);
        }
    }
}

/* attend_one in bf16: Q, K, V and the softmax's weights rounded to bf16 as they are packed,
 * the products' sums and the softmax in fp32; steps of 28 queries (32 on AMX) */
static void attend_one_bf16(const float *q, const float *k, const float *v, int32_t ld, int32_t len,
                            int32_t head_dim, float scale, float *out, int32_t ldo, float *scratch,
                            int32_t step) {
    const int32_t keys = (int32_t)round_up((size_t)len, CPU_PANEL);
    const int32_t hd_words = dre_cpu_bf16_row_words(head_dim);
    const int32_t len_words = dre_cpu_bf16_row_words(len);
    const bf16_layout l = bf16_layout_of(len, head_dim);
    uint32_t *words = (uint32_t *)scratch;
    uint32_t *k_panels = words + l.k_panels, *v_panels = words + l.v_panels;
    uint32_t *q_rows = words + l.q_rows, *p_rows = words + l.p_rows;
    float *scores = scratch + l.scores;
    dre_cpu_bf16_pack_panels(k, (size_t)ld, 1, len, head_dim, k_panels);
    dre_cpu_bf16_pack_panels(v, 1, (size_t)ld, head_dim, len, v_panels);
    for (int32_t i = 0; i < len; i += step) {
        const int32_t rows = len - i < step ? len - i : step;
        dre_cpu_bf16_pack_rows(q + (size_t)i * ld, ld, rows, head_dim, q_rows);
        for (int32_t kp = 0; kp < keys / CPU_PANEL; kp++) {
            const int32_t n = len - kp * CPU_PANEL < CPU_PANEL ? len - kp * CPU_PANEL : CPU_PANEL;
            dre_cpu_bf16_panel(rows, head_dim, q_rows, k_panels + (size_t)kp * hd_words * CPU_PANEL,
                               scores + kp * CPU_PANEL, keys, n, NULL, CPU_EPI_NONE);
        }
        for (int32_t r = 0; r < rows; r++)
            softmax_row(scores + (size_t)r * keys, len, scale);
        dre_cpu_bf16_pack_rows(scores, keys, rows, len, p_rows);
        for (int32_t vp = 0; vp * CPU_PANEL < head_dim; vp++) {
            const int32_t n =
                head_dim - vp * CPU_PANEL < CPU_PANEL ? head_dim - vp * CPU_PANEL : CPU_PANEL;
            dre_cpu_bf16_panel(rows, len, p_rows, v_panels + (size_t)vp * len_words * CPU_PANEL,
                               out + (size_t)i * ldo + vp * CPU_PANEL, ldo, n, NULL, CPU_EPI_NONE);
        }
    }
}

void dre_cpu_attention(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                       int32_t head_dim, int bf16, float *out, const cpu_workspace *ws) {
    const int32_t hidden = n_heads * head_dim, ld = 3 * hidden;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int64_t n_pairs = (int64_t)n_seqs * n_heads;
    const int n_threads =
        omp_get_max_threads() < ws->n_threads ? omp_get_max_threads() : ws->n_threads;
    const int amx = bf16 && dre_cpu_amx_mode(NULL) != CPU_AMX_OFF;
    const int32_t step = amx ? BF16_STEP_ROWS : 2 * CPU_TILE_ROWS;
#pragma omp parallel num_threads(n_threads) if (n_pairs > 1)
    {
        if (amx) dre_cpu_amx_begin();
#pragma omp for schedule(dynamic)
        for (int64_t pair = 0; pair < n_pairs; pair++) {
            const int32_t s = (int32_t)(pair / n_heads), h = (int32_t)(pair % n_heads);
            const int32_t start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
            const float *q = qkv + (size_t)start * ld + (size_t)h * head_dim;
            float *scratch = ws->data + (size_t)omp_get_thread_num() * ws->floats_per_thread;
            float *o = out + (size_t)start * hidden + (size_t)h * head_dim;
            if (bf16)
                attend_one_bf16(q, q + hidden, q + 2 * hidden, ld, len, head_dim, scale, o, hidden,
                                scratch, step);
            else
                attend_one(q, q + hidden, q + 2 * hidden, ld, len, head_dim, scale, o, hidden,
                           scratch);
        }
        if (amx) dre_cpu_amx_end();
    }
}
