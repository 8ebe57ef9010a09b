/* test_ring.c: common/ring.c, the shared publish ring.
 *
 * Every payload is generated from its record's identity (writer, number),
 * so a reader can prove that each record it is handed is whole and in
 * order; "delivered + missed == published" proves nothing vanished
 * uncounted. The ring lives in MAP_SHARED memory and is also written by
 * forked processes, as the workers do. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/ring.h"
#include "common/ws_frame.h"
#include "tap.h"

static struct ring *ring_new(size_t size)
{
    size_t n = ring_bytes(size);
    void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || ring_init(m, size) != 0) {
        perror("ring_new");
        abort();
    }
    return m;
}

static void ring_free(struct ring *r, size_t size)
{
    munmap(r, ring_bytes(size));
}

/* Payload of record k of writer w: a small header then a pattern. */
static size_t make_payload(uint8_t *p, unsigned w, uint32_t k, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(w * 31 + k * 7 + i * 13);
    if (len >= 5) {
        p[0] = (uint8_t)w;
        memcpy(p + 1, &k, 4);
    }
    return len;
}

static int payload_ok(const uint8_t *p, size_t len, unsigned *w, uint32_t *k)
{
    if (len < 5)
        return 0;
    *w = p[0];
    memcpy(k, p + 1, 4);
    for (size_t i = 5; i < len; i++)
        if (p[i] != (uint8_t)(*w * 31 + *k * 7 + i * 13))
            return 0;
    return 1;
}

/* Reads one record fully; returns 1 and fills out/len, 0 when none, -1 when
 * it was lapped during the copy (already committed as lost). */
static int read_one(struct ring *r, struct ring_reader *rd, struct ring_msg *m, uint8_t *out)
{
    if (!ring_peek(r, rd, m))
        return 0;
    int lost = ring_copy_payload(r, m, out) != 0;
    ring_commit(rd, m, lost);
    return lost ? -1 : 1;
}

static void test_basics(void)
{
    is_int((long long)ring_bytes(1), (long long)(sizeof(struct ring) + 65536),
           "ring_bytes(1): 64 KiB minimum");
    is_int((long long)ring_bytes(65537), (long long)(sizeof(struct ring) + 131072),
           "ring_bytes(65537) rounds up to 128 KiB");

    struct ring *r = ring_new(1);
    is_u64(r->size, 65536, "ring size 64 KiB");
    is_int((long long)ring_max_payload(r), 16384, "max payload is a quarter");
    ok(((uintptr_t)r->data & 63) == 0, "data is cache-line aligned");

    struct ring_reader rd;
    struct ring_msg m;
    uint8_t out[20000];
    ring_reader_init(r, &rd);
    ok(!ring_pending(r, &rd) && ring_lag(r, &rd) == 0 && !ring_peek(r, &rd, &m),
       "empty ring: nothing pending");

    int64_t s = ring_publish(r, "chat", 4, WS_OP_TEXT, (const uint8_t *)"hello", 5);
    is_int(s, 0, "first record is number 0");
    ok(ring_pending(r, &rd) && ring_lag(r, &rd) == 1, "one pending, lag 1");
    int got = ring_peek(r, &rd, &m);
    ok(got == 1 && m.seq == 0 && m.opcode == WS_OP_TEXT && m.chan_len == 4 &&
           memcmp(m.chan, "chat", 4) == 0 && m.len == 5,
       "peek: seq %llu op %u chan '%.*s' len %u", (unsigned long long)m.seq, m.opcode, m.chan_len, m.chan,
       m.len);
    memset(out, 0, sizeof(out));
    is_int(ring_copy_payload(r, &m, out), 0, "copy payload");
    is_mem(out, 5, "hello", 5, "payload bytes");
    ring_commit(&rd, &m, 0);
    ok(!ring_pending(r, &rd) && ring_lag(r, &rd) == 0 && rd.missed == 0, "after commit: caught up");

    /* A reader that joins later sees only what comes after. */
    ring_publish(r, "a", 1, WS_OP_BINARY, (const uint8_t *)"x", 1);
    struct ring_reader late;
    ring_reader_init(r, &late);
    ok(!ring_pending(r, &late) && ring_lag(r, &late) == 0, "late reader starts at the head");
    ring_publish(r, "b", 1, WS_OP_BINARY, (const uint8_t *)"", 0);
    got = ring_peek(r, &late, &m);
    ok(got == 1 && m.seq == 2 && m.chan[0] == 'b' && m.len == 0 && m.opcode == WS_OP_BINARY,
       "late reader gets record 2 (empty payload)");
    ring_commit(&late, &m, 0);

    /* Limits. */
    uint8_t big[16385];
    memset(big, 'B', sizeof(big));
    errno = 0;
    ok(ring_publish(r, "c", 1, WS_OP_BINARY, big, 16385) == -1 && errno == EMSGSIZE,
       "payload over max: -1 EMSGSIZE");
    char chan[RING_CHANNEL_MAX + 1];
    memset(chan, 'c', sizeof(chan));
    errno = 0;
    ok(ring_publish(r, chan, RING_CHANNEL_MAX + 1, WS_OP_TEXT, big, 1) == -1 && errno == EMSGSIZE,
       "channel of 129 bytes: -1 EMSGSIZE");
    ok(!ring_pending(r, &late), "refused publishes leave nothing behind");
    int64_t s1 = ring_publish(r, chan, RING_CHANNEL_MAX, WS_OP_BINARY, big, 16384);
    ok(s1 == 3, "max payload with a 128-byte channel accepted (seq %lld)", (long long)s1);
    got = read_one(r, &late, &m, out);
    ok(got == 1 && m.chan_len == RING_CHANNEL_MAX && memcmp(m.chan, chan, RING_CHANNEL_MAX) == 0 &&
           m.len == 16384 && memcmp(out, big, 16384) == 0,
       "max-size record reads back whole");
    ring_free(r, 1);
}

