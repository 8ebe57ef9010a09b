/* internal.h: what the worker's modules share. Nothing here crosses a
 * process boundary; the master never includes it. */
#ifndef WSMILL_WORKER_INTERNAL_H
#define WSMILL_WORKER_INTERNAL_H
#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../common/config.h"
#include "../common/ring.h"
#include "../common/shm.h"
#include "../common/ws_frame.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- timing wheel (wheel.c) ------------------------------------------- */
#define WHEEL_TICK_MS 250
#define WHEEL_SLOTS   256 /* 64 s horizon; later deadlines are re-filed lazily */
#define WHEEL_NONE    0   /* links hold fd + 1, so 0 means "no connection" */

struct wheel {
    uint32_t now;  /* current tick */
    uint32_t done; /* last tick whose slot was processed */
    uint32_t head[WHEEL_SLOTS];
};

/* ---- connections ------------------------------------------------------ */
enum conn_state {
    CONN_FREE = 0,  /* table entry unused */
    CONN_HANDSHAKE, /* reading the upgrade request */
    CONN_OPEN,      /* WebSocket frames both ways */
    CONN_CLOSING,   /* we sent a close frame; waiting for the peer's */
    CONN_LINGER,    /* nothing more to say: flush, FIN, discard input until EOF */
};

enum conn_flags {
    CF_UPGRADED = 1 << 0, /* counted in slot->connections and the global total */
    CF_PINGED = 1 << 1,   /* a keepalive ping is out since the last traffic */
    CF_WRITING = 1 << 2,  /* EV_WRITE is armed */
    CF_SHUT_WR = 1 << 3,  /* FIN sent */
};

/* One per descriptor, in a table indexed by fd: no allocation per idle
 * connection, and 32-bit links for the wheel. busy points to a struct
 * hs_state while in CONN_HANDSHAKE, else to a struct conn_busy that exists
 * only while a frame, a message or an output queue is in progress. */
struct conn {
    ev_io io;
    uint32_t wheel_next, wheel_prev; /* fd + 1 of neighbours in the slot list */
    uint32_t stamp;                  /* tick of the last input, or of entering the state */
    uint32_t ip_slot;                /* iptable slot + 1 of the client address, 0 = not counted */
    uint16_t wheel_slot;
    uint8_t state; /* enum conn_state */
    uint8_t flags; /* enum conn_flags */
    void *busy;
    struct conn_subs *subs; /* channels joined (/ch/...), or NULL for /echo */
};

/* ---- channels (channels.c) -------------------------------------------- */
/* A whole frame (header + payload) shared by every subscriber's queue in
 * this worker; freed when the last reference goes. */
struct shbuf {
    uint32_t refs;
    uint32_t len;
    uint64_t published_ns; /* mono_ns() at publish (ring), 0 when unknown (broker) */
    uint8_t data[];
};

struct channel;

struct conn_subs {
    uint16_t n;
    struct {
        struct channel *ch;
        uint32_t idx; /* position in ch's subscriber array */
    } e[];
};

struct chunk {
    struct chunk *next;
    uint32_t len, off;
    uint8_t *ext; /* external payload, or NULL */
    uint32_t ext_len;
    uint8_t shared; /* ext is a struct shbuf's data (unref), else malloc'd (free) */
    uint8_t data[]; /* inline bytes, sent before ext */
};

struct outq {
    struct chunk *head, *tail;
    size_t bytes;
};

struct conn_busy {
    struct outq q;
    /* receive side */
    struct ws_header cur; /* frame being received, valid while in_frame */
    uint64_t cur_done;    /* payload bytes of cur already consumed */
    uint8_t in_frame;
    uint8_t hdr_len;    /* bytes of a partial header kept in hdr */
    uint8_t msg_opcode; /* TEXT/BINARY of the message in progress, 0 = none */
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t ctl[WS_MAX_CONTROL_PAYLOAD];
    uint32_t utf8; /* validator state across fragments */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    /* rate limiting: token buckets, kept only while not full */
    uint8_t rl_on;
    int64_t rl_msgs; /* milli-messages */
    int64_t rl_bytes;
    uint64_t rl_last_ms;
};

/* ---- the worker ------------------------------------------------------- */
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
    struct conn *conns; /* indexed by fd */
    int nconns;         /* capacity of conns (RLIMIT_NOFILE) */
    int live;           /* entries not CONN_FREE */
    int draining;       /* not accepting any more */
    int retiring;       /* draining without closing: a successor took over */
    double last_emfile_log;
    uint8_t *scratch; /* the one read buffer */
    size_t scratch_size;
    struct wheel wheel;
    /* channels */
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
    void *pubapi;          /* the HTTP service on publish_listen (http/listener.c) */
    struct broker *broker; /* broker = redis (broker.c), else NULL */
};

/* The worker this process runs; signal and libev callbacks reach it through
 * their watcher, everything else is passed explicitly. */
static inline int conn_fd(const struct conn *c)
{
    return c->io.fd;
}

/* Gathers iov onto c's socket without blocking. sendmsg rather than writev:
 * it goes straight to the socket layer and skips the file write path
 * (fdget_pos, rw_verify_area, fsnotify), which the fan-out sweep pays once
 * per subscriber; 7% less time per send there (docs/channels.md). */
static inline ssize_t conn_sendv(const struct conn *c, const struct iovec *iov, int n)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(conn_fd(c), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}
struct conn *worker_conn(struct worker *w, int fd);
static inline struct worker *conn_worker(const struct conn *c)
{
    return (struct worker *)c->io.data;
}

