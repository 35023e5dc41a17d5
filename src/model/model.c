/* model/model.c — loads a Hugging Face BERT folder: its description (model/config.c) and
 * model.safetensors, converted to fp32 in one arena with q, k and v fused into a single
 * [3*hidden, hidden] projection. The arena's layout is shared with model/random.c. */
#define _POSIX_C_SOURCE 200809L
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/sha256.h"

#define PATH_CAP 4096

/* ---------------------------------------------------------------- weights */

static void format_shape(char *out, size_t cap, int n_dims, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n_dims && used < cap; i++)
        used +=
            (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(out + used, cap - used, "]");
}

/* Finds name (or "bert." name), checks dtype and shape [d0] or [d0, d1] (d1 = 0 for a
 * vector) and converts it to fp32 at dst. */
static dre_status load_tensor(const st_file *file, const char *name, int64_t d0, int64_t d1,
                              float *dst) {
    const char *path = file->path;
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "bert.%s", name);
    const st_tensor *t = dre_st_find(file, name);
    if (!t) t = dre_st_find(file, prefixed);
    if (!t)
        return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s' (or '%s') not found", path, name,
                             prefixed);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "%s: tensor '%s' has dtype %s (dre reads F32, F16 or BF16)", path,
                             t->name, dre_st_dtype_name(t->dtype));
    int64_t want[2] = {d0, d1};
    int want_dims = d1 ? 2 : 1;
    if (t->n_dims != want_dims || t->shape[0] != d0 || (want_dims == 2 && t->shape[1] != d1)) {
        char got_s[128], want_s[64];
        format_shape(got_s, sizeof got_s, t->n_dims, t->shape);
        format_shape(want_s, sizeof want_s, want_dims, want);
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: tensor '%s' has shape %s, expected %s (from config.json)", path,
                             t->name, got_s, want_s);
    }
    dre_st_to_f32(t->data, t->dtype, t->n_elements, dst);
    return DRE_OK;
}

/* Floats of one array, rounded up so every array starts 64-byte aligned. */
static size_t padded(size_t n_floats) { return (n_floats + 15) & ~(size_t)15; }

static float *take(float **next, size_t n_floats) {
    float *p = *next;
    *next += padded(n_floats);
    return p;
}

static size_t arena_floats(const dre_model_info *in) {
    size_t h = (size_t)in->hidden, ff = (size_t)in->intermediate;
    size_t emb = padded((size_t)in->vocab_size * h) + padded((size_t)in->max_positions * h) +
                 padded((size_t)in->type_vocab_size * h) + 2 * padded(h);
    size_t layer = padded(3 * h * h) + padded(3 * h) + padded(h * h) + padded(h) + 4 * padded(h) +
                   padded(ff * h) + padded(ff) + padded(h * ff) + padded(h);
    return emb + (size_t)in->n_layers * layer;
}

dre_status dre_model_alloc_weights(dre_model *m, const char *what) {
    const dre_model_info *in = &m->info;
    const size_t h = (size_t)in->hidden, ff = (size_t)in->intermediate;
    /* the layer table first, then the float arrays, all in one allocation */
    size_t table_bytes = ((size_t)in->n_layers * sizeof(layer_weights) + 63) & ~(size_t)63;
    size_t bytes = table_bytes + arena_floats(in) * sizeof(float);
    m->arena = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!m->arena)
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", what,
                             bytes);
    m->layers = m->arena;
    float *next = (float *)((char *)m->arena + table_bytes);
    m->word_emb = take(&next, (size_t)in->vocab_size * h);
    m->pos_emb = take(&next, (size_t)in->max_positions * h);
    m->type_emb = take(&next, (size_t)in->type_vocab_size * h);
    m->emb_ln_g = take(&next, h);
    m->emb_ln_b = take(&next, h);
    for (int32_t l = 0; l < in->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        lw->qkv_w = take(&next, 3 * h * h);
        lw->qkv_b = take(&next, 3 * h);
        lw->attn_out_w = take(&next, h * h);
        lw->attn_out_b = take(&next, h);
        lw->ln1_g = take(&next, h);
        lw->ln1_b = take(&next, h);
        lw->ffn_in_w = take(&next, ff * h);
        lw->ffn_in_b = take(&next, ff);
        lw->ffn_out_w = take(&next, h * ff);
        lw->ffn_out_b = take(&next, h);
        lw->ln2_g = take(&next, h);
        lw->ln2_b = take(&next, h);
    }
    return DRE_OK;
}

