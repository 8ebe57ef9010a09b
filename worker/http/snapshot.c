/* snapshot.c: see snapshot.h. */
#include "snapshot.h"

#include <inttypes.h>
#include <time.h>

#include "../internal.h"
#include "collect.h"

static void hist(struct hbuf *b, const char *name, struct shm_hist *h)
{
    hbuf_printf(b, ",\"%s\":{\"sum_us\":%" PRIu64 ",\"buckets\":[", name, shm_get(&h->sum_us));
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++)
        hbuf_printf(b, "%s%" PRIu64, i ? "," : "", shm_get(&h->bucket[i]));
    hbuf_printf(b, "]}");
}

static void workers(struct hbuf *b, struct shm *s)
{
    hbuf_printf(b, ",\"workers\":[");
    int first = 1;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (!collect_live(s, i))
            continue;
        struct worker_slot *ws = &s->slots[i];
        hbuf_printf(b,
                    "%s{\"id\":%d,\"pid\":%d,\"state\":\"%s\",\"connections\":%" PRIu64 ",\"cpu_us\":%" PRIu64
                    ",\"broker\":\"%s\"}",
                    first ? "" : ",", i, (int)atomic_load(&ws->pid),
                    shm_worker_state_name((int)atomic_load(&ws->state)), shm_get(&ws->connections),
                    shm_get(&ws->cpu_us), shm_broker_state_name((int)atomic_load(&ws->broker_state)));
        first = 0;
    }
    hbuf_printf(b, "]");
}

static void closes_and_refusals(struct hbuf *b, struct worker_slot *t)
{
    hbuf_printf(b, ",\"closes\":{");
    for (int i = 0; i < CLOSE_IDX_MAX; i++) {
        int code = shm_close_code(i);
        hbuf_printf(b, "%s\"%s%.0d\":%" PRIu64, i ? "," : "", code ? "" : "other", code,
                    shm_get(&t->closes[i]));
    }
    hbuf_printf(b, "},\"refused\":{");
    for (int r = 0; r < HS_REJECT_MAX; r++)
        hbuf_printf(b, "%s\"%s\":%" PRIu64, r ? "," : "", shm_reject_name(r), shm_get(&t->rejected[r]));
    hbuf_printf(b,
                "},\"limits\":{\"frame_size\":%" PRIu64 ",\"message_size\":%" PRIu64
                ",\"message_rate\":%" PRIu64 ",\"byte_rate\":%" PRIu64 ",\"backpressure_closes\":%" PRIu64
                ",\"slow_drops\":%" PRIu64 ",\"slow_closes\":%" PRIu64 "}",
                shm_get(&t->limit_frame_size), shm_get(&t->limit_message_size),
                shm_get(&t->limit_message_rate), shm_get(&t->limit_byte_rate),
                shm_get(&t->backpressure_closes), shm_get(&t->slow_drops), shm_get(&t->slow_closes));
}

void snapshot_json(struct worker *w, struct hbuf *b)
{
    struct shm *s = w->shm;
    struct collect c;
    collect_totals(s, &c);
    struct worker_slot *t = &c.sum;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    hbuf_printf(b,
                "{\"time_ms\":%" PRId64 ",\"uptime\":%" PRId64 ",\"config_generation\":%" PRIu64
                ",\"reloads\":%" PRIu64 ",\"worker_deaths\":%" PRIu64 ",\"connections\":%" PRIu64
                ",\"max_connections\":%" PRId64 ",\"accepted\":%" PRIu64 ",\"handshakes\":%" PRIu64
                ",\"messages_in\":%" PRIu64 ",\"messages_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                ",\"bytes_out\":%" PRIu64 ",\"channels\":%" PRIu64 ",\"subscriptions\":%" PRIu64
                ",\"publishes\":%" PRIu64 ",\"deliveries\":%" PRIu64 ",\"ring_missed\":%" PRIu64,
                (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, (int64_t)now.tv_sec - s->start_time,
                (uint64_t)atomic_load(&s->config_generation), shm_get(&s->reloads),
                shm_get(&s->worker_deaths), c.connections, w->cfg.max_connections, shm_get(&t->accepted),
                shm_get(&t->handshakes), shm_get(&t->messages_in), shm_get(&t->messages_out),
                shm_get(&t->bytes_in), shm_get(&t->bytes_out), c.channels, c.subscriptions,
                shm_get(&t->publishes), shm_get(&t->deliveries), shm_get(&t->ring_missed));
    hbuf_printf(
        b,
        ",\"broker\":{\"kind\":\"%s\",\"connected\":%d,\"down\":%d,\"connecting\":%d,\"reconnects\":%" PRIu64
        ",\"lost\":%" PRIu64 "}",
        w->cfg.broker == BROKER_REDIS ? "redis" : "local", c.brokers[BROKER_STATE_CONNECTED],
        c.brokers[BROKER_STATE_DOWN], c.brokers[BROKER_STATE_CONNECTING], shm_get(&t->broker_reconnects),
        shm_get(&t->broker_lost));
    workers(b, s);
    closes_and_refusals(b, t);
    hbuf_printf(b, ",\"bounds_us\":[");
    for (int i = 0; i < SHM_HIST_BUCKETS; i++)
        hbuf_printf(b, "%s%u", i ? "," : "", shm_hist_bounds_us[i]);
    hbuf_printf(b, "]");
    hist(b, "delay", &t->hist_delay);
    hist(b, "handshake", &t->hist_handshake);
    hist(b, "pass", &t->hist_pass);
    hbuf_printf(b, "}");
}
