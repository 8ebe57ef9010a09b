/* capacity.c: descriptor and memory arithmetic for max_connections.
 *
 * A worker holds one descriptor per connection, so what one process may
 * open (RLIMIT_NOFILE) times the number of workers bounds the server. The
 * kernel adds system-wide limits (fs.file-max, fs.nr_open, conntrack) and
 * about 5 KB of memory per idle socket. `check` reads them all straight
 * from /proc and prints the command that fixes each shortfall. */
#include "capacity.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/shm.h"
#include "sysctls.h"

#define KERNEL_BYTES_PER_SOCKET CAPACITY_KERNEL_BYTES_PER_SOCKET

/* Reads the first line of a /proc file into buf; 0 or -1. */
static int proc_read(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* Reads up to n integers from a /proc file; returns how many were read. */
static int proc_ints(const char *path, int64_t *v, int n)
{
    char buf[256];
    if (proc_read(path, buf, sizeof buf) == -1)
        return 0;
    int got = 0;
    char *p = buf;
    while (got < n) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno)
            break;
        v[got++] = x;
        p = end;
    }
    return got;
}

static int64_t proc_int(const char *path, int64_t dflt)
{
    int64_t v;
    return proc_ints(path, &v, 1) == 1 ? v : dflt;
}

/* MemAvailable in bytes, or -1. */
static int64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* MemTotal in bytes, or -1. */
static int64_t mem_total(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    long long kb = -1;
    if (!f)
        return -1;
    if (fscanf(f, "MemTotal: %lld kB", &kb) != 1)
        kb = -1;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return b > 0 ? (a + b - 1) / b : 0;
}

int capacity_workers(const struct config *cfg)
{
    long n = cfg->workers;
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > SHM_MAX_WORKERS ? SHM_MAX_WORKERS : (int)n;
}

static int set_nofile(rlim_t soft, rlim_t hard, char *err, size_t errlen)
{
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
        int e = errno;
        /* Root without CAP_SYS_RESOURCE is a container's root: the limit
         * is set where the container starts, not by running as root. */
        const char *why = e != EPERM       ? ""
                          : geteuid() == 0 ? ": running as root but without the capability CAP_SYS_RESOURCE"
                                             " (a container?); raise the limit where it is started"
                                             " (docker run --ulimit nofile=N:N, LimitNOFILE=N)"
                                           : ": raising the hard limit needs root (CAP_SYS_RESOURCE), or"
                                             " LimitNOFILE=N in the systemd unit";
        snprintf(err, errlen, "setrlimit(RLIMIT_NOFILE, %llu) failed: %s%s", (unsigned long long)hard,
                 strerror(e), why);
        return -1;
    }
    return 0;
}

int capacity_raise_nofile(const struct config *cfg, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
        return -1;
    }
    /* The kernel refuses any limit above fs.nr_open, infinity included. */
    rlim_t nr_open = (rlim_t)proc_int("/proc/sys/fs/nr_open", 1048576);
    if (rl.rlim_max > nr_open)
        rl.rlim_max = nr_open;
    /* auto: as many as the kernel lets a process have; memory bounds it later. */
    rlim_t want =
        cfg->max_connections == 0
            ? nr_open
            : (rlim_t)(ceil_div(cfg->max_connections, capacity_workers(cfg)) + CAPACITY_RESERVE_FDS);
    if (want > nr_open)
        want = nr_open;
    int rc = 0;
    /* Raising the hard limit needs CAP_SYS_RESOURCE; without it we keep
     * the hard limit we were given and still raise soft up to it. */
    if (want > rl.rlim_max) {
        if (set_nofile(want, want, err, errlen) == 0)
            return 0;
        rc = -1;
    }
    if (rl.rlim_cur < rl.rlim_max && set_nofile(rl.rlim_max, rl.rlim_max, err, errlen) == -1)
        rc = -1;
    return rc;
}

