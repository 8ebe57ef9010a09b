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
    uint8_t data[];
};

static inline void shbuf_unref(struct shbuf *b)
{
    if (--b->refs == 0)
        free(b);
}

#endif
