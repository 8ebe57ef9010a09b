/* listener.h: what the worker calls to run the HTTP service (worker/http/). */
#ifndef WSMILL_HTTP_LISTENER_H
#define WSMILL_HTTP_LISTENER_H

struct worker;

/* Binds the service's own SO_REUSEPORT listener when publish_listen is
 * set. Returns 0 (also when turned off), -1 when the address cannot be
 * bound (logged). */
int http_listener_start(struct worker *w);
/* Stops accepting and closes idle keep-alive connections and event
 * streams (drain); requests in progress get their answer first. */
void http_listener_stop(struct worker *w);

#endif
