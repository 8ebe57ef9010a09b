/* statusfmt.c: the human summary of `wsmill status` (see statusfmt.h).
 * The snapshot is read with libjansson (strict RFC 8259, fuzzed upstream):
 * the client is the only place that reads the master's JSON. */
#include "statusfmt.h"

#include <ini.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/config.h"
#include "status.h"

struct peek {
    char *sock;
    size_t len;
};

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct peek *p = user;
    (void)section;
    if (!strcmp(name, "status_socket"))
        snprintf(p->sock, p->len, "%s", value);
    return 1; /* keep going past every other line, broken ones included */
}

int statusfmt_socket_of(const char *path, char *sock, size_t socklen, char *err, size_t errlen)
{
    struct config cfg;
    err[0] = '\0';
    if (config_load(&cfg, path, err, errlen) == 0) {
        snprintf(sock, socklen, "%s", cfg.status_socket);
        return 0;
    }
    struct peek p = {sock, socklen};
    snprintf(sock, socklen, "%s", config_key_find("status_socket")->dflt);
    if (ini_parse(path, on_pair, &p) == -1)
        return -1; /* cannot open: err already says so */
    size_t used = strlen(err);
    snprintf(err + used, errlen - used, " (asking %s anyway: the running server read the file before)", sock);
    return 0;
}

static json_t *fetch(const char *sock)
{
    char *buf;
    size_t len;
    json_error_t e;
    if (status_fetch(sock, &buf, &len) == -1)
        return NULL;
    json_t *j = json_loadb(buf, len, 0, &e);
    free(buf);
    if (!j)
        fprintf(stderr, "%s: the status answer is not JSON: %s (line %d)\n", sock, e.text, e.line);
    return j;
}

static int64_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A counter over every worker, exited ones included: it never goes back. */
static int64_t total(json_t *st, const char *key)
{
    json_t *w;
    size_t i;
    int64_t sum = num(json_object_get(st, "exited_workers"), key);
    json_array_foreach(json_object_get(st, "workers"), i, w) sum += num(w, key);
    return sum;
}

/* The same for a key inside an object ("handshakes_rejected": {"full": 3}). */
static int64_t total_in(json_t *st, const char *obj, const char *key)
{
    json_t *w;
    size_t i;
    int64_t sum = num(json_object_get(json_object_get(st, "exited_workers"), obj), key);
    json_array_foreach(json_object_get(st, "workers"), i, w) sum += num(json_object_get(w, obj), key);
    return sum;
}

static void print_head(json_t *st, FILE *out)
{
    int64_t up = num(st, "uptime");
    fprintf(out,
            "wsmill master pid %lld, up %lldh%02lldm%02llds, config %s (configuration generation %lld)\n",
            (long long)num(st, "master_pid"), (long long)(up / 3600), (long long)(up / 60 % 60),
            (long long)(up % 60), str(st, "config_file"), (long long)num(st, "config_generation"));
    fprintf(out, "serving  ws://%s", str(st, "listen"));
    if (*str(st, "publish_listen"))
        fprintf(out, ", publish API http://%s", str(st, "publish_listen"));
    fprintf(out, "; log %s\n", *str(st, "log_file") ? str(st, "log_file") : "standard error");
}

static void print_workers(json_t *st, FILE *out)
{
    static const char *states[] = {"active", "starting", "draining", "stopped"};
    int64_t count[4] = {0};
    json_t *w;
    size_t i;
    json_array_foreach(json_object_get(st, "workers"), i, w) for (int s = 0; s < 4; s++) count[s] +=
        !strcmp(str(w, "state"), states[s]);
    fprintf(out, "connections %lld of max_connections %lld%s", (long long)num(st, "connections"),
            (long long)num(st, "max_connections"), num(st, "max_connections_auto") ? " (auto)" : "");
    if (num(st, "draining_connections"))
        fprintf(out, ", %lld of them on draining workers", (long long)num(st, "draining_connections"));
    fprintf(out, "\nworkers  %lld active (generation %lld)", (long long)count[0],
            (long long)num(st, "generation"));
    for (int s = 1; s < 4; s++)
        if (count[s])
            fprintf(out, ", %lld %s", (long long)count[s], states[s]);
    fprintf(out, "; %lld died and were respawned\n", (long long)num(st, "worker_deaths"));
}

