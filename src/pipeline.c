/* pipeline.c — dre_embed: corpus -> tokenizer threads -> length-sorted packed batches
 * -> encoder -> staging files -> FAISS index + docstore, with checkpoints and resume.
 *
 * Three stages run at once on a ring of N_WINDOWS windows (a window is up to
 * window_cap documents, so memory is bounded by it whatever the corpus size):
 *   producer thread: reads documents and tokenizes them on n_threads threads;
 *   calling thread:  sorts the window by length, packs batches of at most the encoder's
 *                    token budget, encodes them;
 *   writer thread:   appends vectors to embed-vectors.f32 and rows to embed-docs.sqlite
 *                    (one transaction per window), adds the vectors to the in-memory FAISS
 *                    index, and checkpoints.
 *
 * A checkpoint (every checkpoint_every documents, and at the end of the corpus) syncs the
 * staging vectors and docstore, then replaces embed-checkpoint.json (byte offset and line
 * of the next corpus line, documents staged) by rename: a process killed at any moment
 * leaves the last checkpoint intact, and --resume truncates the staging files to it,
 * rebuilds the in-memory index from the staged vectors and reads on from its offset.
 * Windows are cut at checkpoint boundaries, so a resumed run packs and encodes exactly
 * the batches an uninterrupted one would, and produces the same vectors.
 *
 * Indexes that need training (IVF, PQ...) are trained on the first train_size staged
 * vectors (index_faiss_train_size: 64 per IVF list, between 65536 and 1 Mi), read back
 * from the staging file once that many exist (or at the end, on all of them if the
 * corpus is smaller); only then are vectors added. That sample is the one buffer not
 * bounded by the window.
 *
 * At the end index.faiss is written (to a temporary name, renamed), the staging docstore
 * is renamed to docs.sqlite, meta.json is written last, and the staging files, checkpoint
 * and lock are removed. --append starts from a copy of the existing docstore and the
 * existing index; the old index stays readable until those renames. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <faiss/c_api/Index_c.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "corpus.h"
#include "docstore.h"
#include "index.h"

#define STAGING_VECTORS_FILE "embed-vectors.f32"
#define STAGING_DOCS_FILE "embed-docs.sqlite"
#define LOCK_FILE "embed.lock"
#define CHECKPOINT_FORMAT_VERSION 1
#define DEFAULT_CHECKPOINT_EVERY 10000
#define N_WINDOWS 4
#define FIELD_CAP 128
/* Vectors read back from the staging file at a time when rebuilding or training. */
#define STAGED_CHUNK 16384

void dre_embed_options_init(dre_embed_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->factory = NULL;
    opts->device = DRE_DEVICE_AUTO;
    opts->budget_tokens = 0;
    opts->n_threads = 0;
    opts->format = DRE_CORPUS_AUTO;
    opts->checkpoint_every = DEFAULT_CHECKPOINT_EVERY;
}

/* ------------------------------------------------------------------ checkpoint record */

typedef struct checkpoint {
    int64_t offset, line; /* where the next corpus line starts */
    int64_t count;        /* documents staged by this embed (rows base_count ..) */
    int64_t base_count;   /* rows the index had before (--append) */
    int64_t skipped;      /* bad lines skipped so far */
    int64_t tokens;       /* tokens of the staged documents */
    /* These three fix how documents are cut into windows and batches; a resumed run
     * reuses them, so it encodes exactly the batches the interrupted one would have. */
    int64_t window_cap;    /* documents per window */
    int64_t every;         /* checkpoint_every */
    int64_t budget_tokens; /* tokens per packed batch */
    int32_t dim;
    char weights_sha256[65];
    char factory[FIELD_CAP];
    dre_corpus_format format;
    char id_field[FIELD_CAP], title_field[FIELD_CAP], text_field[FIELD_CAP];
    /* The --errors file as of this checkpoint: a resumed run cuts it back to errors_bytes,
     * so the bad lines it reads again are listed once (-1: no file). */
    int64_t errors_bytes;
    char errors_path[PATH_MAX];
} checkpoint;

static dre_status checkpoint_write(const char *path, const checkpoint *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    cJSON_AddNumberToObject(root, "format_version", CHECKPOINT_FORMAT_VERSION);
    cJSON_AddNumberToObject(root, "offset", (double)c->offset);
    cJSON_AddNumberToObject(root, "line", (double)c->line);
    cJSON_AddNumberToObject(root, "count", (double)c->count);
    cJSON_AddNumberToObject(root, "base_count", (double)c->base_count);
    cJSON_AddNumberToObject(root, "skipped", (double)c->skipped);
    cJSON_AddNumberToObject(root, "tokens", (double)c->tokens);
    cJSON_AddNumberToObject(root, "window", (double)c->window_cap);
    cJSON_AddNumberToObject(root, "checkpoint_every", (double)c->every);
    cJSON_AddNumberToObject(root, "budget_tokens", (double)c->budget_tokens);
    cJSON_AddNumberToObject(root, "dim", c->dim);
    cJSON_AddStringToObject(root, "weights_sha256", c->weights_sha256);
    cJSON_AddStringToObject(root, "factory", c->factory);
    cJSON_AddStringToObject(root, "format", corpus_format_name(c->format));
    cJSON_AddStringToObject(root, "id_field", c->id_field);
    cJSON_AddStringToObject(root, "title_field", c->title_field);
    cJSON_AddStringToObject(root, "text_field", c->text_field);
    cJSON_AddNumberToObject(root, "errors_bytes", (double)c->errors_bytes);
    cJSON_AddStringToObject(root, "errors_path", c->errors_path);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    dre_status st = write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static dre_status ck_number(const cJSON *root, const char *path, const char *key, int64_t *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item) || item->valuedouble < 0)
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a count", path, key);
    *out = (int64_t)item->valuedouble;
    return DRE_OK;
}

static dre_status ck_string(const cJSON *root, const char *path, const char *key, char *out,
                            size_t cap) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= cap)
        return set_error(DRE_ERR_FORMAT, "%s: \"%s\" missing or not a string", path, key);
    strcpy(out, item->valuestring);
    return DRE_OK;
}

