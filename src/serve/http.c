/* serve/http.c — dre serve's HTTP side through libmicrohttpd (its thread pool, a
 * connection suspended while its request waits in the queue): routing, the API key, the
 * body limit, GET /health, /info and /metrics answered at once, POST bodies parsed
 * (serve/request.c) and queued (serve/queue.c); and the service's open and close. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/common.h"
#include "serve/connections.h"
#include "serve/metrics.h"
#include "serve/queue.h"
#include "serve/request.h"
#include "serve/tei.h"

struct dre_server {
    dre_searcher *searcher;
    dre_server_options o;
    char model_name[128];
    int32_t dim;
    struct MHD_Daemon *daemon;
    int port;
    dre_serve_metrics metrics;
    dre_serve_queue queue;
    dre_conn_guard guard;
    atomic_int stopping; /* set by close: new connections are refused at accept */
};

/* One HTTP request's state across libmicrohttpd's calls. */
typedef struct request_ctx {
    double t0;
    char method[8];
    dre_route route;
    char *body;
    size_t len, cap;
    int too_big;
    dre_serve_job *job; /* queued */
} request_ctx;

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
        MHD_add_response_header(resp, "Allow", DRE_ROUTE_IS_POST(ctx->route) ? "POST" : "GET");
    if (status == 503 || status == 429) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 503 || status == 429 || (status == 413 && ctx->too_big))
        MHD_add_response_header(resp, "Connection", "close");
    const enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    const double seconds = dre_now_seconds() - ctx->t0;
    dre_serve_metrics_request(&srv->metrics, ctx->route, status, seconds);
    if (srv->o.log) {
        char line[256];
        snprintf(line, sizeof line, "%s %s %d %.1f ms inputs=%d", ctx->method,
                 dre_route_path(ctx->route), status, seconds * 1e3,
                 ctx->job ? ctx->job->req.n_texts : 0);
        srv->o.log(srv->o.log_ctx, line);
    }
    return rc;
}

static int tei_route(dre_route route) {
    return route == DRE_ROUTE_EMBED || route == DRE_ROUTE_ROOT || route == DRE_ROUTE_TOKENIZE;
}

/* An error in the route's API's shape: TEI's {"error", "error_type"} on its routes (tei, its
 * type there), OpenAI's {"error": {"message", "type"}} elsewhere. */
static enum MHD_Result reply_error(struct MHD_Connection *conn, dre_server *srv, request_ctx *ctx,
                                   int status, const char *message, const char *type) {
    if (tei_route(ctx->route)) {
        const tei_error e = status == 503 ? TEI_OVERLOADED : TEI_VALIDATION;
        char *body = status == 401 ? dre_tei_error_json_typed(message, "Unauthorized")
                                   : dre_tei_error_json(message, e);
        return reply(conn, srv, ctx, status == 503 ? dre_tei_status(e) : status, body,
                     "application/json");
    }
    return reply(conn, srv, ctx, status, dre_server_error_json(message, type), "application/json");
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

/* TEI's name for what the model runs in: the GPU encoder's fp16 products, or the CPU's
 * --precision */
static const char *model_dtype(const dre_searcher *s) {
    if (dre_searcher_device(s) == DRE_DEVICE_GPU) return "float16";
    switch (dre_searcher_precision(s)) {
    case DRE_PRECISION_BF16: return "bfloat16";
    case DRE_PRECISION_INT8: return "int8";
    default: return "float32";
    }
}

/* dre's own fields, then TEI's (its /info), for clients of either API. */
static char *info_json(dre_server *srv) {
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(srv->searcher));
    const dre_device device = dre_searcher_device(srv->searcher);
    const dre_server_options *o = &srv->o;
    char *out = malloc(2048);
    if (!out) return NULL;
    snprintf(out, 2048,
             "{\"model\": \"%s\", \"dim\": %d, \"documents\": %lld, \"device\": \"%s\", "
             "\"bm25\": %s, \"version\": \"%s\", \"model_id\": \"%s\", \"model_sha\": null, "
             "\"model_dtype\": \"%s\", \"model_type\": {\"embedding\": {\"pooling\": \"%s\"}}, "
             "\"max_concurrent_requests\": %d, \"max_input_length\": %d, "
             "\"max_batch_tokens\": %d, \"max_batch_requests\": null, "
             "\"max_client_batch_size\": %d, \"auto_truncate\": false, "
             "\"tokenization_workers\": %d}",
             srv->model_name, srv->dim, (long long)ii->count, dre_device_name(device),
             ii->bm25 ? "true" : "false", DRE_VERSION_STRING, srv->model_name,
             model_dtype(srv->searcher),
             ii->pooling == DRE_POOL_CLS ? "cls" : "mean", o->max_queue,
             dre_searcher_max_length(srv->searcher), o->max_batch_tokens, o->max_inputs,
             o->threads);
    return out;
}

