/* channels.c: subscriptions and fan-out.
 *
 * A publish goes into the shared ring (common/ring.c); every worker drains
 * the ring once per loop iteration (ev_prepare), so whatever arrived since
 * the last iteration is one round. For each channel touched in a round the
 * frames are built once (struct shbuf) and each subscriber gets them in a
 * single writev: a round over 10,000 subscribers costs 10,000 syscalls
 * however many messages it carries. Only what a socket refuses is queued,
 * by reference, and the slow_consumer policy bounds that queue. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/handshake.h"
#include "../common/log.h"
#include "internal.h"

#define ROUND_MAX_RECORDS 256        /* frames per round: bounds a writev and a round's latency */
#define ROUND_MAX_BYTES   (4u << 20) /* and the memory a round pins */

struct channel {
    struct channel *next; /* hash chain */
    uint32_t *subs;       /* fds of subscribers */
    uint32_t nsubs, cap;
    struct shbuf *batch[ROUND_MAX_RECORDS];
    uint32_t nbatch;
    size_t batch_bytes;
    struct channel *touched_next;
    uint8_t touched;
    uint8_t name_len;
    char name[];
};

void shbuf_unref(struct shbuf *b)
{
    if (--b->refs == 0)
        free(b);
}

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct channel **bucket(struct worker *w, const char *name, size_t n)
{
    return &w->buckets[hash_name(name, n) & (w->nbuckets - 1)];
}

static struct channel *channel_find(struct worker *w, const char *name, size_t n)
{
    for (struct channel *ch = *bucket(w, name, n); ch; ch = ch->next)
        if (ch->name_len == n && !memcmp(ch->name, name, n))
            return ch;
    return NULL;
}

static void rehash(struct worker *w)
{
    uint32_t nb = w->nbuckets * 2;
    struct channel **nbk = calloc(nb, sizeof(*nbk));
    if (!nbk)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < w->nbuckets; i++) {
        struct channel *ch = w->buckets[i];
        while (ch) {
            struct channel *next = ch->next;
            struct channel **b = &nbk[hash_name(ch->name, ch->name_len) & (nb - 1)];
            ch->next = *b;
            *b = ch;
            ch = next;
        }
    }
    free(w->buckets);
    w->buckets = nbk;
    w->nbuckets = nb;
}

static struct channel *channel_get(struct worker *w, const char *name, size_t n)
{
    struct channel *ch = channel_find(w, name, n);
    if (ch)
        return ch;
    ch = calloc(1, sizeof(*ch) + n);
    if (!ch)
        return NULL;
    memcpy(ch->name, name, n);
    ch->name_len = (uint8_t)n;
    if (w->nchannels >= w->nbuckets)
        rehash(w);
    struct channel **b = bucket(w, name, n);
    ch->next = *b;
    *b = ch;
    w->nchannels++;
    shm_add(&w->slot->channels, 1);
    return ch;
}

/* Frees a channel nobody is subscribed to (not while a round uses it). */
static void channel_maybe_free(struct worker *w, struct channel *ch)
{
    if (ch->nsubs || ch->touched)
        return;
    struct channel **pp = bucket(w, ch->name, ch->name_len);
    while (*pp != ch)
        pp = &(*pp)->next;
    *pp = ch->next;
    free(ch->subs);
    free(ch);
    w->nchannels--;
    shm_sub(&w->slot->channels, 1);
}

static int channel_add(struct channel *ch, uint32_t fd, uint32_t *idx)
{
    if (ch->nsubs == ch->cap) {
        uint32_t cap = ch->cap ? ch->cap * 2 : 4;
        uint32_t *s = realloc(ch->subs, cap * sizeof(*s));
        if (!s)
            return -1;
        ch->subs = s;
        ch->cap = cap;
    }
    *idx = ch->nsubs;
    ch->subs[ch->nsubs++] = fd;
    return 0;
}

