/* dist/serve.c — a searcher across the ranks of an mpirun job (mpirun dre serve): every rank
 * holds a run of a sharded index's shards; rank 0 embeds queries and answers HTTP, and its
 * index asks the other ranks for their shards (index/shards.h's shards_remote) over MPI:
 *
 *   rank 0                                   every other rank (serve_loop)
 *   header + payload  --MPI_Bcast-->          search its own shards
 *   merge             <--MPI_Gather--         k best per query, rows global
 *
 * Searches and BM25 go to every rank (BM25 statistics summed first, so each ranks with the
 * corpus-wide ones); a document or chunk of a row goes to the rank holding it alone (MPI_Send).
 * One exchange at a time (a mutex on rank 0): MPI is called from one thread at a time. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dist/dist.h"
#include "index/docstore.h"
#include "index/index.h"
#include "index/ranking.h"
#include "index/shards.h"
#include "search/searcher.h"

enum { OP_STOP, OP_SEARCH, OP_BM25_STATS, OP_BM25_SEARCH, OP_DOC, OP_CHUNK };

typedef struct op_header {
    int32_t op, k, n_params, n_phrases;
    int64_t n;   /* queries (OP_SEARCH) */
    int64_t row; /* OP_DOC, OP_CHUNK */
    int64_t len; /* bytes of the query text (BM25) */
} op_header;

typedef struct dist_serve {
    int rank, size;
    int32_t n_shards, dim;
    dre_index *index;    /* this rank's shards (NULL if it holds none) */
    int32_t *owner;      /* [n_shards]: the rank holding each shard */
    int64_t *first_row;  /* [n_shards + 1] */
    int64_t *first_vec;  /* [n_shards + 1] */
    pthread_mutex_t mu;  /* rank 0: one exchange at a time */
    shards_remote remote;
} dist_serve;

static dist_serve job; /* one per process */

/* The run of shards rank r holds: contiguous, as even as can be; when there are fewer shards
 * than ranks, rank r holds shard r (or none). */
static void shards_of(int32_t n_shards, int size, int r, int32_t *first, int32_t *n) {
    if (n_shards < size) {
        *first = r;
        *n = r < n_shards ? 1 : 0;
        return;
    }
    *first = (int32_t)((int64_t)n_shards * r / size);
    *n = (int32_t)((int64_t)n_shards * (r + 1) / size) - *first;
}

/* ------------------------------------------------------------------ merging on rank 0 */

/* A failed rank's message, or DRE_OK: statuses gathered on rank 0. */
static dre_status first_failure(const int *status, const char *what) {
    for (int r = 1; r < job.size; r++)
        if (status[r] != DRE_OK)
            return dre_set_error((dre_status)status[r], "rank %d failed to answer %s", r, what);
    return DRE_OK;
}

static void send_header(const op_header *h) { MPI_Bcast((void *)h, sizeof *h, MPI_BYTE, 0, dre_dist_comm()); }

/* ------------------------------------------------------------------ rank 0's remote shards */