static dre_status load_weights(dre_model *m, const st_file *file) {
    const dre_model_info *in = &m->info;
    const int64_t h = in->hidden, ff = in->intermediate;
    /* Each field of config.json is bounded, but their products are not: count the weights
     * in double (no wrap-around) and refuse a config that needs more than the file can
     * hold (2 bytes a weight at least), before any size_t arithmetic. */
    double dh = (double)h, dff = (double)ff;
    double need = dh * ((double)in->vocab_size + in->max_positions + in->type_vocab_size + 2) +
                  (double)in->n_layers * (4 * dh * dh + 2 * dh * dff + 9 * dh + dff);
    if (need * 2 > (double)file->map_len)
        return dre_set_error(
            DRE_ERR_FORMAT,
            "%s: config.json describes %.0f weights, more than the file's %zu bytes "
            "can hold",
            file->path, need, file->map_len);
    DRE_TRY(dre_model_alloc_weights(m, file->path));
    DRE_TRY(load_tensor(file, "embeddings.word_embeddings.weight", in->vocab_size, h, m->word_emb));
    DRE_TRY(load_tensor(file, "embeddings.position_embeddings.weight", in->max_positions, h,
                        m->pos_emb));
    DRE_TRY(load_tensor(file, "embeddings.token_type_embeddings.weight", in->type_vocab_size, h,
                        m->type_emb));
    DRE_TRY(load_tensor(file, "embeddings.LayerNorm.weight", h, 0, m->emb_ln_g));
    DRE_TRY(load_tensor(file, "embeddings.LayerNorm.bias", h, 0, m->emb_ln_b));

    for (int32_t l = 0; l < in->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        static const char *const qkv_names[3] = {"query", "key", "value"};
        struct {
            const char *suffix;
            int64_t d0, d1;
            float *dst;
        } items[] = {
            {"attention.output.dense.weight", h, h, lw->attn_out_w},
            {"attention.output.dense.bias", h, 0, lw->attn_out_b},
            {"attention.output.LayerNorm.weight", h, 0, lw->ln1_g},
            {"attention.output.LayerNorm.bias", h, 0, lw->ln1_b},
            {"intermediate.dense.weight", ff, h, lw->ffn_in_w},
            {"intermediate.dense.bias", ff, 0, lw->ffn_in_b},
            {"output.dense.weight", h, ff, lw->ffn_out_w},
            {"output.dense.bias", h, 0, lw->ffn_out_b},
            {"output.LayerNorm.weight", h, 0, lw->ln2_g},
            {"output.LayerNorm.bias", h, 0, lw->ln2_b},
        };
        char name[256];
        for (int j = 0; j < 3; j++) {
            /* fused rows: q, then k, then v */
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l,
                     qkv_names[j]);
            DRE_TRY(load_tensor(file, name, h, h, lw->qkv_w + j * h * h));
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv_names[j]);
            DRE_TRY(load_tensor(file, name, h, 0, lw->qkv_b + j * h));
        }
        for (size_t j = 0; j < sizeof items / sizeof items[0]; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, items[j].suffix);
            DRE_TRY(load_tensor(file, name, items[j].d0, items[j].d1, items[j].dst));
        }
    }
    return DRE_OK;
}

/* ---------------------------------------------------------------- public */

dre_status dre_model_open(const char *model_dir, dre_model **out) {
    if (!model_dir || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_model_open: NULL argument");
    *out = NULL;
    dre_model *m = calloc(1, sizeof *m);
    if (!m) return dre_set_error(DRE_ERR_NOMEM, "dre_model_open: out of memory");
    dre_model_info *info = &m->info;
    char path[PATH_CAP];
    st_file file = {0};
    dre_status st;
    if ((st = dre_model_info_read(model_dir, info)) ||
        (st = dre_path_join(path, sizeof path, model_dir, "model.safetensors")) ||
        (st = dre_st_open(path, &file)))
        goto fail;
    if ((st = load_weights(m, &file))) goto fail;
    dre_sha256_hex(file.map, file.map_len, info->weights_sha256);
    dre_st_close(&file);
    *out = m;
    return DRE_OK;
fail:
    dre_st_close(&file);
    dre_model_close(m);
    return st;
}

void dre_model_close(dre_model *model) {
    if (!model) return;
    free(model->arena);
    free(model);
}

const dre_model_info *dre_model_get_info(const dre_model *model) {
    return model ? &model->info : NULL;
}
