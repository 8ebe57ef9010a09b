/* portowner.c: is a TCP address already served, and by whom (see
 * portowner.h). */
#include "portowner.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_INODES 64

/* "0100007F:1F90": the address as the kernel's 32-bit words in host
 * order, then the port. Returns 0, or -1 when malformed. */
static int parse_addr(const char *p, int family, struct portowner_entry *e, const char **end)
{
    int words = family == AF_INET ? 1 : 4;
    for (int w = 0; w < words; w++) {
        char hex[9];
        for (int i = 0; i < 8; i++) {
            if (!isxdigit((unsigned char)p[i]))
                return -1;
            hex[i] = p[i];
        }
        hex[8] = '\0';
        uint32_t v = (uint32_t)strtoul(hex, NULL, 16);
        memcpy(e->addr + 4 * w, &v, 4);
        p += 8;
    }
    if (*p != ':')
        return -1;
    char *pe;
    e->port = (unsigned)strtoul(p + 1, &pe, 16);
    if (pe == p + 1 || pe - (p + 1) > 4)
        return -1;
    *end = pe;
    return 0;
}

int portowner_parse_line(const char *line, int family, struct portowner_entry *e)
{
    const char *p = strchr(line, ':'); /* "  12: " */
    unsigned st;
    unsigned long inode;
    memset(e, 0, sizeof *e);
    e->family = family;
    if (!p || (family != AF_INET && family != AF_INET6))
        return -1;
    p++;
    while (*p == ' ')
        p++;
    if (parse_addr(p, family, e, &p) == -1)
        return -1;
    /* rem_address st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(p, " %*s %x %*s %*s %*s %*s %*s %lu", &st, &inode) != 2)
        return -1;
    e->listening = st == 0x0A;
    e->inode = inode;
    return 0;
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

int portowner_conflicts(const struct portowner_entry *e, const union sockaddr_any *a)
{
    int fam = a->sa.sa_family;
    const unsigned char *want =
        fam == AF_INET ? (const unsigned char *)&a->in4.sin_addr : (const unsigned char *)&a->in6.sin6_addr;
    size_t wlen = fam == AF_INET ? 4 : 16, elen = e->family == AF_INET ? 4 : 16;
    unsigned port = ntohs(fam == AF_INET ? a->in4.sin_port : a->in6.sin6_port);
    if (!e->listening || e->port != port)
        return 0;
    if (all_zero(want, wlen) || all_zero(e->addr, elen))
        return 1;
    return e->family == fam && !memcmp(e->addr, want, wlen);
}

int portowner_in_use(const union sockaddr_any *a, socklen_t alen)
{
    int one = 1, rc = 0;
    if ((a->sa.sa_family == AF_INET ? a->in4.sin_port : a->in6.sin6_port) == 0)
        return 0;
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 0;
    /* SO_REUSEADDR: sockets in TIME_WAIT are no conflict. No SO_REUSEPORT:
     * any listening socket on the address, a group's included, is. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, &a->sa, alen) == -1 && errno == EADDRINUSE)
        rc = 1;
    close(fd);
    return rc;
}

/* Inodes of listening sockets that conflict with a. */
static int find_inodes(const union sockaddr_any *a, unsigned long *inodes, int max)
{
    static const struct {
        const char *path;
        int family;
    } files[] = {{"/proc/net/tcp", AF_INET}, {"/proc/net/tcp6", AF_INET6}};
    int n = 0;
    char line[512];
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        FILE *fp = fopen(files[f].path, "re");
        if (!fp)
            continue;
        struct portowner_entry e;
        while (n < max && fgets(line, sizeof line, fp))
            if (portowner_parse_line(line, files[f].family, &e) == 0 && portowner_conflicts(&e, a))
                inodes[n++] = e.inode;
        fclose(fp);
    }
    return n;
}

