/* history.c: the shared-memory history store (see history.h). */
#include "history.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "handshake.h"
#include "pmutex.h"

static uint64_t pow2_at_least(uint64_t n, uint64_t min)
{
    uint64_t s = min;
    while (s < n)
        s <<= 1;
    return s;
}

static uint64_t align64(uint64_t n)
{
    return (n + 63) & ~(uint64_t)63;
}

/* Area sizes for given parameters: filled into h when init is set. */
static size_t layout(struct history *h, uint32_t nchan, uint32_t cap, uint64_t data)
{
    uint64_t nc = pow2_at_least(nchan ? nchan : 1, HISTORY_PROBE);
    uint64_t ds = cap ? pow2_at_least(data, 64 * 1024) : 0;
    uint64_t chan_off = align64(sizeof(struct history));
    uint64_t entry_off = align64(chan_off + nc * sizeof(struct history_chan));
    uint64_t subs_off = align64(entry_off + nc * cap * sizeof(struct history_entry));
    uint64_t data_off = (subs_off + HISTORY_WORKERS * nc * sizeof(int32_t) + 4095) & ~(uint64_t)4095;
    if (h) {
        h->nchan = (uint32_t)nc;
        h->cap = cap;
        h->data_size = ds;
        h->chan_off = chan_off;
        h->entry_off = entry_off;
        h->subs_off = subs_off;
        h->data_off = data_off;
        h->total = data_off + ds;
    }
    return (size_t)(data_off + ds);
}

size_t history_bytes(uint32_t nchan, uint32_t cap, uint64_t data)
{
    return layout(NULL, nchan, cap, data);
}

int history_init(void *mem, uint32_t nchan, uint32_t cap, uint64_t data, uint64_t seed)
{
    struct history *h = mem;
    memset(h, 0, sizeof(*h));
    layout(h, nchan, cap, data);
    h->seed = seed;
    if (pmutex_init(&h->lock) == -1)
        return -1;
    h->layout = HISTORY_LAYOUT;
    h->magic = HISTORY_MAGIC;
    return 0;
}

int history_compatible(const void *mem, size_t len, uint32_t nchan, uint32_t cap, uint64_t data)
{
    const struct history *h = mem;
    struct history want;
    if (len < sizeof(*h) || h->magic != HISTORY_MAGIC || h->layout != HISTORY_LAYOUT)
        return 0;
    layout(&want, nchan, cap, data);
    return h->nchan == want.nchan && h->cap == want.cap && h->data_size == want.data_size &&
           h->total == want.total && len >= h->total;
}

size_t history_max_payload(const struct history *h)
{
    return (size_t)(h->data_size / 4);
}

const char *history_result_name(int r)
{
    static const char *const names[] = {"recovered", "epoch", "too_old", "ahead"};
    return r >= 0 && r <= HISTORY_AHEAD ? names[r] : "unknown";
}

void history_lock(struct history *h)
{
    if (pthread_mutex_lock(&h->lock) == EOWNERDEAD) {
        /* A publisher died inside. Each step it takes (payload, entry,
         * top) leaves a state the readers accept: at worst one offset is
         * assigned with no entry behind it, and a resume across it is told
         * "not recovered". */
        pthread_mutex_consistent(&h->lock);
    }
}

void history_unlock(struct history *h)
{
    pthread_mutex_unlock(&h->lock);
}

static struct history_chan *chans(struct history *h)
{
    return (struct history_chan *)((char *)h + h->chan_off);
}

static struct history_entry *entry(struct history *h, const struct history_chan *ch, uint64_t offset)
{
    uint64_t slot = (uint64_t)(ch - chans(h));
    struct history_entry *e = (struct history_entry *)((char *)h + h->entry_off);
    return &e[slot * h->cap + (offset - 1) % h->cap];
}

static uint64_t mix64(uint64_t x) /* splitmix64's finaliser */
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

