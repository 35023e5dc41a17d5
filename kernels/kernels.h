/* kernels.h — the C launchers of dre's CUDA kernels, one family per .cu file, each the
 * twin of a CPU operator in src/cpu/ops.h (dre_embed_layernorm_cpu <-> dre_embed_layernorm_launch).
 * Activations are fp16 (passed as their bits, fp16_t); biases and LayerNorm parameters fp32.
 * Every launcher enqueues on `stream` and returns the launch status (cudaGetLastError). */
#ifndef DRE_KERNELS_H
#define DRE_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <string.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An IEEE binary16 value as the host sees it: its 16 bits. Kernels read it as __half. */
typedef uint16_t fp16_t;

/* Largest hidden size the LayerNorm kernels accept (a row lives in a half-warp's registers;
 * BERT-large's 1024), and the largest k of dre_topk_launch. */
#define KERNELS_MAX_HIDDEN 1024
#define TOPK_MAX_K 1024

/* out[t] = LN(word[ids[t]] + pos[t - start of its sequence] + type[0]) * g + b.
 * Embedding tables fp16; g, b fp32; ids and cu_seqlens on the device. Ids outside
 * [0, vocab_size) read row 0 and positions past max_positions the last row (the host
 * validates; this only keeps a bad id from reading out of bounds). hidden a multiple of 8,
 * tables, g, b and out 16-byte aligned. */
cudaError_t dre_embed_layernorm_launch(const int32_t *ids, const int32_t *cu_seqlens,
                                       int32_t n_seqs, int32_t n_tokens, const fp16_t *word_emb,
                                       const fp16_t *pos_emb, const fp16_t *type_emb,
                                       int32_t vocab_size, int32_t max_positions, const float *g,
                                       const float *b, float eps, int32_t hidden, fp16_t *out,
                                       cudaStream_t stream);

/* out[t] = LN(x[t] + bias + residual[t]) * g + b; bias and residual may be NULL; out may
 * be x or residual (each row is read completely before it is written). hidden a multiple
 * of 8, every pointer 16-byte aligned. */
cudaError_t dre_bias_residual_layernorm_launch(const fp16_t *x, const float *bias,
                                               const fp16_t *residual, const float *g,
                                               const float *b, float eps, int32_t n_tokens,
                                               int32_t hidden, fp16_t *out, cudaStream_t stream);

/* x[t] = gelu_erf(x[t] + bias) in place; bias may be NULL; dim a multiple of 8, x and
 * bias 16-byte aligned. */
cudaError_t dre_bias_gelu_launch(fp16_t *x, const float *bias, int32_t n_tokens, int32_t dim,
                                 cudaStream_t stream);

/* The attention kernel's versions (kernels/attention.cu): mma (FlashAttention-2 style on
 * mma.sync, the default) and wmma (the first one). */
typedef enum attention_variant { ATTENTION_MMA, ATTENTION_WMMA } attention_variant;

/* Variable-length attention: per sequence and head, out = softmax(q k^T / sqrt(head_dim)) v
 * within the sequence. qkv [n_tokens, 3*hidden] (q | k | v, heads contiguous in each),
 * qkv_bias [3*hidden] fp32 added to q, k, v (NULL: none; 16-byte aligned), out
 * [n_tokens, hidden], hidden = n_heads * head_dim. head_dim 16, 32 or 64; max_len the
 * longest sequence (sizes the grid); qkv and out 16-byte aligned. */
cudaError_t dre_attention_launch(const fp16_t *qkv, const float *qkv_bias,
                                 const int32_t *cu_seqlens, int32_t n_seqs, int32_t max_len,
                                 int32_t n_heads, int32_t head_dim, fp16_t *out,
                                 attention_variant variant, cudaStream_t stream);

/* out[i] = mean of sequence i's rows of hidden (or its first row, CLS), then
 * x / max(||x||, 1e-12) if normalize. hidden [n_tokens, dim] fp16, out [n_seqs, dim] fp32. */
cudaError_t dre_pool_normalize_launch(const fp16_t *hidden, const int32_t *cu_seqlens,
                                      int32_t n_seqs, int32_t dim, dre_pooling pooling,
                                      int normalize, float *out, cudaStream_t stream);

/* The order of dre_topk_launch's output: FAISS's (score descending, equal scores by descending
 * id), or ascending id (to pass on as the next chunk's prev entries). */
