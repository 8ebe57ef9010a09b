/* limits.h: what a connection may cost, checked in one room: the per-IP
 * admission at accept (429), the global max_connections admission at the
 * upgrade (503 when full) and the per-connection rate buckets (1008). */
#ifndef WSMILL_LIMITS_H
#define WSMILL_LIMITS_H
#include <stdint.h>
#include <sys/socket.h>

struct conn;
struct worker;

/* Counts a new connection against its address's limits. Returns 0 (counted
 * or no limit), or the HS_REJECT_IP_* reason it is refused. */
int limits_admit_address(struct worker *w, struct conn *c, const struct sockaddr *addr);
/* Answers a connection refused by limits_admit_address with 429 and lets it
 * linger (no request parser is allocated for it). */
void limits_refuse_address(struct worker *w, struct conn *c, int why);
/* Takes one slot of max_connections for an upgrade. Returns 1, or 0 when
 * the server is full (the caller answers 503). */
int limits_admit_upgrade(struct worker *w);
/* Takes msgs messages and bytes payload bytes from c's rate buckets.
 * Returns 0, or the limit hit: 1 messages, 2 bytes. */
int limits_rate_take(struct conn *c, uint64_t msgs, uint64_t bytes);
/* 1 when c's buckets have refilled (nothing to remember). */
int limits_rate_full(struct conn *c);

#endif
