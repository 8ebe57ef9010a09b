/* test_plan.c: master/plan.c, `check --plan` for a box that is not this
 * one. Expectations are derived from the box given, not copied from the
 * output: one worker per core unless a fixed open-file limit needs more,
 * LimitNOFILE per worker, the kernel's established-hash default from
 * memory, keepalive from ping_interval. */
#include <stdlib.h>

#include "../../common/config.h"
#include "../../master/capacity.h"
#include "../../master/plan.h"
#include "tap.h"

#define GiB ((int64_t)1 << 30)

static void test_seed_box(void)
{
    struct config c;
    struct plan_result r;
    config_defaults(&c);
    struct plan_box box = {1000000, 16 * GiB, 4, 0, 0};
    plan_compute(&box, &c, &r);
    is_int(r.workers, 4, "one worker per core");
    is_int(r.nofile, 250000 + PLAN_SPREAD_SIGMAS * (500 + 1) + CAPACITY_RESERVE_FDS,
           "LimitNOFILE = mean per worker + %d sigma (sqrt 250000 = 500, rounded up) + reserve",
           PLAN_SPREAD_SIGMAS);
    ok(4 * (r.nofile - CAPACITY_RESERVE_FDS) >= 1000000,
       "max_connections = auto at that limit reaches the million");
    is_int(r.ehash_default, 16 * GiB / (128 * 1024), "the kernel's hash: a bucket per 128 KiB");
    is_int(r.ehash_want, 1 << 20, "wanted: the power of two at or above the sockets");
    is_int(r.kernel_bytes, 1000000LL * CAPACITY_KERNEL_BYTES_PER_SOCKET, "kernel memory per socket");
    is_int(r.spare, 16 * GiB - r.kernel_bytes - r.wsmill_bytes, "spare = RAM - idle cost");
    is_int(r.backpressure_ok, r.spare / 1000000, "every connection may queue spare / N");
    ok(r.pings_per_sec > 33333 && r.pings_per_sec < 33334, "30 s pings: N / 30 per second (%.1f)",
       r.pings_per_sec);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = plan_print(&box, &c, "x.conf", f);
    fclose(f);
    is_int(rc, 0, "fits");
    ok(strstr(text, "workers = 4") && strstr(text, "LimitNOFILE=252036") &&
           strstr(text, "thash_entries=1048576"),
       "prints workers, LimitNOFILE and thash_entries");
    ok(strstr(text, "sysctl -w net.ipv4.tcp_mem=\"500000 750000 1000000\"") != NULL, "prints tcp_mem for 1M");
    ok(strstr(text, "max_backpressure") && strstr(text, "TiB"), "says the backpressure worst case plainly");
    free(text);
}

static void test_fixed_limit_and_small_box(void)
{
    struct config c;
    struct plan_result r;
    config_defaults(&c);
    /* This machine: 2 cores, a hard limit of 20000 it cannot raise. */
    struct plan_box here = {1000000, 24 * GiB, 2, 20000, 1};
    plan_compute(&here, &c, &r);
    ok(plan_worker_share(1000000, r.workers) <= 20000 - CAPACITY_RESERVE_FDS &&
           plan_worker_share(1000000, r.workers - 1) > 20000 - CAPACITY_RESERVE_FDS,
       "a fixed limit of 20000: the fewest workers (%d) whose fullest stays under it", r.workers);
    ok(r.workers > (1000000 + 19967) / 19968, "more than an even split would need (%d)",
       (1000000 + 19967) / 19968);
    ok(r.nofile <= 20000, "and each stays under it (%lld)", (long long)r.nofile);
    is_int(r.kernel_bytes, 2000000LL * CAPACITY_KERNEL_BYTES_PER_SOCKET,
           "clients on the host: two sockets each");
    is_int(r.ehash_default, 256 * 1024, "24 GiB: 196608 buckets, rounded up to a power of two");
    struct plan_box big = {1000000, 128 * GiB, 2, 0, 0};
    plan_compute(&big, &c, &r);
    is_int(r.ehash_default, 512 * 1024, "the default hash is capped at 512Ki buckets");
    plan_compute(&here, &c, &r);
    c.ping_interval = 0;
    plan_compute(&here, &c, &r);
    ok(r.pings_per_sec == 0, "ping_interval = 0: no keepalive traffic");
    struct plan_box tiny = {1000000, 2 * GiB, 1, 0, 0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = plan_print(&tiny, &c, "x.conf", f);
    fclose(f);
    ok(rc == 2 && strstr(text, "need more than"), "2 GiB cannot hold a million idle sockets: exit 2");
    free(text);
}

int main(void)
{
    test_seed_box();
    test_fixed_limit_and_small_box();
    return done_testing();
}
