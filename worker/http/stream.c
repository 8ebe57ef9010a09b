/* stream.c: the service's one-second tick and its Server-Sent Events.
 * Every second the tick records a history sample (history.h) and, when
 * event streams are open, sends each of them the snapshot as one `data:`
 * line, built once for all. A new stream first gets the history (`event:
 * history`), so its charts start full. A stream whose previous event has
 * not left yet (a reader that stalls) skips ticks instead of piling up. */
#include <time.h>

#include "collect.h"
#include "../../common/hbuf.h"
#include "history.h"
#include "http.h"
#include "snapshot.h"

#define TICK_S 1.0

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(struct http_service *svc, const struct hbuf *b)
{
    struct http_conn *next;
    for (struct http_conn *hc = svc->conns; hc; hc = next) {
        next = hc->next; /* settle may close hc */
        if (hc->state != HC_STREAM || hc->out.len)
            continue;
        http_out(hc, b->p, b->len);
        http_conn_settle(hc);
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct http_service *svc = container_of(t, struct http_service, tick);
    struct collect c;
    collect_totals(svc->w->shm, &c);
    history_record(&svc->history, &c, now_ms());
    if (!svc->nstreams)
        return;
    struct hbuf b = {0};
    hbuf_printf(&b, "data: ");
    snapshot_json(svc->w, &c, history_last(&svc->history), &b);
    hbuf_printf(&b, "\n\n");
    if (!b.failed)
        send_all(svc, &b);
    hbuf_free(&b);
}

void stream_init(struct http_service *svc)
{
    ev_timer_init(&svc->tick, tick_cb, TICK_S, TICK_S);
    ev_timer_start(svc->w->loop, &svc->tick);
}

void stream_stop(struct http_service *svc)
{
    ev_timer_stop(svc->w->loop, &svc->tick);
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
    http_out(hc, head, sizeof(head) - 1);
    struct hbuf b = {0};
    hbuf_printf(&b, "event: history\ndata: ");
    history_json(&svc->history, &b);
    hbuf_printf(&b, "\n\n");
    if (b.failed)
        hc->broken = 1;
    else
        http_out(hc, b.p, b.len);
    hbuf_free(&b);
    shm_add(&svc->w->slot->http_requests, 1);
    hc->state = HC_STREAM;
    svc->nstreams++;
    ev_timer_stop(svc->w->loop, &hc->timer); /* a stream has no idle timeout */
}

void stream_end(struct http_conn *hc)
{
    if (hc->state != HC_STREAM)
        return;
    hc->state = HC_LINGER;
    hc->svc->nstreams--;
}
