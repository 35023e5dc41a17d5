/* gpu/encoder.h — the CUDA encoder's host side: fp16 weights uploaded once, buffers
 * sized once from the token budget, our kernels plus cuBLAS GEMMs per layer. */
#ifndef DRE_ENCODER_GPU_H
#define DRE_ENCODER_GPU_H

#include <stdint.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_encoder gpu_encoder;

dre_status gpu_encoder_create(const dre_model *model, int32_t budget_tokens, gpu_encoder **out);
void gpu_encoder_destroy(gpu_encoder *enc);
dre_status gpu_encoder_encode(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out);
/* Queues a batch (upload, forward pass, copy back) and returns; at most two in flight. */
dre_status gpu_encoder_submit(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs);
/* Waits for the oldest batch in flight; its n_seqs x hidden floats go to out. */
dre_status gpu_encoder_collect(gpu_encoder *enc, float *out, int32_t *n_seqs);

/* For `dre bench encoder`: the operators of a forward pass, in order within a layer. */
typedef enum gpu_op {
    GPU_OP_EMBED,        /* embedding gather + LayerNorm */
    GPU_OP_QKV_GEMM,     /* [T,H] x [3H,H]^T */
    GPU_OP_ATTENTION,    /* fused varlen attention, QKV bias included */
    GPU_OP_OUT_GEMM,     /* [T,H] x [H,H]^T */
    GPU_OP_LN1,          /* bias + residual + LayerNorm */
    GPU_OP_FFN_IN_GEMM,  /* [T,H] x [I,H]^T */
    GPU_OP_GELU,         /* bias + GELU */
    GPU_OP_FFN_OUT_GEMM, /* [T,I] x [H,I]^T */
    GPU_OP_LN2,          /* bias + residual + LayerNorm */
    GPU_OP_POOL,         /* pooling + L2 normalisation */
    GPU_OP_COUNT
} gpu_op;

const char *gpu_op_name(gpu_op op);

/* Kernel families with more than one implementation, kept side by side (as llm.c's
 * dev/cuda versions) so one run on a GPU compares them: `dre bench encoder --variant` and
 * the DRE_VARIANT environment variable ("family=name[,family=name]", read when an encoder is
 * created) pick one per family; the first listed is the default. */
typedef enum gpu_family { GPU_FAMILY_ATTENTION, GPU_FAMILY_GELU, GPU_FAMILY_COUNT } gpu_family;

/* The gelu family: cuBLASLt's GELU epilogue (the tanh form) in the FFN-in GEMM, the
 * default, or the exact erf form in a kernel of its own after it (the GEMM's epilogue adding
 * the bias). The tanh form was kept after measuring it against the erf one on the demo
 * corpus (80 title + abstract texts, MiniLM, the emulated GPU): worst cosine to the CPU
 * encoder 0.9999977 (erf: 0.9999995), nDCG@10 0.9678 for both and for the CPU. */
typedef enum gpu_gelu { GPU_GELU_TANH, GPU_GELU_ERF } gpu_gelu;

const char *gpu_family_name(gpu_family family);
/* The family's variants, default first, NULL-terminated. */
const char *const *gpu_family_variants(gpu_family family);
/* Reads a "family=name[,family=name]" list into choice[family] (an index into the family's
 * variants); an unknown family or name is DRE_ERR_INVALID_ARG naming the choices. */
dre_status gpu_variants_parse(const char *spec, int choice[GPU_FAMILY_COUNT]);
/* Selects variants from a "family=name[,family=name]" list; an unknown family or name is
 * DRE_ERR_INVALID_ARG naming the choices. */
dre_status gpu_encoder_set_variants(gpu_encoder *enc, const char *spec);
/* The variant the encoder runs for a family. */
const char *gpu_encoder_variant(const gpu_encoder *enc, gpu_family family);

/* Runs one packed batch (as gpu_encoder_encode, output discarded) with CUDA events between
 * the operators; ms[op] receives each operator's GPU time in milliseconds, summed over
 * the layers. */
dre_status gpu_encoder_profile(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                               int32_t n_seqs, double ms[GPU_OP_COUNT]);

/* Runs only the model's cuBLAS GEMMs (4 per layer) for n_tokens tokens, reps times, on
 * the encoder's buffers; *ms receives the mean milliseconds of one pass. */
dre_status gpu_encoder_gemm_only(gpu_encoder *enc, int32_t n_tokens, int32_t reps, double *ms);

#ifdef __cplusplus
}
#endif
#endif
