/* channels.h: pub/sub as the other rooms see it (channels.c): the /ch/
 * endpoint, publishing, and the room's start and stop. */
#ifndef WSMILL_CHANNELS_H
#define WSMILL_CHANNELS_H
#include <stddef.h>
#include <stdint.h>

struct worker;
struct broker_later;
struct endpoint;

/* /ch/A,B,C: subscribes to the listed channels; a data message from the
 * client is published to them when client_publish is on (else 1008). */
extern const struct endpoint channels_endpoint;

/* Sets up the channel table and the fan-out, and starts the configured
 * broker. Returns 0, or -1 when the broker's settings do not work. */
int channels_init(struct worker *w);
/* Stops the broker (worker exit). */
void channels_stop(struct worker *w);
/* Publishes one message to a channel, or to a comma-separated list of
 * channels ("a,b": one message, so a connection in several of them gets
 * it once), through the broker; every worker (this one included) delivers
 * it to its local subscribers. Returns 0, or -1 with errno EMSGSIZE (larger
 * than the ring accepts), or, with broker = redis, ENOTCONN or ENOBUFS when
 * Redis cannot take it. */
int channels_publish(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len);
/* The same, writing each channel's offset to offs (room for RING_OFFS_MAX,
 * common/ring.h). Returns how many offsets, or -1 as above. With broker =
 * redis it returns 0 and, when later is not NULL, hands them to later once
 * Redis answered (broker.h). */
int channels_publish_offs(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                          const uint8_t *payload, size_t len, uint64_t *offs,
                          const struct broker_later *later);
/* 1 when a publish would be accepted now; else why() says why. */
int channels_can_publish(const struct worker *w);
void channels_why(const struct worker *w, char *buf, size_t len);

#endif
