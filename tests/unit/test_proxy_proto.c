/* test_proxy_proto.c: common/proxy_proto.c. Every valid header is also fed
 * one byte at a time: each proper prefix must answer "need more" (0), never
 * invalid, and the whole header must be consumed exactly, with the bytes
 * after it left alone. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include "common/proxy_proto.h"
#include "tap.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Every proper prefix of a header of length hl needs more. */
static void prefixes_need_more(const uint8_t *b, size_t hl, const char *name)
{
    struct pp_addr a;
    const char *why;
    size_t bad = 0;
    for (size_t i = 0; i < hl; i++)
        if (pp_parse(b, i, &a, &why) != 0)
            bad = i + 1;
    ok(bad == 0, "%s: every proper prefix needs more", name);
    if (bad)
        diag("prefix of %zu bytes did not answer 0", bad - 1);
}

static void v1_ok(const char *line, int family, const char *src, uint16_t sport, uint16_t dport)
{
    uint8_t buf[256];
    size_t hl = strlen(line);
    memcpy(buf, line, hl);
    memcpy(buf + hl, "GET /", 5); /* the client's bytes follow */
    struct pp_addr a;
    const char *why;
    ssize_t r = pp_parse(buf, hl + 5, &a, &why);
    is_int(r, (long long)hl, "v1 '%.*s' consumes exactly the line", (int)hl - 2, line);
    is_int(a.family, family, "  family");
    if (family != AF_UNSPEC) {
        uint8_t want[16];
        inet_pton(family, src, want);
        is_mem(a.src, family == AF_INET ? 4 : 16, want, family == AF_INET ? 4 : 16, "  source address %s",
               src);
        is_int(a.src_port, sport, "  source port");
        is_int(a.dst_port, dport, "  destination port");
    }
    prefixes_need_more(buf, hl, "v1");
}

static void bad(const void *p, size_t n, const char *what)
{
    struct pp_addr a;
    const char *why = NULL;
    ssize_t r = pp_parse(p, n, &a, &why);
    is_int(r, -1, "invalid: %s", what);
    ok(why && *why, "  with a reason (%s)", why ? why : "none");
}

static void need(const void *p, size_t n, const char *what)
{
    struct pp_addr a;
    const char *why;
    is_int(pp_parse(p, n, &a, &why), 0, "need more: %s", what);
}

static size_t v2(uint8_t *b, uint8_t vc, uint8_t fam, const uint8_t *addr, size_t alen)
{
    memcpy(b, sig, 12);
    b[12] = vc;
    b[13] = fam;
    b[14] = (uint8_t)(alen >> 8);
    b[15] = (uint8_t)alen;
    if (alen)
        memcpy(b + 16, addr, alen);
    return 16 + alen;
}

