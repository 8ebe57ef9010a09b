/* worker-t.h: struct worker, what one worker process holds. Every room of
 * the worker (conn/, pubsub/, the publish API) keeps its per-worker state
 * here, grouped by room; functions live in the rooms' own headers. Nothing
 * here crosses a process boundary: the master never includes it. */
#ifndef WSMILL_WORKER_T_H
#define WSMILL_WORKER_T_H
#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/ring.h"
#include "../common/shm.h"
#include "conn/output-t.h"
#include "conn/wheel.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct conn;
struct channel;
struct endpoint;
struct broker_ops;
struct http_service;
struct history;
struct cidr_list;
struct pmd_codec;

#define WORKER_MAX_ENDPOINTS 4

struct worker {
    struct ev_loop *loop;
    int id;
    struct shm *shm;
    struct worker_slot *slot;
    struct config cfg;
    uint64_t cfg_generation;
    int listen_fd;
    ev_io accept_io;
    ev_timer accept_pause;
    ev_timer tick;
    ev_timer drain_deadline;
    ev_signal sig_term, sig_quit, sig_hup, sig_usr1, sig_winch;
    int draining; /* not accepting any more */
    int retiring; /* draining without closing: a successor took over */
    double last_emfile_log;
    uint64_t activity_seen; /* slot->accepted + messages + deliveries at the last look */
    int burst;              /* connections or messages since memory was last given back */
    uint32_t burst_tick;    /* tick of that look */
    /* connections (conn/) */
    struct conn *conns; /* indexed by fd */
    int nconns;         /* capacity of conns (RLIMIT_NOFILE) */
    int live;           /* entries not CONN_FREE (CONN_DEAD ones included) */
    uint32_t dead;      /* fd + 1 of the first connection awaiting release, 0 = none */
    ev_prepare reap;    /* releases dead connections once per loop turn */
    uint8_t *scratch;   /* the one read buffer */
    size_t scratch_size;
    struct wheel wheel;
    struct cork cork; /* output of the connection whose input is being handled */
    const struct endpoint *endpoints[WORKER_MAX_ENDPOINTS + 1]; /* [0] unused: 0 means none */
    int nendpoints;
    /* pub/sub (pubsub/) */
    struct ring *ring;
    struct ring_reader reader;
    struct channel **buckets; /* hash table of channels with local subscribers */
    uint32_t nbuckets, nchannels;
    uint64_t nsubscriptions;
    struct channel *active; /* channels with frames some subscriber is owed, in turn */
    struct channel *active_tail;
    size_t log_bytes;        /* frames held in the channels' logs */
    ev_prepare ring_prepare; /* drains the ring once per loop iteration */
    ev_check ring_check;
    ev_idle ring_idle;      /* keeps the loop turning while a backlog remains */
    ev_signal sig_urg;      /* wake-up from a publisher */
    uint64_t missed_logged; /* reader.missed when we last logged it */
    uint32_t *marks;        /* per fd: last multi-channel record delivered (dedupe) */
    uint32_t mark_gen;
    struct history *history;         /* the history store in shared memory (common/history.h) */
    uint32_t nenv;                   /* channels with a wsmill.v1 side here (histsub.c) */
    void *hist_pending;              /* wsmill.v1 opens waiting for Redis (histsub_redis.c) */
    const struct broker_ops *broker; /* where publishes go: the shared ring or Redis */
    void *broker_state;              /* the broker's own (broker_redis.c), or NULL */
    /* permessage-deflate (conn/pmd.c) */
    struct pmd_codec *pmd; /* the worker's zlib streams */
    void *pmd_tab;         /* descriptor-indexed settings and client windows (pmd.c) */
    /* the HTTP service on publish_listen (http/listener.c) */
    struct http_service *http;
    /* TLS and the PROXY protocol (transport/) */
    int tls_listen_fd; /* this worker's own socket on tls_listen, -1 = none */
    ev_io tls_accept_io;
    void *tls;                 /* transport/tls.c's state, NULL without tls_listen */
    struct cidr_list *trusted; /* trusted_proxies, parsed (transport/proxy.c) */
};

#endif
