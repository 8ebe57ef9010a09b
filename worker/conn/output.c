/* output.c: the write path. Bytes go straight to the socket; only what the
 * kernel refuses is queued, and the queue is bounded by max_backpressure.
 *
 * Corking: while the worker handles one read of a connection's input
 * (conn.c), what that input produces (echo replies, pongs, a close, an
 * HTTP answer) is gathered in the worker's one cork buffer: small payloads
 * copied into it, large ones referenced (they live in the scratch buffer
 * or in a malloc'd message we adopt) and sent with one sendmsg when the
 * read is handled. Eight pipelined frames cost one send, not eight. */
#include "output.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../shbuf.h"
#include "conn.h"
#include "../transport/transport.h"
#include "pmd.h"

#define FLUSH_IOV     64
#define CORK_COPY_MAX 1024 /* payloads up to this are copied into the cork buffer */

int output_init(struct worker *w)
{
    memset(&w->cork, 0, sizeof(w->cork));
    w->cork.buf = malloc(CORK_BYTES);
    return w->cork.buf ? 0 : -1;
}

ssize_t output_sendv(struct conn *c, const struct iovec *iov, int n)
{
    shm_add(&conn_worker(c)->slot->sends, 1);
    ssize_t r = transport_of(c)->sendv(c, iov, n);
    if (transport_of(c)->pending(c))
        conn_want_write(c, 1); /* it took bytes the socket refused */
    return r;
}

static void chunk_free(struct chunk *ch)
{
    if (ch->shared)
        shbuf_unref((struct shbuf *)(ch->ext - offsetof(struct shbuf, data)));
    else
        free(ch->ext);
    free(ch);
}

void output_clear(struct outq *q)
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

static struct outq *queue_of(const struct conn *c)
{
    if (c->state == CONN_HANDSHAKE || c->state == CONN_DEAD || !c->busy)
        return NULL;
    return &((struct conn_busy *)c->busy)->q;
}

size_t output_queued(const struct conn *c)
{
    const struct outq *q = queue_of(c);
    return q && q->head ? q->bytes : 0;
}

int output_pending(const struct conn *c)
{
    const struct cork *k = &conn_worker(c)->cork;
    return output_queued(c) > 0 || (k->c == c && k->niov > 0) || transport_of(c)->pending(c);
}

void output_overflow_close(struct conn *c, int code, const char *reason)
{
    struct worker *w = conn_worker(c);
    struct outq *q = queue_of(c);
    /* A close frame goes out only at a frame boundary (nothing
     * half-written); otherwise the peer sees the TCP connection end. The
     * cork holds whole frames only, so forgetting it keeps the boundary. */
    int clean = !q || !q->head || q->head->off == 0;
    log_info("fd %d: %zu bytes queued, max_backpressure %lld: closing with %d (%s)", conn_fd(c),
             q ? q->bytes : 0, (long long)w->cfg.max_backpressure, code, reason);
    output_discard(c);
    if (q)
        output_clear(q);
    if (clean) {
        uint8_t frame[2 + WS_MAX_CONTROL_PAYLOAD];
        size_t n = ws_build_close(frame, code, reason);
        struct iovec iov = {frame, n};
        (void)output_sendv(c, &iov, 1); /* best effort: the peer is not reading */
    }
    conn_drop(c, code);
}

static void queue_append(struct outq *q, struct chunk *ch)
{
    if (q->tail)
        q->tail->next = ch;
    else
        q->head = ch;
    q->tail = ch;
    q->bytes += (size_t)ch->len + ch->ext_len - ch->off;
}

int output_queue_shared(struct conn *c, struct shbuf **bufs, int n, size_t skip)
{
    struct outq *q = conn_busy(c) ? queue_of(c) : NULL;
    for (int i = 0; i < n; i++) {
        if (skip >= bufs[i]->len) {
            skip -= bufs[i]->len;
            continue;
        }
        struct chunk *ch = q ? malloc(sizeof(*ch)) : NULL;
        if (!ch) {
            conn_drop(c, WS_CLOSE_INTERNAL);
            return -1;
        }
        *ch =
            (struct chunk){.off = (uint32_t)skip, .ext = bufs[i]->data, .ext_len = bufs[i]->len, .shared = 1};
        bufs[i]->refs++;
        skip = 0;
        queue_append(q, ch);
    }
    conn_want_write(c, 1);
    return 0;
}

static void free_owned(const struct iovec *iov, const uint8_t *owned, int n)
{
    for (int i = 0; i < n; i++)
        if (owned && owned[i])
            free(iov[i].iov_base);
}

static int is_owned(const uint8_t *owned, int i)
{
    return owned && owned[i];
}

/* Queues iov[0..n), of which the first `skip` bytes of iov[0] were already
 * written: each run of borrowed entries is copied into one chunk, and an
 * owned payload (owned[i]) that ends a run is adopted as that chunk's
 * external part, never copied. */
