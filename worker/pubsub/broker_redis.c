/* broker_redis.c: broker = redis, channels across nodes over Redis pub/sub.
 *
 * Each worker holds two Redis connections in its own libev loop (hiredis's
 * libev adapter): one that SUBSCRIBEs to the channels this worker has local
 * subscribers for, and one that PUBLISHes. A publish goes to Redis only and
 * is delivered when it comes back, on every node including this one, so
 * every subscriber gets it once. When Redis is down publishes are refused
 * (the caller answers 503 or closes 1013), the connections are retried with
 * back-off (100 ms doubling to 5 s) and every subscription is restored.
 *
 * A message travels as PUBLISH <redis_prefix><channel> <envelope>, once per
 * channel of its list, inside one Lua script that also gives each channel
 * its offset and keeps the message (redis_hist.c), with the envelope
 *     [1: version 2][1: opcode][2: list length, big-endian][list]
 *     ["OFFSET EPOCH\n"][payload]
 * so the worker that receives it through channel X knows the whole list and
 * can skip subscribers that get it through a channel listed before X
 * (fanout_deliver): each connection gets it once, with no state kept; and
 * X's wsmill.v1 subscribers get X's offset.
 *
 * The two connections themselves (connect, handshake, back-off, health)
 * are redis_link.c's. */
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/log.h"
#include "../../common/ring.h"
#include "../worker-t.h"
#include "redis_hist.h"
#include "redis_link.h"

#define BROKER_MAX_PENDING (64u << 20)            /* bytes of PUBLISH awaiting Redis's answer */
#define KEY_MAX            (CONFIG_STR_MAX + 256) /* prefix + a channel name (128 at most) */

/* ---- subscriptions and messages ---------------------------------------- */

static size_t make_key(const struct broker *b, const char *name, size_t len, char *key)
{
    memcpy(key, b->prefix, b->prefix_len);
    memcpy(key + b->prefix_len, name, len);
    return b->prefix_len + len;
}

/* A message on a subscribed channel (also the subscribe/unsubscribe
 * confirmations, and NULL when the context goes away). */
static void message_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct broker *b = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *kind = r->element[0], *chan = r->element[1], *data = r->element[2];
    size_t pl = b->prefix_len;
    if (chan->type != REDIS_REPLY_STRING)
        return;
    int sync = chan->len == strlen(b->sync_key) && !memcmp(chan->str, b->sync_key, chan->len);
    if (kind->len == 9 && !memcmp(kind->str, "subscribe", 9) && chan->len >= pl) {
        if (sync)
            b->sync_live = 1;
        b->sink->subscribed(b->w, sync ? "" : chan->str + pl, sync ? 0 : chan->len - pl);
        return;
    }
    if (kind->len != 7 || memcmp(kind->str, "message", 7))
        return;
    if (sync) { /* a read's marker: what was published before it is here */
        if (data->type == REDIS_REPLY_STRING)
            b->sink->synced(b->w, strtoull(data->str, NULL, 10));
        return;
    }
    struct redis_envelope env;
    if (chan->len < pl || data->type != REDIS_REPLY_STRING ||
        redis_hist_envelope((const uint8_t *)data->str, data->len, &env) == -1) {
        log_debug("redis broker: ignored a message on %.*s that is not a wsmill envelope", (int)chan->len,
                  chan->str);
        return;
    }
    shm_add(&b->w->slot->redis_received, 1);
    b->sink->deliver(b->w, chan->str + pl, chan->len - pl, env.list, env.list_len, env.opcode, env.payload,
                     env.len, env.offset);
}

static void subscribe_cmd(struct broker *b, const char *cmd, const char *name, size_t len)
{
    char key[KEY_MAX];
    size_t kl = make_key(b, name, len, key);
    if (redisAsyncCommand(b->sub.ac, message_cb, b, "%s %b", cmd, key, kl) != REDIS_OK)
        log_warn("redis broker: %s %.*s not sent: %s", cmd, (int)kl, key, b->sub.ac->errstr);
}

static void subscribe_one(struct worker *w, const char *name, size_t len)
{
    subscribe_cmd(w->broker_state, "SUBSCRIBE", name, len);
}

static void redis_subscribe(struct worker *w, const char *name, size_t len)
{
    struct broker *b = w->broker_state;
    if (b && b->sub.ready) /* else the next ready subscribes to every channel */
        subscribe_cmd(b, "SUBSCRIBE", name, len);
}

