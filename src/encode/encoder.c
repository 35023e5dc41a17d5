/* encode/encoder.c — the public encoder: picks the CPU reference or the GPU encoder and
 * forwards packed batches to it. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gpu/cuda_check.h"
#include "cpu/encoder.h"
#include "gpu/encoder.h"

#define DEFAULT_BUDGET_TOKENS 16384

/* A batch queued on the CPU encoder, computed when collected. */
typedef struct cpu_slot {
    int32_t *ids, *cu_seqlens; /* copies, budget_tokens and budget_tokens + 1 */
    int32_t n_seqs;
} cpu_slot;

struct dre_encoder {
    dre_device device;
    int32_t dim;
    int32_t budget_tokens;
    int32_t max_length;
    cpu_encoder *cpu;
    gpu_encoder *gpu;
    /* CPU only (the GPU encoder keeps its own): batches queued, oldest at slots[head];
     * allocated on first submit */
    cpu_slot slots[DRE_ENCODER_DEPTH];
    int head, queued;
};

dre_status dre_device_parse(const char *name, dre_device *out) {
    if (name && strcmp(name, "auto") == 0)
        *out = DRE_DEVICE_AUTO;
    else if (name && strcmp(name, "cpu") == 0)
        *out = DRE_DEVICE_CPU;
    else if (name && strcmp(name, "gpu") == 0)
        *out = DRE_DEVICE_GPU;
    else
        return set_error(DRE_ERR_INVALID_ARG, "unknown device '%s' (expected auto, cpu or gpu)",
                         name ? name : "(null)");
    return DRE_OK;
}

const char *dre_device_name(dre_device device) {
    switch (device) {
    case DRE_DEVICE_AUTO: return "auto";
    case DRE_DEVICE_CPU: return "cpu";
    case DRE_DEVICE_GPU: return "gpu";
    }
    return "?";
}

int dre_gpu_count(void) { return gpu_device_count(); }

dre_status dre_encoder_open(const dre_model *model, dre_device device, int32_t budget_tokens,
                            dre_encoder **out) {
    if (!model || !out) return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_open: NULL argument");
    *out = NULL;
    const dre_model_info *info = &model->info;
    if (budget_tokens <= 0) budget_tokens = DEFAULT_BUDGET_TOKENS;
    if (budget_tokens < info->max_length) budget_tokens = info->max_length;
    if (device == DRE_DEVICE_AUTO)
        device = gpu_device_count() > 0 ? DRE_DEVICE_GPU : DRE_DEVICE_CPU;
    if (device == DRE_DEVICE_GPU && gpu_device_count() == 0)
        return set_error(DRE_ERR_NO_GPU,
                         "--device gpu: no usable CUDA device (driver missing or no GPU); "
                         "use --device cpu or auto");

    dre_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return set_error(DRE_ERR_NOMEM, "dre_encoder_open: out of memory");
    enc->device = device;
    enc->dim = info->hidden;
    enc->budget_tokens = budget_tokens;
    enc->max_length = info->max_length;
    dre_status st = device == DRE_DEVICE_GPU ? gpu_encoder_create(model, budget_tokens, &enc->gpu)
                                             : cpu_encoder_create(model, budget_tokens, &enc->cpu);
    if (st != DRE_OK) {
        free(enc);
        return st;
    }
    *out = enc;
    return DRE_OK;
}

void dre_encoder_close(dre_encoder *enc) {
    if (!enc) return;
    if (enc->gpu) gpu_encoder_destroy(enc->gpu);
    if (enc->cpu) cpu_encoder_destroy(enc->cpu);
    for (int i = 0; i < DRE_ENCODER_DEPTH; i++) {
        free(enc->slots[i].ids);
        free(enc->slots[i].cu_seqlens);
    }
    free(enc);
}

dre_device dre_encoder_device(const dre_encoder *enc) { return enc->device; }
int32_t dre_encoder_dim(const dre_encoder *enc) { return enc->dim; }
int32_t dre_encoder_budget_tokens(const dre_encoder *enc) { return enc->budget_tokens; }
int32_t dre_encoder_max_length(const dre_encoder *enc) { return enc->max_length; }

