/* embed/pipeline.c — the stages of dre_embed: corpus -> tokenizer threads -> length-sorted
 * packed batches -> encoder -> index writer, with checkpoints.
 *
 * Three stages run at once on a ring of N_WINDOWS windows (a window is up to
 * window_cap documents, so memory is bounded by it whatever the corpus size):
 *   producer thread: reads documents and tokenizes them on n_threads threads;
 *   calling thread:  packs the window's sequences into batches and encodes them;
 *   writer thread:   hands the window's documents and vectors to the index writer (one
 *                    transaction per window), and checkpoints.
 *
 * A checkpoint (every checkpoint_every documents, and at the end of the corpus) makes
 * what is staged durable, then replaces embed-checkpoint.json (byte offset and line of
 * the next corpus line, documents staged): a process killed at any moment leaves the
 * last checkpoint intact, and --resume cuts the staging files back to it and reads on
 * from its offset. Windows are cut at checkpoint boundaries, so a resumed run packs and
 * encodes exactly the batches an uninterrupted one would, and produces the same vectors.
 * embed/embed.c sets a run up (fresh, resumed, appended); the index writer (index/writer.h)
 * owns the folder's files and their life cycle. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embed/pipeline.h"

#include "common/common.h"
#include "text/packer.h"

#define N_WINDOWS 4

/* ------------------------------------------------------------------ windows and queues */

typedef struct window {
    int32_t n;
    int64_t *lines;
    /* Strings of the window's documents back to back; offsets because the arena grows. */
    char *arena;
    size_t arena_len, arena_cap;
    size_t *id_off, *title_off, *text_off, *joined_off; /* title_off SIZE_MAX: no title */
    size_t *joined_len;
    const char **joined; /* pointers into the arena, for the tokenizer */
    token_seqs seqs;     /* the documents' token sequences (chunks), in document order */
    index_chunk *chunks; /* a document's chunk records, for the writer */
    int32_t chunks_cap;
    float *vectors;               /* [seqs.n, dim] */
    int32_t vectors_cap;          /* rows vectors holds */
    int64_t end_offset, end_line; /* corpus position after the window */
    int64_t n_bad;                /* bad lines skipped while reading it */
    char *bad;                    /* their messages, a line each, for the --errors file */
    size_t bad_len, bad_cap;      /* bytes of bad used and allocated */
    int checkpoint;               /* a checkpoint follows this window */
    int eof;                      /* the corpus ends with this window */
} window;

typedef struct queue {
    window *items[N_WINDOWS];
    int head, count;
} queue;

static void queue_push(queue *q, window *w) {
    q->items[(q->head + q->count) % N_WINDOWS] = w;
    q->count++;
}

static window *queue_pop(queue *q) {
    window *w = q->items[q->head];
    q->head = (q->head + 1) % N_WINDOWS;
    q->count--;
    return w;
}

typedef struct pipeline {
    const pipeline_config *cfg;
    int32_t dim;

    /* the three stages meet here */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    queue free_q, tokenized_q, encoded_q;
    int failed;
    dre_status fail_status;
    char fail_msg[1024];

    checkpoint *ck; /* what is staged now; written out at each checkpoint */
    pipeline_counts run;

    /* progress */
    double t_start;
    int64_t start_offset, size;

    window windows[N_WINDOWS];
} pipeline;

/* Records the first failure of any stage and wakes the others so they stop. The message
 * is copied because dre_last_error is per thread. */
