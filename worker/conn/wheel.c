/* wheel.c: one coarse timing wheel per worker instead of a libev timer per
 * connection. Slots hold doubly linked lists threaded through the
 * connection table by 32-bit indices (fd + 1). Deadlines are re-checked
 * lazily: activity only bumps conn->stamp, and when a connection's slot
 * comes due its owner works out whether anything is really due and
 * re-files it if not. */
#include "wheel.h"

#include <string.h>

static struct wheel_link *node(struct wheel *wh, uint32_t link)
{
    return link == WHEEL_NONE ? NULL
                              : (struct wheel_link *)(wh->base + (size_t)(link - 1) * wh->stride + wh->off);
}

void wheel_init(struct wheel *wh, void *base, size_t stride, size_t off, uint32_t now)
{
    memset(wh, 0, sizeof(*wh));
    wh->base = base;
    wh->stride = stride;
    wh->off = off;
    wh->now = wh->done = now;
}

void wheel_remove(struct wheel *wh, uint32_t idx)
{
    uint32_t self = idx + 1;
    struct wheel_link *l = node(wh, self);
    if (!l->prev && wh->head[l->slot] != self)
        return; /* not filed */
    struct wheel_link *prev = node(wh, l->prev);
    struct wheel_link *next = node(wh, l->next);
    if (prev)
        prev->next = l->next;
    else
        wh->head[l->slot] = l->next;
    if (next)
        next->prev = l->prev;
    l->next = l->prev = WHEEL_NONE;
}

void wheel_schedule(struct wheel *wh, uint32_t idx, uint32_t at)
{
    wheel_remove(wh, idx);
    /* Never file into a slot already processed this round, nor beyond the
     * horizon (it would alias an earlier tick). */
    if ((int32_t)(at - wh->done) < 1)
        at = wh->done + 1;
    if (at - wh->done >= WHEEL_SLOTS)
        at = wh->done + WHEEL_SLOTS - 1;
    uint16_t slot = (uint16_t)(at % WHEEL_SLOTS);
    uint32_t self = idx + 1;
    struct wheel_link *l = node(wh, self);
    l->slot = slot;
    l->prev = WHEEL_NONE;
    l->next = wh->head[slot];
    if (wh->head[slot])
        node(wh, wh->head[slot])->prev = self;
    wh->head[slot] = self;
}

void wheel_advance(struct wheel *wh, uint32_t now, void (*fire)(void *ctx, uint32_t idx), void *ctx)
{
    wh->now = now;
    while ((int32_t)(now - wh->done) > 0) {
        uint32_t tick = wh->done + 1;
        uint16_t slot = (uint16_t)(tick % WHEEL_SLOTS);
        /* Detach the whole list first: fire may re-file nodes, possibly
         * into this same slot a full turn later. */
        uint32_t link = wh->head[slot];
        wh->head[slot] = WHEEL_NONE;
        wh->done = tick;
        while (link != WHEEL_NONE) {
            uint32_t self = link;
            struct wheel_link *l = node(wh, self);
            link = l->next;
            if (link)
                node(wh, link)->prev = WHEEL_NONE;
            l->next = l->prev = WHEEL_NONE;
            /* Mark "not filed": head[0] may legitimately hold another node. */
            l->slot = 0;
            fire(ctx, self - 1);
        }
    }
}
