/* pmd.c: permessage-deflate for the worker's connections (RFC 7692).
 *
 * Outgoing: the server never takes over context, so a message is
 * compressed on its own by the worker's codec, once per message: per
 * connection for echo replies, once per worker for a channel message (its
 * compressed twin sits beside the plain frame in the channel's log).
 * Incoming: the worker's one inflate stream is primed, per message, from
 * the client's window when the client keeps its context; the window
 * (exactly 2^bits bytes, a jemalloc size class) is allocated on the
 * connection's first compressed message and is all it ever costs.
 *
 * struct conn has no byte to spare, so a connection carries only the flag
 * CF_DEFLATE; what it negotiated is one byte in a descriptor-indexed table
 * and its window an entry in a second one, both reserved with
 * MAP_NORESERVE: only pages holding entries in use are ever resident (a
 * byte per idle deflate connection, 16 more once it has a window). */
#include "pmd.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../common/alloc.h"
#include "../../common/log.h"
#include "../../common/pmd_codec.h"
#include "../shbuf.h"
#include "conn.h"

/* A client's window: the last `fill` bytes of plaintext it sent, up to
 * 2^bits. */
struct pmd_win {
    uint8_t *buf;
    uint32_t fill;
};

struct pmd_tables {
    uint8_t *params;      /* per fd: pmd_encode's byte */
    struct pmd_win *wins; /* per fd */
};

static uint8_t params_of(const struct conn *c)
{
    return ((struct pmd_tables *)conn_worker(c)->pmd_tab)->params[conn_fd(c)];
}

static struct pmd_win *win_of(const struct conn *c)
{
    return &((struct pmd_tables *)conn_worker(c)->pmd_tab)->wins[conn_fd(c)];
}

static void *reserve(size_t bytes)
{
    void *t = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (t == MAP_FAILED)
        log_crit("mmap(%zu bytes) for the deflate tables failed", bytes);
    return t == MAP_FAILED ? NULL : t;
}

uint8_t pmd_encode(const struct pmd_params *p)
{
    int cbits = p->client_no_context_takeover ? 0 : p->client_bits;
    return (uint8_t)(PMD_ON | (p->server_bits - 8) << 4 | cbits);
}

int pmd_worker_init(struct worker *w)
{
    struct pmd_tables *t = xcalloc(1, sizeof(*t));
    w->pmd = pmd_codec_new((int)w->cfg.deflate_level);
    t->params = reserve((size_t)w->nconns);
    t->wins = reserve((size_t)w->nconns * sizeof(struct pmd_win));
    w->pmd_tab = t;
    return t->params && t->wins ? 0 : -1;
}

void pmd_conn_agreed(struct conn *c, const struct pmd_params *p)
{
    ((struct pmd_tables *)conn_worker(c)->pmd_tab)->params[conn_fd(c)] = pmd_encode(p);
    c->flags |= CF_DEFLATE;
}

void pmd_worker_config(struct worker *w)
{
    if (w->pmd)
        pmd_codec_set_level(w->pmd, (int)w->cfg.deflate_level);
}

/* Keeps the last 2^bits bytes c sent, allocating the window on first use.
 * Returns 0, or -1 when out of memory. */
static int window_push(struct conn *c, const uint8_t *msg, size_t n)
{
    struct worker *w = conn_worker(c);
    struct pmd_win *win = win_of(c);
    size_t cap = (size_t)1 << pmd_client_bits(params_of(c));
    if (!win->buf) {
        if (!n)
            return 0;
        if (!(win->buf = malloc(cap)))
            return -1;
        win->fill = 0;
        shm_add(&w->slot->pmd_windows, 1);
    }
    size_t fill = win->fill;
    pmd_window_push(win->buf, cap, &fill, msg, n);
    win->fill = (uint32_t)fill;
    return 0;
}

int pmd_inflate(struct conn *c, const uint8_t *in, size_t len, const uint8_t **out, size_t *out_len)
{
    struct worker *w = conn_worker(c);
    struct pmd_win *win = win_of(c);
    int keep = pmd_client_bits(params_of(c)) != 0;
    const uint8_t *dict = keep ? win->buf : NULL;
    size_t dict_len = dict ? win->fill : 0;
    int r = pmd_codec_inflate(w->pmd, dict, dict_len, in, len, (size_t)w->cfg.max_message_size, out, out_len);
    if (r == PMD_INFLATE_TOO_BIG)
        shm_add(&w->slot->limit_message_size, 1);
    if (r != PMD_INFLATE_OK)
        return -r;
    shm_add(&w->slot->pmd_in_compressed, 1);
    if (*out_len > len)
        shm_add(&w->slot->pmd_in_saved, *out_len - len);
    if (keep && window_push(c, *out, *out_len) == -1)
        return WS_CLOSE_INTERNAL;
    return 0;
}