static void fail(pipeline *p, dre_status st) {
    pthread_mutex_lock(&p->mu);
    if (!p->failed) {
        p->failed = 1;
        p->fail_status = st;
        snprintf(p->fail_msg, sizeof p->fail_msg, "%s", dre_last_error());
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits for a window in q; NULL once some stage has failed. */
static window *take(pipeline *p, queue *q) {
    pthread_mutex_lock(&p->mu);
    while (!p->failed && q->count == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    window *w = p->failed ? NULL : queue_pop(q);
    pthread_mutex_unlock(&p->mu);
    return w;
}

static void give(pipeline *p, queue *q, window *w) {
    pthread_mutex_lock(&p->mu);
    queue_push(q, w);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void window_free(window *w) {
    free(w->lines);
    free(w->arena);
    free(w->id_off);
    free(w->title_off);
    free(w->text_off);
    free(w->joined_off);
    free(w->joined_len);
    free(w->joined);
    dre_token_seqs_free(&w->seqs);
    free(w->chunks);
    free(w->vectors);
    free(w->bad);
    memset(w, 0, sizeof *w);
}

static dre_status window_alloc(window *w, int32_t cap) {
    memset(w, 0, sizeof *w);
    size_t n = (size_t)cap;
    w->lines = malloc(n * sizeof *w->lines);
    w->id_off = malloc(n * sizeof(size_t));
    w->title_off = malloc(n * sizeof(size_t));
    w->text_off = malloc(n * sizeof(size_t));
    w->joined_off = malloc(n * sizeof(size_t));
    w->joined_len = malloc(n * sizeof(size_t));
    w->joined = malloc(n * sizeof *w->joined);
    w->arena_cap = n * 1024;
    w->arena = malloc(w->arena_cap);
    if (!w->lines || !w->id_off || !w->title_off || !w->text_off || !w->joined_off ||
        !w->joined_len || !w->joined || !w->arena) {
        window_free(w);
        return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for a window of %d documents",
                             cap);
    }
    return DRE_OK;
}

/* Copies s (n bytes) into the arena with a NUL; returns its offset in *off. */
static dre_status arena_add(window *w, const char *s, size_t n, size_t *off) {
    if (w->arena_len + n + 1 > w->arena_cap) {
        size_t cap = w->arena_cap * 2;
        while (cap < w->arena_len + n + 1)
            cap *= 2;
        char *p = realloc(w->arena, cap);
        if (!p) return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for document text");
        w->arena = p;
        w->arena_cap = cap;
    }
    memcpy(w->arena + w->arena_len, s, n);
    w->arena[w->arena_len + n] = '\0';
    *off = w->arena_len;
    w->arena_len += n + 1;
    return DRE_OK;
}

/* Keeps the message of a skipped line with its window: the writer lists the window's bad
 * lines when it stages the window, so the --errors file never runs ahead of what is
 * staged (and checkpointed). */
static dre_status note_bad_line(window *w, const char *msg) {
    size_t n = strlen(msg);
    if (w->bad_len + n + 1 > w->bad_cap) {
        size_t cap = w->bad_cap ? w->bad_cap * 2 : 1024;
        while (cap < w->bad_len + n + 1)
            cap *= 2;
        char *p = realloc(w->bad, cap);
        if (!p) return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for bad-line messages");
        w->bad = p;
        w->bad_cap = cap;
    }
    memcpy(w->bad + w->bad_len, msg, n);
    w->bad[w->bad_len + n] = '\n';
    w->bad_len += n + 1;
    return DRE_OK;
}

/* ------------------------------------------------------------------ producer: read + tokenize */

/* Reads documents into w until it holds window_cap of them, a checkpoint is due, or the
 * corpus ends, then tokenizes them. since_checkpoint counts documents read since the last
 * checkpoint. */
static dre_status fill_window(pipeline *p, seq_tokenizer *tokenizer, window *w,
                              int64_t *since_checkpoint) {
    w->n = 0;
    w->arena_len = 0;
    w->n_bad = 0;
    w->bad_len = 0;
    w->checkpoint = 0;
    w->eof = 0;
    int64_t room = p->cfg->checkpoint_every - *since_checkpoint;
    int32_t cap = room < p->cfg->window_cap ? (int32_t)room : p->cfg->window_cap;
    while (w->n < cap) {
        dre_corpus_doc rec;
        int got = 0;
        dre_status st = dre_corpus_next(p->cfg->reader, &rec, &got);
        if (st == DRE_ERR_FORMAT && p->cfg->skip_bad_lines) {
            if (p->cfg->errors) DRE_TRY(note_bad_line(w, dre_last_error()));
            w->n_bad++;
            continue;
        }
        DRE_TRY(st);
        if (!got) {
            w->eof = 1;
            break;
        }
        int32_t i = w->n;
        w->lines[i] = rec.line;
        DRE_TRY(arena_add(w, rec.id, strlen(rec.id), &w->id_off[i]));
        w->title_off[i] = SIZE_MAX;
        if (rec.title) DRE_TRY(arena_add(w, rec.title, strlen(rec.title), &w->title_off[i]));
        DRE_TRY(arena_add(w, rec.text, strlen(rec.text), &w->text_off[i]));
        DRE_TRY(arena_add(w, rec.joined, rec.joined_len, &w->joined_off[i]));
        w->joined_len[i] = rec.joined_len;
        w->n++;
    }
    w->end_offset = dre_corpus_offset(p->cfg->reader);
    w->end_line = dre_corpus_line(p->cfg->reader);
    *since_checkpoint += w->n;
    if (*since_checkpoint >= p->cfg->checkpoint_every || w->eof) {
        w->checkpoint = 1;
        *since_checkpoint = 0;
    }
    for (int32_t i = 0; i < w->n; i++)
        w->joined[i] = w->arena + w->joined_off[i];
    return dre_seq_tokenizer_run(tokenizer, w->joined, w->joined_len, w->n, &w->seqs);
}

static void *producer_main(void *arg) {
    pipeline *p = arg;
    seq_tokenizer tokenizer;
    dre_status st = dre_seq_tokenizer_init(&tokenizer, p->cfg->tok, p->cfg->max_length,
                                           p->cfg->prompt, p->cfg->n_threads);
    if (st == DRE_OK && p->cfg->chunk_tokens > 0)
        st = dre_seq_tokenizer_chunk(&tokenizer, p->cfg->chunk_tokens, p->cfg->chunk_overlap);
    if (st != DRE_OK) {
        dre_seq_tokenizer_free(&tokenizer);
        fail(p, st);
        return NULL;
    }
    int64_t since_checkpoint = 0;
    for (;;) {
        window *w = take(p, &p->free_q);
        if (!w) break;
        st = fill_window(p, &tokenizer, w, &since_checkpoint);
        if (st != DRE_OK) {
            fail(p, st);
            break;
        }
        int eof = w->eof;
        give(p, &p->tokenized_q, w);
        if (eof) break;
    }
    dre_seq_tokenizer_free(&tokenizer);
    return NULL;
}

/* ------------------------------------------------------------------ encoder stage */

static dre_status encode_window(pipeline *p, seq_packer *packer, window *w) {
    if (w->seqs.n > w->vectors_cap) {
        float *v = realloc(w->vectors, (size_t)w->seqs.n * (size_t)p->dim * sizeof *v);
        if (!v)
            return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for %d vectors", w->seqs.n);
        w->vectors = v;
        w->vectors_cap = w->seqs.n;
    }
    return dre_seq_packer_encode(packer, &w->seqs, w->vectors);
}

static dre_status encoder_loop(pipeline *p) {
    seq_packer packer;
    dre_status st = dre_seq_packer_init(&packer, p->cfg->enc, p->cfg->budget_tokens);
    while (st == DRE_OK) {
        window *w = take(p, &p->tokenized_q);
        if (!w) break;
        int eof = w->eof;
        st = encode_window(p, &packer, w);
        if (st != DRE_OK) break;
        give(p, &p->encoded_q, w);
        if (eof) break;
    }
    dre_seq_packer_free(&packer);
    if (st != DRE_OK) fail(p, st);
    return st;
}

/* ------------------------------------------------------------------ writer stage */

static void report_progress(pipeline *p, int done) {
    if (!p->cfg->progress) return;
    dre_embed_progress pr = {.n_docs = p->run.docs,
                             .n_tokens = p->run.tokens,
                             .offset = p->ck->offset,
                             .start = p->start_offset,
                             .size = p->size,
                             .seconds = dre_now_seconds() - p->t_start,
                             .done = done};
    p->cfg->progress(&pr, p->cfg->progress_user);
}

static dre_status write_checkpoint(pipeline *p) {
    if (p->cfg->errors) {
        struct stat st;
        if (fflush(p->cfg->errors) != 0 || fstat(fileno(p->cfg->errors), &st) != 0)
            return dre_set_error(DRE_ERR_IO, "%s: write: %s", p->cfg->errors_path, strerror(errno));
        p->ck->errors_bytes = (int64_t)st.st_size;
    }
    return dre_index_writer_checkpoint(p->cfg->writer, p->ck);
}

/* The window's chunk records, room for as many as it has sequences. */
static dre_status reserve_chunks(window *w) {
    if (w->seqs.n <= w->chunks_cap) return DRE_OK;
    index_chunk *c = realloc(w->chunks, (size_t)w->seqs.n * sizeof *c);
    if (!c) return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for %d chunks", w->seqs.n);
    w->chunks = c;
    w->chunks_cap = w->seqs.n;
    return DRE_OK;
}

static dre_status write_window(pipeline *p, window *w) {
    DRE_TRY(dre_index_writer_begin(p->cfg->writer));
    DRE_TRY(reserve_chunks(w));
    int32_t kept = 0; /* vectors of the documents kept so far, moved to the front */
    int64_t tokens = 0, dropped = 0, docs = 0;
    int32_t s = 0; /* the document's first sequence: sequences come in document order */
    for (int32_t i = 0; i < w->n; i++) {
        int32_t n_seqs = 0;
        while (s + n_seqs < w->seqs.n && w->seqs.text[s + n_seqs] == i) {
            w->chunks[n_seqs] =
                (index_chunk){w->seqs.first[s + n_seqs], w->seqs.length[s + n_seqs]};
            n_seqs++;
        }
        const char *id = w->arena + w->id_off[i];
        const char *title = w->title_off[i] == SIZE_MAX ? NULL : w->arena + w->title_off[i];
        int64_t duplicate_of = -1;
        DRE_TRY(dre_index_writer_add_doc(p->cfg->writer, id, title, w->arena + w->text_off[i],
                                         n_seqs, w->chunks, &duplicate_of));
        if (duplicate_of >= 0) {
            dre_status st =
                dre_set_error(DRE_ERR_FORMAT, "%s:%lld: duplicate id \"%s\" (already at row %lld)",
                              dre_corpus_path(p->cfg->reader), (long long)w->lines[i], id,
                              (long long)duplicate_of);
            if (!p->cfg->skip_bad_lines) return st;
            if (p->cfg->errors) DRE_TRY(note_bad_line(w, dre_last_error()));
            dropped++;
            s += n_seqs;
            continue;
        }
        if (kept != s)
            memmove(w->vectors + (size_t)kept * p->dim, w->vectors + (size_t)s * p->dim,
                    (size_t)n_seqs * p->dim * sizeof(float));
        for (int32_t j = 0; j < n_seqs; j++)
            tokens += w->seqs.length[s + j];
        kept += n_seqs;
        s += n_seqs;
        docs++;
    }
    DRE_TRY(dre_index_writer_commit(p->cfg->writer, w->vectors, kept));
    if (p->cfg->errors && w->bad_len > 0 &&
        fwrite(w->bad, 1, w->bad_len, p->cfg->errors) != w->bad_len)
        return dre_set_error(DRE_ERR_IO, "%s: write: %s", p->cfg->errors_path, strerror(errno));
    p->ck->tokens += tokens;
    p->ck->skipped += w->n_bad + dropped;
    p->ck->offset = w->end_offset;
    p->ck->line = w->end_line;
    p->run.docs += docs;
    p->run.vectors += kept;
    p->run.tokens += tokens;
    p->run.skipped += w->n_bad + dropped;
    p->run.truncated += w->seqs.n_truncated;
    if (w->checkpoint) DRE_TRY(write_checkpoint(p));
    if (w->n > 0 || w->n_bad > 0) report_progress(p, 0); /* the corpus may end on an empty one */
    return DRE_OK;
}

static void *writer_main(void *arg) {
    pipeline *p = arg;
    for (;;) {
        window *w = take(p, &p->encoded_q);
        if (!w) return NULL;
        int eof = w->eof;
        dre_status st = write_window(p, w);
        if (st != DRE_OK) {
            fail(p, st);
            return NULL;
        }
        give(p, &p->free_q, w);
        if (eof) return NULL;
    }
}

/* ------------------------------------------------------------------ run */

dre_status dre_pipeline_run(const pipeline_config *cfg, checkpoint *ck, pipeline_counts *counts) {
    pipeline *p = calloc(1, sizeof *p);
    if (!p) return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory");
    p->cfg = cfg;
    p->ck = ck;
    p->dim = dre_encoder_dim(cfg->enc);
    p->t_start = dre_now_seconds();
    p->start_offset = ck->offset;
    p->size = dre_corpus_size(cfg->reader);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    dre_status st = DRE_OK;
    for (int i = 0; i < N_WINDOWS && st == DRE_OK; i++) {
        st = window_alloc(&p->windows[i], cfg->window_cap);
        if (st == DRE_OK) queue_push(&p->free_q, &p->windows[i]);
    }
    pthread_t producer, writer;
    if (st == DRE_OK && pthread_create(&producer, NULL, producer_main, p) != 0)
        st = dre_set_error(DRE_ERR_NOMEM, "embed: cannot start the reader thread");
    else if (st == DRE_OK) {
        if (pthread_create(&writer, NULL, writer_main, p) != 0) {
            fail(p, dre_set_error(DRE_ERR_NOMEM, "embed: cannot start the writer thread"));
        } else {
            encoder_loop(p);
            pthread_join(writer, NULL);
        }
        pthread_join(producer, NULL);
        if (p->failed) st = dre_set_error(p->fail_status, "%s", p->fail_msg);
    }
    report_progress(p, 1);
    *counts = p->run;
    for (int i = 0; i < N_WINDOWS; i++)
        window_free(&p->windows[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return st;
}
