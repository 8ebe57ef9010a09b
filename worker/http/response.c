/* response.c: what goes out on an HTTP connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "http.h"

void http_out(struct http_conn *hc, const void *data, size_t n)
{
    if (hc->broken)
        return;
    if (hc->out_len + n > hc->out_cap) {
        size_t cap = hc->out_cap ? hc->out_cap : 1024;
        while (cap < hc->out_len + n)
            cap *= 2;
        char *p = realloc(hc->out, cap);
        if (!p) {
            hc->broken = 1; /* only this connection suffers */
            return;
        }
        hc->out = p;
        hc->out_cap = cap;
    }
    memcpy(hc->out + hc->out_len, data, n);
    hc->out_len += n;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    default: return hs_status_text(status);
    }
}

void http_respond(struct http_conn *hc, int status, const char *ctype, const char *extra, const void *body,
                  size_t blen)
{
    char head[512];
    const http_parser *p = &hc->req.parser;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s\r\n",
                     status, status_text(status), ctype, blen,
                     status == 401 ? "WWW-Authenticate: Bearer\r\n" : "", extra,
                     hc->closing                                ? "Connection: close\r\n"
                     : p->http_major == 1 && p->http_minor == 0 ? "Connection: keep-alive\r\n"
                                                                : "");
    http_out(hc, head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
    http_out(hc, body, blen);
    shm_add(&hc->svc->w->slot->http_requests, 1);
}

void http_refuse(struct http_conn *hc, int status, const char *why, int then_close)
{
    char body[640], allow[64] = "";
    if (hc->route == &route_publish || !hc->route)
        shm_add(&hc->svc->w->slot->publish_rejected, 1);
    log_debug("HTTP fd %d: %d: %s", hc->io.fd, status, why);
    if (then_close)
        hc->closing = 1;
    if (status == 405 && hc->route)
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", hc->route->allow);
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    http_respond(hc, status, "application/json", allow, body,
                 (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}
