/* embed/pipeline.h — the stages of an embed on a ring of windows: read + tokenize, pack +
 * encode, write (see embed/pipeline.c). embed/embed.c sets a run up and hands it here. */
#ifndef DRE_PIPELINE_H
#define DRE_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "dre.h"
#include "index/checkpoint.h"
#include "index/writer.h"
#include "text/corpus.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pipeline_config {
    dre_corpus *reader; /* positioned at the checkpoint's offset */
    const dre_tokenizer *tok;
    dre_encoder *enc;
    index_writer *writer;                /* resumed at the checkpoint */
    int32_t max_length;                  /* tokens per text, with [CLS] and [SEP] */
    const char *prompt;                  /* put before each document's text ("" none) */
    int32_t chunk_tokens, chunk_overlap; /* 0: a sequence (vector) per document */
    int32_t budget_tokens;
    int32_t window_cap;
    int64_t checkpoint_every;
    int n_threads;
    int skip_bad_lines;
    FILE *errors; /* bad lines are listed here when set */
    const char *errors_path;
    dre_embed_progress_fn progress; /* NULL: none */
    void *progress_user;
} pipeline_config;

/* What a run added. */
typedef struct pipeline_counts {
    int64_t docs, vectors, tokens, skipped;
    int64_t truncated; /* documents cut at the max length (not chunked) */
} pipeline_counts;

/* Reads the corpus to its end through the stages into the writer, checkpointing into ck
 * (updated as it goes: offset, line, counts). */
dre_status dre_pipeline_run(const pipeline_config *cfg, checkpoint *ck, pipeline_counts *counts);

#ifdef __cplusplus
}
#endif
#endif
