/* cpu/attention.c — tiled attention for the CPU encoder (see cpu/attention.h). */
#include "cpu/attention.h"

#include <math.h>
#include <omp.h>

#include "cpu/vmath.h"

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

size_t dre_cpu_attention_scratch_floats(int32_t max_len, int32_t head_dim) {
    const size_t keys = round_up((size_t)max_len, CPU_PANEL);
    const size_t dims = round_up((size_t)head_dim, CPU_PANEL);
    /* K^T panels [keys/32][head_dim][32], V panels [dims/32][max_len][32], a tile of scores
     * [14][keys]; each part a multiple of 16 floats, so each stays 64-byte aligned */
    return keys * head_dim + dims * (size_t)max_len + CPU_TILE_ROWS * keys;
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

void dre_cpu_attention(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                       int32_t head_dim, float *out, const cpu_workspace *ws) {
    const int32_t hidden = n_heads * head_dim, ld = 3 * hidden;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int64_t n_pairs = (int64_t)n_seqs * n_heads;
    const int n_threads =
        omp_get_max_threads() < ws->n_threads ? omp_get_max_threads() : ws->n_threads;
#pragma omp parallel for schedule(dynamic) num_threads(n_threads) if (n_pairs > 1)
    for (int64_t pair = 0; pair < n_pairs; pair++) {
        const int32_t s = (int32_t)(pair / n_heads), h = (int32_t)(pair % n_heads);
        const int32_t start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        const float *q = qkv + (size_t)start * ld + (size_t)h * head_dim;
        attend_one(q, q + hidden, q + 2 * hidden, ld, len, head_dim, scale,
                   out + (size_t)start * hidden + (size_t)h * head_dim, hidden,
                   ws->data + (size_t)omp_get_thread_num() * ws->floats_per_thread);
    }
}
