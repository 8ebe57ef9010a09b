/* channels.c: the worker's channel table, the /ch/ endpoint and
 * publishing.
 *
 * A publish goes to the broker (broker.h): with broker = local into the
 * shared ring, which every worker, this one included, reads and delivers to
 * its own subscribers (fanout.c); with broker = redis to Redis, whence it
 * comes back through the sink (fanout_deliver). A channel exists in a
 * worker while it has subscribers there (or frames on their way to them);
 * its creation and end are told to the broker (Redis SUBSCRIBEs to it). */
#include "channels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/clock.h"
#include "../../common/handshake.h"
#include "../../common/history.h"
#include "../../common/jwt.h"
#include "../../common/log.h"
#include "../conn/endpoint.h"
#include "broker.h"
#include "channel.h"
#include "fanout.h"
#include "histsub.h"

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct channel **bucket(struct worker *w, const char *name, size_t n, int env)
{
    return &w->buckets[(hash_name(name, n) ^ (uint32_t)env) & (w->nbuckets - 1)];
}

struct channel *channels_find_kind(struct worker *w, const char *name, size_t n, int env)
{
    for (struct channel *ch = *bucket(w, name, n, env); ch; ch = ch->next)
        if (ch->name_len == n && ch->env == env && !memcmp(ch->name, name, n))
            return ch;
    return NULL;
}

struct channel *channels_find(struct worker *w, const char *name, size_t n)
{
    return channels_find_kind(w, name, n, 0);
}

static void rehash(struct worker *w)
{
    uint32_t nb = w->nbuckets * 2;
    struct channel **nbk = calloc(nb, sizeof(*nbk));
    if (!nbk)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < w->nbuckets; i++) {
        struct channel *ch = w->buckets[i];
        while (ch) {
            struct channel *next = ch->next;
            struct channel **b = &nbk[(hash_name(ch->name, ch->name_len) ^ ch->env) & (nb - 1)];
            ch->next = *b;
            *b = ch;
            ch = next;
        }
    }
    free(w->buckets);
    w->buckets = nbk;
    w->nbuckets = nb;
}

/* The channel's slot in the history store (made now: its position exists
 * from its first subscriber on), for the subscriber counts. */
static uint32_t store_index(struct worker *w, const char *name, size_t n)
{
    history_lock(w->history);
    struct history_chan *hc = history_chan_get_locked(w->history, name, n, (int64_t)(mono_ns() / 1000000));
    uint32_t idx = history_chan_index(w->history, hc);
    history_unlock(w->history);
    return idx;
}

/* This worker's subscribers of ch's name (both sides) into the store, for
 * GET /channels/NAME. */
static void publish_count(struct worker *w, const struct channel *ch)
{
    const struct channel *other = channels_find_kind(w, ch->name, ch->name_len, !ch->env);
    history_subs_set(w->history, w->id, ch->hidx, (int32_t)(ch->nsubs + (other ? other->nsubs : 0)));
}

static struct channel *channel_get(struct worker *w, const char *name, size_t n, int env)
{
    struct channel *ch = channels_find_kind(w, name, n, env);
    if (ch)
        return ch;
    ch = calloc(1, sizeof(*ch) + n);
    if (!ch)
        return NULL;
    memcpy(ch->name, name, n);
    ch->name_len = (uint8_t)n;
    ch->env = (uint8_t)env;
    ch->hidx = store_index(w, name, n);
    struct channel *other = channels_find_kind(w, name, n, !env);
    ch->live = other ? other->live : 0; /* Redis: one SUBSCRIBE per name */
    if (w->nchannels >= w->nbuckets)
        rehash(w);
    struct channel **b = bucket(w, name, n, env);
    ch->next = *b;
    *b = ch;
    w->nchannels++;
    w->nenv += (uint32_t)env;
    shm_add(&w->slot->channels, 1);
    /* The broker hears of a name once, whichever sides it has here. */
    if (!channels_find_kind(w, name, n, !env))
        w->broker->channel_added(w, ch->name, n);
    return ch;
}

void channels_maybe_free(struct worker *w, struct channel *ch)
{
    if (ch->nsubs || ch->active || ch->pinned || ch->holds)
        return;
    struct channel **pp = bucket(w, ch->name, ch->name_len, ch->env);
    while (*pp != ch)
        pp = &(*pp)->next;
    *pp = ch->next;
    fanout_channel_free(w, ch);
    if (!channels_find_kind(w, ch->name, ch->name_len, !ch->env))
        w->broker->channel_removed(w, ch->name, ch->name_len);
    w->nenv -= ch->env;
    free(ch->subs);
    free(ch);
    w->nchannels--;
    shm_sub(&w->slot->channels, 1);
}

