/* history.h: the last five minutes of the dashboard's figures, one sample
 * a second, kept by each worker's HTTP service, so a page opened when
 * something looks wrong shows what led up to it (the event stream sends
 * them first). Cumulative counters (the reader takes differences) and the
 * second's delay and handshake percentiles. */
#ifndef WSMILL_HTTP_HISTORY_H
#define WSMILL_HTTP_HISTORY_H
#include <stdint.h>

#include "../../common/shm.h"
#include "../../common/hbuf.h"

#define HISTORY_LEN 300

struct collect;

struct hist_sample {
    int64_t time_ms; /* unix ms */
    uint64_t connections, handshakes, refused, messages_in, messages_out, bytes_in, bytes_out, deliveries,
        publishes;
    float delay_p50, delay_p99, handshake_p50, handshake_p99; /* seconds; < 0: nothing observed */
};

struct history {
    struct hist_sample s[HISTORY_LEN];
    unsigned head, n;                                                      /* s[head] is the next to write */
    uint64_t delay[SHM_HIST_BUCKETS + 1], handshake[SHM_HIST_BUCKETS + 1]; /* buckets at the last sample */
};

/* Appends a sample of c taken at time_ms. */
void history_record(struct history *h, const struct collect *c, int64_t time_ms);
/* The newest sample, or NULL before the first. */
const struct hist_sample *history_last(const struct history *h);
/* A sample of c now, not recorded; its percentiles are the last second's. */
void history_peek(const struct history *h, const struct collect *c, int64_t time_ms, struct hist_sample *out);
/* Writes a sample's fields as JSON members ("time_ms":...,...; no braces). */
void history_sample_fields(const struct hist_sample *s, struct hbuf *b);
/* Writes every sample, oldest first, as a JSON array. */
void history_json(const struct history *h, struct hbuf *b);

/* Quantile q (0..1) of the observations between two cumulative copies of
 * a histogram's buckets, in seconds, interpolated inside the bucket; -1
 * when there were none. Pure. */
double history_quantile(const uint64_t *now, const uint64_t *before, double q);

#endif
