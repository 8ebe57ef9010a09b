/* histsub_redis.c: wsmill.v1 subscribers with broker = redis, where the
 * positions and the history live in Redis (redis_hist.c), so a client can
 * resume on any node.
 *
 * The seam. Redis answers a read on the publish connection while live
 * messages come on the subscribe connection: the two can cross. So the
 * read script ends by PUBLISHing a marker to this worker's own sync
 * channel; Redis delivers a subscriber connection's messages in order, so
 * when the marker arrives every message published before the read has
 * arrived, and none published after it. An open therefore goes:
 *   1. its channels' v1 sides are made and held (their logs kept whole),
 *      the 101 is sent;
 *   2. once Redis confirmed the SUBSCRIBE of each (and of the sync
 *      channel), the read goes out;
 *   3. the marker: each log's head is noted (frames after it are newer
 *      than the read);
 *   4. the read's answer and the marker both in: the answers, the catch-up
 *      from Redis and the logs' frames after the noted heads go out in one
 *      piece, and the client joins the logs at their ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/history.h"
#include "../../common/log.h"
#include "../../common/resume.h"
#include "../../common/ws_frame.h"
#include "../conn/conn.h"
#include "../conn/output.h"
#include "../shbuf.h"
#include "channel.h"
#include "fanout.h"
#include "histsub.h"
#include "redis_hist.h"

struct pchan {
    struct channel *ch;
    uint32_t mark; /* the log's head when the marker came */
};

struct pending {
    struct pending *next;
    struct conn *c; /* NULL once the connection went away */
    uint64_t token;
    int n, sent, answered, synced;
    struct hbuf b;
    char *names; /* the channels, each once, "a,b" */
    size_t names_len;
    struct redis_read_pos *pos;
    struct pchan e[];
};

static uint64_t next_token;

static void unlink_free(struct worker *w, struct pending *p)
{
    for (struct pending **pp = (struct pending **)&w->hist_pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    for (int i = 0; i < p->n; i++)
        if (p->e[i].ch)
            channels_release(w, p->e[i].ch);
    free(p->b.p);
    free(p->names);
    free(p->pos);
    free(p);
}

/* Tells the client why and closes it (1013: try again later). */
static void fail(struct worker *w, struct pending *p, const char *why)
{
    struct conn *c = p->c;
    if (c) {
        char js[256];
        ((struct conn_subs *)c->ep)->pending = NULL;
        int n = snprintf(js, sizeof js, "{\"type\":\"error\",\"error\":\"%s\"}", why);
        if (output_frame(c, WS_OP_TEXT, (const uint8_t *)js, (size_t)n, NULL) == 0)
            conn_fail(c, WS_CLOSE_TRY_AGAIN, why);
        p->c = NULL;
    }
    if (!p->sent)
        unlink_free(w, p);
}

/* 4: answers, catch-up and what arrived since the marker, then join. */
static void try_join(struct worker *w, struct pending *p)
{
    if (!p->answered || !p->synced || !p->c)
        return;
    for (int i = 0; i < p->n; i++) {
        struct channel *ch = p->e[i].ch;
        for (uint32_t s = p->e[i].mark; s != ch->head; s++) { /* held since the open */
            const struct shbuf *sb = ch->log[s & (ch->log_cap - 1)];
            hbuf_put(&p->b, sb->data, sb->len);
        }
    }
    struct conn *c = p->c;
    free(c->ep); /* the placeholder; channels_subscribe_kind sets the real one */
    c->ep = NULL;
    if (p->b.failed || channels_subscribe_kind(c, p->names, p->names_len, 1) == -1) {
        conn_drop(c, 0);
    } else {
        output_raw(c, p->b.p, p->b.len);
    }
    p->c = NULL;
    unlink_free(w, p);
}

static void read_done(struct worker *w, void *arg, int ok, const struct redis_read_chan *out)
{
    struct pending *p = arg;
    p->sent = 0; /* the callback is done with p: fail/unlink may free it */
    if (!p->c) {
        unlink_free(w, p);
        return;
    }
    if (!ok) {
        fail(w, p, "broker unavailable: the history read from Redis failed");
        return;
    }
    size_t at = 0, nl;
    const char *name;
    for (int i = 0; i < p->n && hs_list_next(p->names, p->names_len, &at, &name, &nl); i++) {
        histsub_answer(&p->b, name, nl, out[i].epoch, out[i].top, p->pos[i].has, out[i].result);
        for (size_t k = 0; out[i].result == HISTORY_RECOVERED && k < out[i].nentries; k++) {
            uint64_t off;
            unsigned op;
            const uint8_t *pl;
            size_t len;
            if (redis_hist_entry(out[i].entries[k], &off, &op, &pl, &len) == -1)
                continue;
            char line[HISTSUB_LINE_MAX];
            struct iovec piece = {(void *)pl, len};
            histsub_buf_frame(&p->b, op, line, histsub_env_line(line, name, nl, off), &piece, 1);
        }
    }
    p->answered = 1;
    try_join(w, p);
}

/* 2: the read, once every SUBSCRIBE it depends on is confirmed. */
static void try_read(struct worker *w, struct pending *p)
{
    if (p->sent || p->answered || !p->c || !redis_hist_ready(w))
        return;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].ch->live)
            return;
    if (redis_hist_read(w, p->names, p->names_len, p->pos, p->n, p->token, read_done, p) == -1)
        fail(w, p, "broker unavailable: Redis is down");
    else
        p->sent = 1;
}