typedef enum topk_order { TOPK_BY_SCORE, TOPK_BY_ID } topk_order;

/* Exact search's top-k, per row r, equal to FAISS's Flat index (IndexFlatIP) ties included.
 * Row r's entries, in id order: n_prev earlier ones (prev_scores / prev_ids + r *
 * prev_stride, ids ascending, all below id_offset; an id < 0 is padding and ignored), then
 * n_cols scores (scores + r * in_stride) whose ids are id_offset + column. The k kept are
 * those FAISS's k-heap keeps when fed these entries in order (the k largest, and of the
 * entries tied at the k-th score the ones its strictly-better replacement keeps), written
 * to out_scores / out_ids + r * out_stride in `order`; where the row has fewer than k
 * entries the rest are -inf with id -1. Feeding each chunk's scores with the previous
 * chunk's result (TOPK_BY_ID) as prev gives FAISS's result over all chunks.
 * 1 <= k <= TOPK_MAX_K. */
cudaError_t dre_topk_launch(const float *scores, int64_t in_stride, int32_t n_cols,
                            int64_t id_offset, const float *prev_scores, const int64_t *prev_ids,
                            int64_t prev_stride, int32_t n_prev, int32_t n_rows, int32_t k,
                            topk_order order, float *out_scores, int64_t *out_ids,
                            int64_t out_stride, cudaStream_t stream);

/* Exact fp32 scores of an fp16 search's candidates (kernels/rescore.cu). For each of
 * n_queries queries (fp32 queries [n, dim]): out[q, j] = queries[q] . vectors[ids[q, j]] for
 * j < m (row stride `stride`; -inf where the id is -1 padding), and floor16[q] = the lowest
 * scores16[q, j] of a real candidate, or -inf when a candidate is padding (then no vector
 * was left out). vectors [n_vectors, dim] fp32, device or mapped host memory. */
cudaError_t dre_rescore_launch(const float *queries, const float *vectors, int64_t n_vectors,
                               int32_t dim, const int64_t *ids, const float *scores16,
                               int64_t stride, int32_t m, int32_t n_queries, float *out,
                               float *floor16, cudaStream_t stream);

/* In place over a chunk of scores [n_queries, n_cols] (row stride `stride`) of the vectors
 * id_offset + column: where a score is >= thresholds[q] it becomes the exact fp32
 * queries[q] . vectors[id] (the same sum as dre_rescore_launch's), elsewhere -inf.
 * n_queries <= 65535. */
cudaError_t dre_masked_exact_launch(float *scores, int64_t stride, int32_t n_cols,
                                    int64_t id_offset, const float *thresholds,
                                    const float *queries, const float *vectors, int32_t dim,
                                    int32_t n_queries, cudaStream_t stream);

/* ---------------------------------------------------------------- fp16 on the host */

/* float -> binary16, round to nearest even; overflow to inf, NaN stays NaN. */
static inline fp16_t float_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) /* inf, or NaN (keep it quiet) */
        return (fp16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0u));
    if (mag >= 0x477ff000u) /* >= 65520: rounds past 65504, the largest half */
        return (fp16_t)(sign | 0x7c00u);
    if (mag >= 0x38800000u) { /* normal half: exponent 2^-14 and up */
        uint32_t h = (((mag >> 23) - 112u) << 10) | ((mag & 0x7fffffu) >> 13);
        const uint32_t rest = mag & 0x1fffu;                      /* the 13 dropped mantissa bits */
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry moves the exponent */
        return (fp16_t)(sign | h);
    }
    if (mag <= 0x33000000u) /* <= 2^-25: half of the smallest subnormal, ties to 0 */
        return (fp16_t)sign;
    /* subnormal half: m * 2^-24 with the value = significand * 2^(exp - 150) */
    const uint32_t exp = mag >> 23; /* 102 .. 112 */
    const uint32_t significand = (mag & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp; /* 14 .. 24 */
    uint32_t m = significand >> shift;
    const uint32_t rest = significand & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (m & 1u))) m++; /* 0x400 is the smallest normal */
    return (fp16_t)(sign | m);
}

/* binary16 -> float (exact). */
static inline float fp16_to_float(fp16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0x1fu) {
        x = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    } else {
        const float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24, exact */
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#ifdef __cplusplus
}
#endif
#endif
