/* wheel.h: one coarse timing wheel per worker instead of a timer per
 * connection. Pure: it knows nothing of connections, only of nodes that
 * live in one array (the connection table) at a fixed stride and are named
 * by index + 1 (32-bit links, 0 = none). */
#ifndef WSMILL_WHEEL_H
#define WSMILL_WHEEL_H
#include <stddef.h>
#include <stdint.h>

#define WHEEL_TICK_MS 250
#define WHEEL_SLOTS   256 /* 64 s horizon; later deadlines are re-filed lazily */
#define WHEEL_NONE    0

/* Embedded in each node of the array. */
struct wheel_link {
    uint32_t next, prev; /* index + 1 of neighbours in the slot list */
    uint16_t slot;
};

struct wheel {
    uint32_t now;  /* current tick */
    uint32_t done; /* last tick whose slot was processed */
    uint32_t head[WHEEL_SLOTS];
    char *base;    /* the node array */
    size_t stride; /* bytes from one node to the next */
    size_t off;    /* offset of struct wheel_link in a node */
};

/* Starts an empty wheel at tick now over nodes base[i * stride + off]. */
void wheel_init(struct wheel *wh, void *base, size_t stride, size_t off, uint32_t now);
/* Files node idx to fire at tick `at` (clamped to [done + 1, the horizon]). */
void wheel_schedule(struct wheel *wh, uint32_t idx, uint32_t at);
/* Unfiles node idx (no-op when it is not filed). */
void wheel_remove(struct wheel *wh, uint32_t idx);
/* Processes every slot up to tick now, calling fire(ctx, idx) for each
 * node whose slot came due (unfiled first; fire may re-file it). */
void wheel_advance(struct wheel *wh, uint32_t now, void (*fire)(void *ctx, uint32_t idx), void *ctx);
static inline uint32_t wheel_ticks(int64_t ms)
{
    return (uint32_t)((ms + WHEEL_TICK_MS - 1) / WHEEL_TICK_MS);
}

#endif
