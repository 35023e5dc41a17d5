/* fuzz_tokenizer.c — libFuzzer target: dre_tokenize on arbitrary bytes with the real
 * all-MiniLM-L6-v2 vocabulary (and a cased, accent-keeping, no-CJK-split variant of it), at
 * several max lengths. Ids must be in range, framed by [CLS]/[SEP], within max_length, and a
 * shorter max_length must give a prefix of a longer one's wordpieces. */
#include "fuzz_util.h"

#include "dre.h"

#ifndef FUZZ_MODEL_DIR
#error "build with -DFUZZ_MODEL_DIR='\"<repo>/models/all-MiniLM-L6-v2\"'"
#endif

/* The real folder, then the same vocab.txt with the opposite tokenizer_config.json. */
static dre_tokenizer *tokenizer_fuzz_open(int variant) {
    static dre_tokenizer *toks[2];
    static int tried[2];
    if (tried[variant]) return toks[variant];
    tried[variant] = 1;
    const char *dir = FUZZ_MODEL_DIR;
    char variant_dir[4096];
    if (variant) {
        static const char config[] = "{\"do_lower_case\": false, \"strip_accents\": false, "
                                     "\"tokenize_chinese_chars\": false, "
                                     "\"model_max_length\": 40}";
        char path[4096];
        fuzz_write("cased/tokenizer_config.json", (const uint8_t *)config, sizeof config - 1, path,
                   sizeof path);
        fuzz_path(path, sizeof path, "cased/vocab.txt");
        unlink(path);
        if (symlink(FUZZ_MODEL_DIR "/vocab.txt", path) != 0) {
            FUZZ_FAIL("cannot link the model's vocab.txt into the temporary folder");
            return NULL;
        }
        fuzz_path(variant_dir, sizeof variant_dir, "cased");
        dir = variant_dir;
    }
    if (dre_tokenizer_open(dir, &toks[variant]) != DRE_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (run tools/setup.sh to install the model)\n",
                dre_last_error());
        FUZZ_FAIL("dre_tokenizer_open failed");
        return NULL;
    }
    return toks[variant];
}

/* Tokenizes into a buffer of exactly the documented size (so a write past max_length is a
 * heap overflow AddressSanitizer sees) and checks the result. Returns the id count, the
 * ids left in *out (caller frees). */
static int32_t tokenizer_fuzz_run(const dre_tokenizer *tok, const uint8_t *data, size_t size,
                                  int32_t max_length, int32_t **out) {
    int32_t cap = max_length > 0 ? max_length : dre_tokenizer_max_length(tok);
    int32_t *ids = (int32_t *)malloc((size_t)cap * sizeof *ids);
    FUZZ_CHECK(ids != NULL);
    int32_t n_ids = -1;
    dre_status st = dre_tokenize(tok, (const char *)data, size, max_length, ids, &n_ids);
    *out = ids;
    if (st != DRE_OK) {
        fprintf(stderr, "fuzz_tokenizer: max_length %d: %s\n", (int)max_length, dre_last_error());
        FUZZ_FAIL("dre_tokenize failed on valid arguments");
        return 0;
    }
    FUZZ_CHECK(n_ids >= 2 && n_ids <= cap);
    if (n_ids < 2 || n_ids > cap) return 0;
    int32_t vocab = dre_tokenizer_vocab_size(tok);
    for (int32_t i = 0; i < n_ids; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
    const char *first = dre_tokenizer_token(tok, ids[0]);
    const char *last = dre_tokenizer_token(tok, ids[n_ids - 1]);
    FUZZ_CHECK(first && strcmp(first, "[CLS]") == 0);
    FUZZ_CHECK(last && strcmp(last, "[SEP]") == 0);
    return n_ids;
}

int fuzz_tokenizer_input(const uint8_t *data, size_t size) {
    /* 0 and -1 mean the tokenizer's own (256, or 40 for the variant); 2 leaves no room for
     * wordpieces */
    static const int32_t lengths[] = {0, -1, 2, 3, 7, 512};
    for (int variant = 0; variant < 2; variant++) {
        const dre_tokenizer *tok = tokenizer_fuzz_open(variant);
        if (!tok) return 0;
        int32_t *longest = NULL;
        int32_t n_longest = tokenizer_fuzz_run(tok, data, size, 512, &longest);
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
            int32_t *ids = NULL;
            int32_t n_ids = tokenizer_fuzz_run(tok, data, size, lengths[k], &ids);
            /* truncation keeps the first wordpieces: a prefix of the longest run's */
            if (n_ids >= 2 && n_longest >= 2) {
                FUZZ_CHECK(n_ids <= n_longest);
                if (n_ids <= n_longest)
                    FUZZ_CHECK(memcmp(ids + 1, longest + 1, (size_t)(n_ids - 2) * sizeof *ids) ==
                               0);
                /* a cut run is full: only a run that fit may be shorter than its cap */
                int32_t cap = lengths[k] > 0 ? lengths[k] : dre_tokenizer_max_length(tok);
                if (n_ids < cap) FUZZ_CHECK(n_ids == n_longest);
            }
            free(ids);
        }
        free(longest);
    }
    if (size == 0) {
        /* an empty text is [CLS] [SEP]; dre.h allows NULL with length 0 */
        int32_t ids[4], n_ids = -1;
        FUZZ_CHECK(dre_tokenize(tokenizer_fuzz_open(0), NULL, 0, 4, ids, &n_ids) == DRE_OK);
        FUZZ_CHECK(n_ids == 2);
    }
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_tokenizer_input(data, size);
}
#endif
