/* dist/embed.c — dre_embed_sharded: one corpus embedded by N ranks into N shards.
 *
 *   plan     rank 0 checks the folder and records the job (embed-plan.json: ranks, corpus
 *            size), so a --resume runs on the same parts
 *   parts    the corpus's bytes cut at N near-equal points moved to the next line start;
 *            line numbers before each part summed over the ranks before it (MPI_Exscan)
 *   embed    each rank embeds its part into shard-0000r (embed/embed.h), with its own
 *            staging and checkpoints, exactly as one process embeds a corpus
 *   train    an index that needs training stages everything, then at finish the ranks
 *            gather the corpus's first train_size vectors (the sample one process trains
 *            on, whatever N is) to rank 0, which trains once and writes trained.faiss; every
 *            shard adds its vectors to that one
 *   ids      each id is sent to the rank its hash names; an id two shards hold fails the job
 *   manifest rank 0 writes meta.json (index/shards.h) last: until then no reader sees an
 *            index, and a killed job leaves each shard's checkpoint to resume from. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "dist/dist.h"
#include "embed/embed.h"
#include "index/docstore_ids.h"
#include "index/index.h"
#include "index/shards.h"
#include "index/vindex.h"
#include "index/writer.h"

#define PLAN_FILE "embed-plan.json"
#define TRAINED_FILE "trained.faiss"
#define READ_CHUNK (1 << 20)

typedef struct sharded_embed {
    const char *dir;
    int rank, size;
    int have_trained; /* trained.faiss was there when the job started (a resume) */
} sharded_embed;

/* ------------------------------------------------------------------ plan (rank 0) */

static dre_status read_plan(const char *path, int *ranks, int64_t *bytes) {
    char *text = NULL;
    size_t len = 0;
    DRE_TRY(dre_read_file(path, &text, &len));
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "ranks");
    cJSON *b = cJSON_GetObjectItemCaseSensitive(doc, "corpus_bytes");
    dre_status st = DRE_OK;
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(b))
        st = dre_set_error(DRE_ERR_FORMAT, "%s: not a sharded embed's plan", path);
    else {
        *ranks = r->valueint;
        *bytes = (int64_t)b->valuedouble;
    }
    cJSON_Delete(doc);
    return st;
}

/* Rank 0: the folder is new (the plan is written), or holds this job interrupted (the plan
 * agrees), or holds it finished (*finished). */
static dre_status make_plan(const sharded_embed *r, int64_t corpus_bytes, int resume,
                            int *finished) {
    const char *dir = r->dir;
    *finished = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dre_set_error(DRE_ERR_IO, "%s: not a folder", dir);
    if (dre_file_exists_in(dir, INDEX_META_FILE)) {
        if (resume && dre_shards_is_sharded(dir)) {
            *finished = 1;
            return DRE_OK;
        }
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s already holds an index; a sharded embed makes a new one: choose "
                             "another folder",
                             dir);
    }
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, dir, PLAN_FILE));
    if (access(path, F_OK) == 0) {
        if (!resume)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "%s: an earlier sharded embed into this folder did not finish (%s "
                                 "is there); pass --resume to continue it, or delete the folder "
                                 "to start over",
                                 dir, PLAN_FILE);
        int ranks = 0;
        int64_t bytes = 0;
        DRE_TRY(read_plan(path, &ranks, &bytes));
        if (ranks != r->size || bytes != corpus_bytes)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "%s: the interrupted embed ran on %d ranks over a corpus of %lld "
                                 "bytes; resume it with mpirun -np %d and the same corpus (this "
                                 "job: %d ranks, %lld bytes)",
                                 dir, ranks, (long long)bytes, ranks, r->size,
                                 (long long)corpus_bytes);
        return DRE_OK;
    }
    char text[128];
    int n = snprintf(text, sizeof text, "{\"ranks\": %d, \"corpus_bytes\": %lld}\n", r->size,
                     (long long)corpus_bytes);
    return dre_write_file_atomic(path, text, (size_t)n);
}

/* ------------------------------------------------------------------ parts */

