/* broker.h: channels across nodes over Redis pub/sub (broker = redis).
 *
 * Each worker holds two Redis connections in its own libev loop (hiredis's
 * libev adapter): one that SUBSCRIBEs to the channels this worker has local
 * subscribers for, and one that PUBLISHes. A publish goes to Redis only and
 * is delivered when it comes back, on every node including this one, so
 * every subscriber gets it once. When Redis is down publishes are refused
 * (the caller answers 503 or closes 1013), the connections are retried with
 * back-off (100 ms doubling to 5 s) and every subscription is restored. */
#ifndef WSMILL_WORKER_BROKER_H
#define WSMILL_WORKER_BROKER_H
#include <stddef.h>
#include <stdint.h>

struct worker;

/* Starts connecting (w->cfg.broker must be redis); sets w->broker. Returns
 * 0, or -1 when redis_url does not parse (logged). Never blocks: Redis
 * being down at start is an outage like any other. */
int broker_start(struct worker *w);
/* Closes both connections and frees the broker (worker exit). */
void broker_stop(struct worker *w);
/* A channel got its first local subscriber / lost its last one. */
void broker_subscribe(struct worker *w, const char *name, size_t len);
void broker_unsubscribe(struct worker *w, const char *name, size_t len);
/* PUBLISHes one message once per channel of list ("a" or "a,b"). Returns 0,
 * or -1 with errno ENOTCONN (Redis is down) or ENOBUFS (more than
 * BROKER_MAX_PENDING bytes await Redis's answer); a refusal is counted
 * in broker_lost. */
int broker_publish(struct worker *w, const char *list, size_t list_len, unsigned opcode,
                   const uint8_t *payload, size_t len);
/* 1 when a publish would be accepted now. */
int broker_can_publish(const struct worker *w);
/* Why publishes are refused, for an error message: JSON-safe text naming
 * the broker and its address (never the password). */
void broker_why(const struct worker *w, char *buf, size_t len);

#endif
