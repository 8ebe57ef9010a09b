/* collect.c: see collect.h. */
#include "collect.h"

#include <string.h>

int collect_live(struct shm *s, int i)
{
    return atomic_load_explicit(&s->slots[i].state, memory_order_relaxed) != WORKER_EMPTY;
}

void collect_totals(struct shm *s, struct collect *c)
{
    memset(c, 0, sizeof(*c));
    shm_slot_fold(&c->sum, &s->gone);
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (!collect_live(s, i))
            continue;
        struct worker_slot *ws = &s->slots[i];
        uint32_t st = atomic_load_explicit(&ws->state, memory_order_relaxed);
        if (st <= WORKER_DEAD)
            c->workers[st]++;
        shm_slot_fold(&c->sum, ws);
        c->connections += shm_get(&ws->connections);
        c->channels += shm_get(&ws->channels);
        c->subscriptions += shm_get(&ws->subscriptions);
        c->ring_lag += shm_get(&ws->ring_lag);
        shm_add(&c->sum.pmd_windows, shm_get(&ws->pmd_windows)); /* a gauge: live slots only */
        uint32_t b = atomic_load_explicit(&ws->broker_state, memory_order_relaxed);
        if (st != WORKER_DEAD && b <= BROKER_STATE_DOWN)
            c->brokers[b]++;
    }
}
