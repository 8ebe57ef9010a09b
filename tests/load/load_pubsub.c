/* load_pubsub.c: publishers and subscribers (modes subscribe, publish,
 * fanout), driven by load_client.c and load_conn.c.
 *
 * Every published payload starts with a 24-byte stamp, little-endian:
 *
 *   bytes 0-7    the publisher's CLOCK_MONOTONIC in ns when it staged the
 *                message (one clock for every process on the machine)
 *   bytes 8-15   sequence number per (publisher, channel), from 0
 *   bytes 16-19  publisher id (the run's random base + the publisher's index)
 *   bytes 20-23  channel index k (NAME-k; 0 without --channels)
 *
 * and every later byte i is (uint8_t)(seq * 7 + publisher * 13 + i), so a
 * subscriber catches corrupted, truncated and crossed messages, measures the
 * delay, and keeps per publisher which sequence numbers it has seen: a
 * number skipped is a gap (a lost message), one seen twice a duplicate, one
 * arriving after a later one a reordering.
 *
 * Publishers: a token bucket per process at its share of the message rate;
 * messages go round robin over the process's connections, and each
 * connection round robin over its channels. A ws publisher is a client on
 * /ch/NAME-k sending masked binary frames (the server's client_publish); an
 * HTTP publisher POSTs to /pub/NAME-k with keep-alive, at most --pipeline
 * requests unanswered, and counts every answer by status. Channel k always
 * goes out on the same connection, so each channel's order is the order the
 * tool sent. When the next connection cannot take a message (pipeline full,
 * socket backed up) the tick stops there: the rate achieved falls below the
 * rate asked and the report shows it. */
#include "load_client.h"
#include "load_pmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SUB_MAX_PUBS  64          /* publishers tracked per subscriber */
#define HTTP_RX_MAX   4096        /* one publish API answer must fit */
#define PUB_OUT_MAX   (256 << 10) /* a publisher with this much refused output waits */
#define HTTP_HEAD_MAX 1024

struct load_sub_track {
    uint32_t pub;
    uint64_t next; /* next sequence number expected */
    uint64_t seen; /* bit i: sequence number next - 1 - i has arrived */
};

struct load_sub {
    uint32_t chan;
    uint16_t ntrack, cap;
    uint8_t v1;                  /* wsmill.v1: each message starts with a "NAME OFFSET\n" header */
    uint8_t in_env;              /* inside that header (or inside an answer, which has no newline) */
    uint8_t hdr[LOAD_STAMP_LEN]; /* the current message's stamp as it arrives */
    struct load_sub_track t[];
};

struct load_inflight {
    uint64_t t; /* when the request was staged */
    uint64_t k; /* its channel */
};

struct load_pub {
    uint32_t id;    /* publisher id in the stamps */
    uint32_t nchan; /* channels this connection publishes to */
    uint32_t next;  /* which of them gets the next message */
    uint32_t rx_len;
    uint64_t *seq;                  /* per channel: next sequence number */
    struct load_inflight *inflight; /* HTTP: ring of --pipeline entries */
    char *rx;                       /* HTTP: answer bytes not consumed yet */
};

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The pattern byte at payload offset i is (base + i) mod 256. */
static inline uint8_t pattern_base(uint32_t pub, uint64_t seq)
{
    return (uint8_t)(seq * 7 + (uint64_t)pub * 13);
}

/* The byte after the stamp at payload offset i: the pattern, or (--json)
 * JSON-like text starting at a point the base picks. */
static inline uint8_t body_byte(const struct load_client *cl, uint8_t base, uint64_t i)
{
    return cl->o->json ? load_pmd_text_byte((uint64_t)base * 13 + i) : (uint8_t)(base + i);
}

static uint64_t nchan_total(const struct load_client *cl)
{
    return load_opts_nchan(cl->o);
}

/* HTTP publisher c: channels c->id, c->id + P, c->id + 2P, ... below K. */
static uint32_t http_nchan(const struct load_client *cl, const struct load_conn *c)
{
    return (uint32_t)((nchan_total(cl) - c->id + cl->total - 1) / cl->total);
}

uint64_t load_ps_channel(const struct load_client *cl, const struct load_conn *c)
{
    switch (cl->role) {
    case LOAD_ROLE_SUB: return c->id % nchan_total(cl);
    case LOAD_ROLE_PUB_WS: return cl->o->channels ? c->id : 0;
    case LOAD_ROLE_PUB_HTTP: return c->id;
    default: return 0;
    }
}

/* ---- set-up and release --------------------------------------------- */