void pmd_trim(struct worker *w)
{
    pmd_codec_trim(w->pmd);
}

void pmd_count_out(struct conn *c, uint64_t n_compressed, uint64_t n_plain, uint64_t saved)
{
    struct worker_slot *s = conn_worker(c)->slot;
    if (n_compressed)
        shm_add(&s->pmd_out_compressed, n_compressed);
    if (n_plain)
        shm_add(&s->pmd_out_plain, n_plain);
    if (saved)
        shm_add(&s->pmd_out_saved, saved);
}

uint8_t *pmd_compress(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len, size_t *zlen)
{
    if (!(c->flags & CF_DEFLATE) || (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY))
        return NULL;
    struct worker *w = conn_worker(c);
    uint8_t *out = NULL;
    size_t n = 0;
    if ((int64_t)len >= w->cfg.deflate_min_size && (out = malloc(len + 8))) {
        n = pmd_codec_deflate(w->pmd, pmd_server_bits(params_of(c)), payload, len, out, len + 8);
        if (n)
            shm_add(&w->slot->pmd_deflates, 1);
    }
    if (!n) {
        free(out);
        pmd_count_out(c, 0, 1, 0);
        return NULL;
    }
    pmd_count_out(c, 1, 0, len - n);
    *zlen = n;
    return out;
}

/* Where a whole frame's payload starts, and how long it is. */
static size_t frame_payload(const struct shbuf *f, size_t *len)
{
    unsigned l7 = f->data[1] & 0x7f;
    size_t hl = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
    *len = f->len - hl;
    return hl;
}

/* plain's twin, built now if need be (*built grows by its size): a new
 * frame with RSV1, or plain itself when it does not shrink, is too short,
 * or memory is short (plain is always a valid answer). */
static struct shbuf *twin_of(struct worker *w, struct shbuf *plain, size_t *built)
{
    if (plain->twin)
        return plain->twin;
    plain->twin = plain;
    size_t len, hl = frame_payload(plain, &len);
    unsigned opcode = plain->data[0] & 0x0f;
    if ((opcode != WS_OP_TEXT && opcode != WS_OP_BINARY) || (int64_t)len < w->cfg.deflate_min_size)
        return plain;
    struct shbuf *t = malloc(sizeof(*t) + WS_MAX_HEADER + len + 8);
    if (!t)
        return plain;
    uint8_t *z = t->data + WS_MAX_HEADER;
    size_t n = pmd_codec_deflate(w->pmd, 15, plain->data + hl, len, z, len + 8);
    if (!n) {
        free(t);
        return plain;
    }
    shm_add(&w->slot->pmd_deflates, 1);
    uint8_t hdr[WS_MAX_HEADER];
    size_t th = ws_build_header(hdr, opcode, 1, n);
    hdr[0] |= 0x40; /* RSV1: compressed */
    memmove(t->data + th, z, n);
    memcpy(t->data, hdr, th);
    t->refs = 1;
    t->len = (uint32_t)(th + n);
    t->twin = NULL;
    struct shbuf *small = realloc(t, sizeof(*t) + t->len);
    plain->twin = small ? small : t;
    *built += plain->twin->len;
    return plain->twin;
}

size_t pmd_frames(struct conn *c, struct shbuf **log, int n, struct shbuf **bufs, struct iovec *iov,
                  size_t *built)
{
    struct worker *w = conn_worker(c);
    size_t total = 0;
    uint64_t zn = 0, saved = 0;
    size_t window = (size_t)1 << pmd_server_bits(params_of(c));
    for (int i = 0; i < n; i++) {
        struct shbuf *p = log[i], *t = twin_of(w, p, built);
        size_t len;
        frame_payload(p, &len);
        /* A message is compressed on its own, so no match reaches back
         * further than its length: within c's window when it is no longer. */
        struct shbuf *b = t != p && (window == 32768 || len <= window) ? t : p;
        if (b != p) {
            zn++;
            saved += p->len - b->len;
        }
        bufs[i] = b;
        iov[i] = (struct iovec){b->data, b->len};
        total += b->len;
    }
    pmd_count_out(c, zn, (uint64_t)n - zn, saved);
    return total;
}

void pmd_conn_release(struct conn *c)
{
    struct worker *w = conn_worker(c);
    if (!(c->flags & CF_DEFLATE))
        return;
    struct pmd_win *win = win_of(c);
    if (win->buf) {
        free(win->buf);
        win->buf = NULL;
        win->fill = 0;
        shm_sub(&w->slot->pmd_windows, 1);
    }
    ((struct pmd_tables *)w->pmd_tab)->params[conn_fd(c)] = 0;
    c->flags &= (uint8_t)~CF_DEFLATE;
}
