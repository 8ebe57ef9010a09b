/* load_client: one wsmill-load client process (an epoll loop over its share
 * of the connections) and the connection state machine it drives.
 *
 * load_client.c owns the loop, the ramp, the phases and the timers;
 * load_conn.c owns one connection's I/O: connect, upgrade, frames, echo
 * verification and the close handshake; load_pubsub.c owns what publishers
 * send (stamped messages, HTTP requests and their answers) and what
 * subscribers check. They all see these structs; nothing outside
 * tests/load/load_client.c, load_conn.c and load_pubsub.c should. */
#ifndef WSMILL_LOAD_CLIENT_H
#define WSMILL_LOAD_CLIENT_H

#include <stdint.h>
#include <stddef.h>

#include "load_opts.h"
#include "load_stats.h"
#include "load_ws.h"

enum load_conn_state {
    LOAD_CS_IDLE,       /* slot unused: no fd */
    LOAD_CS_CONNECTING, /* non-blocking connect in progress */
    LOAD_CS_HANDSHAKE,  /* request sent, waiting for the 101 */
    LOAD_CS_OPEN,
    LOAD_CS_CLOSING,    /* our close frame sent, waiting for the server's */
    LOAD_CS_CLOSE_WAIT, /* close frames exchanged, waiting for the server's FIN */
};

/* Handshake state, allocated only between connect and the 101. */
struct load_hs {
    char accept[LOAD_WS_ACCEPT_LEN + 1];
    uint16_t len;
    char buf[2048];
};

/* A control frame payload being received (<= 125 bytes). */
struct load_ctlbuf {
    uint8_t len;
    uint8_t buf[125];
};

/* What a client process's connections do (one role per process). */
enum load_role {
    LOAD_ROLE_CONN,     /* hold, echo, churn */
    LOAD_ROLE_SUB,      /* subscribe, fanout's subscribers */
    LOAD_ROLE_PUB_WS,   /* a ws client publishing on its channel (client_publish) */
    LOAD_ROLE_PUB_HTTP, /* the HTTP publish API, keep-alive, pipelined */
};

struct load_sub;
struct load_pub;

struct load_conn {
    int fd;
    uint32_t id;           /* global index: picks the source address and pattern */
    uint8_t state;         /* enum load_conn_state */
    uint8_t events;        /* epoll interest currently registered: 1 in, 2 out */
    uint8_t failed;        /* a failure was counted for this connection */
    uint8_t verify;        /* hold: its echo is part of the verify sample */
    uint8_t in_msg;        /* a fragmented data message is in progress */
    uint8_t cooldown;      /* churn: failed, restart on the next timer scan */
    uint8_t counted;       /* subscriber counted in its channel's open subscribers */
    uint8_t rx_op, rx_fin; /* frame being received */
    uint8_t rx_z;          /* --deflate: the message being received is compressed (RSV1) */
    uint8_t hdr_len;
    uint8_t hdr[LOAD_WS_HDR_MAX];
    uint64_t rx_left; /* payload bytes left in the frame being received */
    uint64_t msg_off; /* bytes of the oldest outstanding message verified */
    uint64_t seq_sent, seq_recv;
    uint64_t t0;       /* connect start, ns */
    uint64_t deadline; /* ns; 0 = none (open connections wait forever) */
    uint64_t *sent_at; /* ring of send times, allocated on first send */
    void *tls;         /* wss: the SSL (load_tls.c), NULL for ws:// */
    uint8_t *out;      /* bytes the socket refused, in order */
    uint32_t out_len, out_cap;
    uint8_t *zin; /* a message kept whole: compressed (--deflate) or JSON to compare (--json) */
    uint32_t zin_len, zin_cap;
    union {
        struct load_hs *hs;      /* LOAD_CS_HANDSHAKE */
        struct load_ctlbuf *ctl; /* open: a control frame in progress */
    } aux;
    union {
        struct load_sub *sub; /* subscriber, while open */
        struct load_pub *pub; /* publisher, while open */
    } ps;
};

/* Shared with the parent beside the slots: per channel, what was published
 * and accepted, and how many subscribers are open (fanout's expected
 * deliveries). Written with atomic adds: several processes share them. */
struct load_chans {
    uint64_t *published; /* accepted publishes (HTTP 2xx, ws: sent) */
    int64_t *subs;       /* open subscribers */
};

