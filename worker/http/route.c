/* route.c: which route answers a request, and the checks every route
 * shares (target length, Upgrade, bodies refused before they are read). */
#include <string.h>

#include "http.h"

static const struct http_route *const routes[] = {
    &route_publish,   &route_metrics, &route_health,   &route_status,
    &route_dashboard, &route_history, &route_channels,
};

static int matches(const struct http_route *rt, const char *path, size_t len)
{
    size_t pl = strlen(rt->path);
    if (len < pl || memcmp(path, rt->path, pl))
        return 0;
    switch (rt->match) {
    case ROUTE_EXACT: return len == pl;
    case ROUTE_PREFIX: return 1;
    case ROUTE_FOLDER: return len == pl || path[pl] == '/';
    }
    return 0;
}

static const struct http_route *find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (matches(routes[i], path, len))
            return routes[i];
    return NULL;
}

static int check(struct http_conn *hc, const char **why)
{
    struct http_request *r = &hc->req;
    if (r->url_len >= HTTP_URL_MAX) {
        *why = "request target longer than 4095 bytes";
        return 414;
    }
    hc->route = find(r->url, http_request_path_len(r));
    if (!hc->route) {
        *why = "no such endpoint: this service serves POST /pub/CHANNEL, GET /metrics, /healthz, /status and "
               "/dashboard";
        return 404;
    }
    return hc->route->head(hc, why);
}

void http_route_head(struct http_conn *hc)
{
    struct http_request *r = &hc->req;
    const http_parser *p = &r->parser;
    hc->route = NULL;
    hc->status = 0;
    r->limit = 0;
    r->discard = 1; /* a route that wants the body says so (and its limit) */
    if (p->upgrade) {
        http_refuse(hc, 400, "Upgrade is not supported on this service (WebSockets connect on listen)", 1);
        return;
    }
    const char *why = NULL;
    int status = check(hc, &why);
    int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (status)
        r->discard = 1;
    /* A refused request's body is read and dropped to keep the connection,
     * unless that would mean reading a body we said we would not take
     * (411, 413, a client waiting for 100 Continue) or of unknown size. */
    if (status &&
        (status == 411 || status == 413 || (p->flags & F_CHUNKED) || (has_body && r->expect_continue))) {
        http_refuse(hc, status, why, 1);
        return;
    }
    hc->status = status;
    hc->why = why;
    if (!status && has_body && r->expect_continue && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        http_out(hc, cont, sizeof(cont) - 1);
    }
}

void http_route_done(struct http_conn *hc)
{
    hc->route->done(hc);
}
