/* route_publish.c: POST /pub/A,B?type=text|binary&batch=lines publishes
 * the body (or each of its lines) to channels A and B through the broker,
 * so it reaches subscribers on every worker (and, with Redis, every node)
 * whichever one took the request. Answers 202 with what was published and
 * the offsets it got: at once with broker = local, once Redis answered
 * with broker = redis (docs/publish-api.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/hbuf.h"
#include "../../common/log.h"
#include "../../common/ring.h"
#include "../../common/utf8.h"
#include "../../common/ws_frame.h"
#include "../pubsub/broker.h"
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

/* One request's publishing: its channels, how many messages, the offsets
 * they got (docs/history.md: per channel the first and last message's)
 * and, with broker = redis, how many of Redis's answers are still to come
 * (the HTTP answer waits for them: http_conn_defer). */
struct pub_run {
    struct http_wait *hw; /* the answer to give once Redis answered; NULL: none */
    int nchan, have, sealed;
    int outstanding;     /* publishes whose offsets Redis still owes */
    uint64_t msgs, lost; /* lost: Redis refused them, or went away first */
    size_t ll;
    char list[RING_CHANNEL_MAX]; /* "a,b" */
    uint64_t *first, *last;      /* nchan each, after the struct */
};

static struct pub_run *run_new(const char *base, const uint16_t *off, const uint8_t *len, int nchan)
{
    struct pub_run *run = calloc(1, sizeof(*run) + 2 * (size_t)nchan * sizeof(uint64_t));
    if (!run)
        return NULL;
    run->nchan = nchan;
    run->first = (uint64_t *)(run + 1);
    run->last = run->first + nchan;
    for (int i = 0; i < nchan && run->ll + len[i] + 1 <= sizeof(run->list); i++) {
        if (run->ll)
            run->list[run->ll++] = ',';
        memcpy(run->list + run->ll, base + off[i], len[i]);
        run->ll += len[i];
    }
    return run;
}

static void run_offsets(struct pub_run *run, const uint64_t *offs, int n)
{
    for (int i = 0; i < run->nchan && i < n; i++) {
        if (!run->have)
            run->first[i] = offs[i];
        run->last[i] = offs[i];
    }
    run->have = 1;
}

/* Appends ,"KEY":{"name":offset,...}. */
static void offsets_json(struct hbuf *b, const struct pub_run *run, const char *key, const uint64_t *o)
{
    size_t at = 0, nl;
    const char *name;
    hbuf_printf(b, ",\"%s\":{", key);
    for (int i = 0; hs_list_next(run->list, run->ll, &at, &name, &nl); i++)
        hbuf_printf(b, "%s\"%.*s\":%llu", i ? "," : "", (int)nl, name, (unsigned long long)o[i]);
    hbuf_put(b, "}", 1);
}

/* The 202's body: what was published, and the offsets when known. */
static void published_json(struct hbuf *b, const struct pub_run *run)
{
    size_t at = 0, nl;
    const char *name;
    hbuf_printf(b, "{\"published\":%llu,\"messages\":%llu,\"channels\":[",
                (unsigned long long)(run->msgs * (uint64_t)run->nchan), (unsigned long long)run->msgs);
    for (int i = 0; hs_list_next(run->list, run->ll, &at, &name, &nl); i++)
        hbuf_printf(b, "%s\"%.*s\"", i ? "," : "", (int)nl, name);
    hbuf_put(b, "]", 1);
    if (run->have && !run->lost) {
        offsets_json(b, run, "offsets", run->last);
        if (run->msgs > 1)
            offsets_json(b, run, "first_offsets", run->first);
    }
    hbuf_put(b, "}\n", 2);
}

static void answer_published(struct http_conn *hc, const struct pub_run *run)
{
    struct hbuf b = {0};
    published_json(&b, run);
    if (b.failed)
        http_refuse(hc, 503, "out of memory", 0);
    else
        http_respond(hc, 202, "application/json", "", b.p, b.len);
    hbuf_free(&b);
}

/* Every answer Redis owed came (and the request is done publishing):
 * answer the client, 202 with the offsets, or 503 when Redis lost some. */
static void run_maybe_done(struct pub_run *run)
{
    if (!run->sealed || run->outstanding)
        return;
    if (run->hw) {
        struct hbuf b = {0};
        if (run->lost)
            hbuf_printf(
                &b,
                "{\"error\":\"broker lost %llu of %llu messages: Redis refused them or went away before "
                "answering\",\"broker\":\"redis\"}\n",
                (unsigned long long)run->lost, (unsigned long long)run->msgs);
        else
            published_json(&b, run);
        if (b.failed)
            http_wait_answer(run->hw, 503, "application/json", "", "{\"error\":\"out of memory\"}\n", 26);
        else
            http_wait_answer(run->hw, run->lost ? 503 : 202, "application/json", "", b.p, b.len);
        hbuf_free(&b);
    }
    free(run);
}

/* Redis answered one publish (broker_later). */
static void offsets_came(void *ctx, int ok, const uint64_t *offs, int n)
{
    struct pub_run *run = ctx;
    if (ok && n >= run->nchan)
        run_offsets(run, offs, n);
    else
        run->lost++;
    run->outstanding--;
    run_maybe_done(run);
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
static int publish_all(struct http_conn *hc, const struct pub_opts *o, struct pub_run *run)
{
    static uint64_t offs[RING_OFFS_MAX];
    struct worker *w = hc->svc->w;
    const struct http_request *r = &hc->req;
    const struct broker_later later = {offsets_came, run};
    int redis = w->cfg.broker == BROKER_REDIS;
    const uint8_t *m;
    size_t pos = 0, mlen;
    while (next_msg(r, o->batch, &pos, &m, &mlen)) {
        run->outstanding += redis;
        int got =
            channels_publish_offs(w, run->list, run->ll, o->opcode, m, mlen, offs, redis ? &later : NULL);
        if (got == -1) {
            run->outstanding -= redis; /* refused: no answer will come for it */
            answer_failed(hc, errno, run->list, run->ll, mlen);
            return -1;
        }
        if (got >= run->nchan)
            run_offsets(run, offs, got);
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
    struct pub_run *run = run_new(r->url + PREFIX, off, len, nchan);
    if (!run) {
        http_refuse(hc, 503, "out of memory", 0);
        return;
    }
    run->msgs = msgs;
    if (publish_all(hc, &o, run) == 0) {
        if (run->outstanding && (run->hw = http_wait_new()))
            http_conn_defer(hc, run->hw); /* broker = redis: 202 with the offsets once Redis gave them */
        else
            answer_published(hc, run);
    }
    run->sealed = 1;
    run_maybe_done(run);
}

const struct http_route route_publish = {"/pub/", ROUTE_PREFIX, "POST", head, done};