/* wheel.c */
void wheel_init(struct wheel *wh);
/* Files c (already in w->conns) to fire at tick `at` (clamped to the horizon). */
void wheel_schedule(struct worker *w, struct conn *c, uint32_t at);
void wheel_remove(struct worker *w, struct conn *c);
/* Processes every slot up to the current tick, calling conn_timer for each
 * connection whose slot came due. */
void wheel_advance(struct worker *w, uint32_t now);
static inline uint32_t wheel_ticks(int64_t ms)
{
    return (uint32_t)((ms + WHEEL_TICK_MS - 1) / WHEEL_TICK_MS);
}

/* conn.c */
/* Takes over a freshly accepted socket from addr (IPv4/IPv6 sockaddr). */
void conn_accepted(struct worker *w, int fd, const struct sockaddr *addr);
/* The one function that changes a connection's state (and its deadline). */
void conn_set_state(struct conn *c, enum conn_state s);
/* A wheel slot came due for c: time out, ping, or re-file it. */
void conn_timer(struct worker *w, struct conn *c);
/* Closes the socket and frees everything; c returns to CONN_FREE. Safe in
 * any callback as long as the caller touches c no more than to read state. */
void conn_destroy(struct conn *c, int close_code_for_stats);
/* Starts the closing handshake with code and reason (state CLOSING). */
void conn_close_with(struct conn *c, int code, const char *reason);
/* Fails the connection (RFC 6455 7.1.7): close frame, then linger. */
void conn_fail(struct conn *c, int code, const char *reason);
struct conn_busy *conn_busy(struct conn *c);
/* The peer's close frame arrived with a valid code: answer it and linger. */
void conn_peer_closed(struct conn *c, int code);
/* Frees busy state once nothing is in progress (idle connections own none). */
void conn_maybe_idle(struct conn *c);
/* Takes msgs messages and bytes payload bytes from c's rate buckets.
 * Returns 0, or the limit hit: 1 messages, 2 bytes. */
int conn_rate_take(struct conn *c, uint64_t msgs, uint64_t bytes);
/* 1 when c's buckets have refilled (nothing to remember). */
int conn_rate_full(struct conn *c);
void conn_count_close(struct conn *c, int code);

/* channels.c */
void channels_init(struct worker *w);
/* Joins c to every channel in list (validated: "A,B,C"). Returns 0, or -1
 * when out of memory. */
int channels_subscribe(struct conn *c, const char *list, size_t len);
/* Leaves every channel (on close). */
void channels_unsubscribe_all(struct conn *c);
/* Publishes one message to a channel, or to a comma-separated list of
 * channels ("a,b": one record, so a connection in several of them gets it
 * once), through the shared ring; every worker (this one included) delivers
 * it to its local subscribers. Returns 0, or -1 with errno EMSGSIZE when it
 * is larger than the ring accepts. With broker = redis it goes to Redis
 * instead (broker_publish: -1 with ENOTCONN or ENOBUFS when Redis cannot
 * take it). */
int channels_publish(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len);
/* A data message from a subscriber: published to its channels when
 * client_publish is on, else the connection is closed 1008. */
void channels_client_message(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len);
void shbuf_unref(struct shbuf *b);
/* fanout.c: a message that reached this worker through channel `via` from
 * outside the ring (a broker such as Redis, which delivers a message
 * published to several channels once per channel): delivered to via's
 * local subscribers, except those also subscribed to a channel of `list`
 * that comes before via (they get it through that one), so each gets it
 * exactly once. A single-channel message is swept like a ring record. */
void channels_deliver(struct worker *w, const char *via, size_t via_len, const char *list, size_t list_len,
                      unsigned opcode, const uint8_t *payload, size_t len);
/* Calls fn with the name of every channel that has local subscribers. */
void channels_each(struct worker *w, void (*fn)(struct worker *w, const char *name, size_t len));

/* http.c: the upgrade request. */
void *http_state_new(void);
void http_state_free(void *hs);
/* Feeds request bytes; answers and changes state when the request is
 * complete or invalid. Returns how many bytes it consumed (the rest, if the
 * connection is now open, are frames). */
size_t http_feed(struct conn *c, uint8_t *data, size_t len);

/* frames.c: frames of an open (or closing) connection. */
void frames_feed(struct conn *c, uint8_t *data, size_t len);

/* outq.c: everything written goes through here. */
/* Sends one frame (header built here) with payload; when the socket refuses
 * part of it the rest is queued. owned, if not NULL, is a malloc'd buffer
 * holding payload that the queue may keep instead of copying (it is freed
 * either way). Returns 0, or -1 when the connection was closed for
 * max_backpressure or out of memory. */
int conn_send_frame(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, uint8_t *owned);
/* Sends raw bytes (an HTTP response). Same return as above. */
int conn_send_raw(struct conn *c, const void *data, size_t len);
/* EV_WRITE: flushes what is queued. Returns 0, or -1 if c was destroyed. */
int conn_flush(struct conn *c);
void outq_clear(struct outq *q);
/* Appends frames shared with other subscribers, minus the first skip bytes
 * (already written). Takes a reference on each. Returns 0, or -1 when out
 * of memory (c is then destroyed). No bound is checked: the caller applies
 * the slow-consumer policy first. */
int conn_queue_shared(struct conn *c, struct shbuf **bufs, int n, size_t skip);
/* Queued bytes (0 when nothing is queued). */
size_t conn_queued(const struct conn *c);
/* Over a bound: drops the queue, sends close `code` if the stream is at a
 * frame boundary, and destroys c. */
void conn_overflow_close(struct conn *c, int code, const char *reason);
static inline int conn_has_output(const struct conn *c)
{
    return c->state != CONN_HANDSHAKE && c->busy && ((struct conn_busy *)c->busy)->q.head;
}
/* Arms or disarms EV_WRITE. */
void conn_want_write(struct conn *c, int on);

#endif
