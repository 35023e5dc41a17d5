/* fuzz_serve_request.c — libFuzzer target: dre serve's request parser on arbitrary bodies,
 * for both endpoints. It must answer 0 or a 4xx with a message, and what it accepts must be
 * well formed: 1..max_inputs texts, NUL-terminated, options in range. */
#include "fuzz_util.h"

#include "dre.h"
#include "serve/request.h"

#define FUZZ_MAX_INPUTS 16
#define FUZZ_DIM 8

static void serve_fuzz_parse(const uint8_t *data, size_t size, server_endpoint endpoint) {
    server_request r;
    char err[512];
    err[0] = '\0';
    const int st = dre_server_request_parse((const char *)data, size, endpoint, FUZZ_MAX_INPUTS,
                                            FUZZ_DIM, &r, err, sizeof err);
    if (st) {
        FUZZ_CHECK(st == 400 || st == 422);
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(r.texts == NULL && r.n_texts == 0);
        return;
    }
    FUZZ_CHECK(r.n_texts >= 1 && r.n_texts <= FUZZ_MAX_INPUTS);
    for (int32_t i = 0; i < r.n_texts; i++)
        FUZZ_CHECK(r.texts[i] != NULL && strlen(r.texts[i]) <= size);
    if (endpoint == SERVER_SEARCH) {
        FUZZ_CHECK(r.search.k >= 1 && r.search.k <= 1000);
        FUZZ_CHECK(r.search.alpha >= 0 && r.search.alpha <= 1);
        FUZZ_CHECK(r.search.n_params >= 0 && r.search.n_params <= DRE_SEARCH_MAX_PARAMS);
        for (int32_t i = 0; i < r.search.n_params; i++)
            FUZZ_CHECK(memchr(r.search.params[i].name, 0, sizeof r.search.params[0].name) != NULL);
    } else {
        FUZZ_CHECK(r.dimensions >= 0 && r.dimensions <= FUZZ_DIM);
    }
    dre_server_request_free(&r);
}

int fuzz_serve_request_input(const uint8_t *data, size_t size) {
    serve_fuzz_parse(data, size, SERVER_SEARCH);
    serve_fuzz_parse(data, size, SERVER_EMBEDDINGS);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_serve_request_input(data, size);
}
#endif