/* A reader keeping up across many wraps gets everything, whole, in order. */
static void test_wrap(void)
{
    struct ring *r = ring_new(1);
    struct ring_reader rd;
    struct ring_msg m;
    static uint8_t p[16384], out[16384];
    ring_reader_init(r, &rd);
    int bad = 0, delivered = 0;
    uint64_t x = 88172645463325252ULL;
    for (uint32_t k = 0; k < 3000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = 5 + (size_t)(x % 4000);
        char chan[16];
        int cl = snprintf(chan, sizeof(chan), "ch%u", k % 97);
        make_payload(p, 1, k, len);
        if (ring_publish(r, chan, (size_t)cl, WS_OP_TEXT, p, len) != k)
            bad++;
        if (k % 3 != 2) /* read in bursts: sometimes one, sometimes several behind */
            continue;
        int got;
        while ((got = read_one(r, &rd, &m, out)) != 0) {
            unsigned w;
            uint32_t kk;
            snprintf(chan, sizeof(chan), "ch%u", (unsigned)(m.seq % 97));
            if (got != 1 || !payload_ok(out, m.len, &w, &kk) || w != 1 || kk != m.seq ||
                m.seq != (uint64_t)delivered || m.chan_len != strlen(chan) ||
                memcmp(m.chan, chan, m.chan_len))
                bad++;
            delivered++;
        }
    }
    ok(bad == 0 && delivered == 3000 && rd.missed == 0,
       "3000 records of 5..4004 bytes through a 64 KiB ring: %d delivered, %llu missed, %d bad", delivered,
       (unsigned long long)rd.missed, bad);
    ring_free(r, 1);
}

/* A reader left behind by more than a ring loses records but counts every
 * one, and never gets a torn record. */