/* New subscribers are owed what is published from now on. */
static int channel_add(struct channel *ch, uint32_t fd, uint32_t *idx)
{
    if (ch->nsubs == ch->cap) {
        uint32_t cap = ch->cap ? ch->cap * 2 : 4;
        struct sub *s = realloc(ch->subs, cap * sizeof(*s));
        if (!s)
            return -1;
        ch->subs = s;
        ch->cap = cap;
    }
    *idx = ch->nsubs;
    ch->subs[ch->nsubs++] = (struct sub){fd, ch->head};
    return 0;
}

/* The endpoint's open: joins c to every channel in list (validated by
 * check). Returns 0, or -1 when out of memory (the caller drops c, whose
 * close leaves what was joined). */
static int subscribe(struct conn *c, const char *list, size_t len)
{
    return channels_subscribe_kind(c, list, len, 0);
}

int channels_subscribe_kind(struct conn *c, const char *list, size_t len, int env)
{
    struct worker *w = conn_worker(c);
    uint16_t off[1024];
    uint8_t lens[1024];
    int n = hs_channel_list(list, len, (int)w->cfg.max_channels_per_conn, off, lens);
    if (n <= 0)
        return -1;
    struct conn_subs *s = malloc(sizeof(*s) + (size_t)n * sizeof(s->e[0]));
    if (!s)
        return -1;
    s->n = 0;
    s->pending = NULL;
    c->ep = s;
    for (int i = 0; i < n; i++) {
        int dup = 0; /* /ch/A,A joins A once */
        for (int j = 0; j < s->n && !dup; j++)
            dup = s->e[j].ch->name_len == lens[i] && !memcmp(s->e[j].ch->name, list + off[i], lens[i]);
        if (dup)
            continue;
        struct channel *ch = channel_get(w, list + off[i], lens[i], env);
        if (!ch || channel_add(ch, (uint32_t)conn_fd(c), &s->e[s->n].idx) == -1) {
            if (ch)
                channels_maybe_free(w, ch);
            return -1; /* the caller destroys c, which unsubscribes what was done */
        }
        s->e[s->n++].ch = ch;
        w->nsubscriptions++;
        publish_count(w, ch);
        shm_add(&w->slot->subscriptions, 1);
    }
    return 0;
}

struct channel *channels_hold(struct worker *w, const char *name, size_t n)
{
    struct channel *ch = channel_get(w, name, n, 1);
    if (ch)
        ch->holds++;
    return ch;
}

void channels_release(struct worker *w, struct channel *ch)
{
    ch->holds--;
    channels_maybe_free(w, ch);
}

/* The broker's confirmation that name is subscribed (Redis). */
static void subscribed(struct worker *w, const char *name, size_t n)
{
    for (int env = 0; env < 2; env++) {
        struct channel *ch = channels_find_kind(w, name, n, env);
        if (ch)
            ch->live = 1;
    }
    histsub_redis_subscribed(w);
}

/* The endpoint's close: leaves every channel. */
static void unsubscribe_all(struct conn *c)
{
    struct conn_subs *s = c->ep;
    if (!s)
        return;
    if (s->pending)
        histsub_redis_cancel(conn_worker(c), s->pending);
    struct worker *w = conn_worker(c);
    for (int i = 0; i < s->n; i++) {
        struct channel *ch = s->e[i].ch;
        uint32_t idx = s->e[i].idx;
        struct sub last = ch->subs[--ch->nsubs];
        if (idx != ch->nsubs) {
            /* Move the last subscriber into the hole and fix its index.
             * The sweep (fanout.c) visits [0, pos) downwards: a hole below
             * pos takes an unvisited subscriber or one visited already
             * (revisited, owed nothing new), never skips one. */
            ch->subs[idx] = last;
            struct conn_subs *ms = channel_subs_of(&w->conns[last.fd]);
            for (int j = 0; j < ms->n; j++)
                if (ms->e[j].ch == ch)
                    ms->e[j].idx = idx;
        }
        if (ch->pos > ch->nsubs)
            ch->pos = ch->nsubs;
        w->nsubscriptions--;
        publish_count(w, ch);
        shm_sub(&w->slot->subscriptions, 1);
        channels_maybe_free(w, ch);
    }
    free(s);
    c->ep = NULL;
}

int channels_publish(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len)
{
    static uint64_t offs[RING_OFFS_MAX];
    return channels_publish_offs(w, chan, chan_len, opcode, payload, len, offs, NULL) == -1 ? -1 : 0;
}

int channels_publish_offs(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                          const uint8_t *payload, size_t len, uint64_t *offs,
                          const struct broker_later *later)
{
    return w->broker->publish(w, chan, chan_len, opcode, payload, len, offs, later);
}

int channels_can_publish(const struct worker *w)
{
    return w->broker->can_publish(w);
}

void channels_why(const struct worker *w, char *buf, size_t len)
{
    w->broker->why(w, buf, len);
}