static char *metrics_text(dre_server *srv) {
    int32_t queued, in_flight;
    dre_serve_queue_depth(&srv->queue, &queued, &in_flight);
    dre_conn_stats conns;
    dre_conn_guard_stats(&srv->guard, &conns);
    return dre_serve_metrics_text(&srv->metrics, queued, in_flight, &conns);
}

/* The guard's record of the connection a request came on (NULL if it has none). */
static dre_conn *conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? (dre_conn *)info->socket_context : NULL;
}

/* libmicrohttpd's hooks for the guard: at accept, and as connections open and close. */
static enum MHD_Result admit(void *cls, const struct sockaddr *addr, socklen_t len) {
    dre_server *srv = cls;
    if (atomic_load(&srv->stopping)) return MHD_NO;
    return dre_conn_guard_admit(&srv->guard, addr, len) ? MHD_YES : MHD_NO;
}

static void connection_event(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode code) {
    dre_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        dre_conn_guard_closed(&srv->guard, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *socket_context =
        fd ? dre_conn_guard_opened(&srv->guard, fd->connect_fd, addr ? addr->client_addr : NULL)
           : NULL;
}

/* The queue's callbacks: a connection waits while its job is queued. */
static void park(dre_serve_job *j) { MHD_suspend_connection(j->conn); }
static void wake(dre_serve_job *j) { MHD_resume_connection(j->conn); }

/* Appends a piece of the body, up to the limit; MHD_NO when out of memory. */
static enum MHD_Result take_body(dre_server *srv, request_ctx *ctx, const char *data, size_t n) {
    if (!ctx->too_big && ctx->len + n > srv->o.max_body_bytes) ctx->too_big = 1;
    if (ctx->too_big) return MHD_YES;
    if (ctx->len + n > ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap : 4096;
        while (cap < ctx->len + n)
            cap *= 2;
        char *b = realloc(ctx->body, cap);
        if (!b) return MHD_NO;
        ctx->body = b;
        ctx->cap = cap;
    }
    memcpy(ctx->body + ctx->len, data, n);
    ctx->len += n;
    return MHD_YES;
}

/* A TEI body parsed (and its texts tokenized) into j->req: 0, or the status to answer with
 * the error's body in *reply. */
static int parse_tei(dre_server *srv, request_ctx *ctx, dre_serve_job *j, char **reply_body) {
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(srv->searcher));
    const tei_model m = {dre_searcher_tokenizer(srv->searcher),
                         dre_searcher_max_length(srv->searcher), srv->o.max_inputs,
                         ii->query_prompt, ii->doc_prompt};
    char err[512];
    int status = 0;
    const tei_error e = dre_tei_request_parse(
        ctx->body ? ctx->body : "", ctx->len,
        ctx->route == DRE_ROUTE_TOKENIZE ? SERVER_TEI_TOKENIZE : SERVER_TEI_EMBED, &m, &j->req,
        &status, err, sizeof err);
    if (e) *reply_body = dre_tei_error_json(err, e);
    return e ? status : 0;
}

/* TEI's /tokenize, answered at once (no encoder needed). */
static enum MHD_Result tokenize_now(struct MHD_Connection *conn, dre_server *srv,
                                    request_ctx *ctx) {
    dre_serve_job j = {0};
    char *body = NULL;
    const int st = parse_tei(srv, ctx, &j, &body);
    if (!st) body = dre_tei_tokenize_json(&j.req, dre_searcher_tokenizer(srv->searcher));
    dre_server_request_free(&j.req);
    return reply(conn, srv, ctx, st ? st : 200,
                 body ? body : dre_tei_error_json("out of memory", TEI_BACKEND),
                 "application/json");
}

/* A POST to /v1/embeddings, /search or TEI's /embed, its body in: parsed and queued, or
 * answered now. */
