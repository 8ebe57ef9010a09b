/* load_conn.c: one client connection's life, driven by load_client.c.
 *
 * connect (bound to its source address) -> upgrade -> open (idle, echo
 * pipeline, ping/pong, published messages: load_pubsub.c) -> close
 * handshake -> the server's FIN. HTTP publishers skip the upgrade and end
 * with a plain TCP close. Every way out
 * other than a clean close is counted once, by stage and cause, in the
 * process's stats slot. Output is staged per connection in the client's
 * buffer and written once per wakeup; only what the socket refuses is kept.
 * Echoed payloads are verified as they stream in, so no message is ever
 * buffered on the receive side. */
#include "load_client.h"
#include "load_pmd.h"
#include "load_tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define EV_IN  1
#define EV_OUT 2

static int frames_input(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n);

/* read() and send(), over TLS for wss://. */
static ssize_t conn_recv(struct load_conn *c, void *buf, size_t n)
{
    return c->tls ? load_tls_recv(c->tls, buf, n) : read(c->fd, buf, n);
}

static ssize_t conn_send(struct load_conn *c, const void *buf, size_t n)
{
    return c->tls ? load_tls_send(c->tls, buf, n) : send(c->fd, buf, n, MSG_NOSIGNAL);
}

static enum load_stage stage_of(const struct load_conn *c)
{
    switch (c->state) {
    case LOAD_CS_CONNECTING: return LOAD_ST_CONNECT;
    case LOAD_CS_HANDSHAKE: return LOAD_ST_HANDSHAKE;
    case LOAD_CS_OPEN: return LOAD_ST_OPEN;
    default: return LOAD_ST_CLOSE;
    }
}

/* The payload byte at offset i of message seq on connection id: the
 * sequence number, then the connection id, then a pattern that shifts with
 * both, so a lost, repeated, reordered or crossed message cannot pass. */
static inline uint8_t pattern(uint32_t id, uint64_t seq, uint64_t i)
{
    if (i < 8)
        return (uint8_t)(seq >> (8 * i));
    if (i < 12)
        return (uint8_t)(id >> (8 * (i - 8)));
    return (uint8_t)(seq * 7 + id * 13 + i);
}

static uint64_t conn_timeout_ns(const struct load_client *cl)
{
    return (uint64_t)(cl->o->conn_timeout * 1e9);
}

/* Updates the gauges for a connection leaving state c->state for good. */
static void leave_state(struct load_client *cl, struct load_conn *c)
{
    struct load_slot *st = cl->st;
    switch (c->state) {
    case LOAD_CS_CONNECTING:
    case LOAD_CS_HANDSHAKE:
        LOAD_SUB(st->pending, 1);
        LOAD_ADD(st->settled, 1);
        break;
    case LOAD_CS_CLOSING:
    case LOAD_CS_CLOSE_WAIT:
        cl->closing--;
        /* fall through */
    case LOAD_CS_OPEN: LOAD_SUB(st->open_now, 1); break;
    }
}

/* Closes the socket, frees what the connection holds and makes the slot
 * idle. clean: it ended the way it should (counts a clean close, and in
 * churn a completed cycle). */
static void release(struct load_client *cl, struct load_conn *c, int clean)
{
    struct load_slot *st = cl->st;

    leave_state(cl, c);
    if (c->tls)
        load_tls_free(c->tls);
    c->tls = NULL;
    if (c->fd != -1)
        close(c->fd); /* a socket's close cannot fail in a way we could act on */
    load_ps_release(cl, c);
    if (c->state == LOAD_CS_HANDSHAKE)
        free(c->aux.hs);
    else
        free(c->aux.ctl);
    c->aux.hs = NULL;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    free(c->zin);
    c->zin = NULL;
    c->zin_len = c->zin_cap = 0;
    c->rx_z = 0;
    cl->wlen = 0; /* anything staged was for this connection */
    LOAD_SUB(st->active, 1);
    if (clean && !c->failed) {
        LOAD_ADD(st->closed_clean, 1);
        if (cl->o->mode == LOAD_CHURN) {
            LOAD_ADD(st->cycles, 1);
            if (cl->now < cl->run_end)
                LOAD_ADD(st->cycles_window, 1);
            load_hist_add(&st->hist[LOAD_H_CYCLE], cl->now - c->t0);
        }
    }
    if (cl->o->mode == LOAD_CHURN) {
        /* A failed slot waits for the next timer scan, so a refusing server
         * cannot turn the loop into a busy spin of failures. */
        if (c->failed)
            c->cooldown = 1;
        else
            cl->idle[cl->nidle++] = (uint32_t)(c - cl->conns);
    }
    c->state = LOAD_CS_IDLE;
    c->fd = -1;
    c->events = 0;
    c->failed = c->verify = c->in_msg = c->counted = 0;
    c->hdr_len = 0;
    c->rx_left = c->msg_off = c->seq_sent = c->seq_recv = 0;
    c->deadline = 0;
}

