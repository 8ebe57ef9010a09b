/* metrics.h: the hooks through which the worker's data path feeds the
 * histograms of /metrics (common/shm.h: fixed buckets, one writer per
 * slot, no lock). Each is one call from where the thing happens. */
#ifndef WSMILL_HTTP_METRICS_H
#define WSMILL_HTTP_METRICS_H
#include <stdint.h>

struct worker;
struct shbuf;

/* A handshake that began (accept) at began_ns (mono_ns) got its 101. */
void metrics_observe_handshake(struct worker *w, uint64_t began_ns);
/* A fan-out pass of us microseconds ended; frames [from, to) of the
 * channel's log (log[s & (cap - 1)]) have now reached every subscriber:
 * each one's delivery delay is observed (from its publish time). */
void metrics_observe_pass(struct worker *w, uint64_t us, struct shbuf *const *log, uint32_t cap,
                          uint32_t from, uint32_t to);
/* The worker's tick: refreshes its CPU time in the slot. */
void metrics_tick(struct worker *w);

#endif
