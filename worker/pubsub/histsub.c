/* histsub.c: wsmill.v1 subscribers (docs/history.md).
 *
 * A channel has two sides in a worker: the raw one (frames are the
 * published payloads) and the v1 one, whose frames carry "NAME OFFSET\n"
 * before the payload. Each side is a struct channel of its own with its
 * own log, so the sweep (fanout.c) is the same for both and a v1 frame is
 * built once per message and worker, shared by all its subscribers.
 *
 * Opening a v1 subscriber: under the history lock, each channel's position
 * (epoch, top) and, for a resume that can be served, the missed messages
 * are read, together with the ring's record count T. Every record before T
 * carries offsets <= top and every later one offsets > top (the offsets
 * were assigned under that lock with the ring write). The worker then reads
 * the ring up to T and joins the channels at the end of their logs: the
 * catch-up ends at top, the log's next frame is top + 1. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histsub.h"

#include "../../common/clock.h"
#include "../../common/handshake.h"
#include "../../common/history.h"
#include "../../common/log.h"
#include "../../common/resume.h"
#include "../conn/conn.h"
#include "../conn/output.h"
#include "channel.h"
#include "fanout.h"

static int64_t now_ms(void)
{
    return (int64_t)(mono_ns() / 1000000);
}

size_t histsub_env_line(char *line, const char *name, size_t nl, uint64_t off)
{
    return (size_t)snprintf(line, HISTSUB_LINE_MAX, "%.*s %" PRIu64 "\n", (int)nl, name, off);
}

/* A v1 frame for (name, off) with room for len payload bytes at *payload. */
struct shbuf *histsub_env_frame(unsigned opcode, const char *name, size_t nl, uint64_t off, size_t len,
                                uint8_t **payload)
{
    char line[HISTSUB_LINE_MAX];
    size_t ll = histsub_env_line(line, name, nl, off);
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, opcode, 1, ll + len);
    struct shbuf *sb = malloc(sizeof(*sb) + hl + ll + len);
    if (!sb)
        return NULL;
    memcpy(sb->data, hdr, hl);
    memcpy(sb->data + hl, line, ll);
    sb->refs = 1;
    sb->len = (uint32_t)(hl + ll + len);
    sb->published_ns = 0; /* the caller sets it when it knows (a ring record) */
    sb->twin = NULL;      /* its permessage-deflate twin: built on first need (conn/pmd.c) */
    *payload = sb->data + hl + ll;
    return sb;
}

struct fill {
    struct worker *w;
    struct channel *ch;
};

static int fill_one(void *arg, uint64_t offset, unsigned opcode, const struct iovec *piece, int npieces)
{
    struct fill *f = arg;
    size_t len = piece[0].iov_len + (npieces > 1 ? piece[1].iov_len : 0);
    uint8_t *p;
    struct shbuf *sb = histsub_env_frame(opcode, f->ch->name, f->ch->name_len, offset, len, &p);
    if (!sb)
        return -1;
    memcpy(p, piece[0].iov_base, piece[0].iov_len);
    if (npieces > 1)
        memcpy(p + piece[0].iov_len, piece[1].iov_base, piece[1].iov_len);
    f->ch->last_off = offset;
    return fanout_log_append(f->w, f->ch, sb);
}

/* Offsets (ch->last_off, upto] never came through this worker's ring: the
 * ring lapped it, or another master's workers published them (the overlap
 * of a binary upgrade). The store has them: they go first. */
static void fill_gap(struct worker *w, struct channel *ch, uint64_t upto)
{
    struct history *h = w->history;
    int64_t now = now_ms();
    struct fill f = {w, ch};
    history_lock(h);
    struct history_chan *hc = history_chan_get_locked(h, ch->name, ch->name_len, now);
    if (hc)
        history_each_locked(h, hc, ch->last_off, upto, UINT32_MAX, now, w->cfg.history_ttl, fill_one, &f);
    history_unlock(h);
}

void histsub_ring_record(struct worker *w, const struct ring_msg *m)
{
    size_t pos = 0, nl;
    const char *name;
    for (int i = 0; i < m->noffs && hs_list_next(m->chan, m->chan_len, &pos, &name, &nl); i++) {
        struct channel *ch = channels_find_kind(w, name, nl, 1);
        if (!ch || !ch->nsubs || ch->last_rec == m->seq + 1)
            continue; /* nobody here, or listed twice ("a,a": one offset) */
        if (ch->last_off && m->offs[i] > ch->last_off + 1)
            fill_gap(w, ch, m->offs[i] - 1);
        uint8_t *p;
        struct shbuf *sb = histsub_env_frame(m->opcode, name, nl, m->offs[i], m->len, &p);
        if (!sb || ring_copy_payload(w->ring, m, p) == -1) {
            free(sb); /* lapped: the raw side counts it missed */
            continue;
        }
        sb->published_ns = m->published_ns;
        ch->last_rec = m->seq + 1;
        ch->last_off = m->offs[i];
        if (fanout_log_append(w, ch, sb) == -1)
            shm_add(&w->slot->slow_drops, ch->nsubs);
    }
}

