/* test_cidr.c: common/cidr.c: list parsing (and its refusals) and matching,
 * including IPv4-mapped IPv6 peers against IPv4 ranges. */
#include <arpa/inet.h>
#include <string.h>
#include "common/cidr.h"
#include "tap.h"

static int match(const struct cidr_list *l, const char *ip)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return cidr_list_match(l, 4, a);
    if (inet_pton(AF_INET6, ip, a) == 1)
        return cidr_list_match(l, 6, a);
    return -1;
}

static void refuse(const char *text, const char *needle)
{
    struct cidr_list l;
    char err[160] = "";
    is_int(cidr_list_parse(text, &l, err, sizeof err), -1, "'%s' is refused", text);
    ok(strstr(err, needle) != NULL, "  reason says '%s' (%s)", needle, err);
}

int main(void)
{
    struct cidr_list l;
    char err[160] = "";
    is_int(cidr_list_parse("", &l, err, sizeof err), 0, "empty list parses");
    is_int(l.n, 0, "  with no entries");
    is_int(match(&l, "127.0.0.1"), 0, "  and matches nothing");

    is_int(cidr_list_parse("10.0.0.0/8, 192.168.1.7 ,2001:db8::/32\t127.0.0.0/30,::1", &l, err, sizeof err),
           0, "a mixed list parses");
    is_int(l.n, 5, "  five entries");
    is_int(match(&l, "10.255.1.2"), 1, "10.255.1.2 in 10.0.0.0/8");
    is_int(match(&l, "11.0.0.1"), 0, "11.0.0.1 not in it");
    is_int(match(&l, "192.168.1.7"), 1, "a single address matches itself");
    is_int(match(&l, "192.168.1.8"), 0, "  and not its neighbour");
    is_int(match(&l, "127.0.0.3"), 1, "127.0.0.3 in 127.0.0.0/30");
    is_int(match(&l, "127.0.0.4"), 0, "127.0.0.4 not in 127.0.0.0/30");
    is_int(match(&l, "2001:db8:ffff::1"), 1, "2001:db8:ffff::1 in 2001:db8::/32");
    is_int(match(&l, "2001:db9::1"), 0, "2001:db9::1 not in it");
    is_int(match(&l, "::1"), 1, "::1 matches");
    is_int(match(&l, "::ffff:10.1.2.3"), 1, "IPv4-mapped ::ffff:10.1.2.3 matches 10.0.0.0/8");
    is_int(match(&l, "::ffff:11.1.2.3"), 0, "IPv4-mapped ::ffff:11.1.2.3 does not");

    is_int(cidr_list_parse("0.0.0.0/0", &l, err, sizeof err), 0, "0.0.0.0/0 parses");
    is_int(match(&l, "203.0.113.9"), 1, "  and matches any IPv4 address");
    is_int(match(&l, "2001:db8::1"), 0, "  but no IPv6 one");
    is_int(cidr_list_parse("10.0.0.0/9", &l, err, sizeof err), 0, "a prefix not on a byte boundary");
    is_int(match(&l, "10.127.255.255"), 1, "  10.127.255.255 in 10.0.0.0/9");
    is_int(match(&l, "10.128.0.0"), 0, "  10.128.0.0 not in it");

    refuse("10.0.0.1/8", "bits set past the prefix");
    refuse("10.0.0.0/33", "longer than 32");
    refuse("::/129", "longer than 128");
    refuse("10.0.0.0/", "not a number");
    refuse("10.0.0.0/08", "not a number");
    refuse("10.0.0.0/x", "not a number");
    refuse("localhost", "not an IPv4 or IPv6 address");
    refuse("10.0.0.0/8,300.1.1.1", "'300.1.1.1'");
    char many[64 * 12 + 32] = "";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.0.%d,", i);
    refuse(many, "more than 64");
    return done_testing();
}
