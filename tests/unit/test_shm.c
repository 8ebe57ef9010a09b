/* test_shm.c: common/shm.c: the close-code index map, admission against
 * max_connections (also raced between two forked processes, because the
 * block exists to be shared), config publication and its generation, and
 * the layout promises the header makes (cache-line slots, magic). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/config.h"
#include "common/shm.h"
#include "tap.h"

static void test_close_idx(void)
{
    static const struct {
        int code, idx;
    } map[] = {{1000, CLOSE_IDX_1000}, {1001, CLOSE_IDX_1001}, {1002, CLOSE_IDX_1002}, {1003, CLOSE_IDX_1003},
               {1006, CLOSE_IDX_1006}, {1007, CLOSE_IDX_1007}, {1008, CLOSE_IDX_1008}, {1009, CLOSE_IDX_1009},
               {1011, CLOSE_IDX_1011}, {1013, CLOSE_IDX_1013}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        is_int(shm_close_idx(map[i].code), map[i].idx, "shm_close_idx(%d)", map[i].code);
        is_int(shm_close_code(map[i].idx), map[i].code, "shm_close_code(idx of %d)", map[i].code);
    }
    int round = 1;
    for (int i = 0; i < CLOSE_IDX_OTHER; i++)
        round &= shm_close_idx(shm_close_code(i)) == i;
    ok(round, "shm_close_idx(shm_close_code(i)) == i for every named index");
    static const int other[] = {0, 999, 1004, 1005, 1010, 1012, 1014, 1015, 3000, 4999, -1};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        is_int(shm_close_idx(other[i]), CLOSE_IDX_OTHER, "shm_close_idx(%d) is OTHER", other[i]);
    is_int(shm_close_code(CLOSE_IDX_OTHER), 0, "shm_close_code(OTHER) is 0");
}

static void test_names(void)
{
    int good = 1;
    for (int s = WORKER_EMPTY; s <= WORKER_DEAD; s++)
        for (int t = s + 1; t <= WORKER_DEAD; t++)
            good &= shm_worker_state_name(s) && shm_worker_state_name(t) &&
                    strcmp(shm_worker_state_name(s), shm_worker_state_name(t)) != 0;
    ok(good, "worker state names exist and differ");
    good = 1;
    for (int s = 0; s < HS_REJECT_MAX; s++)
        for (int t = s + 1; t < HS_REJECT_MAX; t++)
            good &= shm_reject_name(s) && shm_reject_name(t) &&
                    strcmp(shm_reject_name(s), shm_reject_name(t)) != 0;
    ok(good, "reject reason names exist and differ");
    ok(shm_worker_state_name(99) != NULL && shm_reject_name(-1) != NULL, "out-of-range names are not NULL");
}

static void test_layout(struct shm *s)
{
    ok(s->magic == SHM_MAGIC && s->layout_version == SHM_LAYOUT_VERSION,
       "shm_create sets magic and layout version");
    is_int(s->master_pid, getpid(), "master_pid is the creator");
    ok(s->max_workers >= 1 && s->max_workers <= SHM_MAX_WORKERS, "max_workers %u in range", s->max_workers);
    is_int((long long)(offsetof(struct shm, slots) % SHM_CACHELINE), 0, "slots start on a cache line");
    is_int((long long)(sizeof(struct worker_slot) % SHM_CACHELINE), 0, "a worker slot is whole cache lines");
    is_int((long long)(offsetof(struct shm, total_connections) % SHM_CACHELINE), 0,
           "total_connections on its own cache line");
    ok((uintptr_t)s % 4096 == 0, "block is page-aligned");
    uint64_t zero = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        zero |= shm_get(&s->slots[i].accepted) | shm_get(&s->slots[i].connections) |
                (uint64_t)atomic_load(&s->slots[i].state);
    ok(zero == 0, "slots start zeroed (state EMPTY, counters 0)");
    shm_add(&s->slots[3].bytes_in, 40);
    shm_add(&s->slots[3].bytes_in, 2);
    shm_sub(&s->slots[3].bytes_in, 1);
    is_u64(shm_get(&s->slots[3].bytes_in), 41, "shm_add/shm_sub on a counter");
    is_u64(shm_get(&s->slots[2].bytes_in) + shm_get(&s->slots[4].bytes_in), 0,
           "neighbouring slots untouched");
}

static void test_admit(struct shm *s)
{
    int admitted = 0;
    for (int i = 0; i < 5; i++)
        admitted += shm_admit(s, 3);
    is_int(admitted, 3, "5 admits against max 3: 3 succeed");
    is_int(atomic_load(&s->total_connections), 3, "total_connections is 3 after refusals");
    shm_release(s, 1);
    is_int(shm_admit(s, 3), 1, "after one release, one more is admitted");
    is_int(shm_admit(s, 3), 0, "and then it is full again");
    is_int(shm_admit(s, 10), 1, "a larger max (reload) admits more");
    shm_release(s, 4);
    is_int(atomic_load(&s->total_connections), 0, "release(4) brings it back to 0");
    is_int(shm_admit(s, 0), 0, "max 0 admits nobody");
    is_int(atomic_load(&s->total_connections), 0, "a refused admit leaves no trace");

    /* Two processes race for 20000 places; together they must get exactly
     * 20000, never more (the slot counter records each child's share). */
    enum { MAX = 20000, TRIES = 30000 };
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            uint64_t got = 0;
            for (int i = 0; i < TRIES; i++)
                got += (uint64_t)shm_admit(s, MAX);
            shm_add(&s->slots[c].accepted, got);
            _exit(0);
        }
    }
    int clean = 1;
    for (int c = 0; c < 2; c++) {
        int st;
        clean &= pids[c] > 0 && waitpid(pids[c], &st, 0) == pids[c] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    uint64_t a = shm_get(&s->slots[0].accepted), b = shm_get(&s->slots[1].accepted);
    ok(clean && a + b == MAX && atomic_load(&s->total_connections) == MAX,
       "two processes racing: %llu + %llu admitted, total %lld (want %d)", (unsigned long long)a,
       (unsigned long long)b, (long long)atomic_load(&s->total_connections), MAX);
    shm_release(s, MAX);
}

