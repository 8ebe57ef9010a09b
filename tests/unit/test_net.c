/* test_net.c: common/net.c: which host and HOST:PORT spellings resolve
 * and to what, the printed names, and net_listen's socket (non-blocking,
 * close-on-exec, SO_REUSEPORT shared by a second socket, accepting on
 * 127.0.0.1) and its failures, each logged once naming the call. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/net.h"
#include "tap.h"

/* Resolves host:port into *a (pre-filled with 0xff so stale bytes show). */
static socklen_t resolve(const char *host, uint16_t port, union sockaddr_any *a)
{
    memset(a, 0xff, sizeof(*a));
    return net_resolve(host, port, a);
}

static const char *name_of(const union sockaddr_any *a)
{
    static char buf[64];
    net_name(a, buf, sizeof(buf));
    return buf;
}

static void test_resolve(void)
{
    union sockaddr_any a;
    is_int(resolve("127.0.0.1", 8080, &a), sizeof(struct sockaddr_in), "IPv4 literal");
    ok(a.in4.sin_family == AF_INET && ntohs(a.in4.sin_port) == 8080 &&
           a.in4.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
       "  family, port (network order) and address");
    ok(!memcmp(a.in4.sin_zero, "\0\0\0\0\0\0\0\0", 8), "  the rest zeroed");
    is_str(name_of(&a), "127.0.0.1:8080", "  printed");
    is_int(resolve("::1", 443, &a), sizeof(struct sockaddr_in6), "IPv6 literal");
    ok(a.in6.sin6_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a.in6.sin6_addr) && a.in6.sin6_flowinfo == 0 &&
           a.in6.sin6_scope_id == 0,
       "  family, address, flowinfo and scope zero");
    is_str(name_of(&a), "[::1]:443", "  printed in brackets");
    is_int(resolve("[::1]", 443, &a), sizeof(struct sockaddr_in6), "IPv6 in brackets");
    is_int(resolve("[10.1.2.3]", 1, &a), sizeof(struct sockaddr_in), "brackets around IPv4 are accepted too");
    is_str(name_of(&a), "10.1.2.3:1", "  and dropped");
    static const char *any[] = {"*", ""};
    for (int i = 0; i < 2; i++) {
        is_int(resolve(any[i], 80, &a), sizeof(struct sockaddr_in), "'%s' resolves", any[i]);
        is_str(name_of(&a), "0.0.0.0:80", "  to every IPv4 address");
    }
    is_int(resolve("localhost", 9, &a), sizeof(struct sockaddr_in), "localhost resolves");
    is_str(name_of(&a), "127.0.0.1:9", "  to 127.0.0.1, without asking DNS");
    is_int(resolve("[::ffff:1.2.3.4]", 5, &a), sizeof(struct sockaddr_in6), "IPv4-mapped IPv6");
    is_str(name_of(&a), "[::ffff:1.2.3.4]:5", "  printed as such");

    static const char *bad[] = {"example.com", "1.2.3",
                                "256.1.1.1",   "[::1",
                                "::1]",        "::g",
                                " 127.0.0.1",  "127.0.0.1 ",
                                "LOCALHOST",   "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(resolve(bad[i], 80, &a), 0, "refused: '%s'", bad[i]);
}

