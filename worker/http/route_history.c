/* route_history.c: GET /history/NAME?since=&limit= and GET /channels/NAME
 * (docs/history.md, docs/publish-api.md): a channel's position, its kept
 * messages and its subscribers on this node. The answers are built by
 * pubsub/histapi.c, which owns the history store's side; with broker =
 * redis they wait for Redis (http_conn_defer). publish_token guards them
 * like POST /pub/. */
#include <stdlib.h>

#include "../pubsub/histapi.h"
#include "http.h"

static int head(struct http_conn *hc, const char **why)
{
    const struct http_request *r = &hc->req;
    if (r->parser.method != HTTP_GET)
        return *why = "method not allowed: GET /history/NAME or /channels/NAME", 405;
    if (!auth_token_ok(r, hc->svc->w->cfg.publish_token, 0))
        return *why = auth_why(r, "publish_token"), 401;
    return 0;
}

static void answer_later(void *ctx, int status, const char *body, size_t blen)
{
    http_wait_answer(ctx, status, "application/json", "Cache-Control: no-store\r\n", body, blen);
}

/* broker = redis: the answer comes with Redis's (histapi_get_redis). */
static void ask_redis(struct http_conn *hc, const char *url, size_t ul)
{
    struct http_wait *hw = http_wait_new();
    if (!hw) {
        http_refuse(hc, 503, "out of memory", 0);
    } else if (histapi_get_redis(hc->svc->w, url, ul, answer_later, hw) == -1) {
        http_wait_answer(hw, 0, NULL, NULL, NULL, 0); /* unbound: only freed */
        http_refuse(hc, 503, "broker unavailable: Redis is down", 0);
    } else {
        http_conn_defer(hc, hw);
    }
}

static void done(struct http_conn *hc)
{
    const struct http_request *r = &hc->req;
    char *body = NULL;
    size_t blen = 0;
    size_t ul = r->url_len < HTTP_URL_MAX ? r->url_len : HTTP_URL_MAX - 1; /* route.c refused longer ones */
    int st = histapi_get(hc->svc->w, r->url, ul, &body, &blen);
    if (st == 0)
        ask_redis(hc, r->url, ul);
    else if (st < 0)
        http_refuse(hc, 503, "out of memory", 0);
    else
        http_respond(hc, st, "application/json", "Cache-Control: no-store\r\n", body, blen);
    free(body);
}

const struct http_route route_history = {"/history/", ROUTE_PREFIX, "GET", head, done};
const struct http_route route_channels = {"/channels/", ROUTE_PREFIX, "GET", head, done};