/* Counts a failure once per connection and resolves its verify echo. */
static void count_failure(struct load_client *cl, struct load_conn *c)
{
    if (!c->failed) {
        c->failed = 1;
        LOAD_ADD(cl->st->failed, 1);
    }
    if (c->verify) {
        c->verify = 0;
        cl->verify_pending--;
        LOAD_ADD(cl->st->verify_failed, 1);
    }
}

static int fail(struct load_client *cl, struct load_conn *c, enum load_stage stage, enum load_cause cause)
{
    cl->st->cause[stage][cause]++;
    count_failure(cl, c);
    release(cl, c, 0);
    return -1;
}

static int fail_errno(struct load_client *cl, struct load_conn *c, int err)
{
    cl->st->err[stage_of(c)][err > 0 && err < LOAD_ERRNO_MAX ? err : 0]++;
    count_failure(cl, c);
    release(cl, c, 0);
    return -1;
}

static int set_events(struct load_client *cl, struct load_conn *c, uint8_t events)
{
    if (c->events == events)
        return 0;
    struct epoll_event ev = {
        .events = (events & EV_IN ? EPOLLIN : 0) | (events & EV_OUT ? EPOLLOUT : 0),
        .data.ptr = c,
    };
    if (epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        return fail_errno(cl, c, errno);
    c->events = events;
    return 0;
}

/* Appends p[0..n) to the buffer *buf (len, cap), growing it by doubling
 * from `first`. Returns 0, or the errno: ENOBUFS past `limit` bytes, or
 * ENOMEM. */
static int append(uint8_t **buf, uint32_t *len, uint32_t *cap, const uint8_t *p, size_t n, size_t first,
                  size_t limit)
{
    if (*len + n > *cap) {
        size_t want = *cap ? *cap : first;
        while (want < *len + n)
            want *= 2;
        if (want > UINT32_MAX || want > limit)
            return ENOBUFS;
        uint8_t *b = realloc(*buf, want);
        if (b == NULL)
            return ENOMEM;
        *buf = b;
        *cap = (uint32_t)want;
    }
    memcpy(*buf + *len, p, n);
    *len += (uint32_t)n;
    return 0;
}

/* Keeps bytes the socket refused, after whatever is already waiting. */
static int keep_out(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    int err = append(&c->out, &c->out_len, &c->out_cap, p, n, 4096, UINT32_MAX);
    if (err)
        return fail_errno(cl, c, err);
    return set_events(cl, c, EV_IN | EV_OUT);
}

/* Writes the staged bytes, or queues them behind earlier refused ones. */
static int flush(struct load_client *cl, struct load_conn *c)
{
    size_t n = cl->wlen;
    if (n == 0)
        return 0;
    cl->wlen = 0;
    if (c->out_len > 0)
        return keep_out(cl, c, cl->wbuf, n);
    ssize_t w = conn_send(c, cl->wbuf, n);
    if (w == -1) {
        if (errno != EAGAIN)
            return fail_errno(cl, c, errno);
        w = 0;
    }
    if ((size_t)w < n)
        return keep_out(cl, c, cl->wbuf + w, n - (size_t)w);
    return 0;
}

/* Drains the refused bytes when the socket is writable again. */
static int write_out(struct load_client *cl, struct load_conn *c)
{
    ssize_t w = conn_send(c, c->out, c->out_len);
    if (w == -1)
        return errno == EAGAIN ? 0 : fail_errno(cl, c, errno);
    memmove(c->out, c->out + w, c->out_len - (size_t)w);
    c->out_len -= (uint32_t)w;
    return c->out_len == 0 ? set_events(cl, c, EV_IN) : 0;
}

/* Room for n (<= wcap) staged bytes, flushing first when full. */
static uint8_t *reserve(struct load_client *cl, struct load_conn *c, size_t n)
{
    if (cl->wlen + n > cl->wcap && flush(cl, c) == -1)
        return NULL;
    return cl->wbuf + cl->wlen;
}

static void random_mask(struct load_client *cl, uint8_t mask[4])
{
    uint32_t r = (uint32_t)load_client_rand(cl);
    memcpy(mask, &r, 4);
}

uint8_t *load_conn_reserve(struct load_client *cl, struct load_conn *c, size_t n)
{
    return reserve(cl, c, n);
}

int load_conn_flush(struct load_client *cl, struct load_conn *c)
{
    return flush(cl, c);
}

int load_conn_fail(struct load_client *cl, struct load_conn *c, enum load_stage stage, enum load_cause cause)
{
    return fail(cl, c, stage, cause);
}

int load_conn_fail_errno(struct load_client *cl, struct load_conn *c, int err)
{
    return fail_errno(cl, c, err);
}

void load_conn_random_mask(struct load_client *cl, uint8_t mask[4])
{
    random_mask(cl, mask);
}

/* Stages a masked control frame (len <= 125). */
static int stage_control(struct load_client *cl, struct load_conn *c, unsigned op, const uint8_t *payload,
                         size_t len)
{
    uint8_t mask[4];
    uint8_t *p = reserve(cl, c, LOAD_WS_HDR_MAX + len);
    if (p == NULL)
        return -1;
    random_mask(cl, mask);
    size_t h = load_ws_frame_header(p, op, len, mask);
    memcpy(p + h, payload, len);
    load_ws_mask(p + h, len, mask, 0);
    cl->wlen += h + len;
    return 0;
}

/* --json / --deflate: one echo message built whole (JSON or the pattern),
 * compressed when deflate was negotiated, as one masked frame. */
static int stage_built(struct load_client *cl, struct load_conn *c, uint64_t seq)
{
    size_t size = (size_t)cl->o->size, zcap = size + 64;
    uint8_t *plain = load_pmd_scratch(size + zcap), *z = plain ? plain + size : NULL, mask[4];
    if (plain == NULL)
        return fail_errno(cl, c, ENOMEM);
    if (cl->o->json)
        load_pmd_json(plain, size, c->id, seq);
    else
        for (size_t i = 0; i < size; i++)
            plain[i] = pattern(c->id, seq, i);
    ssize_t zl = cl->o->deflate ? load_pmd_deflate(plain, size, z, zcap) : -1;
    const uint8_t *body = zl >= 0 ? z : plain;
    size_t len = zl >= 0 ? (size_t)zl : size;
    uint8_t *h = reserve(cl, c, LOAD_WS_HDR_MAX);
    if (h == NULL)
        return -1;
    random_mask(cl, mask);
    size_t hl = load_ws_frame_header(h, cl->o->json ? LOAD_WS_TEXT : LOAD_WS_BINARY, len, mask);
    if (zl >= 0)
        h[0] |= 0x40; /* RSV1: compressed */
    cl->wlen += hl;
    for (size_t off = 0; off < len;) {
        size_t chunk = len - off < cl->wcap ? len - off : cl->wcap;
        uint8_t *p = reserve(cl, c, chunk);
        if (p == NULL)
            return -1;
        memcpy(p, body + off, chunk);
        load_ws_mask(p, chunk, mask, off);
        cl->wlen += chunk;
        off += chunk;
    }
    return 0;
}

/* Stages one echo message: a masked binary frame, or raw bytes. */
static int stage_msg(struct load_client *cl, struct load_conn *c, uint64_t seq)
{
    uint64_t size = cl->o->size;
    uint8_t mask[4];
    if (cl->o->json || cl->o->deflate)
        return stage_built(cl, c, seq);
    if (!cl->o->raw) {
        uint8_t *h = reserve(cl, c, LOAD_WS_HDR_MAX);
        if (h == NULL)
            return -1;
        random_mask(cl, mask);
        cl->wlen += load_ws_frame_header(h, LOAD_WS_BINARY, size, mask);
    }
    for (uint64_t off = 0; off < size;) {
        size_t chunk = size - off < cl->wcap ? (size_t)(size - off) : cl->wcap;
        uint8_t *p = reserve(cl, c, chunk);
        if (p == NULL)
            return -1;
        for (size_t i = 0; i < chunk; i++)
            p[i] = pattern(c->id, seq, off + i);
        if (!cl->o->raw)
            load_ws_mask(p, chunk, mask, off);
        cl->wlen += chunk;
        off += chunk;
    }
    return 0;
}

static int stage_msgs(struct load_client *cl, struct load_conn *c, uint32_t count)
{
    if (c->sent_at == NULL) {
        c->sent_at = malloc(cl->ring * sizeof(uint64_t));
        if (c->sent_at == NULL)
            return fail_errno(cl, c, ENOMEM);
    }
    for (uint32_t k = 0; k < count; k++) {
        uint64_t seq = c->seq_sent++;
        c->sent_at[seq % cl->ring] = cl->now;
        if (stage_msg(cl, c, seq) == -1)
            return -1;
        LOAD_ADD(cl->st->msgs_sent, 1);
        LOAD_ADD(cl->st->bytes_sent, cl->o->size);
    }
    return 0;
}

int load_conn_send(struct load_client *cl, struct load_conn *c, uint32_t count)
{
    if (stage_msgs(cl, c, count) == -1)
        return -1;
    return flush(cl, c);
}

int load_conn_close(struct load_client *cl, struct load_conn *c)
{
    if (c->state != LOAD_CS_OPEN)
        return 0;
    if (cl->o->raw || cl->o->handshake_only || cl->role == LOAD_ROLE_PUB_HTTP) {
        release(cl, c, 1);
        return -1;
    }
    static const uint8_t normal[2] = {1000 >> 8, 1000 & 0xff};
    if (stage_control(cl, c, LOAD_WS_CLOSE, normal, sizeof(normal)) == -1)
        return -1;
    c->state = LOAD_CS_CLOSING;
    cl->closing++;
    c->deadline = cl->now + conn_timeout_ns(cl);
    return flush(cl, c);
}

/* One echo came back whole: record it and decide what this mode does next. */
static int echo_done(struct load_client *cl, struct load_conn *c)
{
    struct load_slot *st = cl->st;
    uint64_t seq = c->seq_recv++;
    c->msg_off = 0;
    load_hist_add(&st->hist[LOAD_H_ECHO], cl->now - c->sent_at[seq % cl->ring]);
    LOAD_ADD(st->msgs_recv, 1);
    LOAD_ADD(st->bytes_recv, cl->o->size);
    if (cl->now < cl->run_end) {
        LOAD_ADD(st->msgs_window, 1);
        LOAD_ADD(st->bytes_window, cl->o->size);
    }
    if (c->verify) {
        c->verify = 0;
        cl->verify_pending--;
        LOAD_ADD(st->verify_ok, 1);
        return 0;
    }
    if (c->state != LOAD_CS_OPEN)
        return 0;
    if (cl->o->mode == LOAD_CHURN)
        return load_conn_close(cl, c);
    if (cl->o->mode == LOAD_ECHO && cl->phase == LOAD_PH_RUN && cl->now < cl->run_end)
        return stage_msgs(cl, c, 1);
    return 0;
}

/* Checks n echoed bytes at the current offset of the oldest message. */
static int echo_bytes(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    if (c->seq_recv == c->seq_sent)
        return fail(cl, c, LOAD_ST_ECHO, LOAD_C_UNEXPECTED_DATA);
    if (c->msg_off + n > cl->o->size)
        return fail(cl, c, LOAD_ST_ECHO, LOAD_C_MISMATCH);
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(c->id, c->seq_recv, c->msg_off + i))
            return fail(cl, c, LOAD_ST_ECHO, LOAD_C_MISMATCH);
    c->msg_off += n;
    return 0;
}