static void test_v2(void)
{
    uint8_t b[4096], a4[12 + 7] = {192, 0, 2, 1, 10, 0, 0, 1, 0x30, 0x39, 0x1f, 0x90,
                                   /* a TLV (type 0x01 ALPN, len 4) that is skipped */
                                   0x01, 0x00, 0x04, 'h', '2', 'x', 'x'};
    struct pp_addr a;
    const char *why;
    size_t hl = v2(b, 0x21, 0x11, a4, sizeof a4);
    memcpy(b + hl, "\x16\x03\x01", 3); /* a TLS hello follows */
    is_int(pp_parse(b, hl + 3, &a, &why), (long long)hl, "v2 TCP4 with a TLV consumes header and TLV");
    is_int(a.family, AF_INET, "  family AF_INET");
    is_mem(a.src, 4, a4, 4, "  source address");
    is_int(a.src_port, 12345, "  source port");
    is_int(a.dst_port, 8080, "  destination port");
    is_int(a.version, 2, "  version 2");
    prefixes_need_more(b, hl, "v2 TCP4");

    uint8_t a6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7, [16] = 0xfe, [17] = 0x80, [32] = 0, 80, 1, 187};
    hl = v2(b, 0x21, 0x21, a6, sizeof a6);
    is_int(pp_parse(b, hl, &a, &why), (long long)hl, "v2 TCP6 consumed");
    is_int(a.family, AF_INET6, "  family AF_INET6");
    is_mem(a.src, 16, a6, 16, "  source address");
    is_int(a.src_port, 80, "  source port");
    is_int(a.dst_port, 443, "  destination port");

    hl = v2(b, 0x20, 0x00, NULL, 0);
    is_int(pp_parse(b, hl, &a, &why), 16, "v2 LOCAL without addresses consumed");
    is_int(a.family, AF_UNSPEC, "  LOCAL: use the socket's address");
    hl = v2(b, 0x20, 0x11, a4, 12);
    is_int(pp_parse(b, hl, &a, &why), 28, "v2 LOCAL with addresses: consumed, addresses ignored");
    is_int(a.family, AF_UNSPEC, "  family AF_UNSPEC");
    uint8_t unix_addr[216] = {0};
    hl = v2(b, 0x21, 0x31, unix_addr, sizeof unix_addr);
    is_int(pp_parse(b, hl, &a, &why), (long long)hl, "v2 PROXY over a unix stream: consumed");
    is_int(a.family, AF_UNSPEC, "  family AF_UNSPEC");

    hl = v2(b, 0x11, 0x11, a4, 12);
    bad(b, hl, "v2 version 1 in the version nibble");
    hl = v2(b, 0x22, 0x11, a4, 12);
    bad(b, hl, "v2 command 2");
    hl = v2(b, 0x21, 0x12, a4, 12);
    bad(b, hl, "v2 UDP over IPv4");
    hl = v2(b, 0x21, 0x11, a4, 11);
    bad(b, hl, "v2 TCP4 with an 11-byte address block");
    hl = v2(b, 0x21, 0x21, a6, 35);
    bad(b, hl, "v2 TCP6 with a 35-byte address block");
    v2(b, 0x21, 0x11, a4, 12);
    b[14] = 0x08;
    b[15] = 0x01; /* 2049 bytes of addresses and TLVs */
    bad(b, 16, "v2 length past 2064 is refused before the bytes arrive");
    need(b, 15, "v2 head of 15 bytes");
    memcpy(b, sig, 12);
    b[5] = 'X';
    bad(b, 6, "v2 signature wrong in its sixth byte, seen at once");
}

static void test_v1(void)
{
    v1_ok("PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n", AF_INET, "192.0.2.1", 56324, 443);
    v1_ok("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", AF_INET6, "2001:db8::1", 1, 65535);
    v1_ok("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", AF_INET, "255.255.255.255", 65535,
          65535);
    v1_ok("PROXY UNKNOWN\r\n", AF_UNSPEC, NULL, 0, 0);
    v1_ok("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", AF_UNSPEC, NULL, 0, 0);

    const char *bads[] = {
        "PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\n",   /* LF alone */
        "PROXY TCP5 192.0.2.1 10.0.0.1 56324 443\r\n", /* protocol */
        "PROXY TCP4 192.0.2.1 10.0.0.1 65536 443\r\n", /* port range */
        "PROXY TCP4 192.0.2.1 10.0.0.1 056 443\r\n",   /* leading zero */
        "PROXY TCP4 192.0.2.1 10.0.0.1 -1 443\r\n",    /* sign */
        "PROXY TCP4 192.0.2.1  10.0.0.1 1 443\r\n",    /* two spaces */
        "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",     /* v6 address under TCP4 */
        "PROXY TCP6 192.0.2.1 ::1 1 2\r\n",            /* v4 address under TCP6 */
        "PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n",         /* missing port */
        "PROXY TCP4 192.0.2.1 10.0.0.1 1 2 3\r\n",     /* extra field */
        "PROXY TCP4 192.0.2.1 10.0.0.1 1 2 \r\n",      /* trailing space */
        "PROXY TCP4 192.0.2.1 10.0.0.1 1 2\rX",        /* CR then not LF */
        "PROXY \r\n",                                  /* nothing */
        "GET / HTTP/1.1\r\n",                          /* a plain request */
        "PROXZ",                                       /* wrong signature, early */
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
        bad(bads[i], strlen(bads[i]), bads[i]);
    uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    bad(tls, 1, "a TLS hello's first byte");
    char longl[200] = "PROXY UNKNOWN ";
    memset(longl + 14, 'x', 150);
    bad(longl, 164, "v1 without CRLF in 107 bytes");
    need(longl, 106, "v1 without CRLF in 106 bytes (may still end)");
    need("PROX", 4, "a prefix of the v1 signature");
    need("", 0, "nothing yet");
}

int main(void)
{
    test_v1();
    test_v2();
    return done_testing();
}
