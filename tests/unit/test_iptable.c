/* test_iptable.c: common/iptable.c, the per-address connection and
 * handshake counters: the counting contract of iptable.h, both limits at
 * their edges, fail-open when the probe window is full (built by filling
 * the window through the public slot array), the count ceiling, slot reuse,
 * and the CAS loop under threads racing on one address with a limit. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/iptable.h"
#include "tap.h"

static const unsigned char A4[4] = {10, 0, 0, 1}, B4[4] = {10, 0, 0, 2};
static const unsigned char A6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const unsigned char A6_PREFIX_A4[16] = {10, 0, 0, 1}; /* A4's bytes, then zeros */

static struct iptable *new_table(void)
{
    struct iptable *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    iptable_init(t);
    return t;
}

/* Checks addr's counts. */
static void counts_are(struct iptable *t, const void *addr, size_t len, uint32_t conns, uint32_t hs,
                       const char *what)
{
    uint32_t c = 99, h = 99;
    iptable_counts(t, addr, len, &c, &h);
    ok(c == conns && h == hs, "%s: %u connections, %u handshaking", what, conns, hs);
    if (c != conns || h != hs)
        diag("got %u connections, %u handshaking", c, h);
}

static void test_lifecycle(void)
{
    struct iptable *t = new_table();
    uint32_t slot = 0;
    counts_are(t, A4, 4, 0, 0, "unknown address");
    is_int(iptable_acquire(t, A4, 4, 0, 0, &slot), IPT_OK, "acquire without limits");
    ok(slot >= 1 && slot <= IPTABLE_SLOTS, "slot is an index + 1 (%u)", slot);
    counts_are(t, A4, 4, 1, 1, "after acquire");
    counts_are(t, B4, 4, 0, 0, "another address untouched");
    counts_are(t, A6_PREFIX_A4, 16, 0, 0, "16 bytes starting with the same 4 are another address");
    iptable_handshake_done(t, slot);
    counts_are(t, A4, 4, 1, 0, "after the handshake");
    iptable_release(t, slot, 0);
    counts_are(t, A4, 4, 0, 0, "after release");

    is_int(iptable_acquire(t, A6, 16, 0, 0, &slot), IPT_OK, "IPv6 acquire");
    iptable_release(t, slot, 1);
    counts_are(t, A6, 16, 0, 0, "released while handshaking: both counts drop");
    iptable_release(t, slot, 1);
    counts_are(t, A6, 16, 0, 0, "a second release does not wrap below zero");
    iptable_release(t, 0, 1);
    iptable_handshake_done(t, 0);
    ok(1, "slot 0 (nothing counted) is accepted by release and handshake_done");

    struct iptable *u = new_table();
    ok(memcmp(t->key, u->key, sizeof(t->key)) != 0, "each table gets its own hash key");
    free(u);
    free(t);
}

static void test_limits(void)
{
    struct iptable *t = new_table();
    uint32_t s[4], slot = 7;
    for (int i = 0; i < 3; i++)
        iptable_acquire(t, A4, 4, 3, 0, &s[i]);
    counts_are(t, A4, 4, 3, 3, "three connections under max_conn 3");
    is_int(iptable_acquire(t, A4, 4, 3, 0, &slot), IPT_TOO_MANY_CONNECTIONS, "the fourth is refused");
    is_int(slot, 0, "  and gets slot 0");
    counts_are(t, A4, 4, 3, 3, "  and is not counted");
    is_int(iptable_acquire(t, B4, 4, 3, 0, &s[3]), IPT_OK, "another address is not limited by A's count");
    iptable_release(t, s[0], 1);
    is_int(iptable_acquire(t, A4, 4, 3, 0, &s[0]), IPT_OK, "after one release A may connect again");

    /* max_hs counts only unfinished handshakes */
    for (int i = 0; i < 3; i++)
        iptable_handshake_done(t, s[i]);
    counts_are(t, A4, 4, 3, 0, "three connections, handshakes done");
    is_int(iptable_acquire(t, A4, 4, 0, 1, &s[3]), IPT_OK, "max_hs 1: first handshake");
    is_int(iptable_acquire(t, A4, 4, 0, 1, &slot), IPT_TOO_MANY_HANDSHAKES, "max_hs 1: second refused");
    iptable_handshake_done(t, s[3]);
    is_int(iptable_acquire(t, A4, 4, 0, 1, &slot), IPT_OK, "max_hs 1: allowed once the first finished");
    is_int(iptable_acquire(t, A4, 4, 5, 1, &slot), IPT_TOO_MANY_CONNECTIONS,
           "both limits reached: the connection limit is reported");
    free(t);
}

