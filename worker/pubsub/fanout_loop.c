/* fanout_loop.c: the fan-out's side of the event loop (fanout.c does the
 * work): each loop turn reads the ring and takes a step of the sweep; a
 * worker about to block asks publishers for a SIGURG wake-up. */
#include <ev.h>
#include <signal.h>
#include <stdint.h>

#include "../worker-t.h"
#include "fanout.h"

#define STEP_WRITES 256 /* writes per step between event-loop turns (docs/channels.md) */

static void prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct worker *w = container_of(p, struct worker, ring_prepare);
    if (ring_pending(w->ring, &w->reader))
        fanout_read(w, UINT64_MAX, 0);
    if (w->active)
        fanout_sweep(w, STEP_WRITES);
    if (w->active || ring_pending(w->ring, &w->reader)) {
        ev_idle_start(loop, &w->ring_idle); /* more to do: poll, don't block */
        return;
    }
    /* About to block: ask publishers for a wake-up, then look once more so
     * a record published in between is not left waiting. */
    uint64_t bit = 1ull << (w->id % 64);
    atomic_fetch_or(&w->shm->ring_sleepers[w->id / 64], bit);
    if (ring_pending(w->ring, &w->reader))
        ev_idle_start(loop, &w->ring_idle);
}

static void check_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = container_of(c, struct worker, ring_check);
    uint64_t bit = 1ull << (w->id % 64);
    if (atomic_load_explicit(&w->shm->ring_sleepers[w->id / 64], memory_order_relaxed) & bit)
        atomic_fetch_and(&w->shm->ring_sleepers[w->id / 64], ~bit);
}

static void idle_cb(struct ev_loop *loop, ev_idle *i, int revents)
{
    (void)revents;
    ev_idle_stop(loop, i); /* its only job was to keep the loop from blocking */
}

static void urg_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)s;
    (void)revents; /* the wake-up itself is the message: prepare_cb reads the ring */
}

void fanout_loop_init(struct worker *w)
{
    w->ring = shm_ring(w->shm);
    ring_reader_init(w->ring, &w->reader);
    ev_prepare_init(&w->ring_prepare, prepare_cb);
    ev_prepare_start(w->loop, &w->ring_prepare);
    ev_check_init(&w->ring_check, check_cb);
    ev_check_start(w->loop, &w->ring_check);
    ev_idle_init(&w->ring_idle, idle_cb);
    ev_signal_init(&w->sig_urg, urg_cb, SIGURG);
    ev_signal_start(w->loop, &w->sig_urg);
}