/* --raw: the stream is the messages back to back. */
static int raw_input(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t take = cl->o->size - c->msg_off < n ? (size_t)(cl->o->size - c->msg_off) : n;
        if (echo_bytes(cl, c, p, take) == -1)
            return -1;
        p += take;
        n -= take;
        if (c->msg_off == cl->o->size && echo_done(cl, c) == -1)
            return -1;
        if (c->state == LOAD_CS_IDLE)
            return -1;
    }
    return 0;
}

/* A close frame arrived (payload in ctl, may be NULL when empty). */
static int on_close(struct load_client *cl, struct load_conn *c, const struct load_ctlbuf *ctl)
{
    size_t len = ctl ? ctl->len : 0;
    if (len == 1)
        return fail(cl, c, stage_of(c), LOAD_C_CLOSE_PAYLOAD);
    unsigned code = len >= 2 ? (unsigned)ctl->buf[0] << 8 | ctl->buf[1] : 1005;
    if (c->state == LOAD_CS_CLOSING) {
        c->state = LOAD_CS_CLOSE_WAIT; /* our close answered; the FIN comes next */
        return 0;
    }
    if (c->state != LOAD_CS_OPEN)
        return 0;
    /* The server closed first: nothing in these modes asks it to, so it is a
     * failure, but finish the handshake properly so the server sees a
     * well-behaved client. */
    cl->st->close_code[code < LOAD_CLOSE_MAX ? code : 0]++;
    count_failure(cl, c);
    if (stage_control(cl, c, LOAD_WS_CLOSE, ctl ? ctl->buf : NULL, len >= 2 ? 2 : 0) == -1)
        return -1;
    c->state = LOAD_CS_CLOSE_WAIT;
    cl->closing++;
    c->deadline = cl->now + conn_timeout_ns(cl);
    return 0;
}