int channels_subscribe(struct conn *c, const char *list, size_t len)
{
    struct worker *w = conn_worker(c);
    uint16_t off[1024];
    uint8_t lens[1024];
    int n = hs_channel_list(list, len, (int)w->cfg.max_channels_per_conn, off, lens);
    if (n <= 0)
        return -1;
    struct conn_subs *s = malloc(sizeof(*s) + (size_t)n * sizeof(s->e[0]));
    if (!s)
        return -1;
    s->n = 0;
    c->subs = s;
    for (int i = 0; i < n; i++) {
        int dup = 0; /* /ch/A,A joins A once */
        for (int j = 0; j < s->n && !dup; j++)
            dup = s->e[j].ch->name_len == lens[i] && !memcmp(s->e[j].ch->name, list + off[i], lens[i]);
        if (dup)
            continue;
        struct channel *ch = channel_get(w, list + off[i], lens[i]);
        if (!ch || channel_add(ch, (uint32_t)conn_fd(c), &s->e[s->n].idx) == -1) {
            if (ch)
                channel_maybe_free(w, ch);
            return -1; /* the caller destroys c, which unsubscribes what was done */
        }
        s->e[s->n++].ch = ch;
        w->nsubscriptions++;
        shm_add(&w->slot->subscriptions, 1);
    }
    return 0;
}

void channels_unsubscribe_all(struct conn *c)
{
    struct conn_subs *s = c->subs;
    if (!s)
        return;
    struct worker *w = conn_worker(c);
    for (int i = 0; i < s->n; i++) {
        struct channel *ch = s->e[i].ch;
        uint32_t idx = s->e[i].idx;
        uint32_t last = ch->subs[--ch->nsubs];
        if (idx != ch->nsubs) {
            /* Move the last subscriber into the hole and fix its index. */
            ch->subs[idx] = last;
            struct conn_subs *ms = w->conns[last].subs;
            for (int j = 0; j < ms->n; j++)
                if (ms->e[j].ch == ch)
                    ms->e[j].idx = idx;
        }
        w->nsubscriptions--;
        shm_sub(&w->slot->subscriptions, 1);
        channel_maybe_free(w, ch);
    }
    free(s);
    c->subs = NULL;
}

/* Wakes every worker that said it is about to sleep. */
static void wake_sleepers(struct worker *w)
{
    for (int word = 0; word < SHM_MAX_WORKERS / 64; word++) {
        if (!atomic_load_explicit(&w->shm->ring_sleepers[word], memory_order_relaxed))
            continue;
        uint64_t bits = atomic_exchange(&w->shm->ring_sleepers[word], 0);
        while (bits) {
            int bit = __builtin_ctzll(bits);
            bits &= bits - 1;
            int slot = word * 64 + bit;
            pid_t pid = atomic_load(&w->shm->slots[slot].pid);
            if (slot != w->id && pid > 0)
                kill(pid, SIGURG);
        }
    }
}

int channels_publish(struct worker *w, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len)
{
    if (ring_publish(w->ring, chan, chan_len, opcode, payload, len) < 0) {
        shm_add(&w->slot->publish_rejected, 1);
        return -1;
    }
    shm_add(&w->slot->publishes, 1);
    wake_sleepers(w);
    ev_idle_start(w->loop, &w->ring_idle); /* deliver locally this iteration */
    return 0;
}

void channels_client_message(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len)
{
    struct worker *w = conn_worker(c);
    if (!w->cfg.client_publish) {
        shm_add(&w->slot->publish_rejected, 1);
        conn_fail(c, WS_CLOSE_POLICY, "client publish is off (client_publish)");
        return;
    }
    /* One record naming all its channels: a connection in several of them
     * gets the message once. */
    struct conn_subs *s = c->subs;
    char list[RING_CHANNEL_MAX];
    size_t n = 0;
    for (int i = 0; i < s->n && n + s->e[i].ch->name_len + 1 <= sizeof(list); i++) {
        if (n)
            list[n++] = ',';
        memcpy(list + n, s->e[i].ch->name, s->e[i].ch->name_len);
        n += s->e[i].ch->name_len;
    }
    if (channels_publish(w, list, n, opcode, payload, len) == -1)
        conn_fail(c, WS_CLOSE_TOO_BIG, "message larger than the publish ring accepts (ring_size / 4)");
}

/* Sends frames (bufs, also laid out in iov) to one subscriber: one writev
 * when nothing is queued for it, else behind what is. */
