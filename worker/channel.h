/* channel.h: a worker's channel, shared by channels.c (the table and
 * subscriptions) and fanout.c (the log and the sweep). Not for other files. */
#ifndef WSMILL_CHANNEL_H
#define WSMILL_CHANNEL_H
#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"

/* One subscriber: its descriptor and the next frame of the channel's log it
 * is owed (a channel-local sequence number; wraps, compared by difference). */
struct sub {
    uint32_t fd;
    uint32_t seq;
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
    uint8_t env; /* the wsmill.v1 side: frames carry "NAME OFFSET\n" (histsub.c) */
    char name[];
};

/* channels.c */
struct channel *channel_find(struct worker *w, const char *name, size_t n);
/* The raw (env 0) or wsmill.v1 (env 1) side of a channel, or NULL. */
struct channel *channel_find_kind(struct worker *w, const char *name, size_t n, int env);
/* Frees ch if nobody is subscribed and nothing pins it. */
void channel_maybe_free(struct worker *w, struct channel *ch);

/* fanout.c */
void fanout_init(struct worker *w);
/* Frees ch's log (the channel is going away). */
void fanout_channel_free(struct worker *w, struct channel *ch);
/* Appends frame sb (the caller's reference) to ch's log. Returns 0, or -1
 * (sb released) when the log cannot grow. */
int fanout_log_append(struct worker *w, struct channel *ch, struct shbuf *sb);
/* Reads ring records up to (not including) record number stop, whatever
 * the usual per-turn bounds: a subscriber that read its position as of
 * `stop` then joins each channel's log at its end. */
void fanout_read_until(struct worker *w, uint64_t stop);

#endif
