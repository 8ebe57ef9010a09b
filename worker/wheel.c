/* wheel.c: one coarse timing wheel per worker instead of a libev timer per
 * connection. Slots hold doubly linked lists threaded through the
 * connection table by 32-bit indices (fd + 1). Deadlines are re-checked
 * lazily: activity only bumps conn->stamp, and when a connection's slot
 * comes due conn_timer works out whether anything is really due and
 * re-files it if not. */
#include <string.h>

#include "internal.h"

void wheel_init(struct wheel *wh)
{
    memset(wh, 0, sizeof(*wh));
}

static struct conn *link_conn(struct worker *w, uint32_t link)
{
    return link == WHEEL_NONE ? NULL : &w->conns[link - 1];
}

void wheel_remove(struct worker *w, struct conn *c)
{
    uint32_t self = (uint32_t)conn_fd(c) + 1;
    if (!c->wheel_prev && w->wheel.head[c->wheel_slot] != self)
        return; /* not filed */
    struct conn *prev = link_conn(w, c->wheel_prev);
    struct conn *next = link_conn(w, c->wheel_next);
    if (prev)
        prev->wheel_next = c->wheel_next;
    else
        w->wheel.head[c->wheel_slot] = c->wheel_next;
    if (next)
        next->wheel_prev = c->wheel_prev;
    c->wheel_next = c->wheel_prev = WHEEL_NONE;
}

void wheel_schedule(struct worker *w, struct conn *c, uint32_t at)
{
    wheel_remove(w, c);
    struct wheel *wh = &w->wheel;
    /* Never file into a slot already processed this round, nor beyond the
     * horizon (it would alias an earlier tick). */
    if ((int32_t)(at - wh->done) < 1)
        at = wh->done + 1;
    if (at - wh->done >= WHEEL_SLOTS)
        at = wh->done + WHEEL_SLOTS - 1;
    uint16_t slot = (uint16_t)(at % WHEEL_SLOTS);
    uint32_t self = (uint32_t)conn_fd(c) + 1;
    c->wheel_slot = slot;
    c->wheel_prev = WHEEL_NONE;
    c->wheel_next = wh->head[slot];
    if (wh->head[slot])
        w->conns[wh->head[slot] - 1].wheel_prev = self;
    wh->head[slot] = self;
}

void wheel_advance(struct worker *w, uint32_t now)
{
    struct wheel *wh = &w->wheel;
    wh->now = now;
    while ((int32_t)(now - wh->done) > 0) {
        uint32_t tick = wh->done + 1;
        uint16_t slot = (uint16_t)(tick % WHEEL_SLOTS);
        /* Detach the whole list first: conn_timer may re-file connections,
         * possibly into this same slot a full turn later. */
        uint32_t link = wh->head[slot];
        wh->head[slot] = WHEEL_NONE;
        wh->done = tick;
        while (link != WHEEL_NONE) {
            struct conn *c = &w->conns[link - 1];
            link = c->wheel_next;
            if (link)
                w->conns[link - 1].wheel_prev = WHEEL_NONE;
            c->wheel_next = c->wheel_prev = WHEEL_NONE;
            c->wheel_slot = 0;
            /* Mark "not filed": head[0] may legitimately hold another fd. */
            conn_timer(w, c);
        }
    }
}
