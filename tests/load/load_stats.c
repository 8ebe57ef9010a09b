/* load_stats.c: see load_stats.h. */
#include "load_stats.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "load_opts.h"

static const char *const stage_names[LOAD_ST_N] = {
    "connect", "handshake", "open", "echo", "close",
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
    "aborted",
};

void load_stats_init(struct load_slot *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < LOAD_H_N; i++)
        load_hist_init(&s->hist[i]);
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

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

static void json_params(FILE *out, const struct load_opts *o, const struct load_run *r)
{
    struct in_addr src = {.s_addr = htonl(o->src_base)};
    char srcbuf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &src, srcbuf, sizeof(srcbuf));
    fprintf(out,
            "\"params\":{\"connections\":%llu,\"rate\":%.0f,\"duration\":%.3f,"
            "\"size\":%llu,\"depth\":%u,\"verify_sample\":%llu,\"procs\":%u,"
            "\"max_pending\":%u,\"src_base\":\"%s\",\"per_src\":%llu,"
            "\"timeout\":%.3f,\"conn_timeout\":%.3f}",
            (unsigned long long)o->conns, o->rate, o->duration, (unsigned long long)o->size, o->depth,
            (unsigned long long)o->verify_sample, r->procs, o->max_pending, srcbuf,
            (unsigned long long)o->per_src, o->timeout, o->conn_timeout);
}

static void json_conns(FILE *out, const struct load_opts *o, const struct load_slot *t,
                       const struct load_run *r)
{
    uint64_t not_attempted = o->mode != LOAD_CHURN && t->attempts < o->conns ? o->conns - t->attempts : 0;
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
    json_str(out, o->url);
    fprintf(out, ",\"raw\":%s,\"handshake_only\":%s,", o->raw ? "true" : "false",
            o->handshake_only ? "true" : "false");
    json_params(out, o, r);
    fprintf(out, ",\"elapsed_s\":%.3f,\"ramp_s\":%.3f,\"window_s\":%.3f,\"connect_rate\":%.1f,", r->elapsed,
            r->ramp, r->window,
            o->mode == LOAD_CHURN ? per_s(t->opened, r->window) : per_s(t->opened, r->ramp));
    json_conns(out, o, t, r);
    fputc(',', out);
    json_traffic(out, t, r);
    json_hist(out, "latency_us", &t->hist[LOAD_H_ECHO]);
    fputc(',', out);
    json_hist(out, "handshake_us", &t->hist[LOAD_H_HANDSHAKE]);
    fputc(',', out);
    json_hist(out, "cycle_us", &t->hist[LOAD_H_CYCLE]);
    fputc(',', out);
    json_failures(out, t);
    fprintf(out, ",\"interrupted\":%s,\"killed\":%s}\n", r->interrupted ? "true" : "false",
            r->killed ? "true" : "false");
}
