/* fanout.c: from the shared ring to every local subscriber.
 *
 * A record read from the ring becomes one frame (struct shbuf, header built
 * once) appended to its channel's log. A channel with frames some
 * subscriber has not had is "active", and the worker sweeps its active
 * channels continuously: a visit sends a subscriber everything it is owed
 * (its sequence number up to the log's head) in one send, so however many
 * messages arrived, a pass over 10,000 subscribers costs 10,000 syscalls.
 *
 * The sweep runs in steps of STEP_WRITES writes and goes back to the event
 * loop between steps, so a publish arriving mid-pass (publish API, client,
 * another worker) is read within a step and joins the pass in progress:
 * subscribers not yet visited get it in this pass, the others in the next,
 * which starts right after. A message therefore waits at most one pass,
 * never "the rest of this round, then the next round", and reads, accepts
 * and timers are never held up by more than a step.
 *
 * Only what a socket refuses is queued, by reference (conn/output.c), and
 * the slow_consumer policy bounds that queue. A subscriber whose send fails
 * is only marked (conn_drop): it stays in the subscriber array, skipped,
 * until the reaper releases it after this step, so the sweep never meets a
 * freed connection or a subscriber array changing under it. */
#include "fanout.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/handshake.h"
#include "../../common/log.h"
#include "../conn/output.h"
#include "../conn/pmd.h"
#include "channel.h"
#include "../http/metrics.h"
#include "histsub.h"

#define STEP_VISITS      8192        /* visits per step (up-to-date ones cost no syscall) */
#define READ_MAX_RECORDS 4096        /* ring records read per loop turn */
#define LOG_MAX_BYTES    (16u << 20) /* frames held in all logs: past it the ring waits */
#define LOG_MAX_FRAMES   (1u << 20)  /* per channel */
#define LOG_MIN_CAP      16
#define MAX_IOV          1024 /* IOV_MAX on Linux */
#define TWIN_IOV         64   /* frames per send to a deflate subscriber (arrays on the stack) */

/* ---- the log ---------------------------------------------------------- */

/* Frees frames older than `upto`. */
static void log_trim(struct worker *w, struct channel *ch, uint32_t upto)
{
    if (ch->holds)
        return; /* a wsmill.v1 client waits for Redis's answer: it may need these (histsub_redis.c) */
    while (ch->tail != upto) {
        struct shbuf *b = ch->log[ch->tail & (ch->log_cap - 1)];
        w->log_bytes -= shbuf_bytes(b);
        shbuf_unref(b);
        ch->tail++;
    }
}

void fanout_channel_free(struct worker *w, struct channel *ch)
{
    if (ch->holds)
        return;
    if (ch->log)
        log_trim(w, ch, ch->pass_start);
    free(ch->log);
    free(ch->log_iov);
    ch->log = NULL;
    ch->log_iov = NULL;
    ch->log_cap = 0;
}

/* Room for one more frame. Returns 0, or -1 (memory, or LOG_MAX_FRAMES). */
static int log_reserve(struct channel *ch)
{
    uint32_t used = ch->head - ch->tail;
    if (used < ch->log_cap)
        return 0;
    uint32_t cap = ch->log_cap ? ch->log_cap * 2 : LOG_MIN_CAP;
    if (cap > LOG_MAX_FRAMES)
        return -1;
    struct shbuf **log = malloc(cap * sizeof(*log));
    struct iovec *iov = malloc(cap * sizeof(*iov));
    if (!log || !iov) {
        free(log);
        free(iov);
        return -1;
    }
    for (uint32_t s = ch->tail; s != ch->head; s++) {
        log[s & (cap - 1)] = ch->log[s & (ch->log_cap - 1)];
        iov[s & (cap - 1)] = ch->log_iov[s & (ch->log_cap - 1)];
    }
    free(ch->log);
    free(ch->log_iov);
    ch->log = log;
    ch->log_iov = iov;
    ch->log_cap = cap;
    return 0;
}

/* Puts ch at the end of the active list with a new pass over all its
 * subscribers. */
static void activate(struct worker *w, struct channel *ch)
{
    ch->active = 1;
    ch->pass_began = mono_ns();
    ch->pass_start = ch->head;
    ch->pos = ch->nsubs;
    ch->active_next = NULL;
    if (w->active)
        w->active_tail->active_next = ch;
    else
        w->active = ch;
    w->active_tail = ch;
}

