/* proxy.h: the PROXY protocol step (proxy.c): on a listener with
 * proxy_protocol (or tls_proxy_protocol) on, the peer must be listed in
 * trusted_proxies and the connection's first bytes must be a v1 or v2
 * header (common/proxy_proto.c), read before the transport sees a byte.
 * The address it carries is the one the per-IP limits and the logs use. */
#ifndef WSMILL_PROXY_H
#define WSMILL_PROXY_H
#include <sys/socket.h>

struct conn;
struct worker;

/* Parses trusted_proxies into the worker (start and every reload). */
void proxy_reload(struct worker *w);
/* 1 when peer may send a PROXY header, else 0 (counted: the caller closes
 * the connection without a word). */
int proxy_trusted(struct worker *w, const struct sockaddr *peer);
/* Reads c's PROXY header and takes exactly its bytes from the socket (it
 * peeks first, so what follows stays for the transport). Returns 1 with
 * the client's address in *out (the peer's own for a LOCAL or UNKNOWN
 * header), 0 when more bytes must arrive (the socket's low-water mark is
 * raised meanwhile, so epoll does not wake us for a partial header), or
 * -1 when the header is malformed or the peer hung up (counted; the
 * caller closes c without a response). */
int proxy_read(struct conn *c, struct sockaddr_storage *out);

#endif
