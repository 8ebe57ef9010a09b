/* test_portowner.c: master/portowner.c. The /proc/net/tcp{,6} line parser
 * and the conflict rule on lines as the kernel writes them, then the probe
 * and the pid lookup on a real listening socket of this process (the case
 * of issue 18: SO_REUSEPORT lets a second bind of the same user join). */
#include <arpa/inet.h>
#include <unistd.h>

#include "../../master/portowner.h"
#include "tap.h"

static const char *v4_listen =
    "   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
    "        0 123456 1 0000000000000000 100 0 0 10 0";
static const char *v4_estab =
    "   4: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0"
    "        0 123457 1 0000000000000000 20 4 30 10 -1";
static const char *v4_any =
    "   5: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
    "        0 123458 1 0000000000000000 100 0 0 10 0";
static const char *v6_loop =
    "   0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0";
static const char *header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode";

static union sockaddr_any addr(const char *spec)
{
    union sockaddr_any a;
    if (!net_parse_hostport(spec, &a))
        diag("bad address %s", spec);
    return a;
}

static void test_parse(void)
{
    struct portowner_entry e;
    ok(portowner_parse_line(v4_listen, AF_INET, &e) == 0 && e.listening && e.port == 8080 &&
           e.inode == 123456,
       "IPv4 listener: port 8080, inode 123456");
    ok(e.addr[0] == 127 && e.addr[3] == 1, "address in network order (127.0.0.1)");
    ok(portowner_parse_line(v4_estab, AF_INET, &e) == 0 && !e.listening,
       "an established socket is not listening");
    ok(portowner_parse_line(v6_loop, AF_INET6, &e) == 0 && e.port == 8082 && e.addr[15] == 1 && e.inode == 99,
       "IPv6 ::1 listener");
    ok(portowner_parse_line(header, AF_INET, &e) == -1, "the header line is refused");
    ok(portowner_parse_line("   3: 0100007G:1F90 00000000:0000 0A", AF_INET, &e) == -1, "bad hex refused");
    ok(portowner_parse_line("   3: 0100007F:1F90", AF_INET, &e) == -1, "a cut line is refused");
    ok(portowner_parse_line("", AF_INET, &e) == -1, "an empty line is refused");
}

static void test_conflicts(void)
{
    struct portowner_entry l, any, est, v6;
    portowner_parse_line(v4_listen, AF_INET, &l);
    portowner_parse_line(v4_any, AF_INET, &any);
    portowner_parse_line(v4_estab, AF_INET, &est);
    portowner_parse_line(v6_loop, AF_INET6, &v6);
    union sockaddr_any a = addr("127.0.0.1:8080"), b = addr("127.0.0.2:8080"), w = addr("0.0.0.0:8080"),
                       c = addr("127.0.0.1:8081"), six = addr("[::1]:8082");
    ok(portowner_conflicts(&l, &a), "same address and port");
    ok(!portowner_conflicts(&l, &b), "another loopback address does not");
    ok(portowner_conflicts(&l, &w), "binding the wildcard meets every listener on the port");
    ok(portowner_conflicts(&any, &c), "a wildcard listener meets every address on its port");
    ok(!portowner_conflicts(&l, &c), "another port does not");
    ok(!portowner_conflicts(&est, &a), "an established socket does not");
    ok(portowner_conflicts(&v6, &six), "IPv6 same address");
}

static void test_live(void)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) || listen(fd, 4) ||
        getsockname(fd, (struct sockaddr *)&sin, &len)) {
        ok(0, "a listening socket for the live checks");
        return;
    }
    union sockaddr_any a;
    char spec[64], err[512];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", ntohs(sin.sin_port));
    a = addr(spec);
    ok(portowner_in_use(&a, sizeof a.in4), "the probe sees our SO_REUSEPORT listener on %s", spec);
    pid_t pids[PORTOWNER_MAX_PIDS];
    int n = portowner_find(&a, pids, PORTOWNER_MAX_PIDS);
    ok(n == 1 && pids[0] == getpid(), "and /proc names this process (%d found)", n);
    ok(portowner_check("listen", &a, sizeof a.in4, getpid(), err, sizeof err) == 0,
       "our own socket is no conflict for us");
    ok(portowner_check("listen", &a, sizeof a.in4, 1, err, sizeof err) == -1, "for anyone else it is");
    char want[128];
    snprintf(want, sizeof want, "listen %s: address already in use by pid %d (", spec, (int)getpid());
    ok(strstr(err, want) != NULL, "named: %s", err);
    close(fd);
    ok(!portowner_in_use(&a, sizeof a.in4), "closed: free again");
    a.in4.sin_port = 0;
    ok(!portowner_in_use(&a, sizeof a.in4), "port 0 is always free");
}

int main(void)
{
    test_parse();
    test_conflicts();
    test_live();
    return done_testing();
}