struct history_chan *history_chan_get_locked(struct history *h, const char *name, size_t n, int64_t now_ms)
{
    if (n > HISTORY_NAME_MAX)
        return NULL;
    struct history_chan *t = chans(h), *victim = NULL;
    uint64_t at = hash_name(name, n);
    for (int i = 0; i < HISTORY_PROBE; i++) {
        struct history_chan *ch = &t[(at + (uint64_t)i) & (h->nchan - 1)];
        if (ch->epoch && ch->name_len == n && !memcmp(ch->name, name, n))
            return ch;
        if (!victim || (victim->epoch && (!ch->epoch || ch->last_ms < victim->last_ms)))
            victim = ch;
    }
    if (victim->epoch)
        h->evictions++;
    /* Entries of the slot's previous channel must not be served as ours:
     * an entry counts only when its offset matches, and a new epoch starts
     * at offset 1, so clear them. */
    if (h->cap)
        memset(entry(h, victim, 1), 0, h->cap * sizeof(struct history_entry));
    uint64_t epoch;
    do
        epoch = mix64(h->seed + ++h->epochs_made);
    while (!epoch);
    victim->top = 0;
    victim->last_ms = now_ms;
    victim->name_len = (uint32_t)n;
    memcpy(victim->name, name, n);
    victim->epoch = epoch;
    return victim;
}

struct history_chan *history_chan_find_locked(struct history *h, const char *name, size_t n)
{
    struct history_chan *t = chans(h);
    uint64_t at = hash_name(name, n);
    for (int i = 0; i < HISTORY_PROBE && n <= HISTORY_NAME_MAX; i++) {
        struct history_chan *ch = &t[(at + (uint64_t)i) & (h->nchan - 1)];
        if (ch->epoch && ch->name_len == n && !memcmp(ch->name, name, n))
            return ch;
    }
    return NULL;
}

uint32_t history_chan_index(const struct history *h, const struct history_chan *ch)
{
    return (uint32_t)(ch - (const struct history_chan *)((const char *)h + h->chan_off));
}

static _Atomic int32_t *subs_col(const struct history *h, int worker)
{
    return (_Atomic int32_t *)((char *)h + h->subs_off) + (size_t)worker * h->nchan;
}

void history_subs_set(struct history *h, int worker, uint32_t idx, int32_t n)
{
    if (worker >= 0 && worker < HISTORY_WORKERS && idx < h->nchan)
        atomic_store_explicit(&subs_col(h, worker)[idx], n, memory_order_relaxed);
}

void history_subs_clear(struct history *h, int worker)
{
    if (worker < 0 || worker >= HISTORY_WORKERS)
        return;
    _Atomic int32_t *col = subs_col(h, worker);
    for (uint32_t i = 0; i < h->nchan; i++)
        if (atomic_load_explicit(&col[i], memory_order_relaxed)) /* untouched pages stay untouched */
            atomic_store_explicit(&col[i], 0, memory_order_relaxed);
}

int64_t history_subs_sum(const struct history *h, uint32_t idx, const uint8_t *live)
{
    int64_t n = 0;
    for (int w = 0; w < HISTORY_WORKERS && idx < h->nchan; w++)
        if (live[w])
            n += atomic_load_explicit(&subs_col(h, w)[idx], memory_order_relaxed);
    return n;
}

/* 1 when the entry for offset o of ch can be served. */
static int held(struct history *h, const struct history_chan *ch, uint64_t o, int64_t now_ms, int64_t ttl_ms)
{
    if (!h->cap || o == 0 || o > ch->top || ch->top - o >= h->cap)
        return 0;
    const struct history_entry *e = entry(h, ch, o);
    if (e->offset != o || e->lost)
        return 0;
    if (ttl_ms > 0 && now_ms - e->time_ms > ttl_ms)
        return 0;
    return h->data_head - e->pos <= h->data_size; /* not overwritten by newer payloads */
}

uint64_t history_first_locked(struct history *h, const struct history_chan *ch, int64_t now_ms,
                              int64_t ttl_ms)
{
    /* Entries are written in offset order and expire in that order, so the
     * held ones are one run ending at top: search back from it. */
    uint64_t o = ch->top;
    while (o > 0 && held(h, ch, o, now_ms, ttl_ms))
        o--;
    return o + 1;
}