static int frame_begin(struct load_client *cl, struct load_conn *c, const struct load_ws_frame *f)
{
    if (f->masked)
        return fail(cl, c, stage_of(c), LOAD_C_FRAME_MASKED);
    c->rx_op = f->opcode;
    c->rx_fin = f->fin;
    c->rx_left = f->len;
    if (f->opcode & 0x8) {
        if (f->len > 0) {
            c->aux.ctl = malloc(sizeof(*c->aux.ctl));
            if (c->aux.ctl == NULL)
                return fail_errno(cl, c, ENOMEM);
            c->aux.ctl->len = 0;
        }
        return 0;
    }
    if ((f->opcode == LOAD_WS_CONT) != (c->in_msg != 0))
        return fail(cl, c, stage_of(c), LOAD_C_FRAGMENT);
    if (f->rsv1 && !cl->o->deflate)
        return fail(cl, c, stage_of(c), LOAD_C_FRAME_RSV);
    if (f->opcode != LOAD_WS_CONT) {
        c->rx_z = f->rsv1;
        c->zin_len = 0;
    }
    if (cl->role == LOAD_ROLE_SUB && f->opcode != LOAD_WS_CONT)
        load_sub_begin(c);
    else if (cl->role == LOAD_ROLE_CONN && f->opcode != LOAD_WS_CONT && c->seq_recv == c->seq_sent)
        return fail(cl, c, LOAD_ST_ECHO, LOAD_C_UNEXPECTED_DATA);
    c->in_msg = 1;
    return 0;
}

