/* route_publish.c: POST /pub/A,B?type=text|binary&batch=lines publishes
 * the body (or each of its lines) to channels A and B through the shared
 * ring, so it reaches subscribers on every worker whichever one took the
 * request. Answers 202 with what was published (docs/publish-api.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../common/log.h"
#include "../../common/utf8.h"
#include "../../common/ws_frame.h"
#include "../pubsub/channels.h"
#include "http.h"

#define CHAN_MAX 1024 /* max_channels_per_conn's ceiling */
#define PREFIX   5    /* strlen("/pub/") */

struct pub_opts {
    unsigned opcode;
    int batch;
    int type_set; /* an explicit ?type wins over Content-Type */
};

/* Reads ?type=text|binary&batch=lines. Returns NULL, or why it is bad. */
static const char *parse_query(const struct http_request *r, struct pub_opts *o)
{
    size_t n = 0;
    const char *q = http_request_query(r, &n);
    *o = (struct pub_opts){.opcode = WS_OP_TEXT};
    for (size_t i = 0; q && i < n;) {
        const char *item = q + i;
        const char *amp = memchr(item, '&', n - i);
        size_t il = amp ? (size_t)(amp - item) : n - i;
        i += il + 1;
        if (!il)
            continue;
        if (il == 9 && !memcmp(item, "type=text", 9))
            o->opcode = WS_OP_TEXT, o->type_set = 1;
        else if (il == 11 && !memcmp(item, "type=binary", 11))
            o->opcode = WS_OP_BINARY, o->type_set = 1;
        else if (il == 11 && !memcmp(item, "batch=lines", 11))
            o->batch = 1;
        else if (il >= 5 && !memcmp(item, "type=", 5))
            return "bad query: type must be text or binary";
        else if (il >= 6 && !memcmp(item, "batch=", 6))
            return "bad query: batch must be lines";
        else
            return "bad query: unknown parameter (the publish API knows type=text|binary and batch=lines)";
    }
    if (!o->type_set && r->ctype_binary)
        o->opcode = WS_OP_BINARY;
    return NULL;
}

/* The channel list of the path (after "/pub/"), split into off/len.
 * Returns the count, or sets *why and returns -1. */
static int channel_list(struct http_conn *hc, uint16_t *off, uint8_t *len, const char **why)
{
    const struct http_request *r = &hc->req;
    int max = (int)hc->svc->w->cfg.max_channels_per_conn;
    int n = hs_channel_list(r->url + PREFIX, http_request_path_len(r) - PREFIX,
                            max < CHAN_MAX ? max : CHAN_MAX, off, len);
    if (n == -2)
        *why = "too many channels in /pub/A,B,C (max_channels_per_conn)";
    else if (n < 0)
        *why = "invalid channel name: 1-128 bytes of A-Z a-z 0-9 _ . : - separated by commas";
    return n;
}

/* Everything decidable before the body. */
static int head(struct http_conn *hc, const char **why)
{
    struct http_request *r = &hc->req;
    const http_parser *p = &r->parser;
    const struct config *cfg = &hc->svc->w->cfg;
    if (p->method != HTTP_POST)
        return *why = "method not allowed: publish with POST /pub/CHANNEL", 405;
    if (!auth_token_ok(r, cfg->publish_token, 0))
        return *why = auth_why(r, "publish_token"), 401;
    if (!(p->flags & (F_CHUNKED | F_CONTENTLENGTH)))
        return *why = "Content-Length or Transfer-Encoding: chunked required", 411;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > (uint64_t)cfg->max_message_size)
        return *why = "body larger than max_message_size", 413;
    struct pub_opts o;
    if ((*why = parse_query(r, &o)))
        return 400;
    uint16_t off[CHAN_MAX];
    uint8_t len[CHAN_MAX];
    if (channel_list(hc, off, len, why) < 0)
        return 400;
    r->discard = 0;
    r->limit = (size_t)cfg->max_message_size;
    return 0;
}