enum history_result history_check_locked(struct history *h, const struct history_chan *ch, uint64_t epoch,
                                         uint64_t since, int64_t now_ms, int64_t ttl_ms)
{
    if (epoch != ch->epoch)
        return HISTORY_EPOCH;
    if (since > ch->top)
        return HISTORY_AHEAD;
    if (since == ch->top)
        return HISTORY_RECOVERED;
    return history_first_locked(h, ch, now_ms, ttl_ms) <= since + 1 ? HISTORY_RECOVERED : HISTORY_TOO_OLD;
}

uint32_t history_each_locked(struct history *h, const struct history_chan *ch, uint64_t since, uint64_t to,
                             uint32_t limit, int64_t now_ms, int64_t ttl_ms, history_fn fn, void *arg)
{
    if (to > ch->top)
        to = ch->top;
    uint64_t o = history_first_locked(h, ch, now_ms, ttl_ms);
    if (o <= since)
        o = since + 1;
    uint32_t n = 0;
    const uint8_t *data = (const uint8_t *)h + h->data_off;
    for (; o <= to && n < limit; o++) {
        const struct history_entry *e = entry(h, ch, o);
        uint64_t off = e->pos & (h->data_size - 1);
        size_t first = e->len < h->data_size - off ? e->len : (size_t)(h->data_size - off);
        struct iovec piece[2] = {{(void *)(data + off), first}, {(void *)data, e->len - first}};
        n++;
        if (fn(arg, o, e->opcode, piece, e->len > first ? 2 : 1) == -1)
            break;
    }
    return n;
}

/* Keeps one payload for offset o of ch (locked). */
static void keep(struct history *h, struct history_chan *ch, uint64_t o, unsigned opcode,
                 const uint8_t *payload, size_t len, int64_t now_ms)
{
    struct history_entry *e = entry(h, ch, o);
    e->offset = 0; /* a death below leaves no half-written entry that matches */
    e->opcode = (uint8_t)opcode;
    e->time_ms = now_ms;
    e->len = (uint32_t)len;
    e->lost = len > history_max_payload(h);
    e->pos = h->data_head;
    if (!e->lost) {
        uint8_t *data = (uint8_t *)h + h->data_off;
        uint64_t off = h->data_head & (h->data_size - 1);
        size_t first = len < h->data_size - off ? len : (size_t)(h->data_size - off);
        if (first)
            memcpy(data + off, payload, first);
        if (len > first)
            memcpy(data, payload + first, len - first);
        h->data_head += (len + 7) & ~(size_t)7;
    }
    e->offset = o;
}

int history_publish(struct history *h, struct ring *r, const char *list, size_t list_len, unsigned opcode,
                    const uint8_t *payload, size_t len, int64_t now_ms, uint64_t *offs)
{
    struct history_chan *hc[RING_OFFS_MAX];
    size_t pos = 0, nl;
    int n = 0;
    const char *name;
    if (len > ring_max_payload(r) || list_len > RING_CHANNEL_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    history_lock(h);
    while (n < RING_OFFS_MAX && hs_list_next(list, list_len, &pos, &name, &nl)) {
        hc[n] = history_chan_get_locked(h, name, nl, now_ms);
        if (!hc[n])
            continue;
        /* A channel listed twice ("a,a") would otherwise take two offsets
         * from one record; the reader delivers it once. */
        int dup = 0;
        for (int k = 0; k < n && !dup; k++)
            dup = hc[k] == hc[n];
        offs[n] = dup ? hc[n]->top : hc[n]->top + 1;
        if (!dup && h->cap)
            keep(h, hc[n], offs[n], opcode, payload, len, now_ms);
        if (!dup) {
            hc[n]->top = offs[n];
            hc[n]->last_ms = now_ms;
            h->published++;
        }
        n++;
    }
    if (ring_publish_offs(r, list, list_len, offs, (size_t)n, opcode, payload, len) < 0) {
        history_unlock(h);
        return -1; /* cannot happen after the checks above; the offsets stay assigned (a gap) */
    }
    history_unlock(h);
    return n;
}
