/* model/model.c — loads a Hugging Face BERT folder: config.json, the sentence-transformers
 * module files (pooling, normalisation, max length) and model.safetensors, converted to
 * fp32 in one arena with q, k and v fused into a single [3*hidden, hidden] projection. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "model/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/safetensors.h"
#include "model/sha256.h"

#define PATH_CAP 4096
/* Config values beyond this are rejected before any size arithmetic. */
#define CONFIG_INT_MAX (1 << 24)

/* ---------------------------------------------------------------- JSON files */

/* Reads and parses a JSON file; *root is NULL (and DRE_OK) if the file is absent and
 * optional. */
static dre_status read_json(const char *path, int optional, cJSON **root) {
    *root = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        if (optional) return DRE_OK;
        return set_error(DRE_ERR_IO, "%s: %s (is this a Hugging Face model folder?)", path,
                         strerror(errno));
    }
    fclose(probe);
    char *text;
    size_t len;
    DRE_TRY(read_file(path, &text, &len));
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*root) {
        /* report the line of the parse error */
        int line = 1;
        for (const char *p = text; end && p < end && p < text + len; p++)
            line += *p == '\n';
        free(text);
        return set_error(DRE_ERR_FORMAT, "%s:%d: invalid JSON", path, line);
    }
    free(text);
    return DRE_OK;
}

/* An integer field in [1, CONFIG_INT_MAX]; *out keeps its value when the key is absent
 * and optional. */
static dre_status json_int(const cJSON *root, const char *path, const char *key, int optional,
                           int32_t *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) {
        if (optional) return DRE_OK;
        return set_error(DRE_ERR_FORMAT, "%s: missing \"%s\"", path, key);
    }
    double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!(v >= 1 && v <= CONFIG_INT_MAX) || floor(v) != v)
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" must be an integer in 1..%d", path, key,
                         CONFIG_INT_MAX);
    *out = (int32_t)v;
    return DRE_OK;
}

