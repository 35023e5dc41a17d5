/* serve/queue.c — dre serve's request queue and its batching thread (serve/queue.h). */
#define _POSIX_C_SOURCE 200809L
#include "serve/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "serve/tei.h"

/* A text's token count (known for TEI's /embed), guessed before tokenizing (for the batch budget): a wordpiece is
 * about 4 bytes of English, plus [CLS] and [SEP]. */
static int64_t estimate_tokens(const server_request *r) {
    if (r->cu_seqlens) return r->cu_seqlens[r->n_texts]; /* TEI's, tokenized already */
    int64_t t = 0;
    for (int32_t i = 0; i < r->n_texts; i++)
        t += (int64_t)strlen(r->texts[i]) / 4 + 2;
    return t;
}

static void answer(dre_serve_job *j, int status, char *body) {
    j->status = status;
    j->response = body;
}

static void answer_error(dre_serve_job *j, int status, const char *type) {
    answer(j, status, dre_server_error_json(dre_last_error(), type));
}

/* One search request, its queries embedded already. */
static void answer_search(dre_serve_queue *q, dre_serve_job *j, const float *vectors) {
    const server_request *r = &j->req;
    const size_t k = (size_t)r->search.k;
    dre_hit *hits = malloc((size_t)r->n_texts * k * sizeof *hits);
    int32_t *n_hits = malloc((size_t)r->n_texts * sizeof *n_hits);
    const dre_status st =
        hits && n_hits ? dre_search_embedded(q->searcher, (const char *const *)r->texts, vectors,
                                             (size_t)r->n_texts, &r->search, hits, n_hits)
                       : dre_set_error(DRE_ERR_NOMEM, "out of memory for %d queries", r->n_texts);
    char *body = st == DRE_OK
                     ? dre_server_search_json(r, dre_searcher_index(q->searcher), hits, n_hits)
                     : NULL;
    const int bad_request = st == DRE_ERR_UNSUPPORTED || st == DRE_ERR_INVALID_ARG;
    if (body)
        answer(j, 200, body);
    else
        answer_error(j, bad_request ? 400 : 500,
                     bad_request ? "invalid_request_error" : "server_error");
    free(hits);
    free(n_hits);
}

/* TEI's /embed jobs of a batch whose normalize is as given: their ids embedded at once,
 * each job's vectors at vectors + its first text (first[j], in the batch's TEI order). */
static dre_status embed_tei(dre_serve_queue *q, dre_serve_job *jobs, int normalize,
                            float *vectors) {
    size_t n = 0, n_ids = 0;
    for (dre_serve_job *j = jobs; j; j = j->next)
        if (j->req.endpoint == SERVER_TEI_EMBED && j->req.normalize == normalize) {
            n += (size_t)j->req.n_texts;
            n_ids += (size_t)j->req.cu_seqlens[j->req.n_texts];
        }
    if (!n) return DRE_OK;
    int32_t *ids = malloc(n_ids * sizeof *ids), *cu = malloc((n + 1) * sizeof *cu);
    float *out = malloc(n * (size_t)q->dim * sizeof *out);
    dre_status st = ids && cu && out ? DRE_OK
                                     : dre_set_error(DRE_ERR_NOMEM,
                                                     "out of memory for a batch of %zu texts", n);
    size_t t = 0;
    if (st == DRE_OK) cu[0] = 0;
    for (dre_serve_job *j = jobs; st == DRE_OK && j; j = j->next) {
        const server_request *r = &j->req;
        if (r->endpoint != SERVER_TEI_EMBED || r->normalize != normalize) continue;
        memcpy(ids + cu[t], r->ids, (size_t)r->cu_seqlens[r->n_texts] * sizeof *ids);
        for (int32_t i = 0; i < r->n_texts; i++, t++)
            cu[t + 1] = cu[t] + r->cu_seqlens[i + 1] - r->cu_seqlens[i];
    }
    if (st == DRE_OK) st = dre_searcher_embed_ids(q->searcher, ids, cu, n, normalize, out);
    t = 0;
    size_t slot = 0; /* the job's first row among the batch's TEI texts */
    for (dre_serve_job *j = jobs; st == DRE_OK && j; j = j->next) {
        const server_request *r = &j->req;
        if (r->endpoint != SERVER_TEI_EMBED) continue;
        if (r->normalize == normalize) {
            memcpy(vectors + slot * q->dim, out + t * q->dim,
                   (size_t)r->n_texts * q->dim * sizeof *out);
            t += (size_t)r->n_texts;
        }
        slot += (size_t)r->n_texts;
    }
    free(ids);
    free(cu);
    free(out);
    return st;
}

