/* cpu/encoder.c — the fp32 CPU encoder, one backend of encode/backend.h: Hugging Face
 * BertModel's forward pass on packed, unpadded batches, then sentence-transformers pooling
 * and normalisation. It runs the fast path where the CPU has AVX-512 (cpu/gemm.c: packed
 * weights, bias and GELU fused into the products; cpu/attention.c: tiled attention; the
 * residual + LayerNorm rows vectorised), the plain operators of cpu/ops.c otherwise;
 * embeddings and pooling are the operators' own in both. A submitted batch is copied and
 * computed when collected.
 * Work is shared out with OpenMP over rows, panels or (sequence, head) pairs only, so every
 * output is computed by the same arithmetic in the same order at any thread count. */
#include "cpu/encoder.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/vmath.h"
#include "encode/backend.h"

/* the four matrix products of a layer, packed for dre_cpu_gemm */
enum { W_QKV, W_ATTN_OUT, W_FFN_IN, W_FFN_OUT, W_PER_LAYER };

/* A batch queued, computed when collected. */
typedef struct cpu_slot {
    int32_t *ids, *cu_seqlens; /* copies, budget_tokens and budget_tokens + 1 */
    int32_t n_seqs;
} cpu_slot;

struct cpu_encoder {
    const dre_model *model;
    int32_t budget_tokens;
    int32_t max_length;
    int vectorised;      /* dre_cpu_gemm_vectorised() when made (or bf16, int8): AVX-512's */
    dre_precision precision;
    cpu_packed *weights; /* [n_layers][W_PER_LAYER] */
    /* activations, sized once for budget_tokens */
    float *x;         /* [budget, hidden]: layer input and output */
    float *qkv;       /* [budget, 3*hidden] */
    float *ctx;       /* [budget, hidden]: attention output */
    float *mid;       /* [budget, hidden]: after the attention block's LayerNorm */
    float *ffn;       /* [budget, intermediate] */
    cpu_workspace ws; /* per-thread scratch of the GEMMs and attention; threads: OpenMP's
                       * count when the encoder was made */
    void *block;      /* the one allocation behind the arrays above */
    cpu_slot slots[DRE_ENCODER_DEPTH]; /* queued batches, oldest at slots[head] */
    int head, queued;
};

/* floats of scratch a thread needs, a multiple of 16 (64 bytes) */
static size_t scratch_floats(const dre_model_info *info, int32_t max_length, int vectorised) {
    size_t need = (size_t)max_length * max_length; /* dre_attention_cpu_ws's score matrix */
    if (vectorised) {
        const int32_t k = info->intermediate > info->hidden ? info->intermediate : info->hidden;
        const size_t gemm = dre_cpu_gemm_scratch_floats(k);
        const size_t attn = dre_cpu_attention_scratch_floats(max_length, info->head_dim);
        need = gemm > attn ? gemm : attn;
    }
    return (need + 15) / 16 * 16;
}

void dre_cpu_encoder_destroy(cpu_encoder *enc) {
    if (!enc) return;
    if (enc->weights)
        for (int32_t i = 0; i < enc->model->info.n_layers * W_PER_LAYER; i++)
            dre_cpu_pack_free(&enc->weights[i]);
    free(enc->weights);
    free(enc->block);
    for (int i = 0; i < DRE_ENCODER_DEPTH; i++) {
        free(enc->slots[i].ids);
        free(enc->slots[i].cu_seqlens);
    }
    free(enc);
}

static dre_status pack_layers(cpu_encoder *enc) {
    const dre_model_info *info = &enc->model->info;
    enc->weights = calloc((size_t)info->n_layers * W_PER_LAYER, sizeof *enc->weights);
    if (!enc->weights) return dre_set_error(DRE_ERR_NOMEM, "dre_cpu_encoder_create: out of memory");
    const int32_t h = info->hidden, ff = info->intermediate;
    for (int32_t l = 0; l < info->n_layers; l++) {
        const layer_weights *lw = &enc->model->layers[l];
        cpu_packed *w = enc->weights + (size_t)l * W_PER_LAYER;
        dre_status (*pack)(const float *, int32_t, int32_t, cpu_packed *) =
            enc->precision == DRE_PRECISION_BF16   ? dre_cpu_pack_bf16
            : enc->precision == DRE_PRECISION_INT8 ? dre_cpu_pack_int8
                                                   : dre_cpu_pack;
        dre_status st = pack(lw->qkv_w, 3 * h, h, &w[W_QKV]);
        if (st == DRE_OK) st = pack(lw->attn_out_w, h, h, &w[W_ATTN_OUT]);
        if (st == DRE_OK) st = pack(lw->ffn_in_w, ff, h, &w[W_FFN_IN]);
        if (st == DRE_OK) st = pack(lw->ffn_out_w, h, ff, &w[W_FFN_OUT]);
        if (st != DRE_OK) return st;
    }
    return DRE_OK;
}