static const char *json_string(const cJSON *root, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static dre_status parse_config(const char *dir, dre_model_info *info) {
    char path[PATH_CAP];
    DRE_TRY(path_join(path, sizeof path, dir, "config.json"));
    cJSON *root;
    DRE_TRY(read_json(path, 0, &root));
    dre_status st = DRE_OK;
    if (!cJSON_IsObject(root)) {
        st = set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    const char *model_type = json_string(root, "model_type");
    if (model_type && strcmp(model_type, "bert") != 0) {
        st = set_error(DRE_ERR_UNSUPPORTED, "%s: model_type \"%s\" (dre runs BERT models only)",
                       path, model_type);
        goto done;
    }
    info->type_vocab_size = 2;
    if ((st = json_int(root, path, "num_hidden_layers", 0, &info->n_layers)) ||
        (st = json_int(root, path, "hidden_size", 0, &info->hidden)) ||
        (st = json_int(root, path, "num_attention_heads", 0, &info->n_heads)) ||
        (st = json_int(root, path, "intermediate_size", 0, &info->intermediate)) ||
        (st = json_int(root, path, "max_position_embeddings", 0, &info->max_positions)) ||
        (st = json_int(root, path, "vocab_size", 0, &info->vocab_size)) ||
        (st = json_int(root, path, "type_vocab_size", 1, &info->type_vocab_size)))
        goto done;
    if (info->hidden % info->n_heads != 0) {
        st = set_error(DRE_ERR_FORMAT,
                       "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                       info->hidden, info->n_heads);
        goto done;
    }
    info->head_dim = info->hidden / info->n_heads;

    info->layer_norm_eps = 1e-12f; /* BertConfig's default */
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            st = set_error(DRE_ERR_FORMAT, "%s: \"layer_norm_eps\" must be a number in (0, 1)",
                           path);
            goto done;
        }
        info->layer_norm_eps = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsString(act)) {
        st = set_error(DRE_ERR_UNSUPPORTED,
                       "%s: \"hidden_act\" is not a string (dre supports \"gelu\")", path);
        goto done;
    }
    if (act && strcmp(act->valuestring, "gelu") != 0) {
        st = set_error(DRE_ERR_UNSUPPORTED,
                       "%s: hidden_act \"%s\" is not supported (dre supports \"gelu\", the erf "
                       "form)",
                       path, act->valuestring);
        goto done;
    }
    const char *pos_type = json_string(root, "position_embedding_type");
    if (pos_type && strcmp(pos_type, "absolute") != 0) {
        st = set_error(DRE_ERR_UNSUPPORTED,
                       "%s: position_embedding_type \"%s\" is not supported (only \"absolute\")",
                       path, pos_type);
        goto done;
    }
done:
    cJSON_Delete(root);
    return st;
}

/* 1_Pooling/config.json (or the folder modules.json names): exactly one of the mean or
 * CLS modes. */
static dre_status parse_pooling(const char *dir, const char *sub, dre_model_info *info) {
    char sub_dir[PATH_CAP], path[PATH_CAP];
    DRE_TRY(path_join(sub_dir, sizeof sub_dir, dir, sub));
    DRE_TRY(path_join(path, sizeof path, sub_dir, "config.json"));
    cJSON *root;
    DRE_TRY(read_json(path, 1, &root));
    info->pooling = DRE_POOL_MEAN;
    if (!root) return DRE_OK;
    dre_status st = DRE_OK;
    if (!cJSON_IsObject(root)) {
        st = set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    int n_modes = 0;
    const cJSON *item;
    /* sentence-transformers >= 6 writes "pooling_mode": "mean"; before, one boolean
     * "pooling_mode_<x>" key per mode */
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "pooling_mode");
    if (mode) {
        n_modes++;
        if (cJSON_IsString(mode) && strcmp(mode->valuestring, "mean") == 0) {
            info->pooling = DRE_POOL_MEAN;
        } else if (cJSON_IsString(mode) && strcmp(mode->valuestring, "cls") == 0) {
            info->pooling = DRE_POOL_CLS;
        } else {
            char *shown = cJSON_PrintUnformatted(mode);
            st = set_error(DRE_ERR_UNSUPPORTED,
                           "%s: pooling_mode %s is not supported (dre pools by \"mean\" or "
                           "\"cls\")",
                           path, shown ? shown : "?");
            free(shown);
            goto done;
        }
    }
    cJSON_ArrayForEach(item, root) {
        if (!item->string || strncmp(item->string, "pooling_mode_", 13) != 0) continue;
        if (!cJSON_IsTrue(item)) continue;
        n_modes++;
        if (strcmp(item->string, "pooling_mode_mean_tokens") == 0) {
            info->pooling = DRE_POOL_MEAN;
        } else if (strcmp(item->string, "pooling_mode_cls_token") == 0) {
            info->pooling = DRE_POOL_CLS;
        } else {
            st = set_error(DRE_ERR_UNSUPPORTED,
                           "%s: \"%s\" is not supported (dre pools by mean or CLS)", path,
                           item->string);
            goto done;
        }
    }
    if (n_modes > 1)
        st = set_error(DRE_ERR_UNSUPPORTED,
                       "%s: %d pooling modes at once (dre supports exactly one: mean or CLS)", path,
                       n_modes);
    else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "include_prompt")))
        st = set_error(DRE_ERR_UNSUPPORTED,
                       "%s: \"include_prompt\": false (pooling that leaves out the prompt's "
                       "tokens) is not supported",
                       path);
done:
    cJSON_Delete(root);
    return st;
}

/* The last component of a dotted Python class name. */
static const char *class_name(const char *type) {
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : type;
}

/* modules.json: Transformer, then optionally Pooling and Normalize; any other module
 * would change the embedding, so it is refused. */
