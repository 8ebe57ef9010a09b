/* frames.c: RFC 6455 frames of an open connection. Bytes arrive in the
 * worker's scratch buffer; a frame that is whole there is handled in place
 * (the common case, and no allocation); otherwise only the unfinished
 * header bytes, a control payload or the message so far are kept, in the
 * connection's busy state. */
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../../common/utf8.h"
#include "conn.h"
#include "endpoint.h"
#include "frames.h"
#include "limits.h"
#include "output.h"
#include "pmd.h"

/* Charges a frame's payload (at its header) or a message (when complete)
 * to the connection's rate buckets. Returns 0 or the close code. */
static int rate_check(struct conn *c, uint64_t msgs, uint64_t bytes)
{
    struct worker *w = conn_worker(c);
    switch (limits_rate_take(c, msgs, bytes)) {
    case 1: shm_add(&w->slot->limit_message_rate, 1); return WS_CLOSE_POLICY;
    case 2: shm_add(&w->slot->limit_byte_rate, 1); return WS_CLOSE_POLICY;
    default: return 0;
    }
}

/* A complete message goes to the connection's endpoint (echo, channels).
 * owned, if not NULL, is the malloc'd buffer behind payload. */
static void on_message(struct conn *c, unsigned opcode, uint8_t *payload, size_t len, uint8_t *owned)
{
    struct worker *w = conn_worker(c);
    shm_add(&w->slot->messages_in, 1);
    shm_add(&w->slot->bytes_in, len);
    if (c->state == CONN_OPEN && rate_check(c, 1, 0)) {
        free(owned);
        conn_fail(c, WS_CLOSE_POLICY, "rate limit: more than max_messages_per_second");
        return;
    }
    if (c->state != CONN_OPEN) { /* data after our close frame is ignored */
        free(owned);
        return;
    }
    const struct endpoint *ep = endpoint_of(w, c->endpoint);
    if (!ep || !ep->message) {
        free(owned);
        return;
    }
    ep->message(c, opcode, payload, len, owned);
}

static void on_control(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len)
{
    if (opcode == WS_OP_PING) {
        if (c->state == CONN_OPEN)
            output_frame(c, WS_OP_PONG, payload, len, NULL);
    } else if (opcode == WS_OP_CLOSE) {
        int code;
        int rc = ws_parse_close(payload, len, &code);
        if (rc < 0) {
            conn_fail(c, -rc,
                      rc == -WS_CLOSE_INVALID_DATA ? "close reason is not valid UTF-8"
                                                   : "invalid close frame");
            return;
        }
        conn_peer_closed(c, code);
    }
    /* PONG: its arrival already counted as traffic. */
}

/* Checks a parsed header against the connection's message state. Returns 0
 * or the close code to fail with. */
static int check_sequence(struct worker *w, struct conn_busy *b, const struct ws_header *h)
{
    unsigned in_msg = b ? b->msg_opcode : 0;
    if (ws_is_control(h->opcode))
        return 0;
    if (h->opcode == WS_OP_CONT && !in_msg)
        return WS_CLOSE_PROTOCOL; /* continuation with nothing to continue */
    if (h->opcode != WS_OP_CONT && in_msg)
        return WS_CLOSE_PROTOCOL; /* new message inside a fragmented one */
    if (h->length > (uint64_t)w->cfg.max_frame_size) {
        shm_add(&w->slot->limit_frame_size, 1);
        return WS_CLOSE_TOO_BIG;
    }
    uint64_t so_far = b ? b->msg_len : 0;
    if (so_far + h->length > (uint64_t)w->cfg.max_message_size) {
        shm_add(&w->slot->limit_message_size, 1);
        return WS_CLOSE_TOO_BIG;
    }
    return 0;
}

/* Appends payload bytes to the message being assembled. */
static int msg_append(struct conn_busy *b, const uint8_t *p, size_t n, uint64_t expect)
{
    /* An empty frame (or fragment) before any payload: b->msg is still
     * NULL, and memcpy(NULL, p, 0) is undefined (UBSan aborts on it). */
    if (n == 0)
        return 0;
    if (b->msg_len + n > b->msg_cap) {
        /* Grow to what this frame will need, at least doubling. */
        size_t want = b->msg_len + (size_t)expect;
        size_t cap = b->msg_cap ? b->msg_cap * 2 : 256;
        if (cap < want)
            cap = want;
        uint8_t *m = realloc(b->msg, cap);
        if (!m)
            return -1;
        b->msg = m;
        b->msg_cap = cap;
    }
    memcpy(b->msg + b->msg_len, p, n);
    b->msg_len += n;
    return 0;
}

