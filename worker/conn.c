/* conn.c: a connection's life: accept, state changes, reading, timeouts and
 * teardown. Per-state work lives in http.c (HANDSHAKE) and frames.c (OPEN,
 * CLOSING); this file owns the transitions between them. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "internal.h"

#define CLOSE_GRACE_MS   3000 /* how long a peer has to answer our close, or to hang up */
#define READS_PER_WAKEUP 4    /* bound one wakeup's work so nobody starves */

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);

struct conn *worker_conn(struct worker *w, int fd)
{
    return &w->conns[fd];
}

void conn_count_close(struct conn *c, int code)
{
    struct worker *w = conn_worker(c);
    shm_add(&w->slot->closes[shm_close_idx(code)], 1);
}

struct conn_busy *conn_busy(struct conn *c)
{
    if (!c->busy) {
        struct conn_busy *b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        c->busy = b;
    }
    return c->busy;
}

static uint64_t now_ms(struct worker *w)
{
    return (uint64_t)(ev_now(w->loop) * 1000.0);
}

/* Refills c's buckets for the time since they were last touched. */
static void rate_refill(struct worker *w, struct conn_busy *b)
{
    const struct config *cfg = &w->cfg;
    uint64_t now = now_ms(w);
    if (!b->rl_on) {
        b->rl_on = 1;
        b->rl_msgs = cfg->max_messages_per_second * 1000;
        b->rl_bytes = cfg->max_bytes_per_second;
        b->rl_last_ms = now;
        return;
    }
    uint64_t dt = now - b->rl_last_ms;
    b->rl_last_ms = now;
    /* Rates are per second, so per millisecond the message bucket gains
     * `rate` milli-messages and the byte bucket rate/1000 bytes. */
    int64_t m = b->rl_msgs + (int64_t)dt * cfg->max_messages_per_second;
    int64_t by = b->rl_bytes + (int64_t)(dt * (uint64_t)cfg->max_bytes_per_second / 1000);
    b->rl_msgs = m < cfg->max_messages_per_second * 1000 ? m : cfg->max_messages_per_second * 1000;
    b->rl_bytes = by < cfg->max_bytes_per_second ? by : cfg->max_bytes_per_second;
}

int conn_rate_take(struct conn *c, uint64_t msgs, uint64_t bytes)
{
    struct worker *w = conn_worker(c);
    const struct config *cfg = &w->cfg;
    if (!cfg->max_messages_per_second && !cfg->max_bytes_per_second)
        return 0;
    struct conn_busy *b = conn_busy(c);
    if (!b)
        return 0; /* out of memory: the limit is not what should fail here */
    rate_refill(w, b);
    if (cfg->max_messages_per_second) {
        b->rl_msgs -= (int64_t)msgs * 1000;
        if (b->rl_msgs < 0)
            return 1;
    }
    if (cfg->max_bytes_per_second) {
        b->rl_bytes -= (int64_t)bytes;
        if (b->rl_bytes < 0)
            return 2;
    }
    return 0;
}

int conn_rate_full(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct conn_busy *b = c->busy;
    if (!b || !b->rl_on)
        return 1;
    rate_refill(w, b);
    return (!w->cfg.max_messages_per_second || b->rl_msgs >= w->cfg.max_messages_per_second * 1000) &&
           (!w->cfg.max_bytes_per_second || b->rl_bytes >= w->cfg.max_bytes_per_second);
}

void conn_maybe_idle(struct conn *c)
{
    struct conn_busy *b = c->busy;
    if (!b || c->state == CONN_HANDSHAKE)
        return;
    if (b->q.head || b->in_frame || b->hdr_len || b->msg_opcode || b->msg)
        return;
    if (!conn_rate_full(c))
        return; /* the buckets remember recent traffic */
    free(b);
    c->busy = NULL;
}

static void free_busy(struct conn *c)
{
    if (!c->busy)
        return;
    if (c->state == CONN_HANDSHAKE) {
        http_state_free(c->busy);
    } else {
        struct conn_busy *b = c->busy;
        outq_clear(&b->q);
        free(b->msg);
        free(b);
    }
    c->busy = NULL;
}

/* Counts the connection against its address's limits. Returns 0, or the
 * reason it is refused (HS_REJECT_IP_*); -1 = not counted but allowed. */
