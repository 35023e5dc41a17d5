/* serve/connections.c — dre serve's guard on its connections (serve/connections.h).
 * A connection past its deadline is shut down (shutdown(2), both ways) by the sweeper: the
 * HTTP server then reads end-of-file and closes it itself, so its descriptor is never closed
 * under it, and the guard forgets the connection when the server says it closed. */
#define _POSIX_C_SOURCE 200809L
#include "serve/connections.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define SWEEP_MS 100 /* how often deadlines are looked at */

struct dre_conn {
    dre_conn *prev, *next;
    int fd;
    uint8_t client[16]; /* the address, IPv4 as ::ffff:a.b.c.d */
    double deadline;    /* monotonic seconds; 0 while a request is computed */
    int idle;           /* the deadline is the idle timeout's (else the request's) */
    int shut;           /* shut down by the sweeper, not yet closed */
};

struct dre_client_slot {
    uint8_t client[16];
    int32_t open; /* 0: a free slot, or one to reuse */
    int used;     /* holds an address (its count may be 0) */
};

/* ---------------------------------------------------------------- per-client counts */

static void client_key(const struct sockaddr *addr, uint8_t key[16]) {
    memset(key, 0, 16);
    if (addr && addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    } else if (addr && addr->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    }
}

static size_t slot_of(const uint8_t key[16], size_t cap) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 0x100000001b3ULL;
    return (size_t)(h * 0x9E3779B97F4A7C15ULL >> 32) & (cap - 1);
}

/* The slot of key, or the free slot where it would go. Slots whose count fell to 0 stay in
 * place, so a probe never stops early. */
static dre_client_slot *probe(dre_client_slot *table, size_t cap, const uint8_t key[16]) {
    for (size_t i = slot_of(key, cap);; i = (i + 1) & (cap - 1))
        if (!table[i].used || !memcmp(table[i].client, key, 16)) return &table[i];
}

/* The slot of key; when absent, NULL, or with add a new one (NULL only when out of memory).
 * When more than half the table is used, the slots of addresses with no connection left are
 * dropped first. */
static dre_client_slot *client_slot(dre_conn_guard *g, const uint8_t key[16], int add) {
    dre_client_slot *s = probe(g->clients, g->clients_cap, key);
    if (s->used || !add) return s->used ? s : NULL;
    if (2 * (g->clients_used + 1) > g->clients_cap) {
        dre_client_slot *fresh = calloc(g->clients_cap, sizeof *fresh);
        if (!fresh) return NULL;
        g->clients_used = 0;
        for (size_t j = 0; j < g->clients_cap; j++)
            if (g->clients[j].used && g->clients[j].open > 0) {
                *probe(fresh, g->clients_cap, g->clients[j].client) = g->clients[j];
                g->clients_used++;
            }
        free(g->clients);
        g->clients = fresh;
        s = probe(g->clients, g->clients_cap, key);
    }
    memcpy(s->client, key, 16);
    s->used = 1;
    s->open = 0;
    g->clients_used++;
    return s;
}

/* ---------------------------------------------------------------- the sweeper */

static void *sweeper_main(void *arg) {
    dre_conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        const double now = dre_now_seconds();
        for (dre_conn *c = g->head; c; c = c->next) {
            if (c->shut || c->deadline == 0 || now < c->deadline) continue;
            shutdown(c->fd, SHUT_RDWR);
            c->shut = 1;
            if (c->idle)
                g->stats.timed_out_idle++;
            else
                g->stats.timed_out_request++;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += SWEEP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

dre_status dre_conn_guard_start(dre_conn_guard *g, const dre_conn_limits *limits) {
    memset(g, 0, sizeof *g);
    g->limits = *limits;
    /* a power of two above twice the most clients there can be */
    g->clients_cap = 64;
    while (g->clients_cap < 2 * (size_t)limits->max_connections + 2)
        g->clients_cap *= 2;
    if (!(g->clients = calloc(g->clients_cap, sizeof *g->clients)))
        return dre_set_error(DRE_ERR_NOMEM, "dre serve: out of memory for %d connections",
                             limits->max_connections);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->sweeper, NULL, sweeper_main, g) != 0) {
        dre_conn_guard_stop(g);
        return dre_set_error(DRE_ERR_NOMEM, "dre serve: cannot start the connection sweeper");
    }
    g->started = 1;
    return DRE_OK;
}

void dre_conn_guard_stop(dre_conn_guard *g) {
    if (!g->clients) return;
    if (g->started) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->sweeper, NULL);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->clients);
    g->clients = NULL;
}

/* ---------------------------------------------------------------- connections */

int dre_conn_guard_admit(dre_conn_guard *g, const struct sockaddr *addr, socklen_t len) {
    (void)len;
    uint8_t key[16];
    client_key(addr, key);
    pthread_mutex_lock(&g->mu);
    int ok = 1;
    if (g->stats.open >= g->limits.max_connections) {
        g->stats.refused_total_cap++;
        ok = 0;
    } else if (g->limits.max_per_client > 0) {
        const dre_client_slot *s = client_slot(g, key, 0);
        if (s && s->open >= g->limits.max_per_client) {
            g->stats.refused_client_cap++;
            ok = 0;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

dre_conn *dre_conn_guard_opened(dre_conn_guard *g, int fd, const struct sockaddr *addr) {
    dre_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    client_key(addr, c->client);
    c->deadline = dre_now_seconds() + g->limits.request_timeout_ms / 1000.0;
    pthread_mutex_lock(&g->mu);
    dre_client_slot *s = client_slot(g, c->client, 1);
    if (s) s->open++;
    g->stats.open++;
    g->stats.accepted++;
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void dre_conn_guard_closed(dre_conn_guard *g, dre_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    dre_client_slot *s = client_slot(g, c->client, 0);
    if (s && s->open > 0) s->open--;
    g->stats.open--;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void dre_conn_guard_received(dre_conn_guard *g, dre_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->deadline = 0;
    pthread_mutex_unlock(&g->mu);
}

void dre_conn_guard_answered(dre_conn_guard *g, dre_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->deadline = dre_now_seconds() + g->limits.idle_timeout_ms / 1000.0;
    c->idle = 1;
    pthread_mutex_unlock(&g->mu);
}

void dre_conn_guard_stats(dre_conn_guard *g, dre_conn_stats *out) {
    pthread_mutex_lock(&g->mu);
    *out = g->stats;
    pthread_mutex_unlock(&g->mu);
}