/* One answered job of /v1/embeddings or TEI's /embed: its vectors, or the batch's error. */
static void answer_embeddings(dre_serve_queue *q, dre_serve_job *j, dre_status st,
                              const float *vectors, const int32_t *tokens) {
    const server_request *r = &j->req;
    const int tei = r->endpoint == SERVER_TEI_EMBED;
    if (st != DRE_OK) {
        if (tei)
            answer(j, 424, dre_tei_error_json(dre_last_error(), TEI_BACKEND));
        else
            answer_error(j, 500, "server_error");
        return;
    }
    int64_t used = 0;
    for (int32_t i = 0; !tei && i < r->n_texts; i++)
        used += tokens[i];
    char *body = tei ? dre_tei_embed_json(vectors, r->n_texts, q->dim)
                     : dre_server_embeddings_json(r, vectors, q->dim, q->model_name, used);
    answer(j, body ? 200 : 500,
           body ? body
                : tei ? dre_tei_error_json("out of memory", TEI_BACKEND)
                      : dre_server_error_json("out of memory", "server_error"));
}

/* The jobs of one batch: every text embedded at once (embeddings as sent, queries with the
 * index's query prompt, TEI's tokenized already), then each search answered on its own
 * options. Rows: /v1/embeddings' texts, then the queries, then TEI's. */
static void run_batch(dre_serve_queue *q, dre_serve_job *jobs) {
    size_t n_docs = 0, n_queries = 0, n_tei = 0;
    for (dre_serve_job *j = jobs; j; j = j->next)
        *(j->req.endpoint == SERVER_EMBEDDINGS ? &n_docs
          : j->req.endpoint == SERVER_SEARCH   ? &n_queries
                                               : &n_tei) += (size_t)j->req.n_texts;
    const size_t n = n_docs + n_queries + n_tei, dim = (size_t)q->dim;
    const char **texts = malloc((n ? n : 1) * sizeof *texts);
    float *vectors = malloc((n ? n : 1) * dim * sizeof *vectors);
    int32_t *tokens = malloc((n ? n : 1) * sizeof *tokens);
    dre_status st = texts && vectors && tokens
                        ? DRE_OK
                        : dre_set_error(DRE_ERR_NOMEM, "out of memory for a batch of %zu texts", n);
    size_t d = 0, qi = n_docs, ti = n_docs + n_queries;
    for (dre_serve_job *j = jobs; st == DRE_OK && j; j = j->next)
        for (int32_t i = 0; i < j->req.n_texts; i++) {
            size_t *at = j->req.endpoint == SERVER_EMBEDDINGS ? &d
                         : j->req.endpoint == SERVER_SEARCH   ? &qi
                                                              : &ti;
            if (j->req.endpoint == SERVER_TEI_EMBED)
                tokens[*at] = j->req.cu_seqlens[i + 1] - j->req.cu_seqlens[i];
            texts[(*at)++] = j->req.texts[i];
        }
    if (st == DRE_OK && n_docs)
        st = dre_searcher_embed(q->searcher, texts, n_docs, NULL, vectors, tokens);
    if (st == DRE_OK && n_queries)
        st = dre_searcher_embed(q->searcher, texts + n_docs, n_queries,
                                dre_searcher_query_prompt(q->searcher), vectors + n_docs * dim,
                                tokens + n_docs);
    for (int normalize = 1; st == DRE_OK && n_tei && normalize >= 0; normalize--)
        st = embed_tei(q, jobs, normalize, vectors + (n_docs + n_queries) * dim);
    int64_t batch_tokens = 0;
    for (size_t i = 0; st == DRE_OK && i < n; i++)
        batch_tokens += tokens[i];

    d = 0, qi = n_docs, ti = n_docs + n_queries;
    for (dre_serve_job *j = jobs; j; j = j->next) {
        const server_request *r = &j->req;
        size_t *at = r->endpoint == SERVER_EMBEDDINGS ? &d : r->endpoint == SERVER_SEARCH ? &qi : &ti;
        const size_t first = *at;
        *at += (size_t)r->n_texts;
        if (r->endpoint == SERVER_SEARCH) {
            if (st == DRE_OK)
                answer_search(q, j, vectors + first * dim);
            else
                answer_error(j, 500, "server_error");
            continue;
        }
        answer_embeddings(q, j, st, vectors + first * dim, tokens + first);
    }
    free(texts);
    free(vectors);
    free(tokens);
    dre_serve_metrics_batch(q->metrics, n, batch_tokens);
}