int64_t capacity_auto(int workers, int64_t nofile_soft, int64_t memory)
{
    int64_t by_fds = nofile_soft > CAPACITY_RESERVE_FDS ? (nofile_soft - CAPACITY_RESERVE_FDS) * workers : 1;
    int64_t by_mem = memory > 0 ? (int64_t)((double)memory * CAPACITY_AUTO_MEMORY_SHARE /
                                            (KERNEL_BYTES_PER_SOCKET + CAPACITY_WSMILL_BYTES_PER_CONN))
                                : by_fds;
    int64_t n = by_fds < by_mem ? by_fds : by_mem;
    return n < 1 ? 1 : n;
}

int64_t capacity_resolve(struct config *cfg, char *why, size_t whylen)
{
    struct rlimit rl = {0, 0};
    why[0] = '\0';
    if (cfg->max_connections != 0)
        return cfg->max_connections;
    getrlimit(RLIMIT_NOFILE, &rl);
    int workers = capacity_workers(cfg);
    int64_t soft = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > ((rlim_t)1 << 40) ? (int64_t)1 << 40
                                                                                   : (int64_t)rl.rlim_cur;
    /* A share of MemTotal, and never more than is available now (a box
     * busy with other work, or the clients of a benchmark, holds less). */
    int64_t mem = mem_total(), avail = mem_available();
    if (avail > 0 && mem > 0 && (double)mem * CAPACITY_AUTO_MEMORY_SHARE > (double)avail)
        mem = (int64_t)((double)avail / CAPACITY_AUTO_MEMORY_SHARE);
    int64_t by_fds = capacity_auto(workers, soft, -1), by_mem = capacity_auto(1, (int64_t)1 << 40, mem);
    cfg->max_connections = capacity_auto(workers, soft, mem);
    snprintf(why, whylen,
             "max_connections = auto: %" PRId64 " (descriptors allow %d workers x %" PRId64 " = %" PRId64
             ", %.0f%% of memory, %" PRId64 " MiB, allows %" PRId64 " at %d B per connection)",
             cfg->max_connections, workers, soft - CAPACITY_RESERVE_FDS, by_fds,
             CAPACITY_AUTO_MEMORY_SHARE * 100, (int64_t)((double)mem * CAPACITY_AUTO_MEMORY_SHARE) >> 20,
             by_mem, KERNEL_BYTES_PER_SOCKET + CAPACITY_WSMILL_BYTES_PER_CONN);
    return cfg->max_connections;
}

void capacity_compute(const struct config *cfg, struct capacity *cap)
{
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    memset(cap, 0, sizeof *cap);
    cap->workers = capacity_workers(cfg);
    cap->auto_workers = cfg->workers <= 0;
    cap->nofile_soft = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_cur;
    cap->nofile_hard = rl.rlim_max == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_max;
    cap->per_worker = cap->nofile_soft > CAPACITY_RESERVE_FDS ? cap->nofile_soft - CAPACITY_RESERVE_FDS : 0;
    cap->total = cap->per_worker * cap->workers;
    cap->max_connections = cfg->max_connections;
    cap->workers_needed = ceil_div(cfg->max_connections, cap->per_worker);
    cap->nofile_needed = ceil_div(cfg->max_connections, cap->workers) + CAPACITY_RESERVE_FDS;
}

/* "raise workers to 51 or the open-file limit", or only the limit when
 * more workers than slots would be needed. */
static void fix_text(const struct capacity *cap, char *buf, size_t len)
{
    if (cap->workers_needed > 0 && cap->workers_needed <= SHM_MAX_WORKERS)
        snprintf(buf, len,
                 "raise workers to %" PRId64 " or the open-file limit to %" PRId64 " (ulimit -n %" PRId64
                 " / LimitNOFILE=%" PRId64 ")",
                 cap->workers_needed, cap->nofile_needed, cap->nofile_needed, cap->nofile_needed);
    else
        snprintf(buf, len,
                 "raise the open-file limit to %" PRId64 " (ulimit -n %" PRId64 " / LimitNOFILE=%" PRId64 ")",
                 cap->nofile_needed, cap->nofile_needed, cap->nofile_needed);
}

