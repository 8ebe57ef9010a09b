/* route_health.c: GET /healthz for load balancers: 200 while this node
 * takes new clients, 503 with the reason when it should get none: this
 * worker is draining or stopping, no worker is active, or the node is at
 * max_connections. Open even when metrics_token is set. */
#include <stdio.h>

#include "collect.h"
#include "http.h"

static int head(struct http_conn *hc, const char **why)
{
    if (hc->req.parser.method != HTTP_GET)
        return *why = "method not allowed: use GET", 405;
    return 0;
}

/* NULL while serving, else why not. */
static const char *unhealthy(struct http_service *svc, char *buf, size_t cap)
{
    struct worker *w = svc->w;
    if (w->draining || svc->stopped)
        return w->retiring ? "draining: a new generation took over (reload)"
                           : "draining: the server is stopping";
    struct collect c;
    collect_totals(w->shm, &c);
    if (!c.workers[WORKER_ACTIVE])
        return "no worker is active";
    if ((int64_t)c.connections >= w->cfg.max_connections) {
        snprintf(buf, cap, "full: %llu connections, max_connections %lld", (unsigned long long)c.connections,
                 (long long)w->cfg.max_connections);
        return buf;
    }
    return NULL;
}

static void done(struct http_conn *hc)
{
    char buf[128], body[256];
    struct worker *w = hc->svc->w;
    const char *why = unhealthy(hc->svc, buf, sizeof(buf));
    int n = why ? snprintf(body, sizeof(body), "{\"status\":\"unavailable\",\"reason\":\"%s\"}\n", why)
                : snprintf(body, sizeof(body), "{\"status\":\"serving\",\"worker\":%d}\n", w->id);
    http_respond(hc, why ? 503 : 200, "application/json", "Cache-Control: no-store\r\n", body, (size_t)n);
}

const struct http_route route_health = {"/healthz", ROUTE_EXACT, "GET", head, done};
