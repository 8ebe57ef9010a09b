/* stream.c: Server-Sent Events: every second, each open stream gets the
 * status snapshot as one `data:` line. The snapshot is built once per
 * tick for all streams. A stream whose previous event has not left yet
 * (a reader that stalls) skips ticks instead of piling them up. */
#include <string.h>

#include "hbuf.h"
#include "http.h"
#include "snapshot.h"

#define STREAM_PERIOD_S 1.0

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct http_service *svc = container_of(t, struct http_service, stream_tick);
    struct hbuf b = {0};
    hbuf_printf(&b, "data: ");
    snapshot_json(svc->w, &b);
    hbuf_printf(&b, "\n\n");
    if (b.failed) {
        hbuf_free(&b);
        return;
    }
    struct http_conn *next;
    for (struct http_conn *hc = svc->conns; hc; hc = next) {
        next = hc->next; /* settle may close hc */
        if (hc->state != HC_STREAM || hc->out_len)
            continue;
        http_out(hc, b.p, b.len);
        http_conn_settle(hc);
    }
    hbuf_free(&b);
}

void stream_start(struct http_conn *hc)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\n"
                               "X-Accel-Buffering: no\r\n"
                               "\r\n"
                               "retry: 2000\n\n";
    struct http_service *svc = hc->svc;
    struct ev_loop *loop = svc->w->loop;
    http_out(hc, head, sizeof(head) - 1);
    shm_add(&svc->w->slot->http_requests, 1);
    hc->state = HC_STREAM;
    ev_timer_stop(loop, &hc->timer); /* a stream has no idle timeout */
    if (!svc->nstreams++) {
        ev_timer_init(&svc->stream_tick, tick_cb, 0.05, STREAM_PERIOD_S);
        ev_timer_start(loop, &svc->stream_tick);
    }
}

void stream_end(struct http_conn *hc)
{
    struct http_service *svc = hc->svc;
    if (hc->state != HC_STREAM)
        return;
    hc->state = HC_LINGER;
    if (!--svc->nstreams)
        ev_timer_stop(svc->w->loop, &svc->stream_tick);
}
