/* liveness.h: is a silent peer still reading what we sent? (liveness.c) */
#ifndef WSMILL_LIVENESS_H
#define WSMILL_LIVENESS_H
#include <stdint.h>

struct conn;

enum liveness {
    LIVENESS_SILENT,     /* it read nothing between two looks: idle, close it */
    LIVENESS_LOOK_AGAIN, /* first look taken: look again in liveness_ms */
    LIVENESS_READING,    /* its application read what we sent: not idle */
};

/* The idle deadline of c came: our ping may be waiting behind a backlog
 * the peer is still reading (held in the kernel's buffers, so no writable
 * event said so). Looks at the TCP connection, liveness_ms apart (more of
 * them, up to idle_ms / 2, while the peer's window is shut), tell a slow
 * reader from a peer that stopped. */
enum liveness liveness_check(struct conn *c, int64_t idle_ms);
/* The time between the two looks for an idle_timeout of idle_ms. */
int liveness_ms(int64_t idle_ms);

#endif