/* Keeps a data message's bytes until it is whole (to inflate or compare). */
static int keep_whole(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    int err = append(&c->zin, &c->zin_len, &c->zin_cap, p, n, (size_t)cl->o->size + 64,
                     4 * cl->o->size + (1 << 20));
    if (err == ENOBUFS)
        return fail(cl, c, stage_of(c), LOAD_C_MISMATCH); /* far longer than any message we sent */
    return err ? fail_errno(cl, c, err) : 0;
}

/* A message kept whole is complete: inflate it if compressed, then check
 * it like streamed bytes (or, --json, against the message we sent). */
static int whole_message(struct load_client *cl, struct load_conn *c)
{
    size_t size = (size_t)cl->o->size, cap = c->rx_z ? size + 64 : 0; /* longer is a mismatch */
    const uint8_t *plain = c->zin;
    size_t len = c->zin_len;
    uint8_t *buf = load_pmd_scratch(cap + size + 1);
    if (buf == NULL)
        return fail_errno(cl, c, ENOMEM);
    if (c->rx_z) {
        int hit = 0;
        ssize_t l = cl->role == LOAD_ROLE_SUB ? load_pmd_inflate_memo(c->zin, c->zin_len, buf, cap, &hit)
                                              : load_pmd_inflate(c->zin, c->zin_len, buf, cap);
        if (cl->role == LOAD_ROLE_SUB) {
            LOAD_ADD(cl->st->sub_inflated, 1);
            LOAD_ADD(cl->st->sub_memo_hits, hit);
        }
        if (l < 0)
            return fail(cl, c, stage_of(c), LOAD_C_MISMATCH);
        plain = buf;
        len = (size_t)l;
    }
    c->rx_z = 0;
    c->zin_len = 0;
    if (cl->role == LOAD_ROLE_SUB)
        return load_sub_bytes(cl, c, plain, len);
    if (cl->role != LOAD_ROLE_CONN)
        return 0;
    if (!cl->o->json)
        return echo_bytes(cl, c, plain, len);
    if (c->seq_recv == c->seq_sent)
        return fail(cl, c, LOAD_ST_ECHO, LOAD_C_UNEXPECTED_DATA);
    uint8_t *want = buf + cap;
    load_pmd_json(want, size, c->id, c->seq_recv);
    if (len != size || memcmp(plain, want, size) != 0)
        return fail(cl, c, LOAD_ST_ECHO, LOAD_C_MISMATCH);
    c->msg_off = size;
    return 0;
}

static int frame_payload(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    if (c->rx_op & 0x8) {
        memcpy(c->aux.ctl->buf + c->aux.ctl->len, p, n);
        c->aux.ctl->len += (uint8_t)n;
        return 0;
    }
    if (c->rx_z || (cl->role == LOAD_ROLE_CONN && cl->o->json))
        return keep_whole(cl, c, p, n);
    switch (cl->role) {
    case LOAD_ROLE_SUB: return load_sub_bytes(cl, c, p, n);
    case LOAD_ROLE_PUB_WS: return 0; /* its own channel's messages: only counted */
    default: return echo_bytes(cl, c, p, n);
    }
}

