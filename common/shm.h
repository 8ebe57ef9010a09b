/* shm.h: the shared-memory control block, the only contract between the
 * master and its workers besides signals.
 *
 * One MAP_SHARED anonymous mapping made by the master before it forks.
 * Plain structs, fixed layout, no pointers. Every worker slot has exactly
 * one writer (its worker, or the master while the worker is dead) and sits
 * on its own cache lines. Counters are C11 atomics written with relaxed
 * load+store by their single writer, so no locked instructions are paid on
 * the hot path; readers (the status socket) see monotonic values. */
#ifndef WSMILL_SHM_H
#define WSMILL_SHM_H
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"
#include "iptable.h"
#include "ring.h"
#include "tls_store.h"

#define SHM_MAGIC          0x4c4c494d53571001ULL /* "\x01\x10WSMILL" */
#define SHM_LAYOUT_VERSION 5
#define SHM_MAX_WORKERS    256
#define SHM_CACHELINE      64

enum worker_state {
    WORKER_EMPTY = 0, /* slot unused */
    WORKER_STARTING,  /* forked, not yet accepting */
    WORKER_ACTIVE,    /* accepting and serving */
    WORKER_DRAINING,  /* not accepting, closing its connections */
    WORKER_DEAD,      /* exited; waiting to be respawned */
};
const char *shm_worker_state_name(int state);

/* A worker's link to the broker (broker = redis); local when it has none. */
enum broker_state {
    BROKER_STATE_LOCAL = 0,  /* broker = local: the shared ring only */
    BROKER_STATE_CONNECTING, /* never connected yet */
    BROKER_STATE_CONNECTED,  /* both Redis connections ready */
    BROKER_STATE_DOWN,       /* was connected, or failed: reconnecting with back-off */
};
const char *shm_broker_state_name(int state);

/* Why a handshake was refused; each maps to one HTTP status. */
enum hs_reject {
    HS_REJECT_BAD_REQUEST,    /* 400 */
    HS_REJECT_FORBIDDEN,      /* 403: Origin not allowed */
    HS_REJECT_NOT_FOUND,      /* 404 */
    HS_REJECT_METHOD,         /* 405 */
    HS_REJECT_VERSION,        /* 426 */
    HS_REJECT_HEADER_SIZE,    /* 431 */
    HS_REJECT_FULL,           /* 503: max_connections reached */
    HS_REJECT_TIMEOUT,        /* handshake_timeout: no status sent */
    HS_REJECT_IP_CONNECTIONS, /* 429: max_connections_per_ip */
    HS_REJECT_IP_HANDSHAKES,  /* 429: max_handshakes_per_ip */
    HS_REJECT_UNAUTHORIZED,   /* 401: auth_secret set, token missing or invalid */
    HS_REJECT_CHANNEL_DENIED, /* 403: the token's channels claim does not list a channel */
    HS_REJECT_MAX
};
const char *shm_reject_name(int reason);

/* Close codes counted per worker; CLOSE_IDX_OTHER catches the rest. */
enum close_idx {
    CLOSE_IDX_1000,
    CLOSE_IDX_1001,
    CLOSE_IDX_1002,
    CLOSE_IDX_1003,
    CLOSE_IDX_1006,
    CLOSE_IDX_1007,
    CLOSE_IDX_1008,
    CLOSE_IDX_1009,
    CLOSE_IDX_1011,
    CLOSE_IDX_1013,
    CLOSE_IDX_OTHER,
    CLOSE_IDX_MAX
};
int shm_close_idx(int code);
/* The code an index stands for (0 for CLOSE_IDX_OTHER). */
int shm_close_code(int idx);

typedef _Atomic uint64_t shm_counter;

/* A latency histogram with fixed bucket bounds (shm_hist_bounds_us, a
 * 1-2-5 series from 10 us to 10 s, then +Inf). One writer per slot like
 * every counter: an observation is two relaxed load+stores, no lock. The
 * count is the sum of the buckets. */
