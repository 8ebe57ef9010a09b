/* load_client: one wsmill-load client process (an epoll loop over its share
 * of the connections) and the connection state machine it drives.
 *
 * load_client.c owns the loop, the ramp, the phases and the timers;
 * load_conn.c owns one connection's I/O: connect, upgrade, frames, echo
 * verification and the close handshake. Both see these structs; nothing
 * outside tests/load/load_client.c and load_conn.c should. */
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

struct load_conn {
    int fd;
    uint32_t id;           /* global index: picks the source address and pattern */
    uint8_t state;         /* enum load_conn_state */
    uint8_t events;        /* epoll interest currently registered: 1 in, 2 out */
    uint8_t failed;        /* a failure was counted for this connection */
    uint8_t verify;        /* hold: its echo is part of the verify sample */
    uint8_t in_msg;        /* a fragmented data message is in progress */
    uint8_t cooldown;      /* churn: failed, restart on the next timer scan */
    uint8_t rx_op, rx_fin; /* frame being received */
    uint8_t hdr_len;
    uint8_t hdr[LOAD_WS_HDR_MAX];
    uint64_t rx_left; /* payload bytes left in the frame being received */
    uint64_t msg_off; /* bytes of the oldest outstanding message verified */
    uint64_t seq_sent, seq_recv;
    uint64_t t0;       /* connect start, ns */
    uint64_t deadline; /* ns; 0 = none (open connections wait forever) */
    uint64_t *sent_at; /* ring of send times, allocated on first send */
    uint8_t *out;      /* bytes the socket refused, in order */
    uint32_t out_len, out_cap;
    union {
        struct load_hs *hs;      /* LOAD_CS_HANDSHAKE */
        struct load_ctlbuf *ctl; /* open: a control frame in progress */
    } aux;
};

struct load_client {
    const struct load_opts *o;
    struct load_ctl *ctl;
    struct load_slot *st;
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
    uint64_t now;     /* CLOCK_MONOTONIC ns, refreshed per event */
    uint64_t run_end; /* copy of ctl->run_end_ns once running; else UINT64_MAX */
    uint64_t rng;
    uint8_t *rbuf;
    size_t rcap;
    uint8_t *wbuf; /* staging for one connection's output */
    size_t wlen, wcap;
};

/* Runs one client process over global connections [first, first + n) and
 * returns its exit status once the phases say it is done. verify_n is its
 * share of --verify-sample. */
int load_client_run(const struct load_opts *o, struct load_ctl *ctl, struct load_slot *st, uint64_t first,
                    uint32_t n, uint64_t verify_n);

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

#endif