static dre_status checkpoint_parse(const cJSON *root, const char *path, checkpoint *c) {
    int64_t version = 0, dim = 0;
    DRE_TRY(ck_number(root, path, "format_version", &version));
    if (version != CHECKPOINT_FORMAT_VERSION)
        return set_error(DRE_ERR_UNSUPPORTED, "%s: checkpoint format %lld (expected %d)", path,
                         (long long)version, CHECKPOINT_FORMAT_VERSION);
    DRE_TRY(ck_number(root, path, "offset", &c->offset));
    DRE_TRY(ck_number(root, path, "line", &c->line));
    DRE_TRY(ck_number(root, path, "count", &c->count));
    DRE_TRY(ck_number(root, path, "base_count", &c->base_count));
    DRE_TRY(ck_number(root, path, "skipped", &c->skipped));
    DRE_TRY(ck_number(root, path, "tokens", &c->tokens));
    DRE_TRY(ck_number(root, path, "window", &c->window_cap));
    DRE_TRY(ck_number(root, path, "checkpoint_every", &c->every));
    DRE_TRY(ck_number(root, path, "budget_tokens", &c->budget_tokens));
    DRE_TRY(ck_number(root, path, "dim", &dim));
    c->dim = (int32_t)dim;
    DRE_TRY(ck_string(root, path, "weights_sha256", c->weights_sha256, sizeof c->weights_sha256));
    DRE_TRY(ck_string(root, path, "factory", c->factory, sizeof c->factory));
    char format[16];
    DRE_TRY(ck_string(root, path, "format", format, sizeof format));
    if (!strcmp(format, "jsonl"))
        c->format = DRE_CORPUS_JSONL;
    else if (!strcmp(format, "tsv"))
        c->format = DRE_CORPUS_TSV;
    else if (!strcmp(format, "lines"))
        c->format = DRE_CORPUS_LINES;
    else
        return set_error(DRE_ERR_FORMAT, "%s: unknown corpus format \"%s\"", path, format);
    DRE_TRY(ck_string(root, path, "id_field", c->id_field, sizeof c->id_field));
    DRE_TRY(ck_string(root, path, "title_field", c->title_field, sizeof c->title_field));
    DRE_TRY(ck_string(root, path, "text_field", c->text_field, sizeof c->text_field));
    if (c->window_cap < 1 || c->every < 1 || c->dim < 1)
        return set_error(DRE_ERR_FORMAT, "%s: window %lld, dim %d", path, (long long)c->window_cap,
                         c->dim);
    c->errors_bytes = -1; /* optional: the errors file is then only appended to */
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(root, "errors_bytes");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors_path");
    if (cJSON_IsNumber(bytes) && cJSON_IsString(errors) &&
        strlen(errors->valuestring) < sizeof c->errors_path) {
        c->errors_bytes = (int64_t)bytes->valuedouble;
        strcpy(c->errors_path, errors->valuestring);
    }
    return DRE_OK;
}