static dre_status remote_search(void *ctx, const float *queries, int64_t n, int32_t k,
                                const dre_search_param *params, int32_t n_params, float *scores,
                                int64_t *rows) {
    (void)ctx;
    const int64_t nk = n * k;
    if (nk > (1 << 28)) return dre_set_error(DRE_ERR_INVALID_ARG, "search: %lld results at once", (long long)nk);
    float *all_s = malloc((size_t)(nk * job.size) * sizeof *all_s);
    int64_t *all_r = malloc((size_t)(nk * job.size) * sizeof *all_r);
    int *status = malloc((size_t)job.size * sizeof *status);
    ranked *h = malloc((size_t)k * (size_t)job.size * sizeof *h);
    if (!all_s || !all_r || !status || !h) {
        free(all_s), free(all_r), free(status), free(h);
        return dre_set_error(DRE_ERR_NOMEM, "search: out of memory");
    }
    pthread_mutex_lock(&job.mu);
    op_header hd = {.op = OP_SEARCH, .n = n, .k = k, .n_params = n_params};
    send_header(&hd);
    MPI_Comm comm = dre_dist_comm();
    MPI_Bcast((void *)queries, (int)(n * job.dim), MPI_FLOAT, 0, comm);
    if (n_params > 0)
        MPI_Bcast((void *)params, (int)(n_params * sizeof *params), MPI_BYTE, 0, comm);
    for (int64_t i = 0; i < nk; i++) all_s[i] = -INFINITY, all_r[i] = -1; /* rank 0's part */
    int mine = DRE_OK;
    MPI_Gather(&mine, 1, MPI_INT, status, 1, MPI_INT, 0, comm);
    MPI_Gather(MPI_IN_PLACE, (int)nk, MPI_FLOAT, all_s, (int)nk, MPI_FLOAT, 0, comm);
    MPI_Gather(MPI_IN_PLACE, (int)nk, MPI_INT64_T, all_r, (int)nk, MPI_INT64_T, 0, comm);
    pthread_mutex_unlock(&job.mu);
    dre_status st = first_failure(status, "a search");
    for (int64_t q = 0; st == DRE_OK && q < n; q++) {
        int64_t m = 0;
        for (int r = 1; r < job.size; r++)
            for (int32_t j = 0; j < k; j++) {
                int64_t at = r * nk + q * k + j;
                if (all_r[at] >= 0) h[m++] = (ranked){all_s[at], all_r[at]};
            }
        m = dre_rank_vectors(h, m, k);
        for (int32_t j = 0; j < k; j++) {
            scores[q * k + j] = j < m ? (float)h[j].score : -INFINITY;
            rows[q * k + j] = j < m ? h[j].row : -1;
        }
    }
    free(all_s), free(all_r), free(status), free(h);
    return st;
}

/* The counts of a statistics record as one array: rows, tokens, each phrase's rows, failures. */
static dre_status remote_bm25_stats(void *ctx, const char *query, bm25_stats *stats) {
    (void)ctx;
    const int32_t p = stats->n_phrases;
    int64_t len = (int64_t)strlen(query);
    long long *zero = calloc((size_t)p + 3, sizeof *zero), *sum = calloc((size_t)p + 3, sizeof *sum);
    if (!zero || !sum) {
        free(zero), free(sum);
        return dre_set_error(DRE_ERR_NOMEM, "BM25: out of memory");
    }
    pthread_mutex_lock(&job.mu);
    op_header hd = {.op = OP_BM25_STATS, .len = len, .n_phrases = p};
    send_header(&hd);
    MPI_Bcast((void *)query, (int)len, MPI_CHAR, 0, dre_dist_comm());
    MPI_Reduce(zero, sum, p + 3, MPI_LONG_LONG, MPI_SUM, 0, dre_dist_comm());
    pthread_mutex_unlock(&job.mu);
    dre_status st = sum[p + 2] ? dre_set_error(DRE_ERR_INDEX,
                                               "%lld ranks failed to count BM25 statistics",
                                               sum[p + 2])
                               : DRE_OK;
    stats->n_rows = sum[0];
    stats->n_tokens = sum[1];
    for (int32_t i = 0; i < p; i++) stats->phrase_rows[i] = sum[2 + i];
    free(zero), free(sum);
    return st;
}

