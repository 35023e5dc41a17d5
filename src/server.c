/* server.c — dre serve: HTTP through libmicrohttpd (its thread pool, connections suspended
 * while their request waits), one batcher thread that embeds every waiting request's texts
 * in one encoder batch and answers them, the service's metrics, and a graceful stop.
 * Request and response bodies: server_request.c. The searcher is the batcher's alone. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "server_request.h"

/* ---------------------------------------------------------------- metrics */

enum { EP_EMBEDDINGS, EP_SEARCH, EP_HEALTH, EP_INFO, EP_METRICS, EP_OTHER, EP_COUNT };
static const char *const endpoint_names[EP_COUNT] = {"/v1/embeddings", "/search",  "/health",
                                                     "/info",          "/metrics", "other"};
static const int status_codes[] = {200, 400, 401, 404, 405, 413, 422, 500, 503};
#define N_STATUS ((int)(sizeof status_codes / sizeof status_codes[0]))
static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
#define N_LATENCY ((int)(sizeof latency_buckets / sizeof latency_buckets[0]))
static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
#define N_BATCH ((int)(sizeof batch_buckets / sizeof batch_buckets[0]))

typedef struct metrics {
    pthread_mutex_t mu;
    uint64_t requests[EP_COUNT][N_STATUS];
    uint64_t latency[EP_COUNT][N_LATENCY + 1]; /* per bucket (not cumulative), then +Inf */
    double latency_sum[EP_COUNT];
    uint64_t batch_texts[N_BATCH + 1];
    double batch_texts_sum;
    uint64_t batches, tokens;
} metrics;

/* ---------------------------------------------------------------- jobs */

typedef struct job {
    server_request req;
    struct MHD_Connection *conn;
    int status;     /* the HTTP status of the answer */
    char *response; /* its JSON body */
    struct job *next;
} job;

/* One HTTP request's state across libmicrohttpd's calls. */
typedef struct request_ctx {
    double t0;
    char method[8];
    int endpoint;
    char *body;
    size_t len, cap;
    int too_big;
    job *job; /* submitted to the batcher */
    int done; /* the batcher answered */
} request_ctx;

struct dre_server {
    dre_searcher *searcher;
    dre_server_options o;
    char model_name[128];
    int32_t dim;
    struct MHD_Daemon *daemon;
    int port;
    pthread_t batcher;
    int batcher_started;
    pthread_mutex_t mu; /* the queue, the counters below, every job's done flag */
    pthread_cond_t cv;  /* the batcher waits for jobs, the stop for in-flight ones */
    job *head, *tail;
    int32_t queued, in_flight; /* waiting; submitted and not yet answered */
    int64_t queued_tokens;     /* estimated, of the queue */
    int stopping;              /* no more requests taken */
    int batcher_exit;
    metrics m;
};

static double now_s(void) { return now_seconds(); }

