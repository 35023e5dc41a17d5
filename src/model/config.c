/* model/config.c — what a Hugging Face model folder says of its model, apart from the
 * weights: config.json (shapes, LayerNorm eps, the activation), the sentence-transformers
 * files (modules.json, the pooling folder's config, sentence_bert_config.json's max length,
 * config_sentence_transformers.json's prompts) and the folder's name. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "model/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define PATH_CAP 4096
/* Config values beyond this are rejected before any size arithmetic. */
#define CONFIG_INT_MAX (1 << 24)

/* ---------------------------------------------------------------- JSON files */

/* Reads and parses a JSON file; *root is NULL (and DRE_OK) if the file is absent and
 * optional. */
dre_status dre_model_read_json(const char *path, int optional, cJSON **root) {
    *root = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        if (optional) return DRE_OK;
        return dre_set_error(DRE_ERR_IO, "%s: %s (is this a Hugging Face model folder?)", path,
                             strerror(errno));
    }
    fclose(probe);
    char *text;
    size_t len;
    DRE_TRY(dre_read_file(path, &text, &len));
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*root) {
        /* report the line of the parse error */
        int line = 1;
        for (const char *p = text; end && p < end && p < text + len; p++)
            line += *p == '\n';
        free(text);
        return dre_set_error(DRE_ERR_FORMAT, "%s:%d: invalid JSON", path, line);
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
        return dre_set_error(DRE_ERR_FORMAT, "%s: missing \"%s\"", path, key);
    }
    double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!(v >= 1 && v <= CONFIG_INT_MAX) || floor(v) != v)
        return dre_set_error(DRE_ERR_FORMAT, "%s: \"%s\" must be an integer in 1..%d", path, key,
                             CONFIG_INT_MAX);
    *out = (int32_t)v;
    return DRE_OK;
}

