/* redis_link.c: one of the Redis broker's connections (see broker_redis.c).
 *
 * A link (one redisAsyncContext) is ready once its handshake answered:
 * [AUTH] [SELECT] PING. The PING matters even without a password: a Redis
 * that wants one answers NOAUTH, which is how we tell "wrong or missing
 * password" from "unreachable" in the log. hiredis frees a context itself
 * after a failed connect or a disconnect; l->ac is cleared in those
 * callbacks and never touched afterwards. Failures are retried with
 * back-off; a PING left unanswered drops both links. */
#include "redis_link.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../common/log.h"
#include "../worker-t.h"

#define LOG_REPEAT_S 30.0 /* the same failure is logged again after this long */

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

void redis_link_update_state(struct broker *b)
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
    redis_link_connect(container_of(t, struct link, retry));
}

/* The link is gone (hiredis frees the context): mark it and try again. */
static void link_lost(struct link *l)
{
    l->ac = NULL;
    l->ready = 0;
    redis_link_update_state(l->b);
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
    broker_redis_link_ready(b, l);
}

void redis_link_connect(struct link *l)
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
void redis_link_health(struct ev_loop *loop, ev_timer *t, int revents)
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

void redis_link_init(struct broker *b, struct link *l, const char *role)
{
    l->b = b;
    l->role = role;
    ev_timer_init(&l->retry, retry_cb, 0, 0);
}
