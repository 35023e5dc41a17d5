/* gpu/encoder.c — the CUDA encoder's host side: the model's weights converted to fp16 and
 * uploaded once, every activation buffer sized once from the token budget, and per packed
 * batch our kernels (kernels/) plus cuBLASLt GEMMs (src/gpu/gemm.c) on one stream:
 *   embed+LN, then per layer: QKV GEMM (+ bias), attention, out GEMM (+ bias + residual),
 *   LN, FFN-in GEMM (+ bias, + GELU in the epilogue or a GELU kernel after), FFN-out GEMM
 *   (+ bias + residual), LN; then pooling (+ L2 norm). Seven or eight launches a layer; the
 *   LayerNorms read each row once, the GEMM epilogues having added bias and residual. */
#include "gpu/encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "encode/backend.h"
#include "gpu/cuda_check.h"
#include "gpu/gemm.h"
#include "gpu/weights.h"
#include "kernels.h"

#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLAS's recommendation for Hopper */
#define DEVICE_ALIGN 256
#define GPU_SLOTS DRE_ENCODER_DEPTH /* batches in flight: one queued while the host takes one */

/* One batch in flight: its pinned copies of the input and the output, and an event
 * recorded after the output's copy back. */
typedef struct staging_slot {
    int32_t *host_ids, *host_cu_seqlens;
    float *host_pooled;
    cudaEvent_t done;
    int32_t n_seqs;
} staging_slot;

struct gpu_encoder {
    dre_model_info info;
    const dre_model *model; /* its info.normalize read per batch (dre_encoder_set_raw_pooling) */
    int32_t budget_tokens; /* tokens of the largest batch; also the most sequences */
    cudaStream_t stream;
    gpu_gemm *gemm;

    gpu_weights w; /* the model's, on the device */

    void *activations; /* device: every buffer below, one allocation */
    int32_t *ids, *cu_seqlens;
    fp16_t *hidden;  /* [T, H] the layer input and output */
    fp16_t *qkv;     /* [T, 3H] */
    fp16_t *context; /* [T, H] attention output */
    fp16_t *proj;    /* [T, H] out-projection and FFN-out GEMM results */
    fp16_t *ffn;     /* [T, I] */
    float *pooled;   /* [T, H] at most T sequences */
    void *cublas_workspace;

    void *pinned;                  /* host, page-locked: the slots' staging buffers */
    staging_slot slots[GPU_SLOTS]; /* batches in flight, oldest at slots[head] */
    int head, in_flight;

    cudaEvent_t *events; /* for profiling, made on first use */
    int n_events;

    int variant[DRE_FAMILY_COUNT]; /* index into the family's variants; 0 is the default */
};

const char *dre_gpu_encoder_variant(const gpu_encoder *enc, dre_kernel_family family) {
    return dre_kernel_family_variants(family)[enc->variant[family]];
}

dre_status dre_gpu_encoder_set_variants(gpu_encoder *enc, const char *spec) {
    return dre_variants_parse(spec, enc->variant);
}

/* ---------------------------------------------------------------- activations */

