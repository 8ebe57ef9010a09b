/* fanout.h: from a published message to every local subscriber (fanout.c):
 * the channels' logs of shared frames and the sweep that sends them. */
#ifndef WSMILL_FANOUT_H
#define WSMILL_FANOUT_H
#include <stddef.h>
#include <stdint.h>

struct worker;
struct channel;

/* Starts reading the shared ring and sweeping (worker start). */
void fanout_loop_init(struct worker *w);
/* Frees ch's log (the channel is going away). */
void fanout_channel_free(struct worker *w, struct channel *ch);
struct shbuf;
/* Appends frame sb (the caller's reference) to ch's log. Returns 0, or -1
 * (sb released) when the log cannot grow. */
int fanout_log_append(struct worker *w, struct channel *ch, struct shbuf *sb);
/* Moves ring records before record number stop into the channels' logs;
 * unless forced, READ_MAX_RECORDS and the logs' byte bound at most per
 * call (forced: a wsmill.v1 subscriber that read its position as of
 * `stop` then joins each log at its end, histsub.c). */
void fanout_read(struct worker *w, uint64_t stop, int forced);
/* One step of the sweep: at most `writes` subscribers served. Returns 1
 * while channels remain active. */
int fanout_sweep(struct worker *w, long writes);
/* A message that reached this worker through channel `via` from outside
 * the ring (a broker such as Redis, which delivers a message published to
 * several channels once per channel): delivered to via's local subscribers,
 * except those also subscribed to a channel of `list` that comes before via
 * (they get it through that one), so each gets it exactly once. A
 * single-channel message is swept like a ring record. */
void fanout_deliver(struct worker *w, const char *via, size_t via_len, const char *list, size_t list_len,
                    unsigned opcode, const uint8_t *payload, size_t len, uint64_t offset);

#endif
