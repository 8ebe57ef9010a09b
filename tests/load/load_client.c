/* load_client.c: one client process's epoll loop.
 *
 * The parent decides the phase (load_stats.h); this loop follows it: open
 * connections at the token-bucket rate with a cap on unfinished handshakes,
 * start the echo pipelines or churn cycles, pick the verify sample, close in
 * paced batches, and scan for overdue connections ten times a second. It
 * exits by itself when its work is done, when told it is out of time, or at
 * the hard deadline, whichever comes first. */
#include "load_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SCAN_NS       100000000ull /* timer scan period: deadlines are coarse anyway */
#define MAX_EVENTS    1024
#define SPIN_PAUSE_NS 20000ull /* --recv spin: between polls that found nothing */
#define BUF_SIZE      (256 * 1024)

uint64_t load_client_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t load_client_rand(struct load_client *cl)
{
    /* xorshift64*: masks and nonces need to be unpredictable to a server
     * that does not know the seed, not cryptographically strong. */
    uint64_t x = cl->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    cl->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int client_init(struct load_client *cl, const struct load_opts *o, struct load_ctl *ctl,
                       struct load_slot *st, const struct load_chans *chans, const struct load_share *sh)
{
    uint32_t n = sh->n;
    memset(cl, 0, sizeof(*cl));
    cl->o = o;
    cl->ctl = ctl;
    cl->st = st;
    cl->chans = *chans;
    cl->role = sh->role;
    cl->first = sh->first;
    cl->total = sh->total;
    cl->n = n;
    cl->verify_n = sh->verify_n;
    cl->ring = o->mode == LOAD_ECHO ? o->depth : 1;
    cl->run_end = UINT64_MAX;
    int pub = sh->role == LOAD_ROLE_PUB_WS || sh->role == LOAD_ROLE_PUB_HTTP;
    cl->target = pub ? &o->pub : &o->target;
    /* fanout's publishers bind the source addresses after the subscribers' */
    if (pub && o->mode == LOAD_FANOUT)
        cl->src_offset = (uint32_t)((o->conns + o->per_src - 1) / o->per_src);
    /* Publishers connect at once (they are few); the rest at --rate. */
    double rate = pub ? 0 : o->rate / o->procs;
    cl->rate_ns = rate / 1e9;
    cl->burst = rate / 200 > 1 ? rate / 200 : 1; /* at most 5 ms worth at once */
    cl->tokens = 1;
    cl->now = cl->last_refill = load_client_clock();
    if (pub) {
        double prate = o->pub_rate * (double)n / (double)sh->total;
        cl->pub_rate_ns = prate / 1e9;
        cl->pub_burst = 1 + prate / 20; /* 50 ms worth: a short stall is made up */
        cl->pub_tokens = 1;             /* the first message goes out as the run starts */
    }
    if (getrandom(&cl->rng, sizeof(cl->rng), 0) != sizeof(cl->rng))
        cl->rng = cl->now;
    cl->rng |= 1; /* xorshift must not start at 0 */
    cl->rcap = cl->wcap = BUF_SIZE;
    cl->rbuf = malloc(BUF_SIZE);
    cl->wbuf = malloc(BUF_SIZE);
    cl->conns = calloc(n, sizeof(*cl->conns));
    cl->idle = calloc(n, sizeof(*cl->idle));
    if (cl->rbuf == NULL || cl->wbuf == NULL || cl->conns == NULL || cl->idle == NULL) {
        fprintf(stderr, "wsmill-load: out of memory for %u connections\n", n);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        cl->conns[i].fd = -1;
        cl->conns[i].id = (uint32_t)(sh->first + i);
    }
    cl->ep = epoll_create1(EPOLL_CLOEXEC);
    if (cl->ep == -1) {
        fprintf(stderr, "wsmill-load: epoll_create1(EPOLL_CLOEXEC) failed: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int take_token(struct load_client *cl)
{
    if (cl->rate_ns == 0)
        return 1;
    if (cl->tokens < 1)
        return 0;
    cl->tokens -= 1;
    return 1;
}

static void refill(struct load_client *cl)
{
    cl->tokens += (double)(cl->now - cl->last_refill) * cl->rate_ns;
    if (cl->tokens > cl->burst)
        cl->tokens = cl->burst;
    cl->last_refill = cl->now;
}

/* Starts connection i if the rate and the pending cap allow; 0 if not. */
static int try_start(struct load_client *cl, uint32_t i)
{
    if (LOAD_GET(cl->st->pending) >= cl->o->max_pending || !take_token(cl))
        return 0;
    cl->now = load_client_clock();
    load_conn_start(cl, &cl->conns[i]);
    return 1;
}

/* Hold/echo: open the next connections of the ramp. */
static int ramp(struct load_client *cl)
{
    while (cl->next_open < cl->n) {
        if (!try_start(cl, cl->next_open))
            return 1;
        cl->next_open++;
    }
    return 0;
}

/* Churn: give idle loops a new cycle. */
static int churn(struct load_client *cl)
{
    while (cl->nidle > 0) {
        if (!try_start(cl, cl->idle[cl->nidle - 1]))
            return 1;
        cl->nidle--;
    }
    return 0;
}

/* Close phase: close open connections, at most max_pending in flight. */
static void close_some(struct load_client *cl)
{
    while (cl->close_next < cl->n && cl->closing < cl->o->max_pending) {
        struct load_conn *c = &cl->conns[cl->close_next++];
        if (c->state == LOAD_CS_OPEN) {
            cl->now = load_client_clock();
            load_conn_close(cl, c);
        }
    }
}

/* Does the phase's work; returns the epoll timeout in ms. */
static int work(struct load_client *cl)
{
    int waiting = 0;
    refill(cl);
    if (cl->phase == LOAD_PH_RAMP)
        waiting = ramp(cl);
    else if (cl->phase == LOAD_PH_RUN && cl->o->mode == LOAD_CHURN)
        waiting = churn(cl);
    else if (cl->phase == LOAD_PH_RUN && cl->pub_rate_ns > 0 && cl->now < cl->run_end)
        return load_pub_tick(cl);
    else if (cl->phase == LOAD_PH_CLOSE && cl->o->mode != LOAD_CHURN)
        close_some(cl);
    /* Waiting for tokens: come back soon. The parent's phase changes are
     * polled, so even an idle loop wakes every 10 ms. */
    return waiting ? 1 : 10;
}

/* Echo: every open connection fills its pipeline. */
static void start_echo(struct load_client *cl)
{
    for (uint32_t i = 0; i < cl->n; i++) {
        struct load_conn *c = &cl->conns[i];
        if (c->state == LOAD_CS_OPEN && c->seq_sent == 0) {
            cl->now = load_client_clock();
            load_conn_send(cl, c, cl->o->depth);
        }
    }
}

/* Hold --verify-sample: one echo on verify_n open connections picked at
 * random (a partial Fisher-Yates over the open ones). */
static void start_verify(struct load_client *cl)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < cl->n; i++)
        if (cl->conns[i].state == LOAD_CS_OPEN)
            cl->idle[m++] = i; /* idle[] is unused outside churn */
    uint64_t want = cl->verify_n < m ? cl->verify_n : m;
    for (uint64_t k = 0; k < want; k++) {
        uint32_t j = (uint32_t)(k + load_client_rand(cl) % (m - k));
        uint32_t pick = cl->idle[j];
        cl->idle[j] = cl->idle[k];
        cl->idle[k] = pick;
    }
    LOAD_ADD(cl->st->verify_req, want);
    cl->verify_pending += want;
    for (uint64_t k = 0; k < want; k++) {
        struct load_conn *c = &cl->conns[cl->idle[k]];
        if (c->state != LOAD_CS_OPEN) { /* failed while we were sending */
            cl->verify_pending--;
            LOAD_ADD(cl->st->verify_failed, 1);
            continue;
        }
        c->verify = 1;
        cl->now = load_client_clock();
        load_conn_send(cl, c, 1);
    }
}

static void enter_phase(struct load_client *cl, uint32_t phase)
{
    cl->phase = phase;
    if (phase >= LOAD_PH_RUN) {
        cl->run_start = __atomic_load_n(&cl->ctl->run_start_ns, __ATOMIC_RELAXED);
        cl->run_end = __atomic_load_n(&cl->ctl->run_end_ns, __ATOMIC_RELAXED);
    }
    if (phase == LOAD_PH_RUN) /* the rate runs from the parent's start, not from when we noticed */
        cl->pub_last_refill = cl->run_start < cl->now ? cl->run_start : cl->now;
    if (phase == LOAD_PH_RUN && cl->o->mode == LOAD_ECHO)
        start_echo(cl);
    if (phase == LOAD_PH_RUN && cl->o->mode == LOAD_CHURN)
        for (uint32_t i = 0; i < cl->n; i++)
            cl->idle[cl->nidle++] = cl->n - 1 - i; /* pop order: 0, 1, ... */
    if (phase == (cl->o->verify_first ? LOAD_PH_RUN : LOAD_PH_VERIFY) && cl->o->mode == LOAD_HOLD)
        start_verify(cl);
    __atomic_store_n(&cl->st->phase_ack, phase, __ATOMIC_RELEASE);
}

/* Ten times a second: fail overdue connections, release churn cooldowns. */
static void scan(struct load_client *cl)
{
    /* A hold with every connection open and idle has no deadline to check;
     * skipping the walk keeps 50 processes x 19000 connections off the
     * memory bus while the server is being measured. */
    if ((cl->o->mode == LOAD_HOLD || cl->role == LOAD_ROLE_SUB) && LOAD_GET(cl->st->pending) == 0 &&
        cl->closing == 0 && cl->verify_pending == 0)
        return;
    for (uint32_t i = 0; i < cl->n; i++) {
        struct load_conn *c = &cl->conns[i];
        load_conn_check(cl, c);
        if (c->cooldown && c->state == LOAD_CS_IDLE) {
            c->cooldown = 0;
            cl->idle[cl->nidle++] = i;
        }
    }
}

static void abort_all(struct load_client *cl)
{
    cl->now = load_client_clock();
    for (uint32_t i = 0; i < cl->n; i++)
        load_conn_abort(cl, &cl->conns[i]);
}

/* --recv spin. During the run and the drain a subscriber process does not
 * sleep in epoll_wait: it polls (timeout 0) and, when nothing is ready,
 * pauses SPIN_PAUSE_NS on the clock before polling again. With the server on
 * this host, every wake-up of a sleeping load tool is an inter-processor
 * interrupt the server's core pays (about 13 us on the test VM), and a load
 * tool that keeps up sleeps after almost every socket: the same command
 * measured 10 or 23 us per send from one run to the next. Spinning, sockets
 * are still read in the order their data arrived (epoll's ready list); the
 * pause keeps the poll from bouncing epoll's lock between the cores. */
static int spinning(const struct load_client *cl)
{
    return cl->o->recv_spin && cl->role == LOAD_ROLE_SUB &&
           (cl->phase == LOAD_PH_RUN || cl->phase == LOAD_PH_DRAIN);
}

static void spin_pause(void)
{
    uint64_t until = load_client_clock() + SPIN_PAUSE_NS;
    while (load_client_clock() < until) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

/* One round: follow the phase, do its work, wait for events, handle them.
 * Returns 1 when this process is finished. */
static int loop_once(struct load_client *cl, struct epoll_event *evs, uint64_t *next_scan)
{
    cl->now = load_client_clock();
    uint32_t phase = __atomic_load_n(&cl->ctl->phase, __ATOMIC_ACQUIRE);
    if (phase != cl->phase)
        enter_phase(cl, phase);
    if (phase == LOAD_PH_DONE || cl->now >= cl->ctl->hard_deadline_ns) {
        abort_all(cl);
        return 1;
    }
    if (phase >= LOAD_PH_CLOSE && LOAD_GET(cl->st->active) == 0 &&
        (cl->o->mode == LOAD_CHURN || cl->close_next >= cl->n))
        return 1;
    int timeout = work(cl);
    if (cl->now >= *next_scan) {
        scan(cl);
        *next_scan = cl->now + SCAN_NS;
    }
    int spin = spinning(cl);
    if (spin)
        timeout = 0;
    int n = epoll_wait(cl->ep, evs, MAX_EVENTS, timeout);
    if (n == -1 && errno != EINTR) {
        fprintf(stderr, "wsmill-load: epoll_wait(%d) failed: %s\n", cl->ep, strerror(errno));
        abort_all(cl);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        cl->now = load_client_clock();
        load_conn_event(cl, evs[i].data.ptr, evs[i].events);
    }
    if (spin && n == 0)
        spin_pause();
    return 0;
}

int load_client_run(const struct load_opts *o, struct load_ctl *ctl, struct load_slot *st,
                    const struct load_chans *chans, const struct load_share *share)
{
    struct load_client cl;
    static struct epoll_event evs[MAX_EVENTS];
    uint64_t next_scan = 0;

    if (client_init(&cl, o, ctl, st, chans, share) == -1)
        return 1;
    while (!loop_once(&cl, evs, &next_scan))
        ;
    return 0;
}
