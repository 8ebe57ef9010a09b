/* broker.h: where a publish goes and how it comes back. One small table of
 * functions, one file per broker: broker_local.c (the shared-memory ring
 * every worker of this node reads; the default) and broker_redis.c (Redis
 * pub/sub, across nodes). A broker never calls into channels or the
 * fan-out: it is handed a sink when it starts. */
#ifndef WSMILL_BROKER_H
#define WSMILL_BROKER_H
#include <stddef.h>
#include <stdint.h>

struct worker;

/* How a broker hands messages back to this worker's subscribers. */
struct broker_sink {
    /* A message for channel `via` whose publish named `list` ("a" or
     * "a,b"): delivered to via's local subscribers, once each. offset is
     * via's offset for it (docs/history.md), 0 when the broker has none. */
    void (*deliver)(struct worker *w, const char *via, size_t via_len, const char *list, size_t list_len,
                    unsigned opcode, const uint8_t *payload, size_t len, uint64_t offset);
    /* The broker confirmed that messages for name now reach this worker
     * (len 0: its own sync channel, for history reads). */
    void (*subscribed)(struct worker *w, const char *name, size_t len);
    /* A history read's marker came back (redis_hist.c). */
    void (*synced)(struct worker *w, uint64_t token);
    /* Calls fn with every channel that has local subscribers. */
    void (*each_channel)(struct worker *w, void (*fn)(struct worker *w, const char *name, size_t len));
};

/* Offsets that come later (broker = redis): fn is called once, from the
 * event loop, with the offsets the list's channels gave the message, in
 * list order; ok = 0 when the broker refused it or went away first (the
 * message may or may not have been published). */
struct broker_later {
    void (*fn)(void *ctx, int ok, const uint64_t *offs, int n);
    void *ctx;
};

struct broker_ops {
    const char *name;
    /* Starts it; never blocks (a broker down at start is an outage like
     * any other). Returns 0, or -1 when its settings do not work (logged). */
    int (*start)(struct worker *w, const struct broker_sink *sink);
    void (*stop)(struct worker *w);
    /* A channel got its first local subscriber / lost its last one. */
    void (*channel_added)(struct worker *w, const char *name, size_t len);
    void (*channel_removed)(struct worker *w, const char *name, size_t len);
    /* Publishes one message to a channel list, writing the offset each
     * channel gave it to offs (docs/history.md) when the broker knows them
     * at once. Returns how many offsets it wrote (0 when it does not know
     * them), or -1 with errno: EMSGSIZE (too large), ENOTCONN (the broker
     * is down) or ENOBUFS (too much awaits the broker); the refusal is
     * counted. A broker that learns them later calls later (when not
     * NULL) once the publish was accepted. */
    int (*publish)(struct worker *w, const char *list, size_t list_len, unsigned opcode,
                   const uint8_t *payload, size_t len, uint64_t *offs, const struct broker_later *later);
    /* 1 when a publish would be accepted now. */
    int (*can_publish)(const struct worker *w);
    /* Why publishes are refused: JSON-safe text (never a password). */
    void (*why)(const struct worker *w, char *buf, size_t len);
};

extern const struct broker_ops broker_local;
extern const struct broker_ops broker_redis;

#endif