static int sub_opened(struct load_client *cl, struct load_conn *c)
{
    struct load_sub *s = malloc(sizeof(*s) + sizeof(s->t[0]));
    if (s == NULL)
        return load_conn_fail_errno(cl, c, ENOMEM);
    s->chan = (uint32_t)load_ps_channel(cl, c);
    s->ntrack = 0;
    s->cap = 1;
    s->v1 = (uint8_t)cl->o->v1;
    s->in_env = 0;
    c->ps.sub = s;
    __atomic_add_fetch(&cl->chans.subs[s->chan], 1, __ATOMIC_RELAXED);
    c->counted = 1;
    return 0;
}

static int pub_opened(struct load_client *cl, struct load_conn *c)
{
    int http = cl->role == LOAD_ROLE_PUB_HTTP;
    uint32_t nchan = http ? http_nchan(cl, c) : 1;
    size_t ring = http ? cl->o->pipeline : 0;
    size_t size = sizeof(struct load_pub) + nchan * sizeof(uint64_t) + ring * sizeof(struct load_inflight) +
                  (http ? HTTP_RX_MAX : 0);
    struct load_pub *p = malloc(size);
    if (p == NULL)
        return load_conn_fail_errno(cl, c, ENOMEM);
    p->id = cl->ctl->pub_id_base + c->id;
    p->nchan = nchan;
    p->next = 0;
    p->rx_len = 0;
    p->seq = (uint64_t *)(p + 1);
    p->inflight = (struct load_inflight *)(p->seq + nchan);
    p->rx = (char *)(p->inflight + ring);
    memset(p->seq, 0, nchan * sizeof(uint64_t));
    c->ps.pub = p;
    return 0;
}

int load_ps_opened(struct load_client *cl, struct load_conn *c)
{
    return cl->role == LOAD_ROLE_SUB ? sub_opened(cl, c) : pub_opened(cl, c);
}

void load_ps_release(struct load_client *cl, struct load_conn *c)
{
    if (c->ps.sub == NULL)
        return;
    if (cl->role == LOAD_ROLE_SUB && c->counted)
        __atomic_sub_fetch(&cl->chans.subs[c->ps.sub->chan], 1, __ATOMIC_RELAXED);
    if (cl->role == LOAD_ROLE_PUB_HTTP && c->seq_sent != c->seq_recv) {
        /* The connection ends with requests unanswered: they are lost. */
        LOAD_SUB(cl->st->pub_inflight, c->seq_sent - c->seq_recv);
        LOAD_ADD(cl->st->pub_unanswered, c->seq_sent - c->seq_recv);
    }
    free(c->ps.sub); /* either member: one allocation */
    c->ps.sub = NULL;
}

/* ---- subscribers ------------------------------------------------------ */

void load_sub_begin(struct load_conn *c)
{
    c->msg_off = 0;
    if (c->ps.sub)
        c->ps.sub->in_env = c->ps.sub->v1;
}

int load_sub_bytes(struct load_client *cl, struct load_conn *c, const uint8_t *p, size_t n)
{
    struct load_sub *s = c->ps.sub;
    if (s == NULL)
        return 0;                /* opened after the run and closing at once: not counted */
    while (s->in_env && n > 0) { /* the envelope's header line */
        s->in_env = *p != '\n';
        p++;
        n--;
    }
    uint64_t off = c->msg_off;
    while (n > 0 && off < LOAD_STAMP_LEN) {
        s->hdr[off++] = *p++;
        n--;
    }
    if (n > 0) {
        uint8_t base = pattern_base(rd32(s->hdr + 16), rd64(s->hdr + 8));
        for (size_t i = 0; i < n; i++)
            if (p[i] != body_byte(cl, base, off + i))
                return load_conn_fail(cl, c, LOAD_ST_MESSAGE, LOAD_C_MISMATCH);
        off += n;
    }
    c->msg_off = off;
    return 0;
}

static struct load_sub_track *track_of(struct load_conn *c, uint32_t pub)
{
    struct load_sub *s = c->ps.sub;
    for (uint16_t i = 0; i < s->ntrack; i++)
        if (s->t[i].pub == pub)
            return &s->t[i];
    if (s->ntrack == SUB_MAX_PUBS)
        return NULL;
    if (s->ntrack == s->cap) {
        uint16_t cap = (uint16_t)(s->cap * 2 < SUB_MAX_PUBS ? s->cap * 2 : SUB_MAX_PUBS);
        struct load_sub *ns = realloc(s, sizeof(*s) + cap * sizeof(s->t[0]));
        if (ns == NULL)
            return NULL;
        ns->cap = cap;
        c->ps.sub = s = ns;
    }
    struct load_sub_track *t = &s->t[s->ntrack++];
    t->pub = pub;
    t->next = UINT64_MAX; /* set by the first message */
    t->seen = 0;
    return t;
}

