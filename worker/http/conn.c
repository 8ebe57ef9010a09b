/* conn.c: an HTTP connection's life: reading, feeding the request parser,
 * writing what the routes answered, keep-alive, timeouts and closing. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/log.h"
#include "http.h"

#define HC_READ_SIZE        (64 * 1024)
#define HC_READS_PER_WAKEUP 4
#define HC_IDLE_S           60.0 /* keep-alive connection without a request */
#define HC_LINGER_S         5.0  /* after our FIN, for the peer to hang up */

static void io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void set_timer(struct http_conn *hc, double seconds)
{
    struct ev_loop *loop = hc->svc->w->loop;
    ev_timer_stop(loop, &hc->timer);
    ev_timer_set(&hc->timer, seconds, 0);
    ev_timer_start(loop, &hc->timer);
}

static void set_events(struct http_conn *hc, int events)
{
    struct ev_loop *loop = hc->svc->w->loop;
    if ((hc->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&hc->io))
        return;
    ev_io_stop(loop, &hc->io);
    ev_io_set(&hc->io, hc->io.fd, events);
    if (events)
        ev_io_start(loop, &hc->io);
}

void http_conn_close(struct http_conn *hc)
{
    struct ev_loop *loop = hc->svc->w->loop;
    http_wait_forget(hc);
    free(hc->held);
    if (hc->state == HC_STREAM)
        stream_end(hc);
    ev_io_stop(loop, &hc->io);
    ev_timer_stop(loop, &hc->timer);
    if (close(hc->io.fd) == -1)
        log_debug("close(%d) of an HTTP connection failed: %s", hc->io.fd, strerror(errno));
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        hc->svc->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    http_request_reset_body(&hc->req);
    hbuf_free(&hc->out);
    free(hc);
}

void http_conn_out(struct http_conn *hc, const void *data, size_t n)
{
    if (hc->broken || !n)
        return; /* n = 0: data may be NULL (an empty hbuf) */
    hbuf_put(&hc->out, data, n);
    if (hc->out.failed)
        hc->broken = 1; /* only this connection suffers */
}

/* Writes what is queued. Returns 0, or -1 when the socket failed. */
static int flush(struct http_conn *hc)
{
    while (hc->out_off < hc->out.len) {
        ssize_t n = send(hc->io.fd, hc->out.p + hc->out_off, hc->out.len - hc->out_off, MSG_NOSIGNAL);
        shm_add(&hc->svc->w->slot->http_sends, 1);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            log_debug("send(%d) of an HTTP response failed: %s", hc->io.fd, strerror(errno));
            return -1;
        }
        hc->out_off += (size_t)n;
    }
    /* Nothing pending: an idle connection keeps no buffer. */
    hbuf_free(&hc->out);
    hc->out_off = 0;
    return 0;
}

int http_conn_settle(struct http_conn *hc)
{
    if (hc->broken || flush(hc) == -1) {
        http_conn_close(hc);
        return -1;
    }
    int pending = hc->out.len > 0;
    if (!pending && hc->waits) { /* answers still to come: then close or read on */
        set_events(hc, hc->closing || hc->peer_eof || hc->nwaits >= HTTP_WAITS_MAX ? 0 : EV_READ);
        return 0;
    }
    if (!pending && hc->closing && hc->state != HC_LINGER) {
        /* Closing with unread input would make the kernel send RST, which
         * can destroy the answer before the peer reads it: send FIN and
         * discard until the peer hangs up. */
        if (hc->peer_eof) {
            http_conn_close(hc);
            return -1;
        }
        if (hc->state == HC_STREAM)
            stream_end(hc);
        if (shutdown(hc->io.fd, SHUT_WR) == -1)
            log_debug("shutdown(%d, SHUT_WR) failed: %s", hc->io.fd, strerror(errno));
        hc->state = HC_LINGER;
        set_timer(hc, HC_LINGER_S);
    }
    if (!pending && hc->peer_eof) {
        http_conn_close(hc);
        return -1;
    }
    /* No reading while an answer waits: that bounds the output buffer. A
     * stream reads only to see the peer go. */
    int events = pending && hc->state != HC_STREAM       ? EV_WRITE
                 : pending                               ? EV_WRITE | EV_READ
                 : hc->closing && hc->state != HC_LINGER ? 0
                                                         : EV_READ;
    set_events(hc, events);
    return 0;
}