/* The first line start at or after byte at (the file's size when none is). */
static dre_status line_start(FILE *f, const char *path, int64_t size, int64_t at, int64_t *out) {
    if (at <= 0 || at >= size) {
        *out = at <= 0 ? 0 : size;
        return DRE_OK;
    }
    if (fseeko(f, (off_t)(at - 1), SEEK_SET) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: seek: %s", path, strerror(errno));
    int64_t pos = at - 1;
    int c;
    while ((c = getc(f)) != EOF) {
        pos++;
        if (c == '\n') break;
    }
    if (ferror(f)) return dre_set_error(DRE_ERR_IO, "%s: read: %s", path, strerror(errno));
    *out = c == EOF ? size : pos;
    return DRE_OK;
}

/* Newlines in bytes [start, end). */
static dre_status count_lines(FILE *f, const char *path, int64_t start, int64_t end,
                              int64_t *out) {
    *out = 0;
    if (end <= start) return DRE_OK;
    if (fseeko(f, (off_t)start, SEEK_SET) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: seek: %s", path, strerror(errno));
    char *buf = malloc(READ_CHUNK);
    if (!buf) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    dre_status st = DRE_OK;
    for (int64_t left = end - start; left > 0 && st == DRE_OK;) {
        size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
        size_t got = fread(buf, 1, want, f);
        if (got == 0) {
            st = dre_set_error(DRE_ERR_IO, "%s: read: %s", path,
                               ferror(f) ? strerror(errno) : "shorter than it was");
            break;
        }
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))); p++) (*out)++;
        left -= (int64_t)got;
    }
    free(buf);
    return st;
}

/* This rank's part: bytes [size * r / N, size * (r + 1) / N), both ends moved to the next line
 * start, and the lines before it. Collective. */
static dre_status find_part(const sharded_embed *r, const char *corpus, int64_t size,
                            embed_part *part) {
    FILE *f = fopen(corpus, "rb");
    dre_status st = f ? DRE_OK : dre_set_error(DRE_ERR_IO, "%s: %s", corpus, strerror(errno));
    int64_t lines = 0;
    if (st == DRE_OK) st = line_start(f, corpus, size, size / r->size * r->rank +
                                                          size % r->size * r->rank / r->size,
                                      &part->start);
    if (st == DRE_OK)
        st = line_start(f, corpus, size,
                        size / r->size * (r->rank + 1) + size % r->size * (r->rank + 1) / r->size,
                        &part->end);
    if (st == DRE_OK) st = count_lines(f, corpus, part->start, part->end, &lines);
    if (f) fclose(f);
    st = dre_dist_agree(st);
    if (st != DRE_OK) return st;
    long long mine = lines, before = 0;
    MPI_Exscan(&mine, &before, 1, MPI_LONG_LONG, MPI_SUM, dre_dist_comm());
    part->first_line = r->rank == 0 ? 0 : before;
    return DRE_OK;
}

/* ------------------------------------------------------------------ training */

/* The writer's trainer on every rank (index/writer.h): the corpus's first train_size vectors,
 * wherever they are staged, gathered to rank 0, trained on there once, shared as trained.faiss. */