static void redis_unsubscribe(struct worker *w, const char *name, size_t len)
{
    struct broker *b = w->broker_state;
    if (b && b->sub.ready)
        subscribe_cmd(b, "UNSUBSCRIBE", name, len);
}

/* ---- publishing ---------------------------------------------------------- */

/* PUBLISH's answer: the number of receivers; NULL when the connection went
 * away first (the message may or may not have been published). */
static void publish_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct link *l = ac->data;
    struct broker *b = l->b;
    redisReply *r = reply;
    b->pending -= (size_t)(uintptr_t)priv;
    if (!r) {
        shm_add(&b->w->slot->broker_lost, 1);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        shm_add(&b->w->slot->broker_lost, 1);
        log_warn("redis broker %s: PUBLISH refused: %.*s", b->where, (int)r->len, r->str);
    }
}

/* A publish whose offsets someone waits for (broker_later). */
struct later_req {
    size_t cost;
    struct broker_later later;
};

static void publish_later_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct later_req *q = priv;
    const redisReply *r = reply;
    uint64_t offs[RING_OFFS_MAX];
    int n = 0, ok = r && r->type == REDIS_REPLY_ARRAY;
    publish_cb(ac, reply, (void *)(uintptr_t)q->cost);
    for (size_t i = 0; ok && i < r->elements && n < RING_OFFS_MAX; i++)
        offs[n++] = (uint64_t)r->element[i]->integer;
    q->later.fn(q->later.ctx, ok, offs, n);
    free(q);
}

static int redis_can_publish(const struct worker *w)
{
    const struct broker *b = w->broker_state;
    return b && b->pub.ready && b->pending <= BROKER_MAX_PENDING;
}

static void redis_why(const struct worker *w, char *buf, size_t len)
{
    const struct broker *b = w->broker_state;
    if (!b) {
        snprintf(buf, len, "no broker");
        return;
    }
    if (b->pub.ready)
        snprintf(buf, len, "broker unavailable: redis %s has more than %u MB of publishes unanswered",
                 b->where, BROKER_MAX_PENDING >> 20);
    else
        snprintf(buf, len, "broker unavailable: redis %s is down (%s)", b->where,
                 b->pub.last_err[0] ? b->pub.last_err : "connecting");
    for (char *p = buf; *p; p++) /* JSON-safe: Redis's words are not ours */
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
}

static int redis_publish(struct worker *w, const char *list, size_t list_len, unsigned opcode,
                         const uint8_t *payload, size_t len, uint64_t *offs, const struct broker_later *later)
{
    (void)offs; /* Redis's answer comes later: later gets them */
    struct broker *b = w->broker_state;
    if (!redis_can_publish(w)) {
        shm_add(&w->slot->broker_lost, 1);
        shm_add(&w->slot->publish_rejected, 1);
        errno = b->pub.ready ? ENOBUFS : ENOTCONN;
        return -1;
    }
    if (list_len > 0xffff) {
        shm_add(&w->slot->publish_rejected, 1);
        errno = EMSGSIZE;
        return -1;
    }
    /* One EVAL for the whole list: each channel's offset, its history and
     * its PUBLISH in one atomic step (redis_hist.c). */
    size_t cost = list_len + len + 256;
    int sent = 0;
    struct later_req *q = later ? malloc(sizeof(*q)) : NULL;
    if (q)
        *q = (struct later_req){cost, *later};
    if (later && !q) {
        shm_add(&w->slot->publish_rejected, 1);
        errno = ENOBUFS;
        return -1;
    }
    if (redis_hist_publish(b, q ? publish_later_cb : publish_cb, q ? (void *)q : (void *)(uintptr_t)cost,
                           list, list_len, opcode, payload, len) == REDIS_OK) {
        b->pending += cost;
        size_t at = 0, nl;
        const char *name;
        while (hs_list_next(list, list_len, &at, &name, &nl))
            shm_add(&w->slot->redis_publishes, 1); /* one PUBLISH per channel, inside the script */
        sent = 1;
    } else {
        shm_add(&w->slot->broker_lost, 1);
        free(q);
    }
    if (!sent) { /* hiredis refused every one: the context is closing */
        shm_add(&w->slot->publish_rejected, 1);
        errno = ENOTCONN;
        return -1;
    }
    if (q) {
        /* Its caller answers once Redis did (later), so the order between
         * publishers is Redis's: the script leaves with the loop's next
         * write, with the others of this wakeup, and a failed write reaches
         * later as a loss. */
        shm_add(&w->slot->publishes, 1);
        return 0;
    }
    /* Written now, not when the loop comes round: the caller answers at
     * once, and a publisher that then publishes through another worker (a
     * new connection lands anywhere) must reach Redis second, or Redis
     * would see the two in either order. A failed write closes the context
     * (publish_cb counts the message lost): then it is refused. */
    redisAsyncHandleWrite(b->pub.ac);
    if (!b->pub.ready) {
        shm_add(&w->slot->publish_rejected, 1);
        errno = ENOTCONN;
        return -1;
    }
    shm_add(&w->slot->publishes, 1);
    return 0;
}