static dre_status checkpoint_read(const char *path, checkpoint *c) {
    memset(c, 0, sizeof *c);
    char *text = NULL;
    size_t len = 0;
    DRE_TRY(read_file(path, &text, &len));
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
    dre_status st = root ? checkpoint_parse(root, path, c)
                         : set_error(DRE_ERR_FORMAT, "%s: malformed JSON", path);
    cJSON_Delete(root);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ windows and queues */

typedef struct window {
    int32_t n;
    int64_t *lines;
    /* Strings of the window's documents back to back; offsets because the arena grows. */
    char *arena;
    size_t arena_len, arena_cap;
    size_t *id_off, *title_off, *text_off, *joined_off; /* title_off SIZE_MAX: no title */
    size_t *joined_len;
    int32_t *ids;                 /* [window_cap, max_length] token ids */
    int32_t *lengths;             /* tokens per document */
    float *vectors;               /* [window_cap, dim] */
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
    /* configuration */
    const dre_embed_options *opts;
    const char *index_dir;
    corpus_reader *reader;
    const dre_tokenizer *tok;
    dre_encoder *enc;
    int32_t max_length, dim, budget_tokens;
    int32_t window_cap;
    int n_threads;
    int64_t checkpoint_every;
    FILE *errors;
    char checkpoint_path[PATH_MAX], vectors_path[PATH_MAX];

    /* the three stages meet here */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    queue free_q, tokenized_q, encoded_q;
    int failed;
    dre_status fail_status;
    char fail_msg[1024];

    /* writer state */
    docstore *docs;
    int vectors_fd;
    FaissIndex *faiss;
    int trained;
    int64_t train_size;
    checkpoint ck; /* what is staged now; written out at each checkpoint */
    int64_t run_docs, run_tokens, run_skipped;
    int staging;          /* this run owns the checkpoint and staging files */
    int64_t checkpointed; /* documents staged as of the last checkpoint written */

    /* progress */
    int show_progress;
    double t_start, t_printed;
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
    free(w->ids);
    free(w->lengths);
    free(w->vectors);
    free(w->bad);
    memset(w, 0, sizeof *w);
}

static dre_status window_alloc(window *w, int32_t cap, int32_t max_length, int32_t dim) {
    memset(w, 0, sizeof *w);
    size_t n = (size_t)cap;
    w->lines = malloc(n * sizeof *w->lines);
    w->id_off = malloc(n * sizeof(size_t));
    w->title_off = malloc(n * sizeof(size_t));
    w->text_off = malloc(n * sizeof(size_t));
    w->joined_off = malloc(n * sizeof(size_t));
    w->joined_len = malloc(n * sizeof(size_t));
    w->ids = malloc(n * (size_t)max_length * sizeof *w->ids);
    w->lengths = malloc(n * sizeof *w->lengths);
    w->vectors = malloc(n * (size_t)dim * sizeof *w->vectors);
    w->arena_cap = n * 1024;
    w->arena = malloc(w->arena_cap);
    if (!w->lines || !w->id_off || !w->title_off || !w->text_off || !w->joined_off ||
        !w->joined_len || !w->ids || !w->lengths || !w->vectors || !w->arena) {
        window_free(w);
        return set_error(DRE_ERR_NOMEM, "embed: out of memory for a window of %d documents", cap);
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
        if (!p) return set_error(DRE_ERR_NOMEM, "embed: out of memory for document text");
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
        if (!p) return set_error(DRE_ERR_NOMEM, "embed: out of memory for bad-line messages");
        w->bad = p;
        w->bad_cap = cap;
    }
    memcpy(w->bad + w->bad_len, msg, n);
    w->bad[w->bad_len + n] = '\n';
    w->bad_len += n + 1;
    return DRE_OK;
}

/* ------------------------------------------------------------------ producer: read + tokenize */

typedef struct tokenize_job {
    const pipeline *p;
    window *w;
    int32_t first, last;
    dre_status status;
    char error[1024];
} tokenize_job;

static void *tokenize_range(void *arg) {
    tokenize_job *job = arg;
    const pipeline *p = job->p;
    window *w = job->w;
    job->status = DRE_OK;
    for (int32_t i = job->first; i < job->last; i++) {
        dre_status st =
            dre_tokenize(p->tok, w->arena + w->joined_off[i], w->joined_len[i], p->max_length,
                         w->ids + (size_t)i * p->max_length, &w->lengths[i]);
        if (st != DRE_OK) {
            job->status = st;
            snprintf(job->error, sizeof job->error, "%s", dre_last_error());
            break;
        }
    }
    return NULL;
}

static dre_status tokenize_window(pipeline *p, window *w) {
    int n_jobs = p->n_threads;
    if (n_jobs > w->n / 16) n_jobs = w->n / 16; /* a thread per >= 16 texts at least */
    if (n_jobs < 1) n_jobs = 1;
    tokenize_job jobs[64];
    pthread_t threads[64];
    if (n_jobs > 64) n_jobs = 64;
    int started = 0;
    for (int j = 0; j < n_jobs; j++) {
        jobs[j] = (tokenize_job){.p = p,
                                 .w = w,
                                 .first = (int32_t)((int64_t)w->n * j / n_jobs),
                                 .last = (int32_t)((int64_t)w->n * (j + 1) / n_jobs)};
    }
    /* Job 0 runs on this thread; the rest on their own. */
    for (int j = 1; j < n_jobs; j++) {
        if (pthread_create(&threads[j], NULL, tokenize_range, &jobs[j]) != 0) break;
        started = j;
    }
    tokenize_range(&jobs[0]);
    for (int j = 1; j <= started; j++)
        pthread_join(threads[j], NULL);
    for (int j = started + 1; j < n_jobs; j++)
        tokenize_range(&jobs[j]);
    for (int j = 0; j < n_jobs; j++)
        if (jobs[j].status != DRE_OK) return set_error(jobs[j].status, "%s", jobs[j].error);
    return DRE_OK;
}

/* Reads documents into w until it holds window_cap of them, a checkpoint is due, or the
 * corpus ends. since_checkpoint counts documents read since the last checkpoint. */
static dre_status fill_window(pipeline *p, window *w, int64_t *since_checkpoint) {
    w->n = 0;
    w->arena_len = 0;
    w->n_bad = 0;
    w->bad_len = 0;
    w->checkpoint = 0;
    w->eof = 0;
    int64_t room = p->checkpoint_every - *since_checkpoint;
    int32_t cap = room < p->window_cap ? (int32_t)room : p->window_cap;
    while (w->n < cap) {
        corpus_record rec;
        int got = 0;
        dre_status st = corpus_next(p->reader, &rec, &got);
        if (st == DRE_ERR_FORMAT && p->opts->skip_bad_lines) {
            if (p->errors) DRE_TRY(note_bad_line(w, dre_last_error()));
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
    w->end_offset = corpus_offset(p->reader);
    w->end_line = corpus_line(p->reader);
    *since_checkpoint += w->n;
    if (*since_checkpoint >= p->checkpoint_every || w->eof) {
        w->checkpoint = 1;
        *since_checkpoint = 0;
    }
    return tokenize_window(p, w);
}

static void *producer_main(void *arg) {
    pipeline *p = arg;
    int64_t since_checkpoint = 0;
    for (;;) {
        window *w = take(p, &p->free_q);
        if (!w) return NULL;
        dre_status st = fill_window(p, w, &since_checkpoint);
        if (st != DRE_OK) {
            fail(p, st);
            return NULL;
        }
        int eof = w->eof;
        give(p, &p->tokenized_q, w);
        if (eof) return NULL;
    }
}

/* ------------------------------------------------------------------ encoder stage */

typedef struct by_length {
    int32_t length, index;
} by_length;

/* Ascending length; equal lengths keep window order, so packing is deterministic. */
static int compare_length(const void *a, const void *b) {
    const by_length *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct encode_buffers {
    by_length *order;    /* [window_cap] */
    int32_t *ids;        /* [budget_tokens] */
    int32_t *cu_seqlens; /* [window_cap + 1] */
    float *out;          /* [window_cap, dim] */
} encode_buffers;

/* Packs the window's documents, shortest first, into batches of at most budget_tokens and
 * encodes them; vectors land in window order. */
/* Collects the oldest queued batch, whose texts are b->order[first ..], into w->vectors. */
static dre_status collect_batch(pipeline *p, window *w, encode_buffers *b, int32_t first) {
    int32_t n_seqs = 0;
    DRE_TRY(dre_encoder_collect(p->enc, b->out, &n_seqs));
    for (int32_t s = 0; s < n_seqs; s++)
        memcpy(w->vectors + (size_t)b->order[first + s].index * p->dim, b->out + (size_t)s * p->dim,
               (size_t)p->dim * sizeof(float));
    return DRE_OK;
}

/* Length-sorts the window, packs it into batches of at most budget_tokens and encodes
 * them, keeping the next batch queued on the encoder while one is collected. */
static dre_status encode_window(pipeline *p, window *w, encode_buffers *b) {
    for (int32_t i = 0; i < w->n; i++)
        b->order[i] = (by_length){w->lengths[i], i};
    qsort(b->order, (size_t)w->n, sizeof *b->order, compare_length);
    int32_t queued_first[DRE_ENCODER_DEPTH]; /* first text of each queued batch, oldest first */
    int n_queued = 0;
    int32_t i = 0;
    while (i < w->n) {
        int32_t n_seqs = 0, n_tokens = 0;
        b->cu_seqlens[0] = 0;
        while (i + n_seqs < w->n && n_tokens + b->order[i + n_seqs].length <= p->budget_tokens) {
            const by_length *d = &b->order[i + n_seqs];
            memcpy(b->ids + n_tokens, w->ids + (size_t)d->index * p->max_length,
                   (size_t)d->length * sizeof *b->ids);
            n_tokens += d->length;
            b->cu_seqlens[++n_seqs] = n_tokens;
        }
        if (n_seqs == 0)
            return set_error(DRE_ERR_INVALID_ARG, "a text of %d tokens exceeds the budget of %d",
                             b->order[i].length, p->budget_tokens);
        if (n_queued == DRE_ENCODER_DEPTH) {
            DRE_TRY(collect_batch(p, w, b, queued_first[0]));
            memmove(queued_first, queued_first + 1, (size_t)(--n_queued) * sizeof *queued_first);
        }
        DRE_TRY(dre_encoder_submit(p->enc, b->ids, b->cu_seqlens, n_seqs));
        queued_first[n_queued++] = i;
        i += n_seqs;
    }
    for (int q = 0; q < n_queued; q++)
        DRE_TRY(collect_batch(p, w, b, queued_first[q]));
    return DRE_OK;
}

static dre_status encoder_loop(pipeline *p) {
    encode_buffers b = {0};
    b.order = malloc((size_t)p->window_cap * sizeof *b.order);
    b.ids = malloc((size_t)p->budget_tokens * sizeof *b.ids);
    b.cu_seqlens = malloc(((size_t)p->window_cap + 1) * sizeof *b.cu_seqlens);
    b.out = malloc((size_t)p->window_cap * (size_t)p->dim * sizeof *b.out);
    dre_status st = DRE_OK;
    if (!b.order || !b.ids || !b.cu_seqlens || !b.out)
        st = set_error(DRE_ERR_NOMEM, "embed: out of memory for batch buffers");
    while (st == DRE_OK) {
        window *w = take(p, &p->tokenized_q);
        if (!w) break;
        int eof = w->eof;
        st = encode_window(p, w, &b);
        if (st != DRE_OK) break;
        give(p, &p->encoded_q, w);
        if (eof) break;
    }
    free(b.order);
    free(b.ids);
    free(b.cu_seqlens);
    free(b.out);
    if (st != DRE_OK) fail(p, st);
    return st;
}

/* ------------------------------------------------------------------ writer stage */

static dre_status pwrite_all(int fd, const void *data, size_t len, int64_t offset,
                             const char *path) {
    const char *c = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, c, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return set_error(DRE_ERR_IO, "%s: write: %s", path, strerror(errno));
        c += n;
        len -= (size_t)n;
        offset += n;
    }
    return DRE_OK;
}

static dre_status pread_all(int fd, void *data, size_t len, int64_t offset, const char *path) {
    char *c = data;
    while (len > 0) {
        ssize_t n = pread(fd, c, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return set_error(DRE_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (n == 0) return set_error(DRE_ERR_IO, "%s: shorter than expected", path);
        c += n;
        len -= (size_t)n;
        offset += n;
    }
    return DRE_OK;
}

/* Adds staged vectors [first, first + n) to the FAISS index, reading them back in chunks. */
static dre_status add_staged(pipeline *p, int64_t first, int64_t n) {
    size_t row_bytes = (size_t)p->dim * sizeof(float);
    int64_t chunk = n < STAGED_CHUNK ? n : STAGED_CHUNK;
    float *buf = malloc((size_t)(chunk > 0 ? chunk : 1) * row_bytes);
    if (!buf) return set_error(DRE_ERR_NOMEM, "embed: out of memory reading staged vectors");
    dre_status st = DRE_OK;
    for (int64_t done = 0; done < n && st == DRE_OK; done += chunk) {
        int64_t m = n - done < chunk ? n - done : chunk;
        st = pread_all(p->vectors_fd, buf, (size_t)m * row_bytes,
                       (first + done) * (int64_t)row_bytes, p->vectors_path);
        if (st == DRE_OK) st = index_faiss_add(p->faiss, m, buf);
    }
    free(buf);
    return st;
}

/* Trains the index on the first min(count, train_size) staged vectors, then adds them all. */
static dre_status train_from_staged(pipeline *p) {
    int64_t n = p->ck.count < p->train_size ? p->ck.count : p->train_size;
    if (n == 0)
        return set_error(DRE_ERR_FORMAT, "index \"%s\" needs training: no documents",
                         p->ck.factory);
    size_t bytes = (size_t)n * (size_t)p->dim * sizeof(float);
    float *sample = malloc(bytes);
    if (!sample)
        return set_error(DRE_ERR_NOMEM, "embed: out of memory for %lld training vectors",
                         (long long)n);
    dre_status st = pread_all(p->vectors_fd, sample, bytes, 0, p->vectors_path);
    if (st == DRE_OK) st = index_faiss_train(p->faiss, n, sample);
    free(sample);
    DRE_TRY(st);
    p->trained = 1;
    return add_staged(p, 0, p->ck.count);
}

static void print_progress(pipeline *p, int64_t offset, int final) {
    double now = now_seconds();
    if (!final && now - p->t_printed < 0.25) return;
    p->t_printed = now;
    double elapsed = now - p->t_start;
    if (elapsed <= 0) elapsed = 1e-9;
    char eta[32] = "";
    if (p->size > 0 && offset > p->start_offset && !final) {
        double rate = (double)(offset - p->start_offset) / elapsed;
        double left = (double)(p->size - offset) / rate;
        snprintf(eta, sizeof eta, "  ETA %d:%02d:%02d", (int)(left / 3600), (int)(left / 60) % 60,
                 (int)left % 60);
    }
    fprintf(stderr, "\r  %lld docs  %.0f docs/s  %.0f tokens/s  %3.0f%%%s   ",
            (long long)p->run_docs, (double)p->run_docs / elapsed, (double)p->run_tokens / elapsed,
            p->size > 0 ? 100.0 * (double)offset / (double)p->size : 0.0, eta);
    if (final) fprintf(stderr, "\r%*s\r", 79, "");
    fflush(stderr);
}

static dre_status write_checkpoint(pipeline *p) {
    if (fdatasync(p->vectors_fd) != 0)
        return set_error(DRE_ERR_IO, "%s: sync: %s", p->vectors_path, strerror(errno));
    DRE_TRY(docstore_sync(p->docs));
    if (p->errors) {
        struct stat st;
        if (fflush(p->errors) != 0 || fstat(fileno(p->errors), &st) != 0)
            return set_error(DRE_ERR_IO, "%s: write: %s", p->opts->errors_path, strerror(errno));
        p->ck.errors_bytes = (int64_t)st.st_size;
    }
    DRE_TRY(checkpoint_write(p->checkpoint_path, &p->ck));
    p->checkpointed = p->ck.count;
    return DRE_OK;
}

static dre_status write_window(pipeline *p, window *w) {
    DRE_TRY(docstore_begin(p->docs));
    int32_t kept = 0;
    int64_t tokens = 0, dropped = 0;
    for (int32_t i = 0; i < w->n; i++) {
        int64_t row = p->ck.base_count + p->ck.count + kept;
        const char *id = w->arena + w->id_off[i];
        const char *title = w->title_off[i] == SIZE_MAX ? NULL : w->arena + w->title_off[i];
        int64_t duplicate_of = -1;
        DRE_TRY(docstore_add(p->docs, row, id, title, w->arena + w->text_off[i], &duplicate_of));
        if (duplicate_of >= 0) {
            dre_status st = set_error(
                DRE_ERR_FORMAT, "%s:%lld: duplicate id \"%s\" (already at row %lld)",
                corpus_path(p->reader), (long long)w->lines[i], id, (long long)duplicate_of);
            if (!p->opts->skip_bad_lines) return st;
            if (p->errors) DRE_TRY(note_bad_line(w, dre_last_error()));
            dropped++;
            continue;
        }
        if (kept != i)
            memmove(w->vectors + (size_t)kept * p->dim, w->vectors + (size_t)i * p->dim,
                    (size_t)p->dim * sizeof(float));
        tokens += w->lengths[i];
        kept++;
    }
    size_t row_bytes = (size_t)p->dim * sizeof(float);
    DRE_TRY(pwrite_all(p->vectors_fd, w->vectors, (size_t)kept * row_bytes,
                       p->ck.count * (int64_t)row_bytes, p->vectors_path));
    DRE_TRY(docstore_commit(p->docs));
    if (p->errors && w->bad_len > 0 && fwrite(w->bad, 1, w->bad_len, p->errors) != w->bad_len)
        return set_error(DRE_ERR_IO, "%s: write: %s", p->opts->errors_path, strerror(errno));
    p->ck.count += kept;
    p->ck.tokens += tokens;
    p->ck.skipped += w->n_bad + dropped;
    p->ck.offset = w->end_offset;
    p->ck.line = w->end_line;
    p->run_docs += kept;
    p->run_tokens += tokens;
    p->run_skipped += w->n_bad + dropped;
    if (p->trained)
        DRE_TRY(index_faiss_add(p->faiss, kept, w->vectors));
    else if (p->ck.count >= p->train_size)
        DRE_TRY(train_from_staged(p));
    if (w->checkpoint) DRE_TRY(write_checkpoint(p));
    if (p->show_progress) print_progress(p, w->end_offset, 0);
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

/* ------------------------------------------------------------------ lock */

/* Takes an exclusive flock on dir/embed.lock. The file is removed on success; a process
 * that opened it just before the removal would lock a dead inode, hence the inode check. */
static dre_status lock_index(const char *dir, int *fd_out) {
    char path[PATH_MAX];
    DRE_TRY(path_join(path, sizeof path, dir, LOCK_FILE));
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        if (fd < 0) return set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                return set_error(DRE_ERR_LOCKED,
                                 "%s: another dre embed is writing this index (%s is locked)", dir,
                                 LOCK_FILE);
            return set_error(DRE_ERR_IO, "%s: flock: %s", path, strerror(err));
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(path, &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev) {
            *fd_out = fd;
            return DRE_OK;
        }
        close(fd);
    }
    return set_error(DRE_ERR_LOCKED, "%s: could not take %s", dir, LOCK_FILE);
}

static void unlock_index(const char *dir, int fd) {
    char path[PATH_MAX];
    if (path_join(path, sizeof path, dir, LOCK_FILE) == DRE_OK) unlink(path);
    close(fd);
}

/* ------------------------------------------------------------------ set-up */

static int file_exists(const char *dir, const char *name) {
    char path[PATH_MAX];
    return path_join(path, sizeof path, dir, name) == DRE_OK && access(path, F_OK) == 0;
}

static void remove_in(const char *dir, const char *name) {
    char path[PATH_MAX];
    if (path_join(path, sizeof path, dir, name) == DRE_OK) unlink(path);
}

static void remove_staging(const char *dir) {
    remove_in(dir, STAGING_VECTORS_FILE);
    remove_in(dir, STAGING_DOCS_FILE);
    remove_in(dir, STAGING_DOCS_FILE "-wal");
    remove_in(dir, STAGING_DOCS_FILE "-shm");
    remove_in(dir, STAGING_DOCS_FILE "-journal");
    remove_in(dir, INDEX_CHECKPOINT_FILE ".tmp");
    remove_in(dir, INDEX_FAISS_FILE ".tmp");
    remove_in(dir, INDEX_META_FILE ".tmp");
}

static dre_status check_model_matches(const char *what, const dre_model_info *m, int32_t dim,
                                      const char *sha256, const dre_index_info *meta) {
    if (dim != m->hidden || strcmp(sha256, m->weights_sha256) != 0)
        return set_error(DRE_ERR_MISMATCH,
                         "%s was made with another model (dim %d, weights sha256 %.12s...); this "
                         "model has dim %d, weights sha256 %.12s...",
                         what, dim, sha256, m->hidden, m->weights_sha256);
    if (meta && (meta->pooling != m->pooling || meta->normalize != m->normalize ||
                 meta->max_length != m->max_length))
        return set_error(DRE_ERR_MISMATCH,
                         "%s: pooling %s, normalize %d, max_length %d; the model has %s, %d, %d",
                         what, pooling_name(meta->pooling), meta->normalize, meta->max_length,
                         pooling_name(m->pooling), m->normalize, m->max_length);
    return DRE_OK;
}

static const char *field_or(const char *value, const char *fallback) {
    return value ? value : fallback;
}

/* Options given on a resumed run must agree with the run it continues. */
static dre_status check_resume_options(const dre_embed_options *o, const checkpoint *c,
                                       const char *dir) {
    const char *what = NULL;
    if (o->factory && strcmp(o->factory, c->factory))
        what = "index factory";
    else if (o->format != DRE_CORPUS_AUTO && o->format != c->format)
        what = "corpus format";
    else if (o->id_field && strcmp(o->id_field, c->id_field))
        what = "id field";
    else if (o->title_field && strcmp(o->title_field, c->title_field))
        what = "title field";
    else if (o->text_field && strcmp(o->text_field, c->text_field))
        what = "text field";
    if (what)
        return set_error(DRE_ERR_INVALID_ARG,
                         "%s: --resume with a different %s than the "
                         "interrupted embed (see %s)",
                         dir, what, INDEX_CHECKPOINT_FILE);
    return DRE_OK;
}

static int32_t default_window_cap(int32_t budget_tokens) {
    int32_t cap = budget_tokens / 16;
    if (cap < 64) cap = 64;
    if (cap > 8192) cap = 8192;
    return cap;
}

/* Fresh start: a new checkpoint, an empty or copied staging docstore, an empty staging
 * vector file, and the FAISS index (empty, or the existing one for --append). */
static dre_status start_fresh(pipeline *p, const dre_model_info *m, dre_index_info *base_meta,
                              int *have_base) {
    const dre_embed_options *o = p->opts;
    const char *dir = p->index_dir;
    *have_base = 0;
    if (file_exists(dir, INDEX_META_FILE)) {
        if (!o->append)
            return set_error(DRE_ERR_INVALID_ARG,
                             "%s already holds an index; use --append to add to it, or choose "
                             "another folder",
                             dir);
        dre_index *existing = NULL;
        DRE_TRY(dre_index_open(dir, &existing));
        *base_meta = *dre_index_get_info(existing);
        dre_index_close(existing);
        char meta_path[PATH_MAX];
        DRE_TRY(path_join(meta_path, sizeof meta_path, dir, INDEX_META_FILE));
        DRE_TRY(check_model_matches(meta_path, m, base_meta->dim, base_meta->weights_sha256,
                                    base_meta));
        if (o->factory && strcmp(o->factory, base_meta->factory))
            return set_error(DRE_ERR_MISMATCH, "%s: index factory is \"%s\", not \"%s\"", dir,
                             base_meta->factory, o->factory);
        *have_base = 1;
    }
    remove_staging(dir);
    checkpoint *c = &p->ck;
    memset(c, 0, sizeof *c);
    c->base_count = *have_base ? base_meta->count : 0;
    c->window_cap = default_window_cap(p->budget_tokens);
    c->every = p->checkpoint_every;
    c->budget_tokens = p->budget_tokens;
    c->dim = m->hidden;
    snprintf(c->weights_sha256, sizeof c->weights_sha256, "%s", m->weights_sha256);
    const char *factory =
        *have_base ? base_meta->factory : field_or(o->factory, INDEX_DEFAULT_FACTORY);
    c->format = corpus_format(p->reader);
    const char *fields[3] = {field_or(o->id_field, "_id"), field_or(o->title_field, "title"),
                             field_or(o->text_field, "text")};
    if (strlen(factory) >= FIELD_CAP || strlen(fields[0]) >= FIELD_CAP ||
        strlen(fields[1]) >= FIELD_CAP || strlen(fields[2]) >= FIELD_CAP)
        return set_error(DRE_ERR_INVALID_ARG, "index factory or field name longer than %d bytes",
                         FIELD_CAP - 1);
    strcpy(c->factory, factory);
    strcpy(c->id_field, fields[0]);
    strcpy(c->title_field, fields[1]);
    strcpy(c->text_field, fields[2]);
    c->errors_bytes = -1;
    if (o->errors_path && strlen(o->errors_path) < sizeof c->errors_path) {
        strcpy(c->errors_path, o->errors_path);
        c->errors_bytes = 0; /* opened anew, empty */
    }

    char path[PATH_MAX], staging[PATH_MAX];
    DRE_TRY(path_join(staging, sizeof staging, dir, STAGING_DOCS_FILE));
    if (*have_base) {
        DRE_TRY(path_join(path, sizeof path, dir, INDEX_DOCS_FILE));
        DRE_TRY(docstore_copy(path, staging));
    }
    int fd = open(p->vectors_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return set_error(DRE_ERR_IO, "%s: %s", p->vectors_path, strerror(errno));
    close(fd);
    /* The docstore file must exist before the checkpoint that refers to it. */
    docstore *ds = NULL;
    DRE_TRY(docstore_open(staging, 1, &ds));
    docstore_close(ds);
    return checkpoint_write(p->checkpoint_path, c);
}

/* Opens the staging files and the FAISS index at the state of p->ck: truncates what was
 * staged after the checkpoint, and puts the staged vectors into the in-memory index. */
static dre_status open_staged(pipeline *p) {
    const char *dir = p->index_dir;
    const checkpoint *c = &p->ck;
    char staging[PATH_MAX], final_docs[PATH_MAX];
    DRE_TRY(path_join(staging, sizeof staging, dir, STAGING_DOCS_FILE));
    DRE_TRY(path_join(final_docs, sizeof final_docs, dir, INDEX_DOCS_FILE));
    /* A run killed while finishing may have renamed the staging docstore already. */
    if (access(staging, F_OK) != 0) {
        if (access(final_docs, F_OK) != 0)
            return set_error(DRE_ERR_IO,
                             "%s: %s is missing; the interrupted embed cannot be "
                             "resumed (remove the folder and start over)",
                             dir, STAGING_DOCS_FILE);
        DRE_TRY(rename_synced(final_docs, staging));
    }
    DRE_TRY(docstore_open(staging, 1, &p->docs));
    int64_t total = c->base_count + c->count;
    DRE_TRY(docstore_truncate(p->docs, total));
    int64_t n_docs = 0;
    DRE_TRY(docstore_count(p->docs, &n_docs));
    if (n_docs != total)
        return set_error(DRE_ERR_INDEX, "%s: staging docstore has %lld rows, checkpoint says %lld",
                         dir, (long long)n_docs, (long long)total);

    p->vectors_fd = open(p->vectors_path, O_RDWR);
    if (p->vectors_fd < 0) return set_error(DRE_ERR_IO, "%s: %s", p->vectors_path, strerror(errno));
    off_t want = (off_t)c->count * (off_t)c->dim * (off_t)sizeof(float);
    struct stat st;
    if (fstat(p->vectors_fd, &st) != 0 || st.st_size < want)
        return set_error(DRE_ERR_IO, "%s: holds fewer vectors than the checkpoint's %lld",
                         p->vectors_path, (long long)c->count);
    if (ftruncate(p->vectors_fd, want) != 0)
        return set_error(DRE_ERR_IO, "%s: truncate: %s", p->vectors_path, strerror(errno));

    int64_t already = 0; /* staged vectors the FAISS index already holds */
    if (c->base_count > 0) {
        char path[PATH_MAX];
        DRE_TRY(path_join(path, sizeof path, dir, INDEX_FAISS_FILE));
        DRE_TRY(index_faiss_read(path, &p->faiss));
        int64_t ntotal = faiss_Index_ntotal(p->faiss);
        if (ntotal == total)
            already = c->count; /* killed after renaming the new index */
        else if (ntotal != c->base_count)
            return set_error(DRE_ERR_INDEX, "%s: index.faiss holds %lld vectors, expected %lld",
                             dir, (long long)ntotal, (long long)c->base_count);
    } else {
        DRE_TRY(index_faiss_create(c->factory, c->dim, &p->faiss));
    }
    if (faiss_Index_d(p->faiss) != c->dim)
        return set_error(DRE_ERR_MISMATCH, "%s: index.faiss has dim %d, the model %d", dir,
                         faiss_Index_d(p->faiss), c->dim);
    p->trained = faiss_Index_is_trained(p->faiss);
    p->train_size = index_faiss_train_size(p->faiss);
    if (p->trained) return add_staged(p, already, c->count - already);
    if (c->count >= p->train_size) return train_from_staged(p);
    return DRE_OK;
}

/* Writes index.faiss, moves the docstore into place, then meta.json (the last word on
 * what the folder holds), then removes the staging files and the checkpoint. */
static dre_status finish(pipeline *p, const dre_model_info *m) {
    const char *dir = p->index_dir;
    const checkpoint *c = &p->ck;
    int64_t total = c->base_count + c->count;
    if (total == 0)
        return set_error(DRE_ERR_FORMAT, "%s: no documents to index%s", corpus_path(p->reader),
                         c->skipped ? " (every line was bad)" : "");
    if (!p->trained) DRE_TRY(train_from_staged(p));
    if (faiss_Index_ntotal(p->faiss) != total)
        return set_error(DRE_ERR_INDEX, "index holds %lld vectors, expected %lld",
                         (long long)faiss_Index_ntotal(p->faiss), (long long)total);
    char path[PATH_MAX], staging[PATH_MAX];
    DRE_TRY(path_join(path, sizeof path, dir, INDEX_FAISS_FILE));
    DRE_TRY(index_faiss_write(p->faiss, path));
    docstore_close(p->docs); /* back to a single file, no -wal */
    p->docs = NULL;
    DRE_TRY(path_join(staging, sizeof staging, dir, STAGING_DOCS_FILE));
    DRE_TRY(path_join(path, sizeof path, dir, INDEX_DOCS_FILE));
    DRE_TRY(rename_synced(staging, path));
    dre_index_info meta = {0};
    meta.format_version = INDEX_FORMAT_VERSION;
    snprintf(meta.model_name, sizeof meta.model_name, "%s", m->name);
    snprintf(meta.weights_sha256, sizeof meta.weights_sha256, "%s", m->weights_sha256);
    meta.dim = m->hidden;
    meta.pooling = m->pooling;
    meta.normalize = m->normalize;
    meta.max_length = m->max_length;
    meta.count = total;
    snprintf(meta.factory, sizeof meta.factory, "%s", c->factory);
    DRE_TRY(index_meta_write(dir, &meta));
    remove_in(dir, INDEX_CHECKPOINT_FILE);
    remove_staging(dir);
    return sync_path(dir);
}

/* Opens the --errors file: new for a fresh run; for a resumed one, the same file cut back
 * to what the checkpoint had listed, since the lines after it are read again. */
static dre_status open_errors(pipeline *p, int resuming) {
    const char *path = p->opts->errors_path;
    checkpoint *c = &p->ck;
    int64_t listed = resuming && path && !strcmp(path, c->errors_path) ? c->errors_bytes : -1;
    c->errors_path[0] = '\0'; /* from here on: this run's file, its size set at checkpoints */
    c->errors_bytes = -1;
    if (!path) return DRE_OK;
    p->errors = fopen(path, resuming ? "a" : "w");
    if (!p->errors) return set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (listed >= 0 && fstat(fileno(p->errors), &st) == 0 && (int64_t)st.st_size > listed &&
        ftruncate(fileno(p->errors), (off_t)listed) != 0)
        return set_error(DRE_ERR_IO, "%s: truncate: %s", path, strerror(errno));
    if (strlen(path) < sizeof c->errors_path) strcpy(c->errors_path, path);
    return DRE_OK;
}

/* ------------------------------------------------------------------ dre_embed */

static dre_status run_stages(pipeline *p) {
    for (int i = 0; i < N_WINDOWS; i++) {
        DRE_TRY(window_alloc(&p->windows[i], p->window_cap, p->max_length, p->dim));
        queue_push(&p->free_q, &p->windows[i]);
    }
    pthread_t producer, writer;
    if (pthread_create(&producer, NULL, producer_main, p) != 0)
        return set_error(DRE_ERR_NOMEM, "embed: cannot start the reader thread");
    if (pthread_create(&writer, NULL, writer_main, p) != 0) {
        fail(p, set_error(DRE_ERR_NOMEM, "embed: cannot start the writer thread"));
        pthread_join(producer, NULL);
        return p->fail_status;
    }
    encoder_loop(p);
    pthread_join(producer, NULL);
    pthread_join(writer, NULL);
    if (p->failed) return set_error(p->fail_status, "%s", p->fail_msg);
    return DRE_OK;
}

static dre_status embed_locked(pipeline *p, const char *model_dir, const char *corpus_path,
                               dre_embed_summary *summary) {
    const dre_embed_options *o = p->opts;
    const char *dir = p->index_dir;
    dre_model *model = NULL;
    dre_tokenizer *tok = NULL;
    dre_status st = dre_model_open(model_dir, &model);
    if (st == DRE_OK) st = dre_tokenizer_open(model_dir, &tok);
    if (st == DRE_OK) st = dre_encoder_open(model, o->device, o->budget_tokens, &p->enc);
    if (st != DRE_OK) goto done;
    const dre_model_info *m = dre_model_get_info(model);
    p->tok = tok;
    p->dim = dre_encoder_dim(p->enc);
    p->budget_tokens = dre_encoder_budget_tokens(p->enc);
    p->max_length = m->max_length;
    if (dre_tokenizer_max_length(tok) < p->max_length)
        p->max_length = dre_tokenizer_max_length(tok);
    /* Checked here, not at the first document that happens to use such a token. */
    if (dre_tokenizer_vocab_size(tok) > m->vocab_size) {
        st = set_error(DRE_ERR_FORMAT,
                       "%s/vocab.txt has %d entries, but config.json's vocab_size is %d: the "
                       "model has no embedding for the ids past it",
                       model_dir, dre_tokenizer_vocab_size(tok), m->vocab_size);
        goto done;
    }

    int resuming = 0;
    if (file_exists(dir, INDEX_CHECKPOINT_FILE)) {
        if (!o->resume) {
            st = set_error(DRE_ERR_INVALID_ARG,
                           "%s: an earlier embed into this folder did not finish (%s is there); "
                           "pass --resume to continue it, or delete %s to abandon it",
                           dir, INDEX_CHECKPOINT_FILE, INDEX_CHECKPOINT_FILE);
            goto done;
        }
        if ((st = checkpoint_read(p->checkpoint_path, &p->ck)) != DRE_OK) goto done;
        if ((st = check_model_matches(p->checkpoint_path, m, p->ck.dim, p->ck.weights_sha256,
                                      NULL)) != DRE_OK ||
            (st = check_resume_options(o, &p->ck, dir)) != DRE_OK)
            goto done;
        resuming = 1;
        p->staging = 1;
        p->checkpointed = p->ck.count;
        const checkpoint *c = &p->ck;
        st = corpus_open(corpus_path, c->format, c->id_field, c->title_field, c->text_field,
                         &p->reader);
        if (st == DRE_OK) st = corpus_seek(p->reader, c->offset, c->line);
    } else if (o->resume && !o->append && file_exists(dir, INDEX_META_FILE)) {
        /* No checkpoint but a complete index: the run being resumed finished (it was
         * killed after its last rename, say). Nothing is left to do. */
        dre_index *done_index = NULL;
        st = dre_index_open(dir, &done_index);
        if (st == DRE_OK) {
            int64_t count = dre_index_get_info(done_index)->count;
            dre_index_close(done_index);
            if (summary) summary->n_total = count;
            if (!o->quiet)
                fprintf(stderr,
                        "nothing to resume: %s already holds the finished index (%lld docs)\n", dir,
                        (long long)count);
        }
        goto done;
    } else {
        /* Nothing to resume (killed before its first checkpoint, or never run): start,
         * once the corpus is known to open. */
        st = corpus_open(corpus_path, o->format, o->id_field, o->title_field, o->text_field,
                         &p->reader);
        dre_index_info base_meta;
        int have_base = 0;
        if (st == DRE_OK) {
            p->staging = 1;
            st = start_fresh(p, m, &base_meta, &have_base);
        }
    }
    if (st != DRE_OK) goto done;
    p->window_cap = (int32_t)p->ck.window_cap;
    p->checkpoint_every = p->ck.every;
    /* Pack as the interrupted run did, unless this encoder cannot take such batches. */
    if (p->ck.budget_tokens >= p->max_length && p->ck.budget_tokens <= p->budget_tokens)
        p->budget_tokens = (int32_t)p->ck.budget_tokens;
    const checkpoint *c = &p->ck;
    st = open_errors(p, resuming);
    if (st == DRE_OK) st = open_staged(p);
    if (st != DRE_OK) goto done;

    p->show_progress = !o->quiet && isatty(2);
    p->t_start = now_seconds();
    p->start_offset = c->offset;
    p->size = corpus_size(p->reader);
    st = run_stages(p);
    if (p->show_progress) print_progress(p, p->ck.offset, 1);
    if (st == DRE_OK) st = finish(p, m);
    double seconds = now_seconds() - p->t_start;
    if (summary) {
        summary->n_docs = p->run_docs;
        summary->n_skipped = p->run_skipped;
        summary->n_tokens = p->run_tokens;
        summary->n_total = p->ck.base_count + p->ck.count;
        summary->seconds = seconds;
    }
    if (st == DRE_OK && !o->quiet) {
        double s = seconds > 0 ? seconds : 1e-9;
        fprintf(stderr,
                "embedded %lld docs (%lld tokens) in %.2f s on %s: %.1f docs/s, %.0f tokens/s; "
                "%s now holds %lld docs",
                (long long)p->run_docs, (long long)p->run_tokens, seconds,
                dre_device_name(dre_encoder_device(p->enc)), (double)p->run_docs / s,
                (double)p->run_tokens / s, dir, (long long)(p->ck.base_count + p->ck.count));
        if (p->run_skipped) fprintf(stderr, "; skipped %lld bad lines", (long long)p->run_skipped);
        fprintf(stderr, "\n");
    }
done:
    if (p->errors) fclose(p->errors);
    p->errors = NULL;
    docstore_close(p->docs);
    p->docs = NULL;
    if (p->vectors_fd >= 0) close(p->vectors_fd);
    p->vectors_fd = -1;
    if (p->faiss) faiss_Index_free(p->faiss);
    p->faiss = NULL;
    corpus_close(p->reader);
    p->reader = NULL;
    dre_encoder_close(p->enc);
    p->enc = NULL;
    dre_tokenizer_close(tok);
    dre_model_close(model);
    for (int i = 0; i < N_WINDOWS; i++)
        window_free(&p->windows[i]);
    /* A failed run with nothing checkpointed leaves nothing to resume: clean up, so the
     * same command can simply be run again. */
    if (st != DRE_OK && p->staging && p->checkpointed == 0) {
        remove_in(dir, INDEX_CHECKPOINT_FILE);
        remove_staging(dir);
    }
    return st;
}

dre_status dre_embed(const char *model_dir, const char *corpus_path, const char *index_dir,
                     const dre_embed_options *opts, dre_embed_summary *summary) {
    if (!model_dir || !corpus_path || !index_dir)
        return set_error(DRE_ERR_INVALID_ARG, "dre_embed: NULL argument");
    dre_embed_options defaults;
    if (!opts) {
        dre_embed_options_init(&defaults);
        opts = &defaults;
    }
    if (summary) memset(summary, 0, sizeof *summary);
    if (mkdir(index_dir, 0755) != 0 && errno != EEXIST)
        return set_error(DRE_ERR_IO, "%s: cannot create: %s", index_dir, strerror(errno));
    struct stat st_dir;
    if (stat(index_dir, &st_dir) != 0 || !S_ISDIR(st_dir.st_mode))
        return set_error(DRE_ERR_IO, "%s: not a folder", index_dir);

    pipeline *p = calloc(1, sizeof *p);
    if (!p) return set_error(DRE_ERR_NOMEM, "dre_embed: out of memory");
    p->opts = opts;
    p->index_dir = index_dir;
    p->vectors_fd = -1;
    p->n_threads = opts->n_threads > 0 ? opts->n_threads : cpu_count();
    p->checkpoint_every =
        opts->checkpoint_every > 0 ? opts->checkpoint_every : DEFAULT_CHECKPOINT_EVERY;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    dre_status st =
        path_join(p->checkpoint_path, sizeof p->checkpoint_path, index_dir, INDEX_CHECKPOINT_FILE);
    if (st == DRE_OK)
        st = path_join(p->vectors_path, sizeof p->vectors_path, index_dir, STAGING_VECTORS_FILE);
    int lock_fd = -1;
    if (st == DRE_OK) st = lock_index(index_dir, &lock_fd);
    if (st == DRE_OK) {
        st = embed_locked(p, model_dir, corpus_path, summary);
        unlock_index(index_dir, lock_fd);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return st;
}