static dre_status train_shared(void *user, index_writer *w, vindex *untrained,
                               vindex **replacement) {
    const sharded_embed *r = user;
    MPI_Comm comm = dre_dist_comm();
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, r->dir, TRAINED_FILE));
    dre_status st = DRE_OK;
    if (!r->have_trained) {
        const int32_t dim = dre_vindex_dim(untrained);
        long long mine = dre_index_writer_vectors(w);
        long long *counts = calloc((size_t)r->size, sizeof *counts);
        int *take = calloc((size_t)r->size, sizeof *take), *at = calloc((size_t)r->size, sizeof *at);
        if (!counts || !take || !at) st = dre_set_error(DRE_ERR_NOMEM, "training: out of memory");
        st = dre_dist_agree(st);
        if (st == DRE_OK) MPI_Allgather(&mine, 1, MPI_LONG_LONG, counts, 1, MPI_LONG_LONG, comm);
        /* The sample: the first min(train_size, total) vectors in corpus order. */
        long long want = dre_index_writer_train_size(w), before = 0, total = 0;
        for (int i = 0; st == DRE_OK && i < r->size; i++) {
            long long left = want - before;
            take[i] = (int)(left <= 0 ? 0 : left < counts[i] ? left : counts[i]);
            at[i] = (int)(before < want ? before : want);
            before += counts[i];
        }
        total = before < want ? before : want;
        if (st == DRE_OK && total == 0)
            st = dre_set_error(DRE_ERR_FORMAT, "an index that needs training, and no documents");
        float *mine_rows = NULL, *sample = NULL;
        if (st == DRE_OK) {
            mine_rows = malloc((size_t)(take[r->rank] > 0 ? take[r->rank] : 1) * dim * sizeof(float));
            if (r->rank == 0) sample = malloc((size_t)total * dim * sizeof(float));
            if (!mine_rows || (r->rank == 0 && !sample))
                st = dre_set_error(DRE_ERR_NOMEM, "out of memory for %lld training vectors", total);
            if (st == DRE_OK) st = dre_index_writer_read_staged(w, 0, take[r->rank], mine_rows);
            st = dre_dist_agree(st);
        }
        if (st == DRE_OK) {
            MPI_Datatype row;
            MPI_Type_contiguous(dim, MPI_FLOAT, &row);
            MPI_Type_commit(&row);
            MPI_Gatherv(mine_rows, take[r->rank], row, sample, take, at, row, 0, comm);
            MPI_Type_free(&row);
            if (r->rank == 0) {
                st = dre_vindex_train(untrained, (int64_t)total, sample);
                if (st == DRE_OK) st = dre_vindex_write(untrained, path);
            }
            st = dre_dist_share(st, 0);
        }
        free(sample);
        free(mine_rows);
        free(counts);
        free(take);
        free(at);
        if (st != DRE_OK) return st;
        if (r->rank == 0) return DRE_OK; /* trained in place */
    }
    return dre_vindex_read(path, dre_index_writer_quantize(w), replacement);
}

/* ------------------------------------------------------------------ ids */

/* One id on its way to the rank that checks it: hash, where it is, its bytes. */
typedef struct id_head {
    uint64_t hash;
    int64_t doc; /* the document's number in the corpus's order, from 0 */
    int32_t shard;
    uint32_t len;
} id_head;

typedef struct id_buffers {
    char **buf;
    size_t *len, *cap;
    int n_ranks, shard;
    int64_t first_doc;
} id_buffers;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* A record's bytes: its head and its id, padded so that the next head is aligned. */
static size_t record_size(uint32_t len) { return sizeof(id_head) + ((len + 7u) & ~(size_t)7); }

static dre_status put_id(void *user, int64_t row, const char *id, size_t len) {
    id_buffers *b = user;
    id_head head = {.hash = hash_bytes(id, len), .doc = b->first_doc + row, .shard = b->shard,
                    .len = (uint32_t)len};
    int to = (int)(head.hash % (uint64_t)b->n_ranks);
    size_t need = b->len[to] + record_size(head.len);
    if (need > (size_t)INT_MAX)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "ids: more than 2 GB for one rank to check");
    if (need > b->cap[to]) {
        size_t cap = b->cap[to] ? b->cap[to] * 2 : 1 << 16;
        while (cap < need) cap *= 2;
        char *grown = realloc(b->buf[to], cap);
        if (!grown) return dre_set_error(DRE_ERR_NOMEM, "ids: out of memory");
        b->buf[to] = grown;
        b->cap[to] = cap;
    }
    memset(b->buf[to] + b->len[to], 0, record_size(head.len));
    memcpy(b->buf[to] + b->len[to], &head, sizeof head);
    memcpy(b->buf[to] + b->len[to] + sizeof head, id, len);
    b->len[to] = need;
    return DRE_OK;
}

typedef struct id_ref {
    const id_head *head;
    const char *id;
} id_ref;