dre_status dre_cpu_encoder_create(const dre_model *model, int32_t budget_tokens,
                                  dre_precision precision, cpu_encoder **out) {
    if (!model || !out || budget_tokens < 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_cpu_encoder_create: bad argument");
    if ((precision == DRE_PRECISION_BF16 && !dre_cpu_bf16_supported()) ||
        (precision == DRE_PRECISION_INT8 && !dre_cpu_int8_supported()))
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "precision %s needs a CPU with AVX-512 BF16 (avx512_bf16 in "
                             "/proc/cpuinfo: AMD Zen 4 or later, Intel Cooper Lake, Sapphire "
                             "Rapids or later); this one has none: use fp32",
                             dre_precision_name(precision));
    *out = NULL;
    const dre_model_info *info = &model->info;
    cpu_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return dre_set_error(DRE_ERR_NOMEM, "dre_cpu_encoder_create: out of memory");
    enc->model = model;
    enc->budget_tokens = budget_tokens;
    enc->max_length = info->max_positions;
    enc->precision = precision;
    /* bf16 and int8 have one implementation, AVX-512's (DRE_CPU_GEMM=openblas picks fp32's) */
    enc->vectorised = precision != DRE_PRECISION_FP32 || dre_cpu_gemm_vectorised();
    enc->ws.n_threads = omp_get_max_threads();
    enc->ws.floats_per_thread = scratch_floats(info, enc->max_length, enc->vectorised);
    const size_t b = (size_t)budget_tokens, h = (size_t)info->hidden;
    /* every array a multiple of 16 floats, so the scratch after them stays 64-byte aligned */
    const size_t act = (b * h * 3 + b * 3 * h + b * (size_t)info->intermediate + 15) / 16 * 16;
    const size_t floats = act + (size_t)enc->ws.n_threads * enc->ws.floats_per_thread;
    enc->block = aligned_alloc(64, floats * sizeof(float));
    if (!enc->block) {
        free(enc);
        return dre_set_error(DRE_ERR_NOMEM,
                             "dre_cpu_encoder_create: out of memory for %zu MiB of activations "
                             "(budget %d tokens)",
                             floats * sizeof(float) >> 20, budget_tokens);
    }
    float *p = enc->block;
    enc->x = p, p += b * h;
    enc->qkv = p, p += b * 3 * h;
    enc->ctx = p, p += b * h;
    enc->mid = p, p += b * h;
    enc->ffn = p;
    enc->ws.data = (float *)enc->block + act;
    dre_status st = pack_layers(enc);
    if (st != DRE_OK) {
        dre_cpu_encoder_destroy(enc);
        return st;
    }
    *out = enc;
    return DRE_OK;
}

