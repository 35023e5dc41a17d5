/* serve/tei.h — Hugging Face Text Embeddings Inference's API on dre serve: POST /embed (and
 * POST /, as TEI routes it), POST /tokenize, TEI's fields of GET /info and its errors
 * ({"error", "error_type"}). Bodies in, checked and tokenized (in the HTTP thread, as TEI's
 * tokenization workers do) to a server_request; replies out as JSON. Pure functions. */
#ifndef DRE_SERVE_TEI_H
#define DRE_SERVE_TEI_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"
#include "serve/request.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TEI's error types, each with its HTTP status (dre_tei_status). */
typedef enum tei_error {
    TEI_OK = 0,
    TEI_VALIDATION, /* 413 (TEI's; malformed JSON too, 422 as TEI's JSON extractor answers) */
    TEI_TOKENIZER,  /* 422 */
    TEI_EMPTY,      /* 400 */
    TEI_OVERLOADED, /* 429 */
    TEI_BACKEND,    /* 424 */
    TEI_UNHEALTHY   /* 503 */
} tei_error;

int dre_tei_status(tei_error e);
const char *dre_tei_error_name(tei_error e); /* "Validation" ... */
/* {"error": message, "error_type": name}; NULL when out of memory. Caller frees. */
char *dre_tei_error_json(const char *message, tei_error e);
/* The same with a type of another name ("Unauthorized" for a missing key). */
char *dre_tei_error_json_typed(const char *message, const char *type);

/* What parsing needs of the served model. */
typedef struct tei_model {
    const dre_tokenizer *tok;
    int32_t max_length; /* tokens per text, [CLS] and [SEP] included */
    int32_t max_inputs; /* texts per request (TEI's max_client_batch_size) */
    const char *query_prompt, *doc_prompt; /* the prompts named "query" and "document" */
} tei_model;

/* Parses a body of /embed (SERVER_TEI_EMBED: inputs, normalize, truncate,
 * truncation_direction, prompt_name; the texts tokenized into out->ids) or of /tokenize
 * (SERVER_TEI_TOKENIZE: inputs, add_special_tokens). TEI_OK, or the error with its message
 * in err; *status then its HTTP status (422 for malformed JSON). */
tei_error dre_tei_request_parse(const char *body, size_t len, server_endpoint endpoint,
                                const tei_model *m, server_request *out, int *status, char *err,
                                size_t err_cap);

/* /embed's reply: n vectors of dim floats as [[...], ...], printed as /v1/embeddings prints
 * them. NULL when out of memory. Caller frees. */
char *dre_tei_embed_json(const float *vectors, int32_t n, int32_t dim);

/* /tokenize's reply for r's texts: per text its tokens {id, text, special, start, stop}
 * (start, stop: byte offsets into the text; null for [CLS] and [SEP]). NULL when out of
 * memory. Caller frees. */
char *dre_tei_tokenize_json(const server_request *r, const dre_tokenizer *tok);

#ifdef __cplusplus
}
#endif
#endif
