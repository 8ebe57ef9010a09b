/* conn.c: a connection's life: accept, state changes, reading, timeouts and
 * the two-phase close. Per-state work lives in upgrade.c (HANDSHAKE) and
 * frames.c (OPEN, CLOSING); this file owns the transitions between them. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/iptable.h"
#include "../../common/log.h"
#include "endpoint.h"
#include "frames.h"
#include "limits.h"
#include "liveness.h"
#include "output.h"
#include "pmd.h"
#include "upgrade.h"
#include "../transport/proxy.h"
#include "../transport/tls.h"
#include "../transport/transport.h"

#define CLOSE_GRACE_MS   3000 /* how long a peer has to answer our close, or to hang up */
#define READS_PER_WAKEUP 4    /* bound one wakeup's work so nobody starves */

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void fire(void *ctx, uint32_t fd);

static void reap_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    conn_reap(container_of(p, struct worker, reap));
}

void conn_init(struct worker *w, uint32_t now_tick)
{
    wheel_init(&w->wheel, w->conns, sizeof(struct conn), offsetof(struct conn, wl), now_tick);
    /* Lowest priority: runs after the fan-out's prepare watcher, so a
     * subscriber that fails during a sweep step is released after it. */
    ev_prepare_init(&w->reap, reap_cb);
    ev_set_priority(&w->reap, EV_MINPRI);
    ev_prepare_start(w->loop, &w->reap);
}

void conn_tick(struct worker *w, uint32_t now)
{
    wheel_advance(&w->wheel, now, fire, w);
}

void conn_count_close(struct conn *c, int code)
{
    struct worker *w = conn_worker(c);
    shm_add(&w->slot->closes[shm_close_idx(code)], 1);
}

void conn_maybe_idle(struct conn *c)
{
    struct conn_busy *b = c->busy;
    if (!b || c->state == CONN_HANDSHAKE || c->state == CONN_DEAD)
        return;
    if (b->q.head || b->in_frame || b->hdr_len || b->msg_opcode || b->msg || b->looked)
        return;
    if (!limits_rate_full(c))
        return; /* the buckets remember recent traffic */
    free(b);
    c->busy = NULL;
}

static void free_busy(struct conn *c, int handshake)
{
    if (!c->busy)
        return;
    if (handshake) {
        upgrade_state_free(c->busy);
    } else {
        struct conn_busy *b = c->busy;
        output_clear(&b->q);
        free(b->msg);
        free(b);
    }
    c->busy = NULL;
}

/* Over a per-address limit: a plain client is told (429); a TLS client
 * cannot be before its handshake, so it is closed (counted all the same). */
static void refuse_address(struct worker *w, struct conn *c, int why)
{
    if (transport_of(c)->answers_early) {
        limits_refuse_address(w, c, why);
        return;
    }
    shm_add(&w->slot->rejected[why], 1);
    conn_set_state(c, CONN_LINGER);
    conn_drop(c, 0);
}

void conn_accepted(struct worker *w, int fd, const struct sockaddr *addr, unsigned how)
{
    if (fd >= w->nconns) { /* cannot happen under our own RLIMIT_NOFILE */
        log_error("accepted fd %d beyond the connection table (%d)", fd, w->nconns);
        close(fd);
        return;
    }
    if ((how & ACCEPT_PROXY) && !proxy_trusted(w, addr)) {
        close(fd); /* not a balancer we know: no word, no state */
        return;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd, strerror(errno));
    struct conn *c = &w->conns[fd];
    memset(c, 0, sizeof(*c));
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = w;
    if ((how & ACCEPT_TLS) && tls_conn_start(c) == -1) {
        log_warn("out of memory for a TLS connection; closing fd %d", fd);
        close(fd);
        return;
    }
    /* Behind a balancer the address to count is in the PROXY header. */
    int refused = how & ACCEPT_PROXY ? 0 : limits_admit_address(w, c, addr);
    if (!refused && !(c->busy = upgrade_state_new())) {
        log_warn("out of memory for a handshake; closing fd %d", fd);
        iptable_release(&w->shm->iptable, c->ip_slot, 1);
        transport_of(c)->release(c);
        close(fd);
        return;
    }
    if (how & ACCEPT_PROXY)
        c->flags |= CF_PROXY;
    ev_io_start(w->loop, &c->io);
    w->live++;
    shm_add(&w->slot->accepted, 1);
    if (refused) {
        refuse_address(w, c, refused);
        return;
    }
    conn_set_state(c, CONN_HANDSHAKE);
}