/* The next message of the body: the whole body, or with batch=lines each
 * non-empty line. Returns 1 with *msg and *len set, or 0 when done. */
static int next_msg(const struct http_request *r, int batch, size_t *pos, const uint8_t **msg, size_t *len)
{
    static const uint8_t empty[1];
    if (!batch) {
        if (*pos)
            return 0;
        *pos = 1;
        *msg = r->body ? r->body : empty;
        *len = r->body_len;
        return 1;
    }
    while (*pos < r->body_len) {
        const uint8_t *s = r->body + *pos;
        const uint8_t *nl = memchr(s, '\n', r->body_len - *pos);
        size_t n = nl ? (size_t)(nl - s) : r->body_len - *pos;
        *pos += n + (nl != NULL);
        if (n) {
            *msg = s;
            *len = n;
            return 1;
        }
    }
    return 0;
}

/* Drops repeated names (/pub/A,A publishes once, as /ch/A,A joins once). */
static int dedupe(const char *base, uint16_t *off, uint8_t *len, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < k && !dup; j++)
            dup = len[j] == len[i] && !memcmp(base + off[j], base + off[i], len[i]);
        if (!dup)
            off[k] = off[i], len[k] = len[i], k++;
    }
    return k;
}

/* The offsets a request's messages got (docs/history.md): per channel the
 * first and last message's; none with broker = redis. */
struct pub_offsets {
    int have;
    uint64_t first[CHAN_MAX], last[CHAN_MAX];
};

/* Appends ,"KEY":{"name":offset,...} to body. */
static int offsets_json(char *body, size_t cap, int n, const char *key, const char *base, const uint16_t *off,
                        const uint8_t *len, int nchan, const uint64_t *o)
{
    n += snprintf(body + n, cap - (size_t)n, ",\"%s\":{", key);
    for (int i = 0; i < nchan && (size_t)n < cap; i++)
        n += snprintf(body + n, cap - (size_t)n, "%s\"%.*s\":%llu", i ? "," : "", (int)len[i], base + off[i],
                      (unsigned long long)o[i]);
    return n + snprintf(body + n, cap - (size_t)n, "}");
}

static void answer_published(struct http_conn *hc, const char *base, const uint16_t *off, const uint8_t *len,
                             int nchan, uint64_t msgs, const struct pub_offsets *po)
{
    /* Names are at most the URL long, plus 3 bytes each of quotes and
     * comma, and twice more with 21 digits each for the offsets. */
    static char body[3 * HTTP_URL_MAX + 60 * CHAN_MAX + 128];
    int n = snprintf(body, sizeof(body), "{\"published\":%llu,\"messages\":%llu,\"channels\":[",
                     (unsigned long long)(msgs * (uint64_t)nchan), (unsigned long long)msgs);
    for (int i = 0; i < nchan; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"%.*s\"", i ? "," : "", (int)len[i],
                      base + off[i]);
    n += snprintf(body + n, sizeof(body) - (size_t)n, "]");
    if (po->have) {
        n = offsets_json(body, sizeof(body), n, "offsets", base, off, len, nchan, po->last);
        if (msgs > 1)
            n = offsets_json(body, sizeof(body), n, "first_offsets", base, off, len, nchan, po->first);
    }
    n += snprintf(body + n, sizeof(body) - (size_t)n, "}\n");
    http_respond(hc, 202, "application/json", "", body, (size_t)n);
}

/* channels_publish failed (it counted the loss): 503 naming the broker's
 * trouble, or 413 / 503 for the ring. */
