/* iptable.h: connections and unfinished handshakes per client address,
 * counted across all workers in shared memory.
 *
 * A fixed open-addressing table of 64-bit words, each updated with one CAS:
 *   bits 63..40  fingerprint of the address (never 0 in a used slot)
 *   bits 39..20  connections (handshaking or open)
 *   bits 19..0   of which unfinished handshakes
 * A slot whose counts are both zero is free for any address, so the table
 * never needs a delete and never fills with stale keys. Addresses hash with
 * a random per-start key, so a client cannot aim at one probe chain. When
 * the probe window is full the address is not counted (fail open) and the
 * caller counts that. A worker killed with connections open cannot give its
 * counts back: they stay until the server restarts (a crash is already a
 * bug to fix; the counts only make that address's limit tighter). */
#ifndef WSMILL_IPTABLE_H
#define WSMILL_IPTABLE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define IPTABLE_SLOTS     (1u << 18) /* 2 MiB; ~200,000 distinct addresses at once */
#define IPTABLE_PROBE     32
#define IPTABLE_COUNT_MAX ((1u << 20) - 1)

struct iptable {
    uint64_t key[2]; /* hash key, random per start */
    _Atomic uint64_t slot[IPTABLE_SLOTS];
};

enum iptable_result {
    IPT_OK = 0,
    IPT_TOO_MANY_CONNECTIONS, /* max_connections_per_ip */
    IPT_TOO_MANY_HANDSHAKES,  /* concurrent unfinished handshakes per ip */
    IPT_FULL,                 /* no slot in the probe window: not counted */
};

/* Seeds the hash key (from getrandom). The table's memory must be zero. */
void iptable_init(struct iptable *t);
/* A new connection from addr (4 or 16 bytes): counts it as connected and
 * handshaking unless that would pass max_conn or max_hs (0 = no limit).
 * On IPT_OK *slot receives the slot index + 1 for the calls below; on any
 * other result nothing was counted and *slot is 0. */
enum iptable_result iptable_acquire(struct iptable *t, const void *addr, size_t len, uint32_t max_conn,
                                    uint32_t max_hs, uint32_t *slot);
/* The connection's handshake finished (either way). */
void iptable_handshake_done(struct iptable *t, uint32_t slot);
/* The connection closed; handshaking says whether it was still in its
 * handshake (iptable_handshake_done not called). */
void iptable_release(struct iptable *t, uint32_t slot, int handshaking);
/* Current counts for addr (for tests and status). */
void iptable_counts(struct iptable *t, const void *addr, size_t len, uint32_t *conns, uint32_t *hs);

#endif