static size_t carve(size_t *offset, size_t bytes) {
    const size_t at = (*offset + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
    *offset = at + bytes;
    return at;
}

static dre_status allocate_buffers(gpu_encoder *enc) {
    const size_t t = (size_t)enc->budget_tokens, h = (size_t)enc->info.hidden;
    const size_t ffn = (size_t)enc->info.intermediate;
    size_t size = 0;
    const size_t ids_at = carve(&size, t * sizeof(int32_t));
    const size_t cu_at = carve(&size, (t + 1) * sizeof(int32_t));
    const size_t hidden_at = carve(&size, t * h * sizeof(fp16_t));
    const size_t qkv_at = carve(&size, t * 3 * h * sizeof(fp16_t));
    const size_t context_at = carve(&size, t * h * sizeof(fp16_t));
    const size_t proj_at = carve(&size, t * h * sizeof(fp16_t));
    const size_t ffn_at = carve(&size, t * ffn * sizeof(fp16_t));
    const size_t pooled_at = carve(&size, t * h * sizeof(float));
    const size_t workspace_at = carve(&size, CUBLAS_WORKSPACE_BYTES);

    cudaError_t err = cudaMalloc(&enc->activations, size);
    if (err != cudaSuccess) {
        enc->activations = NULL;
        (void)cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc of %zu MiB for batches of %d tokens", size >> 20,
                 enc->budget_tokens);
        return dre_gpu_cuda_error(err, what, "; try a smaller --batch-tokens", __FILE__, __LINE__);
    }
    unsigned char *base = enc->activations;
    enc->ids = (int32_t *)(base + ids_at);
    enc->cu_seqlens = (int32_t *)(base + cu_at);
    enc->hidden = (fp16_t *)(base + hidden_at);
    enc->qkv = (fp16_t *)(base + qkv_at);
    enc->context = (fp16_t *)(base + context_at);
    enc->proj = (fp16_t *)(base + proj_at);
    enc->ffn = (fp16_t *)(base + ffn_at);
    enc->pooled = (float *)(base + pooled_at);
    enc->cublas_workspace = base + workspace_at;
    /* zeros, so a GEMM-only timing before any batch reads finite numbers; on enc->stream
     * so that it is ordered before every later copy and kernel there */
    CUDA_CHECK(cudaMemsetAsync(enc->activations, 0, size, enc->stream));

    size_t pinned = 0, host_ids_at[GPU_SLOTS], host_cu_at[GPU_SLOTS], host_pooled_at[GPU_SLOTS];
    for (int s = 0; s < GPU_SLOTS; s++) {
        host_ids_at[s] = carve(&pinned, t * sizeof(int32_t));
        host_cu_at[s] = carve(&pinned, (t + 1) * sizeof(int32_t));
        host_pooled_at[s] = carve(&pinned, t * h * sizeof(float));
    }
    err = cudaMallocHost(&enc->pinned, pinned);
    if (err != cudaSuccess) {
        enc->pinned = NULL;
        (void)cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "cudaMallocHost of %zu MiB of pinned staging", pinned >> 20);
        return dre_gpu_cuda_error(err, what, "; try a smaller --batch-tokens", __FILE__, __LINE__);
    }
    unsigned char *host = enc->pinned;
    for (int s = 0; s < GPU_SLOTS; s++) {
        staging_slot *slot = &enc->slots[s];
        slot->host_ids = (int32_t *)(host + host_ids_at[s]);
        slot->host_cu_seqlens = (int32_t *)(host + host_cu_at[s]);
        slot->host_pooled = (float *)(host + host_pooled_at[s]);
        CUDA_CHECK(cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming));
    }
    return DRE_OK;
}

/* ---------------------------------------------------------------- create / destroy */

static dre_status check_shapes(const dre_model_info *in) {
    if (in->n_layers < 1 || in->hidden <= 0 || in->n_heads <= 0 || in->intermediate <= 0 ||
        in->vocab_size <= 0 || in->max_positions <= 0 || in->type_vocab_size <= 0 ||
        in->max_length <= 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "encoder_gpu: model '%s' has an empty dimension",
                             in->name);
    if (in->head_dim * in->n_heads != in->hidden ||
        (in->head_dim != 16 && in->head_dim != 32 && in->head_dim != 64))
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "encoder_gpu: model '%s' has head_dim %d (hidden %d / %d heads); the "
                             "attention kernel handles 16, 32 and 64",
                             in->name, in->head_dim, in->hidden, in->n_heads);
    if (in->hidden > KERNELS_MAX_HIDDEN || in->intermediate % 8 != 0)
        return dre_set_error(
            DRE_ERR_UNSUPPORTED,
            "encoder_gpu: model '%s': hidden %d (max %d), or intermediate %d not a "
            "multiple of 8 (the kernels move 16 bytes at a time)",
            in->name, in->hidden, KERNELS_MAX_HIDDEN, in->intermediate);
    if (in->max_length > in->max_positions)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "encoder_gpu: model '%s': max_length %d exceeds max_positions %d",
                             in->name, in->max_length, in->max_positions);
    return DRE_OK;
}

static dre_status init(gpu_encoder *enc, const dre_model *model) {
    DRE_TRY(check_shapes(&model->info));
    CUDA_CHECK(cudaStreamCreateWithFlags(&enc->stream, cudaStreamNonBlocking));
    const char *variants = getenv("DRE_VARIANT");
    if (variants && variants[0]) DRE_TRY(dre_gpu_encoder_set_variants(enc, variants));
    DRE_TRY(dre_gpu_weights_upload(model, enc->stream, &enc->w));
    DRE_TRY(allocate_buffers(enc));
    DRE_TRY(dre_gpu_gemm_create(enc->stream, enc->cublas_workspace, CUBLAS_WORKSPACE_BYTES,
                                &enc->gemm));
    return DRE_OK;
}

