/* load_hist.c: see load_hist.h. */
#include "load_hist.h"

#include <string.h>

#define SUB (1u << LOAD_HIST_SUB_BITS)

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= LOAD_HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - LOAD_HIST_SUB_BITS)) & (SUB - 1);
    return (e - LOAD_HIST_SUB_BITS + 1) * SUB + sub;
}

static uint64_t bucket_mid(unsigned idx)
{
    if (idx < SUB)
        return idx;
    unsigned e = idx / SUB + LOAD_HIST_SUB_BITS - 1;
    uint64_t sub = idx % SUB;
    uint64_t lo = (SUB + sub) << (e - LOAD_HIST_SUB_BITS);
    return lo + ((uint64_t)1 << (e - LOAD_HIST_SUB_BITS)) / 2;
}

void load_hist_init(struct load_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void load_hist_add(struct load_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void load_hist_merge(struct load_hist *dst, const struct load_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t load_hist_quantile(const struct load_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bucket_mid(i);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}
