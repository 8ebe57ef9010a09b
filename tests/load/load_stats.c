/* load_stats.c: see load_stats.h. */
#include "load_stats.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "load_opts.h"

static const char *const stage_names[LOAD_ST_N] = {
    "connect", "handshake", "open", "echo", "message", "publish", "close",
};

static const char *const cause_names[LOAD_C_N] = {
    "timeout",
    "eof",
    "bad_response",
    "response_too_large",
    "bad_upgrade_headers",
    "bad_accept",
    "bad_frame_rsv",
    "bad_frame_opcode",
    "bad_control_frame",
    "bad_frame_length",
    "masked_frame",
    "bad_fragmentation",
    "bad_close_payload",
    "mismatch",
    "unexpected_data",
    "wrong_channel",
    "aborted",
    "tls_handshake",
};

void load_stats_init(struct load_slot *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < LOAD_H_N; i++)
        load_hist_init(&s->hist[i]);
    s->sub_first_ns = UINT64_MAX;
}

/* Sums the uint64_t fields in [from, to) of two slots. */
static void sum_range(struct load_slot *dst, const struct load_slot *src, size_t from, size_t to)
{
    for (size_t off = from; off < to; off += sizeof(uint64_t)) {
        uint64_t *d = (uint64_t *)((char *)dst + off);
        const uint64_t *s = (const uint64_t *)((const char *)src + off);
        *d += *s;
    }
}

