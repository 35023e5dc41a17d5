/* cpu/encoder.c — the fp32 CPU encoder: Hugging Face BertModel's forward pass on packed,
 * unpadded batches, then sentence-transformers pooling and normalisation.
 * Two layers of code. The operators (*_cpu) are the plain references, OpenBLAS for their
 * products: each is the CPU twin of a CUDA kernel, and the GPU tests compare against them.
 * The encoder runs the fast path where the CPU has AVX-512 (cpu/gemm.c: packed weights,
 * bias and GELU fused into the products; cpu/attention.c: tiled attention; the residual +
 * LayerNorm rows vectorised), the operators otherwise; embeddings and pooling are the
 * operators' own in both.
 * Work is shared out with OpenMP over rows, panels or (sequence, head) pairs only, so every
 * output is computed by the same arithmetic in the same order at any thread count. */
#include "cpu/encoder.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/vmath.h"

/* ---------------------------------------------------------------- operators */

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

void embed_layernorm_cpu(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                         const float *word_emb, const float *pos_emb, const float *type_emb,
                         const float *g, const float *b, float eps, int32_t hidden, float *out) {
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

void linear_cpu(const float *in, const float *w, const float *bias, int32_t n_tokens,
                int32_t in_dim, int32_t out_dim, float *out) {
    /* out [n, out_dim] = in [n, in_dim] @ w^T, w stored [out_dim, in_dim] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, out_dim, in_dim, 1.0f, in,
                in_dim, w, in_dim, 0.0f, out, out_dim);
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < n_tokens; t++) {
        float *o = out + (size_t)t * out_dim;
        for (int32_t j = 0; j < out_dim; j++)
            o[j] += bias[j];
    }
}

void bias_residual_layernorm_cpu(float *x, const float *bias, const float *residual, const float *g,
                                 const float *b, float eps, int32_t n_tokens, int32_t hidden) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < n_tokens; t++) {
        float *row = x + (size_t)t * hidden;
        const float *res = residual ? residual + (size_t)t * hidden : NULL;
        for (int32_t j = 0; j < hidden; j++)
            row[j] += (bias ? bias[j] : 0.0f) + (res ? res[j] : 0.0f);
        layernorm_row(row, g, b, eps, hidden);
    }
}

void bias_gelu_cpu(float *x, const float *bias, int32_t n_tokens, int32_t dim) {
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

/* attention_cpu with caller-provided scratch: a score matrix of max_len * max_len floats a
 * thread, max_len the longest sequence. The (sequence, head) pairs are independent; they are
 * dealt out dynamically, since their lengths differ, to at most ws->n_threads threads. */
static void attention_scratch(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs,
                              int32_t n_heads, int32_t head_dim, const cpu_workspace *ws,
                              float *out) {
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

void attention_cpu(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
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
    attention_scratch(qkv, cu_seqlens, n_seqs, n_heads, head_dim, &ws, out);
    free(ws.data);
}

void pool_normalize_cpu(const float *hidden, const int32_t *cu_seqlens, int32_t n_seqs, int32_t dim,
                        dre_pooling pooling, int normalize, float *out) {
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

/* ---------------------------------------------------------------- encoder */

/* the four matrix products of a layer, packed for cpu_gemm */
enum { W_QKV, W_ATTN_OUT, W_FFN_IN, W_FFN_OUT, W_PER_LAYER };

struct cpu_encoder {
    const dre_model *model;
    int32_t budget_tokens;
    int32_t max_length;
    int vectorised;      /* cpu_gemm_vectorised() when made: the AVX-512 path */
    cpu_packed *weights; /* [n_layers][W_PER_LAYER] */
    /* activations, sized once for budget_tokens */
    float *x;         /* [budget, hidden]: layer input and output */
    float *qkv;       /* [budget, 3*hidden] */
    float *ctx;       /* [budget, hidden]: attention output */
    float *mid;       /* [budget, hidden]: after the attention block's LayerNorm */
    float *ffn;       /* [budget, intermediate] */
    cpu_workspace ws; /* per-thread scratch of the GEMMs and attention; threads: OpenMP's
                       * count when the encoder was made */
    void *block;      /* the one allocation behind the arrays above */
};

/* floats of scratch a thread needs, a multiple of 16 (64 bytes) */
static size_t scratch_floats(const dre_model_info *info, int32_t max_length, int vectorised) {
    size_t need = (size_t)max_length * max_length; /* attention_scratch's score matrix */
    if (vectorised) {
        const int32_t k = info->intermediate > info->hidden ? info->intermediate : info->hidden;
        const size_t gemm = cpu_gemm_scratch_floats(k);
        const size_t attn = cpu_attention_scratch_floats(max_length, info->head_dim);
        need = gemm > attn ? gemm : attn;
    }
    return (need + 15) / 16 * 16;
}

void cpu_encoder_destroy(cpu_encoder *enc) {
    if (!enc) return;
    if (enc->weights)
        for (int32_t i = 0; i < enc->model->info.n_layers * W_PER_LAYER; i++)
            cpu_pack_free(&enc->weights[i]);
    free(enc->weights);
    free(enc->block);
    free(enc);
}

static dre_status pack_layers(cpu_encoder *enc) {
    const dre_model_info *info = &enc->model->info;
    enc->weights = calloc((size_t)info->n_layers * W_PER_LAYER, sizeof *enc->weights);
    if (!enc->weights) return set_error(DRE_ERR_NOMEM, "cpu_encoder_create: out of memory");
    const int32_t h = info->hidden, ff = info->intermediate;
    for (int32_t l = 0; l < info->n_layers; l++) {
        const layer_weights *lw = &enc->model->layers[l];
        cpu_packed *w = enc->weights + (size_t)l * W_PER_LAYER;
        dre_status st = cpu_pack(lw->qkv_w, 3 * h, h, &w[W_QKV]);
        if (st == DRE_OK) st = cpu_pack(lw->attn_out_w, h, h, &w[W_ATTN_OUT]);
        if (st == DRE_OK) st = cpu_pack(lw->ffn_in_w, ff, h, &w[W_FFN_IN]);
        if (st == DRE_OK) st = cpu_pack(lw->ffn_out_w, h, ff, &w[W_FFN_OUT]);
        if (st != DRE_OK) return st;
    }
    return DRE_OK;
}

dre_status cpu_encoder_create(const dre_model *model, int32_t budget_tokens, cpu_encoder **out) {
    if (!model || !out || budget_tokens < 1)
        return set_error(DRE_ERR_INVALID_ARG, "cpu_encoder_create: bad argument");
    *out = NULL;
    const dre_model_info *info = &model->info;
    cpu_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return set_error(DRE_ERR_NOMEM, "cpu_encoder_create: out of memory");
    enc->model = model;
    enc->budget_tokens = budget_tokens;
    enc->max_length = info->max_positions;
    enc->vectorised = cpu_gemm_vectorised();
    enc->ws.n_threads = omp_get_max_threads();
    enc->ws.floats_per_thread = scratch_floats(info, enc->max_length, enc->vectorised);
    const size_t b = (size_t)budget_tokens, h = (size_t)info->hidden;
    /* every array a multiple of 16 floats, so the scratch after them stays 64-byte aligned */
    const size_t act = (b * h * 3 + b * 3 * h + b * (size_t)info->intermediate + 15) / 16 * 16;
    const size_t floats = act + (size_t)enc->ws.n_threads * enc->ws.floats_per_thread;
    enc->block = aligned_alloc(64, floats * sizeof(float));
    if (!enc->block) {
        free(enc);
        return set_error(DRE_ERR_NOMEM,
                         "cpu_encoder_create: out of memory for %zu MiB of activations "
                         "(budget %d tokens)",
                         floats * sizeof(float) >> 20, budget_tokens);
    }
    float *p = enc->block;
    enc->x = p, p += b * h;
    enc->qkv = p, p += b * 3 * h;
    enc->ctx = p, p += b * h;
    enc->mid = p, p += b * h;
    enc->ffn = p;
    enc->ws.data = (float *)enc->block + act;
    dre_status st = pack_layers(enc);
    if (st != DRE_OK) {
        cpu_encoder_destroy(enc);
        return st;
    }
    *out = enc;
    return DRE_OK;
}

/* x = LayerNorm(x + residual), row by row */
static void residual_layernorm(const cpu_encoder *enc, float *x, const float *residual,
                               const float *g, const float *b, float eps, int32_t n, int32_t h) {
    if (!enc->vectorised) {
        bias_residual_layernorm_cpu(x, NULL, residual, g, b, eps, n, h);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(enc->ws.n_threads) if (n > 16)
    for (int32_t t = 0; t < n; t++)
        vlayernorm_row(x + (size_t)t * h, residual + (size_t)t * h, g, b, eps, h);
}

dre_status cpu_encoder_encode(cpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out) {
    if (!enc || !ids || !cu_seqlens || !out || n_seqs < 0)
        return set_error(DRE_ERR_INVALID_ARG, "cpu_encoder_encode: bad argument");
    if (n_seqs == 0) return DRE_OK;
    const dre_model *m = enc->model;
    const dre_model_info *in = &m->info;
    /* checked here too, since every index below trusts them */
    if (cu_seqlens[0] != 0) return set_error(DRE_ERR_INVALID_ARG, "cu_seqlens[0] must be 0");
    for (int32_t s = 0; s < n_seqs; s++) {
        int32_t len = cu_seqlens[s + 1] - cu_seqlens[s];
        if (len < 1 || len > enc->max_length)
            return set_error(DRE_ERR_INVALID_ARG, "sequence %d has length %d (allowed 1..%d)", s,
                             len, enc->max_length);
        if (cu_seqlens[s + 1] > enc->budget_tokens)
            return set_error(DRE_ERR_INVALID_ARG, "batch exceeds the budget of %d tokens",
                             enc->budget_tokens);
    }
    const int32_t n = cu_seqlens[n_seqs], h = in->hidden, ff = in->intermediate;
    for (int32_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= in->vocab_size)
            return set_error(DRE_ERR_INVALID_ARG, "token %d has id %d outside the vocabulary (%d)",
                             t, ids[t], in->vocab_size);

    const float eps = in->layer_norm_eps;
    embed_layernorm_cpu(ids, cu_seqlens, n_seqs, m->word_emb, m->pos_emb, m->type_emb, m->emb_ln_g,
                        m->emb_ln_b, eps, h, enc->x);
    for (int32_t l = 0; l < in->n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        const cpu_packed *w = enc->weights + (size_t)l * W_PER_LAYER;
        /* attention block: mid = LN(x + attn(x) W_o^T + b_o) */
        cpu_gemm(enc->x, h, n, &w[W_QKV], lw->qkv_b, CPU_EPI_BIAS, enc->qkv, 3 * h, &enc->ws);
        if (enc->vectorised)
            cpu_attention(enc->qkv, cu_seqlens, n_seqs, in->n_heads, in->head_dim, enc->ctx,
                          &enc->ws);
        else
            attention_scratch(enc->qkv, cu_seqlens, n_seqs, in->n_heads, in->head_dim, &enc->ws,
                              enc->ctx);
        cpu_gemm(enc->ctx, h, n, &w[W_ATTN_OUT], lw->attn_out_b, CPU_EPI_BIAS, enc->mid, h,
                 &enc->ws);
        residual_layernorm(enc, enc->mid, enc->x, lw->ln1_g, lw->ln1_b, eps, n, h);
        /* feed-forward block: x = LN(mid + gelu(mid W_i^T + b_i) W_o2^T + b_o2) */
        cpu_gemm(enc->mid, h, n, &w[W_FFN_IN], lw->ffn_in_b, CPU_EPI_BIAS_GELU, enc->ffn, ff,
                 &enc->ws);
        cpu_gemm(enc->ffn, ff, n, &w[W_FFN_OUT], lw->ffn_out_b, CPU_EPI_BIAS, enc->x, h, &enc->ws);
        residual_layernorm(enc, enc->x, enc->mid, lw->ln2_g, lw->ln2_b, eps, n, h);
    }
    pool_normalize_cpu(enc->x, cu_seqlens, n_seqs, h, in->pooling, in->normalize, out);
    return DRE_OK;
}
