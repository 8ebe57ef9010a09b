/* sysctls.c: kernel settings for N connections (see sysctls.h). */
#include "sysctls.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sysctl_want one(const char *key, int64_t v, char dir, const char *reason)
{
    struct sysctl_want w = {.key = key, .n = 1, .v = {v}, .dir = {dir}, .reason = reason};
    return w;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

int sysctls_for(int64_t conns, int local_clients, struct sysctl_want *out, int max)
{
    int64_t s = local_clients ? 2 * conns : conns; /* sockets on this host */
    struct sysctl_want w[SYSCTLS_MAX];
    int n = 0;
    w[n++] = one("fs.file-max", s + s / 10 + 65536, '+',
                 "system-wide open files: one per socket, plus 10% headroom");
    w[n++] = one("fs.nr_open", max64(conns + 1024, 1048576), '+',
                 "ceiling for a process's RLIMIT_NOFILE (LimitNOFILE= may not exceed it)");
    w[n++] =
        one("net.core.somaxconn", 65535, '+', "accept queue per listening socket: absorbs connect bursts");
    w[n++] = one("net.ipv4.tcp_max_syn_backlog", 65535, '+', "half-open (SYN_RECV) connections per listener");
    w[n++] = one("net.core.netdev_max_backlog", 65536, '+',
                 "packets queued on the NIC/loopback backlog in bursts");
    w[n++] = one("net.ipv4.tcp_max_orphans", max64(s / 4, 131072), '+',
                 "closing sockets no process owns (mass disconnects)");
    w[n] = one("net.netfilter.nf_conntrack_max", s + s / 4, '+',
               "only if conntrack is loaded: every connection takes an entry, a full table drops SYNs");
    w[n++].optional = 1;
    /* Pages: idle sockets hold no buffers, but a burst of messages to many
     * clients does; allow ~4 KiB per socket in flight. */
    struct sysctl_want mem = {
        .key = "net.ipv4.tcp_mem",
        .n = 3,
        .v = {s / 2, s * 3 / 4, s},
        .dir = "+++",
        .reason = "pages TCP may use for buffers (min, pressure, max); each value only raised"};
    w[n++] = mem;
    if (local_clients) {
        struct sysctl_want range = {
            .key = "net.ipv4.ip_local_port_range",
            .n = 2,
            .v = {1024, 65535},
            .dir = "-+",
            .reason = "source ports per client address; the load tool spreads over 127.0.0.2.. past 64k"};
        w[n++] = range;
        w[n++] = one("net.ipv4.tcp_tw_reuse", 1, '+', "reuse TIME_WAIT ports for new outgoing connections");
        w[n++] = one("net.core.skb_defer_max", 0, '-',
                     "at most: a client frees what it received on its own core instead of the server's "
                     "(fan-out sends 7.4-7.7 us instead of 7.7-9.2 here, docs/channels.md)");
    }
    w[n++] = one("vm.max_map_count", 262144, '+', "many workers with large maps");
    w[n++] = one("net.ipv4.tcp_migrate_req", 1, '+',
                 "a retired SO_REUSEPORT listener hands its queued connections to the others (reload)");
    if (n > max)
        n = max;
    memcpy(out, w, (size_t)n * sizeof *w);
    return n;
}

int sysctls_parse(const char *text, int64_t *v, int max)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            return n;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || n == max)
            return -1;
        v[n++] = x;
        p = end;
    }
}

int sysctls_enough(const struct sysctl_want *w, const int64_t *cur, int ncur)
{
    if (ncur != w->n)
        return 0;
    for (int i = 0; i < w->n; i++)
        if (w->dir[i] == '-' ? cur[i] > w->v[i] : cur[i] < w->v[i])
            return 0;
    return 1;
}

void sysctls_merge(const struct sysctl_want *w, const int64_t *cur, int ncur, int64_t *out)
{
    for (int i = 0; i < w->n; i++) {
        out[i] = w->v[i];
        if (ncur == w->n && (w->dir[i] == '-' ? cur[i] < out[i] : cur[i] > out[i]))
            out[i] = cur[i];
    }
}

void sysctls_format(const int64_t *v, int n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64, i ? " " : "", v[i]);
}

static void sysctl_path(const char *key, char *buf, size_t len)
{
    const char *root = getenv("WSMILL_PROC_SYS");
    int n = snprintf(buf, len, "%s/", root && *root ? root : "/proc/sys");
    for (const char *k = key; *k && (size_t)n + 1 < len; k++)
        buf[n++] = *k == '.' ? '/' : *k;
    buf[n] = '\0';
}

int sysctls_read(const char *key, int64_t *v, int max)
{
    char path[512], text[256];
    sysctl_path(key, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0)
        return -1;
    text[got] = '\0';
    return sysctls_parse(text, v, max);
}

static int sysctl_write(const char *key, const char *value)
{
    char path[512];
    sysctl_path(key, path, sizeof path);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd == -1)
        return -1;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)len ? 0 : -1;
}

/* One line of `wsmill tune`; returns 1 when the setting is short after it. */
static int tune_one(const struct sysctl_want *w, int apply, FILE *out)
{
    int64_t cur[SYSCTLS_MAX_VALUES], to[SYSCTLS_MAX_VALUES];
    char now[96], val[96];
    int ncur = sysctls_read(w->key, cur, SYSCTLS_MAX_VALUES);
    if (ncur == 0) {
        fprintf(out, "# %-36s not on this kernel (%s)\n", w->key, w->reason);
        return 0;
    }
    if (ncur > 0)
        sysctls_format(cur, ncur, now, sizeof now);
    else
        snprintf(now, sizeof now, "?");
    if (sysctls_enough(w, cur, ncur)) {
        fprintf(out, "# ok  %-32s = %-22s %s\n", w->key, now, w->reason);
        return 0;
    }
    sysctls_merge(w, cur, ncur, to);
    sysctls_format(to, w->n, val, sizeof val);
    fprintf(out, "sysctl -w %s=\"%s\"   # now %s: %s\n", w->key, val, now, w->reason);
    if (!apply)
        return 1;
    if (sysctl_write(w->key, val) == -1) {
        fprintf(out, "# could not set %s: %s\n", w->key, strerror(errno));
        return 1;
    }
    fprintf(out, "changed %s: %s -> %s\n", w->key, now, val);
    return 0;
}

int sysctls_tune(int64_t conns, int local_clients, int apply, FILE *out)
{
    struct sysctl_want w[SYSCTLS_MAX];
    int n = sysctls_for(conns, local_clients, w, SYSCTLS_MAX), short_ = 0;
    fprintf(out, "# kernel settings for %" PRId64 " connections (%" PRId64 " sockets on this host)%s\n",
            conns, local_clients ? 2 * conns : conns, apply ? ", applying" : "");
    for (int i = 0; i < n; i++)
        short_ += tune_one(&w[i], apply, out);
    return short_ ? 1 : 0;
}
