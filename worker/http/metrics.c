/* metrics.c: see metrics.h. */
#include "metrics.h"

#include <sys/resource.h>

#include "../../common/clock.h"
#include "../shbuf.h"
#include "../worker-t.h"

void metrics_observe_handshake(struct worker *w, uint64_t began_ns)
{
    shm_hist_observe(&w->slot->hist_handshake, (mono_ns() - began_ns) / 1000);
}

void metrics_observe_pass(struct worker *w, uint64_t us, struct shbuf *const *log, uint32_t cap,
                          uint32_t from, uint32_t to)
{
    shm_hist_observe(&w->slot->hist_pass, us);
    if (from == to)
        return;
    uint64_t now = mono_ns();
    for (uint32_t s = from; s != to; s++) {
        uint64_t t = log[s & (cap - 1)]->published_ns;
        if (t && t <= now) /* 0: it came from the broker, with no publish time */
            shm_hist_observe(&w->slot->hist_delay, (now - t) / 1000);
    }
}

void metrics_tick(struct worker *w)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return;
    uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                  (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
    atomic_store_explicit(&w->slot->cpu_us, us, memory_order_relaxed);
}