dre_status dre_gpu_encoder_create(const dre_model *model, int32_t budget_tokens,
                                  gpu_encoder **out) {
    if (!model || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_create: NULL argument");
    *out = NULL;
    if (budget_tokens < model->info.max_length)
        return dre_set_error(
            DRE_ERR_INVALID_ARG,
            "dre_gpu_encoder_create: budget of %d tokens is below the max length %d", budget_tokens,
            model->info.max_length);
    if (dre_gpu_device_count() == 0)
        return dre_set_error(DRE_ERR_NO_GPU,
                             "--device gpu: no usable CUDA device (driver missing or "
                             "no GPU); use --device cpu or auto");
    DRE_TRY(dre_gpu_context_check());
    gpu_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return dre_set_error(DRE_ERR_NOMEM, "dre_gpu_encoder_create: out of memory");
    enc->info = model->info;
    enc->model = model;
    enc->budget_tokens = budget_tokens;
    dre_status st = init(enc, model);
    if (st != DRE_OK) {
        dre_gpu_encoder_destroy(enc);
        return st;
    }
    *out = enc;
    return DRE_OK;
}

void dre_gpu_encoder_destroy(gpu_encoder *enc) {
    if (!enc) return;
    if (enc->stream) (void)cudaStreamSynchronize(enc->stream);
    for (int i = 0; i < enc->n_events; i++)
        (void)cudaEventDestroy(enc->events[i]);
    for (int s = 0; s < GPU_SLOTS; s++)
        if (enc->slots[s].done) (void)cudaEventDestroy(enc->slots[s].done);
    free(enc->events);
    dre_gpu_gemm_destroy(enc->gemm);
    if (enc->stream) (void)cudaStreamDestroy(enc->stream);
    dre_gpu_weights_free(&enc->w);
    (void)cudaFree(enc->activations);
    (void)cudaFreeHost(enc->pinned);
    free(enc);
}

/* ---------------------------------------------------------------- forward */

/* Events around the operators of one forward pass: ops[i] ran between events[i] and
 * events[i + 1]. NULL when not profiling. */
typedef struct op_marks {
    cudaEvent_t *events;
    dre_op *ops;
    int count;
} op_marks;

static dre_status mark(gpu_encoder *enc, op_marks *marks, dre_op op) {
    if (!marks) return DRE_OK;
    CUDA_CHECK(cudaEventRecord(marks->events[marks->count + 1], enc->stream));
    marks->ops[marks->count++] = op;
    return DRE_OK;
}

/* Enqueues the whole encoder for the batch already in enc->ids / enc->cu_seqlens. */
static dre_status forward(gpu_encoder *enc, int32_t n_tokens, int32_t n_seqs, int32_t max_len,
                          op_marks *marks) {
    const dre_model_info *in = &enc->info;
    const int32_t h = in->hidden, ffn = in->intermediate;
    cudaStream_t s = enc->stream;
    if (marks) CUDA_CHECK(cudaEventRecord(marks->events[0], s));

    CUDA_CHECK(dre_embed_layernorm_launch(enc->ids, enc->cu_seqlens, n_seqs, n_tokens,
                                          enc->w.word_emb, enc->w.pos_emb, enc->w.type_emb,
                                          in->vocab_size, in->max_positions, enc->w.emb_ln_g,
                                          enc->w.emb_ln_b, in->layer_norm_eps, h, enc->hidden, s));
    DRE_TRY(mark(enc, marks, DRE_OP_EMBED));

    const int gelu_tanh = enc->variant[DRE_FAMILY_GELU] == GPU_GELU_TANH;
    for (int32_t l = 0; l < in->n_layers; l++) {
        const gpu_layer *w = &enc->w.layers[l];
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->hidden, w->qkv_w, w->qkv_b, NULL, enc->qkv,
                                 n_tokens, h, 3 * h, GPU_EPILOGUE_BIAS));
        DRE_TRY(mark(enc, marks, DRE_OP_QKV_GEMM));
        CUDA_CHECK(dre_attention_launch(enc->qkv, NULL, enc->cu_seqlens, n_seqs, max_len,
                                        in->n_heads, in->head_dim, enc->context,
                                        (attention_variant)enc->variant[DRE_FAMILY_ATTENTION], s));
        DRE_TRY(mark(enc, marks, DRE_OP_ATTENTION));
        /* proj = context W^T + b + hidden, then hidden = LN(proj) */
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->context, w->attn_out_w, w->attn_out_b, enc->hidden,
                                 enc->proj, n_tokens, h, h, GPU_EPILOGUE_BIAS));
        DRE_TRY(mark(enc, marks, DRE_OP_OUT_GEMM));
        CUDA_CHECK(dre_bias_residual_layernorm_launch(enc->proj, NULL, NULL, w->ln1_g, w->ln1_b,
                                                      in->layer_norm_eps, n_tokens, h, enc->hidden,
                                                      s));
        DRE_TRY(mark(enc, marks, DRE_OP_LN1));
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->hidden, w->ffn_in_w, w->ffn_in_b, NULL, enc->ffn,
                                 n_tokens, h, ffn,
                                 gelu_tanh ? GPU_EPILOGUE_BIAS_GELU : GPU_EPILOGUE_BIAS));
        DRE_TRY(mark(enc, marks, DRE_OP_FFN_IN_GEMM));
        if (!gelu_tanh) CUDA_CHECK(dre_bias_gelu_launch(enc->ffn, NULL, n_tokens, ffn, s));
        DRE_TRY(mark(enc, marks, DRE_OP_GELU));
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->ffn, w->ffn_out_w, w->ffn_out_b, enc->hidden,
                                 enc->proj, n_tokens, ffn, h, GPU_EPILOGUE_BIAS));
        DRE_TRY(mark(enc, marks, DRE_OP_FFN_OUT_GEMM));
        CUDA_CHECK(dre_bias_residual_layernorm_launch(enc->proj, NULL, NULL, w->ln2_g, w->ln2_b,
                                                      in->layer_norm_eps, n_tokens, h, enc->hidden,
                                                      s));
        DRE_TRY(mark(enc, marks, DRE_OP_LN2));
    }

    CUDA_CHECK(dre_pool_normalize_launch(enc->hidden, enc->cu_seqlens, n_seqs, h, in->pooling,
                                         enc->model->info.normalize, enc->pooled, s));
    DRE_TRY(mark(enc, marks, DRE_OP_POOL));
    return DRE_OK;
}