static void metrics_request(dre_server *srv, int ep, int status, double seconds) {
    metrics *m = &srv->m;
    int si = 0;
    while (si < N_STATUS - 1 && status_codes[si] != status)
        si++;
    int b = 0;
    while (b < N_LATENCY && seconds > latency_buckets[b])
        b++;
    pthread_mutex_lock(&m->mu);
    m->requests[ep][si]++;
    m->latency[ep][b]++;
    m->latency_sum[ep] += seconds;
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- the batcher */

/* A text's token count, guessed before tokenizing (for the batch budget): a wordpiece is
 * about 4 bytes of English, plus [CLS] and [SEP]. */
static int64_t estimate_tokens(const server_request *r) {
    int64_t t = 0;
    for (int32_t i = 0; i < r->n_texts; i++)
        t += (int64_t)strlen(r->texts[i]) / 4 + 2;
    return t;
}

static void answer(job *j, int status, char *body) {
    j->status = status;
    j->response = body;
}

static void answer_error(job *j, int status, const char *type) {
    answer(j, status, server_error_json(dre_last_error(), type));
}

/* The jobs of one batch: every text embedded at once (embeddings as sent, queries with the
 * index's query prompt), then each search answered on its own options. */
static void run_batch(dre_server *srv, job *jobs) {
    size_t n_docs = 0, n_queries = 0;
    for (job *j = jobs; j; j = j->next)
        *(j->req.endpoint == SERVER_EMBEDDINGS ? &n_docs : &n_queries) += (size_t)j->req.n_texts;
    const size_t n = n_docs + n_queries, dim = (size_t)srv->dim;
    const char **texts = malloc((n ? n : 1) * sizeof *texts);
    float *vectors = malloc((n ? n : 1) * dim * sizeof *vectors);
    int32_t *tokens = malloc((n ? n : 1) * sizeof *tokens);
    dre_status st = texts && vectors && tokens
                        ? DRE_OK
                        : set_error(DRE_ERR_NOMEM, "out of memory for a batch of %zu texts", n);
    size_t d = 0, q = n_docs;
    for (job *j = jobs; st == DRE_OK && j; j = j->next)
        for (int32_t i = 0; i < j->req.n_texts; i++)
            texts[j->req.endpoint == SERVER_EMBEDDINGS ? d++ : q++] = j->req.texts[i];
    if (st == DRE_OK && n_docs)
        st = dre_searcher_embed(srv->searcher, texts, n_docs, NULL, vectors, tokens);
    if (st == DRE_OK && n_queries)
        st = dre_searcher_embed(srv->searcher, texts + n_docs, n_queries,
                                dre_searcher_query_prompt(srv->searcher), vectors + n_docs * dim,
                                tokens + n_docs);
    int64_t batch_tokens = 0;
    for (size_t i = 0; st == DRE_OK && i < n; i++)
        batch_tokens += tokens[i];

    d = 0, q = n_docs;
    for (job *j = jobs; j; j = j->next) {
        server_request *r = &j->req;
        if (st != DRE_OK) {
            answer_error(j, 500, "server_error");
            continue;
        }
        const size_t first = r->endpoint == SERVER_EMBEDDINGS ? d : q;
        *(r->endpoint == SERVER_EMBEDDINGS ? &d : &q) += (size_t)r->n_texts;
        if (r->endpoint == SERVER_EMBEDDINGS) {
            int64_t used = 0;
            for (int32_t i = 0; i < r->n_texts; i++)
                used += tokens[first + (size_t)i];
            char *body =
                server_embeddings_json(r, vectors + first * dim, srv->dim, srv->model_name, used);
            answer(j, body ? 200 : 500,
                   body ? body : server_error_json("out of memory", "server_error"));
            continue;
        }
        dre_index *index = dre_searcher_index(srv->searcher);
        dre_status js;
        const size_t k = (size_t)r->search.k;
        dre_hit *hits = malloc((size_t)r->n_texts * k * sizeof *hits);
        int32_t *n_hits = malloc((size_t)r->n_texts * sizeof *n_hits);
        js = hits && n_hits ? dre_search_embedded(srv->searcher, (const char *const *)r->texts,
                                                  vectors + first * dim, (size_t)r->n_texts,
                                                  &r->search, hits, n_hits)
                            : set_error(DRE_ERR_NOMEM, "out of memory for %d queries", r->n_texts);
        char *body = js == DRE_OK ? server_search_json(r, index, hits, n_hits) : NULL;
        if (body)
            answer(j, 200, body);
        else
            answer_error(j, js == DRE_ERR_UNSUPPORTED || js == DRE_ERR_INVALID_ARG ? 400 : 500,
                         js == DRE_ERR_UNSUPPORTED || js == DRE_ERR_INVALID_ARG
                             ? "invalid_request_error"
                             : "server_error");
        free(hits);
        free(n_hits);
    }
    free(texts);
    free(vectors);
    free(tokens);

    metrics *m = &srv->m;
    int b = 0;
    while (b < N_BATCH && (double)n > batch_buckets[b])
        b++;
    pthread_mutex_lock(&m->mu);
    m->batch_texts[b]++;
    m->batch_texts_sum += (double)n;
    m->batches++;
    m->tokens += (uint64_t)batch_tokens;
    pthread_mutex_unlock(&m->mu);
}

static void *batcher_main(void *arg) {
    dre_server *srv = arg;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        while (!srv->head && !srv->batcher_exit)
            pthread_cond_wait(&srv->cv, &srv->mu);
        if (!srv->head) break; /* told to exit, nothing left */
        /* a short wait for more requests, unless the budget is already full */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        const long ns = until.tv_nsec + (long)srv->o.max_wait_ms * 1000000L;
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        while (srv->queued_tokens < srv->o.max_batch_tokens && !srv->batcher_exit &&
               pthread_cond_timedwait(&srv->cv, &srv->mu, &until) != ETIMEDOUT) {
        }
        /* take jobs up to the budget (always the first) */
        job *first = srv->head, *last = first;
        int64_t tokens = estimate_tokens(&first->req);
        int32_t taken = 1;
        while (last->next &&
               tokens + estimate_tokens(&last->next->req) <= srv->o.max_batch_tokens) {
            last = last->next;
            tokens += estimate_tokens(&last->req);
            taken++;
        }
        srv->head = last->next;
        if (!srv->head) srv->tail = NULL;
        last->next = NULL;
        srv->queued -= taken;
        srv->queued_tokens -= tokens;
        pthread_mutex_unlock(&srv->mu);

        run_batch(srv, first);

        pthread_mutex_lock(&srv->mu);
        for (job *j = first; j;) { /* answered: back to their connections, which free them */
            job *next = j->next;
            j->next = NULL;
            MHD_resume_connection(j->conn);
            j = next;
        }
        pthread_cond_broadcast(&srv->cv);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result reply(struct MHD_Connection *conn, dre_server *srv, request_ctx *ctx,
                             int status, char *body, const char *content_type) {
    if (!body)
        body = strdup("{\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\"}}");
    const size_t len = body ? strlen(body) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    if (status == 405)
        MHD_add_response_header(resp, "Allow", ctx->endpoint <= EP_SEARCH ? "POST" : "GET");
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 503 || status == 413) MHD_add_response_header(resp, "Connection", "close");
    const enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    const double seconds = now_s() - ctx->t0;
    metrics_request(srv, ctx->endpoint, status, seconds);
    if (srv->o.log) {
        char line[256];
        snprintf(line, sizeof line, "%s %s %d %.1f ms inputs=%d", ctx->method,
                 endpoint_names[ctx->endpoint], status, seconds * 1e3,
                 ctx->job ? ctx->job->req.n_texts : 0);
        srv->o.log(srv->o.log_ctx, line);
    }
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, dre_server *srv, request_ctx *ctx,
                                   int status, const char *message, const char *type) {
    return reply(conn, srv, ctx, status, server_error_json(message, type), "application/json");
}

/* The key compared in constant time (the lengths are not secret). */
static int key_ok(const dre_server *srv, struct MHD_Connection *conn) {
    const char *key = srv->o.api_key;
    if (!key || !key[0]) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    const size_t n = strlen(key);
    if (strlen(h) != n) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(h[i] ^ key[i]);
    return diff == 0;
}

static char *info_json(dre_server *srv) {
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(srv->searcher));
    char *out = malloc(1024);
    if (!out) return NULL;
    snprintf(out, 1024,
             "{\"model\": \"%s\", \"dim\": %d, \"documents\": %lld, \"device\": \"%s\", "
             "\"bm25\": %s, \"version\": \"%s\"}",
             srv->model_name, srv->dim, (long long)ii->count,
             dre_device_name(dre_searcher_device(srv->searcher)), ii->bm25 ? "true" : "false",
             DRE_VERSION_STRING);
    return out;
}

