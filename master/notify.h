/* notify.h: readiness for a service manager, systemd's sd_notify(3)
 * datagram protocol written out (about forty lines) rather than linking
 * libsystemd: the protocol is documented as stable, the master needs no
 * other part of the library, and the binary keeps running where systemd
 * is absent. NOTIFY_SOCKET names a unix datagram socket, a path or, with a
 * leading '@', an abstract name; each message is "KEY=VALUE" lines. Unset
 * means nobody listens, and every call does nothing. */
#ifndef WSMILL_NOTIFY_H
#define WSMILL_NOTIFY_H

/* Sends one datagram of newline-separated KEY=VALUE lines to
 * $NOTIFY_SOCKET. Returns 1 when sent, 0 when no manager listens, -1
 * after logging a failed send (the server runs on: readiness is advice). */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