static int by_id(const void *pa, const void *pb) {
    const id_ref *a = pa, *b = pb;
    if (a->head->hash != b->head->hash) return a->head->hash < b->head->hash ? -1 : 1;
    if (a->head->len != b->head->len) return a->head->len < b->head->len ? -1 : 1;
    int c = memcmp(a->id, b->id, a->head->len);
    if (c) return c;
    return a->head->doc < b->head->doc ? -1 : a->head->doc > b->head->doc;
}

/* The first id among the records received that two shards hold. */
static dre_status find_duplicate(const char *data, size_t len) {
    size_t n = 0;
    for (size_t at = 0; at < len; n++) at += record_size(((const id_head *)(data + at))->len);
    id_ref *refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs) return dre_set_error(DRE_ERR_NOMEM, "ids: out of memory");
    size_t i = 0;
    for (size_t at = 0; at < len; i++) {
        refs[i].head = (const id_head *)(data + at);
        refs[i].id = data + at + sizeof(id_head);
        at += record_size(refs[i].head->len);
    }
    qsort(refs, n, sizeof *refs, by_id);
    dre_status st = DRE_OK;
    for (i = 1; i < n && st == DRE_OK; i++) {
        const id_ref *a = &refs[i - 1], *b = &refs[i];
        if (a->head->hash == b->head->hash && a->head->len == b->head->len &&
            !memcmp(a->id, b->id, a->head->len))
            st = dre_set_error(DRE_ERR_FORMAT,
                               "duplicate id \"%.*s\": document %lld of the corpus (" INDEX_SHARD_DIR_FORMAT
                               ") and document %lld (" INDEX_SHARD_DIR_FORMAT ")",
                               (int)(a->head->len > 200 ? 200 : a->head->len), a->id,
                               (long long)a->head->doc + 1, a->head->shard,
                               (long long)b->head->doc + 1, b->head->shard);
    }
    free(refs);
    return st;
}

/* Every id of every shard, sent to the rank its hash names, which looks for one in two
 * shards (one shard's own were checked as it was embedded). Collective. */
static dre_status check_ids(const sharded_embed *r, const char *shard_dir, int64_t first_doc) {
    MPI_Comm comm = dre_dist_comm();
    id_buffers b = {.n_ranks = r->size, .shard = r->rank, .first_doc = first_doc};
    b.buf = calloc((size_t)r->size, sizeof *b.buf);
    b.len = calloc((size_t)r->size, sizeof *b.len);
    b.cap = calloc((size_t)r->size, sizeof *b.cap);
    int *send_n = calloc((size_t)r->size, sizeof(int)), *send_at = calloc((size_t)r->size, sizeof(int));
    int *recv_n = calloc((size_t)r->size, sizeof(int)), *recv_at = calloc((size_t)r->size, sizeof(int));
    char *send = NULL, *recv = NULL;
    dre_status st = b.buf && b.len && b.cap && send_n && send_at && recv_n && recv_at
                        ? DRE_OK
                        : dre_set_error(DRE_ERR_NOMEM, "ids: out of memory");
    char path[PATH_MAX];
    if (st == DRE_OK) st = dre_path_join(path, sizeof path, shard_dir, INDEX_DOCS_FILE);
    if (st == DRE_OK) st = dre_docstore_each_id(path, put_id, &b);
    size_t total = 0;
    for (int i = 0; st == DRE_OK && i < r->size; i++) total += b.len[i];
    if (st == DRE_OK && total > (size_t)INT_MAX)
        st = dre_set_error(DRE_ERR_UNSUPPORTED, "ids: more than 2 GB of them on one rank");
    if (st == DRE_OK && !(send = malloc(total ? total : 1)))
        st = dre_set_error(DRE_ERR_NOMEM, "ids: out of memory");
    for (int i = 0, at = 0; st == DRE_OK && i < r->size; i++) {
        if (b.len[i]) memcpy(send + at, b.buf[i], b.len[i]);
        send_n[i] = (int)b.len[i];
        send_at[i] = at;
        at += (int)b.len[i];
    }
    st = dre_dist_agree(st);
    if (st == DRE_OK) {
        MPI_Alltoall(send_n, 1, MPI_INT, recv_n, 1, MPI_INT, comm);
        long long in = 0;
        for (int i = 0; i < r->size; i++) {
            recv_at[i] = (int)in;
            in += recv_n[i];
        }
        if (in > INT_MAX)
            st = dre_set_error(DRE_ERR_UNSUPPORTED, "ids: more than 2 GB of them for one rank");
        else if (!(recv = malloc(in ? (size_t)in : 1)))
            st = dre_set_error(DRE_ERR_NOMEM, "ids: out of memory");
        st = dre_dist_agree(st);
        if (st == DRE_OK) {
            MPI_Alltoallv(send, send_n, send_at, MPI_BYTE, recv, recv_n, recv_at, MPI_BYTE, comm);
            st = dre_dist_agree(find_duplicate(recv, (size_t)in));
        }
    }
    for (int i = 0; b.buf && i < r->size; i++) free(b.buf[i]);
    free(b.buf);
    free(b.len);
    free(b.cap);
    free(send_n);
    free(send_at);
    free(recv_n);
    free(recv_at);
    free(send);
    free(recv);
    return st;
}