static int enqueue(struct conn *c, const struct iovec *iov, int n, const uint8_t *owned, size_t skip)
{
    struct outq *q = conn_busy(c) ? queue_of(c) : NULL;
    int i = 0;
    while (i < n && q) {
        int j = i;
        size_t inl = 0;
        for (; j < n && !is_owned(owned, j); j++)
            inl += iov[j].iov_len - (j == 0 ? skip : 0);
        struct chunk *ch = malloc(sizeof(*ch) + inl);
        if (!ch)
            break;
        *ch = (struct chunk){.len = (uint32_t)inl};
        size_t pos = 0;
        for (int k = i; k < j; k++) {
            size_t off = k == 0 ? skip : 0;
            memcpy(ch->data + pos, (const uint8_t *)iov[k].iov_base + off, iov[k].iov_len - off);
            pos += iov[k].iov_len - off;
        }
        if (j < n) { /* the owned payload that ends the run */
            ch->ext = iov[j].iov_base;
            ch->ext_len = (uint32_t)iov[j].iov_len;
            ch->off = (uint32_t)(j == 0 ? skip : 0);
            j++;
        }
        queue_append(q, ch);
        i = j;
    }
    if (i < n || !q) {
        free_owned(iov + i, owned ? owned + i : NULL, n - i);
        conn_drop(c, WS_CLOSE_INTERNAL);
        return -1;
    }
    if ((int64_t)q->bytes > conn_worker(c)->cfg.max_backpressure) {
        shm_add(&conn_worker(c)->slot->backpressure_closes, 1);
        output_overflow_close(c, WS_CLOSE_POLICY, "max_backpressure exceeded");
        return -1;
    }
    conn_want_write(c, 1);
    return 0;
}

/* Writes iov directly when nothing is queued, queueing what is refused.
 * owned[i] (owned may be NULL) marks malloc'd payloads, freed or adopted. */
static int send_iov(struct conn *c, struct iovec *iov, int n, const uint8_t *owned)
{
    size_t total = 0, sent = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!output_queued(c)) {
        ssize_t wr = output_sendv(c, iov, n);
        if (wr == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                free_owned(iov, owned, n);
                conn_drop(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
                return -1;
            }
            wr = 0;
        }
        sent = (size_t)wr;
        if (sent == total) {
            free_owned(iov, owned, n);
            return 0;
        }
    }
    /* Whole borrowed entries already sent need no copy; owned ones are freed. */
    int i = 0;
    while (i < n && sent >= iov[i].iov_len) {
        sent -= iov[i].iov_len;
        if (owned && owned[i])
            free(iov[i].iov_base);
        i++;
    }
    return enqueue(c, iov + i, n - i, owned ? owned + i : NULL, sent);
}

/* ---- the cork --------------------------------------------------------- */

void output_cork(struct conn *c)
{
    struct cork *k = &conn_worker(c)->cork;
    k->c = c;
}

static void cork_reset(struct cork *k)
{
    k->niov = 0;
    k->bytes = k->buf_len = 0;
}

/* Sends what is gathered (c stays corked). Returns 0, or -1 when c failed. */
static int cork_send(struct conn *c)
{
    struct cork *k = &conn_worker(c)->cork;
    if (!k->niov)
        return 0;
    int n = k->niov;
    struct iovec iov[CORK_IOV];
    uint8_t owned[CORK_IOV];
    memcpy(iov, k->iov, sizeof(iov[0]) * (size_t)n);
    memcpy(owned, k->owned, (size_t)n);
    cork_reset(k);
    return send_iov(c, iov, n, owned);
}

void output_settle(struct conn *c)
{
    if (conn_worker(c)->cork.c == c)
        cork_send(c);
}

void output_discard(struct conn *c)
{
    struct cork *k = &conn_worker(c)->cork;
    if (k->c != c)
        return;
    free_owned(k->iov, k->owned, k->niov);
    cork_reset(k);
}

void output_uncork(struct conn *c)
{
    struct cork *k = &conn_worker(c)->cork;
    if (k->c != c)
        return;
    if (!conn_gone(c) && cork_send(c) == 0)
        conn_output_done(c);
    output_discard(c);
    k->c = NULL;
}

/* Appends bytes to the cork buffer, extending the last iovec when it is
 * the buffer's tail. The caller checked the room. */
static void cork_copy(struct cork *k, const void *p, size_t n)
{
    uint8_t *at = k->buf + k->buf_len;
    memcpy(at, p, n);
    k->buf_len += n;
    k->bytes += n;
    struct iovec *last = k->niov ? &k->iov[k->niov - 1] : NULL;
    if (last && !k->owned[k->niov - 1] && (uint8_t *)last->iov_base + last->iov_len == at) {
        last->iov_len += n;
        return;
    }
    k->owned[k->niov] = 0;
    k->iov[k->niov++] = (struct iovec){at, n};
}

