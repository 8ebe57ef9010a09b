/* pubapi.h: the HTTP publish API on publish_listen (pubapi.c). */
#ifndef WSMILL_PUBAPI_H
#define WSMILL_PUBAPI_H

struct worker;

/* Binds its own SO_REUSEPORT listener when publish_listen is set. Returns 0
 * (also when turned off), -1 when the address cannot be bound (logged). */
int pubapi_start(struct worker *w);
/* Stops accepting and closes idle keep-alive connections (drain). */
void pubapi_stop(struct worker *w);

#endif
