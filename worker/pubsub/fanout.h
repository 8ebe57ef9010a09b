/* fanout.h: from a published message to every local subscriber (fanout.c):
 * the channels' logs of shared frames and the sweep that sends them. */
#ifndef WSMILL_FANOUT_H
#define WSMILL_FANOUT_H
#include <stddef.h>
#include <stdint.h>

struct worker;
struct channel;

/* Starts reading the shared ring and sweeping (worker start). */
void fanout_init(struct worker *w);
/* Frees ch's log (the channel is going away). */
void fanout_channel_free(struct worker *w, struct channel *ch);
/* A message that reached this worker through channel `via` from outside
 * the ring (a broker such as Redis, which delivers a message published to
 * several channels once per channel): delivered to via's local subscribers,
 * except those also subscribed to a channel of `list` that comes before via
 * (they get it through that one), so each gets it exactly once. A
 * single-channel message is swept like a ring record. */
void fanout_deliver(struct worker *w, const char *via, size_t via_len, const char *list, size_t list_len,
                    unsigned opcode, const uint8_t *payload, size_t len);

#endif
