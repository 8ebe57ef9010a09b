/* tls.h: the TLS transport's worker side (tls.c): the worker's SSL_CTX,
 * its socket on tls_listen, and a connection's SSL. */
#ifndef WSMILL_TLS_H
#define WSMILL_TLS_H

struct conn;
struct worker;

/* When tls_listen is set: builds the context from the files the master
 * published in the shared block; the socket on tls_listen is the one the
 * master handed over (w->tls_listen_fd). Returns 0 (also when off), or -1
 * after logging. */
int tls_start(struct worker *w);
/* After a reload: a newer certificate generation in the shared block
 * builds a new context that new handshakes use; established connections
 * keep the one they started with (it is freed with the last of them). */
void tls_reload(struct worker *w);
/* Gives a connection accepted on tls_listen its SSL object. Returns 0, or
 * -1 when out of memory. */
int tls_conn_start(struct conn *c);
/* Stops accepting on tls_listen and closes this worker's copy. */
void tls_stop(struct worker *w);

#endif
