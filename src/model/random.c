/* model/random.c — dre_model_open_random: a model of a config.json's shapes with random
 * weights, for benchmarks of models that are not at hand (tools/bench/configs/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/config.h"

#define PATH_CAP 4096

/* splitmix64: the next state's output */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* count floats of scale * uniform(-1, 1) + offset */
static void fill(float *p, size_t count, float scale, float offset, uint64_t *state) {
    for (size_t i = 0; i < count; i++) {
        const float u = (float)(splitmix64(state) >> 40) / 16777216.0f * 2.0f - 1.0f;
        p[i] = scale * u + offset;
    }
}

/* What sentence-transformers' files would say, from the config itself: "max_seq_length",
 * "pooling", "normalize"; and the name, "_name_or_path" or the path. */
static dre_status read_extras(const char *path, dre_model_info *in) {
    cJSON *root;
    DRE_TRY(dre_model_read_json(path, 0, &root));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    snprintf(in->name, sizeof in->name, "%.127s", cJSON_IsString(name) ? name->valuestring : path);
    const cJSON *max_seq = cJSON_GetObjectItemCaseSensitive(root, "max_seq_length");
    in->max_length = in->max_positions;
    if (cJSON_IsNumber(max_seq) && max_seq->valueint >= 1 && max_seq->valueint < in->max_positions)
        in->max_length = max_seq->valueint;
    const cJSON *pooling = cJSON_GetObjectItemCaseSensitive(root, "pooling");
    in->pooling = cJSON_IsString(pooling) && !strcmp(pooling->valuestring, "cls") ? DRE_POOL_CLS
                                                                                  : DRE_POOL_MEAN;
    const cJSON *normalize = cJSON_GetObjectItemCaseSensitive(root, "normalize");
    in->normalize = normalize ? cJSON_IsTrue(normalize) : 1;
    cJSON_Delete(root);
    snprintf(in->weights_sha256, sizeof in->weights_sha256, "random");
    return DRE_OK;
}

dre_status dre_model_open_random(const char *config_path, uint64_t seed, dre_model **out) {
    if (!config_path || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_model_open_random: NULL argument");
    *out = NULL;
    char path[PATH_CAP];
    const size_t len = strlen(config_path);
    if (len >= 5 && !strcmp(config_path + len - 5, ".json"))
        snprintf(path, sizeof path, "%.4000s", config_path);
    else
        snprintf(path, sizeof path, "%.4000s/config.json", config_path);
    dre_model *m = calloc(1, sizeof *m);
    if (!m) return dre_set_error(DRE_ERR_NOMEM, "dre_model_open_random: out of memory");
    dre_model_info *in = &m->info;
    dre_status st = dre_model_config_read(path, in);
    if (st == DRE_OK) st = read_extras(path, in);
    if (st == DRE_OK) st = dre_model_alloc_weights(m, path);
    if (st != DRE_OK) {
        dre_model_close(m);
        return st;
    }
    /* in the order of the arrays; uniform in [-w, w] has std w / sqrt 3 = 0.02, BERT's */
    const size_t h = (size_t)in->hidden, ffn = (size_t)in->intermediate;
    const float w = 0.0346f;
    uint64_t state = seed ^ 0x5eedull;
    fill(m->word_emb, (size_t)in->vocab_size * h, w, 0.0f, &state);
    fill(m->pos_emb, (size_t)in->max_positions * h, w, 0.0f, &state);
    fill(m->type_emb, (size_t)in->type_vocab_size * h, w, 0.0f, &state);
    fill(m->emb_ln_g, h, 0.0f, 1.0f, &state);
    fill(m->emb_ln_b, h, 0.0f, 0.0f, &state);
    for (int32_t l = 0; l < in->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        fill(lw->qkv_w, 3 * h * h, w, 0.0f, &state);
        fill(lw->qkv_b, 3 * h, w, 0.0f, &state);
        fill(lw->attn_out_w, h * h, w, 0.0f, &state);
        fill(lw->attn_out_b, h, w, 0.0f, &state);
        fill(lw->ln1_g, h, 0.0f, 1.0f, &state);
        fill(lw->ln1_b, h, 0.0f, 0.0f, &state);
        fill(lw->ffn_in_w, ffn * h, w, 0.0f, &state);
        fill(lw->ffn_in_b, ffn, w, 0.0f, &state);
        fill(lw->ffn_out_w, h * ffn, w, 0.0f, &state);
        fill(lw->ffn_out_b, h, w, 0.0f, &state);
        fill(lw->ln2_g, h, 0.0f, 1.0f, &state);
        fill(lw->ln2_b, h, 0.0f, 0.0f, &state);
    }
    *out = m;
    return DRE_OK;
}
