/* load_main.c: wsmill-load's parent process.
 *
 * Parses the options, raises RLIMIT_NOFILE, maps the shared stats block,
 * forks the client processes (load_client.c; in fanout the subscribers'
 * processes and one publisher process) and then only supervises:
 * it moves every child through the phases, prints a progress line a second,
 * enforces every time bound, and finally merges the slots into the one JSON
 * line that ends stdout. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "load_client.h"
#include "load_opts.h"
#include "load_stats.h"

#define PER_PROC_MAX 19000 /* sockets per process, under the 20000 fd limit */
#define TICK_NS      50000000ull

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    (void)sig;
    got_signal++;
}

/* Raises the soft open-file limit to the hard one; returns the soft limit. */
static rlim_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        fprintf(stderr, "wsmill-load: getrlimit(RLIMIT_NOFILE) failed: %s\n", strerror(errno));
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            fprintf(stderr, "wsmill-load: setrlimit(RLIMIT_NOFILE, %llu) failed: %s\n",
                    (unsigned long long)rl.rlim_max, strerror(errno));
            return old;
        }
    }
    return rl.rlim_cur;
}

/* Sets o->procs when not given and checks each process's share fits. */
static int plan_procs(struct load_opts *o, rlim_t nofile)
{
    uint64_t fit = nofile > 64 ? nofile - 64 : 1; /* stdio, epoll, slack */
    uint64_t per = fit < PER_PROC_MAX ? fit : PER_PROC_MAX;
    if (o->procs == 0)
        o->procs = (uint32_t)((o->conns + per - 1) / per);
    if (o->procs > o->conns)
        o->procs = (uint32_t)o->conns;
    uint64_t share = (o->conns + o->procs - 1) / o->procs;
    if (o->pub_procs > 0 && o->pub_conns > share)
        share = o->pub_conns; /* fanout: one process holds every publisher */
    if (share > fit) {
        fprintf(stderr,
                "wsmill-load: %llu connections per process exceed the open-file "
                "limit %llu; use more --procs\n",
                (unsigned long long)share, (unsigned long long)nofile);
        return -1;
    }
    return 0;
}

/* Warns when one source address needs more ports than the kernel hands out. */
static void check_port_range(const struct load_opts *o)
{
    unsigned lo, hi;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f == NULL)
        return;
    int n = fscanf(f, "%u %u", &lo, &hi);
    fclose(f);
    uint64_t need = o->conns < o->per_src ? o->conns : o->per_src;
    if (n == 2 && hi >= lo && need > hi - lo + 1)
        fprintf(stderr,
                "wsmill-load: warning: up to %llu connections per source address but "
                "net.ipv4.ip_local_port_range is %u-%u (%u ports); widen it (e.g. "
                "'1024 65535') or lower --per-src\n",
                (unsigned long long)need, lo, hi, hi - lo + 1);
}

static void pin_cpu(const struct load_opts *o, unsigned index)
{
    const int *cpus = o->cpus;
    int ncpus = o->ncpus;
    if (index >= o->procs && o->pub_ncpus > 0) { /* fanout's publisher process */
        cpus = o->pub_cpus;
        ncpus = o->pub_ncpus;
        index -= o->procs;
    }
    if (ncpus == 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[index % (unsigned)ncpus], &set);
    if (sched_setaffinity(0, sizeof(set), &set) == -1)
        fprintf(stderr, "wsmill-load: sched_setaffinity(cpu %d) failed: %s\n", cpus[index % (unsigned)ncpus],
                strerror(errno));
}

/* Connections of every role (fanout: subscribers and publishers). */
static uint64_t all_conns(const struct load_opts *o)
{
    return o->conns + (o->mode == LOAD_FANOUT ? o->pub_conns : 0);
}

/* What child i does: processes [0, procs) share -n, fanout's last one
 * holds the publishers. */
static struct load_share share_of(const struct load_opts *o, unsigned i)
{
    struct load_share sh = {.role = LOAD_ROLE_CONN};
    int pub = o->mode == LOAD_PUBLISH || i >= o->procs;
    if (pub) {
        sh.role = o->pub.http ? LOAD_ROLE_PUB_HTTP : LOAD_ROLE_PUB_WS;
        unsigned j = o->mode == LOAD_PUBLISH ? i : i - o->procs;
        unsigned np = o->mode == LOAD_PUBLISH ? o->procs : o->pub_procs;
        sh.total = o->pub_conns;
        sh.first = o->pub_conns * j / np;
        sh.n = (uint32_t)(o->pub_conns * (j + 1) / np - sh.first);
        return sh;
    }
    if (o->mode == LOAD_SUBSCRIBE || o->mode == LOAD_FANOUT)
        sh.role = LOAD_ROLE_SUB;
    sh.total = o->conns;
    sh.first = o->conns * i / o->procs;
    sh.n = (uint32_t)(o->conns * (i + 1) / o->procs - sh.first);
    sh.verify_n = o->verify_sample * (i + 1) / o->procs - o->verify_sample * i / o->procs;
    return sh;
}

