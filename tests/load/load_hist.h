/* load_hist: a log-linear latency histogram with a fixed layout, so one can
 * sit in shared memory per client process and the parent merges them.
 *
 * Values below 32 get a bucket each; above that every power of two is cut
 * into 32 linear sub-buckets, so a reported percentile is within ~3% of the
 * true value over the whole uint64 range. */
#ifndef WSMILL_LOAD_HIST_H
#define WSMILL_LOAD_HIST_H

#include <stdint.h>

#define LOAD_HIST_SUB_BITS 5
#define LOAD_HIST_BUCKETS  ((64 - LOAD_HIST_SUB_BITS + 1) << LOAD_HIST_SUB_BITS)

struct load_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min; /* meaningful only when count > 0 */
    uint64_t max;
    uint64_t b[LOAD_HIST_BUCKETS];
};

/* Empties h. */
void load_hist_init(struct load_hist *h);
/* Records one value. */
void load_hist_add(struct load_hist *h, uint64_t v);
/* Adds every sample of src to dst. */
void load_hist_merge(struct load_hist *dst, const struct load_hist *src);
/* The value at quantile q (0..1): the middle of the bucket holding it,
 * clamped to [min, max]. 0 when h is empty. */
uint64_t load_hist_quantile(const struct load_hist *h, double q);

#endif