/* ------------------------------------------------------------------ the job */

/* --quantize keeps int8 rescoring vectors whose ranges each shard would learn from its own
 * vectors; until they are shared like the trained index, a sharded embed refuses them. */
static dre_status check_options(const dre_embed_options *o) {
    if (o->append)
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "a sharded embed makes a new index; --append is for one process");
    if (o->quantize == DRE_QUANTIZE_INT8 ||
        (o->quantize == DRE_QUANTIZE_BINARY && o->rescore != DRE_RESCORE_FP32))
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "a sharded embed cannot keep int8 rescoring vectors yet (each shard "
                             "would scale its own): use --quantize binary --rescore fp32, or "
                             "one process");
    return DRE_OK;
}

/* Sums the ranks' summaries on rank 0. */
static void sum_summaries(const dre_embed_summary *mine, dre_embed_summary *out, int rank) {
    long long in[6] = {mine->n_docs, mine->n_skipped, mine->n_tokens, mine->n_total,
                       mine->n_vectors, mine->n_truncated};
    long long sum[6] = {0};
    double seconds = 0;
    MPI_Reduce(in, sum, 6, MPI_LONG_LONG, MPI_SUM, 0, dre_dist_comm());
    MPI_Reduce(&mine->seconds, &seconds, 1, MPI_DOUBLE, MPI_MAX, 0, dre_dist_comm());
    *out = *mine;
    if (rank != 0) return;
    out->n_docs = sum[0];
    out->n_skipped = sum[1];
    out->n_tokens = sum[2];
    out->n_total = sum[3];
    out->n_vectors = sum[4];
    out->n_truncated = sum[5];
    out->seconds = seconds;
}

/* Embeds this rank's part into its shard, or finds it finished by an earlier run. */
static dre_status embed_shard(const sharded_embed *r, const char *model_dir, const char *corpus,
                              const char *shard_dir, const dre_embed_options *opts,
                              const embed_part *part, dre_embed_summary *sum) {
    if (mkdir(shard_dir, 0755) != 0 && errno != EEXIST)
        return dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", shard_dir, strerror(errno));
    int has_checkpoint = dre_file_exists_in(shard_dir, INDEX_CHECKPOINT_FILE);
    if (!has_checkpoint && dre_file_exists_in(shard_dir, INDEX_META_FILE)) {
        if (!opts->resume)
            return dre_set_error(DRE_ERR_INVALID_ARG, "%s already holds an index", shard_dir);
        dre_index_info info;
        DRE_TRY(dre_index_meta_read(shard_dir, &info));
        sum->n_total = info.count;
        sum->already_finished = 1;
        return DRE_OK;
    }
    dre_embed_options o = *opts;
    o.resume = opts->resume && has_checkpoint;
    if (o.n_threads <= 0) o.n_threads = dre_dist_threads();
    if (r->rank != 0) o.progress = NULL;
    char errors[PATH_MAX];
    if (opts->errors_path) {
        if (snprintf(errors, sizeof errors, "%s.rank-%d", opts->errors_path, r->rank) >=
            (int)sizeof errors)
            return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", opts->errors_path);
        o.errors_path = errors;
    }
    return dre_embed_part(model_dir, corpus, shard_dir, &o, part, sum);
}

