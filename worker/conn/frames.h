/* frames.h: RFC 6455 frames of an open (or closing) connection (frames.c). */
#ifndef WSMILL_FRAMES_H
#define WSMILL_FRAMES_H
#include <stddef.h>
#include <stdint.h>

struct conn;

/* Consumes len bytes of frames from data (the worker's scratch buffer; it
 * may be unmasked in place). Complete messages go to the connection's
 * endpoint; errors fail the connection with the close code RFC 6455 says. */
void frames_feed(struct conn *c, uint8_t *data, size_t len);

#endif