/* Books sequence number seq from publisher pub. */
static void track(struct load_client *cl, struct load_conn *c, uint32_t pub, uint64_t seq)
{
    struct load_slot *st = cl->st;
    struct load_sub_track *t = track_of(c, pub);
    if (t == NULL) {
        LOAD_ADD(st->sub_untracked, 1);
        return;
    }
    if (t->next == UINT64_MAX)
        /* fanout: every subscriber is open before the first publish, so
         * numbering starts at 0; a lone subscriber starts where it joins. */
        t->next = cl->o->mode == LOAD_FANOUT ? 0 : seq;
    if (seq >= t->next) {
        uint64_t skip = seq - t->next;
        LOAD_ADD(st->sub_gaps, skip);
        t->seen = skip >= 63 ? 1 : (t->seen << (skip + 1)) | 1;
        t->next = seq + 1;
        return;
    }
    uint64_t d = t->next - 1 - seq;
    if (d >= 64) { /* too late to tell a duplicate from a filled gap */
        LOAD_ADD(st->sub_reordered, 1);
    } else if (t->seen >> d & 1) {
        LOAD_ADD(st->sub_dups, 1);
    } else {
        t->seen |= 1ull << d;
        LOAD_ADD(st->sub_reordered, 1);
        LOAD_ADD(st->sub_late_fills, 1);
    }
}

int load_sub_done(struct load_client *cl, struct load_conn *c)
{
    struct load_sub *s = c->ps.sub;
    struct load_slot *st = cl->st;
    if (s == NULL)
        return 0;
    if (s->in_env) /* a wsmill.v1 answer ({"type":"subscribed",...}): no newline */
        return 0;
    if (c->msg_off < LOAD_STAMP_LEN)
        return load_conn_fail(cl, c, LOAD_ST_MESSAGE, LOAD_C_MISMATCH);
    uint64_t stamp = rd64(s->hdr), seq = rd64(s->hdr + 8);
    uint32_t pub = rd32(s->hdr + 16), k = rd32(s->hdr + 20);
    if (k != s->chan)
        return load_conn_fail(cl, c, LOAD_ST_MESSAGE, LOAD_C_WRONG_CHANNEL);
    uint64_t now = cl->now;
    load_hist_add(&st->hist[LOAD_H_DELAY], now > stamp ? now - stamp : 0);
    LOAD_ADD(st->sub_recv, 1);
    LOAD_ADD(st->sub_bytes, c->msg_off);
    if (cl->run_start != 0 && now >= cl->run_start && now < cl->run_end)
        LOAD_ADD(st->sub_recv_window, 1);
    if (now < st->sub_first_ns)
        st->sub_first_ns = now;
    if (now > st->sub_last_ns)
        st->sub_last_ns = now;
    track(cl, c, pub, seq);
    return 0;
}

/* ---- publishers ------------------------------------------------------- */

/* Stages the payload of message seq on channel k, masked when mask != NULL. */
static int stage_payload(struct load_client *cl, struct load_conn *c, uint32_t pub, uint64_t seq, uint64_t k,
                         const uint8_t *mask)
{
    uint64_t size = cl->o->size;
    uint8_t stamp[LOAD_STAMP_LEN];
    wr64(stamp, cl->now);
    wr64(stamp + 8, seq);
    wr32(stamp + 16, pub);
    wr32(stamp + 20, (uint32_t)k);
    uint8_t base = pattern_base(pub, seq);
    for (uint64_t off = 0; off < size;) {
        size_t chunk = size - off < cl->wcap ? (size_t)(size - off) : cl->wcap;
        uint8_t *p = load_conn_reserve(cl, c, chunk);
        if (p == NULL)
            return -1;
        for (size_t i = 0; i < chunk; i++) {
            uint64_t at = off + i;
            p[i] = at < LOAD_STAMP_LEN ? stamp[at] : body_byte(cl, base, at);
        }
        if (mask != NULL)
            load_ws_mask(p, chunk, mask, off);
        cl->wlen += chunk;
        off += chunk;
    }
    return 0;
}