static dre_status remote_bm25_search(void *ctx, const char *query, const bm25_stats *stats,
                                     int32_t k, double *scores, int64_t *rows, int32_t *n) {
    (void)ctx;
    *n = 0;
    const int32_t p = stats->n_phrases;
    int64_t len = (int64_t)strlen(query);
    long long *counts = malloc((size_t)(p + 2) * sizeof *counts);
    double *all_s = malloc((size_t)k * job.size * sizeof *all_s);
    int64_t *all_r = malloc((size_t)k * job.size * sizeof *all_r);
    int *got = malloc((size_t)job.size * sizeof *got), *status = malloc((size_t)job.size * sizeof *status);
    ranked *h = malloc((size_t)k * job.size * sizeof *h);
    dre_status st = counts && all_s && all_r && got && status && h
                        ? DRE_OK
                        : dre_set_error(DRE_ERR_NOMEM, "BM25: out of memory");
    if (st == DRE_OK) {
        counts[0] = stats->n_rows;
        counts[1] = stats->n_tokens;
        for (int32_t i = 0; i < p; i++) counts[2 + i] = stats->phrase_rows[i];
        pthread_mutex_lock(&job.mu);
        op_header hd = {.op = OP_BM25_SEARCH, .len = len, .k = k, .n_phrases = p};
        send_header(&hd);
        MPI_Comm comm = dre_dist_comm();
        MPI_Bcast((void *)query, (int)len, MPI_CHAR, 0, comm);
        MPI_Bcast(counts, p + 2, MPI_LONG_LONG, 0, comm);
        int mine[2] = {DRE_OK, 0};
        MPI_Gather(&mine[0], 1, MPI_INT, status, 1, MPI_INT, 0, comm);
        MPI_Gather(&mine[1], 1, MPI_INT, got, 1, MPI_INT, 0, comm);
        MPI_Gather(MPI_IN_PLACE, k, MPI_DOUBLE, all_s, k, MPI_DOUBLE, 0, comm);
        MPI_Gather(MPI_IN_PLACE, k, MPI_INT64_T, all_r, k, MPI_INT64_T, 0, comm);
        pthread_mutex_unlock(&job.mu);
        st = first_failure(status, "a BM25 search");
    }
    if (st == DRE_OK) {
        int64_t m = 0;
        for (int r = 1; r < job.size; r++)
            for (int32_t j = 0; j < got[r] && j < k; j++)
                h[m++] = (ranked){all_s[(int64_t)r * k + j], all_r[(int64_t)r * k + j]};
        *n = dre_rank_bm25(h, m, k);
        for (int32_t j = 0; j < *n; j++) {
            scores[j] = h[j].score;
            rows[j] = h[j].row;
        }
    }
    free(counts), free(all_s), free(all_r), free(got), free(status), free(h);
    return st;
}

/* A document from the rank holding it: status, three lengths, then the bytes. */
static dre_status remote_doc(void *ctx, int64_t row, dre_doc *doc) {
    (void)ctx;
    memset(doc, 0, sizeof *doc);
    int owner = job.owner[dre_shard_of_row(job.first_row, job.n_shards, row)];
    pthread_mutex_lock(&job.mu);
    op_header hd = {.op = OP_DOC, .row = row};
    send_header(&hd);
    long long head[4];
    MPI_Recv(head, 4, MPI_LONG_LONG, owner, OP_DOC, dre_dist_comm(), MPI_STATUS_IGNORE);
    size_t total = 0; /* the lengths sent; -1 marks a part that is absent */
    for (int i = 1; i < 4; i++) total += head[i] > 0 ? (size_t)head[i] : 0;
    char *bytes = malloc(total + 1);
    MPI_Recv(bytes ? bytes : (char[1]){0}, bytes ? (int)total : 0, MPI_CHAR, owner, OP_DOC,
             dre_dist_comm(), MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&job.mu);
    if (head[0] != DRE_OK) {
        if (bytes) bytes[total] = '\0';
        dre_status st = dre_set_error((dre_status)head[0], "rank %d: %s", owner, bytes ? bytes : "");
        free(bytes);
        return st;
    }
    if (!bytes) return dre_set_error(DRE_ERR_NOMEM, "document: out of memory");
    char *parts[3] = {NULL, NULL, NULL};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        if (head[1 + i] < 0) continue; /* none (a document without a title) */
        parts[i] = malloc((size_t)head[1 + i] + 1);
        if (parts[i]) {
            memcpy(parts[i], bytes + at, (size_t)head[1 + i]);
            parts[i][head[1 + i]] = '\0';
        }
        at += (size_t)head[1 + i];
    }
    free(bytes);
    doc->row = row;
    doc->id = parts[0];
    doc->title = parts[1];
    doc->text = parts[2];
    if ((head[1] >= 0 && !parts[0]) || (head[2] >= 0 && !parts[1]) || (head[3] >= 0 && !parts[2])) {
        dre_doc_clear(doc);
        return dre_set_error(DRE_ERR_NOMEM, "document: out of memory");
    }
    return DRE_OK;
}

