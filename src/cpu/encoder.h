/* cpu/encoder.h — the fp32 reference encoder and its operators.
 * Each operator is the CPU twin of a CUDA kernel in kernels/ (layernorm_cpu <->
 * layernorm_launch ...): the GPU tests compare against these. Packed batches: tokens of
 * all sequences back to back, sequence i spans [cu_seqlens[i], cu_seqlens[i+1]). */
#ifndef DRE_ENCODER_CPU_H
#define DRE_ENCODER_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = LN(word[ids[t]] + pos[t - start of its sequence] + type[0]) * g + b */
void embed_layernorm_cpu(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                         const float *word_emb, const float *pos_emb, const float *type_emb,
                         const float *g, const float *b, float eps, int32_t hidden, float *out);

/* out[t] = in[t] @ w^T (+ bias if not NULL); in [n_tokens, in_dim], w [out_dim, in_dim] */
void linear_cpu(const float *in, const float *w, const float *bias, int32_t n_tokens,
                int32_t in_dim, int32_t out_dim, float *out);

/* x[t] = LN(x[t] + bias + residual[t]) * g + b, in place; bias may be NULL */
void bias_residual_layernorm_cpu(float *x, const float *bias, const float *residual, const float *g,
                                 const float *b, float eps, int32_t n_tokens, int32_t hidden);

/* x[t] = gelu_erf(x[t] + bias), in place; gelu(v) = 0.5 v (1 + erf(v / sqrt 2)) */
void bias_gelu_cpu(float *x, const float *bias, int32_t n_tokens, int32_t dim);

/* Per sequence and head: out = softmax(q k^T / sqrt(head_dim)) v, attending only within
 * the sequence. qkv [n_tokens, 3*hidden] (q | k | v, heads contiguous inside each);
 * out [n_tokens, hidden]. */
void attention_cpu(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                   int32_t head_dim, float *out);

/* out[i] = mean of the sequence's token vectors (or its first, CLS), then x / ||x||
 * if normalize. hidden [n_tokens, dim], out [n_seqs, dim]. */
void pool_normalize_cpu(const float *hidden, const int32_t *cu_seqlens, int32_t n_seqs, int32_t dim,
                        dre_pooling pooling, int normalize, float *out);

typedef struct cpu_encoder cpu_encoder;

dre_status cpu_encoder_create(const dre_model *model, int32_t budget_tokens, cpu_encoder **out);
void cpu_encoder_destroy(cpu_encoder *enc);
dre_status cpu_encoder_encode(cpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out);

#ifdef __cplusplus
}
#endif
#endif
