/* cidr.h: lists of address ranges ("10.0.0.0/8, 192.168.1.7, ::1/128"),
 * for trusted_proxies: which peers may send a PROXY protocol header.
 *
 * Pure: parsing and matching allocate nothing. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports) matches IPv4 ranges. */
#ifndef WSMILL_CIDR_H
#define WSMILL_CIDR_H
#include <stddef.h>
#include <stdint.h>

#define CIDR_LIST_MAX 64

struct cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
};

struct cidr_list {
    uint32_t n;
    struct cidr e[CIDR_LIST_MAX];
};

/* Parses a comma- or space-separated list of ADDRESS[/BITS] (IPv4 or IPv6;
 * no BITS = one address). Host bits set below the prefix are refused, since
 * "10.1.2.3/8" is more likely a typo than a wish. Empty text gives an empty
 * list. Returns 0, or -1 with a reason naming the entry in err. */
int cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen);

/* 1 when addr (4 bytes for family 4, 16 for family 6, network order) lies
 * in one of l's ranges, else 0. */
int cidr_list_match(const struct cidr_list *l, int family, const uint8_t *addr);

#endif
