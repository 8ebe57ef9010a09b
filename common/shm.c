/* shm.c: creating the control block and the few operations on it that need
 * more than a relaxed counter. */
#include "shm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *state_names[] = {"empty", "starting", "active", "draining", "dead"};
static const char *reject_names[HS_REJECT_MAX] = {
    "bad_request", "forbidden", "not_found",      "method",        "version",      "header_size",
    "full",        "timeout",   "ip_connections", "ip_handshakes", "unauthorized", "channel_denied",
};
static const int close_codes[CLOSE_IDX_MAX] = {1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 1013, 0};
const uint32_t shm_hist_bounds_us[SHM_HIST_BUCKETS] = {
    10,    20,    50,     100,    200,    500,     1000,    2000,    5000,     10000,
    20000, 50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000,
};

const char *shm_worker_state_name(int state)
{
    if (state < 0 || state > WORKER_DEAD)
        return "unknown";
    return state_names[state];
}

const char *shm_broker_state_name(int state)
{
    static const char *const names[] = {"local", "connecting", "connected", "down"};
    if (state < 0 || state > BROKER_STATE_DOWN)
        return "unknown";
    return names[state];
}

const char *shm_reject_name(int reason)
{
    if (reason < 0 || reason >= HS_REJECT_MAX)
        return "unknown";
    return reject_names[reason];
}

int shm_close_idx(int code)
{
    for (int i = 0; i < CLOSE_IDX_OTHER; i++)
        if (close_codes[i] == code)
            return i;
    return CLOSE_IDX_OTHER;
}

int shm_close_code(int idx)
{
    if (idx < 0 || idx >= CLOSE_IDX_MAX)
        return 0;
    return close_codes[idx];
}

struct shm *shm_create(size_t ring_size)
{
    size_t head = (sizeof(struct shm) + 4095) & ~(size_t)4095;
    size_t total = head + ring_bytes(ring_size);
    /* MAP_NORESERVE: ring pages cost memory only once messages touch them. */
    struct shm *s =
        mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED) {
        log_crit("mmap(%zu bytes, MAP_SHARED|MAP_ANONYMOUS) failed: %s (ring_size %zu)", total,
                 strerror(errno), ring_size);
        abort();
    }
    s->ring_offset = head;
    iptable_init(&s->iptable);
    if (ring_init((char *)s + head, ring_size) == -1) {
        log_crit("pthread_mutex_init(robust, process-shared) for the publish ring failed: %s",
                 strerror(errno));
        abort();
    }
    /* mmap gives zeroed pages: every counter, slot and atomic starts at 0. */
    s->magic = SHM_MAGIC;
    s->layout_version = SHM_LAYOUT_VERSION;
    s->max_workers = SHM_MAX_WORKERS;
    s->master_pid = (int32_t)getpid();
    s->start_time = (int64_t)time(NULL);
    return s;
}

void shm_publish_config(struct shm *s, const struct config *cfg)
{
    /* Sequence lock with one writer (the master): odd while writing. */
    uint32_t seq = atomic_load_explicit(&s->config_seq, memory_order_relaxed);
    atomic_store_explicit(&s->config_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(&s->config, cfg, sizeof(*cfg));
    atomic_fetch_add_explicit(&s->config_generation, 1, memory_order_relaxed);
    atomic_store_explicit(&s->config_seq, seq + 2, memory_order_release);
}

uint64_t shm_read_config(struct shm *s, struct config *out)
{
    for (;;) {
        uint32_t before = atomic_load_explicit(&s->config_seq, memory_order_acquire);
        if (!(before & 1)) {
            uint64_t gen = atomic_load_explicit(&s->config_generation, memory_order_acquire);
            memcpy(out, &s->config, sizeof(*out));
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->config_seq, memory_order_relaxed) == before)
                return gen;
        }
        usleep(100); /* the master is mid-write; it takes microseconds */
    }
}

int shm_admit(struct shm *s, int64_t max)
{
    int64_t now = atomic_fetch_add_explicit(&s->total_connections, 1, memory_order_relaxed);
    if (now < max)
        return 1;
    atomic_fetch_sub_explicit(&s->total_connections, 1, memory_order_relaxed);
    return 0;
}

void shm_release(struct shm *s, int64_t n)
{
    atomic_fetch_sub_explicit(&s->total_connections, n, memory_order_relaxed);
}

static void add(shm_counter *to, shm_counter *from)
{
    shm_add(to, shm_get(from));
}

static void hist_add(struct shm_hist *to, struct shm_hist *from)
{
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++)
        add(&to->bucket[i], &from->bucket[i]);
    add(&to->sum_us, &from->sum_us);
}

void shm_slot_fold(struct worker_slot *g, struct worker_slot *s)
{
    add(&g->accepted, &s->accepted);
    add(&g->accept_errors, &s->accept_errors);
    add(&g->handshakes, &s->handshakes);
    for (int r = 0; r < HS_REJECT_MAX; r++)
        add(&g->rejected[r], &s->rejected[r]);
    add(&g->messages_in, &s->messages_in);
    add(&g->messages_out, &s->messages_out);
    add(&g->bytes_in, &s->bytes_in);
    add(&g->bytes_out, &s->bytes_out);
    add(&g->backpressure_closes, &s->backpressure_closes);
    add(&g->pings_sent, &s->pings_sent);
    add(&g->idle_closes, &s->idle_closes);
    for (int c = 0; c < CLOSE_IDX_MAX; c++)
        add(&g->closes[c], &s->closes[c]);
    add(&g->publishes, &s->publishes); /* channels: gauges stay 0 */
    add(&g->publish_rejected, &s->publish_rejected);
    add(&g->deliveries, &s->deliveries);
    add(&g->slow_drops, &s->slow_drops);
    add(&g->slow_closes, &s->slow_closes);
    add(&g->ring_missed, &s->ring_missed);
    add(&g->fanout_passes, &s->fanout_passes);
    add(&g->fanout_pass_us, &s->fanout_pass_us);
    add(&g->limit_frame_size, &s->limit_frame_size);
    add(&g->limit_message_size, &s->limit_message_size);
    add(&g->limit_message_rate, &s->limit_message_rate);
    add(&g->limit_byte_rate, &s->limit_byte_rate);
    add(&g->broker_reconnects, &s->broker_reconnects);
    add(&g->broker_lost, &s->broker_lost);
    add(&g->redis_publishes, &s->redis_publishes);
    add(&g->redis_received, &s->redis_received);
    add(&g->tls_handshakes, &s->tls_handshakes);
    add(&g->tls_handshake_errors, &s->tls_handshake_errors);
    add(&g->proxy_refused, &s->proxy_refused);
    add(&g->cpu_us, &s->cpu_us);
    add(&g->http_requests, &s->http_requests);
    add(&g->http_sends, &s->http_sends);
    add(&g->sends, &s->sends);
    add(&g->pmd_negotiated, &s->pmd_negotiated); /* pmd_windows: a gauge, stays 0 */
    add(&g->pmd_out_compressed, &s->pmd_out_compressed);
    add(&g->pmd_out_plain, &s->pmd_out_plain);
    add(&g->pmd_out_saved, &s->pmd_out_saved);
    add(&g->pmd_deflates, &s->pmd_deflates);
    add(&g->pmd_in_compressed, &s->pmd_in_compressed);
    add(&g->pmd_in_saved, &s->pmd_in_saved);
    hist_add(&g->hist_pass, &s->hist_pass);
    hist_add(&g->hist_delay, &s->hist_delay);
    hist_add(&g->hist_handshake, &s->hist_handshake);
}