/* This worker's sync channel (redis_hist.c), subscribed from the first
 * wsmill.v1 open on: a node without such clients keeps none. */
static void sync_subscribe(struct broker *b)
{
    if (redisAsyncCommand(b->sub.ac, message_cb, b, "SUBSCRIBE %s", b->sync_key) != REDIS_OK)
        log_warn("redis broker: SUBSCRIBE %s not sent", b->sync_key);
}

void broker_redis_want_sync(struct broker *b)
{
    if (b->sync_wanted)
        return;
    b->sync_wanted = 1;
    if (b->sub.ready)
        sync_subscribe(b);
}

/* A link is ready: Redis forgot our subscriptions with the old subscribe
 * connection, so every channel is subscribed again. */
void broker_redis_link_ready(struct broker *b, struct link *l)
{
    if (l == &b->sub) {
        b->sync_live = 0;
        if (b->sync_wanted)
            sync_subscribe(b);
        b->sink->each_channel(b->w, subscribe_one);
    } else {
        b->sink->subscribed(b->w, "", 0); /* history reads waiting for the publish link may go */
    }
    redis_link_update_state(b);
}

/* ---- life ------------------------------------------------------------------ */

static int redis_start(struct worker *w, const struct broker_sink *sink)
{
    char err[256];
    struct broker *b = calloc(1, sizeof(*b));
    if (!b) {
        log_crit("out of memory for the redis broker");
        return -1;
    }
    if (redis_url_parse(w->cfg.redis_url, &b->url, err, sizeof(err)) == -1) {
        log_error("redis_url: %s", err);
        free(b);
        return -1;
    }
    b->w = w;
    b->sink = sink;
    snprintf(b->prefix, sizeof(b->prefix), "%s", w->cfg.redis_prefix);
    b->prefix_len = strlen(b->prefix);
    /* '#' is in no channel name: this never meets a channel's key. */
    uint64_t nonce = ((uint64_t)getpid() << 32) ^ (uint64_t)(ev_time() * 1e6);
    snprintf(b->sync_key, sizeof(b->sync_key), "%s#sync:%016llx", b->prefix, (unsigned long long)nonce);
    snprintf(b->where, sizeof(b->where), strchr(b->url.host, ':') ? "[%s]:%u" : "%s:%u", b->url.host,
             (unsigned)b->url.port);
    struct link *links[2] = {&b->sub, &b->pub};
    const char *roles[2] = {"subscribe", "publish"};
    for (int i = 0; i < 2; i++) {
        redis_link_init(b, links[i], roles[i]);
    }
    ev_timer_init(&b->health, redis_link_health, PING_INTERVAL_S, PING_INTERVAL_S);
    ev_timer_start(w->loop, &b->health);
    w->broker_state = b;
    redis_link_update_state(b);
    redis_link_connect(&b->sub);
    redis_link_connect(&b->pub);
    return 0;
}

static void redis_stop(struct worker *w)
{
    struct broker *b = w->broker_state;
    if (!b)
        return;
    b->stopping = 1;
    ev_timer_stop(w->loop, &b->health);
    struct link *links[2] = {&b->sub, &b->pub};
    for (int i = 0; i < 2; i++) {
        ev_timer_stop(w->loop, &links[i]->retry);
        if (links[i]->ac)
            redisAsyncFree(links[i]->ac); /* answers still due come back NULL: counted lost */
    }
    free(b->env);
    free(b);
    w->broker_state = NULL;
}

const struct broker_ops broker_redis = {
    .name = "redis",
    .start = redis_start,
    .stop = redis_stop,
    .channel_added = redis_subscribe,
    .channel_removed = redis_unsubscribe,
    .publish = redis_publish,
    .can_publish = redis_can_publish,
    .why = redis_why,
};