/* Gathers one frame for the corked c. Returns 1 when gathered, 0 when it
 * must go the direct way (a large borrowed payload that may not outlive
 * this call), -1 when c failed while making room. */
static int cork_frame(struct conn *c, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t len,
                      uint8_t *owned)
{
    struct worker *w = conn_worker(c);
    struct cork *k = &w->cork;
    int copy = len <= CORK_COPY_MAX;
    int in_scratch = payload >= w->scratch && payload + len <= w->scratch + w->scratch_size;
    if (!copy && !owned && !in_scratch)
        return 0;
    size_t need = hl + (copy ? len : 0);
    if (k->buf_len + need > CORK_BYTES || k->niov + 2 > CORK_IOV) {
        if (cork_send(c) == -1)
            return -1;
        if (need > CORK_BYTES)
            return 0;
    }
    cork_copy(k, hdr, hl);
    if (copy) {
        if (len)
            cork_copy(k, payload, len);
        free(owned);
    } else {
        k->owned[k->niov] = owned != NULL;
        k->iov[k->niov++] = (struct iovec){(void *)payload, len};
        k->bytes += len;
    }
    return 1;
}

int output_frame(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, uint8_t *owned)
{
    struct worker *w = conn_worker(c);
    uint8_t hdr[WS_MAX_HEADER];
    if (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) {
        shm_add(&w->slot->messages_out, 1);
        shm_add(&w->slot->bytes_out, len);
    }
    size_t zlen;
    uint8_t *z = c->flags & CF_DEFLATE ? pmd_compress(c, opcode, payload, len, &zlen) : NULL;
    if (z) { /* permessage-deflate: the compressed payload replaces it */
        free(owned);
        owned = z;
        payload = z;
        len = zlen;
    }
    size_t hl = ws_build_header(hdr, opcode, 1, len);
    if (z)
        hdr[0] |= 0x40; /* RSV1: compressed */
    if (!len && owned) {
        free(owned);
        owned = NULL;
    }
    if (w->cork.c == c) {
        int rc = cork_frame(c, hdr, hl, payload, len, owned);
        if (rc)
            return rc == 1 ? 0 : -1;
        if (cork_send(c) == -1) { /* what was gathered goes first */
            free(owned);
            return -1;
        }
    }
    struct iovec iov[2] = {{hdr, hl}, {(void *)payload, len}};
    uint8_t own[2] = {0, owned != NULL};
    return send_iov(c, iov, len ? 2 : 1, own);
}

int output_raw(struct conn *c, const void *data, size_t len)
{
    struct cork *k = &conn_worker(c)->cork;
    if (k->c == c && len <= CORK_BYTES) {
        if ((k->buf_len + len > CORK_BYTES || k->niov + 1 > CORK_IOV) && cork_send(c) == -1)
            return -1;
        cork_copy(k, data, len);
        return 0;
    }
    if (k->c == c && cork_send(c) == -1)
        return -1;
    struct iovec iov = {(void *)data, len};
    return send_iov(c, &iov, 1, NULL);
}

int output_flush(struct conn *c)
{
    struct outq *q = queue_of(c);
    /* What the transport took but could not send goes before the queue. */
    if (transport_of(c)->flush(c) == -1) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        conn_drop(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
        return -1;
    }
    while (q && q->head) {
        struct iovec iov[FLUSH_IOV];
        int n = 0;
        for (struct chunk *ch = q->head; ch && n + 2 <= FLUSH_IOV; ch = ch->next) {
            size_t off = ch->off;
            if (off < ch->len)
                iov[n++] = (struct iovec){ch->data + off, ch->len - off};
            if (ch->ext_len) {
                size_t eoff = off > ch->len ? off - ch->len : 0;
                iov[n++] = (struct iovec){ch->ext + eoff, ch->ext_len - eoff};
            }
        }
        ssize_t wr = output_sendv(c, iov, n);
        if (wr == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            conn_drop(c, c->state == CONN_OPEN ? WS_CLOSE_ABNORMAL : 0);
            return -1;
        }
        size_t left = (size_t)wr;
        q->bytes -= left;
        while (left && q->head) {
            struct chunk *ch = q->head;
            size_t rest = (size_t)ch->len + ch->ext_len - ch->off;
            if (left < rest) {
                ch->off += (uint32_t)left;
                break;
            }
            left -= rest;
            q->head = ch->next;
            if (!q->head)
                q->tail = NULL;
            chunk_free(ch);
        }
        if (q->head)
            return 0; /* the socket is full; EV_WRITE will call again */
    }
    if (transport_of(c)->pending(c))
        return 0;
    conn_want_write(c, 0);
    conn_maybe_idle(c);
    return 0;
}
