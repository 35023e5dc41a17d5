/* cpu/ops.c — the encoder's operators as plain C (OpenBLAS for attention's products): the
 * CPU twins of the CUDA kernels (cpu/ops.h), and the CPU encoder's path without AVX-512. */
#include "cpu/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* x = (x - mean) * rstd * g + b with rstd = 1 / sqrt(var + eps), var biased (divide by
 * n) as torch.nn.LayerNorm; statistics accumulated in double. */
static void layernorm_row(float *x, const float *g, const float *b, float eps, int32_t n) {
    double sum = 0.0;
    for (int32_t j = 0; j < n; j++)
        sum += x[j];
    double mean = sum / n, sq = 0.0;
    for (int32_t j = 0; j < n; j++)
        sq += ((double)x[j] - mean) * ((double)x[j] - mean);
    float rstd = (float)(1.0 / sqrt(sq / n + (double)eps));
    float mean_f = (float)mean;
    for (int32_t j = 0; j < n; j++)
        x[j] = (x[j] - mean_f) * rstd * g[j] + b[j];
}

void dre_embed_layernorm_cpu(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                             const float *word_emb, const float *pos_emb, const float *type_emb,
                             const float *g, const float *b, float eps, int32_t hidden,
                             float *out) {
#pragma omp parallel for schedule(dynamic)
    for (int32_t s = 0; s < n_seqs; s++) {
        for (int32_t t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
            /* positions restart at 0 for every sequence; token type is always 0 */
            const float *w = word_emb + (size_t)ids[t] * hidden;
            const float *p = pos_emb + (size_t)(t - cu_seqlens[s]) * hidden;
            float *o = out + (size_t)t * hidden;
            for (int32_t j = 0; j < hidden; j++)
                o[j] = w[j] + p[j] + type_emb[j];
            layernorm_row(o, g, b, eps, hidden);
        }
    }
}

void dre_bias_residual_layernorm_cpu(float *x, const float *bias, const float *residual,
                                     const float *g, const float *b, float eps, int32_t n_tokens,
                                     int32_t hidden) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < n_tokens; t++) {
        float *row = x + (size_t)t * hidden;
        const float *res = residual ? residual + (size_t)t * hidden : NULL;
        for (int32_t j = 0; j < hidden; j++)
            row[j] += (bias ? bias[j] : 0.0f) + (res ? res[j] : 0.0f);
        layernorm_row(row, g, b, eps, hidden);
    }
}

void dre_bias_gelu_cpu(float *x, const float *bias, int32_t n_tokens, int32_t dim) {
    const float inv_sqrt2 = 0.70710678118654752440f;
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < n_tokens; t++) {
        float *row = x + (size_t)t * dim;
        for (int32_t j = 0; j < dim; j++) {
            float v = row[j] + bias[j];
            row[j] = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
        }
    }
}

void dre_attention_cpu_ws(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs,
                          int32_t n_heads, int32_t head_dim, const cpu_workspace *ws, float *out) {
    const int32_t hidden = n_heads * head_dim, ld = 3 * hidden;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int64_t n_pairs = (int64_t)n_seqs * n_heads;
    const int n_threads =
        omp_get_max_threads() < ws->n_threads ? omp_get_max_threads() : ws->n_threads;
    /* the products below are small and run side by side: OpenBLAS's own threads (pthreads
     * build) would spin waiting for each other, three times slower, so OpenBLAS is set to one
     * thread for the loop and put back after. Its thread count never changes a result: it
     * splits rows and columns, never the sum over k. */
    const int blas_threads = openblas_get_num_threads();
    if (n_threads > 1) openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic) num_threads(n_threads)
    for (int64_t pair = 0; pair < n_pairs; pair++) {
        const int32_t s = (int32_t)(pair / n_heads), h = (int32_t)(pair % n_heads);
        const int32_t start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        float *p = ws->data + (size_t)omp_get_thread_num() * ws->floats_per_thread;
        const float *q = qkv + (size_t)start * ld + (size_t)h * head_dim;
        const float *k = q + hidden;
        const float *v = q + 2 * hidden;
        /* p = q k^T / sqrt(head_dim) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, head_dim, scale, q, ld, k,
                    ld, 0.0f, p, len);
        /* softmax over keys, max subtracted for range */
        for (int32_t i = 0; i < len; i++) {
            float *row = p + (size_t)i * len;
            float max = row[0];
            for (int32_t j = 1; j < len; j++)
                max = row[j] > max ? row[j] : max;
            float sum = 0.0f;
            for (int32_t j = 0; j < len; j++) {
                row[j] = expf(row[j] - max);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int32_t j = 0; j < len; j++)
                row[j] *= inv;
        }
        /* out = p v, written into this head's columns */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, head_dim, len, 1.0f, p, len, v,
                    ld, 0.0f, out + (size_t)start * hidden + h * head_dim, hidden);
    }
    if (n_threads > 1) openblas_set_num_threads(blas_threads);
}

void dre_attention_cpu(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                       int32_t head_dim, float *out) {
    int32_t max_len = 1;
    for (int32_t s = 0; s < n_seqs; s++) {
        int32_t len = cu_seqlens[s + 1] - cu_seqlens[s];
        max_len = len > max_len ? len : max_len;
    }
    /* a test helper's convenience; the encoder passes its own scratch */
    cpu_workspace ws = {NULL, (size_t)max_len * max_len, omp_get_max_threads()};
    ws.data = malloc((size_t)ws.n_threads * ws.floats_per_thread * sizeof(float));
    if (!ws.data) return;
    dre_attention_cpu_ws(qkv, cu_seqlens, n_seqs, n_heads, head_dim, &ws, out);
    free(ws.data);
}

void dre_pool_normalize_cpu(const float *hidden, const int32_t *cu_seqlens, int32_t n_seqs,
                            int32_t dim, dre_pooling pooling, int normalize, float *out) {
#pragma omp parallel for schedule(dynamic)
    for (int32_t s = 0; s < n_seqs; s++) {
        const int32_t start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        float *o = out + (size_t)s * dim;
        if (pooling == DRE_POOL_CLS) {
            memcpy(o, hidden + (size_t)start * dim, (size_t)dim * sizeof *o);
        } else {
            /* every token is real (no padding), so the mean is over all len */
            for (int32_t j = 0; j < dim; j++) {
                double sum = 0.0;
                for (int32_t t = 0; t < len; t++)
                    sum += hidden[(size_t)(start + t) * dim + j];
                o[j] = (float)(sum / len);
            }
        }
        if (!normalize) continue;
        /* x / max(||x||, 1e-12), as torch.nn.functional.normalize */
        double sq = 0.0;
        for (int32_t j = 0; j < dim; j++)
            sq += (double)o[j] * o[j];
        double norm = sqrt(sq);
        float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (int32_t j = 0; j < dim; j++)
            o[j] *= inv;
    }
}