#define SHM_HIST_BUCKETS 19 /* finite bounds; bucket[SHM_HIST_BUCKETS] is +Inf */
struct shm_hist {
    shm_counter bucket[SHM_HIST_BUCKETS + 1]; /* not cumulative: one bucket per observation */
    shm_counter sum_us;
};
extern const uint32_t shm_hist_bounds_us[SHM_HIST_BUCKETS];

struct worker_slot {
    _Alignas(SHM_CACHELINE) _Atomic int32_t pid;
    _Atomic uint32_t generation;
    _Atomic uint32_t state;     /* enum worker_state */
    _Atomic int64_t started_at; /* unix seconds */
    shm_counter connections;    /* current, upgraded */
    shm_counter accepted;       /* TCP connections accepted */
    shm_counter accept_errors;  /* EMFILE/ENFILE/ENOBUFS pauses */
    shm_counter handshakes;     /* completed with 101 */
    shm_counter rejected[HS_REJECT_MAX];
    shm_counter messages_in, messages_out;
    shm_counter bytes_in, bytes_out; /* payload bytes */
    shm_counter sends;               /* sendmsg calls on WebSocket connections (corked: one per read) */
    shm_counter backpressure_closes; /* closed for max_backpressure */
    shm_counter pings_sent, idle_closes;
    shm_counter closes[CLOSE_IDX_MAX]; /* by close code sent or received */
    /* channels */
    shm_counter channels;            /* gauge: channels with local subscribers */
    shm_counter subscriptions;       /* gauge: (connection, channel) pairs */
    shm_counter publishes;           /* messages this worker put in the ring */
    shm_counter publish_rejected;    /* publish API errors and refused client publishes */
    shm_counter deliveries;          /* frames queued or written to subscribers */
    shm_counter slow_drops;          /* deliveries dropped (slow_consumer = drop) */
    shm_counter slow_closes;         /* subscribers closed 1013 (slow_consumer = close) */
    shm_counter ring_missed;         /* records lost because this worker fell a ring behind */
    shm_counter ring_lag;            /* gauge: records published but not yet read */
    shm_counter fanout_passes;       /* passes over a channel's subscribers completed */
    shm_counter fanout_pass_us;      /* their total length: a message waits at most one */
    shm_counter fanout_pass_last_us; /* gauge: the length of the latest */
    /* limits hit, by reason (each also shows in closes or rejected) */
    shm_counter limit_frame_size;   /* frame over max_frame_size: 1009 */
    shm_counter limit_message_size; /* message over max_message_size: 1009 */
    shm_counter limit_message_rate; /* over max_messages_per_second: 1008 */
    shm_counter limit_byte_rate;    /* over max_bytes_per_second: 1008 */
    /* broker = redis (worker/pubsub/broker_redis.c) */
    _Atomic uint32_t broker_state; /* enum broker_state */
    shm_counter broker_reconnects; /* connections re-established after a loss */
    shm_counter broker_lost;       /* messages refused (503, 1013) or unanswered because Redis was down */
    shm_counter redis_publishes;   /* PUBLISH commands sent (one per channel of a message) */
    shm_counter redis_received;    /* messages that came back from Redis */
    /* TLS and the PROXY protocol (worker/transport/) */
    shm_counter tls_handshakes;       /* TLS handshakes completed */
    shm_counter tls_handshake_errors; /* TLS handshakes failed (bad records, plain HTTP, no common cipher) */
    shm_counter proxy_refused;        /* closed: PROXY header missing, malformed, or from an untrusted peer */
    shm_counter tls_ctx_generation;   /* gauge: the certificate generation new handshakes use */
    /* for /metrics and the dashboard (worker/http/metrics.c) */
    shm_counter cpu_us;             /* user + system CPU time of the worker, updated every tick */
    shm_counter http_requests;      /* requests answered by the HTTP service (every route) */
    shm_counter http_sends;         /* send calls of the HTTP service (a pipelined batch: one) */
    struct shm_hist hist_pass;      /* fan-out pass length */
    struct shm_hist hist_delay;     /* publish (ring) to the end of the pass that sent it */
    struct shm_hist hist_handshake; /* accept to 101 */
    /* permessage-deflate (worker/conn/pmd.c) */
    shm_counter pmd_negotiated;     /* handshakes that agreed on permessage-deflate */
    shm_counter pmd_out_compressed; /* messages sent compressed (each send, fan-out included) */
    shm_counter pmd_out_plain;      /* messages sent uncompressed to a deflate connection */
    shm_counter pmd_out_saved;      /* payload bytes those compressed sends saved */
    shm_counter pmd_deflates;       /* compressions run: once per message per worker in a fan-out */
    shm_counter pmd_in_compressed;  /* compressed messages received */
    shm_counter pmd_in_saved;       /* inflated minus compressed bytes of those */
    shm_counter pmd_windows;        /* gauge: client windows held (clients keeping context) */
};