static enum MHD_Result queue_request(struct MHD_Connection *conn, dre_server *srv,
                                     request_ctx *ctx) {
    if (ctx->route == DRE_ROUTE_TOKENIZE) return tokenize_now(conn, srv, ctx);
    char err[512];
    char *tei_reply = NULL;
    dre_serve_job *j = calloc(1, sizeof *j);
    if (!j) return MHD_NO;
    const int st =
        tei_route(ctx->route)
            ? parse_tei(srv, ctx, j, &tei_reply)
            : dre_server_request_parse(ctx->body ? ctx->body : "", ctx->len,
                                       ctx->route == DRE_ROUTE_EMBEDDINGS ? SERVER_EMBEDDINGS
                                                                          : SERVER_SEARCH,
                                       srv->o.max_inputs, srv->dim, &j->req, err, sizeof err);
    if (!st) {
        j->conn = conn;
        ctx->job = j;
    }
    const int busy = st ? 0 : dre_serve_queue_submit(&srv->queue, j);
    if (!st && !busy) return MHD_YES;
    ctx->job = NULL;
    dre_server_request_free(&j->req);
    free(j);
    if (busy)
        return reply_error(conn, srv, ctx, 503,
                           "the server is busy (or stopping): try again shortly", "server_busy");
    if (tei_route(ctx->route))
        return reply(conn, srv, ctx, st,
                     tei_reply ? tei_reply : dre_tei_error_json("out of memory", TEI_BACKEND),
                     "application/json");
    return reply_error(conn, srv, ctx, st, err, "invalid_request_error");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    (void)version;
    dre_server *srv = cls;
    request_ctx *ctx = *con_cls;
    if (!ctx) { /* the headers are in: refuse an oversized body before it comes */
        if (!(ctx = calloc(1, sizeof *ctx))) return MHD_NO;
        ctx->t0 = dre_now_seconds();
        snprintf(ctx->method, sizeof ctx->method, "%s", method);
        ctx->route = dre_route_of(url);
        *con_cls = ctx;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->o.max_body_bytes) ctx->too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) { /* the body, piece by piece */
        const enum MHD_Result rc = take_body(srv, ctx, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc;
    }
    if (!ctx->job) dre_conn_guard_received(&srv->guard, conn_of(conn)); /* the request is in */
    if (ctx->job) { /* resumed: the queue has answered */
        dre_serve_job *j = ctx->job;
        char *body = j->response;
        j->response = NULL;
        const enum MHD_Result rc = reply(conn, srv, ctx, j->status, body, "application/json");
        dre_serve_queue_release(&srv->queue);
        return rc;
    }
    const int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    char err[512];
    if (ctx->too_big) {
        snprintf(err, sizeof err, "the body is over the limit of %zu bytes (--max-body-bytes)",
                 srv->o.max_body_bytes);
        return reply_error(conn, srv, ctx, 413, err, "invalid_request_error");
    }
    if (ctx->route == DRE_ROUTE_OTHER) {
        snprintf(err, sizeof err,
                 "no endpoint %.200s (POST /v1/embeddings, /search, /embed, /, /tokenize; GET "
                 "/health, /info, /metrics)",
                 url);
        return reply_error(conn, srv, ctx, 404, err, "invalid_request_error");
    }
    const int wants_post = DRE_ROUTE_IS_POST(ctx->route);
    if ((wants_post && !post) || (!wants_post && !get)) {
        snprintf(err, sizeof err, "%.16s %s: use %s", method, url, wants_post ? "POST" : "GET");
        return reply_error(conn, srv, ctx, 405, err, "invalid_request_error");
    }
    if (ctx->route == DRE_ROUTE_HEALTH)
        return reply(conn, srv, ctx, 200, strdup("{\"status\": \"ok\"}"), "application/json");
    if (!key_ok(srv, conn))
        return reply_error(conn, srv, ctx, 401,
                           "missing or wrong API key: send \"Authorization: Bearer <key>\"",
                           "authentication_error");
    if (ctx->route == DRE_ROUTE_INFO)
        return reply(conn, srv, ctx, 200, info_json(srv), "application/json");
    if (ctx->route == DRE_ROUTE_METRICS)
        return reply(conn, srv, ctx, 200, metrics_text(srv), "text/plain; version=0.0.4");
    return queue_request(conn, srv, ctx);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)toe;
    dre_server *srv = cls;
    dre_conn_guard_answered(&srv->guard, conn_of(conn)); /* idle until the next request */
    request_ctx *ctx = *con_cls;
    if (!ctx) return;
    if (ctx->job) {
        dre_server_request_free(&ctx->job->req);
        free(ctx->job->response);
        free(ctx->job);
    }
    free(ctx->body);
    free(ctx);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- open and close */

/* The default cap on open connections: what the file-descriptor limit leaves after 256 for
 * the index, the model and the rest of the process, at most 65536. */
static int32_t connections_from_fd_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return 65536;
    const long long n = (long long)r.rlim_cur - 256;
    return n < 16 ? 16 : n > 65536 ? 65536 : (int32_t)n;
}

void dre_server_options_init(dre_server_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_batch_tokens = 16384;
    o->max_wait_ms = 2;
    o->max_inputs = 2048;
    o->max_body_bytes = (size_t)8 << 20;
    o->threads = dre_cpu_count() > 2 ? dre_cpu_count() : 2;
    o->max_queue = 1024;
    o->max_connections = connections_from_fd_limit();
    o->max_connections_per_client = 256;
    o->request_timeout_ms = 10000;
    o->idle_timeout_ms = 15000;
}

