/* fuzz_serve_tei.c — libFuzzer target: dre serve's Text Embeddings Inference bodies (POST
 * /embed and /tokenize) on arbitrary bytes, tokenized with the real all-MiniLM-L6-v2
 * vocabulary at a short max length (so truncation and its refusal both happen). A body must
 * be refused with 400, 413 or 422 and a message, or accepted well formed: 1..max_inputs
 * texts; for /embed each text's ids framed by [CLS]/[SEP], in range, 2..max_length of them;
 * for /tokenize a reply whose offsets lie inside the text, starting in order, null only for the
 * special tokens. */
#include "fuzz_util.h"

#include <cjson/cJSON.h>

#include "dre.h"
#include "serve/tei.h"
#include "text/tokenizer.h"

#ifndef FUZZ_MODEL_DIR
#error "build with -DFUZZ_MODEL_DIR='\"<repo>/models/all-MiniLM-L6-v2\"'"
#endif

#define TEI_FUZZ_MAX_LENGTH 24
#define TEI_FUZZ_MAX_INPUTS 8

static const dre_tokenizer *tei_fuzz_tokenizer(void) {
    static dre_tokenizer *tok;
    static int tried;
    if (!tried) {
        tried = 1;
        if (dre_tokenizer_open(FUZZ_MODEL_DIR, &tok) != DRE_OK) {
            fprintf(stderr, "fuzz_serve_tei: %s (run tools/setup.sh)\n", dre_last_error());
            FUZZ_FAIL("dre_tokenizer_open failed");
        }
    }
    return tok;
}

/* the /tokenize reply of an accepted body, checked against its texts */
static void tei_fuzz_check_tokenize(const server_request *r, const dre_tokenizer *tok) {
    char *json = dre_tei_tokenize_json(r, tok);
    FUZZ_CHECK(json != NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    FUZZ_CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) == r->n_texts);
    int32_t i = 0;
    const cJSON *tokens;
    cJSON_ArrayForEach(tokens, root) {
        const double len = (double)strlen(r->texts[i++]);
        double last_start = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tokens) {
            const cJSON *start = cJSON_GetObjectItem(t, "start"), *stop = cJSON_GetObjectItem(t, "stop");
            const int special = cJSON_IsTrue(cJSON_GetObjectItem(t, "special"));
            FUZZ_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(t, "id")));
            FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItem(t, "text")));
            if (cJSON_IsNull(start) || cJSON_IsNull(stop)) {
                FUZZ_CHECK(special);
                continue;
            }
            FUZZ_CHECK(cJSON_IsNumber(start) && cJSON_IsNumber(stop));
            FUZZ_CHECK(start->valuedouble >= last_start && start->valuedouble <= stop->valuedouble);
            FUZZ_CHECK(stop->valuedouble <= len);
            last_start = start->valuedouble;
        }
    }
    cJSON_Delete(root);
    free(json);
}

static void tei_fuzz_parse(const uint8_t *data, size_t size, server_endpoint endpoint) {
    const dre_tokenizer *tok = tei_fuzz_tokenizer();
    if (!tok) return;
    const tei_model m = {tok, TEI_FUZZ_MAX_LENGTH, TEI_FUZZ_MAX_INPUTS, "query: ", "passage: "};
    server_request r;
    char err[512];
    err[0] = '\0';
    int status = 0;
    const tei_error e =
        dre_tei_request_parse((const char *)data, size, endpoint, &m, &r, &status, err, sizeof err);
    if (e != TEI_OK) {
        FUZZ_CHECK(status == 400 || status == 413 || status == 422);
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(r.texts == NULL && r.n_texts == 0 && r.ids == NULL);
        return;
    }
    FUZZ_CHECK(r.n_texts >= 1 && r.n_texts <= TEI_FUZZ_MAX_INPUTS);
    for (int32_t i = 0; i < r.n_texts; i++)
        FUZZ_CHECK(r.texts[i] != NULL);
    if (endpoint == SERVER_TEI_EMBED) {
        FUZZ_CHECK(r.ids != NULL && r.cu_seqlens != NULL && r.cu_seqlens[0] == 0);
        const int32_t vocab = dre_tokenizer_vocab_size(tok);
        for (int32_t i = 0; i < r.n_texts; i++) {
            const int32_t *ids = r.ids + r.cu_seqlens[i];
            const int32_t n = r.cu_seqlens[i + 1] - r.cu_seqlens[i];
            FUZZ_CHECK(n >= 2 && n <= TEI_FUZZ_MAX_LENGTH);
            FUZZ_CHECK(ids[0] == dre_tokenizer_cls_id(tok) && ids[n - 1] == dre_tokenizer_sep_id(tok));
            for (int32_t j = 0; j < n; j++)
                FUZZ_CHECK(ids[j] >= 0 && ids[j] < vocab);
        }
    } else {
        tei_fuzz_check_tokenize(&r, tok);
    }
    dre_server_request_free(&r);
}

int fuzz_serve_tei_input(const uint8_t *data, size_t size) {
    tei_fuzz_parse(data, size, SERVER_TEI_EMBED);
    tei_fuzz_parse(data, size, SERVER_TEI_TOKENIZE);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_serve_tei_input(data, size);
}
#endif
