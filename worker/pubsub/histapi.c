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
#include "redis_hist.h"

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

/* A GET's request: which route, which channel, since and limit. */
struct get_req {
    int hist; /* /history/ (else /channels/) */
    char name[HS_CHANNEL_MAX];
    size_t nl;
    uint64_t since, limit;
};

/* NULL, or why url is no request of ours (a 400). */
static const char *parse(const char *url, size_t url_len, struct get_req *g)
{
    const char *q = memchr(url, '?', url_len);
    size_t plen = q ? (size_t)(q - url) : url_len;
    g->hist = url[1] == 'h';
    const char *name = url + (g->hist ? 9 : 10);
    g->nl = plen - (size_t)(name - url);
    g->since = 0;
    g->limit = LIMIT_DEFAULT;
    if (!hs_channel_name_valid(name, g->nl))
        return "invalid channel name: 1-128 bytes of A-Z a-z 0-9 _ . : -";
    memcpy(g->name, name, g->nl);
    if (q && !g->hist)
        return "GET /channels/NAME takes no query parameters";
    return q ? query(q + 1, url_len - plen - 1, &g->since, &g->limit) : NULL;
}

static void head_json(struct hbuf *o, const struct get_req *g, uint64_t epoch, uint64_t top, uint64_t first)
{
    char head[HS_CHANNEL_MAX + 256];
    hbuf_put(o, head,
             (size_t)snprintf(head, sizeof head,
                              "{\"channel\":\"%.*s\",\"epoch\":\"%016llx\",\"offset\":%llu,\"first\":%llu",
                              (int)g->nl, g->name, (unsigned long long)epoch, (unsigned long long)top,
                              (unsigned long long)first));
    if (g->hist)
        hbuf_put(o, head,
                 (size_t)snprintf(head, sizeof head, ",\"complete\":%s,\"messages\":[",
                                  g->since + 1 >= first || g->since >= top ? "true" : "false"));
}

/* This node's subscribers of the channel (every worker, both kinds), from
 * the counts the workers keep in the store. */
static void subscribers_json(struct hbuf *o, struct worker *w, struct history_chan *hc)
{
    struct history *h = w->history;
    uint8_t live[HISTORY_WORKERS] = {0};
    char line[64];
    for (int i = 0; i < HISTORY_WORKERS && i < SHM_MAX_WORKERS; i++)
        live[i] = atomic_load_explicit(&w->shm->slots[i].pid, memory_order_relaxed) > 0;
    hbuf_put(o, line,
             (size_t)snprintf(line, sizeof line, ",\"subscribers\":%lld",
                              (long long)history_subs_sum(h, history_chan_index(h, hc), live)));
}

static int finish(struct hbuf *o, int status, char **body, size_t *blen)
{
    if (o->failed) {
        free(o->p);
        return -1;
    }
    *body = o->p;
    *blen = o->len;
    return status;
}

int histapi_get(struct worker *w, const char *url, size_t url_len, char **body, size_t *blen)
{
    struct hbuf o = {0};
    struct get_req g;
    const char *why = parse(url, url_len, &g);
    if (why)
        return finish(&o, fail(&o, 400, why), body, blen);
    if (w->cfg.broker == BROKER_REDIS)
        return 0; /* histapi_get_redis */
    struct history *h = w->history;
    int64_t now = (int64_t)(mono_ns() / 1000000), ttl = w->cfg.history_ttl;
    history_lock(h);
    struct history_chan *hc = history_chan_get_locked(h, g.name, g.nl, now);
    head_json(&o, &g, hc->epoch, hc->top, history_first_locked(h, hc, now, ttl));
    if (g.hist) {
        history_each_locked(h, hc, g.since, hc->top, (uint32_t)g.limit, now, ttl, message_json, &o);
        puts_(&o, "]");
    } else {
        subscribers_json(&o, w, hc);
    }
    history_unlock(h);
    puts_(&o, "}\n");
    return finish(&o, 200, body, blen);
}

/* ---- broker = redis: the same answers from Redis's keys ------------------ */

struct redis_get {
    struct get_req g;
    histapi_answer_fn answer;
    void *ctx;
};

static void range_done(struct worker *w, void *arg, int ok, const struct redis_range *r)
{
    struct redis_get *q = arg;
    struct hbuf o = {0};
    char *body = NULL;
    size_t blen = 0;
    int status = 200;
    if (!ok) {
        status = fail(&o, 503, "broker unavailable: the history read from Redis failed");
    } else {
        head_json(&o, &q->g, r->epoch, r->top, r->first);
        for (size_t i = 0; q->g.hist && i < r->nentries; i++) {
            uint64_t off;
            unsigned op;
            const uint8_t *pl;
            size_t len;
            if (redis_hist_entry(r->entries[i], &off, &op, &pl, &len) == 0)
                message_json(&o, off, op, &(struct iovec){(void *)pl, len}, 1);
        }
        if (q->g.hist) {
            puts_(&o, "]");
        } else {
            history_lock(w->history);
            subscribers_json(
                &o, w,
                history_chan_get_locked(w->history, q->g.name, q->g.nl, (int64_t)(mono_ns() / 1000000)));
            history_unlock(w->history);
        }
        puts_(&o, "}\n");
    }
    status = finish(&o, status, &body, &blen);
    if (status < 0)
        q->answer(q->ctx, 503, "{\"error\":\"out of memory\"}\n", 26);
    else
        q->answer(q->ctx, status, body, blen);
    free(body);
    free(q);
}

int histapi_get_redis(struct worker *w, const char *url, size_t url_len, histapi_answer_fn answer, void *ctx)
{
    struct redis_get *q = malloc(sizeof(*q));
    if (!q || parse(url, url_len, &q->g)) {
        free(q);
        return -1;
    }
    q->answer = answer;
    q->ctx = ctx;
    if (redis_hist_range(w, q->g.name, q->g.nl, q->g.since, q->g.hist ? q->g.limit : 0, range_done, q) ==
        -1) {
        free(q);
        return -1;
    }
    return 0;
}
