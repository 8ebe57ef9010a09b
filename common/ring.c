/* ring.c: the shared publish ring (see ring.h for the protocol). */
#include "ring.h"

#include <errno.h>
#include <string.h>

#include "clock.h"
#include "pmutex.h"

#define REC_MAGIC 0x5752 /* "WR" */

struct rec_header {
    uint32_t total; /* whole record, header and padding included */
    uint32_t len;   /* payload bytes */
    uint8_t opcode;
    uint8_t pad;
    uint16_t chan_len;
    uint16_t magic;
    uint16_t noffs; /* 8-byte offsets between the channel name and the payload */
    uint64_t seq;
    uint64_t published_ns; /* CLOCK_MONOTONIC (system-wide) when published */
};

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

static size_t round_size(size_t size)
{
    size_t s = 64 * 1024;
    while (s < size)
        s <<= 1;
    return s;
}

size_t ring_bytes(size_t size)
{
    return sizeof(struct ring) + round_size(size);
}

int ring_init(void *mem, size_t size)
{
    struct ring *r = mem;
    memset(r, 0, sizeof(*r));
    r->size = round_size(size);
    if (pmutex_init(&r->lock) == -1)
        return -1;
    return 0;
}

size_t ring_max_payload(const struct ring *r)
{
    return (size_t)(r->size / 4);
}

static void copy_in(struct ring *r, uint64_t pos, const void *src, size_t n)
{
    uint64_t off = pos & (r->size - 1);
    size_t first = n < r->size - off ? n : (size_t)(r->size - off);
    memcpy(r->data + off, src, first);
    if (first < n)
        memcpy(r->data, (const uint8_t *)src + first, n - first);
}

static void copy_out(struct ring *r, uint64_t pos, void *dst, size_t n)
{
    uint64_t off = pos & (r->size - 1);
    size_t first = n < r->size - off ? n : (size_t)(r->size - off);
    memcpy(dst, r->data + off, first);
    if (first < n)
        memcpy((uint8_t *)dst + first, r->data, n - first);
}

static void lock(struct ring *r)
{
    if (pthread_mutex_lock(&r->lock) == EOWNERDEAD) {
        /* A writer died inside: whatever it claimed but did not finish is
         * abandoned (readers never saw head move past it). */
        atomic_store_explicit(&r->claim, atomic_load(&r->head), memory_order_relaxed);
        pthread_mutex_consistent(&r->lock);
    }
}

int64_t ring_publish(struct ring *r, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len)
{
    return ring_publish_offs(r, chan, chan_len, NULL, 0, opcode, payload, len);
}

uint64_t ring_records(struct ring *r)
{
    return atomic_load_explicit(&r->records, memory_order_acquire);
}

