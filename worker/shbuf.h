/* shbuf.h: a whole frame (header + payload) shared by every subscriber's
 * output queue in this worker; freed when the last reference goes. Built
 * once per message by the fan-out, held by reference in output queues. */
#ifndef WSMILL_SHBUF_H
#define WSMILL_SHBUF_H
#include <stdint.h>
#include <stdlib.h>

struct shbuf {
    uint32_t refs;
    uint32_t len;
    uint64_t published_ns; /* mono_ns() at publish (ring), 0 when unknown (broker) */
    /* Its permessage-deflate twin (conn/pmd.c), built on first need and
     * shared by every deflate subscriber: NULL = not built yet, the frame
     * itself = it does not compress (not a reference). */
    struct shbuf *twin;
    uint8_t data[];
};

static inline void shbuf_unref(struct shbuf *b)
{
    if (--b->refs == 0) {
        if (b->twin && b->twin != b)
            shbuf_unref(b->twin);
        free(b);
    }
}

/* Bytes a frame holds, its twin included. */
static inline uint32_t shbuf_bytes(const struct shbuf *b)
{
    return b->len + (b->twin && b->twin != b ? b->twin->len : 0);
}

#endif