static void test_lapping(void)
{
    struct ring *r = ring_new(1);
    struct ring_reader rd;
    struct ring_msg m;
    static uint8_t p[16384], out[16384];
    ring_reader_init(r, &rd);
    const uint32_t N = 100;
    for (uint32_t k = 0; k < N; k++)
        ring_publish(r, "x", 1, WS_OP_BINARY, p, make_payload(p, 2, k, 4000));
    ok(ring_lag(r, &rd) == N, "lag is %u after %u unread records (got %llu)", N, N,
       (unsigned long long)ring_lag(r, &rd));
    int delivered = 0, bad = 0, got;
    uint64_t last = 0;
    while ((got = read_one(r, &rd, &m, out)) != 0) {
        unsigned w;
        uint32_t k;
        if (got == 1) {
            if (!payload_ok(out, m.len, &w, &k) || k != m.seq || (delivered && m.seq <= last))
                bad++;
            last = m.seq;
            delivered++;
        }
    }
    /* The header: a reader a whole ring behind "skips to the newest record
     * and counts the gap". Drained, it must account for every record now,
     * not only once some later record arrives. */
    ok(bad == 0 && (uint64_t)delivered + rd.missed == N && ring_lag(r, &rd) == 0,
       "lapped reader drained: %d delivered + %llu missed == %u published (lag %llu)", delivered,
       (unsigned long long)rd.missed, N, (unsigned long long)ring_lag(r, &rd));
    /* And after one more record everything still adds up. */
    ring_publish(r, "x", 1, WS_OP_BINARY, p, make_payload(p, 2, N, 100));
    while ((got = read_one(r, &rd, &m, out)) != 0)
        delivered += got == 1;
    ok(bad == 0 && (uint64_t)delivered + rd.missed == N + 1 && rd.missed > 0,
       "lapped reader: %d delivered + %llu missed == %u published, %d torn", delivered,
       (unsigned long long)rd.missed, N + 1, bad);
    ok(!ring_pending(r, &rd) && ring_lag(r, &rd) == 0, "lapped reader is caught up afterwards");

    /* Lapped between peek and copy: the copy reports it. */
    ring_publish(r, "y", 1, WS_OP_BINARY, p, make_payload(p, 3, 0, 1000));
    ok(ring_peek(r, &rd, &m) == 1, "peek a record");
    for (uint32_t k = 0; k < 20; k++)
        ring_publish(r, "y", 1, WS_OP_BINARY, p, make_payload(p, 3, k + 1, 8000));
    uint64_t before = rd.missed;
    int rc = ring_copy_payload(r, &m, out);
    is_int(rc, -1, "copy of a record lapped after peek returns -1");
    ring_commit(&rd, &m, rc != 0);
    is_u64(rd.missed, before + 1, "and commit counts it missed");
    ring_free(r, 1);
}

/* Two forked writers and a concurrent reader: per-writer order holds,
 * nothing is torn, delivered + missed == published. */
static void test_processes(void)
{
    enum { PER_WRITER = 20000 };
    struct ring *r = ring_new(256 * 1024);
    struct ring_reader rd;
    struct ring_msg m;
    static uint8_t out[65536];
    ring_reader_init(r, &rd);
    pid_t pids[2];
    for (unsigned w = 0; w < 2; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            uint8_t p[300];
            for (uint32_t k = 0; k < PER_WRITER; k++) {
                size_t len = 5 + (k * 37 + w * 11) % 250;
                make_payload(p, w, k, len);
                if (ring_publish(r, w ? "odd" : "even", w ? 3 : 4, WS_OP_TEXT, p, len) < 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    uint32_t next[2] = {0, 0};
    long delivered = 0, bad = 0, lost_copies = 0;
    int running = 2;
    while (running > 0 || ring_pending(r, &rd)) {
        int got = read_one(r, &rd, &m, out);
        if (got == 0) {
            for (int w = 0; w < 2; w++)
                if (pids[w] > 0 && waitpid(pids[w], NULL, WNOHANG) == pids[w])
                    pids[w] = 0, running--;
            continue;
        }
        if (got < 0) {
            lost_copies++;
            continue;
        }
        unsigned w;
        uint32_t k;
        if (!payload_ok(out, m.len, &w, &k) || w > 1 || k < next[w] || m.chan_len != (w ? 3 : 4) ||
            memcmp(m.chan, w ? "odd" : "even", m.chan_len) != 0) {
            if (bad++ < 3)
                diag("bad record seq %llu len %u", (unsigned long long)m.seq, m.len);
        } else {
            next[w] = k + 1;
        }
        delivered++;
    }
    ok(bad == 0 && delivered + (long)rd.missed == 2 * PER_WRITER,
       "2 writer processes x %d: %ld delivered + %llu missed (%ld lapped copies), %ld bad", PER_WRITER,
       delivered, (unsigned long long)rd.missed, lost_copies, bad);
    ring_free(r, 256 * 1024);
}

/* A writer that dies holding the lock must not wedge the others. */
static void test_dead_writer(void)
{
    struct ring *r = ring_new(1);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(&r->lock);
        _exit(0); /* dies holding it */
    }
    waitpid(pid, NULL, 0);
    alarm(10); /* a wedged lock fails the test by SIGALRM, not by hanging */
    struct ring_reader rd;
    ring_reader_init(r, &rd);
    int64_t s = ring_publish(r, "z", 1, WS_OP_TEXT, (const uint8_t *)"alive", 5);
    alarm(0);
    struct ring_msg m;
    uint8_t out[8];
    ok(s == 0 && read_one(r, &rd, &m, out) == 1 && memcmp(out, "alive", 5) == 0,
       "publish works after a writer died holding the lock");
    ring_free(r, 1);
}

int main(void)
{
    test_basics();
    test_wrap();
    test_lapping();
    test_processes();
    test_dead_writer();
    return done_testing();
}
