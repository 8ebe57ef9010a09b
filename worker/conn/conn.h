/* conn.h: a WebSocket connection: its struct, its states, and its life
 * (conn.c). Per-state work lives in upgrade.c (HANDSHAKE) and frames.c
 * (OPEN, CLOSING), output in output.c, limits in limits.c. */
#ifndef WSMILL_CONN_H
#define WSMILL_CONN_H
#include <ev.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../../common/ws_frame.h"
#include "../worker-t.h"
#include "output-t.h"
#include "wheel.h"

enum conn_state {
    CONN_FREE = 0,  /* table entry unused */
    CONN_HANDSHAKE, /* reading the upgrade request */
    CONN_OPEN,      /* WebSocket frames both ways */
    CONN_CLOSING,   /* we sent a close frame; waiting for the peer's */
    CONN_LINGER,    /* nothing more to say: flush, FIN, discard input until EOF */
    CONN_DEAD,      /* failed: watchers stopped, released after this loop turn */
};

enum conn_flags {
    CF_UPGRADED = 1 << 0,          /* counted in slot->connections and the global total */
    CF_PINGED = 1 << 1,            /* a keepalive ping is out since the last traffic */
    CF_WRITING = 1 << 2,           /* EV_WRITE is armed */
    CF_SHUT_WR = 1 << 3,           /* FIN sent */
    CF_DIED_IN_HANDSHAKE = 1 << 4, /* CONN_DEAD from CONN_HANDSHAKE: busy is the upgrade parser */
    CF_PROXY = 1 << 5,             /* a PROXY protocol header is due before anything else */
    CF_DEFLATE = 1 << 6,           /* permessage-deflate agreed; its settings are in pmd.c's table */
};

/* How a connection arrived: which listener (conn_accepted's `how`). */
enum conn_accept {
    ACCEPT_TLS = 1 << 0,   /* tls_listen: the TLS transport */
    ACCEPT_PROXY = 1 << 1, /* the listener expects a PROXY protocol header */
};

/* One per descriptor, in a table indexed by fd: no allocation per idle
 * connection, and 32-bit links for the wheel. busy points to the upgrade
 * parser while in CONN_HANDSHAKE, else to a struct conn_busy that exists
 * only while a frame, a message or an output queue is in progress. */
struct conn {
    ev_io io;
    struct wheel_link wl; /* also links the dead list (wl.next) once CONN_DEAD */
    uint8_t state;        /* enum conn_state */
    uint8_t flags;        /* enum conn_flags */
    uint8_t endpoint;     /* index in w->endpoints, 0 = none yet */
    uint8_t transport;    /* enum transport_kind (transport/transport.h) */
    uint32_t stamp;       /* tick of the last input, or of entering the state */
    uint32_t ip_slot;     /* iptable slot + 1 of the client address, 0 = not counted */
    void *busy;
    void *ep; /* the endpoint's own per-connection state (channels joined), or NULL */
};

/* A look at a TCP connection's progress (liveness.c). */
struct liveness_look {
    uint64_t acked; /* bytes the peer acknowledged */
    uint32_t wnd;   /* its advertised receive window */
};

struct conn_busy {
    struct outq q;
    /* receive side */
    struct ws_header cur; /* frame being received, valid while in_frame */
    uint64_t cur_done;    /* payload bytes of cur already consumed */
    uint8_t in_frame;
    uint8_t hdr_len;      /* bytes of a partial header kept in hdr */
    uint8_t msg_opcode;   /* TEXT/BINARY of the message in progress, 0 = none */
    uint8_t msg_deflated; /* it is compressed (RSV1): inflated once whole */
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t ctl[WS_MAX_CONTROL_PAYLOAD];
    uint32_t utf8; /* validator state across fragments */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    /* rate limiting (limits.c): token buckets, kept only while not full */
    uint8_t rl_on;
    int64_t rl_msgs; /* milli-messages */
    int64_t rl_bytes;
    uint64_t rl_last_ms;
    /* idle deadline passed: looks taken at the TCP connection (liveness.c) */
    uint8_t looked;
    struct liveness_look look;
};

static inline int conn_fd(const struct conn *c)
{
    return c->io.fd;
}
static inline struct worker *conn_worker(const struct conn *c)
{
    return (struct worker *)c->io.data;
}
/* 1 once c failed or was freed: callers stop touching it. */
static inline int conn_gone(const struct conn *c)
{
    return c->state == CONN_FREE || c->state == CONN_DEAD;
}

/* Sets up the connection table's wheel and the reaper (worker start). */
void conn_init(struct worker *w, uint32_t now_tick);
/* Takes over a freshly accepted socket from addr (IPv4/IPv6 sockaddr);
 * how is a set of enum conn_accept. */
void conn_accepted(struct worker *w, int fd, const struct sockaddr *addr, unsigned how);
/* The one function that changes a live connection's state (and deadline). */
void conn_set_state(struct conn *c, enum conn_state s);
/* Advances the wheel to tick now: timeouts and pings come due. */
void conn_tick(struct worker *w, uint32_t now);
/* Two-phase close, phase one: c is marked CONN_DEAD, its watcher stopped,
 * it leaves the wheel, and the close is counted (code 0: not counted); its
 * descriptor, buffers and subscriptions are released by conn_reap after
 * the current callback, so nothing iterating connections meets a freed
 * one. Safe anywhere; a no-op on a connection already gone. */
void conn_drop(struct conn *c, int close_code_for_stats);
/* Phase two: releases every dead connection. Called once per loop turn. */
void conn_reap(struct worker *w);
/* Starts the closing handshake with code and reason (state CLOSING). */
void conn_close_with(struct conn *c, int code, const char *reason);
/* Fails the connection (RFC 6455 7.1.7): close frame, then linger. */
void conn_fail(struct conn *c, int code, const char *reason);
struct conn_busy *conn_busy(struct conn *c);
/* The peer's close frame arrived with a valid code: answer it and linger. */
void conn_peer_closed(struct conn *c, int code);
/* Frees busy state once nothing is in progress (idle connections own none). */
void conn_maybe_idle(struct conn *c);
void conn_count_close(struct conn *c, int code);
/* Arms or disarms EV_WRITE. */
void conn_want_write(struct conn *c, int on);
/* Output is all sent: a lingering connection sends its FIN now. */
void conn_output_done(struct conn *c);

#endif
