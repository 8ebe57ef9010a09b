/* test_history.c: worker/http/history.c: the per-second percentiles from
 * two cumulative copies of a histogram, and the five-minute ring. */
#include <stdlib.h>

#include "tap.h"
#include "worker/http/collect.h"
#include "worker/http/history.h"

static void test_quantile(void)
{
    uint64_t before[SHM_HIST_BUCKETS + 1] = {0}, now[SHM_HIST_BUCKETS + 1] = {0};
    ok(history_quantile(now, before, 0.5) < 0, "no observation: no percentile");
    now[3] = 100; /* 100 observations in (50, 100] us */
    double p50 = history_quantile(now, before, 0.5);
    ok(p50 > 50e-6 && p50 <= 100e-6, "p50 inside the bucket (%g s)", p50);
    ok(history_quantile(now, before, 0.99) <= 100e-6, "p99 at most its bound");
    before[3] = 100; /* the same counts a second later: nothing new */
    ok(history_quantile(now, before, 0.5) < 0, "a second with no new observation has none");
    now[3] = 190, now[12] = 10; /* 90 fast, 10 in (50, 100] ms */
    double p99 = history_quantile(now, before, 0.99);
    ok(p99 > 50e-3 && p99 <= 100e-3, "p99 in the slow bucket (%g s)", p99);
    double p50b = history_quantile(now, before, 0.5);
    ok(p50b <= 100e-6, "p50 stays fast (%g s)", p50b);
    now[SHM_HIST_BUCKETS] = 1000; /* past the last bound */
    ok(history_quantile(now, before, 0.99) > 10.0, "the +Inf bucket reads past the last bound");
}

static void test_ring(void)
{
    struct history *h = calloc(1, sizeof(*h));
    struct collect *c = calloc(1, sizeof(*c));
    ok(history_last(h) == NULL, "empty history has no last sample");
    for (int i = 0; i < HISTORY_LEN + 5; i++) {
        c->connections = (uint64_t)i;
        shm_hist_observe(&c->sum.hist_delay, 1000); /* one 1 ms delay a second */
        history_record(h, c, 1000 * (int64_t)i);
    }
    is_int(h->n, HISTORY_LEN, "keeps %d samples", HISTORY_LEN);
    is_int((long long)history_last(h)->connections, HISTORY_LEN + 4, "the last is the newest");
    float p = history_last(h)->delay_p50;
    ok(p > 500e-6 && p <= 1000e-6, "its delay p50 is that second's (%g s)", (double)p);
    struct hbuf b = {0};
    history_json(h, &b);
    ok(!b.failed && b.p[0] == '[' && b.p[b.len - 1] == ']', "history is a JSON array");
    ok(strstr(b.p, "{\"time_ms\":5000,\"connections\":5,") != NULL, "oldest kept sample first");
    ok(strstr(b.p, "\"connections\":4,") == NULL, "older ones are gone");
    hbuf_free(&b);
    free(h);
    free(c);
}

int main(void)
{
    test_quantile();
    test_ring();
    return done_testing();
}