void load_stats_merge(struct load_slot *dst, const struct load_slot *src)
{
    /* The live counters and the failure tables are runs of uint64_t; walking
     * them by offset keeps this correct when a counter is added. */
    sum_range(dst, src, offsetof(struct load_slot, attempts), offsetof(struct load_slot, phase_ack));
    sum_range(dst, src, offsetof(struct load_slot, cause), offsetof(struct load_slot, hist));
    for (int i = 0; i < LOAD_H_N; i++)
        load_hist_merge(&dst->hist[i], &src->hist[i]);
    if (src->sub_first_ns < dst->sub_first_ns)
        dst->sub_first_ns = src->sub_first_ns;
    if (src->sub_last_ns > dst->sub_last_ns)
        dst->sub_last_ns = src->sub_last_ns;
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

static void json_hist(FILE *out, const char *name, const struct load_hist *h)
{
    double us = 1e3;
    fprintf(out,
            "\"%s\":{\"count\":%llu,\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,"
            "\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
            name, (unsigned long long)h->count, h->count ? (double)h->min / us : 0.0,
            h->count ? (double)h->sum / (double)h->count / us : 0.0, (double)load_hist_quantile(h, 0.50) / us,
            (double)load_hist_quantile(h, 0.90) / us, (double)load_hist_quantile(h, 0.99) / us,
            (double)load_hist_quantile(h, 0.999) / us, (double)h->max / us);
}

static void json_failure(FILE *out, int *first, const char *stage, const char *what, long detail, uint64_t n)
{
    if (n == 0)
        return;
    fprintf(out, "%s\"%s:%s", *first ? "" : ",", stage, what);
    if (detail >= 0)
        fprintf(out, "_%ld", detail);
    fprintf(out, "\":%llu", (unsigned long long)n);
    *first = 0;
}

static void json_failures(FILE *out, const struct load_slot *t)
{
    int first = 1;
    fputs("\"failures\":{", out);
    for (int s = 0; s < LOAD_ST_N; s++) {
        for (int c = 0; c < LOAD_C_N; c++)
            json_failure(out, &first, stage_names[s], cause_names[c], -1, t->cause[s][c]);
        for (int e = 0; e < LOAD_ERRNO_MAX; e++) {
            const char *name = strerrorname_np(e);
            if (name != NULL)
                json_failure(out, &first, stage_names[s], name, -1, t->err[s][e]);
            else
                json_failure(out, &first, stage_names[s], "errno", e, t->err[s][e]);
        }
    }
    for (int i = 0; i < LOAD_STATUS_MAX; i++)
        json_failure(out, &first, "handshake", "bad_status", i, t->status[i]);
    for (int i = 0; i < LOAD_CLOSE_MAX; i++)
        json_failure(out, &first, "open", "unexpected_close", i, t->close_code[i]);
    fputc('}', out);
}

/* publish / fanout: what the publishers did. */
static void json_publish(FILE *out, const struct load_opts *o, const struct load_slot *t,
                         const struct load_run *r)
{
    fprintf(out,
            "\"publish\":{\"connections\":%llu,\"http\":%s,\"sent\":%llu,\"sent_in_window\":%llu,"
            "\"acked\":%llu,\"errors_total\":%llu,\"errors\":{",
            (unsigned long long)o->pub_conns, o->pub.http ? "true" : "false", (unsigned long long)t->pub_sent,
            (unsigned long long)t->pub_sent_window, (unsigned long long)t->pub_acked,
            (unsigned long long)t->pub_errors);
    int first = 1;
    for (int i = 0; i < LOAD_STATUS_MAX; i++) {
        if (t->pub_status[i] == 0)
            continue;
        fprintf(out, "%s\"http_%d\":%llu", first ? "" : ",", i, (unsigned long long)t->pub_status[i]);
        first = 0;
    }
    fprintf(out,
            "},\"unanswered\":%llu,\"echoes\":%llu,\"rate_asked\":%.1f,\"rate_achieved\":%.1f,"
            "\"drain_s\":%.3f,",
            (unsigned long long)(t->pub_unanswered + t->pub_inflight), (unsigned long long)t->pub_echoes,
            o->pub_rate, per_s(t->pub_sent_window, r->window), r->drain);
    json_hist(out, "latency_us", &t->hist[LOAD_H_PUBLISH]);
    fputs("},", out);
}

/* subscribe / fanout: what the subscribers got. */
static void json_deliveries(FILE *out, const struct load_opts *o, const struct load_slot *t,
                            const struct load_run *r)
{
    uint64_t gaps = t->sub_gaps > t->sub_late_fills ? t->sub_gaps - t->sub_late_fills : 0;
    double span = t->sub_recv > 1 ? (double)(t->sub_last_ns - t->sub_first_ns) / 1e9 : 0;
    fprintf(out,
            "\"deliveries\":{\"received\":%llu,\"received_in_window\":%llu,\"per_s\":%.1f,"
            "\"bytes\":%llu,\"first_to_last_s\":%.3f,\"active_per_s\":%.1f,\"gaps\":%llu,"
            "\"duplicates\":%llu,\"reordered\":%llu,\"untracked\":%llu",
            (unsigned long long)t->sub_recv, (unsigned long long)t->sub_recv_window,
            per_s(t->sub_recv_window, r->window), (unsigned long long)t->sub_bytes, span,
            per_s(t->sub_recv, span), (unsigned long long)gaps, (unsigned long long)t->sub_dups,
            (unsigned long long)t->sub_reordered, (unsigned long long)t->sub_untracked);
    if (o->mode == LOAD_FANOUT) {
        uint64_t unique = t->sub_recv - t->sub_dups;
        double asked = o->pub_rate * (double)o->conns / (double)load_opts_nchan(o);
        fprintf(out, ",\"asked_per_s\":%.1f,\"expected\":%llu,\"missing\":%llu", asked,
                (unsigned long long)r->expected,
                (unsigned long long)(r->expected > unique ? r->expected - unique : 0));
    }
    if (o->deflate)
        fprintf(out, ",\"inflated\":%llu,\"inflate_memo_hits\":%llu", (unsigned long long)t->sub_inflated,
                (unsigned long long)t->sub_memo_hits);
    fputs("},", out);
    json_hist(out, "delay_us", &t->hist[LOAD_H_DELAY]);
    fputc(',', out);
}

uint64_t load_stats_problems(const struct load_opts *o, const struct load_slot *t, const struct load_run *r)
{
    uint64_t n = t->pub_errors + t->pub_inflight + t->pub_unanswered;
    n += t->sub_gaps > t->sub_late_fills ? t->sub_gaps - t->sub_late_fills : 0;
    n += t->sub_dups + t->sub_reordered;
    if (o->mode == LOAD_FANOUT && r->expected > t->sub_recv - t->sub_dups)
        n += r->expected - (t->sub_recv - t->sub_dups);
    return n;
}

static void json_str(FILE *out, const char *s);

static void json_params(FILE *out, const struct load_opts *o, const struct load_run *r)
{
    struct in_addr src = {.s_addr = htonl(o->src_base)};
    char srcbuf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &src, srcbuf, sizeof(srcbuf));
    fprintf(out,
            "\"params\":{\"connections\":%llu,\"rate\":%.0f,\"duration\":%.3f,"
            "\"size\":%llu,\"depth\":%u,\"verify_sample\":%llu,\"procs\":%u,"
            "\"max_pending\":%u,\"src_base\":\"%s\",\"per_src\":%llu,"
            "\"timeout\":%.3f,\"conn_timeout\":%.3f",
            (unsigned long long)o->conns, o->rate, o->duration, (unsigned long long)o->size, o->depth,
            (unsigned long long)o->verify_sample, r->procs, o->max_pending, srcbuf,
            (unsigned long long)o->per_src, o->timeout, o->conn_timeout);
    if (load_opts_pubsub(o)) {
        fprintf(out, ",\"channels\":%llu", (unsigned long long)o->channels);
        if (o->mode != LOAD_SUBSCRIBE) {
            fprintf(out, ",\"pub_rate\":%.3f,\"publishers\":%llu,\"pipeline\":%u,\"drain\":%.3f,\"pub_url\":",
                    o->pub_rate, (unsigned long long)o->pub_conns, o->pipeline, o->drain);
            json_str(out, o->pub.url);
        }
    }
    fputc('}', out);
}

