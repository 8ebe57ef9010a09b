/* route_metrics.c: GET /metrics, the Prometheus text exposition format
 * (version 0.0.4), summed over every worker from the shared block, with a
 * worker label where one worker's figure tells something (connections,
 * CPU, state, broker link). Guarded by metrics_token when it is set. */
#include <inttypes.h>
#include <string.h>

#include "../../common/shm.h"
#include "collect.h"
#include "../../common/hbuf.h"
#include "http.h"

#define P "wsmill_"

/* HTTP status each refusal reason answers (0: none is sent). */
static const int reject_status[HS_REJECT_MAX] = {400, 403, 404, 405, 426, 431, 503, 0, 429, 429, 401, 403};

static void head(struct hbuf *b, const char *name, const char *type, const char *help)
{
    hbuf_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

static void counter(struct hbuf *b, const char *name, const char *help, uint64_t v)
{
    head(b, name, "counter", help);
    hbuf_printf(b, P "%s %" PRIu64 "\n", name, v);
}

/* A counter family with one label and two values (in/out, ok/failed...). */
static void counter_pair(struct hbuf *b, const char *name, const char *help, const char *label,
                         const char *k1, uint64_t v1, const char *k2, uint64_t v2)
{
    head(b, name, "counter", help);
    hbuf_printf(b, P "%s{%s=\"%s\"} %" PRIu64 "\n" P "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, k1, v1, name,
                label, k2, v2);
}

static void gauge(struct hbuf *b, const char *name, const char *help, double v)
{
    head(b, name, "gauge", help);
    hbuf_printf(b, P "%s %.17g\n", name, v);
}

static void histogram(struct hbuf *b, const char *name, const char *help, struct shm_hist *h)
{
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= SHM_HIST_BUCKETS; i++) {
        cum += shm_get(&h->bucket[i]);
        if (i < SHM_HIST_BUCKETS)
            hbuf_printf(b, P "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, shm_hist_bounds_us[i] / 1e6, cum);
        else
            hbuf_printf(b, P "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    }
    hbuf_printf(b, P "%s_sum %.6f\n" P "%s_count %" PRIu64 "\n", name, shm_get(&h->sum_us) / 1e6, name, cum);
}

static void connections(struct hbuf *b, struct shm *s, const struct collect *c, const struct config *cfg)
{
    gauge(b, "connections", "Upgraded WebSocket connections open, all workers", (double)c->connections);
    gauge(b, "max_connections", "The max_connections setting", (double)cfg->max_connections);
    head(b, "worker_connections", "gauge", "Upgraded WebSocket connections open, per worker");
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        if (collect_live(s, i))
            hbuf_printf(b, P "worker_connections{worker=\"%d\"} %" PRIu64 "\n", i,
                        shm_get(&s->slots[i].connections));
    head(b, "worker_cpu_seconds_total", "counter", "User and system CPU time of each worker process");
    for (int i = 0; i < SHM_MAX_WORKERS; i++)
        if (collect_live(s, i))
            hbuf_printf(b, P "worker_cpu_seconds_total{worker=\"%d\"} %.6f\n", i,
                        shm_get(&s->slots[i].cpu_us) / 1e6);
    head(b, "workers", "gauge", "Worker slots by state");
    for (int st = WORKER_STARTING; st <= WORKER_DEAD; st++)
        hbuf_printf(b, P "workers{state=\"%s\"} %d\n", shm_worker_state_name(st), c->workers[st]);
}

static void handshakes(struct hbuf *b, struct worker_slot *t)
{
    counter(b, "accepted_total", "TCP connections accepted on listen", shm_get(&t->accepted));
    counter_pair(b, "tls_handshakes_total", "TLS handshakes on tls_listen, by outcome", "outcome", "ok",
                 shm_get(&t->tls_handshakes), "failed", shm_get(&t->tls_handshake_errors));
    counter(b, "proxy_refused_total", "Connections closed for a missing, malformed or untrusted PROXY header",
            shm_get(&t->proxy_refused));
    counter(b, "accept_errors_total", "Accept pauses for lack of descriptors or memory",
            shm_get(&t->accept_errors));
    uint64_t refused = 0;
    for (int r = 0; r < HS_REJECT_MAX; r++)
        refused += r == HS_REJECT_TIMEOUT ? 0 : shm_get(&t->rejected[r]);
    head(b, "handshakes_total", "counter", "Opening handshakes by outcome");
    hbuf_printf(b, P "handshakes_total{outcome=\"upgraded\"} %" PRIu64 "\n", shm_get(&t->handshakes));
    hbuf_printf(b, P "handshakes_total{outcome=\"refused\"} %" PRIu64 "\n", refused);
    hbuf_printf(b, P "handshakes_total{outcome=\"timeout\"} %" PRIu64 "\n",
                shm_get(&t->rejected[HS_REJECT_TIMEOUT]));
    head(b, "upgrades_refused_total", "counter", "Upgrade requests refused, by reason and HTTP status");
    for (int r = 0; r < HS_REJECT_MAX; r++)
        if (reject_status[r])
            hbuf_printf(b, P "upgrades_refused_total{reason=\"%s\",status=\"%d\"} %" PRIu64 "\n",
                        shm_reject_name(r), reject_status[r], shm_get(&t->rejected[r]));
}

static void traffic(struct hbuf *b, struct worker_slot *t)
{
    counter_pair(b, "messages_total", "WebSocket data messages, by direction", "direction", "in",
                 shm_get(&t->messages_in), "out", shm_get(&t->messages_out));
    counter_pair(b, "payload_bytes_total", "WebSocket payload bytes, by direction", "direction", "in",
                 shm_get(&t->bytes_in), "out", shm_get(&t->bytes_out));
    head(b, "closes_total", "counter", "Connections closed, by close code sent or received");
    for (int i = 0; i < CLOSE_IDX_MAX; i++) {
        int code = shm_close_code(i);
        if (code)
            hbuf_printf(b, P "closes_total{code=\"%d\"} %" PRIu64 "\n", code, shm_get(&t->closes[i]));
        else
            hbuf_printf(b, P "closes_total{code=\"other\"} %" PRIu64 "\n", shm_get(&t->closes[i]));
    }
    counter(b, "pings_sent_total", "Keepalive pings sent", shm_get(&t->pings_sent));
    counter(b, "idle_closes_total", "Connections closed for idle_timeout", shm_get(&t->idle_closes));
    counter(b, "backpressure_closes_total", "Connections closed for max_backpressure",
            shm_get(&t->backpressure_closes));
    head(b, "limit_hits_total", "counter", "Messages or frames over a limit, by limit");
    hbuf_printf(b,
                P "limit_hits_total{limit=\"frame_size\"} %" PRIu64 "\n" P
                  "limit_hits_total{limit=\"message_size\"} %" PRIu64 "\n" P
                  "limit_hits_total{limit=\"message_rate\"} %" PRIu64 "\n" P
                  "limit_hits_total{limit=\"byte_rate\"} %" PRIu64 "\n",
                shm_get(&t->limit_frame_size), shm_get(&t->limit_message_size),
                shm_get(&t->limit_message_rate), shm_get(&t->limit_byte_rate));
}

static void channels(struct hbuf *b, const struct collect *c, struct worker_slot *t)
{
    gauge(b, "channels", "Channels with subscribers, summed over workers", (double)c->channels);
    gauge(b, "subscriptions", "Subscriptions (connection, channel)", (double)c->subscriptions);
    counter(b, "publishes_total", "Messages published into the ring", shm_get(&t->publishes));
    counter(b, "publish_rejected_total", "Publish API errors and refused client publishes",
            shm_get(&t->publish_rejected));
    counter(b, "deliveries_total", "Frames sent or queued to subscribers", shm_get(&t->deliveries));
    counter_pair(b, "slow_consumer_total", "Slow subscribers, by the slow_consumer action taken", "action",
                 "drop", shm_get(&t->slow_drops), "close", shm_get(&t->slow_closes));
    counter(b, "ring_missed_total", "Ring records lost because a worker fell behind",
            shm_get(&t->ring_missed));
    gauge(b, "ring_lag", "Ring records published but not yet read, summed over workers", (double)c->ring_lag);
    counter(b, "fanout_passes_total", "Fan-out passes over a channel's subscribers",
            shm_get(&t->fanout_passes));
}

/* permessage-deflate (docs/deflate.md); pmd_windows is the live slots'
 * gauge (collect_totals). */
static void deflate(struct hbuf *b, struct worker_slot *t)
{
    counter(b, "deflate_negotiated_total", "Handshakes that agreed on permessage-deflate",
            shm_get(&t->pmd_negotiated));
    head(b, "deflate_messages_total", "counter", "Messages on deflate connections, by direction and form");
    hbuf_printf(b,
                P "deflate_messages_total{direction=\"out\",form=\"compressed\"} %" PRIu64 "\n" P
                  "deflate_messages_total{direction=\"out\",form=\"plain\"} %" PRIu64 "\n" P
                  "deflate_messages_total{direction=\"in\",form=\"compressed\"} %" PRIu64 "\n",
                shm_get(&t->pmd_out_compressed), shm_get(&t->pmd_out_plain), shm_get(&t->pmd_in_compressed));
    counter_pair(b, "deflate_saved_bytes_total", "Payload bytes compression kept off the wire", "direction",
                 "out", shm_get(&t->pmd_out_saved), "in", shm_get(&t->pmd_in_saved));
    counter(b, "deflate_compressions_total",
            "Messages zlib compressed (once per message per worker in a fan-out)", shm_get(&t->pmd_deflates));
    gauge(b, "deflate_windows", "Client windows held (clients keeping their context)",
          (double)shm_get(&t->pmd_windows));
}

static void node(struct hbuf *b, struct shm *s, const struct collect *c, struct worker_slot *t)
{
    head(b, "broker_workers", "gauge", "Live workers by the state of their broker link");
    for (int st = 0; st <= BROKER_STATE_DOWN; st++)
        hbuf_printf(b, P "broker_workers{state=\"%s\"} %d\n", shm_broker_state_name(st), c->brokers[st]);
    counter(b, "broker_reconnects_total", "Broker connections re-established after a loss",
            shm_get(&t->broker_reconnects));
    counter(b, "broker_lost_total", "Messages lost because the broker was down", shm_get(&t->broker_lost));
    counter(b, "redis_publishes_total", "PUBLISH commands sent to Redis", shm_get(&t->redis_publishes));
    counter(b, "redis_received_total", "Messages received from Redis", shm_get(&t->redis_received));
    counter(b, "ip_table_full_total", "Addresses not counted: per-IP table probe window full",
            shm_get(&s->iptable_full));
    counter(b, "reloads_total", "Reloads attempted (SIGHUP)", shm_get(&s->reloads));
    counter(b, "reloads_failed_total", "Reloads refused (the old settings stay)",
            shm_get(&s->reloads_failed));
    gauge(b, "config_generation", "Settings generation in force", (double)atomic_load(&s->config_generation));
    counter(b, "worker_deaths_total", "Serving workers that died and were respawned",
            shm_get(&s->worker_deaths));
    gauge(b, "start_time_seconds", "Unix time the master started", (double)s->start_time);
    counter(b, "http_requests_total", "Requests answered by this HTTP service", shm_get(&t->http_requests));
    counter(b, "http_sends_total",
            "Send calls of this HTTP service (answers to a pipelined batch leave in one)",
            shm_get(&t->http_sends));
    counter(b, "sends_total", "sendmsg calls on WebSocket connections (one per read: corked output)",
            shm_get(&t->sends));
    head(b, "build_info", "gauge", "Always 1; the labels say which build runs");
    hbuf_printf(b, P "build_info{version=\"%s\",shm_layout=\"%d\"} 1\n", WSMILL_VERSION, SHM_LAYOUT_VERSION);
}

/* Writes the whole exposition into b. */
static void expose(struct hbuf *b, struct worker *w)
{
    struct collect c;
    collect_totals(w->shm, &c);
    connections(b, w->shm, &c, &w->cfg);
    handshakes(b, &c.sum);
    traffic(b, &c.sum);
    channels(b, &c, &c.sum);
    deflate(b, &c.sum);
    node(b, w->shm, &c, &c.sum);
    histogram(b, "fanout_pass_seconds", "Length of a fan-out pass over a channel's subscribers",
              &c.sum.hist_pass);
    histogram(b, "delivery_delay_seconds",
              "From publish to the end of the pass that sent it to every subscriber", &c.sum.hist_delay);
    histogram(b, "handshake_seconds", "From accept to the 101 answer", &c.sum.hist_handshake);
}

static void done(struct http_conn *hc)
{
    struct hbuf b = {0};
    expose(&b, hc->svc->w);
    if (b.failed)
        http_refuse(hc, 503, "out of memory for the metrics", 0);
    else
        http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", "", b.p, b.len);
    hbuf_free(&b);
}

const struct http_route route_metrics = {"/metrics", ROUTE_EXACT, "GET", auth_metrics_head, done};