static dre_status remote_chunk(void *ctx, int64_t vector_row, int64_t *doc_row, int32_t *chunk) {
    (void)ctx;
    int owner = job.owner[dre_shard_of_row(job.first_vec, job.n_shards, vector_row)];
    pthread_mutex_lock(&job.mu);
    op_header hd = {.op = OP_CHUNK, .row = vector_row};
    send_header(&hd);
    long long reply[3];
    MPI_Recv(reply, 3, MPI_LONG_LONG, owner, OP_CHUNK, dre_dist_comm(), MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&job.mu);
    if (reply[0] != DRE_OK)
        return dre_set_error((dre_status)reply[0], "rank %d: vector row %lld: no chunk", owner,
                             (long long)vector_row);
    *doc_row = reply[1];
    *chunk = (int32_t)reply[2];
    return DRE_OK;
}

/* ------------------------------------------------------------------ the other ranks */

/* A rank that cannot hold a request's buffers cannot take its part in the exchange either:
 * it stops the job, saying so. */
static void *need(void *p, const char *what) {
    if (!p) {
        fprintf(stderr, "dre serve: rank %d: out of memory for %s\n", job.rank, what);
        dre_dist_abort(1);
    }
    return p;
}

static void answer_search(const op_header *hd) {
    MPI_Comm comm = dre_dist_comm();
    const int64_t nk = hd->n * hd->k;
    float *q = need(malloc((size_t)(hd->n * job.dim + 1) * sizeof *q), "queries");
    dre_search_param params[DRE_SEARCH_MAX_PARAMS];
    float *s = need(malloc((size_t)(nk + 1) * sizeof *s), "scores");
    int64_t *r = need(malloc((size_t)(nk + 1) * sizeof *r), "rows");
    MPI_Bcast(q, (int)(hd->n * job.dim), MPI_FLOAT, 0, comm);
    int32_t np = hd->n_params;
    if (np < 0 || np > DRE_SEARCH_MAX_PARAMS) dre_dist_abort(1);
    if (np > 0) MPI_Bcast(params, (int)(np * sizeof *params), MPI_BYTE, 0, comm);
    int st = DRE_OK;
    for (int64_t i = 0; i < nk; i++) s[i] = -INFINITY, r[i] = -1;
    if (job.index)
        st = dre_index_search_with(job.index, q, hd->n, hd->k, params, np, s, r);
    MPI_Gather(&st, 1, MPI_INT, NULL, 1, MPI_INT, 0, comm);
    MPI_Gather(s, (int)nk, MPI_FLOAT, NULL, (int)nk, MPI_FLOAT, 0, comm);
    MPI_Gather(r, (int)nk, MPI_INT64_T, NULL, (int)nk, MPI_INT64_T, 0, comm);
    free(q), free(s), free(r);
}

static char *receive_query(const op_header *hd) {
    char *query = need(malloc((size_t)hd->len + 1), "a query");
    MPI_Bcast(query, (int)hd->len, MPI_CHAR, 0, dre_dist_comm());
    query[hd->len] = '\0';
    return query;
}

static void answer_bm25_stats(const op_header *hd) {
    const int32_t p = hd->n_phrases;
    char *query = receive_query(hd);
    long long *counts = need(calloc((size_t)p + 3, sizeof *counts), "BM25 statistics");
    bm25_stats st = {0};
    int failed = 0;
    if (job.index) {
        failed = dre_index_bm25_stats(job.index, query, &st) != DRE_OK || st.n_phrases != p;
        if (!failed) {
            counts[0] = st.n_rows;
            counts[1] = st.n_tokens;
            for (int32_t i = 0; i < p; i++) counts[2 + i] = st.phrase_rows[i];
        }
        dre_bm25_stats_free(&st);
    }
    counts[p + 2] = failed;
    MPI_Reduce(counts, NULL, p + 3, MPI_LONG_LONG, MPI_SUM, 0, dre_dist_comm());
    free(query), free(counts);
}