/* The child side of fork: never returns. */
static void child(const struct load_opts *o, struct load_ctl *ctl, struct load_slot *slots,
                  const struct load_chans *chans, unsigned i, pid_t parent)
{
    /* The parent turns ^C into the close phase; a dead parent kills us. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
        _exit(1);
    pin_cpu(o, i);
    struct load_share sh = share_of(o, i);
    _exit(load_client_run(o, ctl, &slots[i], chans, &sh));
}

/* The live counters summed over all children. */
struct totals {
    uint64_t attempts, opened, open_now, pending, active, settled, failed;
    uint64_t msgs, cycles, vreq, vdone;
    uint64_t pub_sent, pub_inflight, sub_recv, sub_unique;
    uint32_t min_ack;
};

struct monitor {
    const struct load_opts *o;
    struct load_ctl *ctl;
    struct load_slot *slots;
    struct load_chans chans;
    unsigned nprocs; /* all children: procs + pub_procs */
    pid_t *pids;
    unsigned alive;
    uint64_t last_recv, last_recv_change; /* drain: deliveries still arriving? */
    uint64_t start, phase_start, next_progress;
    uint64_t last_time; /* of the previous progress line */
    struct totals last;
    struct load_hist *delay_prev; /* pub/sub progress: the delay histogram a second ago */
    struct load_run run;
};

static void sum_live(const struct monitor *m, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    t->min_ack = UINT32_MAX;
    for (unsigned i = 0; i < m->nprocs; i++) {
        struct load_slot *s = &m->slots[i];
        uint32_t ack = __atomic_load_n(&s->phase_ack, __ATOMIC_ACQUIRE);
        t->min_ack = ack < t->min_ack ? ack : t->min_ack;
        t->attempts += LOAD_GET(s->attempts);
        t->opened += LOAD_GET(s->opened);
        t->open_now += LOAD_GET(s->open_now);
        t->pending += LOAD_GET(s->pending);
        t->active += LOAD_GET(s->active);
        t->settled += LOAD_GET(s->settled);
        t->failed += LOAD_GET(s->failed);
        t->msgs += LOAD_GET(s->msgs_recv);
        t->cycles += LOAD_GET(s->cycles);
        t->vreq += LOAD_GET(s->verify_req);
        t->vdone += LOAD_GET(s->verify_ok) + LOAD_GET(s->verify_failed);
        t->pub_sent += LOAD_GET(s->pub_sent);
        t->pub_inflight += LOAD_GET(s->pub_inflight);
        uint64_t recv = LOAD_GET(s->sub_recv);
        t->sub_recv += recv;
        t->sub_unique += recv - LOAD_GET(s->sub_dups);
    }
}

/* fanout: deliveries owed for what was accepted, to the subscribers open now. */
static uint64_t expected_deliveries(const struct monitor *m)
{
    uint64_t sum = 0, k = load_opts_nchan(m->o);
    for (uint64_t i = 0; i < k; i++) {
        int64_t subs = __atomic_load_n(&m->chans.subs[i], __ATOMIC_RELAXED);
        sum += __atomic_load_n(&m->chans.published[i], __ATOMIC_RELAXED) * (uint64_t)(subs > 0 ? subs : 0);
    }
    return sum;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static uint64_t ns_of(double s)
{
    return (uint64_t)(s * 1e9);
}

static void set_phase(struct monitor *m, uint32_t phase, uint64_t now)
{
    __atomic_store_n(&m->ctl->phase, phase, __ATOMIC_RELEASE);
    m->phase_start = now;
}

static void start_run(struct monitor *m, const struct totals *t, uint64_t now)
{
    m->ctl->run_start_ns = now;
    __atomic_store_n(&m->ctl->run_end_ns, now + ns_of(m->o->duration), __ATOMIC_RELAXED);
    m->run.ramp = secs(now - m->start);
    m->run.open_at_run_start = t->open_now;
    set_phase(m, LOAD_PH_RUN, now);
}

/* Leaves the run phase (on time or early); next is VERIFY or CLOSE. */
static void end_run(struct monitor *m, const struct totals *t, uint64_t now, uint32_t next)
{
    uint64_t end = m->ctl->run_end_ns;
    if (m->ctl->phase == LOAD_PH_RAMP) {
        m->run.ramp = secs(now - m->start);
        end = now;
    } else if (now < end) {
        end = now; /* interrupted: children re-read the window's end */
    }
    __atomic_store_n(&m->ctl->run_end_ns, end, __ATOMIC_RELAXED);
    if (m->ctl->run_start_ns != 0)
        m->run.window = secs(end - m->ctl->run_start_ns);
    m->run.open_at_run_end = t->open_now;
    set_phase(m, next, now);
}

/* Bound on the ramp and close phases: --timeout plus the time the ramp
 * needs at --rate, so a million connections at 10000/s are not cut at 60 s. */
static double bulk_bound(const struct load_opts *o)
{
    return o->timeout + (o->rate > 0 && o->mode != LOAD_CHURN ? (double)o->conns / o->rate : 0);
}

#define DRAIN_QUIET_NS 1000000000ull /* fanout: no delivery for this long ends the drain */

/* publish/fanout: the drain is over when every publish is answered and
 * (fanout) every delivery owed has arrived or none came for a second. */
static int drained(struct monitor *m, const struct totals *t, uint64_t now)
{
    if (t->sub_recv != m->last_recv) {
        m->last_recv = t->sub_recv;
        m->last_recv_change = now;
    }
    if (t->pub_inflight > 0)
        return 0;
    if (m->o->mode != LOAD_FANOUT)
        return 1;
    return t->sub_unique >= expected_deliveries(m) || now - m->last_recv_change >= DRAIN_QUIET_NS;
}

static void end_drain(struct monitor *m, uint64_t now)
{
    m->run.drain = secs(now - m->phase_start);
    if (m->o->mode == LOAD_FANOUT) {
        m->run.expected = expected_deliveries(m);
        m->run.expected_known = 1;
    }
    set_phase(m, LOAD_PH_CLOSE, now);
}

static void advance(struct monitor *m, const struct totals *t, uint64_t now)
{
    const struct load_opts *o = m->o;
    uint32_t phase = m->ctl->phase;
    uint64_t in_phase = now - m->phase_start;

    int drain = o->mode == LOAD_PUBLISH || o->mode == LOAD_FANOUT;
    if (phase == LOAD_PH_RAMP && (t->settled >= all_conns(o) || in_phase >= ns_of(bulk_bound(o))))
        start_run(m, t, now);
    else if (phase == LOAD_PH_RUN &&
             (now >= m->ctl->run_end_ns || (o->mode != LOAD_CHURN && t->active == 0))) {
        /* Every connection gone (all failed): nothing left to hold or time. */
        end_run(m, t, now, drain ? LOAD_PH_DRAIN : o->verify_sample > 0 ? LOAD_PH_VERIFY : LOAD_PH_CLOSE);
        m->last_recv_change = now;
    } else if (phase == LOAD_PH_DRAIN && (drained(m, t, now) || in_phase >= ns_of(o->drain)))
        end_drain(m, now);
    else if (phase == LOAD_PH_VERIFY &&
             ((t->min_ack >= LOAD_PH_VERIFY && t->vdone >= t->vreq) || in_phase >= ns_of(o->timeout)))
        set_phase(m, LOAD_PH_CLOSE, now);
    else if (phase == LOAD_PH_CLOSE && in_phase >= ns_of(bulk_bound(o)))
        set_phase(m, LOAD_PH_DONE, now);
}

/* ^C / SIGTERM: the first closes cleanly now, the second aborts. */
static void on_interrupt(struct monitor *m, const struct totals *t, uint64_t now)
{
    static int seen;
    if (got_signal == seen)
        return;
    seen = got_signal;
    m->run.interrupted = 1;
    uint32_t phase = m->ctl->phase;
    if (phase == LOAD_PH_RAMP || phase == LOAD_PH_RUN)
        end_run(m, t, now, LOAD_PH_CLOSE);
    else if (phase == LOAD_PH_VERIFY)
        set_phase(m, LOAD_PH_CLOSE, now);
    else if (phase == LOAD_PH_DRAIN)
        end_drain(m, now);
    else
        set_phase(m, LOAD_PH_DONE, now);
}

static const char *phase_name(uint32_t phase)
{
    static const char *const names[] = {"start", "ramp", "run", "drain", "verify", "close", "done"};
    return phase <= LOAD_PH_DONE ? names[phase] : "?";
}

/* The delay quantile q (ms) over the deliveries since the last progress
 * line, read racily from the live histograms: good enough for a progress
 * line, never used in the report. */
static double recent_delay_ms(struct monitor *m, double q, int update)
{
    static struct load_hist cur;
    load_hist_init(&cur);
    for (unsigned i = 0; i < m->nprocs; i++)
        load_hist_merge(&cur, &m->slots[i].hist[LOAD_H_DELAY]);
    struct load_hist d = cur;
    d.count = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        d.b[i] = cur.b[i] >= m->delay_prev->b[i] ? cur.b[i] - m->delay_prev->b[i] : 0;
        d.count += d.b[i];
    }
    d.min = 0;
    d.max = UINT64_MAX;
    if (update)
        *m->delay_prev = cur;
    return (double)load_hist_quantile(&d, q) / 1e6;
}

static void progress(struct monitor *m, const struct totals *t, uint64_t now)
{
    if (m->o->quiet || now < m->next_progress)
        return;
    double dt = secs(now - m->last_time);
    m->next_progress += 1000000000ull;
    m->last_time = now;
    if (load_opts_pubsub(m->o) && m->delay_prev != NULL) {
        double p50 = recent_delay_ms(m, 0.5, 0), p99 = recent_delay_ms(m, 0.99, 1);
        fprintf(stderr,
                "[%6.1fs] %-6s open=%llu/%llu conn/s=%.0f pending=%llu failed=%llu pub/s=%.0f "
                "deliveries/s=%.0f delay_ms p50=%.1f p99=%.1f\n",
                secs(now - m->start), phase_name(m->ctl->phase), (unsigned long long)t->open_now,
                (unsigned long long)all_conns(m->o), (double)(t->opened - m->last.opened) / dt,
                (unsigned long long)t->pending, (unsigned long long)t->failed,
                (double)(t->pub_sent - m->last.pub_sent) / dt, (double)(t->sub_recv - m->last.sub_recv) / dt,
                p50, p99);
    } else
        fprintf(stderr,
                "[%6.1fs] %-6s open=%llu/%llu conn/s=%.0f pending=%llu failed=%llu "
                "msg/s=%.0f cycles/s=%.0f\n",
                secs(now - m->start), phase_name(m->ctl->phase), (unsigned long long)t->open_now,
                (unsigned long long)m->o->conns, (double)(t->opened - m->last.opened) / dt,
                (unsigned long long)t->pending, (unsigned long long)t->failed,
                (double)(t->msgs - m->last.msgs) / dt, (double)(t->cycles - m->last.cycles) / dt);
    m->last = *t;
}

/* Collects exited children; returns how many are still running. */
static unsigned reap(struct monitor *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (unsigned i = 0; i < m->nprocs; i++) {
            if (m->pids[i] != pid)
                continue;
            m->pids[i] = 0;
            m->alive--;
            if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "wsmill-load: client %u (pid %d) %s %d\n", i, (int)pid,
                        WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
    }
    return m->alive;
}

/* Past the hard deadline: children that are still here get SIGKILL. */
static void kill_stragglers(struct monitor *m)
{
    for (unsigned i = 0; i < m->nprocs; i++) {
        if (m->pids[i] == 0)
            continue;
        if (kill(m->pids[i], SIGKILL) == -1)
            fprintf(stderr, "wsmill-load: kill(%d, SIGKILL) failed: %s\n", (int)m->pids[i], strerror(errno));
        m->run.killed = 1;
    }
    while (m->alive > 0 && waitpid(-1, NULL, 0) > 0)
        m->alive--;
}

static void supervise(struct monitor *m)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = TICK_NS};
    struct totals t;
    while (reap(m) > 0) {
        uint64_t now = load_client_clock();
        sum_live(m, &t);
        if (t.open_now > m->run.peak_open)
            m->run.peak_open = t.open_now;
        on_interrupt(m, &t, now);
        advance(m, &t, now);
        progress(m, &t, now);
        if (now >= m->ctl->hard_deadline_ns + 3000000000ull) {
            kill_stragglers(m);
            break;
        }
        nanosleep(&tick, NULL);
    }
    m->run.elapsed = secs(load_client_clock() - m->start);
}