dre_status dre_embed_sharded(const char *model_dir, const char *corpus_path,
                             const char *index_dir, const dre_embed_options *opts,
                             dre_embed_summary *summary) {
    dre_dist_set_shared(1);
    if (!model_dir || !corpus_path || !index_dir || !opts)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_embed_sharded: NULL argument");
    sharded_embed r = {.dir = index_dir, .rank = dre_dist_rank(), .size = dre_dist_size()};
    dre_embed_summary mine = {0};
    if (summary) memset(summary, 0, sizeof *summary);

    /* Options, corpus and folder, checked by rank 0 for all. */
    struct stat cs;
    int finished = 0;
    dre_status st = check_options(opts);
    if (st == DRE_OK && stat(corpus_path, &cs) != 0)
        st = dre_set_error(DRE_ERR_IO, "%s: %s", corpus_path, strerror(errno));
    if (st == DRE_OK && !S_ISREG(cs.st_mode))
        st = dre_set_error(DRE_ERR_INVALID_ARG,
                           "%s: a sharded embed reads a corpus file (each rank its own part)",
                           corpus_path);
    if (st == DRE_OK && r.rank == 0) st = make_plan(&r, (int64_t)cs.st_size, opts->resume, &finished);
    int flags[2] = {finished, 0};
    char trained[PATH_MAX];
    if (st == DRE_OK && r.rank == 0 && dre_path_join(trained, sizeof trained, index_dir, TRAINED_FILE) == DRE_OK)
        flags[1] = access(trained, F_OK) == 0;
    DRE_TRY(dre_dist_share(st, 0));
    MPI_Bcast(flags, 2, MPI_INT, 0, dre_dist_comm());
    r.have_trained = flags[1];
    if (flags[0]) { /* a --resume of a job that had finished */
        if (summary && r.rank == 0) {
            dre_index_info info;
            if (dre_index_meta_read(index_dir, &info) == DRE_OK) summary->n_total = info.count;
            summary->already_finished = 1;
        }
        return DRE_OK;
    }

    embed_part part = {.trainer = train_shared, .trainer_user = &r};
    DRE_TRY(find_part(&r, corpus_path, (int64_t)cs.st_size, &part));
    char shard_dir[PATH_MAX], name[32];
    snprintf(name, sizeof name, INDEX_SHARD_DIR_FORMAT, r.rank);
    DRE_TRY(dre_path_join(shard_dir, sizeof shard_dir, index_dir, name));
    st = embed_shard(&r, model_dir, corpus_path, shard_dir, opts, &part, &mine);
    if (st != DRE_OK) {
        dre_dist_set_shared(0); /* this rank's own failure: it reports it and stops the job */
        return st;
    }
    DRE_TRY(dre_dist_agree(DRE_OK)); /* every shard finished */

    long long count = mine.n_total, before = 0;
    MPI_Exscan(&count, &before, 1, MPI_LONG_LONG, MPI_SUM, dre_dist_comm());
    DRE_TRY(check_ids(&r, shard_dir, r.rank == 0 ? 0 : before));

    st = DRE_OK;
    if (r.rank == 0) {
        st = dre_shards_manifest_write(index_dir, r.size);
        if (st == DRE_OK) {
            dre_remove_in(index_dir, TRAINED_FILE);
            dre_remove_in(index_dir, PLAN_FILE);
            st = dre_sync_path(index_dir);
        }
    }
    DRE_TRY(dre_dist_share(st, 0));
    dre_embed_summary all;
    sum_summaries(&mine, &all, r.rank);
    if (summary) *summary = all;
    return DRE_OK;
}
