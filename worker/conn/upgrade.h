/* upgrade.h: the HTTP upgrade request of a connection in CONN_HANDSHAKE
 * (upgrade.c), parsed incrementally with http-parser. */
#ifndef WSMILL_UPGRADE_H
#define WSMILL_UPGRADE_H
#include <stddef.h>
#include <stdint.h>

struct conn;

/* A new request parser (conn->busy while in CONN_HANDSHAKE), or NULL. */
void *upgrade_state_new(void);
void upgrade_state_free(void *hs);
/* Feeds request bytes; answers and changes state when the request is
 * complete or invalid. Returns how many bytes it consumed (the rest, if the
 * connection is now open, are frames). */
size_t upgrade_feed(struct conn *c, uint8_t *data, size_t len);

#endif