static dre_status parse_modules(const char *dir, dre_model_info *info) {
    char path[PATH_CAP];
    DRE_TRY(path_join(path, sizeof path, dir, "modules.json"));
    cJSON *root;
    DRE_TRY(read_json(path, 1, &root));
    info->normalize = 0;
    if (!root) return parse_pooling(dir, "1_Pooling", info);
    dre_status st = DRE_OK;
    char pooling_dir[PATH_CAP] = "1_Pooling";
    if (!cJSON_IsArray(root)) {
        st = set_error(DRE_ERR_FORMAT, "%s: expected a JSON array of modules", path);
        goto done;
    }
    const cJSON *module;
    int index = 0;
    cJSON_ArrayForEach(module, root) {
        const char *type = json_string(module, "type");
        if (!type) {
            st = set_error(DRE_ERR_FORMAT, "%s: module %d has no \"type\"", path, index);
            goto done;
        }
        const char *cls = class_name(type);
        if (strcmp(cls, "Transformer") == 0) {
            /* the folder itself */
        } else if (strcmp(cls, "Pooling") == 0) {
            const char *sub = json_string(module, "path");
            if (sub && sub[0]) snprintf(pooling_dir, sizeof pooling_dir, "%s", sub);
        } else if (strcmp(cls, "Normalize") == 0) {
            info->normalize = 1;
        } else {
            st = set_error(DRE_ERR_UNSUPPORTED,
                           "%s: module \"%s\" is not supported (dre runs Transformer, Pooling "
                           "and Normalize)",
                           path, type);
            goto done;
        }
        index++;
    }
    st = parse_pooling(dir, pooling_dir, info);
done:
    cJSON_Delete(root);
    return st;
}

/* sentence_bert_config.json's max_seq_length, capped by the position table. */
static dre_status parse_max_length(const char *dir, dre_model_info *info) {
    char path[PATH_CAP];
    DRE_TRY(path_join(path, sizeof path, dir, "sentence_bert_config.json"));
    cJSON *root;
    DRE_TRY(read_json(path, 1, &root));
    int32_t max_seq = info->max_positions;
    dre_status st = DRE_OK;
    if (root) {
        if (!cJSON_IsObject(root))
            st = set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
        else
            st = json_int(root, path, "max_seq_length", 1, &max_seq);
        cJSON_Delete(root);
    }
    info->max_length = max_seq < info->max_positions ? max_seq : info->max_positions;
    return st;
}

/* config_sentence_transformers.json's prompts, as sentence-transformers (6.x) applies them
 * in encode_query and encode_document: the prompt named "query", and the one named
 * "document", each "" when absent. (Its default_prompt_name applies to neither: it is for
 * plain encode(); it must still name a prompt.) */
static dre_status parse_prompts(const char *dir, dre_model_info *info) {
    char path[PATH_CAP];
    DRE_TRY(path_join(path, sizeof path, dir, "config_sentence_transformers.json"));
    cJSON *root;
    DRE_TRY(read_json(path, 1, &root));
    info->query_prompt[0] = info->doc_prompt[0] = '\0';
    if (!root) return DRE_OK;
    dre_status st = DRE_OK;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    const cJSON *default_name = cJSON_GetObjectItemCaseSensitive(root, "default_prompt_name");
    const cJSON *item;
    if (!cJSON_IsObject(root) || (prompts && !cJSON_IsObject(prompts)) ||
        (default_name && !cJSON_IsNull(default_name) && !cJSON_IsString(default_name))) {
        st = set_error(DRE_ERR_FORMAT,
                       "%s: expected an object with \"prompts\" (name -> text) and "
                       "\"default_prompt_name\"",
                       path);
        goto done;
    }
    cJSON_ArrayForEach(item, prompts) {
        if (!cJSON_IsString(item) && !cJSON_IsNull(item)) {
            st = set_error(DRE_ERR_FORMAT, "%s: prompt \"%s\" is not a string", path, item->string);
            goto done;
        }
    }
    if (cJSON_IsString(default_name) && strcmp(default_name->valuestring, "query") &&
        strcmp(default_name->valuestring, "document") &&
        !cJSON_GetObjectItemCaseSensitive(prompts, default_name->valuestring)) {
        st = set_error(DRE_ERR_FORMAT, "%s: default_prompt_name \"%s\" is not in \"prompts\"", path,
                       default_name->valuestring);
        goto done;
    }
    const char *names[2] = {"query", "document"};
    char *outs[2] = {info->query_prompt, info->doc_prompt};
    for (int i = 0; i < 2; i++) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(prompts, names[i]);
        if (!cJSON_IsString(prompt)) continue;
        if (strlen(prompt->valuestring) >= DRE_PROMPT_CAP) {
            st = set_error(DRE_ERR_UNSUPPORTED, "%s: prompt \"%s\" is longer than %d bytes", path,
                           names[i], DRE_PROMPT_CAP - 1);
            goto done;
        }
        strcpy(outs[i], prompt->valuestring);
    }