static const char *json_string(const cJSON *root, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

dre_status dre_model_config_read(const char *path, dre_model_info *info) {
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 0, &root));
    dre_status st = DRE_OK;
    if (!cJSON_IsObject(root)) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    const char *model_type = json_string(root, "model_type");
    if (model_type && strcmp(model_type, "bert") != 0) {
        st = dre_set_error(DRE_ERR_UNSUPPORTED, "%s: model_type \"%s\" (dre runs BERT models only)",
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
        st = dre_set_error(DRE_ERR_FORMAT,
                           "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                           info->hidden, info->n_heads);
        goto done;
    }
    info->head_dim = info->hidden / info->n_heads;

    info->layer_norm_eps = 1e-12f; /* BertConfig's default */
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            st = dre_set_error(DRE_ERR_FORMAT, "%s: \"layer_norm_eps\" must be a number in (0, 1)",
                               path);
            goto done;
        }
        info->layer_norm_eps = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsString(act)) {
        st = dre_set_error(DRE_ERR_UNSUPPORTED,
                           "%s: \"hidden_act\" is not a string (dre supports \"gelu\")", path);
        goto done;
    }
    if (act && strcmp(act->valuestring, "gelu") != 0) {
        st = dre_set_error(DRE_ERR_UNSUPPORTED,
                           "%s: hidden_act \"%s\" is not supported (dre supports \"gelu\", the erf "
                           "form)",
                           path, act->valuestring);
        goto done;
    }
    const char *pos_type = json_string(root, "position_embedding_type");
    if (pos_type && strcmp(pos_type, "absolute") != 0) {
        st =
            dre_set_error(DRE_ERR_UNSUPPORTED,
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
    DRE_TRY(dre_path_join(sub_dir, sizeof sub_dir, dir, sub));
    DRE_TRY(dre_path_join(path, sizeof path, sub_dir, "config.json"));
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 1, &root));
    info->pooling = DRE_POOL_MEAN;
    if (!root) return DRE_OK;
    dre_status st = DRE_OK;
    if (!cJSON_IsObject(root)) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
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
            st = dre_set_error(DRE_ERR_UNSUPPORTED,
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
            st = dre_set_error(DRE_ERR_UNSUPPORTED,
                               "%s: \"%s\" is not supported (dre pools by mean or CLS)", path,
                               item->string);
            goto done;
        }
    }
    if (n_modes > 1)
        st = dre_set_error(DRE_ERR_UNSUPPORTED,
                           "%s: %d pooling modes at once (dre supports exactly one: mean or CLS)",
                           path, n_modes);
    else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "include_prompt")))
        st = dre_set_error(DRE_ERR_UNSUPPORTED,
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
    DRE_TRY(dre_path_join(path, sizeof path, dir, "modules.json"));
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 1, &root));
    info->normalize = 0;
    if (!root) return parse_pooling(dir, "1_Pooling", info);
    dre_status st = DRE_OK;
    char pooling_dir[PATH_CAP] = "1_Pooling";
    if (!cJSON_IsArray(root)) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s: expected a JSON array of modules", path);
        goto done;
    }
    const cJSON *module;
    int index = 0;
    cJSON_ArrayForEach(module, root) {
        const char *type = json_string(module, "type");
        if (!type) {
            st = dre_set_error(DRE_ERR_FORMAT, "%s: module %d has no \"type\"", path, index);
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
            st = dre_set_error(DRE_ERR_UNSUPPORTED,
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
    DRE_TRY(dre_path_join(path, sizeof path, dir, "sentence_bert_config.json"));
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 1, &root));
    int32_t max_seq = info->max_positions;
    dre_status st = DRE_OK;
    if (root) {
        if (!cJSON_IsObject(root))
            st = dre_set_error(DRE_ERR_FORMAT, "%s: expected a JSON object", path);
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
    DRE_TRY(dre_path_join(path, sizeof path, dir, "config_sentence_transformers.json"));
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 1, &root));
    info->query_prompt[0] = info->doc_prompt[0] = '\0';
    if (!root) return DRE_OK;
    dre_status st = DRE_OK;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    const cJSON *default_name = cJSON_GetObjectItemCaseSensitive(root, "default_prompt_name");
    const cJSON *item;
    if (!cJSON_IsObject(root) || (prompts && !cJSON_IsObject(prompts)) ||
        (default_name && !cJSON_IsNull(default_name) && !cJSON_IsString(default_name))) {
        st = dre_set_error(DRE_ERR_FORMAT,
                           "%s: expected an object with \"prompts\" (name -> text) and "
                           "\"default_prompt_name\"",
                           path);
        goto done;
    }
    cJSON_ArrayForEach(item, prompts) {
        if (!cJSON_IsString(item) && !cJSON_IsNull(item)) {
            st = dre_set_error(DRE_ERR_FORMAT, "%s: prompt \"%s\" is not a string", path,
                               item->string);
            goto done;
        }
    }
    if (cJSON_IsString(default_name) && strcmp(default_name->valuestring, "query") &&
        strcmp(default_name->valuestring, "document") &&
        !cJSON_GetObjectItemCaseSensitive(prompts, default_name->valuestring)) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s: default_prompt_name \"%s\" is not in \"prompts\"",
                           path, default_name->valuestring);
        goto done;
    }
    const char *names[2] = {"query", "document"};
    char *outs[2] = {info->query_prompt, info->doc_prompt};
    for (int i = 0; i < 2; i++) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(prompts, names[i]);
        if (!cJSON_IsString(prompt)) continue;
        if (strlen(prompt->valuestring) >= DRE_PROMPT_CAP) {
            st = dre_set_error(DRE_ERR_UNSUPPORTED, "%s: prompt \"%s\" is longer than %d bytes",
                               path, names[i], DRE_PROMPT_CAP - 1);
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

dre_status dre_model_info_read(const char *model_dir, dre_model_info *info) {
    char path[PATH_CAP];
    folder_name(model_dir, info->name, sizeof info->name);
    DRE_TRY(dre_path_join(path, sizeof path, model_dir, "config.json"));
    DRE_TRY(dre_model_config_read(path, info));
    DRE_TRY(parse_modules(model_dir, info));
    DRE_TRY(parse_max_length(model_dir, info));
    return parse_prompts(model_dir, info);
}