/* The endpoint's message: a data message from a subscriber is published
 * to its channels when client_publish is on, else the connection is
 * closed 1008. The broker copies it. */
static void client_publish(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len)
{
    struct worker *w = conn_worker(c);
    if (!w->cfg.client_publish) {
        shm_add(&w->slot->publish_rejected, 1);
        conn_fail(c, WS_CLOSE_POLICY, "client publish is off (client_publish)");
        return;
    }
    /* One record naming all its channels: a connection in several of them
     * gets the message once. */
    struct conn_subs *s = channel_subs_of(c);
    if (!s->n)
        return; /* a wsmill.v1 open still waiting for Redis: it has no channels yet */
    char list[RING_CHANNEL_MAX];
    size_t n = 0;
    for (int i = 0; i < s->n && n + s->e[i].ch->name_len + 1 <= sizeof(list); i++) {
        if (n)
            list[n++] = ',';
        memcpy(list + n, s->e[i].ch->name, s->e[i].ch->name_len);
        n += s->e[i].ch->name_len;
    }
    if (channels_publish(w, list, n, opcode, payload, len) == -1) {
        if (errno == EMSGSIZE)
            conn_fail(c, WS_CLOSE_TOO_BIG, "message larger than the publish ring accepts (ring_size / 4)");
        else /* broker = redis and Redis cannot take it: refused, not queued (docs/redis.md) */
            conn_fail(c, WS_CLOSE_TRY_AGAIN, "broker unavailable: Redis is down or 64 MB behind");
    }
}

static void client_message(struct conn *c, unsigned opcode, uint8_t *payload, size_t len, uint8_t *owned)
{
    client_publish(c, opcode, payload, len);
    free(owned);
}

/* Calls fn with every channel that has local subscribers (the Redis broker
 * subscribes to them all again after a reconnect). */
static void each_channel(struct worker *w, void (*fn)(struct worker *w, const char *name, size_t len))
{
    for (uint32_t i = 0; i < w->nbuckets; i++)
        for (struct channel *ch = w->buckets[i]; ch; ch = ch->next)
            if (ch->nsubs && (!ch->env || !channels_find_kind(w, ch->name, ch->name_len, 0)))
                fn(w, ch->name, ch->name_len); /* once per name */
}

/* The endpoint's check: /ch/ takes a list of valid channel names. */
static int check_list(struct worker *w, const char *list, size_t len, enum hs_reject *reason,
                      const char **why)
{
    uint16_t off[1024];
    uint8_t lens[1024];
    int n = hs_channel_list(list, len, (int)w->cfg.max_channels_per_conn, off, lens);
    *reason = HS_REJECT_BAD_REQUEST;
    if (n == -2) {
        *why = "too many channels (max_channels_per_conn)";
        return 400;
    }
    if (n < 0) {
        *why = "invalid channel name: 1-128 bytes of A-Z a-z 0-9 _ . : - separated by commas";
        return 400;
    }
    return 0;
}

/* The endpoint's authorize: the token's channels claim (if any) must list
 * every channel asked for. */
static int authorize(const struct jwt_claims *claims, const char *list, size_t len, char *why, size_t why_len)
{
    size_t pos = 0, nl;
    const char *name;
    while (hs_list_next(list, len, &pos, &name, &nl)) {
        if (!jwt_channel_allowed(claims, name, nl)) {
            snprintf(why, why_len, "the token does not allow channel %.*s", (int)nl, name);
            return 403;
        }
    }
    return 0;
}

const struct endpoint channels_endpoint = {
    .path = "/ch/",
    .check = check_list,
    .authorize = authorize,
    .open = subscribe,
    .protocol = HS_PROTOCOL_V1,
    .check_query = histsub_check_query,
    .open_protocol = histsub_open,
    .message = client_message,
    .close = unsubscribe_all,
};

static const struct broker_sink sink = {
    .deliver = fanout_deliver,
    .subscribed = subscribed,
    .synced = histsub_redis_synced,
    .each_channel = each_channel,
};

int channels_init(struct worker *w)
{
    /* Gauges of a predecessor that died in this slot describe nothing now. */
    atomic_store(&w->slot->channels, 0);
    atomic_store(&w->slot->subscriptions, 0);
    atomic_store(&w->slot->ring_lag, 0);
    history_subs_clear(w->history, w->id); /* a dead predecessor's counts */
    w->nbuckets = 64;
    w->buckets = calloc(w->nbuckets, sizeof(*w->buckets));
    if (!w->buckets) {
        log_crit("out of memory for the channel table");
        abort();
    }
    fanout_loop_init(w);
    w->broker = w->cfg.broker == BROKER_REDIS ? &broker_redis : &broker_local;
    return w->broker->start(w, &sink);
}

void channels_stop(struct worker *w)
{
    if (w->broker)
        w->broker->stop(w);
}