done:
    cJSON_Delete(root);
    return st;
}

/* The folder's base name ("models/all-MiniLM-L6-v2/" -> "all-MiniLM-L6-v2"). */
static void folder_name(const char *dir, char *out, size_t cap) {
    char *resolved = realpath(dir, NULL);
    const char *p = resolved ? resolved : dir;
    size_t end = strlen(p);
    while (end > 1 && p[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && p[start - 1] != '/')
        start--;
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(out, p + start, n);
    out[n] = '\0';
    free(resolved);
}

/* ---------------------------------------------------------------- weights */

/* Floats of one array, rounded up so every array starts 64-byte aligned. */
static size_t padded(size_t n_floats) { return (n_floats + 15) & ~(size_t)15; }

typedef struct weight_loader {
    const st_file *file;
    float *next; /* bump pointer into the arena */
} weight_loader;

static float *take(weight_loader *wl, size_t n_floats) {
    float *p = wl->next;
    wl->next += padded(n_floats);
    return p;
}

static void format_shape(char *out, size_t cap, int n_dims, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n_dims && used < cap; i++)
        used +=
            (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(out + used, cap - used, "]");
}

/* Finds name (or "bert." name), checks dtype and shape [d0] or [d0, d1] (d1 = 0 for a
 * vector) and converts it to fp32 at dst. */
static dre_status load_tensor(weight_loader *wl, const char *name, int64_t d0, int64_t d1,
                              float *dst) {
    const char *path = wl->file->path;
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "bert.%s", name);
    const st_tensor *t = st_find(wl->file, name);
    if (!t) t = st_find(wl->file, prefixed);
    if (!t)
        return set_error(DRE_ERR_FORMAT, "%s: tensor '%s' (or '%s') not found", path, name,
                         prefixed);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return set_error(DRE_ERR_UNSUPPORTED,
                         "%s: tensor '%s' has dtype %s (dre reads F32, F16 or BF16)", path, t->name,
                         st_dtype_name(t->dtype));
    int64_t want[2] = {d0, d1};
    int want_dims = d1 ? 2 : 1;
    if (t->n_dims != want_dims || t->shape[0] != d0 || (want_dims == 2 && t->shape[1] != d1)) {
        char got_s[128], want_s[64];
        format_shape(got_s, sizeof got_s, t->n_dims, t->shape);
        format_shape(want_s, sizeof want_s, want_dims, want);
        return set_error(DRE_ERR_FORMAT,
                         "%s: tensor '%s' has shape %s, expected %s (from config.json)", path,
                         t->name, got_s, want_s);
    }
    st_to_f32(t->data, t->dtype, t->n_elements, dst);
    return DRE_OK;
}

