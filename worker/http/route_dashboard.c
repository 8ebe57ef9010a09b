/* route_dashboard.c: GET /dashboard (the page), /dashboard/app.js and
 * /dashboard/app.css (embedded in the binary: assets.h), and
 * /dashboard/events, the live figures as Server-Sent Events. The files
 * hold no data and are served to anyone; the events (the figures) need
 * metrics_token when it is set, given as ?token= on the page's URL. */
#include <string.h>

#include "assets.h"
#include "http.h"

/* The asset a path names, or NULL (then: the event stream or 404). */
static const struct asset *asset_for(const struct http_request *r)
{
    size_t len = http_request_path_len(r);
    const char *name = "index.html";
    size_t nl = strlen(name);
    if (len > 11) { /* "/dashboard/" + a name */
        name = r->url + 11;
        nl = len - 11;
    }
    for (unsigned i = 0; i < assets_count; i++)
        if (strlen(assets[i].name) == nl && !memcmp(assets[i].name, name, nl))
            return &assets[i];
    return NULL;
}

static int is_events(const struct http_request *r)
{
    return http_request_path_len(r) == 17 && !memcmp(r->url, "/dashboard/events", 17);
}

static int head(struct http_conn *hc, const char **why)
{
    if (is_events(&hc->req))
        return auth_metrics_head(hc, why);
    if (hc->req.parser.method != HTTP_GET)
        return *why = "method not allowed: use GET", 405;
    if (!asset_for(&hc->req))
        return *why = "no such file: the dashboard is at /dashboard", 404;
    return 0;
}

static void done(struct http_conn *hc)
{
    if (is_events(&hc->req)) {
        stream_start(hc);
        return;
    }
    const struct asset *a = asset_for(&hc->req);
    http_respond(hc, 200, a->type, "Cache-Control: no-cache\r\n", a->data, a->len);
}

const struct http_route route_dashboard = {"/dashboard", ROUTE_FOLDER, "GET", head, done};
