/* encode/encoder.c — the public encoder (dre_encoder_*): picks a backend (encode/backend.h:
 * the CPU encoder, or the GPU's), checks every batch once, keeps count of the queued ones and
 * hands them on. It never asks which backend it holds. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "encode/backend.h"

#define DEFAULT_BUDGET_TOKENS 16384

struct dre_encoder {
    const dre_backend_ops *ops;
    void *backend;
    dre_device device;
    dre_precision precision;
    int32_t dim;
    int32_t budget_tokens;
    int32_t max_length;
    int32_t vocab_size;
    int queued; /* batches submitted and not yet collected */
    /* What the backend is given as its model: the model's arrays with its info copied, so
     * that normalisation can be switched off per batch (dre_encoder_set_raw_pooling). The
     * CPU backend pools at collect, the GPU's at submit: the flag is set before both. */
    dre_model view;
    int normalize;                     /* the model's */
    int raw;                           /* for batches submitted from now on */
    int raw_of[DRE_ENCODER_DEPTH];     /* each queued batch's, oldest first */
};

dre_status dre_device_parse(const char *name, dre_device *out) {
    if (name && strcmp(name, "auto") == 0)
        *out = DRE_DEVICE_AUTO;
    else if (name && strcmp(name, "cpu") == 0)
        *out = DRE_DEVICE_CPU;
    else if (name && strcmp(name, "gpu") == 0)
        *out = DRE_DEVICE_GPU;
    else
        return dre_set_error(DRE_ERR_INVALID_ARG, "unknown device '%s' (expected auto, cpu or gpu)",
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

int dre_gpu_count(void) { return dre_backend_gpu.device_count(); }

dre_status dre_precision_parse(const char *name, dre_precision *out) {
    if (name && strcmp(name, "fp32") == 0)
        *out = DRE_PRECISION_FP32;
    else if (name && strcmp(name, "bf16") == 0)
        *out = DRE_PRECISION_BF16;
    else if (name && strcmp(name, "int8") == 0)
        *out = DRE_PRECISION_INT8;
    else
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "unknown precision '%s' (expected fp32, bf16 or int8)",
                             name ? name : "(null)");
    return DRE_OK;
}

const char *dre_precision_name(dre_precision precision) {
    switch (precision) {
    case DRE_PRECISION_FP32: return "fp32";
    case DRE_PRECISION_BF16: return "bf16";
    case DRE_PRECISION_INT8: return "int8";
    }
    return "?";
}

dre_status dre_encoder_open(const dre_model *model, dre_device device, int32_t budget_tokens,
                            dre_encoder **out) {
    return dre_encoder_open_with(model, device, budget_tokens, DRE_PRECISION_FP32, out);
}

dre_status dre_encoder_open_with(const dre_model *model, dre_device device, int32_t budget_tokens,
                                 dre_precision precision, dre_encoder **out) {
    if (!model || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_open: NULL argument");
    *out = NULL;
    if (precision != DRE_PRECISION_FP32 && precision != DRE_PRECISION_BF16 &&
        precision != DRE_PRECISION_INT8)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_open: unknown precision %d",
                             (int)precision);
    const dre_model_info *info = &model->info;
    if (budget_tokens <= 0) budget_tokens = DEFAULT_BUDGET_TOKENS;
    if (budget_tokens < info->max_length) budget_tokens = info->max_length;
    if (device == DRE_DEVICE_AUTO)
        device = dre_backend_gpu.device_count() > 0 ? DRE_DEVICE_GPU : DRE_DEVICE_CPU;
    if (device == DRE_DEVICE_GPU && precision != DRE_PRECISION_FP32)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "precision %s is the CPU encoder's (the GPU encoder computes in "
                             "fp16 with fp32 sums): add --device cpu, or leave the precision "
                             "at fp32",
                             dre_precision_name(precision));

    dre_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return dre_set_error(DRE_ERR_NOMEM, "dre_encoder_open: out of memory");
    enc->ops = device == DRE_DEVICE_GPU ? &dre_backend_gpu : &dre_backend_cpu;
    enc->device = device;
    enc->precision = precision;
    enc->dim = info->hidden;
    enc->budget_tokens = budget_tokens;
    enc->max_length = info->max_length;
    enc->vocab_size = info->vocab_size;
    /* the backend says why it cannot run (no GPU, or a build without CUDA) */
    enc->view = *model;
    enc->normalize = info->normalize;
    const dre_status st = enc->ops->create(&enc->view, budget_tokens, precision, &enc->backend);
    if (st != DRE_OK) {
        free(enc);
        return st;
    }
    *out = enc;
    return DRE_OK;
}

void dre_encoder_close(dre_encoder *enc) {
    if (!enc) return;
    enc->ops->destroy(enc->backend);
    free(enc);
}

dre_device dre_encoder_device(const dre_encoder *enc) { return enc->device; }

dre_precision dre_encoder_precision(const dre_encoder *enc) { return enc->precision; }
int32_t dre_encoder_dim(const dre_encoder *enc) { return enc->dim; }
int32_t dre_encoder_budget_tokens(const dre_encoder *enc) { return enc->budget_tokens; }
int32_t dre_encoder_max_length(const dre_encoder *enc) { return enc->max_length; }