static int frame_end(struct load_client *cl, struct load_conn *c)
{
    struct load_ctlbuf *ctl = c->aux.ctl;
    int r = 0;
    c->aux.ctl = NULL; /* ours now: on_close may release the connection */
    switch (c->rx_op) {
    case LOAD_WS_PING:
        LOAD_ADD(cl->st->pings, 1);
        /* Once our close is out we send nothing more, not even a pong. */
        if (c->state == LOAD_CS_OPEN)
            r = stage_control(cl, c, LOAD_WS_PONG, ctl ? ctl->buf : NULL, ctl ? ctl->len : 0);
        break;
    case LOAD_WS_PONG: LOAD_ADD(cl->st->pongs_recv, 1); break;
    case LOAD_WS_CLOSE: r = on_close(cl, c, ctl); break;
    default:
        if (!c->rx_fin)
            break;
        c->in_msg = 0;
        if ((c->rx_z || (cl->role == LOAD_ROLE_CONN && cl->o->json)) && whole_message(cl, c) == -1) {
            free(ctl);
            return -1;
        }
        if (cl->role == LOAD_ROLE_SUB)
            r = load_sub_done(cl, c);
        else if (cl->role == LOAD_ROLE_PUB_WS)
            LOAD_ADD(cl->st->pub_echoes, 1);
        else if (c->msg_off != cl->o->size)
            r = fail(cl, c, LOAD_ST_ECHO, LOAD_C_MISMATCH);
        else
            r = echo_done(cl, c);
    }
    free(ctl);
    return r;
}

/* Collects a frame header, possibly across reads; returns bytes used or -1. */
static ssize_t frame_header(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    struct load_ws_frame f;
    enum load_ws_frame_err err;
    size_t room = (size_t)(LOAD_WS_HDR_MAX - c->hdr_len);
    size_t take = n < room ? n : room;
    memcpy(c->hdr + c->hdr_len, p, take);
    int h = load_ws_frame_parse(c->hdr, c->hdr_len + take, &f, &err);
    if (h == 0) {
        c->hdr_len += (uint8_t)take;
        return (ssize_t)take;
    }
    if (h == -1)
        return fail(cl, c, stage_of(c), LOAD_C_FRAME_RSV + (err - LOAD_WS_F_RSV));
    size_t used = (size_t)h - c->hdr_len;
    c->hdr_len = 0;
    if (frame_begin(cl, c, &f) == -1)
        return -1;
    if (f.len == 0 && frame_end(cl, c) == -1)
        return -1;
    return (ssize_t)used;
}

static int frames_input(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (c->rx_left == 0) {
            ssize_t used = frame_header(cl, c, p, n);
            if (used == -1)
                return -1;
            p += used;
            n -= (size_t)used;
        } else {
            size_t take = c->rx_left < n ? (size_t)c->rx_left : n;
            if (frame_payload(cl, c, p, take) == -1)
                return -1;
            c->rx_left -= take;
            p += take;
            n -= take;
            if (c->rx_left == 0 && frame_end(cl, c) == -1)
                return -1;
        }
        if (c->state == LOAD_CS_IDLE)
            return -1;
    }
    return 0;
}

/* The upgrade (or, in --raw, the connect) completed. */
static int opened(struct load_client *cl, struct load_conn *c)
{
    struct load_slot *st = cl->st;
    if (c->state == LOAD_CS_HANDSHAKE) {
        free(c->aux.hs);
        c->aux.hs = NULL;
    }
    leave_state(cl, c);
    LOAD_ADD(st->opened, 1);
    LOAD_ADD(st->open_now, 1);
    load_hist_add(&st->hist[LOAD_H_HANDSHAKE], cl->now - c->t0);
    c->state = LOAD_CS_OPEN;
    c->deadline = 0;
    /* A churn cycle in progress still finishes (its echo, then the close);
     * hold and echo connections that open late close at once. */
    if (cl->phase >= LOAD_PH_CLOSE && cl->o->mode != LOAD_CHURN)
        return load_conn_close(cl, c);
    if (cl->role != LOAD_ROLE_CONN)
        return load_ps_opened(cl, c);
    switch (cl->o->mode) {
    case LOAD_CHURN:
        if (cl->o->handshake_only)
            return load_conn_close(cl, c);
        return stage_msgs(cl, c, 1);
    case LOAD_ECHO:
        if (cl->phase == LOAD_PH_RUN && cl->now < cl->run_end)
            return stage_msgs(cl, c, cl->o->depth);
        return 0;
    default: return 0;
    }
}