int capacity_warn(const struct capacity *cap)
{
    if (cap->total >= cap->max_connections)
        return 1;
    char fix[256];
    fix_text(cap, fix, sizeof fix);
    log_warn("max_connections %" PRId64 " > workers %d x %" PRId64 " descriptors per worker"
             " (RLIMIT_NOFILE %" PRId64 "): %s",
             cap->max_connections, cap->workers, cap->per_worker, cap->nofile_soft, fix);
    return 0;
}

/* The check report: one line per item with a tag, a fix line under each
 * shortfall, and a tally that decides the exit status. */
struct report {
    FILE *out;
    int fails, warns;
};

static void __attribute__((format(printf, 3, 4))) rep(struct report *r, const char *tag, const char *fmt, ...)
{
    va_list ap;
    if (!strcmp(tag, "FAIL"))
        r->fails++;
    else if (!strcmp(tag, "warn"))
        r->warns++;
    fprintf(r->out, strlen(tag) == 2 ? "[ %s ] " : "[%s] ", tag);
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fputc('\n', r->out);
}

static void __attribute__((format(printf, 2, 3))) rep_fix(struct report *r, const char *fmt, ...)
{
    va_list ap;
    fputs("       fix: ", r->out);
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fputc('\n', r->out);
}

static const char *human(int64_t bytes, char *buf, size_t len)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

static void report_nofile(struct report *r, const struct capacity *cap, const char *raise_err)
{
    rep(r, "ok", "RLIMIT_NOFILE soft %" PRId64 " hard %" PRId64 " (after the raise the master does at start)",
        cap->nofile_soft, cap->nofile_hard);
    if (raise_err[0])
        rep(r, "info", "%s", raise_err);
}

static void report_capacity(struct report *r, const struct capacity *cap, const char *path)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    rep(r, "info", "workers = %d%s on %ld CPUs", cap->workers, cap->auto_workers ? " (auto)" : "", cpus);
    if (cap->total >= cap->max_connections) {
        rep(r, "ok",
            "capacity %d workers x %" PRId64 " descriptors = %" PRId64 " >= max_connections %" PRId64,
            cap->workers, cap->per_worker, cap->total, cap->max_connections);
        return;
    }
    rep(r, "FAIL",
        "capacity %d workers x %" PRId64 " descriptors = %" PRId64 " < max_connections %" PRId64
        " (RLIMIT_NOFILE %" PRId64 " minus %d reserved per worker)",
        cap->workers, cap->per_worker, cap->total, cap->max_connections, cap->nofile_soft,
        CAPACITY_RESERVE_FDS);
    if (cap->workers_needed > 0 && cap->workers_needed <= SHM_MAX_WORKERS)
        rep_fix(r, "set workers = %" PRId64 " in %s (more workers than cores trades CPU for descriptors)",
                cap->workers_needed, path);
    rep_fix(r,
            "raise the open-file limit to %" PRId64 ": ulimit -n %" PRId64 " before starting,"
            " or LimitNOFILE=%" PRId64 " in the systemd unit",
            cap->nofile_needed, cap->nofile_needed, cap->nofile_needed);
}

/* One sysctl against the shared table (sysctls.h): ok, or warn with the
 * value that moves it (never lower). Below what the server itself needs,
 * fs.file-max is a failure. */
static void report_sysctl(struct report *r, const struct capacity *cap, const struct sysctl_want *w)
{
    int64_t cur[SYSCTLS_MAX_VALUES], to[SYSCTLS_MAX_VALUES];
    char now[96], val[96];
    int ncur = sysctls_read(w->key, cur, SYSCTLS_MAX_VALUES);
    if (ncur <= 0)
        return; /* not on this kernel (conntrack not loaded) */
    sysctls_format(cur, ncur, now, sizeof now);
    if (sysctls_enough(w, cur, ncur)) {
        rep(r, "ok", "%s = %s", w->key, now);
        return;
    }
    int64_t need = cap->max_connections + (int64_t)cap->workers * CAPACITY_RESERVE_FDS;
    int fatal = !strcmp(w->key, "fs.file-max") && cur[0] < need;
    sysctls_merge(w, cur, ncur, to);
    sysctls_format(to, w->n, val, sizeof val);
    rep(r, fatal ? "FAIL" : "warn", "%s = %s: %s", w->key, now, w->reason);
    rep_fix(r, "sysctl -w %s=\"%s\" (scripts/tune-kernel.sh --connections %" PRId64 " --apply sets them all)",
            w->key, val, cap->max_connections);
}

