/* collect.h: the figures of every worker, summed from the shared block,
 * for /metrics, /status and the dashboard's stream. */
#ifndef WSMILL_HTTP_COLLECT_H
#define WSMILL_HTTP_COLLECT_H
#include "../../common/shm.h"

struct collect {
    struct worker_slot sum; /* counters of live slots and of freed ones (shm->gone) */
    uint64_t connections, channels, subscriptions, ring_lag; /* gauges of live slots */
    int workers[WORKER_DEAD + 1];                            /* slots by state */
    int brokers[BROKER_STATE_DOWN + 1];                      /* live workers by broker state */
};

/* Fills c from s. Reads only: any process may call it at any time. */
void collect_totals(struct shm *s, struct collect *c);
/* 1 when slot i holds a worker (not empty). */
int collect_live(struct shm *s, int i);

#endif
