/* sysctls.h: the kernel settings a host needs for N connections, with a
 * reason each, and the one rule for "is the current value enough" that
 * `wsmill check`, `wsmill check --plan` and scripts/tune-kernel.sh (which
 * runs `wsmill tune`) all use. A setting is never lowered: every value of a
 * multi-valued sysctl (tcp_mem) is compared on its own, and a value written
 * keeps whatever part of the current one is already beyond the target. */
#ifndef WSMILL_SYSCTLS_H
#define WSMILL_SYSCTLS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SYSCTLS_MAX_VALUES 3
#define SYSCTLS_MAX        16

struct sysctl_want {
    const char *key; /* "net.ipv4.tcp_mem" */
    int n;           /* how many values */
    int64_t v[SYSCTLS_MAX_VALUES];
    char dir[SYSCTLS_MAX_VALUES + 1]; /* per value: '+' at least, '-' at most */
    int optional;                     /* only where the kernel has it (conntrack) */
    const char *reason;
};

/* The settings for conns connections served here; local_clients: the
 * clients run on this host too (twice the sockets, source ports, ...).
 * Fills out (at most max) and returns how many. */
int sysctls_for(int64_t conns, int local_clients, struct sysctl_want *out, int max);

/* Parses "1 2 3" (spaces or tabs) into at most max values. Returns how
 * many, or -1 when something else is there. Pure. */
int sysctls_parse(const char *text, int64_t *v, int max);

/* 1 when the current values satisfy w (each value on its own), else 0. */
int sysctls_enough(const struct sysctl_want *w, const int64_t *cur, int ncur);

/* The values to write: w's targets, except where the current value is
 * already beyond one (never lower an at-least value, never raise an
 * at-most one). With ncur != w->n the targets are taken as they are. */
void sysctls_merge(const struct sysctl_want *w, const int64_t *cur, int ncur, int64_t *out);

/* "1 2 3". */
void sysctls_format(const int64_t *v, int n, char *buf, size_t len);

/* Reads a sysctl from /proc/sys (or from $WSMILL_PROC_SYS, for tests).
 * Returns how many values were read, 0 when the kernel has no such
 * setting, -1 when it holds something else than numbers. */
int sysctls_read(const char *key, int64_t *v, int max);

/* `wsmill tune`: prints every setting for conns connections, `# ok` or the
 * `sysctl -w` that moves it with the reason; with apply, writes them and
 * prints each change as "changed KEY: OLD -> NEW". Returns 0 when nothing
 * is short (or all was applied), 1 otherwise. */
int sysctls_tune(int64_t conns, int local_clients, int apply, FILE *out);

#endif
