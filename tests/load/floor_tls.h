/* floor_tls: the TLS side of wsmill-floor --tls (a minimal OpenSSL accept
 * loop: the floor a TLS server is measured against). One server context,
 * set up like wsmill's (TLS 1.2+, released buffers, tickets, no session
 * cache, ALPN not offered), one SSL per descriptor. Reads and sends keep
 * read()/send()'s contract (-1 with errno EAGAIN). */
#ifndef WSMILL_FLOOR_TLS_H
#define WSMILL_FLOOR_TLS_H
#include <stddef.h>
#include <sys/types.h>

/* Loads "CERT,KEY" (PEM files) for up to nfds descriptors. 0 or -1. */
int floor_tls_init(const char *cert_key, size_t nfds);
/* An SSL for a just accepted fd. 0 or -1. */
int floor_tls_accept(int fd);
/* 1 handshake done, 0 waiting (*want_write: for room to write), -1 failed. */
int floor_tls_handshake(int fd, int *want_write);
ssize_t floor_tls_recv(int fd, void *buf, size_t n);
ssize_t floor_tls_send(int fd, const void *buf, size_t n);
void floor_tls_close(int fd);

#endif