static void report_sysctls(struct report *r, const struct capacity *cap)
{
    struct sysctl_want w[SYSCTLS_MAX];
    int n = sysctls_for(cap->max_connections, 0, w, SYSCTLS_MAX);
    for (int i = 0; i < n; i++)
        report_sysctl(r, cap, &w[i]);
}

static void report_ports(struct report *r, const struct capacity *cap)
{
    int64_t range[2];
    if (proc_ints("/proc/sys/net/ipv4/ip_local_port_range", range, 2) != 2)
        return;
    int64_t ports = range[1] - range[0] + 1;
    int64_t sources = ceil_div(cap->max_connections, ports);
    const char *tag = range[0] > 1024 ? "warn" : "info";
    rep(r, tag,
        "net.ipv4.ip_local_port_range = %" PRId64 " %" PRId64 ": a client address reaches one"
        " server address with at most %" PRId64 " connections; a load generator needs %" PRId64
        " source addresses (127.0.0.1-127.0.0.%" PRId64 ") for max_connections",
        range[0], range[1], ports, sources, sources);
    if (range[0] > 1024)
        rep_fix(r, "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"");
}

static void report_memory(struct report *r, const struct capacity *cap)
{
    int64_t avail = mem_available();
    int64_t kernel = cap->max_connections * KERNEL_BYTES_PER_SOCKET;
    char a[32], k[32], k2[32];
    if (avail < 0)
        return;
    human(avail, a, sizeof a);
    human(kernel, k, sizeof k);
    human(2 * kernel, k2, sizeof k2);
    if (kernel > avail) {
        rep(r, "FAIL", "kernel memory ~%s for %" PRId64 " sockets at ~5 KB each > MemAvailable %s", k,
            cap->max_connections, a);
        rep_fix(r, "lower max_connections to %" PRId64 " or add memory", avail / KERNEL_BYTES_PER_SOCKET);
    } else if (2 * kernel > avail) {
        rep(r, "warn",
            "kernel memory ~%s for %" PRId64 " sockets fits MemAvailable %s, but not ~%s"
            " with the clients on this host too",
            k, cap->max_connections, a, k2);
    } else {
        rep(r, "ok",
            "kernel memory ~%s for %" PRId64 " sockets at ~5 KB each (~%s with local clients)"
            " <= MemAvailable %s",
            k, cap->max_connections, k2, a);
    }
}

int capacity_report(const struct config *cfg_in, const char *path, FILE *out)
{
    char raise_err[512] = "", why[256];
    struct capacity cap;
    struct report r = {out, 0, 0};
    struct config cfg = *cfg_in;
    capacity_raise_nofile(&cfg, raise_err, sizeof raise_err);
    capacity_resolve(&cfg, why, sizeof why);
    capacity_compute(&cfg, &cap);
    report_nofile(&r, &cap, raise_err);
    if (why[0])
        rep(&r, "info", "%s", why);
    report_capacity(&r, &cap, path);
    report_sysctls(&r, &cap);
    report_ports(&r, &cap);
    report_memory(&r, &cap);
    if (r.fails) {
        fprintf(out, "result: max_connections %" PRId64 " cannot be reached (%d shortfall%s, %d warning%s)\n",
                cap.max_connections, r.fails, r.fails == 1 ? "" : "s", r.warns, r.warns == 1 ? "" : "s");
        return 2;
    }
    fprintf(out, "result: max_connections %" PRId64 " fits (%d warning%s)\n", cap.max_connections, r.warns,
            r.warns == 1 ? "" : "s");
    return 0;
}