static void deliver(struct worker *w, struct conn *c, struct shbuf **bufs, int n, struct iovec *iov,
                    size_t total)
{
    if (c->state != CONN_OPEN)
        return;
    size_t queued = conn_queued(c);
    size_t sent = 0;
    if (!queued) {
        ssize_t wr = writev(conn_fd(c), iov, n);
        if (wr == -1 && errno != EAGAIN && errno != EINTR) {
            conn_destroy(c, WS_CLOSE_ABNORMAL);
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
        conn_overflow_close(c, WS_CLOSE_TRY_AGAIN, "slow consumer: max_backpressure exceeded");
        return;
    }
    shm_add(&w->slot->deliveries, (uint64_t)n);
    conn_queue_shared(c, bufs, n, sent);
}

static void fanout(struct worker *w, struct channel *ch)
{
    struct iovec iov[ROUND_MAX_RECORDS];
    size_t total = 0;
    for (uint32_t i = 0; i < ch->nbatch; i++) {
        iov[i] = (struct iovec){ch->batch[i]->data, ch->batch[i]->len};
        total += ch->batch[i]->len;
    }
    /* Backwards: a subscriber destroyed here swaps the last one (already
     * served) into its place. */
    for (uint32_t i = ch->nsubs; i-- > 0;) {
        if (i >= ch->nsubs)
            continue;
        deliver(w, &w->conns[ch->subs[i]], ch->batch, (int)ch->nbatch, iov, total);
    }
    for (uint32_t i = 0; i < ch->nbatch; i++)
        shbuf_unref(ch->batch[i]);
    ch->nbatch = 0;
    ch->batch_bytes = 0;
}

static void flush_batches(struct worker *w)
{
    while (w->touched) {
        struct channel *ch = w->touched;
        w->touched = ch->touched_next;
        fanout(w, ch); /* still marked touched: subscribers leaving cannot free it */
        ch->touched = 0;
        channel_maybe_free(w, ch);
    }
}

/* Copies a record's frame out of the ring; NULL (and the record counted
 * missed) when it was lapped or memory is short. Commits the record. */
static struct shbuf *record_frame(struct worker *w, const struct ring_msg *m)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, m->opcode, 1, m->len);
    struct shbuf *sb = malloc(sizeof(*sb) + hl + m->len);
    if (!sb || ring_copy_payload(w->ring, m, sb->data + hl) == -1) {
        free(sb);
        ring_commit(&w->reader, m, 1);
        return NULL;
    }
    ring_commit(&w->reader, m, 0);
    memcpy(sb->data, hdr, hl);
    sb->refs = 1;
    sb->len = (uint32_t)(hl + m->len);
    return sb;
}

/* A record for a channel list: each connection subscribed to any of them
 * gets it once. Batches first, so order within every channel holds. */
static void deliver_multi(struct worker *w, const struct ring_msg *m)
{
    int any = 0;
    for (size_t i = 0, start = 0; i <= m->chan_len; i++) {
        if (i < m->chan_len && m->chan[i] != ',')
            continue;
        struct channel *ch = channel_find(w, m->chan + start, i - start);
        any |= ch && ch->nsubs;
        start = i + 1;
    }
    if (!any) {
        ring_commit(&w->reader, m, 0);
        return;
    }
    flush_batches(w);
    struct shbuf *sb = record_frame(w, m);
    if (!sb)
        return;
    if (!w->marks && !(w->marks = calloc((size_t)w->nconns, sizeof(*w->marks)))) {
        shbuf_unref(sb);
        return;
    }
    uint32_t gen = ++w->mark_gen ? w->mark_gen : ++w->mark_gen; /* 0 means "never marked" */
    struct iovec iov = {sb->data, sb->len};
    for (size_t i = 0, start = 0; i <= m->chan_len; i++) {
        if (i < m->chan_len && m->chan[i] != ',')
            continue;
        struct channel *ch = channel_find(w, m->chan + start, i - start);
        start = i + 1;
        if (!ch)
            continue;
        ch->touched = 1; /* pin it while subscribers may leave */
        for (uint32_t k = ch->nsubs; k-- > 0;) {
            if (k >= ch->nsubs || w->marks[ch->subs[k]] == gen)
                continue;
            w->marks[ch->subs[k]] = gen;
            deliver(w, &w->conns[ch->subs[k]], &sb, 1, &iov, sb->len);
        }
        ch->touched = 0;
        channel_maybe_free(w, ch);
    }
    shbuf_unref(sb);
}

