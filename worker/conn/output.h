/* output.h: everything a connection writes goes through here (output.c).
 * Bytes go straight to the socket; only what the kernel refuses is queued,
 * bounded by max_backpressure. While a connection's input is handled its
 * output is corked: gathered in the worker's cork buffer and sent once. */
#ifndef WSMILL_OUTPUT_H
#define WSMILL_OUTPUT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "output-t.h"

struct conn;
struct shbuf;
struct worker;

/* Allocates the worker's cork buffer (worker start). Returns 0 or -1. */
int output_init(struct worker *w);
/* The one place bytes leave for c's socket (the seam for a transport). */
ssize_t output_sendv(struct conn *c, const struct iovec *iov, int n);
/* Sends one frame (header built here). owned, if not NULL, is a malloc'd
 * buffer holding payload that may be kept instead of copied (it is freed
 * either way). Returns 0, or -1 when c failed (dropped). */
int output_frame(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, uint8_t *owned);
/* Sends raw bytes (an HTTP response; copied). Same return as above. */
int output_raw(struct conn *c, const void *data, size_t len);
/* Corks c: until output_uncork, what c sends is gathered, not sent. */
void output_cork(struct conn *c);
/* Sends what was gathered for c in one send and ends the cork. */
void output_uncork(struct conn *c);
/* Sends what is gathered for c now, staying corked (something else is
 * about to write to c and order must hold). */
void output_settle(struct conn *c);
/* Forgets what is gathered for c (it failed). */
void output_discard(struct conn *c);
/* EV_WRITE: flushes what is queued. Returns 0, or -1 if c was dropped. */
int output_flush(struct conn *c);
void output_clear(struct outq *q);
/* Appends frames shared with other subscribers, minus the first skip bytes
 * (already written). Takes a reference on each. Returns 0, or -1 when out
 * of memory (c is then dropped). No bound is checked: the caller applies
 * the slow-consumer policy first. */
int output_queue_shared(struct conn *c, struct shbuf **bufs, int n, size_t skip);
/* Queued bytes (0 when nothing is queued). */
size_t output_queued(const struct conn *c);
/* 1 while bytes wait in the queue or the cork. */
int output_pending(const struct conn *c);
/* Over a bound: drops the queue, sends close `code` if the stream is at a
 * frame boundary, and drops c. */
void output_overflow_close(struct conn *c, int code, const char *reason);

#endif