struct shm {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t max_workers;
    int32_t master_pid;
    int64_t start_time; /* unix seconds */
    /* Settings published by the master under a sequence lock: odd while
     * being written. Workers copy them on SIGHUP (and on each timer tick
     * if the generation moved). */
    _Atomic uint64_t config_generation;
    _Atomic uint32_t config_seq;
    struct config config;
    /* Admission: upgraded connections across all workers. A worker adds
     * before answering 101 and subtracts on close; the master subtracts a
     * dead worker's slot->connections before respawning it. */
    _Alignas(SHM_CACHELINE) _Atomic int64_t total_connections;
    struct worker_slot slots[SHM_MAX_WORKERS];
    uint64_t ring_offset;     /* the publish ring follows in the same mapping */
    shm_counter iptable_full; /* addresses not counted: probe window full */
    struct iptable iptable;   /* per-address limits; pages touched only when enabled */
    /* Bit i set: worker slot i is about to sleep and wants SIGURG when the
     * ring moves. A publisher takes the whole word (exchange with 0) and
     * wakes each bit's worker, so a busy ring costs one load per word. */
    _Alignas(SHM_CACHELINE) _Atomic uint64_t ring_sleepers[SHM_MAX_WORKERS / 64];
    /* tls_listen's certificate and key as the master last validated them */
    struct tls_store tls;
    /* Written by the master only: what outlives a worker slot, so totals
     * read from the block never go backwards. */
    struct worker_slot gone;    /* counters of freed slots, summed */
    shm_counter worker_deaths;  /* serving workers that died and were respawned */
    shm_counter reloads;        /* reloads attempted (SIGHUP) */
    shm_counter reloads_failed; /* of which refused (the old settings stay) */
};

/* Creates and initialises the block with a publish ring of ring_size bytes;
 * aborts with a message on failure. */
struct shm *shm_create(size_t ring_size);
/* The publish ring inside the block. */
static inline struct ring *shm_ring(struct shm *s)
{
    return (struct ring *)((char *)s + s->ring_offset);
}
/* Master: publishes cfg and bumps the generation. */
void shm_publish_config(struct shm *s, const struct config *cfg);
/* Worker: copies the current config; returns its generation. */
uint64_t shm_read_config(struct shm *s, struct config *out);

/* Single-writer increment (relaxed load + store, no lock prefix). */
static inline void shm_add(shm_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void shm_sub(shm_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n, memory_order_relaxed);
}
static inline uint64_t shm_get(shm_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Single-writer observation of us microseconds into h. */
static inline void shm_hist_observe(struct shm_hist *h, uint64_t us)
{
    int i = 0;
    while (i < SHM_HIST_BUCKETS && us > shm_hist_bounds_us[i])
        i++;
    shm_add(&h->bucket[i], 1);
    shm_add(&h->sum_us, us);
}
/* Adds every counter of from into to (a freed slot into shm->gone; the
 * gauges are left out). One writer of `to` only. */
void shm_slot_fold(struct worker_slot *to, struct worker_slot *from);

/* Admission: reserves one connection if the total is below max; returns 1
 * when reserved, 0 when full. */
int shm_admit(struct shm *s, int64_t max);
void shm_release(struct shm *s, int64_t n);

#endif