static void answer_bm25_search(const op_header *hd) {
    MPI_Comm comm = dre_dist_comm();
    const int32_t p = hd->n_phrases, k = hd->k;
    char *query = receive_query(hd);
    long long *counts = need(malloc((size_t)(p + 2) * sizeof *counts), "BM25 statistics");
    int64_t *phrase_rows = need(malloc((size_t)(p + 1) * sizeof *phrase_rows), "BM25 statistics");
    MPI_Bcast(counts, p + 2, MPI_LONG_LONG, 0, comm);
    double *s = need(malloc((size_t)k * sizeof *s), "scores");
    int64_t *r = need(malloc((size_t)k * sizeof *r), "rows");
    int st = DRE_OK, got = 0;
    for (int32_t j = 0; j < k; j++) s[j] = -INFINITY, r[j] = -1;
    if (job.index) {
        for (int32_t i = 0; i < p; i++) phrase_rows[i] = counts[2 + i];
        bm25_stats stats = {.n_rows = counts[0], .n_tokens = counts[1], .n_phrases = p,
                            .phrase_rows = phrase_rows};
        st = dre_index_bm25_search_stats(job.index, query, &stats, k, s, r, &got);
    }
    MPI_Gather(&st, 1, MPI_INT, NULL, 1, MPI_INT, 0, comm);
    MPI_Gather(&got, 1, MPI_INT, NULL, 1, MPI_INT, 0, comm);
    MPI_Gather(s, k, MPI_DOUBLE, NULL, k, MPI_DOUBLE, 0, comm);
    MPI_Gather(r, k, MPI_INT64_T, NULL, k, MPI_INT64_T, 0, comm);
    free(query), free(counts), free(phrase_rows), free(s), free(r);
}

static int owns_row(const int64_t *starts, int64_t row) {
    if (row < 0 || row >= starts[job.n_shards]) return 0;
    return job.owner[dre_shard_of_row(starts, job.n_shards, row)] == job.rank;
}

static void answer_doc(const op_header *hd) {
    if (!owns_row(job.first_row, hd->row)) return;
    dre_doc doc = {0};
    long long head[4] = {DRE_OK, -1, -1, -1};
    dre_status st = job.index ? dre_index_doc(job.index, hd->row, &doc) : DRE_ERR_INVALID_ARG;
    const char *msg = dre_last_error();
    const char *parts[3] = {doc.id, doc.title, doc.text};
    size_t total = 0;
    if (st != DRE_OK) {
        head[0] = st;
        head[1] = (long long)strlen(msg);
        parts[0] = msg;
        parts[1] = parts[2] = NULL;
    } else {
        for (int i = 0; i < 3; i++) head[1 + i] = parts[i] ? (long long)strlen(parts[i]) : -1;
    }
    for (int i = 0; i < 3; i++) total += head[1 + i] > 0 ? (size_t)head[1 + i] : 0;
    char *bytes = need(malloc(total + 1), "a document");
    size_t at = 0;
    for (int i = 0; i < 3; i++)
        if (head[1 + i] > 0) {
            memcpy(bytes + at, parts[i], (size_t)head[1 + i]);
            at += (size_t)head[1 + i];
        }
    MPI_Send(head, 4, MPI_LONG_LONG, 0, OP_DOC, dre_dist_comm());
    MPI_Send(bytes, (int)total, MPI_CHAR, 0, OP_DOC, dre_dist_comm());
    free(bytes);
    dre_doc_clear(&doc);
}

static void answer_chunk(const op_header *hd) {
    if (!owns_row(job.first_vec, hd->row)) return;
    int64_t doc_row = -1;
    int32_t chunk = 0;
    dre_status st = job.index ? dre_index_chunk(job.index, hd->row, &doc_row, &chunk)
                              : DRE_ERR_INVALID_ARG;
    long long reply[3] = {st, doc_row, chunk};
    MPI_Send(reply, 3, MPI_LONG_LONG, 0, OP_CHUNK, dre_dist_comm());
}

/* Answers rank 0 until it says stop. */
static void serve_loop(void) {
    for (;;) {
        op_header hd;
        MPI_Bcast(&hd, sizeof hd, MPI_BYTE, 0, dre_dist_comm());
        switch (hd.op) {
        case OP_SEARCH: answer_search(&hd); break;
        case OP_BM25_STATS: answer_bm25_stats(&hd); break;
        case OP_BM25_SEARCH: answer_bm25_search(&hd); break;
        case OP_DOC: answer_doc(&hd); break;
        case OP_CHUNK: answer_chunk(&hd); break;
        default: return;
        }
    }
}

