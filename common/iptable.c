/* iptable.c: per-address counters in shared memory (see iptable.h). */
#include "iptable.h"

#include <string.h>
#include <sys/random.h>

#define FP_SHIFT   40
#define CONN_SHIFT 20
#define COUNT_MASK ((uint64_t)IPTABLE_COUNT_MAX)

static uint64_t fp_of(uint64_t w)
{
    return w >> FP_SHIFT;
}
static uint64_t conns_of(uint64_t w)
{
    return (w >> CONN_SHIFT) & COUNT_MASK;
}
static uint64_t hs_of(uint64_t w)
{
    return w & COUNT_MASK;
}
static uint64_t make(uint64_t fp, uint64_t conns, uint64_t hs)
{
    return fp << FP_SHIFT | conns << CONN_SHIFT | hs;
}

void iptable_init(struct iptable *t)
{
    if (getrandom(t->key, sizeof(t->key), 0) != (ssize_t)sizeof(t->key)) {
        /* No entropy: still correct, only predictable. */
        t->key[0] = 0x9e3779b97f4a7c15ULL;
        t->key[1] = (uint64_t)(uintptr_t)t;
    }
}

/* A keyed 64-bit mix of the address (a finaliser-style hash: good spread,
 * and the random key keeps clients from choosing collisions). */
static uint64_t hash(const struct iptable *t, const void *addr, size_t len)
{
    uint64_t h = t->key[0] ^ (len * 0xff51afd7ed558ccdULL);
    const uint8_t *p = addr;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = 0;
        memcpy(&v, p + i, len - i < 8 ? len - i : 8);
        h ^= v + t->key[1];
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
    }
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
    return h;
}

static uint64_t fingerprint(uint64_t h)
{
    return (h >> FP_SHIFT) | 1; /* 24 bits, never 0 */
}

enum iptable_result iptable_acquire(struct iptable *t, const void *addr, size_t len, uint32_t max_conn,
                                    uint32_t max_hs, uint32_t *slot)
{
    uint64_t h = hash(t, addr, len);
    uint64_t fp = fingerprint(h);
    *slot = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        int free_at = -1;
        for (uint32_t i = 0; i < IPTABLE_PROBE; i++) {
            uint32_t idx = (uint32_t)(h + i) & (IPTABLE_SLOTS - 1);
            uint64_t w = atomic_load_explicit(&t->slot[idx], memory_order_relaxed);
            if (fp_of(w) == fp && (conns_of(w) || hs_of(w))) {
                uint64_t c = conns_of(w), s = hs_of(w);
                if (max_conn && c >= max_conn)
                    return IPT_TOO_MANY_CONNECTIONS;
                if (max_hs && s >= max_hs)
                    return IPT_TOO_MANY_HANDSHAKES;
                if (c >= COUNT_MASK || s >= COUNT_MASK)
                    return IPT_FULL;
                if (atomic_compare_exchange_weak(&t->slot[idx], &w, make(fp, c + 1, s + 1))) {
                    *slot = idx + 1;
                    return IPT_OK;
                }
                goto retry; /* raced: look again */
            }
            if (free_at < 0 && !conns_of(w) && !hs_of(w))
                free_at = (int)idx;
        }
        if (free_at < 0)
            return IPT_FULL;
        uint64_t w = atomic_load_explicit(&t->slot[free_at], memory_order_relaxed);
        if (!conns_of(w) && !hs_of(w) &&
            atomic_compare_exchange_strong(&t->slot[free_at], &w, make(fp, 1, 1))) {
            *slot = (uint32_t)free_at + 1;
            return IPT_OK;
        }
    retry:;
    }
    return IPT_FULL;
}

static void sub(struct iptable *t, uint32_t slot, uint64_t dconn, uint64_t dhs)
{
    if (!slot)
        return;
    _Atomic uint64_t *p = &t->slot[slot - 1];
    uint64_t w = atomic_load_explicit(p, memory_order_relaxed);
    for (;;) {
        uint64_t c = conns_of(w), s = hs_of(w);
        uint64_t nw = make(fp_of(w), c >= dconn ? c - dconn : 0, s >= dhs ? s - dhs : 0);
        if (atomic_compare_exchange_weak(p, &w, nw))
            return;
    }
}

void iptable_handshake_done(struct iptable *t, uint32_t slot)
{
    sub(t, slot, 0, 1);
}

void iptable_release(struct iptable *t, uint32_t slot, int handshaking)
{
    sub(t, slot, 1, handshaking ? 1 : 0);
}

void iptable_counts(struct iptable *t, const void *addr, size_t len, uint32_t *conns, uint32_t *hs)
{
    uint64_t h = hash(t, addr, len);
    uint64_t fp = fingerprint(h);
    *conns = *hs = 0;
    for (uint32_t i = 0; i < IPTABLE_PROBE; i++) {
        uint64_t w = atomic_load(&t->slot[(uint32_t)(h + i) & (IPTABLE_SLOTS - 1)]);
        if (fp_of(w) == fp && (conns_of(w) || hs_of(w))) {
            *conns = (uint32_t)conns_of(w);
            *hs = (uint32_t)hs_of(w);
            return;
        }
    }
}