/* x = LayerNorm(x + residual), row by row */
static void residual_layernorm(const cpu_encoder *enc, float *x, const float *residual,
                               const float *g, const float *b, float eps, int32_t n, int32_t h) {
    if (!enc->vectorised) {
        dre_bias_residual_layernorm_cpu(x, NULL, residual, g, b, eps, n, h);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(enc->ws.n_threads) if (n > 16)
    for (int32_t t = 0; t < n; t++)
        vlayernorm_row(x + (size_t)t * h, residual + (size_t)t * h, g, b, eps, h);
}

dre_status dre_cpu_encoder_encode(cpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs, float *out) {
    const dre_model *m = enc->model;
    const dre_model_info *in = &m->info;
    const int32_t n = cu_seqlens[n_seqs], h = in->hidden, ff = in->intermediate;
    const float eps = in->layer_norm_eps;
    dre_embed_layernorm_cpu(ids, cu_seqlens, n_seqs, m->word_emb, m->pos_emb, m->type_emb,
                            m->emb_ln_g, m->emb_ln_b, eps, h, enc->x);
    for (int32_t l = 0; l < in->n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        const cpu_packed *w = enc->weights + (size_t)l * W_PER_LAYER;
        /* attention block: mid = LN(x + attn(x) W_o^T + b_o) */
        dre_cpu_gemm(enc->x, h, n, &w[W_QKV], lw->qkv_b, CPU_EPI_BIAS, enc->qkv, 3 * h, &enc->ws);
        if (enc->vectorised)
            dre_cpu_attention(enc->qkv, cu_seqlens, n_seqs, in->n_heads, in->head_dim,
                              enc->precision != DRE_PRECISION_FP32, enc->ctx, &enc->ws);
        else
            dre_attention_cpu_ws(enc->qkv, cu_seqlens, n_seqs, in->n_heads, in->head_dim, &enc->ws,
                                 enc->ctx);
        dre_cpu_gemm(enc->ctx, h, n, &w[W_ATTN_OUT], lw->attn_out_b, CPU_EPI_BIAS, enc->mid, h,
                     &enc->ws);
        residual_layernorm(enc, enc->mid, enc->x, lw->ln1_g, lw->ln1_b, eps, n, h);
        /* feed-forward block: x = LN(mid + gelu(mid W_i^T + b_i) W_o2^T + b_o2) */
        dre_cpu_gemm(enc->mid, h, n, &w[W_FFN_IN], lw->ffn_in_b, CPU_EPI_BIAS_GELU, enc->ffn, ff,
                     &enc->ws);
        dre_cpu_gemm(enc->ffn, ff, n, &w[W_FFN_OUT], lw->ffn_out_b, CPU_EPI_BIAS, enc->x, h,
                     &enc->ws);
        residual_layernorm(enc, enc->x, enc->mid, lw->ln2_g, lw->ln2_b, eps, n, h);
    }
    dre_pool_normalize_cpu(enc->x, cu_seqlens, n_seqs, h, in->pooling, in->normalize, out);
    return DRE_OK;
}

/* ---------------------------------------------------------------- the backend */

static int one_cpu(void) { return 1; }

static dre_status backend_create(const dre_model *model, int32_t budget_tokens,
                                 dre_precision precision, void **out) {
    return dre_cpu_encoder_create(model, budget_tokens, precision, (cpu_encoder **)out);
}

static void backend_destroy(void *enc) { dre_cpu_encoder_destroy(enc); }

static dre_status backend_submit(void *backend, const int32_t *ids, const int32_t *cu_seqlens,
                                 int32_t n_seqs) {
    cpu_encoder *enc = backend;
    cpu_slot *slot = &enc->slots[(enc->head + enc->queued) % DRE_ENCODER_DEPTH];
    if (!slot->ids) {
        slot->ids = malloc((size_t)enc->budget_tokens * sizeof *slot->ids);
        slot->cu_seqlens = malloc(((size_t)enc->budget_tokens + 1) * sizeof *slot->cu_seqlens);
        if (!slot->ids || !slot->cu_seqlens) {
            free(slot->ids);
            free(slot->cu_seqlens);
            slot->ids = slot->cu_seqlens = NULL;
            enc->queued = 0;
            return dre_set_error(DRE_ERR_NOMEM, "dre_encoder_submit: out of memory");
        }
    }
    memcpy(slot->ids, ids, (size_t)cu_seqlens[n_seqs] * sizeof *ids);
    memcpy(slot->cu_seqlens, cu_seqlens, ((size_t)n_seqs + 1) * sizeof *cu_seqlens);
    slot->n_seqs = n_seqs;
    enc->queued++;
    return DRE_OK;
}

static dre_status backend_collect(void *backend, float *out, int32_t *n_seqs) {
    cpu_encoder *enc = backend;
    const cpu_slot *slot = &enc->slots[enc->head];
    const dre_status st =
        dre_cpu_encoder_encode(enc, slot->ids, slot->cu_seqlens, slot->n_seqs, out);
    if (st == DRE_OK && n_seqs) *n_seqs = slot->n_seqs;
    enc->head = (enc->head + 1) % DRE_ENCODER_DEPTH;
    enc->queued = st == DRE_OK ? enc->queued - 1 : 0;
    return st;
}

const dre_backend_ops dre_backend_cpu = {
    .name = "cpu",
    .device_count = one_cpu,
    .create = backend_create,
    .destroy = backend_destroy,
    .submit = backend_submit,
    .collect = backend_collect,
};
