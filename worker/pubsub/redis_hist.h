/* redis_hist.h: offsets and history kept in Redis (redis_hist.c). */
#ifndef WSMILL_REDIS_HIST_H
#define WSMILL_REDIS_HIST_H
#include <stddef.h>
#include <stdint.h>

struct worker;
struct broker;
struct redisAsyncContext;

/* A message as it came from Redis. */
struct redis_envelope {
    unsigned opcode;
    const char *list;
    size_t list_len;
    uint64_t offset; /* the receiving channel's offset; 0 from an older node */
    const uint8_t *payload;
    size_t len;
};
/* Parses an envelope (version 1 or 2). Returns 0, or -1 when it is none. */
int redis_hist_envelope(const uint8_t *e, size_t len, struct redis_envelope *out);

/* One atomic step in Redis: each channel of list its next offset, the
 * payload kept (history_size, history_ttl), the envelope PUBLISHed. fn gets
 * the offsets (an array reply). Returns redisAsyncCommandArgv's result. */
int redis_hist_publish(struct broker *b, void (*fn)(struct redisAsyncContext *, void *, void *), void *priv,
                       const char *list, size_t list_len, unsigned opcode, const uint8_t *payload,
                       size_t len);

/* A resume position for redis_hist_read. */
struct redis_read_pos {
    int has;
    uint64_t epoch, since;
};
/* What Redis said of one channel. */
struct redis_read_chan {
    uint64_t epoch, top;
    int result;                 /* enum history_result, or -1: no position was given */
    const void *const *entries; /* (since, top] when recovered: redis_hist_entry reads one */
    size_t nentries;
};
/* ok = 0: Redis went away or answered nonsense (out is NULL). */
typedef void (*redis_read_cb)(struct worker *w, void *arg, int ok, const struct redis_read_chan *out);
/* Reads the position of each of the n channels of list and, for those with
 * a position, whether it can be caught up and with what. Returns 0, or -1
 * when Redis is down (cb is not called). */
int redis_hist_read(struct worker *w, const char *list, size_t len, const struct redis_read_pos *pos, int n,
                    uint64_t token, redis_read_cb cb, void *arg);
/* 1 when reads may go out: this worker's sync channel is subscribed (the
 * read script ends by publishing token there; the sink's synced gets it). */
int redis_hist_ready(struct worker *w);
/* One kept message of a read's answer. Returns 0, or -1 when malformed. */
int redis_hist_entry(const void *entry, uint64_t *offset, unsigned *opcode, const uint8_t **payload,
                     size_t *len);

/* What Redis holds of one channel (redis_hist_range). */
struct redis_range {
    uint64_t epoch, top, first; /* first: the oldest held offset, top + 1 when none */
    const void *const *entries; /* offsets after since, oldest first: redis_hist_entry reads one */
    size_t nentries;
};
/* ok = 0: Redis went away or answered nonsense (out is NULL). */
typedef void (*redis_range_cb)(struct worker *w, void *arg, int ok, const struct redis_range *out);
/* Reads channel name's position and at most limit held messages after
 * since (limit 0: the position only). Returns 0, or -1 when Redis is down
 * (cb is not called). */
int redis_hist_range(struct worker *w, const char *name, size_t nl, uint64_t since, uint64_t limit,
                     redis_range_cb cb, void *arg);

#endif