static void print_rates(json_t *a, json_t *b, double secs, FILE *out)
{
    static const struct {
        const char *key, *label;
    } r[] = {{"accepted", "accepts"},      {"handshakes", "handshakes"}, {"messages_in", "msgs in"},
             {"messages_out", "msgs out"}, {"publishes", "publishes"},   {"deliveries", "deliveries"},
             {"bytes_in", "bytes in"},     {"bytes_out", "bytes out"},   {"pings_sent", "pings"}};
    fprintf(out, "rates over the last %.1f s:", secs);
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        double d = (double)(total(b, r[i].key) - total(a, r[i].key)) / secs;
        fprintf(out, "%s %.0f %s/s", i ? "," : "", d, r[i].label);
    }
    fputc('\n', out);
}

/* Every nonzero entry of a counter object, summed over workers. */
static void print_nonzero(json_t *st, const char *obj, const char *label, FILE *out)
{
    json_t *first = json_array_get(json_object_get(st, "workers"), 0), *v;
    const char *key;
    int any = 0;
    fprintf(out, "%s", label);
    json_object_foreach(json_object_get(first ? first : json_object_get(st, "exited_workers"), obj), key, v)
    {
        int64_t n = total_in(st, obj, key);
        if (n)
            fprintf(out, "%s %s %lld", any++ ? "," : "", key, (long long)n);
    }
    fprintf(out, "%s\n", any ? "" : " none");
}

static void print_tail(json_t *st, FILE *out)
{
    json_t *br = json_object_get(st, "broker"), *lr = json_object_get(st, "last_reload");
    if (!strcmp(str(br, "kind"), "local"))
        fprintf(out, "broker   local (publishes reach this node's subscribers through the shared ring)");
    else
        fprintf(out, "broker   %s, %s", str(br, "kind"), str(br, "connection"));
    if (!strcmp(str(br, "kind"), "redis"))
        fprintf(out, " (%lld workers connected), %lld reconnects, %lld messages lost",
                (long long)num(br, "workers_connected"), (long long)num(br, "reconnects"),
                (long long)num(br, "lost"));
    fputc('\n', out);
    if (!num(lr, "seq")) {
        fprintf(out, "reload   none since start\n");
        return;
    }
    fprintf(out, "reload   %lld s ago, %s", (long long)((int64_t)time(NULL) - num(lr, "at")),
            num(lr, "ok") ? "applied" : "REFUSED, the old configuration runs: ");
    fprintf(out, "%s%s\n", num(lr, "ok") ? "changed: " : "",
            num(lr, "ok") ? str(lr, "changed") : str(lr, "error"));
}

int statusfmt_summary(const char *sock, double interval, FILE *out)
{
    struct timespec t0, t1, pause = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
    json_t *a = fetch(sock), *b = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (a) {
        nanosleep(&pause, NULL);
        b = fetch(sock);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!a || !b) {
        json_decref(a);
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_head(b, out);
    print_workers(b, out);
    print_rates(a, b, secs, out);
    print_nonzero(b, "handshakes_rejected", "rejected handshakes since start:", out);
    print_nonzero(b, "closes", "closes since start (by code):", out);
    if (total(b, "tls_handshakes") || total(b, "tls_handshake_errors") || total(b, "proxy_refused"))
        fprintf(out,
                "tls      %lld handshakes, %lld failed; %lld connections refused for their PROXY header\n",
                (long long)total(b, "tls_handshakes"), (long long)total(b, "tls_handshake_errors"),
                (long long)total(b, "proxy_refused"));
    print_tail(b, out);
    json_decref(a);
    json_decref(b);
    return fflush(out) == 0 ? 0 : 1;
}