/* Appends to a growing text buffer. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = t->s ? vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap) : -2;
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        const size_t cap = t->cap ? t->cap * 2 : 4096;
        char *s = realloc(t->s, cap);
        if (!s) return;
        t->s = s;
        t->cap = cap;
    }
}

static char *metrics_text(dre_server *srv) {
    text t = {0};
    metrics *m = &srv->m;
    pthread_mutex_lock(&srv->mu);
    const int32_t queued = srv->queued, in_flight = srv->in_flight;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&m->mu);
    add(&t, "# HELP dre_requests_total HTTP requests by endpoint and status.\n"
            "# TYPE dre_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (int s = 0; s < N_STATUS; s++)
            if (m->requests[e][s])
                add(&t, "dre_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                    endpoint_names[e], status_codes[s], (unsigned long long)m->requests[e][s]);
    add(&t, "# HELP dre_request_duration_seconds Time from a request's arrival to its answer.\n"
            "# TYPE dre_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_COUNT; e++) {
        uint64_t cum = 0;
        for (int b = 0; b <= N_LATENCY; b++) {
            cum += m->latency[e][b];
            if (b < N_LATENCY)
                add(&t, "dre_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                    endpoint_names[e], latency_buckets[b], (unsigned long long)cum);
            else
                add(&t, "dre_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                    endpoint_names[e], (unsigned long long)cum);
        }
        add(&t, "dre_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", endpoint_names[e],
            m->latency_sum[e]);
        add(&t, "dre_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", endpoint_names[e],
            (unsigned long long)cum);
    }
    add(&t, "# HELP dre_batch_texts Texts embedded per encoder batch of requests.\n"
            "# TYPE dre_batch_texts histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b <= N_BATCH; b++) {
        cum += m->batch_texts[b];
        if (b < N_BATCH)
            add(&t, "dre_batch_texts_bucket{le=\"%g\"} %llu\n", batch_buckets[b],
                (unsigned long long)cum);
        else
            add(&t, "dre_batch_texts_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    add(&t, "dre_batch_texts_sum %.0f\ndre_batch_texts_count %llu\n", m->batch_texts_sum,
        (unsigned long long)m->batches);
    add(&t,
        "# HELP dre_tokens_embedded_total Tokens encoded, [CLS] and [SEP] included.\n"
        "# TYPE dre_tokens_embedded_total counter\ndre_tokens_embedded_total %llu\n"
        "# HELP dre_queue_depth Requests waiting for the batcher.\n"
        "# TYPE dre_queue_depth gauge\ndre_queue_depth %d\n"
        "# HELP dre_requests_in_flight Requests taken and not yet answered.\n"
        "# TYPE dre_requests_in_flight gauge\ndre_requests_in_flight %d\n",
        (unsigned long long)m->tokens, queued, in_flight);
    pthread_mutex_unlock(&m->mu);
    return t.s;
}

static int endpoint_of(const char *url) {
    for (int e = 0; e < EP_OTHER; e++)
        if (!strcmp(url, endpoint_names[e])) return e;
    return EP_OTHER;
}

/* Queues a parsed request for the batcher and suspends its connection; 0, or 503. */
static int submit(dre_server *srv, struct MHD_Connection *conn, request_ctx *ctx, job *j) {
    pthread_mutex_lock(&srv->mu);
    if (srv->stopping || srv->queued >= srv->o.max_queue) {
        pthread_mutex_unlock(&srv->mu);
        return 503;
    }
    j->conn = conn;
    ctx->job = j;
    srv->in_flight++;
    MHD_suspend_connection(conn); /* before the batcher can resume it */
    if (srv->tail)
        srv->tail->next = j;
    else
        srv->head = j;
    srv->tail = j;
    srv->queued++;
    srv->queued_tokens += estimate_tokens(&j->req);
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    (void)version;
    dre_server *srv = cls;
    request_ctx *ctx = *con_cls;
    if (!ctx) { /* the headers are in: refuse an oversized body before it comes */
        if (!(ctx = calloc(1, sizeof *ctx))) return MHD_NO;
        ctx->t0 = now_s();
        snprintf(ctx->method, sizeof ctx->method, "%s", method);
        ctx->endpoint = endpoint_of(url);
        *con_cls = ctx;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->o.max_body_bytes) ctx->too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) { /* the body, piece by piece, up to the limit */
        if (!ctx->too_big && ctx->len + *upload_data_size > srv->o.max_body_bytes) ctx->too_big = 1;
        if (!ctx->too_big) {
            if (ctx->len + *upload_data_size > ctx->cap) {
                size_t cap = ctx->cap ? ctx->cap : 4096;
                while (cap < ctx->len + *upload_data_size)
                    cap *= 2;
                char *b = realloc(ctx->body, cap);
                if (!b) return MHD_NO;
                ctx->body = b;
                ctx->cap = cap;
            }
            memcpy(ctx->body + ctx->len, upload_data, *upload_data_size);
            ctx->len += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->job) { /* resumed: the batcher has answered */
        job *j = ctx->job;
        char *body = j->response;
        j->response = NULL;
        const enum MHD_Result rc = reply(conn, srv, ctx, j->status, body, "application/json");
        pthread_mutex_lock(&srv->mu);
        srv->in_flight--;
        pthread_cond_broadcast(&srv->cv);
        pthread_mutex_unlock(&srv->mu);
        return rc;
    }
    const int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    char err[512];
    if (ctx->too_big) {
        snprintf(err, sizeof err, "the body is over the limit of %zu bytes (--max-body-bytes)",
                 srv->o.max_body_bytes);
        return reply_error(conn, srv, ctx, 413, err, "invalid_request_error");
    }
    if (ctx->endpoint == EP_OTHER) {
        snprintf(err, sizeof err,
                 "no endpoint %.200s (POST /v1/embeddings, POST /search, GET "
                 "/health, /info, /metrics)",
                 url);
        return reply_error(conn, srv, ctx, 404, err, "invalid_request_error");
    }
    if ((ctx->endpoint <= EP_SEARCH && !post) || (ctx->endpoint > EP_SEARCH && !get)) {
        snprintf(err, sizeof err, "%.16s %s: use %s", method, url,
                 ctx->endpoint <= EP_SEARCH ? "POST" : "GET");
        return reply_error(conn, srv, ctx, 405, err, "invalid_request_error");
    }
    if (ctx->endpoint == EP_HEALTH)
        return reply(conn, srv, ctx, 200, strdup("{\"status\": \"ok\"}"), "application/json");
    if (!key_ok(srv, conn))
        return reply_error(conn, srv, ctx, 401,
                           "missing or wrong API key: send \"Authorization: Bearer <key>\"",
                           "authentication_error");
    if (ctx->endpoint == EP_INFO)
        return reply(conn, srv, ctx, 200, info_json(srv), "application/json");
    if (ctx->endpoint == EP_METRICS)
        return reply(conn, srv, ctx, 200, metrics_text(srv), "text/plain; version=0.0.4");
    job *j = calloc(1, sizeof *j);
    if (!j) return MHD_NO;
    const int st =
        server_request_parse(ctx->body ? ctx->body : "", ctx->len,
                             ctx->endpoint == EP_EMBEDDINGS ? SERVER_EMBEDDINGS : SERVER_SEARCH,
                             srv->o.max_inputs, srv->dim, &j->req, err, sizeof err);
    const int busy = st ? 0 : submit(srv, conn, ctx, j);
    if (st || busy) {
        server_request_free(&j->req);
        free(j);
        if (busy)
            return reply_error(conn, srv, ctx, 503,
                               "the server is busy (or stopping): try again shortly",
                               "server_busy");
        return reply_error(conn, srv, ctx, st, err, "invalid_request_error");
    }
    return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    request_ctx *ctx = *con_cls;
    if (!ctx) return;
    if (ctx->job) {
        server_request_free(&ctx->job->req);
        free(ctx->job->response);
        free(ctx->job);
    }
    free(ctx->body);
    free(ctx);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- life cycle */

void dre_server_options_init(dre_server_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_batch_tokens = 16384;
    o->max_wait_ms = 2;
    o->max_inputs = 2048;
    o->max_body_bytes = (size_t)8 << 20;
    o->threads = cpu_count() > 2 ? cpu_count() : 2;
    o->max_queue = 1024;
}

int dre_server_port(const dre_server *srv) { return srv->port; }

dre_status dre_server_start(dre_searcher *s, const dre_server_options *opts, dre_server **out) {
    if (!s || !out) return set_error(DRE_ERR_INVALID_ARG, "dre_server_start: NULL argument");
    *out = NULL;
    dre_server *srv = calloc(1, sizeof *srv);
    if (!srv) return set_error(DRE_ERR_NOMEM, "dre_server_start: out of memory");
    if (opts)
        srv->o = *opts;
    else
        dre_server_options_init(&srv->o);
    if (srv->o.max_batch_tokens < 1 || srv->o.max_wait_ms < 0 || srv->o.max_inputs < 1 ||
        srv->o.threads < 1 || srv->o.max_queue < 1 || srv->o.port < 0 || srv->o.port > 65535) {
        free(srv);
        return set_error(DRE_ERR_INVALID_ARG, "dre_server_start: bad options");
    }
    srv->searcher = s;
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(s));
    srv->dim = ii->dim;
    snprintf(srv->model_name, sizeof srv->model_name, "%s",
             srv->o.model_name && srv->o.model_name[0] ? srv->o.model_name : ii->model_name);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_mutex_init(&srv->m.mu, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)srv->o.port);
    const char *host = srv->o.host && srv->o.host[0] ? srv->o.host : "127.0.0.1";
    dre_status st = DRE_OK;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        st = set_error(DRE_ERR_INVALID_ARG, "--host %s: not an IPv4 address", host);
    if (st == DRE_OK && pthread_create(&srv->batcher, NULL, batcher_main, srv) == 0)
        srv->batcher_started = 1;
    else if (st == DRE_OK)
        st = set_error(DRE_ERR_NOMEM, "dre serve: cannot start the batcher thread");
    if (st == DRE_OK) {
        srv->daemon =
            MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
                             (uint16_t)srv->o.port, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR,
                             (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
                             (unsigned)srv->o.threads, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
        if (!srv->daemon)
            st = set_error(DRE_ERR_IO, "dre serve: cannot listen on %s:%d (in use?)", host,
                           srv->o.port);
    }
    if (st == DRE_OK) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = info ? info->port : srv->o.port;
        *out = srv;
        return DRE_OK;
    }
    dre_server_stop(srv, 0);
    return st;
}

void dre_server_stop(dre_server *srv, int32_t timeout_ms) {
    if (!srv) return;
    if (srv->daemon) {
        const MHD_socket listener = MHD_quiesce_daemon(srv->daemon); /* no new connections */
        if (listener != MHD_INVALID_SOCKET) close(listener);
    }
    pthread_mutex_lock(&srv->mu);
    srv->stopping = 1; /* and no new requests on open connections */
    const double until = now_s() + timeout_ms / 1000.0;
    while (srv->in_flight > 0 && now_s() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&srv->cv, &srv->mu, &ts);
    }
    srv->batcher_exit = 1;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    if (srv->batcher_started) pthread_join(srv->batcher, NULL);
    if (srv->daemon) MHD_stop_daemon(srv->daemon); /* the batcher emptied the queue first */
    pthread_mutex_destroy(&srv->m.mu);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