static void *queue_main(void *arg) {
    dre_serve_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->exit)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head) break; /* told to exit, nothing left */
        /* a short wait for more requests, unless the budget is already full */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        const long ns = until.tv_nsec + (long)q->max_wait_ms * 1000000L;
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        while (q->queued_tokens < q->max_batch_tokens && !q->exit &&
               pthread_cond_timedwait(&q->cv, &q->mu, &until) != ETIMEDOUT) {
        }
        /* take jobs up to the budget (always the first) */
        dre_serve_job *first = q->head, *last = first;
        int64_t tokens = estimate_tokens(&first->req);
        int32_t taken = 1;
        while (last->next && tokens + estimate_tokens(&last->next->req) <= q->max_batch_tokens) {
            last = last->next;
            tokens += estimate_tokens(&last->req);
            taken++;
        }
        q->head = last->next;
        if (!q->head) q->tail = NULL;
        last->next = NULL;
        q->queued -= taken;
        q->queued_tokens -= tokens;
        pthread_mutex_unlock(&q->mu);

        run_batch(q, first);

        pthread_mutex_lock(&q->mu);
        for (dre_serve_job *j = first; j;) { /* answered: back to their callers */
            dre_serve_job *next = j->next;
            j->next = NULL;
            q->on_answer(j);
            j = next;
        }
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

dre_status dre_serve_queue_start(dre_serve_queue *q) {
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thread, NULL, queue_main, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        return dre_set_error(DRE_ERR_NOMEM, "dre serve: cannot start the batching thread");
    }
    q->started = 1;
    return DRE_OK;
}

int dre_serve_queue_submit(dre_serve_queue *q, dre_serve_job *j) {
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->queued >= q->max_queue) {
        pthread_mutex_unlock(&q->mu);
        return 503;
    }
    q->on_accept(j); /* before the thread can answer it */
    q->in_flight++;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->queued++;
    q->queued_tokens += estimate_tokens(&j->req);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void dre_serve_queue_release(dre_serve_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->in_flight--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void dre_serve_queue_depth(dre_serve_queue *q, int32_t *queued, int32_t *in_flight) {
    pthread_mutex_lock(&q->mu);
    *queued = q->queued;
    *in_flight = q->in_flight;
    pthread_mutex_unlock(&q->mu);
}

void dre_serve_queue_stop(dre_serve_queue *q, int32_t timeout_ms) {
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    const double until = dre_now_seconds() + timeout_ms / 1000.0;
    while (q->in_flight > 0 && dre_now_seconds() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    q->exit = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->started = 0;
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
}
