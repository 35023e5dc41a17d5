/* text/sequences.h — the one place that tokenizes for the encoder: texts become token
 * sequences on tokenizer threads (seq_tokenizer), whole, or cut into chunks of a token
 * budget; text/packer.h then sorts and packs them. dre_embed's pipeline, the searcher and
 * dre_encode_texts all go through the two. */
#ifndef DRE_TEXT_SEQUENCES_H
#define DRE_TEXT_SEQUENCES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token sequences back to back: sequence i is ids[start[i] .. start[i] + length[i]), made
 * from text[i] (a chunk of it starting at its wordpiece first[i]; 0 for a whole text).
 * Buffers grow as needed and are kept for reuse. */
typedef struct token_seqs {
    int32_t *ids;
    size_t n_ids, ids_cap;
    size_t *start;
    int32_t *length;
    int32_t *text;
    int32_t *first;
    int32_t n, cap;
    int64_t n_truncated; /* texts cut at the max length (not chunked) */
} token_seqs;

void dre_token_seqs_free(token_seqs *s);
/* Replaces s's sequences by n made already: sequence i is ids[cu_seqlens[i] ..
 * cu_seqlens[i + 1]), of text i. */
dre_status dre_token_seqs_set(token_seqs *s, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n);

typedef struct seq_job seq_job;

/* Tokenizes texts on up to n_threads threads (the calling one included). */
typedef struct seq_tokenizer {
    const dre_tokenizer *tok;
    int32_t max_length; /* tokens per sequence, with [CLS] and [SEP] */
    const char *prompt; /* put before each text, as a string ("" none) */
    size_t prompt_len;
    int32_t chunk_tokens, chunk_overlap; /* 0: a text is one sequence (dre_seq_tokenizer_chunk) */
    int32_t *prompt_pieces;              /* the prompt's wordpieces, for chunks */
    int32_t n_prompt_pieces;
    int n_threads;
    seq_job *jobs;      /* [n_threads], each with the sequences of its texts */
    pthread_t *threads; /* [n_threads] */
} seq_tokenizer;

/* prompt: NULL or "" for none; it must outlive t. */
dre_status dre_seq_tokenizer_init(seq_tokenizer *t, const dre_tokenizer *tok, int32_t max_length,
                                  const char *prompt, int n_threads);
void dre_seq_tokenizer_free(seq_tokenizer *t);
/* Cuts texts longer than chunk_tokens into chunks: a text whose prompt + text takes at
 * most chunk_tokens tokens stays one sequence (tokenized as without chunks); a longer one
 * becomes windows of its wordpieces (its text's, without the prompt) of chunk_tokens - 2 -
 * the prompt's pieces, each after the one before by that less overlap, the last ending
 * with the text, each [CLS] + the prompt's pieces + the window + [SEP]. chunk_tokens must
 * not exceed max_length. */
dre_status dre_seq_tokenizer_chunk(seq_tokenizer *t, int32_t chunk_tokens, int32_t overlap);
/* Replaces out's sequences by those of texts [0, n) (lens[i] bytes each; lens NULL:
 * NUL-terminated), in text order: one per text, prompt + text tokenized as one string (as
 * sentence-transformers does), truncated to max_length; or its chunks. */
dre_status dre_seq_tokenizer_run(seq_tokenizer *t, const char *const *texts, const size_t *lens,
                                 int32_t n, token_seqs *out);

#ifdef __cplusplus
}
#endif
#endif