/* Reads the upgrade response straight into the handshake buffer, so bytes
 * after it stay in the socket or in that buffer and nothing is lost. */
static int hs_read(struct load_client *cl, struct load_conn *c)
{
    struct load_hs *hs = c->aux.hs;
    ssize_t n = conn_recv(c, hs->buf + hs->len, sizeof(hs->buf) - hs->len);
    if (n == -1)
        return errno == EAGAIN ? 0 : fail_errno(cl, c, errno);
    if (n == 0)
        return fail(cl, c, LOAD_ST_HANDSHAKE, LOAD_C_EOF);
    hs->len += (uint16_t)n;

    int status;
    enum load_ws_hs_err err;
    ssize_t r = load_ws_response(hs->buf, hs->len, hs->accept, &status, &err);
    if (r == 0)
        return hs->len == sizeof(hs->buf) ? fail(cl, c, LOAD_ST_HANDSHAKE, LOAD_C_RESPONSE_TOO_LARGE) : 0;
    if (r == -1 && err == LOAD_WS_HS_STATUS) {
        cl->st->status[status < LOAD_STATUS_MAX ? status : 0]++;
        count_failure(cl, c);
        release(cl, c, 0);
        return -1;
    }
    if (r == -1)
        return fail(cl, c, LOAD_ST_HANDSHAKE,
                    err == LOAD_WS_HS_ACCEPT    ? LOAD_C_BAD_ACCEPT
                    : err == LOAD_WS_HS_UPGRADE ? LOAD_C_BAD_UPGRADE
                                                : LOAD_C_BAD_RESPONSE);
    if (cl->o->deflate && !load_pmd_accepted(hs->buf, (size_t)r))
        return fail(cl, c, LOAD_ST_HANDSHAKE, LOAD_C_BAD_RESPONSE); /* permessage-deflate declined */
    size_t rest = hs->len - (size_t)r;
    memcpy(cl->rbuf, hs->buf + r, rest); /* opened() frees hs */
    if (opened(cl, c) == -1 || c->state == LOAD_CS_IDLE)
        return -1;
    if (rest > 0 && frames_input(cl, c, cl->rbuf, rest) == -1)
        return -1;
    return flush(cl, c);
}

static int on_eof(struct load_client *cl, struct load_conn *c)
{
    if (c->state == LOAD_CS_CLOSE_WAIT) {
        release(cl, c, 1);
        return -1;
    }
    return fail(cl, c, stage_of(c), LOAD_C_EOF);
}

static int on_readable(struct load_client *cl, struct load_conn *c)
{
    if (c->state == LOAD_CS_HANDSHAKE)
        return hs_read(cl, c);
    if (cl->role == LOAD_ROLE_PUB_HTTP)
        return load_pub_http_read(cl, c);
    ssize_t n = conn_recv(c, cl->rbuf, cl->rcap);
    if (n == -1)
        return errno == EAGAIN ? 0 : fail_errno(cl, c, errno);
    if (n == 0)
        return on_eof(cl, c);
    if (cl->role == LOAD_ROLE_SUB)
        cl->now = load_client_clock(); /* delays end when the bytes are in hand */
    int r = cl->o->raw ? raw_input(cl, c, cl->rbuf, (size_t)n) : frames_input(cl, c, cl->rbuf, (size_t)n);
    if (r == -1)
        return -1;
    return flush(cl, c);
}

/* TCP is up: send the upgrade request (or, in --raw, we are open). */
static int connected(struct load_client *cl, struct load_conn *c)
{
    LOAD_ADD(cl->st->connected, 1);
    if (set_events(cl, c, EV_IN) == -1)
        return -1;
    if (cl->o->raw || cl->role == LOAD_ROLE_PUB_HTTP) {
        if (opened(cl, c) == -1)
            return -1;
        return flush(cl, c);
    }
    struct load_hs *hs = malloc(sizeof(*hs));
    if (hs == NULL)
        return fail_errno(cl, c, ENOMEM);
    uint8_t nonce[16];
    char key[LOAD_WS_KEY_LEN + 1];
    uint64_t r0 = load_client_rand(cl), r1 = load_client_rand(cl);
    memcpy(nonce, &r0, 8);
    memcpy(nonce + 8, &r1, 8);
    load_ws_key(nonce, key);
    load_ws_accept(key, LOAD_WS_KEY_LEN, hs->accept);
    hs->len = 0;
    c->aux.hs = hs;
    c->state = LOAD_CS_HANDSHAKE;
    uint8_t *p = reserve(cl, c, 1024);
    char path[sizeof(cl->target->path) + 24];
    int n = load_opts_chan_path(cl->o, cl->target, load_ps_channel(cl, c), path, sizeof(path));
    if (n != -1)
        n = load_ws_request((char *)p, 1024, cl->target->host, path, cl->o->origin, key,
                            cl->o->deflate == 2 ? LOAD_PMD_OFFER_TAKEOVER
                            : cl->o->deflate    ? LOAD_PMD_OFFER
                                                : NULL,
                            cl->o->v1 && cl->role == LOAD_ROLE_SUB ? "wsmill.v1" : NULL);

    if (n == -1)
        return fail_errno(cl, c, ENAMETOOLONG); /* --url/--origin too long to send */
    cl->wlen += (size_t)n;
    return flush(cl, c);
}