static uint64_t word(uint64_t fp, uint64_t conns, uint64_t hs)
{
    return fp << 40 | conns << 20 | hs;
}

static void test_full_window(void)
{
    struct iptable *t = new_table();
    uint32_t slot, again;
    /* In an empty table the first free slot is the first probed one. */
    iptable_acquire(t, A4, 4, 0, 0, &slot);
    uint32_t start = slot - 1;
    uint64_t fp = atomic_load(&t->slot[start]) >> 40;
    iptable_release(t, slot, 1);
    uint64_t other = (fp ^ 2) | 1;
    for (uint32_t i = 0; i < IPTABLE_PROBE; i++)
        atomic_store(&t->slot[(start + i) & (IPTABLE_SLOTS - 1)], word(other, 1, 0));
    is_int(iptable_acquire(t, A4, 4, 0, 0, &again), IPT_FULL,
           "probe window full of other addresses: IPT_FULL");
    is_int(again, 0, "  with slot 0");
    counts_are(t, A4, 4, 0, 0, "  and A is not counted (fail open)");
    /* a slot with both counts zero is free, whatever fingerprint it keeps */
    uint32_t freed = (start + IPTABLE_PROBE - 1) & (IPTABLE_SLOTS - 1);
    atomic_store(&t->slot[freed], word(other, 0, 0));
    is_int(iptable_acquire(t, A4, 4, 0, 0, &again), IPT_OK, "a slot freed at the window's end is taken");
    is_int(again, freed + 1, "  that very slot");
    counts_are(t, A4, 4, 1, 1, "  and A is counted there");

    /* the 20-bit ceiling */
    atomic_store(&t->slot[freed], word(atomic_load(&t->slot[freed]) >> 40, IPTABLE_COUNT_MAX, 0));
    is_int(iptable_acquire(t, A4, 4, 0, 0, &again), IPT_FULL, "connections at IPTABLE_COUNT_MAX: IPT_FULL");
    counts_are(t, A4, 4, IPTABLE_COUNT_MAX, 0, "  the count does not wrap");
    free(t);
}

#define THREADS 4
#define ROUNDS  20000
#define LIMIT   3

struct race {
    struct iptable *t;
    _Atomic int live, over, refused;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t slot;
        enum iptable_result res = iptable_acquire(r->t, A4, 4, LIMIT, 0, &slot);
        if (res != IPT_OK) {
            atomic_fetch_add(&r->refused, res == IPT_TOO_MANY_CONNECTIONS ? 1 : 1000000);
            continue;
        }
        if (atomic_fetch_add(&r->live, 1) + 1 > LIMIT)
            atomic_fetch_add(&r->over, 1);
        iptable_handshake_done(r->t, slot);
        atomic_fetch_sub(&r->live, 1);
        iptable_release(r->t, slot, 0);
    }
    return NULL;
}

static void test_race(void)
{
    struct race r = {.t = new_table()};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, racer, &r);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    is_int(atomic_load(&r.over), 0, "%d threads racing on one address never hold more than %d", THREADS,
           LIMIT);
    ok(atomic_load(&r.refused) < 1000000, "refusals were all the connection limit (%d)",
       atomic_load(&r.refused));
    counts_are(r.t, A4, 4, 0, 0, "all counts returned after the race");
    free(r.t);
}

int main(void)
{
    test_lifecycle();
    test_limits();
    test_full_window();
    test_race();
    return done_testing();
}
