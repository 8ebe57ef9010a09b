/* histapi.c: the publish API's read-only routes over the history store
 * (docs/publish-api.md, docs/history.md):
 *     GET /history/NAME[?since=OFFSET][&limit=N]
 *     GET /channels/NAME */
#include "histapi.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/clock.h"
#include "../../common/handshake.h"
#include "../../common/hbuf.h"
#include "../../common/history.h"
#include "../../common/ws_frame.h"
#include "../worker-t.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX     10000

int histapi_route(const char *url, size_t plen)
{
    return (plen > 9 && !memcmp(url, "/history/", 9)) || (plen > 10 && !memcmp(url, "/channels/", 10));
}

static void puts_(struct hbuf *o, const char *s)
{
    hbuf_put(o, s, strlen(s));
}

/* Text as a JSON string body (valid UTF-8 is passed through). */
static void put_escaped(struct hbuf *o, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\', esc[1] = (char)s[i];
            hbuf_put(o, esc, 2);
        } else if (s[i] < 0x20) {
            hbuf_put(o, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", s[i]));
        } else {
            hbuf_put(o, &s[i], 1);
        }
    }
}

static int message_json(void *arg, uint64_t offset, unsigned opcode, const struct iovec *piece, int npieces)
{
    struct hbuf *o = arg;
    char head[96];
    size_t len = 0;
    for (int i = 0; i < npieces; i++)
        len += piece[i].iov_len;
    uint8_t *flat = malloc(len ? len : 1);
    if (!flat) {
        o->failed = 1;
        return -1;
    }
    for (int i = 0, at = 0; i < npieces; at += (int)piece[i].iov_len, i++)
        memcpy(flat + at, piece[i].iov_base, piece[i].iov_len);
    int text = opcode == WS_OP_TEXT;
    hbuf_put(o, head,
             (size_t)snprintf(head, sizeof head, "%s{\"offset\":%llu,\"type\":\"%s\",\"%s\":\"",
                              o->len && o->p[o->len - 1] == '[' ? "" : ",", (unsigned long long)offset,
                              text ? "text" : "binary", text ? "data" : "data_base64"));
    if (text) {
        put_escaped(o, flat, len);
    } else {
        char *b64 = malloc(4 * ((len + 2) / 3) + 1);
        if (b64)
            hbuf_put(o, b64, (size_t)EVP_EncodeBlock((unsigned char *)b64, flat, (int)len));
        else
            o->failed = 1;
        free(b64);
    }
    free(flat);
    puts_(o, "\"}");
    return o->failed ? -1 : 0;
}

/* since and limit from the query; NULL, or why not. */
static const char *query(const char *q, size_t n, uint64_t *since, uint64_t *limit)
{
    size_t pos = 0;
    while (pos < n) {
        const char *amp = memchr(q + pos, '&', n - pos);
        size_t end = amp ? (size_t)(amp - q) : n;
        uint64_t *v = end - pos > 6 && !memcmp(q + pos, "since=", 6)   ? since
                      : end - pos > 6 && !memcmp(q + pos, "limit=", 6) ? limit
                                                                       : NULL;
        if (!v)
            return "unknown query parameter (GET /history/NAME takes since and limit)";
        *v = 0;
        for (size_t i = pos + 6; i < end; i++) {
            if (q[i] < '0' || q[i] > '9' || *v > (UINT64_MAX - 9) / 10)
                return "since and limit are decimal numbers";
            *v = *v * 10 + (uint64_t)(q[i] - '0');
        }
        pos = end + 1;
    }
    if (*limit == 0 || *limit > LIMIT_MAX)
        return "limit is 1 to 10000";
    return NULL;
}

static int fail(struct hbuf *o, int status, const char *why)
{
    o->len = 0;
    puts_(o, "{\"error\":\"");
    puts_(o, why);
    puts_(o, "\"}\n");
    return status;
}

int histapi_get(struct worker *w, const char *url, size_t url_len, char **body, size_t *blen)
{
    struct hbuf o = {0};
    const char *q = memchr(url, '?', url_len);
    size_t plen = q ? (size_t)(q - url) : url_len;
    int hist = url[1] == 'h';
    const char *name = url + (hist ? 9 : 10);
    size_t nl = plen - (size_t)(name - url);
    uint64_t since = 0, limit = LIMIT_DEFAULT;
    const char *why = NULL;
    int status = 200;
    if (!hs_channel_name_valid(name, nl))
        why = "invalid channel name: 1-128 bytes of A-Z a-z 0-9 _ . : -";
    else if (q && !hist)
        why = "GET /channels/NAME takes no query parameters";
    else if (q)
        why = query(q + 1, url_len - plen - 1, &since, &limit);
    if (why)
        status = fail(&o, 400, why);
    else if (w->cfg.broker == BROKER_REDIS)
        status = fail(&o, 501, "history and positions are kept by broker = local only (docs/history.md)");
    else {
        struct history *h = w->history;
        int64_t now = (int64_t)(mono_ns() / 1000000), ttl = w->cfg.history_ttl;
        char head[HS_CHANNEL_MAX + 256];
        history_lock(h);
        struct history_chan *hc = history_chan_get_locked(h, name, nl, now);
        uint64_t first = history_first_locked(h, hc, now, ttl);
        hbuf_put(
            &o, head,
            (size_t)snprintf(head, sizeof head,
                             "{\"channel\":\"%.*s\",\"epoch\":\"%016llx\",\"offset\":%llu,\"first\":%llu",
                             (int)nl, name, (unsigned long long)hc->epoch, (unsigned long long)hc->top,
                             (unsigned long long)first));
        if (hist) {
            hbuf_put(&o, head,
                     (size_t)snprintf(head, sizeof head, ",\"complete\":%s,\"messages\":[",
                                      since + 1 >= first || since >= hc->top ? "true" : "false"));
            history_each_locked(h, hc, since, hc->top, (uint32_t)limit, now, ttl, message_json, &o);
            puts_(&o, "]");
        } else {
            uint8_t live[HISTORY_WORKERS] = {0};
            for (int i = 0; i < HISTORY_WORKERS && i < SHM_MAX_WORKERS; i++)
                live[i] = atomic_load_explicit(&w->shm->slots[i].pid, memory_order_relaxed) > 0;
            hbuf_put(&o, head,
                     (size_t)snprintf(head, sizeof head, ",\"subscribers\":%lld",
                                      (long long)history_subs_sum(h, history_chan_index(h, hc), live)));
        }
        history_unlock(h);
        puts_(&o, "}\n");
    }
    if (o.failed) {
        free(o.p);
        return -1;
    }
    *body = o.p;
    *blen = o.len;
    return status;
}