static int stage_http(struct load_client *cl, struct load_conn *c, struct load_pub *p, uint64_t k,
                      uint64_t seq)
{
    const struct load_opts *o = cl->o;
    char path[sizeof(o->pub.path) + 24];
    if (load_opts_chan_path(o, cl->target, k, path, sizeof(path)) == -1)
        return load_conn_fail_errno(cl, c, ENAMETOOLONG);
    uint8_t *h = load_conn_reserve(cl, c, HTTP_HEAD_MAX);
    if (h == NULL)
        return -1;
    int n =
        snprintf((char *)h, HTTP_HEAD_MAX,
                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                 "Content-Length: %llu\r\n%s%s%s\r\n",
                 path, cl->target->host, (unsigned long long)o->size,
                 o->token ? "Authorization: Bearer " : "", o->token ? o->token : "", o->token ? "\r\n" : "");
    if (n < 0 || n >= HTTP_HEAD_MAX)
        return load_conn_fail_errno(cl, c, ENAMETOOLONG); /* --url/--token too long to send */
    cl->wlen += (size_t)n;
    p->inflight[c->seq_sent % o->pipeline] = (struct load_inflight){.t = cl->now, .k = k};
    c->seq_sent++;
    LOAD_ADD(cl->st->pub_inflight, 1);
    return stage_payload(cl, c, p->id, seq, k, NULL);
}

static int stage_ws(struct load_client *cl, struct load_conn *c, struct load_pub *p, uint64_t k, uint64_t seq)
{
    uint8_t mask[4];
    uint8_t *h = load_conn_reserve(cl, c, LOAD_WS_HDR_MAX);
    if (h == NULL)
        return -1;
    load_conn_random_mask(cl, mask);
    cl->wlen += load_ws_frame_header(h, LOAD_WS_BINARY, cl->o->size, mask);
    if (stage_payload(cl, c, p->id, seq, k, mask) == -1)
        return -1;
    /* No answer comes for a client publish: sent is accepted. */
    LOAD_ADD(cl->st->pub_acked, 1);
    __atomic_add_fetch(&cl->chans.published[k], 1, __ATOMIC_RELAXED);
    return 0;
}

/* Stages the next message of c. -1 when the connection was released. */
static int pub_stage(struct load_client *cl, struct load_conn *c)
{
    struct load_pub *p = c->ps.pub;
    uint32_t m = p->next;
    p->next = m + 1 == p->nchan ? 0 : m + 1;
    uint64_t k = load_ps_channel(cl, c) + (uint64_t)m * cl->total;
    uint64_t seq = p->seq[m]++;
    cl->now = load_client_clock();
    int r = cl->role == LOAD_ROLE_PUB_HTTP ? stage_http(cl, c, p, k, seq) : stage_ws(cl, c, p, k, seq);
    if (r == -1)
        return -1;
    LOAD_ADD(cl->st->pub_sent, 1);
    if (cl->now < cl->run_end)
        LOAD_ADD(cl->st->pub_sent_window, 1);
    return 0;
}

/* Can c take another message now? */
static int pub_ready(const struct load_client *cl, const struct load_conn *c)
{
    if (c->out_len > PUB_OUT_MAX)
        return 0;
    return cl->role != LOAD_ROLE_PUB_HTTP || c->seq_sent - c->seq_recv < cl->o->pipeline;
}

/* The next open connection in round-robin order, or NULL. */
static struct load_conn *pub_pick(struct load_client *cl)
{
    for (uint32_t i = 0; i < cl->n; i++) {
        uint32_t j = cl->pub_rr + i < cl->n ? cl->pub_rr + i : cl->pub_rr + i - cl->n;
        if (cl->conns[j].state == LOAD_CS_OPEN && cl->conns[j].ps.pub != NULL) {
            cl->pub_rr = j;
            return &cl->conns[j];
        }
    }
    return NULL;
}

int load_pub_tick(struct load_client *cl)
{
    cl->pub_tokens += (double)(cl->now - cl->pub_last_refill) * cl->pub_rate_ns;
    if (cl->pub_tokens > cl->pub_burst)
        cl->pub_tokens = cl->pub_burst; /* what a blocked publisher could not send is not made up */
    cl->pub_last_refill = cl->now;

    struct load_conn *staged = NULL;
    while (cl->pub_tokens >= 1) {
        struct load_conn *c = pub_pick(cl);
        if (c == NULL)
            break;
        if (staged != NULL && staged != c) {
            load_conn_flush(cl, staged); /* a failure releases it: pick skips it */
            staged = NULL;
            if (c->state != LOAD_CS_OPEN)
                continue;
        }
        if (!pub_ready(cl, c))
            break; /* keep each channel's turn: wait for this connection */
        if (pub_stage(cl, c) == -1) {
            staged = NULL; /* released, nothing staged is left */
            continue;
        }
        staged = c;
        cl->pub_tokens -= 1;
        cl->pub_rr = cl->pub_rr + 1 == cl->n ? 0 : cl->pub_rr + 1;
    }
    if (staged != NULL)
        load_conn_flush(cl, staged);
    if (cl->pub_tokens >= 1)
        return 1; /* blocked: answers or writability will unblock it */
    double ms = (1 - cl->pub_tokens) / (cl->pub_rate_ns * 1e6);
    return ms <= 1 ? 1 : ms >= 10 ? 10 : (int)ms;
}

