/* channel.h: a worker's channel, shared by channels.c (the table and
 * subscriptions) and fanout.c (the log and the sweep). Not for other rooms. */
#ifndef WSMILL_CHANNEL_H
#define WSMILL_CHANNEL_H
#include <stdint.h>
#include <sys/uio.h>

#include "../conn/conn.h"
#include "../shbuf.h"
#include "../worker-t.h"

/* One subscriber: its descriptor and the next frame of the channel's log it
 * is owed (a channel-local sequence number; wraps, compared by difference). */
struct sub {
    uint32_t fd;
    uint32_t seq;
};

/* The channels a connection joined: its conn->ep. */
struct conn_subs {
    uint16_t n;
    void *pending; /* a wsmill.v1 open waiting for Redis (histsub_redis.c), else NULL */
    struct {
        struct channel *ch;
        uint32_t idx; /* position in ch's subscriber array */
    } e[];
};

struct channel {
    struct channel *next; /* hash chain */
    struct sub *subs;
    uint32_t nsubs, cap;
    /* The log: frames not yet sent to every subscriber, seq in [tail, head),
     * frame s at log[s & (log_cap - 1)] with its iovec beside it so a
     * subscriber's backlog is one contiguous slice for one send. Allocated
     * while the channel is active only. */
    struct shbuf **log;
    struct iovec *log_iov;
    uint32_t log_cap;
    uint32_t head, tail;
    /* The sweep (fanout.c): subscribers [0, pos) are not yet visited in
     * this pass; pass_start is head when the pass began. */
    uint32_t pos, pass_start;
    uint64_t pass_began; /* CLOCK_MONOTONIC ns: the pass's length goes to the status */
    uint64_t last_rec;   /* v1 side: ring record number + 1 of its last frame ("a,a" gets one) */
    uint64_t last_off;   /* v1 side: offset of its last frame (a jump past it is filled from history) */
    struct channel *active_next;
    uint8_t active; /* in the worker's active list (pins it) */
    uint8_t pinned; /* in use by a multi-channel delivery (pins it) */
    uint8_t name_len;
    uint32_t hidx;  /* its slot in the history store (subscriber counts) */
    uint16_t holds; /* v1 opens waiting for Redis: the log is kept whole (histsub_redis.c) */
    uint8_t live;   /* Redis confirmed the SUBSCRIBE for this name */
    uint8_t env;    /* the wsmill.v1 side: frames carry "NAME OFFSET\n" (histsub.c) */
    char name[];
};

static inline struct conn_subs *channel_subs_of(const struct conn *c)
{
    return (struct conn_subs *)c->ep;
}

/* channels.c */
struct channel *channels_find(struct worker *w, const char *name, size_t n);
/* The raw (env 0) or wsmill.v1 (env 1) side of a channel, or NULL. */
struct channel *channels_find_kind(struct worker *w, const char *name, size_t n, int env);
/* Joins c to every channel of list (validated); env = 1 the wsmill.v1
 * sides, at the current end of their logs. Returns 0, or -1 (memory). */
int channels_subscribe_kind(struct conn *c, const char *list, size_t len, int env);
/* The v1 side of name, made if needed, kept (log and all) until released:
 * a wsmill.v1 open waiting for Redis (histsub_redis.c). NULL: memory. */
struct channel *channels_hold(struct worker *w, const char *name, size_t n);
void channels_release(struct worker *w, struct channel *ch);
/* Frees ch if nobody is subscribed and nothing pins it. */
void channels_maybe_free(struct worker *w, struct channel *ch);

#endif
