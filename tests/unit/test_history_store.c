/* test_history_store.c: common/history.c, the shared-memory history store
 * (test_history.c is worker/http/history.c, the dashboard's five minutes).
 *
 * Offsets, what a resume gets (recovered, epoch, too old, ahead), bounds
 * by count, by bytes and by age, channel slot reuse, the offsets carried
 * in the ring record, and two processes publishing at once (dense,
 * distinct offsets) or one dying with the lock held. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/history.h"
#include "common/ws_frame.h"
#include "tap.h"

static void *shared(size_t n)
{
    void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    return m;
}

static struct history *store(uint32_t nchan, uint32_t cap, uint64_t data)
{
    static uint64_t seed = 42; /* the master seeds from getrandom */
    struct history *h = shared(history_bytes(nchan, cap, data));
    if (history_init(h, nchan, cap, data, seed++) != 0)
        abort();
    return h;
}

static struct ring *ring_new(void)
{
    struct ring *r = shared(ring_bytes(1 << 20));
    if (ring_init(r, 1 << 20) != 0)
        abort();
    return r;
}

/* Collects what history_each_locked hands over. */
struct got {
    int n;
    uint64_t off[64];
    char text[64][32];
};

static int collect(void *arg, uint64_t offset, unsigned opcode, const struct iovec *piece, int npieces)
{
    struct got *g = arg;
    (void)opcode;
    size_t at = 0;
    for (int i = 0; i < npieces; i++) {
        memcpy(g->text[g->n] + at, piece[i].iov_base, piece[i].iov_len);
        at += piece[i].iov_len;
    }
    g->text[g->n][at] = '\0';
    g->off[g->n++] = offset;
    return 0;
}

static uint64_t pub(struct history *h, struct ring *r, const char *list, const char *text, int64_t now)
{
    uint64_t offs[RING_OFFS_MAX];
    int n =
        history_publish(h, r, list, strlen(list), WS_OP_TEXT, (const uint8_t *)text, strlen(text), now, offs);
    return n > 0 ? offs[0] : 0;
}

static struct history_chan *chan(struct history *h, const char *name, int64_t now)
{
    history_lock(h);
    struct history_chan *ch = history_chan_get_locked(h, name, strlen(name), now);
    history_unlock(h);
    return ch;
}

static void test_offsets_and_resume(void)
{
    struct history *h = store(64, 4, 1 << 16);
    struct ring *r = ring_new();
    struct ring_reader rd;
    ring_reader_init(r, &rd);
    for (int i = 1; i <= 10; i++) {
        char t[16];
        snprintf(t, sizeof t, "m%d", i);
        is_int((long long)pub(h, r, "a", t, 1000), i, "message %d gets offset %d", i, i);
    }
    struct history_chan *a = chan(h, "a", 1000);
    is_int((long long)a->top, 10, "top is the last offset");
    ok(a->epoch != 0, "the channel has an epoch");
    history_lock(h);
    is_int(history_first_locked(h, a, 1000, 0), 7, "history_size 4 keeps offsets 7-10");
    is_int(history_check_locked(h, a, a->epoch, 10, 1000, 0), HISTORY_RECOVERED, "nothing missed: recovered");
    is_int(history_check_locked(h, a, a->epoch, 6, 1000, 0), HISTORY_RECOVERED, "since 6: 7-10 held");
    is_int(history_check_locked(h, a, a->epoch, 5, 1000, 0), HISTORY_TOO_OLD, "since 5: 6 is gone");
    is_int(history_check_locked(h, a, a->epoch, 11, 1000, 0), HISTORY_AHEAD, "since 11: ahead");
    is_int(history_check_locked(h, a, a->epoch ^ 1, 10, 1000, 0), HISTORY_EPOCH, "another epoch");
    struct got g = {0};
    is_int(history_each_locked(h, a, 7, 10, 100, 1000, 0, collect, &g), 3, "since 7: three messages");
    history_unlock(h);
    ok(g.n == 3 && g.off[0] == 8 && g.off[2] == 10 && !strcmp(g.text[0], "m8") && !strcmp(g.text[2], "m10"),
       "in order, with their payloads (%s .. %s)", g.text[0], g.text[2]);
    struct ring_msg *m = malloc(sizeof(*m));
    int seen = 0, right = 1;
    while (ring_peek(r, &rd, m)) {
        seen++;
        right &= m->noffs == 1 && m->offs[0] == (uint64_t)seen;
        ring_commit(&rd, m, 0);
    }
    ok(seen == 10 && right, "each ring record carries its offset (%d records)", seen);
    free(m);
}

static void test_lists(void)
{
    struct history *h = store(64, 8, 1 << 16);
    struct ring *r = ring_new();
    struct ring_reader rd;
    ring_reader_init(r, &rd);
    pub(h, r, "a", "x", 1);
    uint64_t offs[RING_OFFS_MAX];
    int n = history_publish(h, r, "a,b,a", 5, WS_OP_TEXT, (const uint8_t *)"y", 1, 2, offs);
    ok(n == 3 && offs[0] == 2 && offs[1] == 1 && offs[2] == 2,
       "a list: each channel its own offset (%d: %llu %llu %llu)", n, (unsigned long long)offs[0],
       (unsigned long long)offs[1], (unsigned long long)offs[2]);
    struct ring_msg *m = malloc(sizeof(*m));
    ring_peek(r, &rd, m);
    ring_commit(&rd, m, 0);
    ok(ring_peek(r, &rd, m) && m->noffs == 3 && m->offs[1] == 1 && m->len == 1,
       "one record with three offsets");
    uint8_t c;
    ok(ring_copy_payload(r, m, &c) == 0 && c == 'y', "payload after the offsets");
    free(m);
    is_int((long long)chan(h, "a", 3)->top, 2, "a listed twice took one offset");
}

