/* load_tls: wss:// for wsmill-load (OpenSSL's libssl, client side). One
 * client context per process; a connection's SSL is made once its TCP
 * connect completes, and its reads and writes keep read()/send()'s
 * contract (-1 with errno EAGAIN when the socket has nothing or no room),
 * so load_conn.c calls the same code for ws:// and wss://. The server's
 * certificate is not verified: this is a load generator, not a client to
 * trust (the integration tests verify it with a test CA). */
#ifndef WSMILL_LOAD_TLS_H
#define WSMILL_LOAD_TLS_H
#include <stddef.h>
#include <sys/types.h>

/* A client SSL on fd (non-blocking, connected), or NULL. */
void *load_tls_new(int fd, const char *sni);
/* Drives the handshake: 1 done, 0 waiting (*want_write says for room to
 * write rather than bytes to read), -1 failed. */
int load_tls_handshake(void *ssl, int *want_write);
/* read() and send() over TLS. */
ssize_t load_tls_recv(void *ssl, void *buf, size_t n);
ssize_t load_tls_send(void *ssl, const void *buf, size_t n);
void load_tls_free(void *ssl);

#endif