int fanout_log_append(struct worker *w, struct channel *ch, struct shbuf *sb)
{
    if (log_reserve(ch) == -1) {
        shbuf_unref(sb);
        return -1;
    }
    uint32_t i = ch->head & (ch->log_cap - 1);
    ch->log[i] = sb;
    ch->log_iov[i] = (struct iovec){sb->data, sb->len};
    ch->head++;
    w->log_bytes += sb->len;
    if (!ch->active)
        activate(w, ch);
    return 0;
}

/* ---- sending ---------------------------------------------------------- */

/* Sends frames (bufs, also laid out in iov) to one subscriber: one send
 * when nothing is queued for it, else behind what is. */
static void deliver(struct worker *w, struct conn *c, struct shbuf **bufs, int n, const struct iovec *iov,
                    size_t total)
{
    if (c->state != CONN_OPEN)
        return;
    if (w->cork.c == c)
        output_settle(c); /* what c's own input produced goes first */
    size_t queued = output_queued(c);
    size_t sent = 0;
    if (!queued) {
        ssize_t wr = output_sendv(c, iov, n);
        if (wr == -1 && errno != EAGAIN && errno != EINTR) {
            conn_drop(c, WS_CLOSE_ABNORMAL);
            return;
        }
        sent = wr > 0 ? (size_t)wr : 0;
        if (sent == total) {
            shm_add(&w->slot->deliveries, (uint64_t)n);
            return;
        }
    }
    if ((int64_t)(queued + total - sent) > w->cfg.max_backpressure) {
        if (w->cfg.slow_consumer == SLOW_DROP && sent == 0) {
            shm_add(&w->slot->slow_drops, (uint64_t)n);
            return;
        }
        /* close policy, or drop with half a frame already written (the
         * stream cannot skip the rest of it) */
        shm_add(&w->slot->slow_closes, 1);
        output_overflow_close(c, WS_CLOSE_TRY_AGAIN, "slow consumer: max_backpressure exceeded");
        return;
    }
    shm_add(&w->slot->deliveries, (uint64_t)n);
    output_queue_shared(c, bufs, n, sent);
}

/* One frame outside a log (a multi-channel message) to one subscriber: its
 * compressed twin when c negotiated permessage-deflate. */
static void deliver_one(struct worker *w, struct conn *c, struct shbuf *sb)
{
    struct iovec iov = {sb->data, sb->len};
    size_t unlogged = 0;
    if (c->flags & CF_DEFLATE)
        pmd_frames(c, &sb, 1, &sb, &iov, &unlogged);
    deliver(w, c, &sb, 1, &iov, iov.iov_len);
}

/* Visits subscriber i of ch: sends it frames [its seq, head). */
static void visit(struct worker *w, struct channel *ch, uint32_t i)
{
    struct sub *s = &ch->subs[i];
    uint32_t from = s->seq, to = ch->head;
    struct conn *c = &w->conns[s->fd];
    s->seq = to;
    while (from != to && c->state == CONN_OPEN) {
        uint32_t at = from & (ch->log_cap - 1);
        uint32_t n = to - from;
        if (n > ch->log_cap - at)
            n = ch->log_cap - at; /* up to the end of the circular array */
        if (n > MAX_IOV)
            n = MAX_IOV;
        if (c->flags & CF_DEFLATE) { /* permessage-deflate: the frames' compressed twins */
            struct shbuf *zb[TWIN_IOV];
            struct iovec ziov[TWIN_IOV];
            n = n < TWIN_IOV ? n : TWIN_IOV;
            size_t ztotal = pmd_frames(c, &ch->log[at], (int)n, zb, ziov, &w->log_bytes);
            deliver(w, c, zb, (int)n, ziov, ztotal);
            from += n;
            continue;
        }
        size_t total = 0;
        for (uint32_t k = 0; k < n; k++)
            total += ch->log_iov[at + k].iov_len;
        deliver(w, c, &ch->log[at], (int)n, &ch->log_iov[at], total);
        from += n;
    }
}

/* The end of ch's pass: frames everyone has had are freed; another pass
 * starts if frames arrived during this one. Pops ch off the active list. */