/* ---- opening a subscriber -------------------------------------------------- */

void histsub_buf_frame(struct hbuf *b, unsigned opcode, const char *line, size_t ll,
                       const struct iovec *piece, int npieces)
{
    size_t len = ll;
    for (int i = 0; i < npieces; i++)
        len += piece[i].iov_len;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, opcode, 1, len);
    uint8_t *at = hbuf_room(b, hl + len);
    if (!at)
        return;
    memcpy(at, hdr, hl);
    memcpy(at + hl, line, ll);
    at += hl + ll;
    for (int i = 0; i < npieces; i++) {
        if (piece[i].iov_len) /* an answer has none (NULL) */
            memcpy(at, piece[i].iov_base, piece[i].iov_len);
        at += piece[i].iov_len;
    }
}

struct catchup {
    struct hbuf *b;
    const char *name;
    size_t nl;
};

static int catchup_one(void *arg, uint64_t offset, unsigned opcode, const struct iovec *piece, int npieces)
{
    struct catchup *cu = arg;
    char line[HISTSUB_LINE_MAX];
    histsub_buf_frame(cu->b, opcode, line, histsub_env_line(line, cu->name, cu->nl, offset), piece, npieces);
    return cu->b->failed ? -1 : 0;
}

static void answer(struct hbuf *b, const char *name, size_t nl, const struct history_chan *hc, int asked,
                   enum history_result r)
{
    histsub_answer(b, name, nl, hc->epoch, hc->top, asked, (int)r);
}

void histsub_answer(struct hbuf *b, const char *name, size_t nl, uint64_t epoch, uint64_t top, int asked,
                    int r)
{
    char js[HS_CHANNEL_MAX + 160];
    int n = snprintf(js, sizeof js,
                     "{\"type\":\"subscribed\",\"channel\":\"%.*s\",\"epoch\":\"%016" PRIx64
                     "\",\"offset\":%" PRIu64 "%s%s%s%s}",
                     (int)nl, name, epoch, top,
                     !asked                   ? ""
                     : r == HISTORY_RECOVERED ? ",\"recovered\":true"
                                              : ",\"recovered\":false",
                     asked && r != HISTORY_RECOVERED ? ",\"reason\":\"" : "",
                     asked && r != HISTORY_RECOVERED ? history_result_name(r) : "",
                     asked && r != HISTORY_RECOVERED ? "\"" : "");
    struct iovec none = {NULL, 0};
    histsub_buf_frame(b, WS_OP_TEXT, js, (size_t)n, &none, 1);
}

/* The resume positions as an index per channel of the list (-1: none).
 * Returns NULL when fine, else why not. */
static const char *match(const char *list, size_t len, const char *rbuf, const struct resume_pos *pos,
                         int npos, int *which, int max)
{
    for (int k = 0; k < npos; k++) {
        size_t at = 0, nl;
        const char *name;
        int found = 0;
        for (int i = 0; i < max && hs_list_next(list, len, &at, &name, &nl); i++)
            if (nl == pos[k].name_len && !memcmp(name, rbuf + pos[k].name_off, nl)) {
                which[i] = k;
                found = 1;
            }
        if (!found)
            return "resume: a channel that is not in the path";
    }
    return NULL;
}

static int refuse(struct conn *c, const char *resp, size_t resp_len, const char *why)
{
    char js[256];
    conn_set_state(c, CONN_OPEN);
    if (output_raw(c, resp, resp_len) == -1)
        return -1;
    int n = snprintf(js, sizeof js, "{\"type\":\"error\",\"error\":\"%s\"}", why);
    if (output_frame(c, WS_OP_TEXT, (const uint8_t *)js, (size_t)n, NULL) == -1)
        return -1;
    conn_fail(c, WS_CLOSE_POLICY, why);
    return 0;
}

/* 1 when name (inside list) appeared earlier in list. */
static int listed_before(const char *list, const char *name, size_t nl)
{
    size_t at = 0, l;
    const char *n;
    while (hs_list_next(list, (size_t)(name - list), &at, &n, &l) && n < name)
        if (l == nl && !memcmp(n, name, nl))
            return 1;
    return 0;
}