/* The one check of a packed batch; every backend trusts it afterwards. */
static dre_status check_batch(const dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs) {
    if (!ids || !cu_seqlens || n_seqs < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "encoder: an empty or NULL batch");
    if (cu_seqlens[0] != 0) return dre_set_error(DRE_ERR_INVALID_ARG, "cu_seqlens[0] must be 0");
    for (int32_t i = 0; i < n_seqs; i++) {
        const int32_t len = cu_seqlens[i + 1] - cu_seqlens[i];
        if (len < 1 || len > enc->max_length)
            return dre_set_error(DRE_ERR_INVALID_ARG, "sequence %d has length %d (allowed 1..%d)",
                                 i, len, enc->max_length);
        if (cu_seqlens[i + 1] > enc->budget_tokens)
            return dre_set_error(DRE_ERR_INVALID_ARG, "batch exceeds the budget of %d tokens",
                                 enc->budget_tokens);
    }
    const int32_t n_tokens = cu_seqlens[n_seqs];
    for (int32_t t = 0; t < n_tokens; t++)
        if (ids[t] < 0 || ids[t] >= enc->vocab_size)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "token %d has id %d outside the vocabulary (%d)", t, ids[t],
                                 enc->vocab_size);
    return DRE_OK;
}

dre_status dre_encoder_submit(dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs) {
    if (!enc) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_submit: NULL encoder");
    DRE_TRY(check_batch(enc, ids, cu_seqlens, n_seqs));
    if (enc->queued == DRE_ENCODER_DEPTH)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "dre_encoder_submit: %d batches queued already; collect one first",
                             DRE_ENCODER_DEPTH);
    enc->view.info.normalize = enc->raw ? 0 : enc->normalize;
    const dre_status st = enc->ops->submit(enc->backend, ids, cu_seqlens, n_seqs);
    if (st != DRE_OK) {
        enc->queued = 0; /* the backend holds nothing after a failure */
        return st;
    }
    enc->raw_of[enc->queued++] = enc->raw;
    return DRE_OK;
}

dre_status dre_encoder_collect(dre_encoder *enc, float *out, int32_t *n_seqs) {
    if (!enc || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_collect: bad argument");
    if (enc->queued == 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_collect: no batch is queued");
    enc->view.info.normalize = enc->raw_of[0] ? 0 : enc->normalize;
    const dre_status st = enc->ops->collect(enc->backend, out, n_seqs);
    enc->queued = st == DRE_OK ? enc->queued - 1 : 0;
    for (int i = 0; i < enc->queued; i++)
        enc->raw_of[i] = enc->raw_of[i + 1];
    return st;
}

void dre_encoder_set_raw_pooling(dre_encoder *enc, int raw) {
    if (enc) enc->raw = raw != 0;
}

dre_status dre_encoder_encode(dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out) {
    if (!enc || !ids || !cu_seqlens || !out || n_seqs < 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_encode: bad argument");
    if (n_seqs == 0) return DRE_OK;
    if (enc->queued)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_encode: batches are queued");
    DRE_TRY(dre_encoder_submit(enc, ids, cu_seqlens, n_seqs));
    return dre_encoder_collect(enc, out, NULL);
}

/* ---------------------------------------------------------------- the advanced tier */

static dre_status unsupported(const dre_encoder *enc, const char *what) {
    return dre_set_error(DRE_ERR_UNSUPPORTED, "%s: the %s encoder has none (the GPU encoder's)",
                         what, enc->ops->name);
}

dre_status dre_encoder_set_variants(dre_encoder *enc, const char *spec) {
    if (!enc || !spec) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_set_variants: NULL");
    if (!enc->ops->set_variants) return unsupported(enc, "kernel variants");
    return enc->ops->set_variants(enc->backend, spec);
}

const char *dre_encoder_variant(const dre_encoder *enc, dre_kernel_family family) {
    if (!enc || !enc->ops->variant || family < 0 || family >= DRE_FAMILY_COUNT) return NULL;
    return enc->ops->variant(enc->backend, family);
}

dre_status dre_encoder_profile(dre_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                               int32_t n_seqs, double ms[DRE_OP_COUNT]) {
    if (!enc || !ms)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_profile: NULL argument");
    if (!enc->ops->profile) return unsupported(enc, "per-operator profiling");
    if (enc->queued)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_profile: batches are queued");
    DRE_TRY(check_batch(enc, ids, cu_seqlens, n_seqs));
    return enc->ops->profile(enc->backend, ids, cu_seqlens, n_seqs, ms);
}

dre_status dre_encoder_gemm_only(dre_encoder *enc, int32_t n_tokens, int32_t reps, double *ms) {
    if (!enc || !ms || n_tokens < 1 || n_tokens > enc->budget_tokens || reps < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "dre_encoder_gemm_only: %d tokens (budget %d), %d reps", n_tokens,
                             enc ? enc->budget_tokens : 0, reps);
    if (!enc->ops->gemm_only) return unsupported(enc, "a GEMM-only pass");
    if (enc->queued)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_encoder_gemm_only: batches are queued");
    return enc->ops->gemm_only(enc->backend, n_tokens, reps, ms);
}