/* wss: the TLS handshake, still in the connect stage. */
static void tls_step(struct load_client *cl, struct load_conn *c)
{
    int want_write = 0;
    int r = load_tls_handshake(c->tls, &want_write);
    if (r == 1) {
        connected(cl, c);
        return;
    }
    if (r == -1) {
        fail(cl, c, LOAD_ST_CONNECT, LOAD_C_TLS);
        return;
    }
    set_events(cl, c, want_write ? EV_OUT : EV_IN);
}

static void connect_done(struct load_client *cl, struct load_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (c->tls) {
        tls_step(cl, c);
        return;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err != 0) {
        fail_errno(cl, c, err);
    } else if (cl->target->tls) {
        char sni[sizeof(cl->target->host)];
        snprintf(sni, sizeof sni, "%.*s", (int)strcspn(cl->target->host, ":"), cl->target->host);
        c->tls = load_tls_new(c->fd, sni);
        if (!c->tls)
            fail_errno(cl, c, ENOMEM);
        else
            tls_step(cl, c);
    } else {
        connected(cl, c);
    }
}

/* socket, bind to this connection's source address, non-blocking connect. */
static int open_socket(struct load_client *cl, struct load_conn *c)
{
    const struct load_opts *o = cl->o;
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1)
        return -1;
    /* Let connect pick the port per destination, so each source address
     * gets the whole ephemeral range for this one server port. */
    if (setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) == -1 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        return -1;
    struct sockaddr_in src = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(o->src_base + cl->src_offset + (uint32_t)(c->id / o->per_src)),
    };
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1)
        return -1;
    const struct sockaddr_in *dst = &cl->target->dst;
    if (connect(c->fd, (const struct sockaddr *)dst, sizeof(*dst)) == -1 && errno != EINPROGRESS)
        return -1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        return -1;
    c->events = EV_OUT;
    return 0;
}

void load_conn_start(struct load_client *cl, struct load_conn *c)
{
    struct load_slot *st = cl->st;
    LOAD_ADD(st->attempts, 1);
    LOAD_ADD(st->pending, 1);
    LOAD_ADD(st->active, 1);
    c->state = LOAD_CS_CONNECTING;
    c->cooldown = 0;
    c->t0 = cl->now;
    c->deadline = cl->now + conn_timeout_ns(cl);
    /* Even an immediate connect result waits for EPOLLOUT: one code path. */
    if (open_socket(cl, c) == -1)
        fail_errno(cl, c, errno);
}

void load_conn_event(struct load_client *cl, struct load_conn *c, uint32_t events)
{
    if (c->state == LOAD_CS_IDLE)
        return;
    if (c->state == LOAD_CS_CONNECTING) {
        connect_done(cl, c);
        return;
    }
    if ((events & EPOLLOUT) && c->out_len > 0 && write_out(cl, c) == -1)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(cl, c);
}

void load_conn_check(struct load_client *cl, struct load_conn *c)
{
    if (c->state == LOAD_CS_IDLE)
        return;
    if (c->deadline != 0 && cl->now >= c->deadline) {
        fail(cl, c, stage_of(c), LOAD_C_TIMEOUT);
        return;
    }
    if (cl->role == LOAD_ROLE_PUB_HTTP) {
        load_pub_check(cl, c);
        return;
    }
    if (c->seq_sent != c->seq_recv && cl->now - c->sent_at[c->seq_recv % cl->ring] >= conn_timeout_ns(cl))
        fail(cl, c, LOAD_ST_ECHO, LOAD_C_TIMEOUT);
}

void load_conn_abort(struct load_client *cl, struct load_conn *c)
{
    if (c->state != LOAD_CS_IDLE)
        fail(cl, c, stage_of(c), LOAD_C_ABORTED);
}