static void test_bytes_and_age(void)
{
    struct history *h = store(64, 100, 64 * 1024);
    struct ring *r = ring_new();
    static uint8_t big[15000];
    uint64_t offs[RING_OFFS_MAX];
    for (int i = 0; i < 10; i++) {
        memset(big, 'a' + i, sizeof big);
        history_publish(h, r, "big", 3, WS_OP_BINARY, big, sizeof big, 5, offs);
    }
    struct history_chan *ch = chan(h, "big", 5);
    history_lock(h);
    uint64_t first = history_first_locked(h, ch, 5, 0);
    history_unlock(h);
    ok(first == 7, "a 64 KiB log holds the last four 15,000-byte payloads (first %llu)",
       (unsigned long long)first);
    struct history *t = store(64, 100, 64 * 1024);
    for (int i = 0; i < 5; i++)
        pub(t, r, "t", "old", 1000 + i);
    pub(t, r, "t", "new", 5000);
    ch = chan(t, "t", 5000);
    history_lock(t);
    is_int(history_check_locked(t, ch, ch->epoch, 5, 5500, 1000), HISTORY_RECOVERED,
           "ttl: the young one is held");
    is_int(history_check_locked(t, ch, ch->epoch, 4, 5500, 1000), HISTORY_TOO_OLD,
           "ttl: an expired one is not");
    is_int(history_check_locked(t, ch, ch->epoch, 4, 5500, 0), HISTORY_RECOVERED, "ttl 0: nothing expires");
    history_unlock(t);
    struct history *s = store(64, 100, 64 * 1024);
    uint8_t *over = calloc(1, 20000);
    history_publish(s, r, "s", 1, WS_OP_BINARY, over, 16385, 1, offs);
    pub(s, r, "s", "after", 2);
    ch = chan(s, "s", 3);
    history_lock(s);
    is_int(history_check_locked(s, ch, ch->epoch, 0, 3, 0), HISTORY_TOO_OLD,
           "a payload over a quarter of the log is not kept");
    is_int(history_check_locked(s, ch, ch->epoch, 1, 3, 0), HISTORY_RECOVERED, "the one after it is");
    history_unlock(s);
    free(over);
}

static void test_slots(void)
{
    struct history *h = store(8, 4, 1 << 16);
    struct ring *r = ring_new();
    pub(h, r, "keep", "k", 100000);
    uint64_t e = chan(h, "keep", 100000)->epoch;
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "c%d", i);
        pub(h, r, name, "x", 1000 + i);
    }
    ok(h->evictions > 0, "more channels than slots reuse slots (%llu)", (unsigned long long)h->evictions);
    struct history_chan *k = chan(h, "keep", 200000);
    ok(k->epoch == e && k->top == 1, "the channel published to last is kept");
    struct history_chan *c0 = chan(h, "c0", 200000);
    ok(c0->top == 0 && c0->epoch != 0, "an evicted channel comes back with offset 0 in a new epoch");
    struct history *h2 = store(8, 4, 1 << 16);
    ok(chan(h2, "keep", 1)->epoch != e, "another store, another epoch");
    ok(history_compatible(h, history_bytes(8, 4, 1 << 16), 8, 4, 1 << 16), "same parameters: compatible");
    ok(!history_compatible(h, history_bytes(8, 4, 1 << 16), 8, 5, 1 << 16), "another history_size: not");
}

static void test_processes(void)
{
    struct history *h = store(64, 64, 1 << 20);
    struct ring *r = ring_new();
    enum { PER = 2000 };
    pid_t kids[2];
    for (int k = 0; k < 2; k++)
        if ((kids[k] = fork()) == 0) {
            for (int i = 0; i < PER; i++)
                pub(h, r, "race", "p", i);
            _exit(0);
        }
    for (int k = 0; k < 2; k++)
        waitpid(kids[k], NULL, 0);
    struct ring_reader rd;
    struct ring_msg *m = malloc(sizeof(*m));
    rd.pos = 0, rd.seq = 0, rd.missed = 0;
    uint64_t want = 1;
    int dense = 1;
    while (ring_peek(r, &rd, m)) {
        dense &= m->offs[0] == want++;
        ring_commit(&rd, m, 0);
    }
    ok(dense && want == 2 * PER + 1, "two processes: offsets 1..%d in ring order", 2 * PER);
    pid_t p = fork();
    if (p == 0) {
        history_lock(h);
        _exit(0); /* dies holding it */
    }
    waitpid(p, NULL, 0);
    ok(pub(h, r, "race", "after", 1) == 2 * PER + 1, "a publisher that died holding the lock wedges nobody");
    free(m);
}

int main(void)
{
    test_offsets_and_resume();
    test_lists();
    test_bytes_and_age();
    test_slots();
    test_processes();
    return done_testing();
}
