/* serve/queue.h — dre serve's request queue and the one thread that serves it: parsed
 * requests wait in arrival order; the thread takes as many as fit one encoder batch (a token
 * budget, after a short wait for more), embeds every text of them at once through the
 * searcher, answers each (embeddings, or a search on its own options) and hands it back.
 * Knows nothing of HTTP: the caller's callbacks park and wake a request's connection. */
#ifndef DRE_SERVE_QUEUE_H
#define DRE_SERVE_QUEUE_H

#include <pthread.h>
#include <stdint.h>

#include "dre.h"
#include "serve/metrics.h"
#include "serve/request.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One request through the queue: in, the parsed request and the caller's handle; out, the
 * HTTP status and JSON body of its answer (the body then the caller's to free). */
typedef struct dre_serve_job {
    server_request req;
    void *conn;
    int status;
    char *response;
    struct dre_serve_job *next;
} dre_serve_job;

typedef struct dre_serve_queue {
    /* set before dre_serve_queue_start */
    dre_searcher *searcher;
    const char *model_name; /* answered as "model" by /v1/embeddings */
    int32_t dim;
    int32_t max_batch_tokens, max_wait_ms, max_queue;
    dre_serve_metrics *metrics;
    /* called with the queue's lock held: a job is accepted (before the thread can take
     * it), and a job is answered */
    void (*on_accept)(dre_serve_job *job);
    void (*on_answer)(dre_serve_job *job);
    /* the queue's own */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dre_serve_job *head, *tail;
    int32_t queued, in_flight; /* waiting; accepted and not yet handed back */
    int64_t queued_tokens;     /* estimated, of the waiting requests */
    int stopping;              /* no more jobs accepted */
    int exit;                  /* the thread ends once the queue is empty */
} dre_serve_queue;

/* Starts the thread; the fields above it must be set. */
dre_status dre_serve_queue_start(dre_serve_queue *q);
/* Queues a job: 0, or 503 when the queue is full or stopping (then nothing was done). */
int dre_serve_queue_submit(dre_serve_queue *q, dre_serve_job *job);
/* The caller has sent an answered job's answer: it is no longer in flight. */
void dre_serve_queue_release(dre_serve_queue *q);
/* The gauges /metrics shows. */
void dre_serve_queue_depth(dre_serve_queue *q, int32_t *queued, int32_t *in_flight);
/* Accepts no more jobs and waits up to timeout_ms for those in flight to be released, then
 * ends the thread once it has answered what is queued, and frees the queue's own state. */
void dre_serve_queue_stop(dre_serve_queue *q, int32_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