/* Counts a header refused for its length against the limit that refused it
 * (the smaller of max_frame_size and max_message_size). Returns rc. */
static long too_big(struct worker *w, int rc)
{
    if (rc == -WS_CLOSE_TOO_BIG)
        shm_add(w->cfg.max_frame_size <= w->cfg.max_message_size ? &w->slot->limit_frame_size
                                                                 : &w->slot->limit_message_size,
                1);
    return rc;
}

/* Gets the next header, either straight from data or by completing the
 * partial one kept in busy. Returns bytes of data consumed (>= 0) with
 * *ok = 1 when *h is complete, or -code on a protocol error. */
static long next_header(struct conn *c, const uint8_t *data, size_t len, struct ws_header *h, int *ok)
{
    struct worker *w = conn_worker(c);
    struct conn_busy *b = c->busy;
    /* The smaller limit, so a huge length field fails on its header bytes
     * alone; too_big() says which limit it was. */
    uint64_t max = (uint64_t)(w->cfg.max_frame_size < w->cfg.max_message_size ? w->cfg.max_frame_size
                                                                              : w->cfg.max_message_size);
    unsigned rsv = c->flags & CF_DEFLATE ? WS_RSV1 : 0; /* permessage-deflate's "compressed" */
    *ok = 0;
    if (!b || !b->hdr_len) {
        int rc = ws_parse_header_ext(data, len, 1, max, rsv, h);
        if (rc < 0)
            return too_big(w, rc);
        if (rc > 0) {
            *ok = 1;
            return rc;
        }
        if (!(b = conn_busy(c)))
            return -WS_CLOSE_INTERNAL;
        memcpy(b->hdr, data, len); /* len < WS_MAX_HEADER here */
        b->hdr_len = (uint8_t)len;
        return (long)len;
    }
    size_t take = WS_MAX_HEADER - b->hdr_len;
    if (take > len)
        take = len;
    memcpy(b->hdr + b->hdr_len, data, take);
    int rc = ws_parse_header_ext(b->hdr, b->hdr_len + take, 1, max, rsv, h);
    if (rc < 0)
        return too_big(w, rc);
    if (rc == 0) {
        b->hdr_len = (uint8_t)(b->hdr_len + take);
        return (long)take;
    }
    long used = rc - b->hdr_len; /* bytes of data that belonged to the header */
    b->hdr_len = 0;
    *ok = 1;
    return used;
}

/* Consumes payload bytes of the current frame. Returns 0, or -code. */
static int frame_payload(struct conn *c, struct conn_busy *b, uint8_t *p, size_t n)
{
    struct ws_header *h = &b->cur;
    ws_unmask(p, n, h->mask, b->cur_done);
    if (ws_is_control(h->opcode)) {
        memcpy(b->ctl + b->cur_done, p, n);
    } else {
        if (b->msg_opcode == WS_OP_TEXT && !b->msg_deflated) {
            b->utf8 = utf8_feed(b->utf8, p, n);
            if (b->utf8 == UTF8_REJECT)
                return -WS_CLOSE_INVALID_DATA; /* fail fast, mid-frame */
        }
        if (msg_append(b, p, n, h->length - b->cur_done))
            return -WS_CLOSE_INTERNAL;
    }
    b->cur_done += n;
    return 0;
}

/* A compressed message is whole: its plaintext (in the worker's inflate
 * buffer, not owned) goes on like any message. Returns 0 or -code; fails c
 * itself when the message does not inflate, to say why. */
static int deflated_message(struct conn *c, unsigned op, const uint8_t *z, size_t zlen)
{
    const uint8_t *p;
    size_t n;
    int rc = pmd_inflate(c, z, zlen, &p, &n);
    if (rc && c->state != CONN_OPEN)
        return -rc; /* while closing: hang up */
    if (rc) {
        conn_fail(c, rc,
                  rc == WS_CLOSE_INVALID_DATA ? "compressed message is not valid deflate data"
                  : rc == WS_CLOSE_TOO_BIG    ? "message inflates past max_message_size"
                                              : "internal error (out of memory)");
        return 0;
    }
    if (op == WS_OP_TEXT && !utf8_valid(p, n))
        return -WS_CLOSE_INVALID_DATA;
    on_message(c, op, (uint8_t *)p, n, NULL);
    pmd_trim(conn_worker(c)); /* a large message's buffer goes back now it is handled */
    return 0;
}