/* Reads one record into its channel's batch. Returns 0, or -1 when the
 * round is full. */
static int batch_record(struct worker *w, const struct ring_msg *m, size_t *bytes)
{
    if (memchr(m->chan, ',', m->chan_len)) {
        deliver_multi(w, m);
        return 0;
    }
    struct channel *ch = channel_find(w, m->chan, m->chan_len);
    if (!ch || !ch->nsubs) {
        ring_commit(&w->reader, m, 0);
        return 0;
    }
    if (ch->nbatch == ROUND_MAX_RECORDS || *bytes + m->len > ROUND_MAX_BYTES)
        return -1;
    struct shbuf *sb = record_frame(w, m);
    if (!sb)
        return 0;
    ch->batch[ch->nbatch++] = sb;
    *bytes += sb->len;
    if (!ch->touched) { /* appended: channels fan out in the order they were published to */
        ch->touched = 1;
        ch->touched_next = NULL;
        if (w->touched)
            w->touched_tail->touched_next = ch;
        else
            w->touched = ch;
        w->touched_tail = ch;
    }
    return 0;
}

/* One round: batch what the ring holds (bounded), then fan out. */
static void round_run(struct worker *w)
{
    struct ring_msg m;
    size_t bytes = 0;
    int n = 0;
    while (n < ROUND_MAX_RECORDS && ring_peek(w->ring, &w->reader, &m)) {
        if (batch_record(w, &m, &bytes) == -1)
            break;
        n++;
    }
    flush_batches(w);
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

static void prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct worker *w = container_of(p, struct worker, ring_prepare);
    if (ring_pending(w->ring, &w->reader))
        round_run(w);
    if (ring_pending(w->ring, &w->reader)) {
        ev_idle_start(loop, &w->ring_idle); /* more than a round: don't block */
        return;
    }
    /* About to block: ask publishers for a wake-up, then look once more so
     * a record published in between is not left waiting. */
    uint64_t bit = 1ull << (w->id % 64);
    atomic_fetch_or(&w->shm->ring_sleepers[w->id / 64], bit);
    if (ring_pending(w->ring, &w->reader))
        ev_idle_start(loop, &w->ring_idle);
}

static void check_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = container_of(c, struct worker, ring_check);
    uint64_t bit = 1ull << (w->id % 64);
    if (atomic_load_explicit(&w->shm->ring_sleepers[w->id / 64], memory_order_relaxed) & bit)
        atomic_fetch_and(&w->shm->ring_sleepers[w->id / 64], ~bit);
}

static void idle_cb(struct ev_loop *loop, ev_idle *i, int revents)
{
    (void)revents;
    ev_idle_stop(loop, i); /* its only job was to keep the loop from blocking */
}

static void urg_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)s;
    (void)revents; /* the wake-up itself is the message: prepare_cb reads the ring */
}

void channels_init(struct worker *w)
{
    /* Gauges of a predecessor that died in this slot describe nothing now. */
    atomic_store(&w->slot->channels, 0);
    atomic_store(&w->slot->subscriptions, 0);
    atomic_store(&w->slot->ring_lag, 0);
    w->ring = shm_ring(w->shm);
    ring_reader_init(w->ring, &w->reader);
    w->nbuckets = 64;
    w->buckets = calloc(w->nbuckets, sizeof(*w->buckets));
    if (!w->buckets) {
        log_crit("out of memory for the channel table");
        abort();
    }
    ev_prepare_init(&w->ring_prepare, prepare_cb);
    ev_prepare_start(w->loop, &w->ring_prepare);
    ev_check_init(&w->ring_check, check_cb);
    ev_check_start(w->loop, &w->ring_check);
    ev_idle_init(&w->ring_idle, idle_cb);
    ev_signal_init(&w->sig_urg, urg_cb, SIGURG);
    ev_signal_start(w->loop, &w->sig_urg);
}
