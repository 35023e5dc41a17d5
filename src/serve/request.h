/* serve/request.h — dre serve's request bodies and response bodies, apart from HTTP: JSON
 * in, validated, to a server_request; results out as JSON text. Pure functions, so the
 * parser can be fuzzed on its own (tests/fuzz). */
#ifndef DRE_SERVER_REQUEST_H
#define DRE_SERVER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum server_endpoint {
    SERVER_EMBEDDINGS,
    SERVER_SEARCH,
    SERVER_TEI_EMBED,   /* TEI's /embed (serve/tei.h): its texts tokenized already */
    SERVER_TEI_TOKENIZE /* TEI's /tokenize, answered without the queue */
} server_endpoint;

typedef struct server_request {
    server_endpoint endpoint;
    char **texts; /* the inputs (embeddings) or queries (search), owned */
    int32_t n_texts;
    /* embeddings */
    int base64;         /* encoding_format "base64" */
    int32_t dimensions; /* 0: the model's */
    /* search */
    dre_search_options search; /* its params: "params": {"nprobe": 16} */
    int return_text;
    /* TEI: text i's ids are ids[cu_seqlens[i] .. cu_seqlens[i + 1]) (owned) */
    int32_t *ids;
    int32_t *cu_seqlens;
    int normalize;          /* /embed: L2-normalised vectors (TEI's default) */
    int add_special_tokens; /* /tokenize */
} server_request;

/* Parses and checks a request body (len bytes, not NUL-terminated) for the endpoint.
 * Returns 0, or the HTTP status to answer (400: malformed JSON, a missing field or one of
 * the wrong type or value, text that is not UTF-8; 422: more than max_inputs texts) with a
 * message naming the field in err. dim: the model's, the limit of "dimensions". */
int dre_server_request_parse(const char *body, size_t len, server_endpoint endpoint,
                             int32_t max_inputs, int32_t dim, server_request *out, char *err,
                             size_t err_cap);
void dre_server_request_free(server_request *r);
/* Whether s[0 .. n) is well-formed UTF-8. */
int dre_server_valid_utf8(const unsigned char *s, size_t n);

/* The OpenAI-style embeddings response for r: n_texts rows of vectors (dim floats each,
 * unit length), cut to r->dimensions and renormalised where asked, as floats or base64 of
 * little-endian float32. NULL when out of memory. Caller frees. */
char *dre_server_embeddings_json(const server_request *r, const float *vectors, int32_t dim,
                                 const char *model, int64_t tokens);

/* The search response: per query its hits (k = r->search.k apart, n_hits[q] each) with
 * id, title (and text when asked) from the index's docstore. NULL when out of memory or a
 * docstore lookup failed (dre_last_error). Caller frees. */
char *dre_server_search_json(const server_request *r, dre_index *index, const dre_hit *hits,
                             const int32_t *n_hits);

/* {"error": {"message": ..., "type": ...}}; NULL when out of memory. Caller frees. */
char *dre_server_error_json(const char *message, const char *type);

#ifdef __cplusplus
}
#endif
#endif