/* The current frame's payload is all in: act on it. */
static int frame_complete(struct conn *c, struct conn_busy *b)
{
    struct ws_header *h = &b->cur;
    b->in_frame = 0;
    if (ws_is_control(h->opcode)) {
        on_control(c, h->opcode, b->ctl, (size_t)h->length);
        return 0;
    }
    if (!h->fin)
        return 0;
    if (b->msg_opcode == WS_OP_TEXT && b->utf8 != UTF8_ACCEPT)
        return -WS_CLOSE_INVALID_DATA; /* ends inside a code point */
    unsigned op = b->msg_opcode;
    uint8_t *msg = b->msg;
    size_t len = b->msg_len;
    int deflated = b->msg_deflated;
    b->msg = NULL;
    b->msg_len = b->msg_cap = 0;
    b->msg_opcode = 0;
    b->msg_deflated = 0;
    b->utf8 = UTF8_ACCEPT;
    if (deflated) {
        int rc = deflated_message(c, op, msg, len);
        free(msg);
        return rc;
    }
    on_message(c, op, msg, len, msg);
    return 0;
}

/* Fast path: a whole frame in data and no message in progress. */
static int frame_inline(struct conn *c, struct ws_header *h, uint8_t *p)
{
    size_t n = (size_t)h->length;
    ws_unmask(p, n, h->mask, 0);
    if (ws_is_control(h->opcode)) {
        on_control(c, h->opcode, p, n);
        return 0;
    }
    if (h->rsv & WS_RSV1)
        return deflated_message(c, h->opcode, p, n);
    if (h->opcode == WS_OP_TEXT && !utf8_valid(p, n))
        return -WS_CLOSE_INVALID_DATA;
    on_message(c, h->opcode, p, n, NULL);
    return 0;
}

static const char *close_reason(int code)
{
    switch (code) {
    case WS_CLOSE_PROTOCOL: return "protocol error";
    case WS_CLOSE_INVALID_DATA: return "invalid UTF-8 in text message";
    case WS_CLOSE_TOO_BIG: return "frame or message too big (max_frame_size, max_message_size)";
    case WS_CLOSE_INTERNAL: return "internal error (out of memory)";
    default: return "internal error";
    }
}

void frames_feed(struct conn *c, uint8_t *data, size_t len)
{
    size_t pos = 0;
    int rc = 0;
    while (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
        struct conn_busy *b = c->busy;
        if (!b || !b->in_frame) {
            if (pos == len)
                break;
            struct ws_header h;
            int ok;
            long used = next_header(c, data + pos, len - pos, &h, &ok);
            if (used < 0) {
                rc = (int)used;
                break;
            }
            pos += (size_t)used;
            if (!ok)
                break; /* partial header kept */
            if ((rc = -check_sequence(conn_worker(c), c->busy, &h)))
                break;
            if (c->state == CONN_OPEN && rate_check(c, 0, h.length)) {
                conn_fail(c, WS_CLOSE_POLICY, "rate limit: more than max_bytes_per_second");
                return;
            }
            b = c->busy;
            int in_msg = b && b->msg_opcode;
            if ((ws_is_control(h.opcode) || !in_msg) && h.fin && len - pos >= h.length) {
                /* Whole frame here, and not a fragment of something longer:
                 * handle it in place, no copy. */
                if ((rc = frame_inline(c, &h, data + pos)))
                    break;
                pos += (size_t)h.length;
                continue;
            }
            if (!(b = conn_busy(c))) {
                rc = -WS_CLOSE_INTERNAL;
                break;
            }
            b->cur = h;
            b->cur_done = 0;
            b->in_frame = 1;
            if (!ws_is_control(h.opcode) && h.opcode != WS_OP_CONT) {
                b->msg_opcode = h.opcode;
                b->msg_deflated = (h.rsv & WS_RSV1) != 0;
                b->utf8 = UTF8_ACCEPT;
            }
        }
        size_t n = len - pos;
        if (n > b->cur.length - b->cur_done)
            n = (size_t)(b->cur.length - b->cur_done);
        if ((rc = frame_payload(c, b, data + pos, n)))
            break;
        pos += n;
        if (b->cur_done < b->cur.length)
            break; /* wait for more */
        if ((rc = frame_complete(c, b)))
            break;
    }
    if (rc < 0 && !conn_gone(c)) {
        if (c->state == CONN_OPEN)
            conn_fail(c, -rc, close_reason(-rc));
        else
            conn_drop(c, 0); /* a protocol error while closing: just hang up */
        return;
    }
    if (!conn_gone(c))
        conn_maybe_idle(c);
}
