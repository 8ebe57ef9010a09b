/* auth.c: the service's tokens: publish_token for publishing,
 * metrics_token for what shows the server's figures. */
#include <string.h>
#include <strings.h>

#include "http.h"

/* Constant time in the token's content: no early exit on a mismatch. */
static int token_equal(const char *got, size_t got_len, const char *want, size_t want_len)
{
    volatile unsigned diff = got_len != want_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)(i < got_len ? got[i] : 0) ^ (unsigned char)want[i];
    return diff == 0;
}

static int bearer_ok(const struct http_request *r, const char *want, size_t wl)
{
    if (!r->has_auth || r->auth_len > HTTP_VALUE_MAX || r->auth_len < 7 || strncasecmp(r->auth, "Bearer ", 7))
        return 0;
    const char *t = r->auth + 7;
    size_t n = r->auth_len - 7;
    http_hdr_trim(&t, &n);
    return token_equal(t, n, want, wl);
}

/* ?token=... (a browser cannot put a header on a page or an EventSource). */
static int query_ok(const struct http_request *r, const char *want, size_t wl)
{
    size_t ql, n;
    const char *q = http_request_query(r, &ql);
    if (!q)
        return 0;
    for (size_t i = 0; i < ql;) {
        const char *item = q + i;
        const char *amp = memchr(item, '&', ql - i);
        n = amp ? (size_t)(amp - item) : ql - i;
        i += n + 1;
        if (n >= 6 && !memcmp(item, "token=", 6))
            return token_equal(item + 6, n - 6, want, wl);
    }
    return 0;
}

int auth_token_ok(const struct http_request *r, const char *token, int query)
{
    size_t tl = strlen(token);
    if (!tl)
        return 1;
    return bearer_ok(r, token, tl) || (query && query_ok(r, token, tl));
}

const char *auth_why(const struct http_request *r, const char *key)
{
    if (!strcmp(key, "publish_token"))
        return r->has_auth ? "wrong token (publish_token)"
                           : "missing Authorization: Bearer token (publish_token is set)";
    return r->has_auth ? "wrong token (metrics_token)"
                       : "missing Authorization: Bearer token or ?token= (metrics_token is set)";
}

int auth_metrics_head(struct http_conn *hc, const char **why)
{
    if (hc->req.parser.method != HTTP_GET)
        return *why = "method not allowed: use GET", 405;
    if (!auth_token_ok(&hc->req, hc->svc->w->cfg.metrics_token, 1))
        return *why = auth_why(&hc->req, "metrics_token"), 401;
    return 0;
}
