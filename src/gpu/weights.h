/* gpu/weights.h — a model's weights on the GPU for its encoder: the matrices and the GEMMs'
 * biases as fp16, the LayerNorm parameters fp32, all in one device allocation uploaded once. */
#ifndef DRE_GPU_WEIGHTS_H
#define DRE_GPU_WEIGHTS_H

#include <cuda_runtime_api.h>

#include "dre.h"
#include "kernels.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device pointers of one layer's weights: matrices fp16 [out, in], the GEMMs' biases fp16
 * (the epilogue's type is the output's), LayerNorm parameters fp32. */
typedef struct gpu_layer {
    const fp16_t *qkv_w, *attn_out_w, *ffn_in_w, *ffn_out_w;
    const fp16_t *qkv_b, *attn_out_b, *ffn_in_b, *ffn_out_b;
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} gpu_layer;

typedef struct gpu_weights {
    void *block; /* device: every array below, one allocation */
    const fp16_t *word_emb, *pos_emb, *type_emb;
    const float *emb_ln_g, *emb_ln_b;
    gpu_layer *layers; /* host array of device pointers, n_layers */
} gpu_weights;

/* Uploads model's weights on stream (and waits for them). On failure what was made is in w
 * for dre_gpu_weights_free. */
dre_status dre_gpu_weights_upload(const dre_model *model, cudaStream_t stream, gpu_weights *w);
void dre_gpu_weights_free(gpu_weights *w);

#ifdef __cplusplus
}
#endif
#endif
