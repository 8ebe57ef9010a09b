/* plan.c: the recipe for N connections on a given box (see plan.h). */
#include "plan.h"

#include <inttypes.h>
#include <string.h>

#include "../common/shm.h"
#include "capacity.h"
#include "sysctls.h"

#define EHASH_BYTES_PER_BUCKET (128 * 1024)               /* the kernel: one bucket per 128 KiB of RAM */
#define EHASH_DEFAULT_MAX      (512 * 1024)               /* ... at most, unless thash_entries says more */
#define WIRE_HEADERS           66                         /* Ethernet + IPv4 + TCP with timestamps */
#define PING_ROUND_BYTES       (2 + 6 + 4 * WIRE_HEADERS) /* ping, its ACK, pong (masked), its ACK */

static int64_t pow2_at_least(int64_t n)
{
    int64_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t isqrt(int64_t n)
{
    int64_t x = n, y = (n + 1) / 2;
    while (y < x) {
        x = y;
        y = (x + n / x) / 2;
    }
    return x;
}

int64_t plan_worker_share(int64_t conns, int workers)
{
    int64_t mean = ceil_div(conns, workers);
    return mean + PLAN_SPREAD_SIGMAS * (isqrt(mean) + 1);
}

void plan_compute(const struct plan_box *box, const struct config *cfg, struct plan_result *r)
{
    int64_t sockets = box->local_clients ? 2 * box->conns : box->conns;
    memset(r, 0, sizeof *r);
    r->workers = box->cores;
    /* A hard limit that cannot be raised: more workers than cores, enough
     * that the fullest one stays under it. */
    while (box->nofile > CAPACITY_RESERVE_FDS && r->workers < SHM_MAX_WORKERS &&
           plan_worker_share(box->conns, r->workers) > box->nofile - CAPACITY_RESERVE_FDS)
        r->workers++;
    r->nofile = plan_worker_share(box->conns, r->workers) + CAPACITY_RESERVE_FDS;
    r->kernel_bytes = sockets * CAPACITY_KERNEL_BYTES_PER_SOCKET;
    r->wsmill_bytes = box->conns * CAPACITY_WSMILL_BYTES_PER_CONN;
    r->ehash_default = pow2_at_least(box->memory / EHASH_BYTES_PER_BUCKET);
    if (r->ehash_default > EHASH_DEFAULT_MAX)
        r->ehash_default = EHASH_DEFAULT_MAX;
    r->ehash_want = pow2_at_least(sockets);
    r->spare = box->memory - r->kernel_bytes - r->wsmill_bytes;
    r->backpressure_ok = r->spare > 0 ? r->spare / box->conns : 0;
    r->pings_per_sec = cfg->ping_interval ? (double)box->conns * 1000.0 / (double)cfg->ping_interval : 0;
}

static const char *gib(int64_t bytes, char *buf, size_t len)
{
    if (bytes >= (int64_t)1 << 30)
        snprintf(buf, len, "%.1f GiB", (double)bytes / (double)((int64_t)1 << 30));
    else
        snprintf(buf, len, "%.0f MiB", (double)bytes / (double)(1 << 20));
    return buf;
}

/* Lines meant to be pasted are bare (neither inih nor systemd take a
 * comment after a value); what they mean is on the line before. */
static void print_process(const struct plan_box *box, const struct plan_result *r, FILE *out)
{
    fprintf(out, "\n## in the config file\n");
    fprintf(out, "# %s\n",
            r->workers == box->cores ? "one worker per core"
                                     : "more workers than cores: the open-file limit is fixed");
    fprintf(out, "workers = %d\n", r->workers);
    fprintf(out, "# or max_connections = auto: the master derives it from the limit below and memory\n");
    fprintf(out, "max_connections = %" PRId64 "\n", box->conns);
    if (box->local_clients) {
        /* A test box: the clients are a load tool on the same cores, from
         * a few loopback addresses. */
        fprintf(out,
                "# the clients share a few loopback addresses (16,000 each) and ramp up from them at once\n");
        fprintf(out, "max_connections_per_ip = 0\nmax_handshakes_per_ip = 0\n");
        fprintf(
            out,
            "# a ramp on cores shared with its clients queues handshakes, and keepalive competes for them\n");
        fprintf(out, "handshake_timeout = 30s\nping_interval = 120s\nidle_timeout = 300s\n");
    }
    fprintf(
        out,
        "\n## in the systemd unit (or ulimit -n before start): per process, %" PRId64
        " / %d workers + %" PRId64 " for an uneven spread (the kernel hashes each connection to a worker's"
        " socket) + %d reserved\n",
        box->conns, r->workers, plan_worker_share(box->conns, r->workers) - ceil_div(box->conns, r->workers),
        CAPACITY_RESERVE_FDS);
    fprintf(out, "LimitNOFILE=%" PRId64 "\n", r->nofile);
}

static void print_sysctls(const struct plan_box *box, FILE *out)
{
    struct sysctl_want w[SYSCTLS_MAX];
    char val[96];
    int n = sysctls_for(box->conns, box->local_clients, w, SYSCTLS_MAX);
    fprintf(out,
            "\n## kernel settings (at least these; a value already higher stays: scripts/tune-kernel.sh"
            " --connections %" PRId64 "%s --apply on the box)\n",
            box->conns, box->local_clients ? " --local-clients" : "");
    for (int i = 0; i < n; i++) {
        sysctls_format(w[i].v, w[i].n, val, sizeof val);
        fprintf(out, "sysctl -w %s=\"%s\"   # %s%s\n", w[i].key, val,
                strchr(w[i].dir, '-') ? "at most: " : "", w[i].reason);
    }
}

static void print_ehash(const struct plan_box *box, const struct plan_result *r, FILE *out)
{
    int64_t sockets = box->local_clients ? 2 * box->conns : box->conns;
    fprintf(out, "\n## established-connection hash\n");
    fprintf(out,
            "# the kernel sizes it at boot from memory: ~%" PRId64 " buckets with %d GiB, so %" PRId64
            " sockets make chains of %" PRId64 " (at 1M connections here the lookups cost 12%% of CPU)\n",
            r->ehash_default, (int)(box->memory >> 30), sockets, ceil_div(sockets, r->ehash_default));
    fprintf(out, "# check: dmesg | grep 'TCP established hash table'\n");
    fprintf(out, "# kernel boot parameter (GRUB_CMDLINE_LINUX in /etc/default/grub), then reboot:\n");
    fprintf(out, "thash_entries=%" PRId64 "\n", r->ehash_want);
    fprintf(out,
            "# or, in a network namespace: sysctl -w net.ipv4.tcp_child_ehash_entries=%" PRId64
            " before `ip netns add`\n",
            r->ehash_want);
}

static void print_memory(const struct plan_box *box, const struct config *cfg, const struct plan_result *r,
                         FILE *out)
{
    char a[32], b[32], c[32], d[32];
    int64_t sockets = box->local_clients ? 2 * box->conns : box->conns;
    fprintf(out, "\n## memory\n");
    fprintf(out, "# kernel: %" PRId64 " sockets x ~%d B idle = %s\n", sockets,
            CAPACITY_KERNEL_BYTES_PER_SOCKET, gib(r->kernel_bytes, a, sizeof a));
    fprintf(out, "# wsmill: %" PRId64 " connections x ~%d B (110 B measured, docs/tuning.md) = %s\n",
            box->conns, CAPACITY_WSMILL_BYTES_PER_CONN, gib(r->wsmill_bytes, b, sizeof b));
    fprintf(out, "# idle total %s of %s; %s left for messages in flight and everything else\n",
            gib(r->kernel_bytes + r->wsmill_bytes, c, sizeof c), gib(box->memory, d, sizeof d),
            gib(r->spare > 0 ? r->spare : 0, a, sizeof a));
    char mb[32];
    gib(cfg->max_backpressure, mb, sizeof mb);
    double worst = (double)cfg->max_backpressure * (double)box->conns / (double)((int64_t)1 << 40);
    fprintf(out,
            "# worst case: max_backpressure = %s is a bound per connection, not a budget: if every"
            " connection stopped reading with %s queued, that is %.1f TiB.\n",
            mb, mb, worst);
    fprintf(out,
            "#   What fits: %" PRId64 " connections slow at once at %s each, or all %" PRId64 " at %" PRId64
            " B each.\n",
            r->spare > 0 ? r->spare / cfg->max_backpressure : 0, mb, box->conns, r->backpressure_ok);
    if (r->backpressure_ok >= 1024)
        fprintf(out,
                "#   Only if every connection may fall behind at once (else keep it and count on few):\n"
                "max_backpressure = %" PRId64 "k\n",
                r->backpressure_ok / 1024);
    fprintf(out, "#   Queued output is also capped by net.ipv4.tcp_mem (kernel side); slow_consumer = close"
                 " ends a connection past the bound (1013).\n");
}

static void print_keepalive(const struct plan_box *box, const struct config *cfg, const struct plan_result *r,
                            FILE *out)
{
    fprintf(out, "\n## keepalive\n");
    if (!cfg->ping_interval) {
        fprintf(out, "# ping_interval = 0: no pings; idle peers are found only by idle_timeout\n");
        return;
    }
    fprintf(out,
            "# ping_interval = %" PRId64 " s: %.0f pings and as many pongs per second, %.0f per core;"
            " ~%.1f MB/s on the wire (~%d B of frames and headers per round)\n",
            cfg->ping_interval / 1000, r->pings_per_sec, r->pings_per_sec / box->cores,
            r->pings_per_sec * PING_ROUND_BYTES / 1e6, PING_ROUND_BYTES);
    fprintf(out,
            "# a few %% of a core with remote clients; on a box shared with its clients a longer interval"
            " (ping_interval = 120s, idle_timeout = 300s) keeps a ramp fast\n");
}

int plan_print(const struct plan_box *box, const struct config *cfg, const char *path, FILE *out)
{
    struct plan_result r;
    char mem[32];
    plan_compute(box, cfg, &r);
    fprintf(out, "# wsmill plan: %" PRId64 " connections on %s of RAM and %d cores%s (settings from %s)\n",
            box->conns, gib(box->memory, mem, sizeof mem), box->cores,
            box->local_clients ? ", clients on the same host" : "", path);
    if (box->nofile)
        fprintf(out, "# the hard open-file limit is fixed at %" PRId64 "\n", box->nofile);
    print_process(box, &r, out);
    print_sysctls(box, out);
    print_ehash(box, &r, out);
    print_memory(box, cfg, &r, out);
    print_keepalive(box, cfg, &r, out);
    if (r.spare <= 0) {
        fprintf(out, "\nresult: %" PRId64 " idle connections need more than %s\n", box->conns, mem);
        return 2;
    }
    fprintf(out, "\nresult: %" PRId64 " connections fit with %s to spare\n", box->conns,
            gib(r.spare, mem, sizeof mem));
    return 0;
}