static dre_status check_batch(const dre_encoder *enc, const int32_t *cu_seqlens, int32_t n_seqs) {
    if (cu_seqlens[0] != 0) return set_error(DRE_ERR_INVALID_ARG, "cu_seqlens[0] must be 0");
    for (int32_t i = 0; i < n_seqs; i++) {
        int32_t len = cu_seqlens[i + 1] - cu_seqlens[i];
        if (len < 1 || len > enc->max_length)
            return set_error(DRE_ERR_INVALID_ARG, "sequence %d has length %d (allowed 1..%d)", i,
                             len, enc->max_length);
    }
    if (cu_seqlens[n_seqs] > enc->budget_tokens)
        return set_error(DRE_ERR_INVALID_ARG, "batch of %d tokens exceeds the budget of %d",
                         cu_seqlens[n_seqs], enc->budget_tokens);
    return DRE_OK;
}

dre_status dre_encoder_encode(dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out) {
    if (!enc || !ids || !cu_seqlens || !out || n_seqs < 0)
        return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_encode: bad argument");
    if (n_seqs == 0) return DRE_OK;
    if (enc->queued) /* the GPU encoder refuses this itself */
        return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_encode: batches are queued");
    DRE_TRY(check_batch(enc, cu_seqlens, n_seqs));
    return enc->gpu ? gpu_encoder_encode(enc->gpu, ids, cu_seqlens, n_seqs, out)
                    : cpu_encoder_encode(enc->cpu, ids, cu_seqlens, n_seqs, out);
}

dre_status dre_encoder_submit(dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs) {
    if (!enc || !ids || !cu_seqlens || n_seqs < 1)
        return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_submit: bad argument");
    DRE_TRY(check_batch(enc, cu_seqlens, n_seqs));
    if (enc->gpu) return gpu_encoder_submit(enc->gpu, ids, cu_seqlens, n_seqs);
    if (enc->queued == DRE_ENCODER_DEPTH)
        return set_error(DRE_ERR_INVALID_ARG,
                         "dre_encoder_submit: %d batches queued already; collect one first",
                         DRE_ENCODER_DEPTH);
    cpu_slot *slot = &enc->slots[(enc->head + enc->queued) % DRE_ENCODER_DEPTH];
    if (!slot->ids) {
        slot->ids = malloc((size_t)enc->budget_tokens * sizeof *slot->ids);
        slot->cu_seqlens = malloc(((size_t)enc->budget_tokens + 1) * sizeof *slot->cu_seqlens);
        if (!slot->ids || !slot->cu_seqlens) {
            free(slot->ids);
            free(slot->cu_seqlens);
            slot->ids = slot->cu_seqlens = NULL;
            return set_error(DRE_ERR_NOMEM, "dre_encoder_submit: out of memory");
        }
    }
    memcpy(slot->ids, ids, (size_t)cu_seqlens[n_seqs] * sizeof *ids);
    memcpy(slot->cu_seqlens, cu_seqlens, ((size_t)n_seqs + 1) * sizeof *cu_seqlens);
    slot->n_seqs = n_seqs;
    enc->queued++;
    return DRE_OK;
}

dre_status dre_encoder_collect(dre_encoder *enc, float *out, int32_t *n_seqs) {
    if (!enc || !out) return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_collect: bad argument");
    if (enc->gpu) return gpu_encoder_collect(enc->gpu, out, n_seqs);
    if (enc->queued == 0)
        return set_error(DRE_ERR_INVALID_ARG, "dre_encoder_collect: no batch is queued");
    const cpu_slot *slot = &enc->slots[enc->head];
    const dre_status st =
        cpu_encoder_encode(enc->cpu, slot->ids, slot->cu_seqlens, slot->n_seqs, out);
    if (st == DRE_OK && n_seqs) *n_seqs = slot->n_seqs;
    enc->head = (enc->head + 1) % DRE_ENCODER_DEPTH;
    enc->queued = st == DRE_OK ? enc->queued - 1 : 0;
    return st;
}
