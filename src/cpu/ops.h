/* cpu/ops.h — the encoder's operators in plain C, each the CPU twin of a CUDA kernel in
 * kernels/ (layernorm_cpu <-> layernorm_launch ...): the GPU tests compare against these, and
 * the CPU encoder runs them where the CPU lacks AVX-512. Packed batches: the tokens of all
 * sequences back to back, sequence i spans [cu_seqlens[i], cu_seqlens[i+1]). */
#ifndef DRE_CPU_OPS_H
#define DRE_CPU_OPS_H

#include <stdint.h>

#include "cpu/workspace.h"
#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = LN(word[ids[t]] + pos[t - start of its sequence] + type[0]) * g + b */
void dre_embed_layernorm_cpu(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                             const float *word_emb, const float *pos_emb, const float *type_emb,
                             const float *g, const float *b, float eps, int32_t hidden, float *out);

/* x[t] = LN(x[t] + bias + residual[t]) * g + b, in place; bias and residual may be NULL */
void dre_bias_residual_layernorm_cpu(float *x, const float *bias, const float *residual,
                                     const float *g, const float *b, float eps, int32_t n_tokens,
                                     int32_t hidden);

/* x[t] = gelu_erf(x[t] + bias), in place; gelu(v) = 0.5 v (1 + erf(v / sqrt 2)) */
void dre_bias_gelu_cpu(float *x, const float *bias, int32_t n_tokens, int32_t dim);

/* Per sequence and head: out = softmax(q k^T / sqrt(head_dim)) v, attending only within
 * the sequence. qkv [n_tokens, 3*hidden] (q | k | v, heads contiguous inside each);
 * out [n_tokens, hidden]. */
void dre_attention_cpu(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                       int32_t head_dim, float *out);
/* The same with the caller's scratch: a max_len x max_len score matrix a thread, max_len the
 * longest sequence; the (sequence, head) pairs dealt out to at most ws->n_threads threads. */
void dre_attention_cpu_ws(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs,
                          int32_t n_heads, int32_t head_dim, const cpu_workspace *ws, float *out);

/* out[i] = mean of the sequence's token vectors (or its first, CLS), then x / ||x||
 * if normalize. hidden [n_tokens, dim], out [n_seqs, dim]. */
void dre_pool_normalize_cpu(const float *hidden, const int32_t *cu_seqlens, int32_t n_seqs,
                            int32_t dim, dre_pooling pooling, int normalize, float *out);

#ifdef __cplusplus
}
#endif
#endif
