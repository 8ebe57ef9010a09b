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
 * channel of its list, with the envelope
 *     [1: version 1][1: opcode][2: list length, big-endian][list][payload]
 * so the worker that receives it through channel X knows the whole list and
 * can skip subscribers that get it through a channel listed before X
 * (channels_deliver): each connection gets it once, with no state kept.
 *
 * A link (one redisAsyncContext) is ready once its handshake answered:
 * [AUTH] [SELECT] PING. The PING matters even without a password: a Redis
 * that wants one answers NOAUTH, which is how we tell "wrong or missing
 * password" from "unreachable" in the log. hiredis frees a context itself
 * after a failed connect or a disconnect; l->ac is cleared in those
 * callbacks and never touched afterwards. */
#include <errno.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/log.h"
#include "../../common/redisurl.h"
#include "../worker-t.h"
#include "broker.h"

#define BACKOFF_FIRST_S    0.1
#define BACKOFF_MAX_S      5.0
#define LOG_REPEAT_S       30.0        /* the same failure is logged again after this long */
#define BROKER_MAX_PENDING (64u << 20) /* bytes of PUBLISH awaiting Redis's answer */
#define PING_INTERVAL_S    1.0         /* the publish connection is PINGed this often... */
#define PING_TIMEOUT_S     3.0         /* ...and a Redis that leaves a PING unanswered this long is down */
#define ENV_HEADER         4
#define ENV_VERSION        1
#define KEY_MAX            (CONFIG_STR_MAX + 256) /* prefix + a channel name (128 at most) */
#define ENV_KEEP           (64 * 1024)            /* a larger envelope buffer is freed after use */

struct broker;

struct link {
    struct broker *b;
    redisAsyncContext *ac; /* NULL while disconnected */
    const char *role;      /* "subscribe" or "publish" */
    int ready;             /* handshake answered: commands may flow */
    int failing;           /* a handshake reply failed: the rest is ignored */
    int was_ready;         /* the next ready is a reconnect */
    double backoff;
    double started; /* when the current connect began */
    ev_timer retry;
    char last_err[256];
    double last_log;
};

struct broker {
    struct worker *w;
    const struct broker_sink *sink;
    struct redis_url url;
    char where[REDISURL_FIELD_MAX + 16]; /* HOST:PORT for messages */
    char prefix[CONFIG_STR_MAX];         /* redis_prefix as this worker started: a reload
                                            that changes it starts new workers */
    size_t prefix_len;
    struct link sub, pub;
    int failed; /* some attempt failed: "down", not "connecting" */
    int stopping;
    size_t pending; /* bytes of PUBLISH without an answer yet */
    uint8_t *env;   /* envelope buffer */
    size_t env_cap;
    ev_timer health;  /* PINGs the publish connection */
    double ping_sent; /* when the outstanding PING went out; 0 = none */
};

static void link_connect(struct link *l);

/* Logs a link failure once, again when it changes or after LOG_REPEAT_S,
 * and remembers it for redis_why. */
