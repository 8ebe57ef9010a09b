/* ring.h: the publish ring in shared memory, through which a message
 * published on any worker reaches the subscribers on every worker.
 *
 * A byte ring of records (header, channel name, payload), totally ordered,
 * so order per channel per publisher holds. Writers (any worker) append
 * under a robust process-shared mutex: a short memcpy, and a writer that
 * dies holding it does not wedge the others. Readers take no lock: each
 * worker keeps its own position and copies records out; a record the
 * writers lapped while it was being read is detected (the claim counter
 * moved more than a ring's length past it) and counted as missed, never
 * delivered torn. A reader that falls a whole ring behind skips to the
 * head and counts every record it skipped instead of blocking anyone. */
#ifndef WSMILL_RING_H
#define WSMILL_RING_H
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A record names one channel or a comma-separated list ("a,b"): a message
 * published to several channels is one record, so a connection subscribed
 * to more than one of them receives it once. */
#define RING_CHANNEL_MAX 4096
/* A record may carry one 64-bit offset per channel of its list (the
 * channel's history position, common/history.c); at most this many. */
#define RING_OFFS_MAX 2048

struct ring {
    uint64_t size;                       /* bytes of data[], a power of two */
    pthread_mutex_t lock;                /* writers only; robust, process-shared */
    _Alignas(64) _Atomic uint64_t claim; /* end of the space writers have taken */
    _Alignas(64) _Atomic uint64_t head;  /* end of what is fully written */
    _Atomic uint64_t records;            /* records fully written, ever */
    _Alignas(64) uint8_t data[];
};

/* What a reader gets for one record: pointers into the caller's copy. */
struct ring_msg {
    uint64_t seq;   /* record number, from 0 */
    uint8_t opcode; /* WS_OP_TEXT or WS_OP_BINARY */
    uint16_t chan_len;
    char chan[RING_CHANNEL_MAX]; /* a channel or a comma-separated list */
    uint32_t len;                /* payload bytes */
    uint64_t pos;                /* where the payload starts in the ring */
    uint64_t published_ns;       /* mono_ns() of the publisher (one clock for all processes) */
    uint16_t noffs;              /* offsets carried: 0, or one per channel of chan */
    uint64_t offs[RING_OFFS_MAX];
};

struct ring_reader {
    uint64_t pos;    /* next record's byte position */
    uint64_t seq;    /* next record's number */
    uint64_t missed; /* records lost to lapping, ever */
};

/* Bytes a ring with `size` data bytes needs (size rounded up to a power of
 * two, at least 64 KiB). */
size_t ring_bytes(size_t size);
/* Initialises a ring in mem (ring_bytes(size) bytes of shared memory).
 * Returns 0, or -1 with errno when the mutex cannot be set up. */
int ring_init(void *mem, size_t size);

/* Largest payload ring_publish accepts for a ring: a quarter of it, so
 * one record can never lap a reader by itself. */
size_t ring_max_payload(const struct ring *r);

/* Appends one record. Returns its sequence number (>= 0), or -1 with errno
 * EMSGSIZE (payload over ring_max_payload or chan over RING_CHANNEL_MAX). */
int64_t ring_publish(struct ring *r, const char *chan, size_t chan_len, unsigned opcode,
                     const uint8_t *payload, size_t len);
/* The same, with noffs (<= RING_OFFS_MAX) offsets the reader gets back in
 * ring_msg.offs. */
int64_t ring_publish_offs(struct ring *r, const char *chan, size_t chan_len, const uint64_t *offs,
                          size_t noffs, unsigned opcode, const uint8_t *payload, size_t len);
/* Records fully written, ever (the next record's number). */
uint64_t ring_records(struct ring *r);

/* A new reader starts at the current head: it sees what is published from
 * now on. */
void ring_reader_init(struct ring *r, struct ring_reader *rd);
/* 1 when records are waiting for rd. */
int ring_pending(struct ring *r, const struct ring_reader *rd);
/* Reads the next record's header into *m. Returns 1 (got one; payload not
 * yet copied: use ring_copy_payload, then ring_commit), 0 (nothing new).
 * Records lost to lapping are skipped and added to rd->missed. */
int ring_peek(struct ring *r, struct ring_reader *rd, struct ring_msg *m);
/* Copies m's payload into out (m->len bytes). Returns 0, or -1 when the
 * writers lapped it meanwhile (the copy is garbage; ring_commit counts it
 * missed). */
int ring_copy_payload(struct ring *r, const struct ring_msg *m, uint8_t *out);
/* Moves rd past the record last peeked; lost = 1 if its payload was lapped. */
void ring_commit(struct ring_reader *rd, const struct ring_msg *m, int lost);
/* Records between rd and the head (how far behind it is). */
uint64_t ring_lag(struct ring *r, const struct ring_reader *rd);

#endif
