/* listener.c: the HTTP service's listening socket on publish_listen.
 * Every worker binds the same address with SO_REUSEPORT and the kernel
 * spreads connections over them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/alloc.h"
#include "../../common/log.h"
#include "../../common/net.h"
#include "http.h"
#include "listener.h"

#define BACKLOG            4096
#define ACCEPTS_PER_WAKEUP 64
#define ACCEPT_PAUSE_S     0.1

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct http_service *svc = container_of(io, struct http_service, accept_io);
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(svc->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd != -1) {
            http_conn_new(svc, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN: return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* A readable listener we cannot take from would spin: pause.
             * Waiting clients stay in the accept queue. */
            log_error("accept4() on publish_listen %s failed: %s; pausing %.0f ms", svc->name,
                      strerror(errno), ACCEPT_PAUSE_S * 1000);
            ev_io_stop(loop, &svc->accept_io);
            ev_timer_start(loop, &svc->accept_pause);
            return;
        default: log_error("accept4() on publish_listen %s failed: %s", svc->name, strerror(errno)); return;
        }
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct http_service *svc = container_of(t, struct http_service, accept_pause);
    if (!svc->stopped)
        ev_io_start(loop, &svc->accept_io);
}

int http_listener_start(struct worker *w)
{
    const char *spec = w->cfg.publish_listen;
    if (!spec[0])
        return 0;
    union sockaddr_any a;
    socklen_t alen = net_parse_hostport(spec, &a);
    if (!alen) {
        log_error(
            "publish_listen %s: not HOST:PORT with an IPv4/IPv6 address, localhost or * and a port 1-65535",
            spec);
        return -1;
    }
    struct http_service *svc = xcalloc(1, sizeof(*svc));
    svc->w = w;
    snprintf(svc->name, sizeof(svc->name), "%s", spec);
    char what[sizeof(svc->name) + 16];
    snprintf(what, sizeof(what), "publish_listen %s", spec);
    svc->fd = net_listen(&a, alen, what, BACKLOG);
    if (svc->fd == -1) {
        free(svc);
        return -1;
    }
    ev_io_init(&svc->accept_io, accept_cb, svc->fd, EV_READ);
    ev_io_start(w->loop, &svc->accept_io);
    ev_timer_init(&svc->accept_pause, accept_resume_cb, ACCEPT_PAUSE_S, 0);
    w->http = svc;
    stream_init(svc);
    http_wait_init(svc);
    log_debug("HTTP service listening on %s", svc->name);
    return 0;
}

void http_listener_stop(struct worker *w)
{
    struct http_service *svc = w->http;
    if (!svc || svc->stopped)
        return;
    svc->stopped = 1;
    ev_io_stop(w->loop, &svc->accept_io);
    ev_timer_stop(w->loop, &svc->accept_pause);
    stream_stop(svc);
    if (close(svc->fd) == -1)
        log_error("close(%d) of publish_listen %s failed: %s", svc->fd, svc->name, strerror(errno));
    svc->fd = -1;
    /* Requests in progress finish (their answer says Connection: close).
     * So does the first request of a connection accepted but still
     * silent: its client connected while we served and is sending, and
     * closing now would reset a request it has every right to expect
     * answered (a POST is not retried). Idle keep-alive connections and
     * event streams go now. */
    struct http_conn *next;
    for (struct http_conn *hc = svc->conns; hc; hc = next) {
        next = hc->next;
        if (hc->state == HC_IDLE && !hc->answered)
            http_conn_await_first(hc);
        if (hc->waits)
            hc->closing = 1; /* its answers still go out, then it closes */
        if (hc->state == HC_REQUEST || hc->waits || (hc->state == HC_IDLE && !hc->answered))
            continue; /* complete() sees svc->stopped */
        if (!hc->out.len || hc->state == HC_STREAM)
            http_conn_close(hc);
        else
            hc->closing = 1; /* its last answer is still going out */
    }
}