static uint32_t state_deadline(struct worker *w, struct conn *c)
{
    const struct config *cfg = &w->cfg;
    switch (c->state) {
    case CONN_HANDSHAKE: return c->stamp + wheel_ticks(cfg->handshake_timeout);
    case CONN_OPEN: {
        uint32_t idle = cfg->idle_timeout ? c->stamp + wheel_ticks(cfg->idle_timeout) : UINT32_MAX;
        if (cfg->ping_interval && !(c->flags & CF_PINGED)) {
            uint32_t ping = c->stamp + wheel_ticks(cfg->ping_interval);
            return ping < idle ? ping : idle;
        }
        return idle;
    }
    default: return c->stamp + wheel_ticks(CLOSE_GRACE_MS);
    }
}

static void schedule(struct worker *w, struct conn *c, uint32_t at)
{
    if (at == UINT32_MAX)
        wheel_remove(&w->wheel, (uint32_t)conn_fd(c));
    else
        wheel_schedule(&w->wheel, (uint32_t)conn_fd(c), at);
}

struct conn_busy *conn_busy(struct conn *c)
{
    if (!c->busy) {
        struct conn_busy *b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        c->busy = b;
        /* An open connection that just started talking: visit it again
         * once its rate buckets are full (a second's refill at most), so
         * conn_maybe_idle gives this back then, not at the ping deadline
         * (30 s on): a client that said one thing costs its idle size
         * again a second later. */
        struct worker *w = conn_worker(c);
        uint32_t at = w->wheel.now + wheel_ticks(1000) + 1;
        if (c->state == CONN_OPEN && (int32_t)(state_deadline(w, c) - at) > 0)
            schedule(w, c, at);
    }
    return c->busy;
}

void conn_set_state(struct conn *c, enum conn_state s)
{
    struct worker *w = conn_worker(c);
    if (c->state == CONN_HANDSHAKE && s != CONN_HANDSHAKE) {
        free_busy(c, 1); /* the request parser is done */
        iptable_handshake_done(&w->shm->iptable, c->ip_slot);
    }
    c->state = (uint8_t)s;
    c->stamp = w->wheel.now;
    schedule(w, c, state_deadline(w, c));
}

void conn_drop(struct conn *c, int close_code_for_stats)
{
    struct worker *w = conn_worker(c);
    if (conn_gone(c))
        return;
    if (close_code_for_stats)
        conn_count_close(c, close_code_for_stats);
    wheel_remove(&w->wheel, (uint32_t)conn_fd(c));
    ev_io_stop(w->loop, &c->io);
    output_discard(c); /* corked bytes for a dead connection go nowhere */
    if (c->state == CONN_HANDSHAKE)
        c->flags |= CF_DIED_IN_HANDSHAKE;
    c->state = CONN_DEAD;
    c->wl.next = w->dead;
    w->dead = (uint32_t)conn_fd(c) + 1;
}

/* Phase two for one connection: nothing refers to it any more. */
static void release(struct worker *w, struct conn *c)
{
    int handshake = (c->flags & CF_DIED_IN_HANDSHAKE) != 0;
    free_busy(c, handshake);
    pmd_conn_release(c);
    const struct endpoint *ep = endpoint_of(w, c->endpoint);
    if (ep && ep->close)
        ep->close(c);
    iptable_release(&w->shm->iptable, c->ip_slot, handshake);
    if (c->flags & CF_UPGRADED) {
        shm_sub(&w->slot->connections, 1);
        shm_release(w->shm, 1);
    }
    transport_of(c)->release(c);
    c->transport = TRANSPORT_PLAIN;
    close(conn_fd(c));
    c->state = CONN_FREE;
    c->flags = 0;
    c->endpoint = 0;
    w->live--;
}

