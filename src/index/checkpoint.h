/* index/checkpoint.h — the record an embed leaves in its index folder while it runs
 * (embed-checkpoint.json): where the corpus was read up to, what is staged, and the
 * settings a resumed run must reuse to produce the index an uninterrupted run would. */
#ifndef DRE_CHECKPOINT_H
#define DRE_CHECKPOINT_H

#include <limits.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHECKPOINT_FIELD_CAP 128

typedef struct checkpoint {
    int64_t offset, line; /* where the next corpus line starts */
    int64_t count;        /* documents staged by this embed (rows base_count ..) */
    int64_t base_count;   /* rows the index had before (--append) */
    int64_t vectors;      /* vectors staged (= count unless documents are chunked) */
    int64_t base_vectors; /* vectors the index had before */
    int64_t skipped;      /* bad lines skipped so far */
    int64_t tokens;       /* tokens of the staged documents */
    /* These three fix how documents are cut into windows and batches; a resumed run
     * reuses them, so it encodes exactly the batches the interrupted one would have. */
    int64_t window_cap;    /* documents per window */
    int64_t every;         /* checkpoint_every */
    int64_t budget_tokens; /* tokens per packed batch */
    int32_t dim;
    char weights_sha256[65];
    char factory[CHECKPOINT_FIELD_CAP];
    dre_quantize quantize; /* and with it (not NONE) rescoring vectors of this kind */
    dre_rescore rescore;
    int32_t rescore_factor;
    int bm25;                            /* the staged docstore keeps a BM25 table */
    int32_t chunk_tokens, chunk_overlap; /* 0: a vector per document */
    char doc_prompt[DRE_PROMPT_CAP], query_prompt[DRE_PROMPT_CAP];
    dre_corpus_format format;
    char id_field[CHECKPOINT_FIELD_CAP], title_field[CHECKPOINT_FIELD_CAP],
        text_field[CHECKPOINT_FIELD_CAP];
    /* The --errors file as of this checkpoint: a resumed run cuts it back to errors_bytes,
     * so the bad lines it reads again are listed once (-1: no file). */
    int64_t errors_bytes;
    char errors_path[PATH_MAX];
} checkpoint;

/* Sets c's quantization from the options (--quantize, --rescore, --rescore-factor: DRE_RESCORE_NONE
 * and factor <= 0 are "not given"), checked, with their defaults. */
dre_status dre_checkpoint_quantize(checkpoint *c, dre_quantize quantize, dre_rescore rescore,
                                   int32_t factor);

/* Sets c's index factory and JSONL field names (NULL fields: "_id", "title", "text"),
 * each checked against the checkpoint's field size. */
dre_status dre_checkpoint_names(checkpoint *c, const char *factory, const char *id_field,
                                const char *title_field, const char *text_field);

/* Replaces the file at path with c (written to path.tmp, synced, renamed). */
dre_status dre_checkpoint_write(const char *path, const checkpoint *c);
/* Reads and checks a checkpoint; errors name the file and the field. */
dre_status dre_checkpoint_read(const char *path, checkpoint *c);

#ifdef __cplusplus
}
#endif
#endif
