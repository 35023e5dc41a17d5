/* gpu/weights.c — a model's weights on the GPU (gpu/weights.h): sized, converted to fp16 on
 * the host into one staging buffer, and copied in one transfer. */
#include "gpu/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gpu/cuda_check.h"

#define DEVICE_ALIGN 256

/* Places arrays in one device allocation. Run once with host == NULL to size it, then
 * with the staging buffer and the device base to convert, copy and get the pointers. */
typedef struct weight_plan {
    size_t size;           /* bytes placed so far */
    unsigned char *host;   /* staging, NULL while sizing */
    unsigned char *device; /* device base, NULL while sizing */
} weight_plan;

static void *place(weight_plan *p, const float *src, size_t count, int as_fp16) {
    const size_t at = (p->size + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
    const size_t bytes = count * (as_fp16 ? sizeof(fp16_t) : sizeof(float));
    p->size = at + bytes;
    if (!p->host) return NULL;
    if (as_fp16) {
        fp16_t *dst = (fp16_t *)(p->host + at);
        for (size_t i = 0; i < count; i++)
            dst[i] = float_to_fp16(src[i]);
    } else {
        memcpy(p->host + at, src, bytes);
    }
    return p->device + at;
}

static void place_weights(gpu_weights *g_w, const dre_model *model, weight_plan *p) {
    const dre_model_info *in = &model->info;
    const size_t h = (size_t)in->hidden, ffn = (size_t)in->intermediate;
    g_w->word_emb = place(p, model->word_emb, (size_t)in->vocab_size * h, 1);
    g_w->pos_emb = place(p, model->pos_emb, (size_t)in->max_positions * h, 1);
    g_w->type_emb = place(p, model->type_emb, (size_t)in->type_vocab_size * h, 1);
    g_w->emb_ln_g = place(p, model->emb_ln_g, h, 0);
    g_w->emb_ln_b = place(p, model->emb_ln_b, h, 0);
    for (int32_t l = 0; l < in->n_layers; l++) {
        const layer_weights *w = &model->layers[l];
        gpu_layer *g = &g_w->layers[l];
        g->qkv_w = place(p, w->qkv_w, 3 * h * h, 1);
        g->qkv_b = place(p, w->qkv_b, 3 * h, 1);
        g->attn_out_w = place(p, w->attn_out_w, h * h, 1);
        g->attn_out_b = place(p, w->attn_out_b, h, 1);
        g->ln1_g = place(p, w->ln1_g, h, 0);
        g->ln1_b = place(p, w->ln1_b, h, 0);
        g->ffn_in_w = place(p, w->ffn_in_w, ffn * h, 1);
        g->ffn_in_b = place(p, w->ffn_in_b, ffn, 1);
        g->ffn_out_w = place(p, w->ffn_out_w, h * ffn, 1);
        g->ffn_out_b = place(p, w->ffn_out_b, h, 1);
        g->ln2_g = place(p, w->ln2_g, h, 0);
        g->ln2_b = place(p, w->ln2_b, h, 0);
    }
}

dre_status dre_gpu_weights_upload(const dre_model *model, cudaStream_t stream, gpu_weights *w) {
    memset(w, 0, sizeof *w);
    w->layers = calloc((size_t)model->info.n_layers, sizeof *w->layers);
    if (!w->layers) return dre_set_error(DRE_ERR_NOMEM, "encoder_gpu: out of memory");
    weight_plan plan = {0, NULL, NULL};
    place_weights(w, model, &plan);
    const size_t bytes = plan.size;
    cudaError_t err = cudaMalloc(&w->block, bytes);
    if (err != cudaSuccess) {
        w->block = NULL;
        (void)cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc of %zu MiB for the model's weights", bytes >> 20);
        return dre_gpu_cuda_error(err, what, NULL, __FILE__, __LINE__);
    }
    unsigned char *staging = malloc(bytes);
    if (!staging)
        return dre_set_error(DRE_ERR_NOMEM, "encoder_gpu: no host memory to stage weights");
    plan = (weight_plan){0, staging, w->block};
    place_weights(w, model, &plan);
    /* On the encoder's stream, not the legacy default stream: the non-blocking stream the kernels
     * run on is not ordered after legacy-stream work, and a pageable cudaMemcpy may return
     * before its DMA has landed. The sync also keeps staging alive until then. */
    err = cudaMemcpyAsync(w->block, staging, bytes, cudaMemcpyHostToDevice, stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    free(staging);
    if (err != cudaSuccess)
        return dre_gpu_cuda_error(err, "cudaMemcpy of the model's weights", NULL, __FILE__,
                                  __LINE__);
    return DRE_OK;
}

void dre_gpu_weights_free(gpu_weights *w) {
    (void)cudaFree(w->block);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
