/* redis_link.h: the Redis broker's two connections (broker_redis.c, the
 * pub/sub side; redis_link.c, connecting, the handshake, back-off and the
 * health PING). Private to those two files. */
#ifndef WSMILL_REDIS_LINK_H
#define WSMILL_REDIS_LINK_H
#include <ev.h>
#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/config.h"
#include "../../common/redisurl.h"
#include "broker.h"

#define BACKOFF_FIRST_S 0.1
#define BACKOFF_MAX_S   5.0
#define PING_INTERVAL_S 1.0 /* the publish connection is PINGed this often... */
#define PING_TIMEOUT_S  3.0 /* ...and a Redis that leaves a PING unanswered this long is down */

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
    char sync_key[CONFIG_STR_MAX + 40]; /* this worker's own channel for read markers (redis_hist.c) */
    int sync_live;                      /* its SUBSCRIBE is confirmed */
    int sync_wanted;                    /* a wsmill.v1 client came: keep it subscribed */
    ev_timer health;                    /* PINGs the publish connection */
    double ping_sent;                   /* when the outstanding PING went out; 0 = none */
};

/* Starts (or restarts) connecting l: [AUTH] [SELECT] PING, then ready. */
void redis_link_connect(struct link *l);
/* The health timer's callback (PING_INTERVAL_S): drops stalled links. */
void redis_link_health(struct ev_loop *loop, ev_timer *t, int revents);
/* Sets up l as one of b's links (role "subscribe" or "publish"). */
void redis_link_init(struct broker *b, struct link *l, const char *role);
/* Publishes the links' state to the status (connected, connecting, down). */
void redis_link_update_state(struct broker *b);
/* In broker_redis.c: a link became ready (after a reconnect the subscribe
 * link must SUBSCRIBE again to every channel). */
void broker_redis_link_ready(struct broker *b, struct link *l);
/* In broker_redis.c: subscribes this worker's sync channel (now, and after
 * every reconnect). */
void broker_redis_want_sync(struct broker *b);

#endif
