/* broker_local.c: broker = local. A publish is one record in the shared
 * ring (common/ring.c); every worker of this node, this one included, reads
 * it (fanout.c) and delivers it to its own subscribers. Workers never talk
 * to each other otherwise: a worker about to sleep sets its bit in
 * shm->ring_sleepers, and a publisher wakes those with SIGURG. */
#include <errno.h>
#include <signal.h>

#include "../../common/clock.h"
#include "../../common/history.h"
#include "../worker-t.h"
#include "broker.h"

static int local_start(struct worker *w, const struct broker_sink *sink)
{
    (void)w;
    (void)sink; /* the fan-out reads the ring itself */
    return 0;
}

static void local_stop(struct worker *w)
{
    (void)w;
}

static void local_channel(struct worker *w, const char *name, size_t len)
{
    (void)w;
    (void)name;
    (void)len; /* every worker reads every record */
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

/* The history store gives each channel its offset and writes the ring
 * record under its lock (common/history.h), so ring order is offset order. */
static int local_publish(struct worker *w, const char *list, size_t list_len, unsigned opcode,
                         const uint8_t *payload, size_t len, uint64_t *offs, const struct broker_later *later)
{
    (void)later; /* the offsets are known at once */
    int n = history_publish(w->history, w->ring, list, list_len, opcode, payload, len,
                            (int64_t)(mono_ns() / 1000000), offs);
    if (n < 0) {
        shm_add(&w->slot->publish_rejected, 1);
        errno = EMSGSIZE;
        return -1;
    }
    shm_add(&w->slot->publishes, 1);
    wake_sleepers(w);
    ev_idle_start(w->loop, &w->ring_idle); /* deliver locally this iteration */
    return n;
}

static int local_can_publish(const struct worker *w)
{
    (void)w;
    return 1;
}

static void local_why(const struct worker *w, char *buf, size_t len)
{
    (void)w;
    if (len)
        buf[0] = '\0';
}

const struct broker_ops broker_local = {
    .name = "local",
    .start = local_start,
    .stop = local_stop,
    .channel_added = local_channel,
    .channel_removed = local_channel,
    .publish = local_publish,
    .can_publish = local_can_publish,
    .why = local_why,
};
