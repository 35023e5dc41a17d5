/* serve/connections.h — dre serve's guard on its connections, so that one client cannot take
 * the service from the others: caps on connections per client address and in all (past
 * either a new connection is closed at once, never left waiting), a deadline for a request
 * to arrive whole (headers and body) and an idle timeout for kept-alive connections. A
 * thread sweeps the open connections and shuts down those past their deadline; a request
 * being computed has none. Knows sockets and addresses, not HTTP. */
#ifndef DRE_SERVE_CONNECTIONS_H
#define DRE_SERVE_CONNECTIONS_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dre_conn dre_conn;
typedef struct dre_client_slot dre_client_slot;

typedef struct dre_conn_limits {
    int32_t max_connections;    /* open at once; more are closed at accept */
    int32_t max_per_client;     /* open at once from one address; 0: no cap */
    int32_t request_timeout_ms; /* from accept to a request in whole */
    int32_t idle_timeout_ms;    /* from an answer to the next request in whole */
} dre_conn_limits;

/* What /metrics shows. */
typedef struct dre_conn_stats {
    int32_t open;
    uint64_t accepted;
    uint64_t refused_total_cap, refused_client_cap;
    uint64_t timed_out_request, timed_out_idle;
} dre_conn_stats;

typedef struct dre_conn_guard {
    dre_conn_limits limits;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dre_conn *head;           /* the open connections */
    dre_client_slot *clients; /* open connections per address (open addressing) */
    size_t clients_cap, clients_used;
    dre_conn_stats stats;
    pthread_t sweeper;
    int started, stopping;
} dre_conn_guard;

/* Starts the sweeper thread. */
dre_status dre_conn_guard_start(dre_conn_guard *g, const dre_conn_limits *limits);
/* Stops it and frees what the guard holds; every connection must be closed already. */
void dre_conn_guard_stop(dre_conn_guard *g);

/* At accept, before anything is read: 1 to take the connection, 0 to close it (a cap is
 * reached; counted). */
int dre_conn_guard_admit(dre_conn_guard *g, const struct sockaddr *addr, socklen_t len);
/* A taken connection opens (its socket fd and client address) and closes. */
dre_conn *dre_conn_guard_opened(dre_conn_guard *g, int fd, const struct sockaddr *addr);
void dre_conn_guard_closed(dre_conn_guard *g, dre_conn *c);
/* Its request is in whole (no deadline while it is computed), and its answer is sent (the
 * idle timeout runs until the next request is in). */
void dre_conn_guard_received(dre_conn_guard *g, dre_conn *c);
void dre_conn_guard_answered(dre_conn_guard *g, dre_conn *c);

void dre_conn_guard_stats(dre_conn_guard *g, dre_conn_stats *out);

#ifdef __cplusplus
}
#endif
#endif
