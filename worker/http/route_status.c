/* route_status.c: GET /status, the snapshot of snapshot.c as JSON (the
 * same figures the dashboard charts; the status socket has more). */
#include <time.h>

#include "collect.h"
#include "../../common/hbuf.h"
#include "http.h"
#include "snapshot.h"

static void done(struct http_conn *hc)
{
    struct hbuf b = {0};
    struct collect c;
    struct hist_sample now;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    collect_totals(hc->svc->w->shm, &c);
    history_peek(&hc->svc->history, &c, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &now);
    snapshot_json(hc->svc->w, &c, &now, &b);
    hbuf_printf(&b, "\n");
    if (b.failed)
        http_refuse(hc, 503, "out of memory for the status", 0);
    else
        http_respond(hc, 200, "application/json", "Cache-Control: no-store\r\n", b.p, b.len);
    hbuf_free(&b);
}

const struct http_route route_status = {"/status", ROUTE_EXACT, "GET", auth_metrics_head, done};
