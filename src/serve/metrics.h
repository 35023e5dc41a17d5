/* serve/metrics.h — dre serve's counters, and their Prometheus text for GET /metrics:
 * requests by route and status, latency histograms, batch sizes, tokens embedded, the
 * queue's depth, connections open, refused and timed out. Every call may come from any
 * thread. */
#ifndef DRE_SERVE_METRICS_H
#define DRE_SERVE_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "serve/connections.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The routes the service answers, and "other" for every other path. */
typedef enum dre_route {
    DRE_ROUTE_EMBEDDINGS,
    DRE_ROUTE_SEARCH,
    DRE_ROUTE_EMBED,    /* TEI's (serve/tei.c) */
    DRE_ROUTE_ROOT,     /* TEI's POST /, as /embed */
    DRE_ROUTE_TOKENIZE, /* TEI's */
    DRE_ROUTE_HEALTH,
    DRE_ROUTE_INFO,
    DRE_ROUTE_METRICS,
    DRE_ROUTE_OTHER,
    DRE_ROUTE_COUNT
} dre_route;

/* Routes answered to POST (the others to GET). */
#define DRE_ROUTE_IS_POST(route) ((route) <= DRE_ROUTE_TOKENIZE)

/* The path of a route ("/v1/embeddings" ...), and the route of a path. */
const char *dre_route_path(dre_route route);
dre_route dre_route_of(const char *path);

#define DRE_METRICS_STATUSES 11  /* 200 400 401 404 405 413 422 424 429 500 503 */
#define DRE_METRICS_LATENCIES 12 /* buckets from 1 ms to 10 s */
#define DRE_METRICS_BATCHES 12   /* buckets from 1 to 4096 texts */

typedef struct dre_serve_metrics {
    pthread_mutex_t mu;
    uint64_t requests[DRE_ROUTE_COUNT][DRE_METRICS_STATUSES];
    uint64_t latency[DRE_ROUTE_COUNT][DRE_METRICS_LATENCIES + 1]; /* per bucket, then +Inf */
    double latency_sum[DRE_ROUTE_COUNT];
    uint64_t batch_texts[DRE_METRICS_BATCHES + 1];
    double batch_texts_sum;
    uint64_t batches, tokens;
} dre_serve_metrics;

void dre_serve_metrics_init(dre_serve_metrics *m);
void dre_serve_metrics_free(dre_serve_metrics *m);
/* One answered request: its route, HTTP status and seconds from arrival to answer. */
void dre_serve_metrics_request(dre_serve_metrics *m, dre_route route, int status, double seconds);
/* One encoder batch of requests: its texts and their tokens. */
void dre_serve_metrics_batch(dre_serve_metrics *m, size_t texts, int64_t tokens);
/* The Prometheus text exposition, with the queue's gauges and the connections' counts; NULL
 * when out of memory. Caller frees. */
char *dre_serve_metrics_text(dre_serve_metrics *m, int32_t queued, int32_t in_flight,
                             const dre_conn_stats *conns);

#ifdef __cplusplus
}
#endif
#endif