/* How long the whole run may take, from the options: every phase bounded. */
static double hard_bound(const struct load_opts *o)
{
    double t = o->duration + bulk_bound(o) + 5; /* run, close */
    if (o->mode != LOAD_CHURN)
        t += bulk_bound(o); /* ramp */
    if (o->mode == LOAD_PUBLISH || o->mode == LOAD_FANOUT)
        t += o->drain;
    if (o->verify_sample > 0)
        t += o->timeout;
    return t;
}

static int fork_children(struct monitor *m)
{
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    for (unsigned i = 0; i < m->nprocs; i++) {
        pid_t pid = fork();
        if (pid == -1) {
            fprintf(stderr, "wsmill-load: fork() for client %u failed: %s\n", i, strerror(errno));
            return -1;
        }
        if (pid == 0)
            child(m->o, m->ctl, m->slots, &m->chans, i, parent);
        m->pids[i] = pid;
        m->alive++;
    }
    return 0;
}

/* Maps the control block, one slot per child and the per-channel counters,
 * shared across fork. */
static int map_shared(struct monitor *m)
{
    uint64_t nchan = load_opts_pubsub(m->o) ? load_opts_nchan(m->o) : 0;
    size_t size =
        sizeof(struct load_ctl) + m->nprocs * sizeof(struct load_slot) + 2 * nchan * sizeof(uint64_t);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "wsmill-load: mmap(%zu, MAP_SHARED|MAP_ANONYMOUS) failed: %s\n", size,
                strerror(errno));
        return -1;
    }
    m->ctl = p;
    m->slots = (struct load_slot *)((char *)p + sizeof(struct load_ctl));
    for (unsigned i = 0; i < m->nprocs; i++)
        load_stats_init(&m->slots[i]);
    m->chans.published = (uint64_t *)(m->slots + m->nprocs); /* zeroed by mmap */
    m->chans.subs = (int64_t *)(m->chans.published + nchan);
    uint32_t base;
    if (getrandom(&base, sizeof(base), 0) != sizeof(base))
        base = (uint32_t)getpid() * 2654435761u;
    m->ctl->pub_id_base = base;
    return 0;
}