static void __attribute__((format(printf, 2, 3))) link_error(struct link *l, const char *fmt, ...)
{
    char msg[sizeof(l->last_err)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    double now = ev_now(l->b->w->loop);
    if (strcmp(msg, l->last_err) || now - l->last_log >= LOG_REPEAT_S) {
        log_error("redis broker %s (%s connection): %s; retrying with back-off up to %.0f s", l->b->where,
                  l->role, msg, BACKOFF_MAX_S);
        l->last_log = now;
    }
    memcpy(l->last_err, msg, sizeof(msg));
    l->b->failed = 1;
}

static void update_state(struct broker *b)
{
    int st = b->sub.ready && b->pub.ready ? BROKER_STATE_CONNECTED
             : b->failed                  ? BROKER_STATE_DOWN
                                          : BROKER_STATE_CONNECTING;
    atomic_store(&b->w->slot->broker_state, (uint32_t)st);
}

static void link_retry(struct link *l)
{
    if (l->b->stopping)
        return;
    l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_FIRST_S;
    if (l->backoff > BACKOFF_MAX_S)
        l->backoff = BACKOFF_MAX_S;
    ev_timer_set(&l->retry, l->backoff, 0);
    ev_timer_start(l->b->w->loop, &l->retry);
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    link_connect(container_of(t, struct link, retry));
}

/* The link is gone (hiredis frees the context): mark it and try again. */
static void link_lost(struct link *l)
{
    l->ac = NULL;
    l->ready = 0;
    update_state(l->b);
    link_retry(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (status == REDIS_OK)
        return; /* ready comes with the PING's answer */
    link_error(l, "cannot connect: %s (is Redis running at this address?)", ac->errstr);
    link_lost(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (l->b->stopping) {
        l->ac = NULL;
        return;
    }
    if (l->ready)
        link_error(l, "connection lost: %s", status == REDIS_OK ? "closed" : ac->errstr);
    link_lost(l);
}

/* A handshake reply; NULL when the context is going away. Returns 1 when it
 * failed (the link is then being closed). */
static int handshake_failed(struct link *l, redisAsyncContext *ac, redisReply *r, const char *what,
                            const char *hint)
{
    if (!r || l->failing)
        return 1;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    link_error(l, "%s refused: %.*s%s", what, (int)r->len, r->str, hint);
    l->failing = 1;
    redisAsyncDisconnect(ac); /* after the replies still due; then on_disconnect retries */
    return 1;
}

static void auth_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    handshake_failed(priv, ac, reply, "AUTH", " (wrong password or user in redis_url)");
}

static void select_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    handshake_failed(priv, ac, reply, "SELECT", " (database number in redis_url)");
}

static void subscribe_one(struct worker *w, const char *name, size_t len);

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct link *l = priv;
    redisReply *r = reply;
    if (handshake_failed(l, ac, r, "PING",
                         r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOAUTH", 6)
                             ? " (Redis wants a password: put it in redis_url)"
                             : ""))
        return;
    struct broker *b = l->b;
    l->ready = 1;
    l->backoff = 0;
    l->last_err[0] = '\0';
    if (l->was_ready) {
        shm_add(&b->w->slot->broker_reconnects, 1);
        log_notice("redis broker %s (%s connection): reconnected", b->where, l->role);
    } else {
        log_info("redis broker %s (%s connection): connected", b->where, l->role);
    }
    l->was_ready = 1;
    if (l == &b->sub) /* Redis forgot our subscriptions with the old connection */
        b->sink->each_channel(b->w, subscribe_one);
    update_state(b);
}

static void link_connect(struct link *l)
{
    struct broker *b = l->b;
    const struct redis_url *u = &b->url;
    redisAsyncContext *ac = redisAsyncConnect(u->host, u->port);
    if (!ac) {
        link_error(l, "out of memory for a Redis connection");
        link_retry(l);
        return;
    }
    if (ac->err) {
        link_error(l, "cannot connect: %s (is Redis running at this address?)", ac->errstr);
        redisAsyncFree(ac);
        link_retry(l);
        return;
    }
    ac->data = l;
    if (redisLibevAttach(b->w->loop, ac) != REDIS_OK) {
        link_error(l, "cannot attach the Redis connection to the event loop");
        redisAsyncFree(ac);
        link_retry(l);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->failing = 0;
    l->started = ev_now(b->w->loop);
    /* Queued now, written once the connection is up. */
    if (u->password[0] && u->user[0])
        redisAsyncCommand(ac, auth_cb, l, "AUTH %s %s", u->user, u->password);
    else if (u->password[0])
        redisAsyncCommand(ac, auth_cb, l, "AUTH %s", u->password);
    if (u->db && l == &b->pub) /* pub/sub ignores databases; SELECT only checks the URL */
        redisAsyncCommand(ac, select_cb, l, "SELECT %d", u->db);
    redisAsyncCommand(ac, ping_cb, l, "PING");
}

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
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len != 7 || memcmp(r->element[0]->str, "message", 7))
        return;
    const redisReply *chan = r->element[1], *data = r->element[2];
    size_t pl = b->prefix_len;
    const uint8_t *e = (const uint8_t *)data->str;
    if (chan->len < pl || data->type != REDIS_REPLY_STRING || data->len < ENV_HEADER || e[0] != ENV_VERSION) {
        log_debug("redis broker: ignored a message on %.*s that is not a wsmill envelope", (int)chan->len,
                  chan->str);
        return;
    }
    size_t ll = (size_t)e[2] << 8 | e[3];
    if (ENV_HEADER + ll > data->len) {
        log_debug("redis broker: ignored a truncated envelope on %.*s", (int)chan->len, chan->str);
        return;
    }
    shm_add(&b->w->slot->redis_received, 1);
    b->sink->deliver(b->w, chan->str + pl, chan->len - pl, (const char *)e + ENV_HEADER, ll, e[1],
                     e + ENV_HEADER + ll, data->len - ENV_HEADER - ll);
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
                         const uint8_t *payload, size_t len)
{
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
    size_t el = ENV_HEADER + list_len + len;
    if (el > b->env_cap) {
        uint8_t *p = realloc(b->env, el);
        if (!p) {
            shm_add(&w->slot->publish_rejected, 1);
            errno = ENOMEM;
            return -1;
        }
        b->env = p;
        b->env_cap = el;
    }
    uint8_t *e = b->env;
    e[0] = ENV_VERSION;
    e[1] = (uint8_t)opcode;
    e[2] = (uint8_t)(list_len >> 8);
    e[3] = (uint8_t)list_len;
    memcpy(e + ENV_HEADER, list, list_len);
    memcpy(e + ENV_HEADER + list_len, payload, len);
    int sent = 0;
    size_t pos = 0, nl;
    const char *name;
    while (hs_list_next(list, list_len, &pos, &name, &nl)) {
        char key[KEY_MAX];
        size_t kl = make_key(b, name, nl, key);
        const char *argv[3] = {"PUBLISH", key, (const char *)e};
        size_t argvlen[3] = {7, kl, el};
        size_t cost = kl + el + 64;
        if (redisAsyncCommandArgv(b->pub.ac, publish_cb, (void *)(uintptr_t)cost, 3, argv, argvlen) !=
            REDIS_OK) {
            shm_add(&w->slot->broker_lost, 1);
            continue;
        }
        b->pending += cost;
        shm_add(&w->slot->redis_publishes, 1);
        sent++;
    }
    if (b->env_cap > ENV_KEEP) {
        free(b->env);
        b->env = NULL;
        b->env_cap = 0;
    }
    if (!sent) { /* hiredis refused every one: the context is closing */
        shm_add(&w->slot->publish_rejected, 1);
        errno = ENOTCONN;
        return -1;
    }
    /* Written now, not when the loop comes round: the caller answers 202
     * next, and a publisher that then publishes through another worker (a
     * new API connection lands anywhere) must reach Redis second, or Redis
     * would see the two in either order. A failed write closes the context
     * (publish_cb counts the message lost): then it is refused, not 202. */
    redisAsyncHandleWrite(b->pub.ac);
    if (!b->pub.ready) {
        shm_add(&w->slot->publish_rejected, 1);
        errno = ENOTCONN;
        return -1;
    }
    shm_add(&w->slot->publishes, 1);
    return 0;
}