void http_conn_new(struct http_service *svc, int fd)
{
    int one = 1;
    /* Answers are single small writes (100 Continue, then the response):
     * Nagle would hold the second one for a delayed ACK. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd, strerror(errno));
    struct http_conn *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        log_warn("out of memory for an HTTP connection; closing fd %d", fd);
        close(fd);
        return;
    }
    hc->svc = svc;
    http_request_init(&hc->req);
    ev_io_init(&hc->io, io_cb, fd, EV_READ);
    ev_io_start(svc->w->loop, &hc->io);
    ev_timer_init(&hc->timer, timer_cb, HC_IDLE_S, 0);
    ev_timer_start(svc->w->loop, &hc->timer);
    hc->next = svc->conns;
    if (hc->next)
        hc->next->prev = hc;
    svc->conns = hc;
}

/* The service stopped before hc's first request came: wait for it no
 * longer than a request may take, then close (timer_cb). */
void http_conn_await_first(struct http_conn *hc)
{
    set_timer(hc, (double)hc->svc->w->cfg.handshake_timeout / 1000.0);
}

/* A request is complete: answer it and get ready for the next. */
static void complete(struct http_conn *hc)
{
    if (!http_should_keep_alive(&hc->req.parser) || hc->svc->stopped)
        hc->closing = 1;
    hc->answered = 1;
    if (hc->status)
        http_refuse(hc, hc->status, hc->why, 0);
    else
        http_route_done(hc);
    http_request_reset_body(&hc->req);
    if (hc->state == HC_STREAM) {
        hc->closing = hc->svc->stopped; /* a stream lasts until the peer goes */
        return;
    }
    hc->state = HC_IDLE;
    /* An answer to come gets handshake_timeout (timer_cb: 504). */
    set_timer(hc, hc->waits ? (double)hc->svc->w->cfg.handshake_timeout / 1000.0 : HC_IDLE_S);
}

/* Feeds what one read brought; stops when the connection stops taking
 * requests (an answer said close, or a stream began). */
static void feed(struct http_conn *hc, const uint8_t *data, size_t n)
{
    while (n && !hc->closing && !hc->broken && hc->state != HC_STREAM && hc->nwaits < HTTP_WAITS_MAX) {
        size_t used;
        enum http_req_event ev = http_request_feed(&hc->req, data, n, &used);
        data += used;
        n -= used;
        if (hc->req.begun && hc->state == HC_IDLE) {
            /* A request runs against handshake_timeout from its first
             * byte, so a client trickling bytes cannot hold it open. */
            hc->state = HC_REQUEST;
            set_timer(hc, (double)hc->svc->w->cfg.handshake_timeout / 1000.0);
        }
        switch (ev) {
        case HTTP_REQ_MORE: return;
        case HTTP_REQ_HEAD: http_route_head(hc); break;
        case HTTP_REQ_DONE: complete(hc); break;
        case HTTP_REQ_INVALID: http_refuse(hc, hc->req.status, hc->req.why, 1); return;
        case HTTP_REQ_NOMEM: hc->broken = 1; return;
        }
    }
    if (n && hc->nwaits >= HTTP_WAITS_MAX && !hc->closing && !hc->broken) { /* read on once one is answered */
        hc->held = malloc(n);
        if (!hc->held) {
            hc->broken = 1;
            return;
        }
        memcpy(hc->held, data, n);
        hc->held_len = n;
    }
}

void http_conn_resume(struct http_conn *hc)
{
    if (hc->state == HC_IDLE)
        set_timer(hc, hc->waits ? (double)hc->svc->w->cfg.handshake_timeout / 1000.0 : HC_IDLE_S);
    uint8_t *held = hc->held;
    size_t n = hc->held_len;
    hc->held = NULL;
    hc->held_len = 0;
    if (held)
        feed(hc, held, n); /* may stop again, holding the rest anew */
    free(held);
    http_conn_settle(hc);
}

static void on_readable(struct http_conn *hc)
{
    struct worker *w = hc->svc->w;
    size_t size = w->scratch_size < HC_READ_SIZE ? w->scratch_size : HC_READ_SIZE;
    for (int i = 0; i < HC_READS_PER_WAKEUP; i++) {
        ssize_t n = read(hc->io.fd, w->scratch, size);
        if (n == 0) {
            hc->peer_eof = 1;
            hc->closing = 1;
            return;
        }
        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                log_debug("read(%d) on an HTTP connection failed: %s", hc->io.fd, strerror(errno));
                hc->broken = 1;
            }
            return;
        }
        if (hc->state == HC_LINGER || hc->state == HC_STREAM)
            continue; /* after our answer, or while we stream: discard */
        feed(hc, w->scratch, (size_t)n);
        if (hc->closing || hc->broken || hc->out.len || hc->held || (size_t)n < size)
            return; /* answered something: write it before reading more */
    }
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct http_conn *hc = container_of(io, struct http_conn, io);
    if ((revents & EV_READ) && !(hc->closing && hc->state != HC_LINGER))
        on_readable(hc);
    http_conn_settle(hc); /* writes, and may close hc */
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct http_conn *hc = container_of(t, struct http_conn, timer);
    if (hc->waits) {
        http_wait_forget(hc); /* what was answered behind it goes too: we close */
        http_refuse(hc, 504, "no answer from Redis within handshake_timeout", 1);
    } else if (hc->state != HC_REQUEST || hc->closing) {
        http_conn_close(hc); /* idle, or lingering, or the peer does not read */
        return;
    } else {
        http_refuse(hc, 408, "request not complete within handshake_timeout", 1);
    }
    hc->state = HC_IDLE;
    set_timer(hc, HC_LINGER_S); /* for the answer to go out */
    http_conn_settle(hc);
}