static void pass_end(struct worker *w, struct channel *ch)
{
    w->active = ch->active_next;
    if (!w->active)
        w->active_tail = NULL;
    /* A pass's length bounds how long a message waits for its subscriber's
     * turn: operators see it in the status, the benchmark reports it. */
    uint64_t us = (mono_ns() - ch->pass_began) / 1000;
    shm_add(&w->slot->fanout_passes, 1);
    shm_add(&w->slot->fanout_pass_us, us);
    atomic_store_explicit(&w->slot->fanout_pass_last_us, us, memory_order_relaxed);
    metrics_observe_pass(w, us, ch->log, ch->log_cap, ch->tail, ch->pass_start);
    log_trim(w, ch, ch->pass_start);
    if (ch->head != ch->pass_start && ch->nsubs) {
        activate(w, ch); /* at the end of the list: channels take turns */
        return;
    }
    ch->active = 0;
    fanout_channel_free(w, ch);
    channels_maybe_free(w, ch);
}

/* One step of the sweep: at most `writes` subscribers served. Returns 1
 * while channels remain active. */
int fanout_sweep(struct worker *w, long writes)
{
    long visits = STEP_VISITS;
    while (w->active && writes > 0 && visits > 0) {
        struct channel *ch = w->active;
        while (ch->pos > 0 && writes > 0 && visits-- > 0) {
            uint32_t i = --ch->pos;
            if (ch->subs[i].seq == ch->head)
                continue; /* up to date: nothing to send */
            visit(w, ch, i);
            writes--;
        }
        if (ch->pos == 0)
            pass_end(w, ch);
    }
    return w->active != NULL;
}

/* ---- reading the ring ------------------------------------------------- */

/* A frame with its header written and room for len payload bytes at
 * *payload; NULL when memory is short. */
static struct shbuf *frame_alloc(unsigned opcode, size_t len, uint8_t **payload)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, opcode, 1, len);
    struct shbuf *sb = malloc(sizeof(*sb) + hl + len);
    if (!sb)
        return NULL;
    memcpy(sb->data, hdr, hl);
    sb->refs = 1;
    sb->len = (uint32_t)(hl + len);
    sb->published_ns = 0;
    sb->twin = NULL;
    *payload = sb->data + hl;
    return sb;
}

/* Copies a record's frame out of the ring; NULL (and the record counted
 * missed) when it was lapped or memory is short. Commits the record. */
static struct shbuf *record_frame(struct worker *w, const struct ring_msg *m)
{
    uint8_t *payload;
    struct shbuf *sb = frame_alloc(m->opcode, m->len, &payload);
    if (!sb || ring_copy_payload(w->ring, m, payload) == -1) {
        free(sb);
        ring_commit(&w->reader, m, 1);
        return NULL;
    }
    ring_commit(&w->reader, m, 0);
    sb->published_ns = m->published_ns;
    return sb;
}

/* The channels of a comma-separated list that have subscribers here, up
 * to (not including) `stop` when it is not NULL; pinned, since a
 * connection destroyed while we write may be the last subscriber of one. */
static int listed_channels(struct worker *w, const char *list, size_t len, const char *stop, size_t stop_len,
                           struct channel **out)
{
    int n = 0;
    size_t pos = 0, nl;
    const char *name;
    while (hs_list_next(list, len, &pos, &name, &nl)) {
        if (stop && nl == stop_len && !memcmp(name, stop, nl))
            break;
        struct channel *ch = channels_find(w, name, nl);
        if (ch && ch->nsubs && !ch->pinned) { /* pinned already: listed twice */
            ch->pinned = 1;
            out[n++] = ch;
        }
    }
    return n;
}

static void unpin(struct worker *w, struct channel **chs, int n)
{
    for (int i = 0; i < n; i++) {
        chs[i]->pinned = 0;
        channels_maybe_free(w, chs[i]);
    }
}

/* A record for a channel list: each connection subscribed to any of them
 * gets it once. The logs go out first, so order within every channel
 * holds; then one synchronous pass with per-connection marks
 * (multi-channel records are the rare case). */
static void deliver_multi(struct worker *w, const struct ring_msg *m)
{
    struct channel *chs[RING_CHANNEL_MAX / 2 + 1];
    int n = listed_channels(w, m->chan, m->chan_len, NULL, 0, chs);
    struct shbuf *sb = NULL;
    if (!n) {
        ring_commit(&w->reader, m, 0);
        return;
    }
    while (fanout_sweep(w, LONG_MAX))
        ;
    if (!(sb = record_frame(w, m)))
        goto out;
    if (!w->marks && !(w->marks = calloc((size_t)w->nconns, sizeof(*w->marks))))
        goto out;
    uint32_t gen = ++w->mark_gen ? w->mark_gen : ++w->mark_gen; /* 0 means "never marked" */
    for (int i = 0; i < n; i++) {
        struct channel *ch = chs[i];
        for (uint32_t k = ch->nsubs; k-- > 0;) {
            if (k >= ch->nsubs || w->marks[ch->subs[k].fd] == gen)
                continue;
            w->marks[ch->subs[k].fd] = gen;
            deliver_one(w, &w->conns[ch->subs[k].fd], sb);
        }
    }
out:
    if (sb)
        shbuf_unref(sb);
    unpin(w, chs, n);
}