static void test_hostport(void)
{
    union sockaddr_any a;
    static const struct {
        const char *spec, *name;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1:8080"},
        {"[::1]:443", "[::1]:443"},
        {":80", "0.0.0.0:80"},
        {"*:1", "0.0.0.0:1"},
        {"localhost:65535", "127.0.0.1:65535"},
        {"[2001:db8::1]:8081", "[2001:db8::1]:8081"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&a, 0xff, sizeof(a));
        ok(net_parse_hostport(good[i].spec, &a) > 0, "'%s' parses", good[i].spec);
        is_str(name_of(&a), good[i].name, "  to %s", good[i].name);
    }
    static const char *bad[] = {"127.0.0.1",
                                "127.0.0.1:",
                                "127.0.0.1:0",
                                "127.0.0.1:65536",
                                "127.0.0.1:80x",
                                "127.0.0.1:-1",
                                "127.0.0.1:8 0",
                                "::1",
                                "host:80",
                                "[::1]80",
                                "",
                                "127.0.0.1:99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(net_parse_hostport(bad[i], &a), 0, "refused: '%s'", bad[i]);
    char long_host[128];
    memset(long_host, '1', sizeof(long_host));
    strcpy(long_host + 100, ":80");
    is_int(net_parse_hostport(long_host, &a), 0, "refused: a 100-character host");
}

static void test_name_truncated(void)
{
    union sockaddr_any a;
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    resolve("192.168.100.200", 65535, &a);
    net_name(&a, buf, sizeof(buf));
    is_str(buf, "192.168", "a short buffer gets a NUL-terminated prefix");
}

/* Reads what the log file holds now (for the failure messages). */
static const char *log_text(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static int lowest_free_fd(void)
{
    int fd = dup(0);
    close(fd);
    return fd;
}

/* 1 when net.ipv4.ip_nonlocal_bind lets any address be bound. */
static int nonlocal_bind(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static void test_listen(const char *logpath)
{
    union sockaddr_any a, b;
    socklen_t alen = net_resolve("127.0.0.1", 0, &a), blen = sizeof(b);
    int fd = net_listen(&a, alen, "test listen", 16);
    if (!ok(fd >= 0, "listens on 127.0.0.1 (kernel-chosen port)"))
        return;
    ok(getsockname(fd, &b.sa, &blen) == 0 && b.in4.sin_port != 0, "  bound to port %u",
       ntohs(b.in4.sin_port));
    ok(fcntl(fd, F_GETFL) & O_NONBLOCK, "  non-blocking");
    ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "  close-on-exec");
    int v = 0;
    socklen_t vl = sizeof(v);
    ok(getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &vl) == 0 && v == 1, "  SO_REUSEPORT set");
    v = 0;
    ok(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 1, "  listening");
    int fd2 = net_listen(&b, blen, "test listen 2", 16);
    ok(fd2 >= 0, "a second socket binds the same address and port (the group)");

    int c = socket(AF_INET, SOCK_STREAM, 0);
    ok(c >= 0 && connect(c, &b.sa, blen) == 0, "a client connects");
    usleep(20000);
    int got = accept(fd, NULL, NULL), got2 = got == -1 ? accept(fd2, NULL, NULL) : -1;
    ok(got >= 0 || got2 >= 0, "  and one of the group's sockets accepts it");
    close(got), close(got2), close(c), close(fd2);

    /* a plain socket without SO_REUSEPORT holds a port: net_listen fails there */
    int plain = socket(AF_INET, SOCK_STREAM, 0), lowest;
    union sockaddr_any p;
    socklen_t plen = net_resolve("127.0.0.1", 0, &p);
    ok(bind(plain, &p.sa, plen) == 0 && listen(plain, 1) == 0 && getsockname(plain, &p.sa, &plen) == 0,
       "a plain listener holds a port");
    lowest = lowest_free_fd();
    is_int(net_listen(&p, plen, "held port", 16), -1, "net_listen on it fails");
    ok(strstr(log_text(logpath), "bind(held port) failed: Address already in use") != NULL,
       "  logged naming the call, the setting and the reason");

    union sockaddr_any far;
    socklen_t flen = net_resolve("192.0.2.1", 80, &far); /* TEST-NET-1: not on this host; nothing is sent */
    if (!nonlocal_bind()) {
        is_int(net_listen(&far, flen, "far address", 16), -1, "an address not on this host fails");
        ok(strstr(log_text(logpath), "bind(far address) failed: Cannot assign requested address") != NULL,
           "  logged with EADDRNOTAVAIL's text");
    }
    is_int(lowest_free_fd(), lowest, "the failures closed their sockets (lowest free descriptor unchanged)");
    close(plain);
    close(fd);
}

int main(void)
{
    char logpath[] = "/tmp/wsmill-test-net-XXXXXX";
    int lf = mkstemp(logpath);
    if (lf == -1 || log_open(logpath) == -1)
        return 1;
    close(lf);
    test_resolve();
    test_hostport();
    test_name_truncated();
    test_listen(logpath);
    unlink(logpath);
    return done_testing();
}
