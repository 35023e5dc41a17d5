/* fuzz_config.c — libFuzzer target: a whole model folder from one input, opened with
 * dre_model_open and dre_tokenizer_open. The input is the folder's files in a fixed order,
 * separated by lines "---8<---" (FUZZ_CONFIG_SEPARATOR); an empty or missing part leaves
 * that file out. Whatever opens must report sane settings and tokenize in range. */
#include "fuzz_util.h"

#include "dre.h"

#define FUZZ_CONFIG_SEPARATOR "\n---8<---\n"

static const char *const config_fuzz_files[] = {
    "config.json",           "modules.json", "1_Pooling/config.json", "sentence_bert_config.json",
    "tokenizer_config.json", "vocab.txt",    "model.safetensors",
};
#define CONFIG_FUZZ_N_FILES (sizeof config_fuzz_files / sizeof config_fuzz_files[0])

/* The first occurrence of needle in [p, p + n), or NULL (memmem is a GNU extension). */
static const uint8_t *config_fuzz_find(const uint8_t *p, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (p[i] == (uint8_t)needle[0] && memcmp(p + i, needle, k) == 0) return p + i;
    return NULL;
}

static void config_fuzz_check_model(const dre_model *model) {
    const dre_model_info *info = dre_model_get_info(model);
    FUZZ_CHECK(info != NULL);
    if (!info) return;
    FUZZ_CHECK(info->n_layers >= 1 && info->hidden >= 1 && info->n_heads >= 1);
    FUZZ_CHECK(info->head_dim * info->n_heads == info->hidden);
    FUZZ_CHECK(info->vocab_size >= 1 && info->type_vocab_size >= 1);
    FUZZ_CHECK(info->max_length >= 1 && info->max_length <= info->max_positions);
    FUZZ_CHECK(info->pooling == DRE_POOL_MEAN || info->pooling == DRE_POOL_CLS);
    FUZZ_CHECK(info->normalize == 0 || info->normalize == 1);
    FUZZ_CHECK(info->layer_norm_eps > 0.0f && info->layer_norm_eps < 1.0f);
    FUZZ_CHECK(strlen(info->weights_sha256) == 64);
    FUZZ_CHECK(memchr(info->name, '\0', sizeof info->name) != NULL);
}

static void config_fuzz_tokenize(const dre_tokenizer *tok, const uint8_t *text, size_t len) {
    int32_t max_length = dre_tokenizer_max_length(tok);
    FUZZ_CHECK(max_length >= 2);
    /* a max_seq_length of 10^9 is the caller's memory to give; ask for less then */
    int32_t ask = max_length <= 4096 ? 0 : 4096;
    int32_t cap = ask ? ask : max_length;
    int32_t *ids = (int32_t *)malloc((size_t)cap * sizeof *ids);
    FUZZ_CHECK(ids != NULL);
    int32_t n_ids = -1;
    if (dre_tokenize(tok, (const char *)text, len, ask, ids, &n_ids) != DRE_OK) {
        FUZZ_FAIL("dre_tokenize failed on an opened tokenizer");
    } else {
        FUZZ_CHECK(n_ids >= 2 && n_ids <= cap);
        for (int32_t i = 0; i < n_ids && i < cap; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < dre_tokenizer_vocab_size(tok));
    }
    free(ids);
}

int fuzz_config_input(const uint8_t *data, size_t size) {
    const uint8_t *part = data, *end = data + size;
    const uint8_t *vocab = NULL;
    size_t vocab_len = 0;
    for (size_t i = 0; i < CONFIG_FUZZ_N_FILES; i++) {
        size_t len = 0;
        const uint8_t *next = NULL;
        if (part) {
            const uint8_t *sep =
                config_fuzz_find(part, (size_t)(end - part), FUZZ_CONFIG_SEPARATOR);
            /* the weights are last: they may hold the separator's bytes */
            if (i == CONFIG_FUZZ_N_FILES - 1) sep = NULL;
            len = sep ? (size_t)(sep - part) : (size_t)(end - part);
            next = sep ? sep + strlen(FUZZ_CONFIG_SEPARATOR) : NULL;
        }
        if (len > 0) {
            char path[4096];
            fuzz_write(config_fuzz_files[i], part, len, path, sizeof path);
        } else {
            fuzz_remove(config_fuzz_files[i]);
        }
        if (i == 5) {
            vocab = part;
            vocab_len = len;
        }
        part = next;
    }

    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fuzz_tmp_dir());
    dre_model *model = NULL;
    dre_status st = dre_model_open(dir, &model);
    FUZZ_CHECK((st == DRE_OK) == (model != NULL));
    if (model) config_fuzz_check_model(model);
    dre_model_close(model);

    dre_tokenizer *tok = NULL;
    st = dre_tokenizer_open(dir, &tok);
    FUZZ_CHECK((st == DRE_OK) == (tok != NULL));
    if (tok) {
        static const char text[] = "Hello, World! [SEP] na\xC3\xAFve \xE5\x8C\x97\xE4\xBA\xAC "
                                   "[MASK]x unaffable \xC2\xA0\xCC\x81";
        config_fuzz_tokenize(tok, (const uint8_t *)text, sizeof text - 1);
        /* the vocabulary's own entries, as text: every special token and piece in reach */
        if (vocab) config_fuzz_tokenize(tok, vocab, vocab_len < 2048 ? vocab_len : 2048);
        dre_tokenizer_close(tok);
    }
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_config_input(data, size);
}
#endif