static int report(struct monitor *m)
{
    const struct load_opts *o = m->o;
    struct load_slot *total = malloc(sizeof(*total));
    if (total == NULL) {
        fprintf(stderr, "wsmill-load: out of memory for the report\n");
        return 3;
    }
    load_stats_init(total);
    for (unsigned i = 0; i < m->nprocs; i++)
        load_stats_merge(total, &m->slots[i]);
    m->run.procs = m->nprocs;
    if (o->mode == LOAD_CHURN && m->run.window == 0)
        m->run.window = o->duration;
    load_stats_json(stdout, o, total, &m->run);
    fflush(stdout);
    int incomplete = o->mode != LOAD_CHURN && total->opened < all_conns(o);
    int rc = total->failed > 0 || incomplete || m->run.killed || m->run.interrupted ||
                     load_stats_problems(o, total, &m->run) > 0
                 ? 1
                 : 0;
    free(total);
    return rc;
}

int main(int argc, char **argv)
{
    static struct load_opts o;
    int r = load_opts_parse(&o, argc, argv);
    if (r != 0)
        return r == 1 ? 0 : 2;
    if (plan_procs(&o, raise_nofile()) == -1)
        return 2;
    check_port_range(&o);

    struct monitor m = {.o = &o, .nprocs = o.procs + o.pub_procs};
    m.pids = calloc(m.nprocs, sizeof(*m.pids));
    if (load_opts_pubsub(&o) && !o.quiet && (m.delay_prev = malloc(sizeof(*m.delay_prev))) != NULL)
        load_hist_init(m.delay_prev);
    if (m.pids == NULL || map_shared(&m) == -1)
        return 3;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    m.start = m.phase_start = m.last_time = load_client_clock();
    m.next_progress = m.start + 2000000000ull; /* short runs stay quiet */
    m.ctl->hard_deadline_ns = m.start + ns_of(hard_bound(&o));
    if (o.mode == LOAD_CHURN) {
        m.ctl->run_start_ns = m.start;
        m.ctl->run_end_ns = m.start + ns_of(o.duration);
        m.ctl->phase = LOAD_PH_RUN;
    } else {
        m.ctl->phase = LOAD_PH_RAMP;
    }
    if (fork_children(&m) == -1) {
        set_phase(&m, LOAD_PH_DONE, m.start);
        kill_stragglers(&m);
        return 3;
    }
    supervise(&m);
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
        m.run.cpu_user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        m.run.cpu_sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    return report(&m);
}