static void test_config_publish(struct shm *s)
{
    struct config c, out;
    char err[256];
    config_defaults(&c);
    memset(&out, 0, sizeof(out));
    uint64_t g0 = shm_read_config(s, &out);
    config_set(&c, "max_connections", "12345", err, sizeof(err));
    config_set(&c, "allowed_origins", "https://a.example", err, sizeof(err));
    shm_publish_config(s, &c);
    uint64_t g1 = shm_read_config(s, &out);
    is_u64(g1, g0 + 1, "publish bumps the generation by one");
    ok(memcmp(&out, &c, sizeof(c)) == 0, "shm_read_config returns what was published");
    ok((atomic_load(&s->config_seq) & 1) == 0, "sequence is even after publishing");
    c.max_connections = 99;
    shm_publish_config(s, &c);
    uint64_t g2 = shm_read_config(s, &out);
    ok(g2 == g1 + 1 && out.max_connections == 99,
       "second publish: generation %llu, "
       "max_connections %lld",
       (unsigned long long)g2, (long long)out.max_connections);
    is_u64(atomic_load(&s->config_generation), g2, "config_generation field matches");

    /* A forked reader sees what the parent publishes after the fork. */
    c.max_connections = 4242;
    pid_t pid = fork();
    if (pid == 0) {
        struct config seen;
        for (int i = 0; i < 2000; i++) {
            if (shm_read_config(s, &seen) == g2 + 1)
                _exit(seen.max_connections == 4242 ? 0 : 2);
            usleep(1000);
        }
        _exit(3);
    }
    shm_publish_config(s, &c);
    int st = 0;
    ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "a forked worker reads the config published after the fork (exit %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* The publish ring lives in the same mapping and is shared with forks. */
static void test_ring_in_block(struct shm *s)
{
    struct ring *r = shm_ring(s);
    ok(s->ring_offset >= sizeof(struct shm) && s->ring_offset % 4096 == 0,
       "ring follows the block, page-aligned (offset %llu)", (unsigned long long)s->ring_offset);
    is_u64(r->size, 1 << 20, "ring of the requested 1 MiB");
    struct ring_reader rd;
    ring_reader_init(r, &rd);
    pid_t pid = fork();
    if (pid == 0)
        _exit(ring_publish(shm_ring(s), "c", 1, 1, (const uint8_t *)"from child", 10) == 0 ? 0 : 1);
    int st = 0;
    waitpid(pid, &st, 0);
    struct ring_msg m;
    uint8_t out[16];
    int got = ring_peek(r, &rd, &m);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == 1 && m.len == 10 &&
           ring_copy_payload(r, &m, out) == 0 && memcmp(out, "from child", 10) == 0,
       "a record a child publishes is read by the parent");
}

int main(void)
{
    test_close_idx();
    test_names();
    struct shm *s = shm_create(1 << 20);
    ok(s != NULL, "shm_create");
    test_layout(s);
    test_admit(s);
    test_config_publish(s);
    test_ring_in_block(s);
    return done_testing();
}