static void answer_failed(struct http_conn *hc, int err, const char *list, size_t ll, size_t mlen)
{
    char body[512], why[320];
    int n;
    if (err == ENOTCONN || err == ENOBUFS) {
        channels_why(hc->svc->w, why, sizeof(why));
        n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"broker\":\"redis\"}\n", why);
        http_respond(hc, 503, "application/json", "", body,
                     (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
        return;
    }
    log_warn("publish API: channels_publish(%.*s, %zu bytes) failed: %s", (int)ll, list, mlen, strerror(err));
    n = snprintf(body, sizeof(body), "{\"error\":\"publish failed: %s\"}\n",
                 err == EMSGSIZE ? "message larger than the ring accepts (ring_size)" : strerror(err));
    http_respond(hc, err == EMSGSIZE ? 413 : 503, "application/json", "", body, (size_t)n);
}

/* Publishes every message to every channel, message by message: one ring
 * record per message naming every channel, so a subscriber of several of
 * them receives it once. Returns 0, or -1 when answered with an error. */
static int publish_all(struct http_conn *hc, const struct pub_opts *o, const uint16_t *off,
                       const uint8_t *len, int nchan, struct pub_offsets *po)
{
    static uint64_t offs[RING_OFFS_MAX];
    struct worker *w = hc->svc->w;
    const struct http_request *r = &hc->req;
    const char *base = r->url + PREFIX;
    char list[RING_CHANNEL_MAX];
    size_t ll = 0;
    for (int i = 0; i < nchan && ll + len[i] + 1 <= sizeof(list); i++) {
        if (ll)
            list[ll++] = ',';
        memcpy(list + ll, base + off[i], len[i]);
        ll += len[i];
    }
    const uint8_t *m;
    size_t pos = 0, mlen;
    while (next_msg(r, o->batch, &pos, &m, &mlen)) {
        int got = channels_publish_offs(w, list, ll, o->opcode, m, mlen, offs);
        if (got >= nchan) {
            for (int i = 0; i < nchan; i++) {
                if (!po->have)
                    po->first[i] = offs[i];
                po->last[i] = offs[i];
            }
            po->have = 1;
        }
        if (got == -1) {
            answer_failed(hc, errno, list, ll, mlen);
            return -1;
        }
    }
    return 0;
}

/* The request is complete and passed every check of its headers. */
static void done(struct http_conn *hc)
{
    struct worker *w = hc->svc->w;
    struct http_request *r = &hc->req;
    uint16_t off[CHAN_MAX];
    uint8_t len[CHAN_MAX];
    const char *why;
    struct pub_opts o;
    parse_query(r, &o); /* checked at the headers */
    int nchan = channel_list(hc, off, len, &why);
    if (nchan < 0) { /* max_channels_per_conn was lowered by a reload meanwhile */
        http_refuse(hc, 400, why, 0);
        return;
    }
    nchan = dedupe(r->url + PREFIX, off, len, nchan);
    if (o.opcode == WS_OP_TEXT && !utf8_valid(r->body, r->body_len)) {
        http_refuse(hc, 400, "text message is not valid UTF-8 (send ?type=binary for bytes)", 0);
        return;
    }
    /* Check every message first, so a request is published whole or not at all. */
    size_t pos = 0, mlen, max = ring_max_payload(w->ring);
    const uint8_t *m;
    uint64_t msgs = 0;
    while (next_msg(r, o.batch, &pos, &m, &mlen)) {
        if (mlen > max) {
            http_refuse(hc, 413, "message larger than the publish ring accepts (ring_size / 4)", 0);
            return;
        }
        msgs++;
    }
    if (!channels_can_publish(w) && msgs > 1) {
        /* Redis is down: publish_all's first channels_publish fails and
         * answers 503 (never 202 for a message that went nowhere), and
         * broker_publish counts that message lost; the rest of the batch
         * is lost with it. */
        shm_add(&w->slot->broker_lost, msgs - 1);
    }
    static struct pub_offsets po;
    po.have = 0;
    if (publish_all(hc, &o, off, len, nchan, &po) == 0)
        answer_published(hc, r->url + PREFIX, off, len, nchan, msgs, &po);
}

const struct http_route route_publish = {"/pub/", ROUTE_PREFIX, "POST", head, done};