static int count_address(struct worker *w, struct conn *c, const struct sockaddr *sa)
{
    const struct config *cfg = &w->cfg;
    if (!cfg->max_connections_per_ip && !cfg->max_handshakes_per_ip)
        return 0;
    const void *a;
    size_t len;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a = &s6->sin6_addr;
        len = 16;
        /* An IPv4 client on a dual-stack socket counts as its IPv4 address. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            a = (const uint8_t *)&s6->sin6_addr + 12;
            len = 4;
        }
    } else {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
        len = 4;
    }
    switch (iptable_acquire(&w->shm->iptable, a, len, (uint32_t)cfg->max_connections_per_ip,
                            (uint32_t)cfg->max_handshakes_per_ip, &c->ip_slot)) {
    case IPT_OK: return 0;
    case IPT_TOO_MANY_CONNECTIONS: return HS_REJECT_IP_CONNECTIONS;
    case IPT_TOO_MANY_HANDSHAKES: return HS_REJECT_IP_HANDSHAKES;
    default: shm_add(&w->shm->iptable_full, 1); return 0;
    }
}

/* Over a per-address limit: answer 429 at once (before the request: the
 * client learns why) and linger, without allocating a request parser. */
static void refuse_address(struct worker *w, struct conn *c, int why)
{
    static const char resp[] = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                               "Connection: close\r\nContent-Length: %d\r\n\r\n%s\n";
    char buf[384];
    const char *text = why == HS_REJECT_IP_CONNECTIONS
                           ? "too many connections from your address (max_connections_per_ip)"
                           : "too many unfinished handshakes from your address (max_handshakes_per_ip)";
    int n = snprintf(buf, sizeof(buf), resp, (int)strlen(text) + 1, text);
    shm_add(&w->slot->rejected[why], 1);
    conn_set_state(c, CONN_LINGER);
    if (conn_send_raw(c, buf, (size_t)n) == -1)
        return;
    conn_fail(c, 0, text);
}

void conn_accepted(struct worker *w, int fd, const struct sockaddr *addr)
{
    if (fd >= w->nconns) { /* cannot happen under our own RLIMIT_NOFILE */
        log_error("accepted fd %d beyond the connection table (%d)", fd, w->nconns);
        close(fd);
        return;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd, strerror(errno));
    struct conn *c = &w->conns[fd];
    memset(c, 0, sizeof(*c));
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = w;
    int refused = count_address(w, c, addr);
    if (!refused && !(c->busy = http_state_new())) {
        log_warn("out of memory for a handshake; closing fd %d", fd);
        iptable_release(&w->shm->iptable, c->ip_slot, 1);
        close(fd);
        return;
    }
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

void conn_set_state(struct conn *c, enum conn_state s)
{
    struct worker *w = conn_worker(c);
    if (c->state == CONN_HANDSHAKE && s != CONN_HANDSHAKE) {
        free_busy(c); /* the request parser is done */
        iptable_handshake_done(&w->shm->iptable, c->ip_slot);
    }
    c->state = (uint8_t)s;
    c->stamp = w->wheel.now;
    uint32_t at = state_deadline(w, c);
    if (at == UINT32_MAX)
        wheel_remove(w, c);
    else
        wheel_schedule(w, c, at);
}

void conn_destroy(struct conn *c, int close_code_for_stats)
{
    struct worker *w = conn_worker(c);
    if (c->state == CONN_FREE)
        return;
    if (close_code_for_stats)
        conn_count_close(c, close_code_for_stats);
    wheel_remove(w, c);
    ev_io_stop(w->loop, &c->io);
    free_busy(c);
    channels_unsubscribe_all(c);
    iptable_release(&w->shm->iptable, c->ip_slot, c->state == CONN_HANDSHAKE);
    if (c->flags & CF_UPGRADED) {
        shm_sub(&w->slot->connections, 1);
        shm_release(w->shm, 1);
    }
    close(conn_fd(c));
    c->state = CONN_FREE;
    c->flags = 0;
    w->live--;
    if (w->draining && w->live == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

void conn_want_write(struct conn *c, int on)
{
    int has = (c->flags & CF_WRITING) != 0;
    if (has == !!on)
        return;
    struct worker *w = conn_worker(c);
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, conn_fd(c), EV_READ | (on ? EV_WRITE : 0));
    ev_io_start(w->loop, &c->io);
    c->flags = (uint8_t)(on ? c->flags | CF_WRITING : c->flags & ~CF_WRITING);
}

/* After our last byte is queued: once it is flushed, send FIN and wait for
 * the peer to hang up, discarding what it still sends. Closing at once with
 * unread input would make the kernel send RST, which can destroy our close
 * frame or HTTP answer before the peer reads it. */
static void linger(struct conn *c)
{
    conn_set_state(c, CONN_LINGER);
    if (!conn_has_output(c) && !(c->flags & CF_SHUT_WR)) {
        shutdown(conn_fd(c), SHUT_WR);
        c->flags |= CF_SHUT_WR;
    }
}

void conn_close_with(struct conn *c, int code, const char *reason)
{
    uint8_t frame[2 + WS_MAX_CONTROL_PAYLOAD];
    size_t n = ws_build_close(frame, code, reason);
    /* ws_build_close made header and payload; send the payload as a frame. */
    size_t hl = 2;
    if (conn_send_frame(c, WS_OP_CLOSE, frame + hl, n - hl, NULL) == -1)
        return;
    conn_count_close(c, code);
    conn_set_state(c, CONN_CLOSING);
}

void conn_fail(struct conn *c, int code, const char *reason)
{
    log_debug("fd %d: failing the connection with %d (%s)", conn_fd(c), code, reason);
    if (c->state == CONN_OPEN) {
        conn_close_with(c, code, reason);
        if (c->state == CONN_FREE)
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
        if (conn_send_frame(c, WS_OP_CLOSE, payload, code == WS_CLOSE_NO_STATUS ? 0 : 2, NULL) == -1)
            return;
        conn_count_close(c, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code);
    }
    linger(c);
}

static void on_readable(struct worker *w, struct conn *c)
{
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = read(conn_fd(c), w->scratch, w->scratch_size);
        if (n == 0) {
            /* EOF: a clean end after a close handshake, else abnormal. */
            conn_destroy(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return;
        }
        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_destroy(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return;
        }
        /* Only an open connection earns time by talking: the handshake and
         * closing deadlines run from when those states began, so a client
         * trickling bytes cannot hold them open. */
        if (c->state == CONN_OPEN) {
            c->stamp = w->wheel.now;
            if (c->flags & CF_PINGED) {
                /* Answered: the next ping is due ping_interval from now, not
                 * at the idle deadline the connection is filed under. */
                c->flags &= (uint8_t)~CF_PINGED;
                wheel_schedule(w, c, state_deadline(w, c));
            }
        }
        uint8_t *p = w->scratch;
        size_t len = (size_t)n;
        if (c->state == CONN_HANDSHAKE) {
            size_t used = http_feed(c, p, len);
            p += used;
            len -= used;
        }
        if (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
            if (len)
                frames_feed(c, p, len);
        }
        if (c->state == CONN_FREE)
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
        if (conn_flush(c) == -1)
            return;
        if (c->state == CONN_LINGER && !conn_has_output(c) && !(c->flags & CF_SHUT_WR)) {
            shutdown(conn_fd(c), SHUT_WR);
            c->flags |= CF_SHUT_WR;
        }
    }
    if ((revents & EV_READ) && c->state != CONN_FREE)
        on_readable(w, c);
}

void conn_timer(struct worker *w, struct conn *c)
{
    if (c->state == CONN_FREE)
        return;
    uint32_t due = state_deadline(w, c);
    if ((int32_t)(due - w->wheel.now) > 0) {
        if (c->state == CONN_OPEN)
            conn_maybe_idle(c); /* rate buckets refilled by now: drop them */
        if (due != UINT32_MAX)
            wheel_schedule(w, c, due);
        return;
    }
    switch (c->state) {
    case CONN_HANDSHAKE:
        shm_add(&w->slot->rejected[HS_REJECT_TIMEOUT], 1);
        conn_destroy(c, 0);
        return;
    case CONN_OPEN: {
        const struct config *cfg = &w->cfg;
        uint32_t idle_at = cfg->idle_timeout ? c->stamp + wheel_ticks(cfg->idle_timeout) : UINT32_MAX;
        if ((int32_t)(idle_at - w->wheel.now) <= 0) {
            shm_add(&w->slot->idle_closes, 1);
            conn_close_with(c, WS_CLOSE_GOING_AWAY, "idle timeout");
            return;
        }
        conn_maybe_idle(c); /* rate buckets refilled by now: drop them */
        c->flags |= CF_PINGED;
        shm_add(&w->slot->pings_sent, 1);
        if (conn_send_frame(c, WS_OP_PING, NULL, 0, NULL) == -1)
            return;
        due = state_deadline(w, c);
        if (due != UINT32_MAX)
            wheel_schedule(w, c, due);
        return;
    }
    default:
        /* The peer never finished closing: give up on it. */
        conn_destroy(c, 0);
        return;
    }
}