static size_t arena_floats(const dre_model_info *in) {
    size_t h = (size_t)in->hidden, ff = (size_t)in->intermediate;
    size_t emb = padded((size_t)in->vocab_size * h) + padded((size_t)in->max_positions * h) +
                 padded((size_t)in->type_vocab_size * h) + 2 * padded(h);
    size_t layer = padded(3 * h * h) + padded(3 * h) + padded(h * h) + padded(h) + 4 * padded(h) +
                   padded(ff * h) + padded(ff) + padded(h * ff) + padded(h);
    return emb + (size_t)in->n_layers * layer;
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
        return set_error(DRE_ERR_FORMAT,
                         "%s: config.json describes %.0f weights, more than the file's %zu bytes "
                         "can hold",
                         file->path, need, file->map_len);
    /* the layer table first, then the float arrays, all in one allocation */
    size_t table_bytes = ((size_t)in->n_layers * sizeof(layer_weights) + 63) & ~(size_t)63;
    size_t bytes = table_bytes + arena_floats(in) * sizeof(float);
    m->arena = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!m->arena)
        return set_error(DRE_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", file->path,
                         bytes);
    m->layers = m->arena;
    weight_loader wl = {file, (float *)((char *)m->arena + table_bytes)};

    m->word_emb = take(&wl, (size_t)(in->vocab_size * h));
    m->pos_emb = take(&wl, (size_t)(in->max_positions * h));
    m->type_emb = take(&wl, (size_t)(in->type_vocab_size * h));
    m->emb_ln_g = take(&wl, (size_t)h);
    m->emb_ln_b = take(&wl, (size_t)h);
    DRE_TRY(load_tensor(&wl, "embeddings.word_embeddings.weight", in->vocab_size, h, m->word_emb));
    DRE_TRY(load_tensor(&wl, "embeddings.position_embeddings.weight", in->max_positions, h,
                        m->pos_emb));
    DRE_TRY(load_tensor(&wl, "embeddings.token_type_embeddings.weight", in->type_vocab_size, h,
                        m->type_emb));
    DRE_TRY(load_tensor(&wl, "embeddings.LayerNorm.weight", h, 0, m->emb_ln_g));
    DRE_TRY(load_tensor(&wl, "embeddings.LayerNorm.bias", h, 0, m->emb_ln_b));

    for (int32_t l = 0; l < in->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        lw->qkv_w = take(&wl, (size_t)(3 * h * h));
        lw->qkv_b = take(&wl, (size_t)(3 * h));
        lw->attn_out_w = take(&wl, (size_t)(h * h));
        lw->attn_out_b = take(&wl, (size_t)h);
        lw->ln1_g = take(&wl, (size_t)h);
        lw->ln1_b = take(&wl, (size_t)h);
        lw->ffn_in_w = take(&wl, (size_t)(ff * h));
        lw->ffn_in_b = take(&wl, (size_t)ff);
        lw->ffn_out_w = take(&wl, (size_t)(h * ff));
        lw->ffn_out_b = take(&wl, (size_t)h);
        lw->ln2_g = take(&wl, (size_t)h);
        lw->ln2_b = take(&wl, (size_t)h);

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
            DRE_TRY(load_tensor(&wl, name, h, h, lw->qkv_w + j * h * h));
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv_names[j]);
            DRE_TRY(load_tensor(&wl, name, h, 0, lw->qkv_b + j * h));
        }
        for (size_t j = 0; j < sizeof items / sizeof items[0]; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, items[j].suffix);
            DRE_TRY(load_tensor(&wl, name, items[j].d0, items[j].d1, items[j].dst));
        }
    }
    return DRE_OK;
}

/* ---------------------------------------------------------------- public */

dre_status dre_model_open(const char *model_dir, dre_model **out) {
    if (!model_dir || !out) return set_error(DRE_ERR_INVALID_ARG, "dre_model_open: NULL argument");
    *out = NULL;
    dre_model *m = calloc(1, sizeof *m);
    if (!m) return set_error(DRE_ERR_NOMEM, "dre_model_open: out of memory");
    dre_model_info *info = &m->info;
    folder_name(model_dir, info->name, sizeof info->name);

    char path[PATH_CAP];
    st_file file = {0};
    dre_status st;
    if ((st = parse_config(model_dir, info)) || (st = parse_modules(model_dir, info)) ||
        (st = parse_max_length(model_dir, info)) || (st = parse_prompts(model_dir, info)) ||
        (st = path_join(path, sizeof path, model_dir, "model.safetensors")) ||
        (st = st_open(path, &file)))
        goto fail;
    if ((st = load_weights(m, &file))) goto fail;
    sha256_hex(file.map, file.map_len, info->weights_sha256);
    st_close(&file);
    *out = m;
    return DRE_OK;
fail:
    st_close(&file);
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