/* The longest sequence of a (checked) batch. */
static int32_t longest(const int32_t *cu_seqlens, int32_t n_seqs) {
    int32_t max_len = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        if (cu_seqlens[i + 1] - cu_seqlens[i] > max_len)
            max_len = cu_seqlens[i + 1] - cu_seqlens[i];
    return max_len;
}

/* Copies the batch to the device through a slot's pinned staging buffers. The device
 * buffers are shared by all slots: on the one stream, this copy runs after the kernels of
 * the batch before. */
static dre_status upload_batch(gpu_encoder *enc, staging_slot *slot, const int32_t *ids,
                               const int32_t *cu_seqlens, int32_t n_seqs) {
    const int32_t n_tokens = cu_seqlens[n_seqs];
    memcpy(slot->host_ids, ids, (size_t)n_tokens * sizeof(int32_t));
    memcpy(slot->host_cu_seqlens, cu_seqlens, ((size_t)n_seqs + 1) * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(enc->ids, slot->host_ids, (size_t)n_tokens * sizeof(int32_t),
                               cudaMemcpyHostToDevice, enc->stream));
    CUDA_CHECK(cudaMemcpyAsync(enc->cu_seqlens, slot->host_cu_seqlens,
                               ((size_t)n_seqs + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                               enc->stream));
    return DRE_OK;
}

/* Drops every batch in flight after a failure: the device may hold half a batch. */
static dre_status abandon(gpu_encoder *enc, dre_status st) {
    (void)cudaStreamSynchronize(enc->stream);
    (void)cudaGetLastError();
    enc->in_flight = 0;
    return st;
}

dre_status dre_gpu_encoder_submit(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs) {
    if (!enc) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_submit: NULL argument");
    DRE_TRY(dre_gpu_context_check());
    if (enc->in_flight == GPU_SLOTS)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "encoder_gpu: %d batches already in flight; collect one first",
                             GPU_SLOTS);
    const int32_t max_len = longest(cu_seqlens, n_seqs);
    /* this slot's previous batch was collected: its event has completed, so its pinned
     * buffers are free */
    staging_slot *slot = &enc->slots[(enc->head + enc->in_flight) % GPU_SLOTS];
    dre_status st = upload_batch(enc, slot, ids, cu_seqlens, n_seqs);
    if (st == DRE_OK) st = forward(enc, cu_seqlens[n_seqs], n_seqs, max_len, NULL);
    if (st != DRE_OK) return abandon(enc, st);
    const size_t out_bytes = (size_t)n_seqs * (size_t)enc->info.hidden * sizeof(float);
    cudaError_t err = cudaMemcpyAsync(slot->host_pooled, enc->pooled, out_bytes,
                                      cudaMemcpyDeviceToHost, enc->stream);
    if (err == cudaSuccess) err = cudaEventRecord(slot->done, enc->stream);
    if (err != cudaSuccess)
        return abandon(enc, dre_gpu_cuda_error(err, "encoder_gpu: queueing a batch", NULL, __FILE__,
                                               __LINE__));
    slot->n_seqs = n_seqs;
    enc->in_flight++;
    return DRE_OK;
}