/* Under the lock: every channel's answer and catch-up into b; returns the
 * ring's record count at that moment. */
static uint64_t snapshot(struct worker *w, const char *list, size_t len, const char *rbuf,
                         const struct resume_pos *pos, const int *which, struct hbuf *b, uint64_t *tops)
{
    struct history *h = w->history;
    int64_t now = now_ms(), ttl = w->cfg.history_ttl;
    size_t at = 0, nl;
    const char *name;
    history_lock(h);
    for (int i = 0; hs_list_next(list, len, &at, &name, &nl); i++) {
        tops[i] = 0;
        if (listed_before(list, name, nl))
            continue; /* /ch/a,a: one answer */
        struct history_chan *hc = history_chan_get_locked(h, name, nl, now);
        tops[i] = hc->top;
        const struct resume_pos *p = which[i] >= 0 ? &pos[which[i]] : NULL;
        enum history_result r =
            p ? history_check_locked(h, hc, p->epoch, p->offset, now, ttl) : HISTORY_RECOVERED;
        answer(b, name, nl, hc, p != NULL, r);
        if (p && r == HISTORY_RECOVERED && p->offset < hc->top) {
            struct catchup cu = {b, name, nl};
            history_each_locked(h, hc, p->offset, hc->top, UINT32_MAX, now, ttl, catchup_one, &cu);
        }
    }
    uint64_t t = ring_records(w->ring);
    history_unlock(h);
    return t;
}

int histsub_check_query(struct worker *w, const char *query, size_t len, int offered, const char **why)
{
    (void)w;
    const char *v;
    size_t vl;
    int has = resume_find(query, len, &v, &vl);
    if (has == -1) {
        *why = "resume given twice";
        return 400;
    }
    if (has && !offered) {
        *why = "resume needs Sec-WebSocket-Protocol: wsmill.v1 (docs/history.md)";
        return 400;
    }
    return 0;
}

int histsub_open(struct conn *c, const char *list, size_t len, const char *query, size_t qlen,
                 const char *resp, size_t resp_len)
{
    struct worker *w = conn_worker(c);
    const char *resume = NULL;
    size_t resume_len = 0;
    if (resume_find(query, qlen, &resume, &resume_len) != 1)
        resume = NULL;
    int max = (int)w->cfg.max_channels_per_conn;
    struct resume_pos pos[1024];
    int which[1024], npos = 0;
    const char *why = NULL;
    char *rbuf = resume ? malloc(resume_len + 1) : NULL;
    for (int i = 0; i < max; i++)
        which[i] = -1;
    if (resume && !rbuf)
        why = "out of memory";
    else if (resume && (npos = resume_parse(resume, resume_len, rbuf, resume_len + 1, pos, max, &why)) > 0)
        why = match(list, len, rbuf, pos, npos, which, max);
    if (why) {
        free(rbuf);
        return refuse(c, resp, resp_len, why);
    }
    if (w->cfg.broker == BROKER_REDIS) {
        int rc = histsub_redis_open(c, list, len, rbuf, pos, which, resp, resp_len);
        free(rbuf);
        return rc;
    }
    struct hbuf b = {0};
    static uint64_t tops[1024];
    uint64_t t = snapshot(w, list, len, rbuf, pos, which, &b, tops);
    free(rbuf);
    /* Records before t: into the logs now, so that joining at their ends
     * means "from top + 1 on". */
    fanout_read(w, t, 1);
    if (b.failed || channels_subscribe_kind(c, list, len, 1) == -1) {
        free(b.p);
        conn_drop(c, 0); /* its close leaves what was joined */
        return -1;
    }
    /* A side made just now starts at the snapshot; an older one has read
     * every record before t, so it is there already (unless offsets came
     * through another master's ring: then this subscriber has them from
     * the catch-up, and joining at top keeps them from coming twice). */
    size_t at = 0, nl;
    const char *name;
    for (int i = 0; hs_list_next(list, len, &at, &name, &nl); i++) {
        struct channel *ch = channels_find_kind(w, name, nl, 1);
        if (ch && ch->last_off < tops[i])
            ch->last_off = tops[i];
    }
    conn_set_state(c, CONN_OPEN); /* frees the request (list and resume with it) */
    int rc = output_raw(c, resp, resp_len);
    if (rc == 0)
        rc = output_raw(c, b.p, b.len);
    free(b.p);
    return rc;
}