int dre_server_port(const dre_server *srv) { return srv->port; }

/* Listens on host:port with the thread pool; the queue is running. */
static dre_status listen_on(dre_server *srv, const char *host) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)srv->o.port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return dre_set_error(DRE_ERR_INVALID_ARG, "--host %s: not an IPv4 address", host);
    /* libmicrohttpd stops reading its listen socket at its own connection limit, leaving new
     * clients waiting: its limit sits above the guard's, which refuses at accept instead.
     * Its inactivity timeout only backs up the guard's deadlines. */
    const unsigned threads = (unsigned)srv->o.threads;
    const unsigned limit = ((unsigned)srv->o.max_connections + 64) * threads;
    const unsigned backstop =
        (unsigned)((srv->o.request_timeout_ms + srv->o.idle_timeout_ms) / 1000 + 2);
    srv->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
        (uint16_t)srv->o.port, admit, srv, handle, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        limit, MHD_OPTION_NOTIFY_CONNECTION, connection_event, srv, MHD_OPTION_NOTIFY_COMPLETED,
        completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, backstop, MHD_OPTION_END);
    if (!srv->daemon)
        return dre_set_error(DRE_ERR_IO, "dre serve: cannot listen on %s:%d (in use?)", host,
                             srv->o.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : srv->o.port;
    return DRE_OK;
}

dre_status dre_server_open(dre_searcher *s, const dre_server_options *opts, dre_server **out) {
    if (!s || !out) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_server_open: NULL argument");
    *out = NULL;
    dre_server *srv = calloc(1, sizeof *srv);
    if (!srv) return dre_set_error(DRE_ERR_NOMEM, "dre_server_open: out of memory");
    if (opts)
        srv->o = *opts;
    else
        dre_server_options_init(&srv->o);
    dre_server_options *o = &srv->o;
    if (o->max_connections == 0) o->max_connections = connections_from_fd_limit();
    if (o->max_batch_tokens < 1 || o->max_wait_ms < 0 || o->max_inputs < 1 || o->threads < 1 ||
        o->max_queue < 1 || o->port < 0 || o->port > 65535 || o->max_connections < 1 ||
        o->max_connections > (1 << 20) || o->max_connections_per_client < 0 ||
        o->request_timeout_ms < 1 || o->idle_timeout_ms < 1) {
        free(srv);
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_server_open: bad options");
    }
    srv->searcher = s;
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(s));
    srv->dim = ii->dim;
    snprintf(srv->model_name, sizeof srv->model_name, "%s",
             srv->o.model_name && srv->o.model_name[0] ? srv->o.model_name : ii->model_name);
    dre_serve_metrics_init(&srv->metrics);
    dre_serve_queue *q = &srv->queue;
    q->searcher = s;
    q->model_name = srv->model_name;
    q->dim = srv->dim;
    q->max_batch_tokens = srv->o.max_batch_tokens;
    q->max_wait_ms = srv->o.max_wait_ms;
    q->max_queue = srv->o.max_queue;
    q->metrics = &srv->metrics;
    q->on_accept = park;
    q->on_answer = wake;
    const dre_conn_limits limits = {o->max_connections, o->max_connections_per_client,
                                    o->request_timeout_ms, o->idle_timeout_ms};
    dre_status st = dre_conn_guard_start(&srv->guard, &limits);
    if (st == DRE_OK) st = dre_serve_queue_start(q);
    if (st == DRE_OK)
        st = listen_on(srv, srv->o.host && srv->o.host[0] ? srv->o.host : "127.0.0.1");
    if (st == DRE_OK) {
        *out = srv;
        return DRE_OK;
    }
    dre_server_close(srv, 0);
    return st;
}

void dre_server_close(dre_server *srv, int32_t timeout_ms) {
    if (!srv) return;
    /* No new connections: refused at accept until the daemon stops. Not MHD_quiesce_daemon:
     * in libmicrohttpd 0.9.75 (Debian's) it races a pool thread removing the listen socket
     * from its own epoll set and can abort the process ("Failed to remove listen FD from
     * epoll set"), which CI once hit. */
    atomic_store(&srv->stopping, 1);
    /* no new requests on open connections; those in flight answered, the queue emptied */
    dre_serve_queue_stop(&srv->queue, timeout_ms);
    if (srv->daemon) MHD_stop_daemon(srv->daemon); /* every connection closed */
    dre_conn_guard_stop(&srv->guard);
    dre_serve_metrics_free(&srv->metrics);
    free(srv);
}