dre_status dre_gpu_encoder_collect(gpu_encoder *enc, float *out, int32_t *n_seqs) {
    if (!enc || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_collect: NULL argument");
    if (dre_gpu_context_check() != DRE_OK) return abandon(enc, DRE_ERR_CUDA);
    if (enc->in_flight == 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "encoder_gpu: no batch in flight to collect");
    staging_slot *slot = &enc->slots[enc->head];
    const cudaError_t err = cudaEventSynchronize(slot->done);
    if (err != cudaSuccess)
        return abandon(enc, dre_gpu_cuda_error(err, "encoder_gpu: a batch on the device", NULL,
                                               __FILE__, __LINE__));
    memcpy(out, slot->host_pooled, (size_t)slot->n_seqs * (size_t)enc->info.hidden * sizeof(float));
    if (n_seqs) *n_seqs = slot->n_seqs;
    enc->head = (enc->head + 1) % GPU_SLOTS;
    enc->in_flight--;
    return DRE_OK;
}

dre_status dre_gpu_encoder_encode(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs, float *out) {
    if (!enc || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_encode: NULL argument");
    if (enc->in_flight)
        return dre_set_error(DRE_ERR_INVALID_ARG, "encoder_gpu: encode with batches in flight");
    DRE_TRY(dre_gpu_encoder_submit(enc, ids, cu_seqlens, n_seqs));
    return dre_gpu_encoder_collect(enc, out, NULL);
}

/* ---------------------------------------------------------------- profiling */

static dre_status ensure_events(gpu_encoder *enc) {
    const int needed = 3 + 8 * enc->info.n_layers; /* one before, one after each operator */
    if (enc->n_events >= needed) return DRE_OK;
    cudaEvent_t *events = realloc(enc->events, (size_t)needed * sizeof *events);
    if (!events) return dre_set_error(DRE_ERR_NOMEM, "encoder_gpu: out of memory");
    enc->events = events;
    while (enc->n_events < needed) {
        CUDA_CHECK(cudaEventCreate(&enc->events[enc->n_events]));
        enc->n_events++;
    }
    return DRE_OK;
}

dre_status dre_gpu_encoder_profile(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                   int32_t n_seqs, double ms[DRE_OP_COUNT]) {
    if (!enc || !ms)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_profile: NULL argument");
    DRE_TRY(dre_gpu_context_check());
    const int32_t max_len = longest(cu_seqlens, n_seqs);
    DRE_TRY(ensure_events(enc));
    dre_op *ops = malloc((size_t)enc->n_events * sizeof *ops);
    if (!ops) return dre_set_error(DRE_ERR_NOMEM, "encoder_gpu: out of memory");
    op_marks marks = {enc->events, ops, 0};
    dre_status st = DRE_OK;
    cudaError_t err = cudaStreamSynchronize(enc->stream);
    if (err != cudaSuccess)
        st = dre_gpu_cuda_error(err, "encoder_gpu: an earlier batch on the device", NULL, __FILE__,
                                __LINE__);
    if (st == DRE_OK && enc->in_flight)
        st = dre_set_error(DRE_ERR_INVALID_ARG, "encoder_gpu: profiling with batches in flight");
    if (st == DRE_OK) st = upload_batch(enc, &enc->slots[enc->head], ids, cu_seqlens, n_seqs);
    if (st == DRE_OK) st = forward(enc, cu_seqlens[n_seqs], n_seqs, max_len, &marks);
    if (st == DRE_OK) {
        err = cudaStreamSynchronize(enc->stream);
        if (err != cudaSuccess)
            st = dre_gpu_cuda_error(err, "encoder_gpu: the profiled forward pass", NULL, __FILE__,
                                    __LINE__);
    }
    for (int i = 0; i < DRE_OP_COUNT; i++)
        ms[i] = 0.0;
    for (int i = 0; st == DRE_OK && i < marks.count; i++) {
        float elapsed = 0.0f;
        err = cudaEventElapsedTime(&elapsed, enc->events[i], enc->events[i + 1]);
        if (err != cudaSuccess)
            st = dre_gpu_cuda_error(err, "cudaEventElapsedTime", NULL, __FILE__, __LINE__);
        else
            ms[ops[i]] += elapsed;
    }
    free(ops);
    return st;
}

/* The layers' GEMMs alone, with the epilogues the forward pass gives them. */
static dre_status gemms_only(gpu_encoder *enc, int32_t n_tokens) {
    const int32_t h = enc->info.hidden, ffn = enc->info.intermediate;
    const gpu_epilogue ffn_in =
        enc->variant[DRE_FAMILY_GELU] == GPU_GELU_TANH ? GPU_EPILOGUE_BIAS_GELU : GPU_EPILOGUE_BIAS;
    for (int32_t l = 0; l < enc->info.n_layers; l++) {
        const gpu_layer *w = &enc->w.layers[l];
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->hidden, w->qkv_w, w->qkv_b, NULL, enc->qkv,
                                 n_tokens, h, 3 * h, GPU_EPILOGUE_BIAS));
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->context, w->attn_out_w, w->attn_out_b, enc->hidden,
                                 enc->proj, n_tokens, h, h, GPU_EPILOGUE_BIAS));
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->hidden, w->ffn_in_w, w->ffn_in_b, NULL, enc->ffn,
                                 n_tokens, h, ffn, ffn_in));
        DRE_TRY(dre_gpu_gemm_run(enc->gemm, enc->ffn, w->ffn_out_w, w->ffn_out_b, enc->hidden,
                                 enc->proj, n_tokens, ffn, h, GPU_EPILOGUE_BIAS));
    }
    return DRE_OK;
}