/* ------------------------------------------------------------------ open and close */

static void job_free(void) {
    dre_index_close(job.index);
    free(job.owner);
    free(job.first_row);
    free(job.first_vec);
    job.index = NULL;
    job.owner = NULL;
    job.first_row = job.first_vec = NULL;
}

/* Every rank: the manifest, who holds what, and this rank's shards opened. */
static dre_status open_shards(const char *index_dir) {
    shards_manifest m = {0};
    dre_status st = dre_shards_is_sharded(index_dir)
                        ? dre_shards_manifest_read(index_dir, &m)
                        : dre_set_error(DRE_ERR_INVALID_ARG,
                                        "%s is not a sharded index: mpirun dre serve spreads a "
                                        "sharded index's shards over the ranks (mpirun dre embed "
                                        "makes one); serve one index folder with one process",
                                        index_dir);
    if (st != DRE_OK) return st;
    job.n_shards = m.info.n_shards;
    job.dim = m.info.dim;
    job.owner = malloc((size_t)job.n_shards * sizeof *job.owner);
    job.first_row = calloc((size_t)job.n_shards + 1, sizeof *job.first_row);
    job.first_vec = calloc((size_t)job.n_shards + 1, sizeof *job.first_vec);
    if (!job.owner || !job.first_row || !job.first_vec)
        st = dre_set_error(DRE_ERR_NOMEM, "out of memory");
    for (int32_t s = 0; st == DRE_OK && s < job.n_shards; s++) {
        job.first_row[s + 1] = job.first_row[s] + m.shards[s].count;
        job.first_vec[s + 1] = job.first_vec[s] + m.shards[s].n_vectors;
    }
    for (int r = 0; st == DRE_OK && r < job.size; r++) {
        int32_t first = 0, n = 0;
        shards_of(job.n_shards, job.size, r, &first, &n);
        for (int32_t s = first; s < first + n; s++) job.owner[s] = r;
    }
    dre_shards_manifest_free(&m);
    int32_t first = 0, n = 0;
    shards_of(job.n_shards, job.size, job.rank, &first, &n);
    if (st == DRE_OK && n > 0) st = dre_index_open_shards(index_dir, first, n, &job.index);
    return st;
}

dre_status dre_dist_searcher_open(const char *index_dir, const char *model_dir, dre_device device,
                                  dre_precision precision, dre_searcher **out) {
    dre_dist_set_shared(1);
    if (!index_dir || !model_dir || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_dist_searcher_open: NULL argument");
    *out = NULL;
    job.rank = dre_dist_rank();
    job.size = dre_dist_size();
    dre_status st = open_shards(index_dir);
    if (st == DRE_OK && job.rank == 0) {
        job.remote = (shards_remote){.search = remote_search,
                                     .bm25_counts = remote_bm25_stats,
                                     .bm25_search = remote_bm25_search,
                                     .doc = remote_doc,
                                     .chunk = remote_chunk};
        pthread_mutex_init(&job.mu, NULL);
        st = dre_index_set_remote(job.index, &job.remote);
        dre_index *index = job.index;
        job.index = NULL; /* the searcher's now, closed with it */
        if (st == DRE_OK)
            st = dre_searcher_open_index(index, index_dir, model_dir, device, precision, out);
        else
            dre_index_close(index);
    }
    st = dre_dist_agree(st);
    if (st != DRE_OK) {
        if (*out) dre_searcher_close(*out);
        *out = NULL;
        job_free();
        return st;
    }
    if (job.rank != 0) { /* answer until rank 0 stops */
        serve_loop();
        job_free();
    }
    return DRE_OK;
}

void dre_dist_searcher_close(dre_searcher *s) {
    if (job.rank != 0) return;
    dre_searcher_close(s); /* its index asks nothing more of the ranks */
    op_header hd = {.op = OP_STOP};
    send_header(&hd);
    job_free();
    pthread_mutex_destroy(&job.mu);
}
