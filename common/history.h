/* history.h: per-channel message history in shared memory (broker = local).
 *
 * Every message published to a channel gets that channel's next offset
 * (1, 2, 3, ...: dense, so a client sees a gap) within the channel's epoch,
 * a 64-bit value that changes whenever the channel's history is lost (a new
 * store after a master restart, or the channel's slot reused for another
 * channel), so an old offset is never mistaken for a new one.
 *
 * Layout (one mapping, fixed, no pointers; made by the master, inherited by
 * its workers and, as a memfd, by the next master of a binary upgrade):
 *     struct history | channel slots [nchan] | entries [nchan][cap] |
 *     subscriber counts [HISTORY_WORKERS][nchan] | data
 * A channel slot holds the name, epoch and last offset; its entries are an
 * index ring (offset o at entry (o - 1) % cap) pointing into one shared
 * byte log (data) where payloads are appended. An entry is served only
 * while its offset still matches, its bytes were not overwritten by newer
 * payloads, and it is younger than history_ttl. Channel slots are found by
 * hashing the name with a probe window of HISTORY_PROBE; a full window
 * reuses the slot published to least recently (a new epoch).
 *
 * One robust process-shared mutex guards everything: a publish takes it,
 * assigns offsets, keeps the payload and writes the ring record while
 * holding it, so per channel the ring order is the offset order and a
 * subscriber that reads (position, ring record count) under the lock knows
 * exactly which offsets will still come through the ring. */
#ifndef WSMILL_HISTORY_H
#define WSMILL_HISTORY_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ring.h"

#define HISTORY_MAGIC    0x5453494857534d57ULL /* "WMSWHIST" */
#define HISTORY_LAYOUT   1
#define HISTORY_PROBE    8
#define HISTORY_NAME_MAX 128
#define HISTORY_WORKERS  256 /* subscriber-count columns: one per worker slot (SHM_MAX_WORKERS) */

struct history_chan {
    uint64_t epoch;  /* 0: slot unused */
    uint64_t top;    /* last offset assigned; 0 = none yet */
    int64_t last_ms; /* last publish or creation (CLOCK_REALTIME ms): eviction order */
    uint32_t name_len;
    char name[HISTORY_NAME_MAX];
};

struct history_entry {
    uint64_t offset; /* 0: never written */
    uint64_t pos;    /* payload's byte position in the data log (ever-growing) */
    int64_t time_ms; /* when published */
    uint32_t len;
    uint8_t opcode;
    uint8_t lost; /* too large to keep: a resume across it is not recovered */
    uint16_t pad;
};

struct history {
    uint64_t magic;
    uint32_t layout;
    uint32_t nchan; /* channel slots, a power of two */
    uint32_t cap;   /* entries per channel (history_size) */
    uint32_t pad;
    uint64_t data_size; /* bytes of the data log, a power of two (0 when cap is 0) */
    uint64_t total;     /* bytes of the whole mapping */
    uint64_t seed;      /* epochs are derived from it: different for every store */
    uint64_t epochs_made;
    uint64_t data_head;                               /* bytes ever appended to the data log */
    uint64_t evictions;                               /* channel slots reused for another channel */
    uint64_t published;                               /* messages ever given an offset */
    uint64_t chan_off, entry_off, subs_off, data_off; /* areas, from the start of the mapping */
    pthread_mutex_t lock;
};

/* What a resume request gets. */
enum history_result {
    HISTORY_RECOVERED = 0, /* everything after `since` is held (or nothing was missed) */
    HISTORY_EPOCH,         /* the epoch is not the channel's: history lost since */
    HISTORY_TOO_OLD,       /* some message after `since` is no longer held */
    HISTORY_AHEAD,         /* `since` is past the channel's last offset */
};
/* A short word for r ("recovered", "epoch", "too_old", "ahead"). */
const char *history_result_name(int r);

/* Bytes a store with nchan channel slots (rounded up to a power of two),
 * cap entries each and a data log of data bytes (a power of two, at least
 * 64 KiB; none when cap is 0) needs. */
size_t history_bytes(uint32_t nchan, uint32_t cap, uint64_t data);
/* Initialises a store in mem (history_bytes(...) zeroed shared bytes) with
 * a fresh seed. Returns 0, or -1 with errno when the mutex cannot be set. */
int history_init(void *mem, uint32_t nchan, uint32_t cap, uint64_t data, uint64_t seed);
/* 1 when mem (len bytes) holds a store made with the same parameters
 * (binary upgrade: the new master keeps it), else 0. */
int history_compatible(const void *mem, size_t len, uint32_t nchan, uint32_t cap, uint64_t data);

/* Largest payload kept (a quarter of the data log; 0 without one). */
size_t history_max_payload(const struct history *h);

/* Takes and releases the store's lock; the _locked calls below need it. */
void history_lock(struct history *h);
void history_unlock(struct history *h);

/* Publishes one message to a channel list ("a" or "a,b": validated names):
 * under the lock, gives each channel its next offset (written to offs,
 * room for RING_OFFS_MAX), keeps the payload, and appends one ring record
 * carrying the offsets. Returns the number of channels, or -1 with errno
 * EMSGSIZE (the ring refused the record; nothing was assigned). */
int history_publish(struct history *h, struct ring *r, const char *list, size_t list_len, unsigned opcode,
                    const uint8_t *payload, size_t len, int64_t now_ms, uint64_t *offs);

/* Locked. The channel's slot (made, with a new epoch, when absent). Never
 * NULL for a valid name. */
struct history_chan *history_chan_get_locked(struct history *h, const char *name, size_t n, int64_t now_ms);
/* Locked. Whether a client at (epoch, since) can be caught up on ch. */
enum history_result history_check_locked(struct history *h, const struct history_chan *ch, uint64_t epoch,
                                         uint64_t since, int64_t now_ms, int64_t ttl_ms);

/* Called for each message: payload in two pieces (the log wraps). Returns
 * 0 to go on, -1 to stop. */
typedef int (*history_fn)(void *arg, uint64_t offset, unsigned opcode, const struct iovec *piece,
                          int npieces);
/* Locked. Calls fn for the held messages of ch with offsets in (since, to]
 * in order, at most limit of them, starting at the first one still held.
 * Returns how many fn got. */
uint32_t history_each_locked(struct history *h, const struct history_chan *ch, uint64_t since, uint64_t to,
                             uint32_t limit, int64_t now_ms, int64_t ttl_ms, history_fn fn, void *arg);
/* Locked. The slot of name when the store has it (never makes one), or NULL. */
struct history_chan *history_chan_find_locked(struct history *h, const char *name, size_t n);
/* ch's index in the table, for the subscriber counts. */
uint32_t history_chan_index(const struct history *h, const struct history_chan *ch);
/* Subscriber counts per channel, one column per worker slot, each written
 * by its worker only (no lock): set worker's count for channel idx; clear
 * its whole column (a worker starting in the slot of a dead one); the sum
 * over the workers whose live[w] is set. */
void history_subs_set(struct history *h, int worker, uint32_t idx, int32_t n);
void history_subs_clear(struct history *h, int worker);
int64_t history_subs_sum(const struct history *h, uint32_t idx, const uint8_t *live);
/* Locked. The oldest offset of ch still served (top + 1 when none). */
uint64_t history_first_locked(struct history *h, const struct history_chan *ch, int64_t now_ms,
                              int64_t ttl_ms);

#endif