/* ---- health ------------------------------------------------------------ */

static void health_ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)reply; /* answered, or the connection went away: either way not stalled */
    ((struct broker *)priv)->ping_sent = 0;
}

/* Drops a link now (not from inside a hiredis callback): what was sent and
 * not answered comes back NULL (publishes count as lost), and it is retried
 * with back-off like after any failure. */
static void link_drop(struct link *l)
{
    redisAsyncContext *ac = l->ac;
    l->ready = 0; /* on_disconnect: no "connection lost" on top */
    redisAsyncFree(ac);
    if (l->ac == ac) /* it never connected: hiredis called nothing */
        link_lost(l);
}

/* A Redis that stops answering while its TCP connection stays open (a
 * stopped process, a partition) would otherwise take publishes into
 * hiredis's buffer and never answer, or hold a connect in its handshake: a
 * PING left unanswered PING_TIMEOUT_S drops both links, a handshake not
 * done in that time drops its link. */
static void health_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct broker *b = container_of(t, struct broker, health);
    double now = ev_now(loop);
    int stalled = b->ping_sent && now - b->ping_sent >= PING_TIMEOUT_S;
    struct link *links[2] = {&b->pub, &b->sub};
    for (int i = 0; i < 2; i++) {
        struct link *l = links[i];
        if (!l->ac)
            continue;
        if (stalled) {
            link_error(l, "no answer to PING for %.0f s: Redis stalled or unreachable", PING_TIMEOUT_S);
            link_drop(l);
        } else if (!l->ready && now - l->started >= PING_TIMEOUT_S) {
            link_error(l, "no answer within %.0f s of connecting: Redis stalled or unreachable",
                       PING_TIMEOUT_S);
            link_drop(l);
        }
    }
    if (stalled)
        b->ping_sent = 0;
    else if (b->pub.ready && !b->ping_sent &&
             redisAsyncCommand(b->pub.ac, health_ping_cb, b, "PING") == REDIS_OK)
        b->ping_sent = now;
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
    snprintf(b->where, sizeof(b->where), strchr(b->url.host, ':') ? "[%s]:%u" : "%s:%u", b->url.host,
             (unsigned)b->url.port);
    struct link *links[2] = {&b->sub, &b->pub};
    const char *roles[2] = {"subscribe", "publish"};
    for (int i = 0; i < 2; i++) {
        links[i]->b = b;
        links[i]->role = roles[i];
        ev_timer_init(&links[i]->retry, retry_cb, 0, 0);
    }
    ev_timer_init(&b->health, health_cb, PING_INTERVAL_S, PING_INTERVAL_S);
    ev_timer_start(w->loop, &b->health);
    w->broker_state = b;
    update_state(b);
    link_connect(&b->sub);
    link_connect(&b->pub);
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