int64_t ring_publish_offs(struct ring *r, const char *chan, size_t chan_len, const uint64_t *offs,
                          size_t noffs, unsigned opcode, const uint8_t *payload, size_t len)
{
    if (len > ring_max_payload(r) || chan_len > RING_CHANNEL_MAX || noffs > RING_OFFS_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t ol = noffs * sizeof(uint64_t);
    struct rec_header h = {.len = (uint32_t)len,
                           .opcode = (uint8_t)opcode,
                           .chan_len = (uint16_t)chan_len,
                           .magic = REC_MAGIC,
                           .noffs = (uint16_t)noffs,
                           .published_ns = mono_ns()};
    h.total = (uint32_t)align8(sizeof(h) + chan_len + ol + len);
    lock(r);
    uint64_t start = atomic_load_explicit(&r->head, memory_order_relaxed);
    h.seq = atomic_load_explicit(&r->records, memory_order_relaxed);
    /* Claim before writing: a reader that copied bytes we are about to
     * overwrite sees the claim and discards its copy. */
    atomic_store_explicit(&r->claim, start + h.total, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    copy_in(r, start, &h, sizeof(h));
    copy_in(r, start + sizeof(h), chan, chan_len);
    if (ol)
        copy_in(r, start + sizeof(h) + chan_len, offs, ol);
    copy_in(r, start + sizeof(h) + chan_len + ol, payload, len);
    atomic_store_explicit(&r->records, h.seq + 1, memory_order_release);
    atomic_store_explicit(&r->head, start + h.total, memory_order_release);
    pthread_mutex_unlock(&r->lock);
    return (int64_t)h.seq;
}

void ring_reader_init(struct ring *r, struct ring_reader *rd)
{
    lock(r); /* head and records must agree */
    rd->pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    rd->seq = atomic_load_explicit(&r->records, memory_order_relaxed);
    pthread_mutex_unlock(&r->lock);
    rd->missed = 0;
}

int ring_pending(struct ring *r, const struct ring_reader *rd)
{
    return atomic_load_explicit(&r->head, memory_order_acquire) != rd->pos;
}

uint64_t ring_lag(struct ring *r, const struct ring_reader *rd)
{
    uint64_t n = atomic_load_explicit(&r->records, memory_order_acquire);
    return n > rd->seq ? n - rd->seq : 0;
}

/* 1 if bytes from pos on may have been overwritten since they were read. */
static int lapped(struct ring *r, uint64_t pos)
{
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&r->claim, memory_order_relaxed) - pos > r->size;
}

int ring_peek(struct ring *r, struct ring_reader *rd, struct ring_msg *m)
{
    for (;;) {
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (head == rd->pos)
            return 0;
        struct rec_header h;
        if (head - rd->pos <= r->size) {
            copy_out(r, rd->pos, &h, sizeof(h));
            size_t ol = (size_t)h.noffs * sizeof(uint64_t);
            if (h.chan_len <= RING_CHANNEL_MAX)
                copy_out(r, rd->pos + sizeof(h), m->chan, h.chan_len);
            if (h.noffs <= RING_OFFS_MAX)
                copy_out(r, rd->pos + sizeof(h) + (h.chan_len <= RING_CHANNEL_MAX ? h.chan_len : 0), m->offs,
                         ol);
            if (!lapped(r, rd->pos) && h.magic == REC_MAGIC &&
                h.total >= sizeof(h) + h.chan_len + ol + h.len && h.chan_len <= RING_CHANNEL_MAX &&
                h.noffs <= RING_OFFS_MAX) {
                if (h.seq > rd->seq)
                    rd->missed += h.seq - rd->seq;
                rd->seq = h.seq;
                m->seq = h.seq;
                m->opcode = h.opcode;
                m->chan_len = h.chan_len;
                m->len = h.len;
                m->noffs = h.noffs;
                m->published_ns = h.published_ns;
                m->pos = rd->pos + sizeof(h) + h.chan_len + ol;
                return 1;
            }
        }
        /* Lapped: the writers overtook us by a whole ring, and a byte ring
         * has no boundaries to resynchronise on but the head. Skip to it
         * and count everything in between as missed (head and records
         * read together, under the writers' lock). */
        lock(r);
        uint64_t records = atomic_load_explicit(&r->records, memory_order_relaxed);
        rd->pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        pthread_mutex_unlock(&r->lock);
        if (records > rd->seq)
            rd->missed += records - rd->seq;
        rd->seq = records;
    }
}

/* Where m's record starts in the ring. */
static uint64_t rec_start(const struct ring_msg *m)
{
    return m->pos - sizeof(struct rec_header) - m->chan_len - (uint64_t)m->noffs * sizeof(uint64_t);
}

int ring_copy_payload(struct ring *r, const struct ring_msg *m, uint8_t *out)
{
    copy_out(r, m->pos, out, m->len);
    return lapped(r, rec_start(m)) ? -1 : 0;
}

void ring_commit(struct ring_reader *rd, const struct ring_msg *m, int lost)
{
    uint64_t start = rec_start(m);
    rd->pos = start + align8(sizeof(struct rec_header) + m->chan_len + m->noffs * sizeof(uint64_t) + m->len);
    rd->seq = m->seq + 1;
    if (lost)
        rd->missed++;
}