struct load_client {
    const struct load_opts *o;
    struct load_ctl *ctl;
    struct load_slot *st;
    struct load_chans chans;
    const struct load_target *target; /* where this process connects */
    enum load_role role;
    uint32_t src_offset; /* source address index of global connection 0 */
    uint64_t total;      /* connections of this role over all processes */
    int ep;
    struct load_conn *conns;
    uint32_t n;
    uint64_t first;      /* global id of conns[0] */
    uint32_t next_open;  /* hold/echo: ramp cursor */
    uint32_t close_next; /* close phase cursor */
    uint32_t *idle;      /* churn: slots ready for another cycle */
    uint32_t nidle;
    uint32_t closing;  /* connections in CLOSING or CLOSE_WAIT */
    uint32_t phase;    /* the phase this process has acted on */
    uint32_t ring;     /* sent_at entries per connection */
    uint64_t verify_n; /* hold: this process's share of the sample */
    uint64_t verify_pending;
    double tokens, rate_ns, burst;
    uint64_t last_refill;
    uint64_t now;       /* CLOCK_MONOTONIC ns, refreshed per event */
    uint64_t run_start; /* copy of ctl->run_start_ns once running */
    uint64_t run_end;   /* copy of ctl->run_end_ns once running; else UINT64_MAX */
    /* publishers: the message rate (a second token bucket) */
    double pub_tokens, pub_rate_ns, pub_burst;
    uint64_t pub_last_refill;
    uint32_t pub_rr; /* next connection, round robin */
    uint64_t rng;
    uint8_t *rbuf;
    size_t rcap;
    uint8_t *wbuf; /* staging for one connection's output */
    size_t wlen, wcap;
};

/* What one client process does: its role, and its share of that role's
 * connections (global ids [first, first + n) of total). */
struct load_share {
    enum load_role role;
    uint64_t first, total;
    uint32_t n;
    uint64_t verify_n; /* hold: its share of --verify-sample */
};

/* Runs one client process and returns its exit status once the phases say
 * it is done. */
int load_client_run(const struct load_opts *o, struct load_ctl *ctl, struct load_slot *st,
                    const struct load_chans *chans, const struct load_share *share);

/* CLOCK_MONOTONIC in ns. */
uint64_t load_client_clock(void);
/* A pseudo-random 64-bit value from the process's generator. */
uint64_t load_client_rand(struct load_client *cl);

/* load_conn.c: the connection state machine. Functions returning int return
 * -1 when the connection was released (its slot is idle again). */
void load_conn_start(struct load_client *cl, struct load_conn *c);
void load_conn_event(struct load_client *cl, struct load_conn *c, uint32_t events);
/* Sends count echo messages (echo mode's pipeline, verify, churn). */
int load_conn_send(struct load_client *cl, struct load_conn *c, uint32_t count);
/* Starts a clean close: close frame 1000, or a plain TCP close in --raw and
 * --handshake-only. */
int load_conn_close(struct load_client *cl, struct load_conn *c);
/* Fails the connection if a deadline or an echo is overdue. */
void load_conn_check(struct load_client *cl, struct load_conn *c);
/* Fails the connection as aborted (out of time). */
void load_conn_abort(struct load_client *cl, struct load_conn *c);
/* For load_pubsub.c: stage bytes (room for n <= wbuf size), write what is
 * staged, count a failure and release. -1 when the connection was released. */
uint8_t *load_conn_reserve(struct load_client *cl, struct load_conn *c, size_t n);
int load_conn_flush(struct load_client *cl, struct load_conn *c);
int load_conn_fail(struct load_client *cl, struct load_conn *c, enum load_stage stage, enum load_cause cause);
int load_conn_fail_errno(struct load_client *cl, struct load_conn *c, int err);
void load_conn_random_mask(struct load_client *cl, uint8_t mask[4]);

/* load_pubsub.c. The channel a connection subscribes to or publishes on
 * first (subscribers: id mod K; ws publishers: id; HTTP: id, id + P, ...). */
uint64_t load_ps_channel(const struct load_client *cl, const struct load_conn *c);
/* The connection opened: set up its subscriber or publisher state. */
int load_ps_opened(struct load_client *cl, struct load_conn *c);
/* The connection is released: drop that state. */
void load_ps_release(struct load_client *cl, struct load_conn *c);
/* Subscribers: a data message begins, n payload bytes of it, it ended. */
void load_sub_begin(struct load_conn *c);
int load_sub_bytes(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n);
int load_sub_done(struct load_client *cl, struct load_conn *c);
/* Publishers, in the run phase: send what the rate allows. Returns the
 * epoll timeout (ms) until the next message is due. */
int load_pub_tick(struct load_client *cl);
/* HTTP publishers: the socket is readable. */
int load_pub_http_read(struct load_client *cl, struct load_conn *c);
/* HTTP publishers: fails the connection when an answer is overdue. */
void load_pub_check(struct load_client *cl, struct load_conn *c);

#endif
