/* transport.h: how a connection's bytes meet its socket. One table of
 * functions per transport (plain.c, tls.c), chosen at accept by the
 * listener; conn.c reads and output.c writes through it and never ask
 * which one it is. A PROXY protocol header, when the listener expects one,
 * is read before the transport sees a byte (proxy.c). */
#ifndef WSMILL_TRANSPORT_H
#define WSMILL_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../conn/conn.h"

struct transport {
    const char *name;
    /* Reads the client's bytes into buf (len >= 16 KiB). Returns n > 0, 0 at
     * the end of the stream, or -1 with errno EAGAIN (nothing now) or
     * another errno (the connection is broken). */
    ssize_t (*recv)(struct conn *c, uint8_t *buf, size_t len);
    /* Sends iov's bytes without blocking. Returns how many were taken (the
     * transport may hold some itself and arm EV_WRITE: see pending), or -1
     * with errno EAGAIN (none) or another errno (broken). */
    ssize_t (*sendv)(struct conn *c, const struct iovec *iov, int n);
    /* EV_WRITE: sends what the transport holds. Returns 0 when it holds
     * nothing more, or -1 with errno EAGAIN or another errno. */
    int (*flush)(struct conn *c);
    /* 1 while the transport holds bytes it took but could not send. */
    int (*pending)(const struct conn *c);
    /* Ends our direction of the stream (TLS: close_notify, then FIN). */
    void (*shutdown)(struct conn *c);
    /* Frees what the transport holds for c (phase two of the close). */
    void (*release)(struct conn *c);
    /* 1 when a plain HTTP answer may be written before anything is read
     * (a 429 at accept); a TLS client must finish its handshake first. */
    uint8_t answers_early;
};

enum transport_kind { TRANSPORT_PLAIN = 0, TRANSPORT_TLS = 1, TRANSPORT_MAX };

extern const struct transport transport_plain, transport_tls;
extern const struct transport *const transports[TRANSPORT_MAX];

static inline const struct transport *transport_of(const struct conn *c)
{
    return transports[c->transport];
}

#endif
