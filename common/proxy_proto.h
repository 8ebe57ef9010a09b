/* proxy_proto.h: the PROXY protocol header (haproxy's spec, versions 1 and
 * 2) that a load balancer sends before the client's first byte, carrying
 * the client's address.
 *
 * Pure: no I/O, no allocation. pp_parse answers with one of three results:
 * the header's length (consumed), 0 (need more bytes), or -1 (invalid, with
 * the reason). A prefix that cannot start a header is invalid at once, so a
 * TLS hello or an HTTP request sent straight to a PROXY listener fails on
 * its first bytes instead of waiting for more. */
#ifndef WSMILL_PROXY_PROTO_H
#define WSMILL_PROXY_PROTO_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PP_V1_MAX 107  /* "PROXY TCP6 <39> <39> 65535 65535\r\n" per the spec */
#define PP_V2_MAX 2064 /* 16-byte head + addresses + TLVs we are willing to skip */
#define PP_MAX    PP_V2_MAX

struct pp_addr {
    /* AF_INET or AF_INET6: src/dst hold 4 or 16 bytes (network order) and
     * the ports are in host order. AF_UNSPEC: a LOCAL command (health check
     * from the balancer itself), "PROXY UNKNOWN", or an address family we do
     * not carry (unix): use the socket's own peer address. */
    int family;
    uint8_t src[16], dst[16];
    uint16_t src_port, dst_port;
    uint8_t version; /* 1 or 2 */
};

/* Parses the header at the start of buf (n bytes). Returns the header's
 * length (> 0) with *out filled, 0 when buf is a proper prefix of a header
 * that may still become valid, or -1 with a static reason in *why when it
 * is not a header (or is longer than PP_MAX). Bytes after the header are
 * the client's and are not looked at. */
ssize_t pp_parse(const uint8_t *buf, size_t n, struct pp_addr *out, const char **why);

#endif
