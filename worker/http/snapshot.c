/* snapshot.c: see snapshot.h. */
#include "snapshot.h"

#include <inttypes.h>

#include "../worker-t.h"
#include "collect.h"
#include "history.h"

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

void snapshot_json(struct worker *w, const struct collect *cp, const struct hist_sample *sample,
                   struct hbuf *b)
{
    struct shm *s = w->shm;
    struct collect *c = (struct collect *)cp; /* shm_get takes no const */
    struct worker_slot *t = &c->sum;
    hbuf_printf(b, "{");
    history_sample_fields(sample, b);
    hbuf_printf(b,
                ",\"uptime\":%" PRId64 ",\"config_generation\":%" PRIu64 ",\"reloads\":%" PRIu64
                ",\"worker_deaths\":%" PRIu64 ",\"max_connections\":%" PRId64 ",\"accepted\":%" PRIu64
                ",\"channels\":%" PRIu64 ",\"subscriptions\":%" PRIu64 ",\"ring_missed\":%" PRIu64,
                sample->time_ms / 1000 - s->start_time, (uint64_t)atomic_load(&s->config_generation),
                shm_get(&s->reloads), shm_get(&s->worker_deaths), w->cfg.max_connections,
                shm_get(&t->accepted), c->channels, c->subscriptions, shm_get(&t->ring_missed));
    hbuf_printf(
        b,
        ",\"broker\":{\"kind\":\"%s\",\"connected\":%d,\"down\":%d,\"connecting\":%d,\"reconnects\":%" PRIu64
        ",\"lost\":%" PRIu64 "}",
        w->cfg.broker == BROKER_REDIS ? "redis" : "local", c->brokers[BROKER_STATE_CONNECTED],
        c->brokers[BROKER_STATE_DOWN], c->brokers[BROKER_STATE_CONNECTING], shm_get(&t->broker_reconnects),
        shm_get(&t->broker_lost));
    workers(b, s);
    closes_and_refusals(b, t);
    hbuf_printf(b, "}");
}
