/* test_capacity.c: master/capacity.c's arithmetic: workers, descriptors
 * per worker, what max_connections needs, max_connections = auto, the
 * open-file raise (soft up to hard needs no privilege) and the check
 * report's verdict. Limits are set on this test process with setrlimit,
 * so every expectation is computed from what the test itself set. */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../common/config.h"
#include "../../common/shm.h"
#include "../../master/capacity.h"
#include "tap.h"

static struct config conf(const char *workers, const char *max)
{
    struct config c;
    char err[256];
    config_defaults(&c);
    if (config_set(&c, "workers", workers, err, sizeof err) ||
        config_set(&c, "max_connections", max, err, sizeof err))
        diag("config_set: %s", err);
    return c;
}

static void set_soft(rlim_t soft)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = soft;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        diag("setrlimit(soft %llu) failed", (unsigned long long)soft);
}

static void test_workers(void)
{
    struct config c = conf("5", "1000");
    is_int(capacity_workers(&c), 5, "workers = 5 -> 5");
    c = conf("auto", "1000");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    is_int(capacity_workers(&c), cpus > SHM_MAX_WORKERS ? SHM_MAX_WORKERS : cpus,
           "workers = auto -> online CPUs (%ld)", cpus);
    c.workers = SHM_MAX_WORKERS + 10; /* the table caps at 256; the arithmetic caps at the slots */
    is_int(capacity_workers(&c), SHM_MAX_WORKERS, "more workers than slots -> SHM_MAX_WORKERS");
}

static void test_compute(void)
{
    struct capacity cap;
    set_soft(1000);
    struct config c = conf("3", "10000");
    capacity_compute(&c, &cap);
    int64_t per = 1000 - CAPACITY_RESERVE_FDS;
    is_int(cap.nofile_soft, 1000, "soft limit read back");
    is_int(cap.per_worker, per, "a worker holds soft - %d reserved", CAPACITY_RESERVE_FDS);
    is_int(cap.total, 3 * per, "total = workers x per worker");
    is_int(cap.workers_needed, (10000 + per - 1) / per, "workers needed = ceil(max / per worker)");
    is_int(cap.nofile_needed, (10000 + 2) / 3 + CAPACITY_RESERVE_FDS,
           "nofile needed = ceil(max / workers) + reserve");
    ok(!capacity_warn(&cap), "10000 > 3 x %lld does not fit", (long long)per);
    c = conf("3", "2904");
    capacity_compute(&c, &cap);
    ok(capacity_warn(&cap), "3 x %lld = max_connections fits exactly", (long long)per);
    set_soft(CAPACITY_RESERVE_FDS);
    capacity_compute(&c, &cap);
    is_int(cap.per_worker, 0, "a limit at the reserve holds no connection");
    is_int(cap.workers_needed, 0, "and no number of workers helps (no division by zero)");
}

static void test_auto(void)
{
    int64_t per_conn = CAPACITY_KERNEL_BYTES_PER_SOCKET + CAPACITY_WSMILL_BYTES_PER_CONN;
    int64_t gib = (int64_t)1 << 30;
    is_int(capacity_auto(2, 20000, 24 * gib), 2 * (20000 - CAPACITY_RESERVE_FDS),
           "descriptors bound it: 2 x (20000 - reserve)");
    int64_t by_mem = (int64_t)((double)gib * CAPACITY_AUTO_MEMORY_SHARE / (double)per_conn);
    is_int(capacity_auto(4, 1048576, gib), by_mem, "memory bounds it: 1 GiB x %.2f / %lld B",
           CAPACITY_AUTO_MEMORY_SHARE, (long long)per_conn);
    is_int(capacity_auto(4, 1048576, -1), 4 * (1048576 - CAPACITY_RESERVE_FDS),
           "unknown memory: descriptors only");
    is_int(capacity_auto(1, 10, gib), 1, "never below one connection");

    char why[256];
    struct rlimit rl;
    set_soft(4000);
    getrlimit(RLIMIT_NOFILE, &rl);
    struct config c = conf("2", "auto");
    is_int(c.max_connections, 0, "auto is stored as 0 until resolved");
    int64_t got = capacity_resolve(&c, why, sizeof why);
    ok(got == c.max_connections && got > 0 && got <= 2 * (4000 - CAPACITY_RESERVE_FDS),
       "auto resolves within the descriptors: %lld", (long long)got);
    ok(strstr(why, "auto") && strstr(why, "descriptors") && strstr(why, "memory"), "and says how: %s", why);
    c = conf("2", "777");
    is_int(capacity_resolve(&c, why, sizeof why), 777, "a number stays as written");
    ok(why[0] == '\0', "with nothing to explain");
}

static void test_raise(void)
{
    struct rlimit rl;
    char err[512] = "";
    getrlimit(RLIMIT_NOFILE, &rl);
    set_soft(200);
    struct config c = conf("1", "100");
    int rc = capacity_raise_nofile(&c, err, sizeof err);
    struct rlimit after;
    getrlimit(RLIMIT_NOFILE, &after);
    ok(rc == 0 && after.rlim_cur == rl.rlim_max, "soft raised to the hard limit %llu (rc %d, %s)",
       (unsigned long long)rl.rlim_max, rc, err);
    /* More than the hard limit: only root with CAP_SYS_RESOURCE may. */
    c = conf("1", "100000000");
    rc = capacity_raise_nofile(&c, err, sizeof err);
    getrlimit(RLIMIT_NOFILE, &after);
    if (rc == -1) {
        ok(strstr(err, "setrlimit(RLIMIT_NOFILE") && strstr(err, "CAP_SYS_RESOURCE"),
           "a refused raise names the call and the capability: %s", err);
        ok(after.rlim_cur == after.rlim_max, "and the soft limit is still at the hard one");
    } else {
        ok(after.rlim_max > rl.rlim_max, "the hard limit was raised (we hold CAP_SYS_RESOURCE)");
        ok(after.rlim_cur == after.rlim_max, "soft follows");
    }
}

static void test_report(void)
{
    char *text = NULL;
    size_t len = 0;
    set_soft(2000);
    struct config c = conf("2", "100000000");
    FILE *f = open_memstream(&text, &len);
    int rc = capacity_report(&c, "x.conf", f);
    fclose(f);
    ok(rc == 2 && strstr(text, "[FAIL] capacity") && strstr(text, "cannot be reached"),
       "100M connections on this limit: exit 2 with a FAIL line");
    ok(strstr(text, "LimitNOFILE=") != NULL, "the fix names LimitNOFILE");
    free(text);
    c = conf("1", "auto");
    f = open_memstream(&text, &len);
    rc = capacity_report(&c, "x.conf", f);
    fclose(f);
    ok(strstr(text, "max_connections = auto:") && strstr(text, "[ ok ] capacity"),
       "auto always fits the descriptors it was derived from");
    ok(rc == 0 || strstr(text, "[FAIL]") != NULL, "exit 0 unless another limit fails (rc %d)", rc);
    free(text);
}

int main(void)
{
    test_workers();
    test_compute();
    test_auto();
    test_raise();
    test_report();
    return done_testing();
}
