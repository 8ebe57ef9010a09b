/* outq.c: the write path. Bytes go straight to the socket; only what the
 * kernel refuses is queued, and the queue is bounded by max_backpressure. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/log.h"
#include "internal.h"

#define FLUSH_IOV 64

static void chunk_free(struct chunk *ch)
{
    if (ch->shared)
        shbuf_unref(container_of(ch->ext, struct shbuf, data));
    else
        free(ch->ext);
    free(ch);
}

void outq_clear(struct outq *q)
{
    struct chunk *ch = q->head;
    while (ch) {
        struct chunk *next = ch->next;
        chunk_free(ch);
        ch = next;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static size_t chunk_total(const struct chunk *ch)
{
    return (size_t)ch->len + ch->ext_len;
}

size_t conn_queued(const struct conn *c)
{
    return conn_has_output(c) ? ((struct conn_busy *)c->busy)->q.bytes : 0;
}

/* Over a bound: drop the queue and close. A close frame goes out only if
 * the stream is at a frame boundary (nothing half-written); otherwise the
 * peer sees the TCP connection end. */
void conn_overflow_close(struct conn *c, int code, const char *reason)
{
    struct worker *w = conn_worker(c);
    struct conn_busy *b = c->busy;
    int clean = !b || !b->q.head || b->q.head->off == 0;
    log_info("fd %d: %zu bytes queued, max_backpressure %lld: closing with %d (%s)", conn_fd(c),
             b ? b->q.bytes : 0, (long long)w->cfg.max_backpressure, code, reason);
    if (b)
        outq_clear(&b->q);
    if (clean) {
        uint8_t frame[2 + WS_MAX_CONTROL_PAYLOAD];
        size_t n = ws_build_close(frame, code, reason);
        ssize_t wr = write(conn_fd(c), frame, n);
        (void)wr; /* best effort: the peer is not reading */
    }
    conn_destroy(c, code);
}

static void backpressure_close(struct conn *c)
{
    shm_add(&conn_worker(c)->slot->backpressure_closes, 1);
    conn_overflow_close(c, WS_CLOSE_POLICY, "max_backpressure exceeded");
}

static void queue_append(struct conn_busy *b, struct chunk *ch)
{
    if (b->q.tail)
        b->q.tail->next = ch;
    else
        b->q.head = ch;
    b->q.tail = ch;
    b->q.bytes += (size_t)ch->len + ch->ext_len - ch->off;
}

int conn_queue_shared(struct conn *c, struct shbuf **bufs, int n, size_t skip)
{
    struct conn_busy *b = conn_busy(c);
    for (int i = 0; i < n; i++) {
        if (skip >= bufs[i]->len) {
            skip -= bufs[i]->len;
            continue;
        }
        struct chunk *ch = b ? malloc(sizeof(*ch)) : NULL;
        if (!ch) {
            conn_destroy(c, WS_CLOSE_INTERNAL);
            return -1;
        }
        ch->next = NULL;
        ch->len = 0;
        ch->off = (uint32_t)skip;
        ch->ext = bufs[i]->data;
        ch->ext_len = bufs[i]->len;
        ch->shared = 1;
        bufs[i]->refs++;
        skip = 0;
        queue_append(b, ch);
    }
    conn_want_write(c, 1);
    return 0;
}

/* Queues iov[0..n) minus the first `skip` bytes (already written). owned
 * (may be NULL) is the malloc'd buffer behind the last iov entry: it is
 * adopted, not copied, so a large echoed message is never duplicated. */
static int enqueue(struct conn *c, const struct iovec *iov, int n, size_t skip, uint8_t *owned)
{
    struct conn_busy *b = conn_busy(c);
    int ninline = owned ? n - 1 : n;
    size_t inline_len = 0;
    for (int i = 0; i < ninline; i++)
        inline_len += iov[i].iov_len;
    size_t from = skip < inline_len ? skip : inline_len;
    struct chunk *ch = b ? malloc(sizeof(*ch) + inline_len - from) : NULL;
    if (!ch) {
        free(owned);
        conn_destroy(c, WS_CLOSE_INTERNAL);
        return -1;
    }
    size_t pos = 0, at = 0;
    for (int i = 0; i < ninline; i++) {
        size_t l = iov[i].iov_len;
        if (at + l > from) {
            size_t off = from > at ? from - at : 0;
            memcpy(ch->data + pos, (const uint8_t *)iov[i].iov_base + off, l - off);
            pos += l - off;
        }
        at += l;
    }
    ch->next = NULL;
    ch->len = (uint32_t)pos;
    ch->ext = owned;
    ch->ext_len = owned ? (uint32_t)iov[n - 1].iov_len : 0;
    ch->shared = 0;
    /* With no inline bytes left, off may point into ext. */
    ch->off = (uint32_t)(skip > inline_len ? skip - inline_len : 0);
    queue_append(b, ch);
    if ((int64_t)b->q.bytes > conn_worker(c)->cfg.max_backpressure) {
        backpressure_close(c);
        return -1;
    }
    conn_want_write(c, 1);
    return 0;
}

/* Writes iov directly when nothing is queued, queueing what is refused. */
static int send_iov(struct conn *c, struct iovec *iov, int n, uint8_t *owned)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t sent = 0;
    if (!conn_has_output(c)) {
        ssize_t wr = conn_sendv(c, iov, n);
        if (wr == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                free(owned);
                conn_destroy(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
                return -1;
            }
            wr = 0;
        }
        sent = (size_t)wr;
        if (sent == total) {
            free(owned);
            return 0;
        }
    }
    return enqueue(c, iov, n, sent, owned);
}

int conn_send_frame(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, uint8_t *owned)
{
    struct worker *w = conn_worker(c);
    uint8_t hdr[WS_MAX_HEADER];
    struct iovec iov[2] = {{hdr, ws_build_header(hdr, opcode, 1, len)}, {(void *)payload, len}};
    if (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) {
        shm_add(&w->slot->messages_out, 1);
        shm_add(&w->slot->bytes_out, len);
    }
    return send_iov(c, iov, len ? 2 : 1, len ? owned : (free(owned), NULL));
}

int conn_send_raw(struct conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return send_iov(c, &iov, 1, NULL);
}

int conn_flush(struct conn *c)
{
    struct conn_busy *b = c->busy;
    while (b && b->q.head) {
        struct iovec iov[FLUSH_IOV];
        int n = 0;
        for (struct chunk *ch = b->q.head; ch && n + 2 <= FLUSH_IOV; ch = ch->next) {
            size_t off = ch->off;
            if (off < ch->len)
                iov[n++] = (struct iovec){ch->data + off, ch->len - off};
            if (ch->ext_len) {
                size_t eoff = off > ch->len ? off - ch->len : 0;
                iov[n++] = (struct iovec){ch->ext + eoff, ch->ext_len - eoff};
            }
        }
        ssize_t wr = conn_sendv(c, iov, n);
        if (wr == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            conn_destroy(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return -1;
        }
        size_t left = (size_t)wr;
        b->q.bytes -= left;
        while (left && b->q.head) {
            struct chunk *ch = b->q.head;
            size_t rest = chunk_total(ch) - ch->off;
            if (left < rest) {
                ch->off += (uint32_t)left;
                left = 0;
                break;
            }
            left -= rest;
            b->q.head = ch->next;
            if (!b->q.head)
                b->q.tail = NULL;
            chunk_free(ch);
        }
        if (b->q.head)
            return 0; /* the socket is full; EV_WRITE will call again */
    }
    conn_want_write(c, 0);
    conn_maybe_idle(c);
    return 0;
}
