/* response.c: what goes out on an HTTP connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/hbuf.h"
#include "../../common/log.h"
#include "http.h"

void http_out(struct http_conn *hc, const void *data, size_t n)
{
    struct hbuf *later = http_wait_out(hc);
    if (later)
        hbuf_put(later, data, n); /* behind an answer still to come */
    else
        http_conn_out(hc, data, n);
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

size_t http_head(char *buf, size_t cap, int status, const char *ctype, const char *extra, size_t blen,
                 int closing, int http10)
{
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s\r\n",
                     status, status_text(status), ctype, blen,
                     status == 401 ? "WWW-Authenticate: Bearer\r\n" : "", extra,
                     closing  ? "Connection: close\r\n"
                     : http10 ? "Connection: keep-alive\r\n"
                              : "");
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

void http_respond(struct http_conn *hc, int status, const char *ctype, const char *extra, const void *body,
                  size_t blen)
{
    char head[512];
    const http_parser *p = &hc->req.parser;
    size_t n = http_head(head, sizeof(head), status, ctype, extra, blen, hc->closing,
                         p->http_major == 1 && p->http_minor == 0);
    http_out(hc, head, n);
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
