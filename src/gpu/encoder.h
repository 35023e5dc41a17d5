/* gpu/encoder.h — the CUDA encoder's host side (dre_backend_gpu in encode/backend.h): fp16
 * weights uploaded once, buffers sized once from the token budget, our kernels plus cuBLAS
 * GEMMs per layer. Its functions trust their batches (encode/encoder.c checks them); the
 * tests also call them directly. */
#ifndef DRE_ENCODER_GPU_H
#define DRE_ENCODER_GPU_H

#include <stdint.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_encoder gpu_encoder;

dre_status dre_gpu_encoder_create(const dre_model *model, int32_t budget_tokens, gpu_encoder **out);
void dre_gpu_encoder_destroy(gpu_encoder *enc);
dre_status dre_gpu_encoder_encode(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs, float *out);
/* Queues a batch (upload, forward pass, copy back) and returns; at most two in flight. */
dre_status dre_gpu_encoder_submit(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs);
/* Waits for the oldest batch in flight; its n_seqs x hidden floats go to out. */
dre_status dre_gpu_encoder_collect(gpu_encoder *enc, float *out, int32_t *n_seqs);

/* The gelu family: cuBLASLt's GELU epilogue (the tanh form) in the FFN-in GEMM, the
 * default, or the exact erf form in a kernel of its own after it (the GEMM's epilogue adding
 * the bias). The tanh form was kept after measuring it against the erf one on the demo
 * corpus (80 title + abstract texts, MiniLM, the emulated GPU): worst cosine to the CPU
 * encoder 0.9999977 (erf: 0.9999995), nDCG@10 0.9678 for both and for the CPU. */
typedef enum gpu_gelu { GPU_GELU_TANH, GPU_GELU_ERF } gpu_gelu;

/* Selects variants from a "family=name[,family=name]" list; an unknown family or name is
 * DRE_ERR_INVALID_ARG naming the choices. */
dre_status dre_gpu_encoder_set_variants(gpu_encoder *enc, const char *spec);
/* The variant the encoder runs for a family. */
const char *dre_gpu_encoder_variant(const gpu_encoder *enc, dre_kernel_family family);

/* Runs one packed batch (as dre_gpu_encoder_encode, output discarded) with CUDA events between
 * the operators; ms[op] receives each operator's GPU time in milliseconds, summed over
 * the layers. */
dre_status dre_gpu_encoder_profile(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                   int32_t n_seqs, double ms[DRE_OP_COUNT]);

/* Runs only the model's cuBLAS GEMMs (4 per layer) for n_tokens tokens, reps times, on
 * the encoder's buffers; *ms receives the mean milliseconds of one pass. */
dre_status dre_gpu_encoder_gemm_only(gpu_encoder *enc, int32_t n_tokens, int32_t reps, double *ms);

#ifdef __cplusplus
}
#endif
#endif
