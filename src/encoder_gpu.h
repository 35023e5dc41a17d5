/* encoder_gpu.h — the CUDA encoder's host side: fp16 weights uploaded once, buffers
 * sized once from the token budget, our kernels plus cuBLAS GEMMs per layer. */
#ifndef DRE_ENCODER_GPU_H
#define DRE_ENCODER_GPU_H

#include <stdint.h>

#include "dre.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Usable CUDA devices; 0 where there is no driver or no device. */
int gpu_device_count(void);

typedef struct gpu_encoder gpu_encoder;

dre_status gpu_encoder_create(const dre_model *model, int32_t budget_tokens, gpu_encoder **out);
void gpu_encoder_destroy(gpu_encoder *enc);
dre_status gpu_encoder_encode(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out);

#ifdef __cplusplus
}
#endif
#endif