/* 1 when c is subscribed to one of chs[0..n). */
static int subscribed_to_any(const struct conn *c, struct channel **chs, int n)
{
    const struct conn_subs *s = channel_subs_of(c);
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < n; j++)
            if (s->e[i].ch == chs[j])
                return 1;
    return 0;
}

void fanout_deliver(struct worker *w, const char *via, size_t via_len, const char *list, size_t list_len,
                    unsigned opcode, const uint8_t *payload, size_t len, uint64_t offset)
{
    if (offset && w->nenv) /* the wsmill.v1 side: its own frame, with via's offset */
        histsub_redis_frame(w, via, via_len, offset, opcode, payload, len);
    struct channel *ch = channels_find(w, via, via_len);
    if (!ch || !ch->nsubs)
        return;
    uint8_t *p;
    struct shbuf *sb = frame_alloc(opcode, len, &p);
    if (!sb) {
        shm_add(&w->slot->slow_drops, ch->nsubs);
        return;
    }
    memcpy(p, payload, len);
    if (!memchr(list, ',', list_len)) { /* one channel: into its log like a ring record */
        if (fanout_log_append(w, ch, sb) == -1)
            shm_add(&w->slot->slow_drops, ch->nsubs);
        return;
    }
    ch->pinned = 1;                   /* the drain may close its last subscriber */
    while (fanout_sweep(w, LONG_MAX)) /* what ch's log holds goes first */
        ;
    /* The channels of the list before `via` with subscribers here: those
     * subscribers get the message through the first of them. */
    struct channel *before[RING_CHANNEL_MAX / 2 + 1];
    int n = listed_channels(w, list, list_len, via, via_len, before);
    for (uint32_t k = ch->nsubs; k-- > 0;) {
        if (k >= ch->nsubs)
            continue;
        struct conn *c = &w->conns[ch->subs[k].fd];
        if (!n || !subscribed_to_any(c, before, n))
            deliver_one(w, c, sb);
    }
    shbuf_unref(sb);
    unpin(w, before, n);
    unpin(w, &ch, 1);
}

void fanout_read(struct worker *w, uint64_t stop, int forced)
{
    static struct ring_msg m; /* 20 KB: not on the stack */
    for (int n = 0; forced || (n < READ_MAX_RECORDS && w->log_bytes < LOG_MAX_BYTES); n++) {
        if (!ring_peek(w->ring, &w->reader, &m) || m.seq >= stop)
            break;
        if (w->nenv) /* wsmill.v1 subscribers: their envelope frames first */
            histsub_ring_record(w, &m);
        if (memchr(m.chan, ',', m.chan_len)) {
            deliver_multi(w, &m);
            continue;
        }
        struct channel *ch = channels_find(w, m.chan, m.chan_len);
        if (!ch || !ch->nsubs) {
            ring_commit(&w->reader, &m, 0);
            continue;
        }
        struct shbuf *sb = record_frame(w, &m);
        if (sb && fanout_log_append(w, ch, sb) == -1)
            shm_add(&w->slot->slow_drops, ch->nsubs); /* no memory for the log: nobody gets it */
    }
    if (w->reader.missed != w->missed_logged) {
        /* Fell a whole ring behind (or a record was overwritten as it was
         * read): say how many messages this worker's subscribers lost. */
        log_warn("publish ring: this worker missed %llu messages (%llu in all); it fell ring_size behind "
                 "the publishers: raise ring_size or add workers",
                 (unsigned long long)(w->reader.missed - w->missed_logged),
                 (unsigned long long)w->reader.missed);
        w->missed_logged = w->reader.missed;
    }
    atomic_store_explicit(&w->slot->ring_missed, w->reader.missed, memory_order_relaxed);
    atomic_store_explicit(&w->slot->ring_lag, ring_lag(w->ring, &w->reader), memory_order_relaxed);
}