void conn_reap(struct worker *w)
{
    if (!w->dead)
        return;
    while (w->dead) {
        struct conn *c = &w->conns[w->dead - 1];
        w->dead = c->wl.next;
        c->wl.next = WHEEL_NONE;
        release(w, c);
    }
    if (w->draining && w->live == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

void conn_want_write(struct conn *c, int on)
{
    int has = (c->flags & CF_WRITING) != 0;
    if (has == !!on || conn_gone(c))
        return;
    struct worker *w = conn_worker(c);
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, conn_fd(c), EV_READ | (on ? EV_WRITE : 0));
    ev_io_start(w->loop, &c->io);
    c->flags = (uint8_t)(on ? c->flags | CF_WRITING : c->flags & ~CF_WRITING);
}

void conn_output_done(struct conn *c)
{
    if (c->state == CONN_LINGER && !output_pending(c) && !(c->flags & CF_SHUT_WR)) {
        transport_of(c)->shutdown(c);
        c->flags |= CF_SHUT_WR;
    }
}

/* After our last byte is queued: once it is flushed, send FIN and wait for
 * the peer to hang up, discarding what it still sends. Closing at once with
 * unread input would make the kernel send RST, which can destroy our close
 * frame or HTTP answer before the peer reads it. */
static void linger(struct conn *c)
{
    conn_set_state(c, CONN_LINGER);
    conn_output_done(c);
}

void conn_close_with(struct conn *c, int code, const char *reason)
{
    uint8_t frame[2 + WS_MAX_CONTROL_PAYLOAD];
    size_t n = ws_build_close(frame, code, reason);
    /* ws_build_close made header and payload; send the payload as a frame. */
    size_t hl = 2;
    if (output_frame(c, WS_OP_CLOSE, frame + hl, n - hl, NULL) == -1)
        return;
    conn_count_close(c, code);
    conn_set_state(c, CONN_CLOSING);
}

void conn_fail(struct conn *c, int code, const char *reason)
{
    log_debug("fd %d: failing the connection with %d (%s)", conn_fd(c), code, reason);
    if (c->state == CONN_OPEN) {
        conn_close_with(c, code, reason);
        if (conn_gone(c))
            return;
    }
    linger(c);
}

/* The peer's close frame arrived (code already validated). */
void conn_peer_closed(struct conn *c, int code)
{
    if (c->state == CONN_OPEN) {
        /* Echo the code (RFC 6455 5.5.1); an empty close answers 1005. */
        uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        if (output_frame(c, WS_OP_CLOSE, payload, code == WS_CLOSE_NO_STATUS ? 0 : 2, NULL) == -1)
            return;
        conn_count_close(c, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code);
    }
    linger(c);
}

/* note_progress: a subscriber catching up on a long backlog is alive even
 * while it sends nothing: our ping waits behind the backlog, so its pong
 * cannot come before the backlog is read. Room to write after the socket
 * was full means the peer acknowledged and read bytes, so the queue
 * draining counts as traffic for idle_timeout (conn_io_cb). A peer that
 * vanished drains nothing and times out as before.
 *
 * Only an open connection earns time by talking: the handshake and closing
 * deadlines run from when those states began, so a client trickling bytes
 * cannot hold them open. */
static void note_traffic(struct worker *w, struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    c->stamp = w->wheel.now;
    if (c->flags & CF_PINGED) {
        /* Answered: the next ping is due ping_interval from now, not at the
         * idle deadline the connection is filed under. */
        c->flags &= (uint8_t)~CF_PINGED;
        schedule(w, c, state_deadline(w, c));
    }
}

/* Handles one read's bytes; everything they produce leaves corked, in one
 * send, before the next read reuses the scratch buffer. */
static void handle_input(struct conn *c, uint8_t *p, size_t len)
{
    output_cork(c);
    if (c->state == CONN_HANDSHAKE) {
        size_t used = upgrade_feed(c, p, len);
        p += used;
        len -= used;
    }
    if ((c->state == CONN_OPEN || c->state == CONN_CLOSING) && len)
        frames_feed(c, p, len);
    output_uncork(c);
}

/* The PROXY header, then the per-IP admission with the address it
 * carries. Returns 1 when the connection goes on, else 0 (waiting for the
 * rest of the header, or c refused). */
static int proxy_step(struct worker *w, struct conn *c)
{
    struct sockaddr_storage ss;
    int r = proxy_read(c, &ss);
    if (r == 0)
        return 0;
    if (r == -1) {
        conn_drop(c, 0);
        return 0;
    }
    c->flags &= (uint8_t)~CF_PROXY;
    int refused = limits_admit_address(w, c, (const struct sockaddr *)&ss);
    if (refused) {
        refuse_address(w, c, refused);
        return 0;
    }
    return 1;
}

static void on_readable(struct worker *w, struct conn *c)
{
    if ((c->flags & CF_PROXY) && !proxy_step(w, c))
        return;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = transport_of(c)->recv(c, w->scratch, w->scratch_size);
        if (transport_of(c)->pending(c))
            conn_want_write(c, 1); /* a handshake step waits for room */
        if (n == 0) {
            /* EOF: a clean end after a close handshake, else abnormal. */
            conn_drop(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return;
        }
        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_drop(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return;
        }
        note_traffic(w, c);
        if (c->state == CONN_LINGER)
            continue; /* discarded until the peer hangs up */
        handle_input(c, w->scratch, (size_t)n);
        if (conn_gone(c))
            return;
        if ((size_t)n < w->scratch_size)
            return; /* drained the socket for now */
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct conn *c = container_of(io, struct conn, io);
    struct worker *w = io->data;
    if (revents & EV_WRITE) {
        size_t queued = output_queued(c);
        if (output_flush(c) == -1)
            return;
        if (c->state == CONN_OPEN && output_queued(c) < queued)
            c->stamp = w->wheel.now; /* see note_progress */
        conn_output_done(c);
    }
    if ((revents & EV_READ) && !conn_gone(c))
        on_readable(w, c);
}

/* An open connection's deadline came: idle close or keepalive ping. */
static void open_timer(struct worker *w, struct conn *c)
{
    const struct config *cfg = &w->cfg;
    uint32_t idle_at = cfg->idle_timeout ? c->stamp + wheel_ticks(cfg->idle_timeout) : UINT32_MAX;
    if ((int32_t)(idle_at - w->wheel.now) <= 0) {
        switch (liveness_check(c, cfg->idle_timeout)) {
        case LIVENESS_LOOK_AGAIN:
            schedule(w, c, w->wheel.now + wheel_ticks(liveness_ms(cfg->idle_timeout)));
            return;
        case LIVENESS_READING:
            c->stamp = w->wheel.now; /* reading its backlog: our ping is behind it */
            schedule(w, c, state_deadline(w, c));
            return;
        case LIVENESS_SILENT: break;
        }
        shm_add(&w->slot->idle_closes, 1);
        conn_close_with(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    conn_maybe_idle(c); /* rate buckets refilled by now: drop them */
    c->flags |= CF_PINGED;
    shm_add(&w->slot->pings_sent, 1);
    if (output_frame(c, WS_OP_PING, NULL, 0, NULL) == -1)
        return;
    schedule(w, c, state_deadline(w, c));
}

/* A wheel slot came due for the connection on fd: time out, ping, or
 * re-file it. */
static void fire(void *ctx, uint32_t fd)
{
    struct worker *w = ctx;
    struct conn *c = &w->conns[fd];
    if (conn_gone(c))
        return;
    uint32_t due = state_deadline(w, c);
    if ((int32_t)(due - w->wheel.now) > 0) {
        if (c->state == CONN_OPEN)
            conn_maybe_idle(c); /* rate buckets refilled by now: drop them */
        schedule(w, c, due);
        return;
    }
    switch (c->state) {
    case CONN_HANDSHAKE:
        shm_add(&w->slot->rejected[HS_REJECT_TIMEOUT], 1);
        conn_drop(c, 0);
        return;
    case CONN_OPEN: open_timer(w, c); return;
    default:
        /* The peer never finished closing: give up on it. */
        conn_drop(c, 0);
        return;
    }
}