void histsub_redis_subscribed(struct worker *w)
{
    struct pending *next;
    for (struct pending *p = w->hist_pending; p; p = next) {
        next = p->next; /* try_read may free p */
        try_read(w, p);
    }
}

void histsub_redis_synced(struct worker *w, uint64_t token)
{
    for (struct pending *p = w->hist_pending; p; p = p->next)
        if (p->token == token) {
            for (int i = 0; i < p->n; i++)
                p->e[i].mark = p->e[i].ch->head;
            p->synced = 1;
            try_join(w, p);
            return;
        }
}

void histsub_redis_cancel(struct worker *w, void *pending)
{
    struct pending *p = pending;
    p->c = NULL;
    if (!p->sent) /* else read_done frees it */
        unlink_free(w, p);
}

void histsub_redis_frame(struct worker *w, const char *via, size_t via_len, uint64_t offset, unsigned opcode,
                         const uint8_t *payload, size_t len)
{
    struct channel *ch = channels_find_kind(w, via, via_len, 1);
    if (!ch || (!ch->nsubs && !ch->holds))
        return;
    uint8_t *p;
    struct shbuf *sb = histsub_env_frame(opcode, via, via_len, offset, len, &p);
    if (!sb) {
        shm_add(&w->slot->slow_drops, ch->nsubs);
        return;
    }
    memcpy(p, payload, len);
    ch->last_off = offset;
    if (fanout_log_append(w, ch, sb) == -1)
        shm_add(&w->slot->slow_drops, ch->nsubs);
}

int histsub_redis_open(struct conn *c, const char *list, size_t len, const char *rbuf,
                       const struct resume_pos *pos, const int *which, const char *resp, size_t resp_len)
{
    struct worker *w = conn_worker(c);
    int n = 0;
    size_t at = 0, nl;
    const char *name;
    while (hs_list_next(list, len, &at, &name, &nl))
        n++;
    struct pending *p = calloc(1, sizeof(*p) + (size_t)n * sizeof(p->e[0]));
    struct conn_subs *s = malloc(sizeof(*s));
    if (p)
        p->names = malloc(len + 1), p->pos = calloc((size_t)n, sizeof(*p->pos));
    if (!p || !s || !p->names || !p->pos) {
        if (p)
            free(p->names), free(p->pos);
        free(p);
        free(s);
        conn_drop(c, 0);
        return -1;
    }
    at = 0;
    for (int i = 0; hs_list_next(list, len, &at, &name, &nl); i++) {
        int dup = 0; /* /ch/a,a: once */
        for (int k = 0; k < p->n && !dup; k++)
            dup = p->e[k].ch->name_len == nl && !memcmp(p->e[k].ch->name, name, nl);
        struct channel *ch = dup ? NULL : channels_hold(w, name, nl);
        if (!ch)
            continue;
        if (p->names_len)
            p->names[p->names_len++] = ',';
        memcpy(p->names + p->names_len, name, nl);
        p->names_len += nl;
        if (which[i] >= 0)
            p->pos[p->n] = (struct redis_read_pos){1, pos[which[i]].epoch, pos[which[i]].offset};
        p->e[p->n++].ch = ch;
    }
    (void)rbuf;
    s->n = 0;
    s->pending = p;
    c->ep = s;
    p->c = c;
    p->token = ++next_token;
    p->next = w->hist_pending;
    w->hist_pending = p;
    conn_set_state(c, CONN_OPEN);
    if (output_raw(c, resp, resp_len) == -1)
        return -1; /* dropped: its close cancels p */
    try_read(w, p);
    return 0;
}
