/* history.c: see history.h. */
#include "history.h"

#include <inttypes.h>
#include <string.h>

#include "collect.h"

double history_quantile(const uint64_t *now, const uint64_t *before, double q)
{
    uint64_t total = 0;
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++)
        total += now[i] - before[i];
    if (!total)
        return -1;
    double rank = q * (double)total, lo = 0;
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++) {
        double d = (double)(now[i] - before[i]);
        /* the +Inf bucket has no bound: report twice the last one */
        double hi =
            i < SHM_HIST_BUCKETS ? shm_hist_bounds_us[i] : 2.0 * shm_hist_bounds_us[SHM_HIST_BUCKETS - 1];
        if (rank <= d)
            return (lo + (hi - lo) * (d > 0 ? rank / d : 0)) / 1e6;
        rank -= d;
        lo = hi;
    }
    return lo / 1e6;
}

static void buckets(uint64_t *out, struct shm_hist *h)
{
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++)
        out[i] = shm_get(&h->bucket[i]);
}

/* The counters of a sample; percentiles unknown. */
static void fill(struct hist_sample *s, const struct collect *c, int64_t time_ms)
{
    struct worker_slot *t = (struct worker_slot *)&c->sum;
    uint64_t refused = 0;
    for (int r = 0; r < HS_REJECT_MAX; r++)
        refused += shm_get(&t->rejected[r]);
    *s = (struct hist_sample){
        .time_ms = time_ms,
        .connections = c->connections,
        .handshakes = shm_get(&t->handshakes),
        .refused = refused,
        .messages_in = shm_get(&t->messages_in),
        .messages_out = shm_get(&t->messages_out),
        .bytes_in = shm_get(&t->bytes_in),
        .bytes_out = shm_get(&t->bytes_out),
        .deliveries = shm_get(&t->deliveries),
        .publishes = shm_get(&t->publishes),
        .delay_p50 = -1,
        .delay_p99 = -1,
        .handshake_p50 = -1,
        .handshake_p99 = -1,
    };
}

void history_record(struct history *h, const struct collect *c, int64_t time_ms)
{
    struct worker_slot *t = (struct worker_slot *)&c->sum;
    struct hist_sample *s = &h->s[h->head];
    uint64_t delay[SHM_HIST_BUCKETS + 1], hs[SHM_HIST_BUCKETS + 1];
    buckets(delay, &t->hist_delay);
    buckets(hs, &t->hist_handshake);
    fill(s, c, time_ms);
    if (h->n) { /* the first sample has no second before it */
        s->delay_p50 = (float)history_quantile(delay, h->delay, 0.5);
        s->delay_p99 = (float)history_quantile(delay, h->delay, 0.99);
        s->handshake_p50 = (float)history_quantile(hs, h->handshake, 0.5);
        s->handshake_p99 = (float)history_quantile(hs, h->handshake, 0.99);
    }
    memcpy(h->delay, delay, sizeof(delay));
    memcpy(h->handshake, hs, sizeof(hs));
    h->head = (h->head + 1) % HISTORY_LEN;
    if (h->n < HISTORY_LEN)
        h->n++;
}

void history_peek(const struct history *h, const struct collect *c, int64_t time_ms, struct hist_sample *out)
{
    fill(out, c, time_ms);
    const struct hist_sample *last = history_last(h);
    if (last) {
        out->delay_p50 = last->delay_p50;
        out->delay_p99 = last->delay_p99;
        out->handshake_p50 = last->handshake_p50;
        out->handshake_p99 = last->handshake_p99;
    }
}

const struct hist_sample *history_last(const struct history *h)
{
    return h->n ? &h->s[(h->head + HISTORY_LEN - 1) % HISTORY_LEN] : NULL;
}

static void seconds(struct hbuf *b, const char *name, float v)
{
    if (v < 0)
        hbuf_printf(b, ",\"%s\":null", name);
    else
        hbuf_printf(b, ",\"%s\":%.7f", name, (double)v);
}

void history_sample_fields(const struct hist_sample *s, struct hbuf *b)
{
    hbuf_printf(b,
                "\"time_ms\":%" PRId64 ",\"connections\":%" PRIu64 ",\"handshakes\":%" PRIu64
                ",\"refused_total\":%" PRIu64 ",\"messages_in\":%" PRIu64 ",\"messages_out\":%" PRIu64
                ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"deliveries\":%" PRIu64
                ",\"publishes\":%" PRIu64,
                s->time_ms, s->connections, s->handshakes, s->refused, s->messages_in, s->messages_out,
                s->bytes_in, s->bytes_out, s->deliveries, s->publishes);
    seconds(b, "delay_p50", s->delay_p50);
    seconds(b, "delay_p99", s->delay_p99);
    seconds(b, "handshake_p50", s->handshake_p50);
    seconds(b, "handshake_p99", s->handshake_p99);
}

void history_json(const struct history *h, struct hbuf *b)
{
    hbuf_printf(b, "[");
    for (unsigned i = 0; i < h->n; i++) {
        unsigned at = (h->head + HISTORY_LEN - h->n + i) % HISTORY_LEN;
        hbuf_printf(b, "%s{", i ? "," : "");
        history_sample_fields(&h->s[at], b);
        hbuf_printf(b, "}");
    }
    hbuf_printf(b, "]");
}
