/* serve/metrics.c — dre serve's counters and their Prometheus text (serve/metrics.h). */
#define _POSIX_C_SOURCE 200809L
#include "serve/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_paths[DRE_ROUTE_COUNT] = {
    "/v1/embeddings", "/search", "/embed", "/", "/tokenize", "/health", "/info", "/metrics", "other"};
static const int status_codes[DRE_METRICS_STATUSES] = {200, 400, 401, 404, 405, 413,
                                                       422, 424, 429, 500, 503};
static const double latency_buckets[DRE_METRICS_LATENCIES] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0};
static const double batch_buckets[DRE_METRICS_BATCHES] = {1,  2,   4,   8,   16,   32,
                                                          64, 128, 256, 512, 1024, 4096};

const char *dre_route_path(dre_route route) {
    return route >= 0 && route < DRE_ROUTE_COUNT ? route_paths[route] : "?";
}

dre_route dre_route_of(const char *path) {
    for (int r = 0; r < DRE_ROUTE_OTHER; r++)
        if (!strcmp(path, route_paths[r])) return (dre_route)r;
    return DRE_ROUTE_OTHER;
}

void dre_serve_metrics_init(dre_serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void dre_serve_metrics_free(dre_serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

/* The first bucket whose bound holds v, or n (+Inf). */
static int bucket_of(const double *bounds, int n, double v) {
    int b = 0;
    while (b < n && v > bounds[b])
        b++;
    return b;
}

void dre_serve_metrics_request(dre_serve_metrics *m, dre_route route, int status, double seconds) {
    int si = 0;
    while (si < DRE_METRICS_STATUSES - 1 && status_codes[si] != status)
        si++;
    const int b = bucket_of(latency_buckets, DRE_METRICS_LATENCIES, seconds);
    pthread_mutex_lock(&m->mu);
    m->requests[route][si]++;
    m->latency[route][b]++;
    m->latency_sum[route] += seconds;
    pthread_mutex_unlock(&m->mu);
}

void dre_serve_metrics_batch(dre_serve_metrics *m, size_t texts, int64_t tokens) {
    const int b = bucket_of(batch_buckets, DRE_METRICS_BATCHES, (double)texts);
    pthread_mutex_lock(&m->mu);
    m->batch_texts[b]++;
    m->batch_texts_sum += (double)texts;
    m->batches++;
    m->tokens += (uint64_t)tokens;
    pthread_mutex_unlock(&m->mu);
}

/* Appends to a growing text buffer. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
    while (!t->failed) {
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
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* A histogram's cumulative buckets, sum (a whole number, or to the microsecond) and count;
 * labels "" or `name="value",`. */
static void add_histogram(text *t, const char *name, const char *labels, const uint64_t *counts,
                          const double *bounds, int n, double sum, int whole) {
    uint64_t cum = 0;
    for (int b = 0; b <= n; b++) {
        cum += counts[b];
        if (b < n)
            add(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[b],
                (unsigned long long)cum);
        else
            add(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    }
    char plain[128] = "";
    if (labels[0]) snprintf(plain, sizeof plain, "{%.*s}", (int)strlen(labels) - 1, labels);
    add(t, "%s_sum%s %.*f\n%s_count%s %llu\n", name, plain, whole ? 0 : 6, sum, name, plain,
        (unsigned long long)cum);
}

char *dre_serve_metrics_text(dre_serve_metrics *m, int32_t queued, int32_t in_flight,
                             const dre_conn_stats *conns) {
    text t = {0};
    pthread_mutex_lock(&m->mu);
    add(&t, "# HELP dre_requests_total HTTP requests by endpoint and status.\n"
            "# TYPE dre_requests_total counter\n");
    for (int r = 0; r < DRE_ROUTE_COUNT; r++)
        for (int s = 0; s < DRE_METRICS_STATUSES; s++)
            if (m->requests[r][s])
                add(&t, "dre_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", route_paths[r],
                    status_codes[s], (unsigned long long)m->requests[r][s]);
    add(&t, "# HELP dre_request_duration_seconds Time from a request's arrival to its answer.\n"
            "# TYPE dre_request_duration_seconds histogram\n");
    for (int r = 0; r < DRE_ROUTE_COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "endpoint=\"%s\",", route_paths[r]);
        add_histogram(&t, "dre_request_duration_seconds", labels, m->latency[r], latency_buckets,
                      DRE_METRICS_LATENCIES, m->latency_sum[r], 0);
    }
    add(&t, "# HELP dre_batch_texts Texts embedded per encoder batch of requests.\n"
            "# TYPE dre_batch_texts histogram\n");
    add_histogram(&t, "dre_batch_texts", "", m->batch_texts, batch_buckets, DRE_METRICS_BATCHES,
                  m->batch_texts_sum, 1);
    add(&t,
        "# HELP dre_tokens_embedded_total Tokens encoded, [CLS] and [SEP] included.\n"
        "# TYPE dre_tokens_embedded_total counter\ndre_tokens_embedded_total %llu\n"
        "# HELP dre_queue_depth Requests waiting for the batcher.\n"
        "# TYPE dre_queue_depth gauge\ndre_queue_depth %d\n"
        "# HELP dre_requests_in_flight Requests taken and not yet answered.\n"
        "# TYPE dre_requests_in_flight gauge\ndre_requests_in_flight %d\n",
        (unsigned long long)m->tokens, queued, in_flight);
    pthread_mutex_unlock(&m->mu);
    add(&t,
        "# HELP dre_connections_open Connections open now.\n"
        "# TYPE dre_connections_open gauge\ndre_connections_open %d\n"
        "# HELP dre_connections_accepted_total Connections taken.\n"
        "# TYPE dre_connections_accepted_total counter\ndre_connections_accepted_total %llu\n"
        "# HELP dre_connections_refused_total Connections closed as they were accepted, by the "
        "cap reached.\n"
        "# TYPE dre_connections_refused_total counter\n"
        "dre_connections_refused_total{reason=\"max_connections\"} %llu\n"
        "dre_connections_refused_total{reason=\"max_connections_per_client\"} %llu\n"
        "# HELP dre_connections_timed_out_total Connections shut down past a deadline: a "
        "request not in whole in time, or a kept-alive connection idle.\n"
        "# TYPE dre_connections_timed_out_total counter\n"
        "dre_connections_timed_out_total{reason=\"request_timeout\"} %llu\n"
        "dre_connections_timed_out_total{reason=\"idle_timeout\"} %llu\n",
        conns->open, (unsigned long long)conns->accepted,
        (unsigned long long)conns->refused_total_cap, (unsigned long long)conns->refused_client_cap,
        (unsigned long long)conns->timed_out_request, (unsigned long long)conns->timed_out_idle);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