/* ---- HTTP answers ----------------------------------------------------- */

/* Parses "HTTP/1.x NNN" at the start of b; returns NNN or 0. */
static int http_status(const char *b, size_t len)
{
    if (len < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
        return 0;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9')
            return 0;
        code = code * 10 + (b[i] - '0');
    }
    return code;
}

/* One answer at the start of b[0..len): returns its length once complete, 0
 * while incomplete, -1 when the connection failed (released). */
static ssize_t http_answer(struct load_client *cl, struct load_conn *c, const char *b, size_t len)
{
    struct load_slot *st = cl->st;
    const char *end = memmem(b, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t hlen = (size_t)(end + 4 - b);
    int status = http_status(b, len);
    if (status < 100)
        return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_BAD_RESPONSE);
    uint64_t clen = 0;
    int has_clen = 0;
    const char *p = memchr(b, '\n', hlen) + 1;
    while (p < end + 2) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_BAD_RESPONSE);
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            has_clen = 1;
            clen = 0;
            for (; v < eol && *v >= '0' && *v <= '9'; v++)
                clen = clen * 10 + (uint64_t)(*v - '0');
            if (clen > HTTP_RX_MAX)
                return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_RESPONSE_TOO_LARGE);
        } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_BAD_RESPONSE); /* never for a publish */
        }
        p = eol + 2;
    }
    if (!has_clen && status / 100 != 1 && status != 204 && status != 304)
        return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_BAD_RESPONSE); /* a body up to EOF */
    if (hlen + clen > HTTP_RX_MAX)
        return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_RESPONSE_TOO_LARGE);
    if (len < hlen + clen)
        return 0;
    if (status / 100 == 1)
        return (ssize_t)hlen; /* interim (100 Continue): the real answer follows */
    if (c->seq_recv == c->seq_sent)
        return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_UNEXPECTED_DATA);
    struct load_pub *pub = c->ps.pub;
    struct load_inflight *f = &pub->inflight[c->seq_recv % cl->o->pipeline];
    c->seq_recv++;
    LOAD_SUB(st->pub_inflight, 1);
    if (status / 100 == 2) {
        LOAD_ADD(st->pub_acked, 1);
        load_hist_add(&st->hist[LOAD_H_PUBLISH], cl->now > f->t ? cl->now - f->t : 0);
        __atomic_add_fetch(&cl->chans.published[f->k], 1, __ATOMIC_RELAXED);
    } else {
        st->pub_status[status < LOAD_STATUS_MAX ? status : 0]++;
        LOAD_ADD(st->pub_errors, 1);
    }
    return (ssize_t)(hlen + clen);
}

int load_pub_http_read(struct load_client *cl, struct load_conn *c)
{
    struct load_pub *p = c->ps.pub;
    ssize_t n = read(c->fd, p->rx + p->rx_len, HTTP_RX_MAX - p->rx_len);
    if (n == -1)
        return errno == EAGAIN ? 0 : load_conn_fail_errno(cl, c, errno);
    if (n == 0)
        return load_conn_fail(cl, c, LOAD_ST_OPEN, LOAD_C_EOF);
    p->rx_len += (uint32_t)n;
    cl->now = load_client_clock();
    size_t used = 0;
    for (;;) {
        ssize_t r = http_answer(cl, c, p->rx + used, p->rx_len - used);
        if (r == -1)
            return -1;
        if (r == 0)
            break;
        used += (size_t)r;
    }
    memmove(p->rx, p->rx + used, p->rx_len - used);
    p->rx_len -= (uint32_t)used;
    if (p->rx_len == HTTP_RX_MAX)
        return load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_RESPONSE_TOO_LARGE);
    return 0;
}

void load_pub_check(struct load_client *cl, struct load_conn *c)
{
    struct load_pub *p = c->ps.pub;
    if (c->state != LOAD_CS_OPEN || p == NULL || c->seq_sent == c->seq_recv)
        return;
    uint64_t t = p->inflight[c->seq_recv % cl->o->pipeline].t;
    if (cl->now - t >= (uint64_t)(cl->o->conn_timeout * 1e9))
        load_conn_fail(cl, c, LOAD_ST_PUBLISH, LOAD_C_TIMEOUT);
}