/* 1 when one of pid's descriptors is one of the sockets. */
static int holds(const char *pid, const unsigned long *inodes, int n)
{
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/%s/fd", pid);
    DIR *d = opendir(path);
    struct dirent *de;
    int found = 0;
    if (!d)
        return 0;
    while (!found && (de = readdir(d))) {
        char fdpath[320];
        unsigned long ino;
        snprintf(fdpath, sizeof fdpath, "%s/%s", path, de->d_name);
        ssize_t l = readlink(fdpath, link, sizeof link - 1);
        if (l <= 0)
            continue;
        link[l] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        for (int i = 0; i < n && !found; i++)
            found = inodes[i] == ino;
    }
    closedir(d);
    return found;
}

static int cmp_pid(const void *x, const void *y)
{
    pid_t a = *(const pid_t *)x, b = *(const pid_t *)y;
    return (a > b) - (a < b);
}

int portowner_find(const union sockaddr_any *a, pid_t *pids, int max)
{
    unsigned long inodes[MAX_INODES];
    int ni = find_inodes(a, inodes, MAX_INODES), n = 0;
    DIR *d = ni ? opendir("/proc") : NULL;
    struct dirent *de;
    if (!d)
        return 0;
    while (n < max && (de = readdir(d)))
        if (isdigit((unsigned char)de->d_name[0]) && holds(de->d_name, inodes, ni))
            pids[n++] = (pid_t)atoi(de->d_name);
    closedir(d);
    qsort(pids, (size_t)n, sizeof *pids, cmp_pid);
    return n;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    int ppid = 0;
    if (!f)
        return 0;
    if (fgets(buf, sizeof buf, f)) {
        char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
        if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
            ppid = 0;
    }
    fclose(f);
    return (pid_t)ppid;
}

static void comm_of(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    snprintf(buf, len, "?");
    if (f) {
        if (fgets(buf, (int)len, f))
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
    }
}

int portowner_check(const char *what, const union sockaddr_any *a, socklen_t alen, pid_t family_root,
                    char *err, size_t errlen)
{
    pid_t pids[PORTOWNER_MAX_PIDS];
    char name[INET6_ADDRSTRLEN + 16];
    if (!portowner_in_use(a, alen))
        return 0;
    int n = portowner_find(a, pids, PORTOWNER_MAX_PIDS), strangers = 0;
    for (int i = 0; i < n; i++)
        strangers += pids[i] != family_root && parent_of(pids[i]) != family_root;
    if (n > 0 && strangers == 0)
        return 0; /* our own group (a reload, a binary upgrade) */
    net_name(a, name, sizeof name);
    int used = snprintf(err, errlen, "%s %s: address already in use", what, name);
    if (n == 0) {
        snprintf(err + used, errlen - (size_t)used,
                 " (by a process this user cannot inspect; as root: ss -ltnp 'sport = :%u')",
                 ntohs(a->sa.sa_family == AF_INET ? a->in4.sin_port : a->in6.sin6_port));
        return -1;
    }
    for (int i = 0; i < n && (size_t)used < errlen; i++) {
        char comm[32];
        comm_of(pids[i], comm, sizeof comm);
        used += snprintf(err + used, errlen - (size_t)used, "%s pid %d (%s)", i ? "," : " by", (int)pids[i],
                         comm);
    }
    return -1;
}

int portowner_check_config(const struct config *cfg, const struct config *old, pid_t family_root, char *err,
                           size_t errlen)
{
    union sockaddr_any a;
    socklen_t alen;
    if (!old || strcmp(old->listen, cfg->listen)) {
        alen = net_resolve(cfg->listen_host, cfg->listen_port, &a);
        if (alen && portowner_check("listen", &a, alen, family_root, err, errlen) == -1)
            return -1;
    }
    static const struct {
        const char *name;
        size_t off;
    } others[] = {{"publish_listen", offsetof(struct config, publish_listen)},
                  {"tls_listen", offsetof(struct config, tls_listen)}};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *now = (const char *)cfg + others[i].off;
        if (!now[0] || (old && !strcmp((const char *)old + others[i].off, now)))
            continue;
        alen = net_parse_hostport(now, &a);
        if (alen && portowner_check(others[i].name, &a, alen, family_root, err, errlen) == -1)
            return -1;
    }
    return 0;
}