dre_status dre_gpu_encoder_gemm_only(gpu_encoder *enc, int32_t n_tokens, int32_t reps, double *ms) {
    if (!enc || !ms || n_tokens < 1 || n_tokens > enc->budget_tokens || reps < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_encoder_gemm_only: bad argument");
    DRE_TRY(dre_gpu_context_check());
    DRE_TRY(ensure_events(enc));
    DRE_TRY(gemms_only(enc, n_tokens)); /* warm-up: cuBLASLt picks and loads its kernels */
    CUDA_CHECK(cudaEventRecord(enc->events[0], enc->stream));
    for (int32_t r = 0; r < reps; r++)
        DRE_TRY(gemms_only(enc, n_tokens));
    CUDA_CHECK(cudaEventRecord(enc->events[1], enc->stream));
    CUDA_CHECK(cudaEventSynchronize(enc->events[1]));
    float elapsed = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&elapsed, enc->events[0], enc->events[1]));
    *ms = elapsed / reps;
    return DRE_OK;
}

/* ---------------------------------------------------------------- the backend */

static dre_status backend_create(const dre_model *model, int32_t budget_tokens,
                                 dre_precision precision, void **out) {
    (void)precision; /* fp16 with fp32 sums: the dispatcher refuses any other */
    return dre_gpu_encoder_create(model, budget_tokens, (gpu_encoder **)out);
}
static void backend_destroy(void *enc) { dre_gpu_encoder_destroy(enc); }
static dre_status backend_submit(void *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                 int32_t n_seqs) {
    return dre_gpu_encoder_submit(enc, ids, cu_seqlens, n_seqs);
}
static dre_status backend_collect(void *enc, float *out, int32_t *n_seqs) {
    return dre_gpu_encoder_collect(enc, out, n_seqs);
}
static dre_status backend_profile(void *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs, double ms[DRE_OP_COUNT]) {
    return dre_gpu_encoder_profile(enc, ids, cu_seqlens, n_seqs, ms);
}
static dre_status backend_gemm_only(void *enc, int32_t n_tokens, int32_t reps, double *ms) {
    return dre_gpu_encoder_gemm_only(enc, n_tokens, reps, ms);
}
static dre_status backend_set_variants(void *enc, const char *spec) {
    return dre_gpu_encoder_set_variants(enc, spec);
}
static const char *backend_variant(const void *enc, dre_kernel_family family) {
    return dre_gpu_encoder_variant(enc, family);
}

const dre_backend_ops dre_backend_gpu = {
    .name = "gpu",
    .device_count = dre_gpu_device_count,
    .create = backend_create,
    .destroy = backend_destroy,
    .submit = backend_submit,
    .collect = backend_collect,
    .profile = backend_profile,
    .gemm_only = backend_gemm_only,
    .set_variants = backend_set_variants,
    .variant = backend_variant,
};