static void json_conns(FILE *out, const struct load_opts *o, const struct load_slot *t,
                       const struct load_run *r)
{
    uint64_t all = o->conns + (o->mode == LOAD_FANOUT ? o->pub_conns : 0);
    uint64_t not_attempted = o->mode != LOAD_CHURN && t->attempts < all ? all - t->attempts : 0;
    fprintf(out,
            "\"connections\":{\"attempted\":%llu,\"connected\":%llu,\"opened\":%llu,"
            "\"not_attempted\":%llu,\"open_at_run_start\":%llu,\"open_at_run_end\":%llu,"
            "\"peak_open\":%llu,\"closed_clean\":%llu,\"failed\":%llu}",
            (unsigned long long)t->attempts, (unsigned long long)t->connected, (unsigned long long)t->opened,
            (unsigned long long)not_attempted, (unsigned long long)r->open_at_run_start,
            (unsigned long long)r->open_at_run_end, (unsigned long long)r->peak_open,
            (unsigned long long)t->closed_clean, (unsigned long long)t->failed);
}

static void json_traffic(FILE *out, const struct load_slot *t, const struct load_run *r)
{
    fprintf(out,
            "\"messages\":{\"sent\":%llu,\"received\":%llu,\"received_in_window\":%llu,"
            "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"per_s\":%.1f,\"mb_per_s\":%.3f},"
            "\"cycles\":{\"completed\":%llu,\"in_window\":%llu,\"per_s\":%.1f},"
            "\"verify\":{\"requested\":%llu,\"ok\":%llu,\"failed\":%llu},"
            "\"pings\":%llu,\"pongs_received\":%llu,",
            (unsigned long long)t->msgs_sent, (unsigned long long)t->msgs_recv,
            (unsigned long long)t->msgs_window, (unsigned long long)t->bytes_sent,
            (unsigned long long)t->bytes_recv, per_s(t->msgs_window, r->window),
            per_s(t->bytes_window, r->window) / 1e6, (unsigned long long)t->cycles,
            (unsigned long long)t->cycles_window, per_s(t->cycles_window, r->window),
            (unsigned long long)t->verify_req, (unsigned long long)t->verify_ok,
            (unsigned long long)t->verify_failed, (unsigned long long)t->pings,
            (unsigned long long)t->pongs_recv);
}

/* Writes s as a JSON string: the URL is user input. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

void load_stats_json(FILE *out, const struct load_opts *o, const struct load_slot *t,
                     const struct load_run *r)
{
    fprintf(out, "{\"mode\":\"%s\",\"url\":", load_opts_mode_name(o->mode));
    json_str(out, o->target.url);
    fprintf(out, ",\"raw\":%s,\"handshake_only\":%s,", o->raw ? "true" : "false",
            o->handshake_only ? "true" : "false");
    json_params(out, o, r);
    fprintf(out, ",\"elapsed_s\":%.3f,\"ramp_s\":%.3f,\"window_s\":%.3f,\"connect_rate\":%.1f,", r->elapsed,
            r->ramp, r->window,
            o->mode == LOAD_CHURN ? per_s(t->opened, r->window) : per_s(t->opened, r->ramp));
    json_conns(out, o, t, r);
    fputc(',', out);
    json_traffic(out, t, r);
    if (o->mode == LOAD_PUBLISH || o->mode == LOAD_FANOUT)
        json_publish(out, o, t, r);
    if (o->mode == LOAD_SUBSCRIBE || o->mode == LOAD_FANOUT)
        json_deliveries(out, o, t, r);
    json_hist(out, "latency_us", &t->hist[LOAD_H_ECHO]);
    fputc(',', out);
    json_hist(out, "handshake_us", &t->hist[LOAD_H_HANDSHAKE]);
    fputc(',', out);
    json_hist(out, "cycle_us", &t->hist[LOAD_H_CYCLE]);
    fputc(',', out);
    json_failures(out, t);
    fprintf(out, ",\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f}", r->cpu_user, r->cpu_sys);
    fprintf(out, ",\"interrupted\":%s,\"killed\":%s}\n", r->interrupted ? "true" : "false",
            r->killed ? "true" : "false");
}
