/* floor.c: wsmill-floor, the physical floor a WebSocket server is measured
 * against.
 *
 * One thread, one epoll loop, no allocation while idle. --mode echo sends
 * raw TCP bytes back; --mode upgrade answers a bare, correct 101 and then
 * echoes frames as cheaply as possible: unmask, send back unmasked with the
 * same opcode and FIN bit (ping becomes pong, pongs are dropped, a close is
 * answered with the same close and the connection ends). --mode fanout is
 * the floor for channels: GET /ch/NAME subscribes after the same bare 101,
 * POST /pub/NAME (keep-alive, pipelined) or a client's data frame publishes,
 * and once per loop iteration every subscriber of a channel that got
 * messages receives all of them in one send; what a socket refuses waits,
 * up to 16 MiB, then is dropped. Whatever wsmill costs beyond this, for the
 * same load, is wsmill's own overhead. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "floor_tls.h"
#include "load_ws.h"

#define BUF_SIZE   65536
#define REQ_MAX    8192
#define HTTP_BUF   (REQ_MAX + BUF_SIZE) /* fanout: a partial request + one read behind it */
#define MAX_EVENTS 1024
#define CHAN_MAX   128        /* channel name bytes */
#define MSG_MAX    65536      /* fanout: largest message published */
#define PEND_MAX   (16 << 20) /* fanout: refused bytes kept per subscriber */
#define BATCH_MAX  (4 << 20)  /* fanout: bytes per channel per round */
#define NBUCKETS   4096

enum floor_mode { FLOOR_ECHO, FLOOR_UPGRADE, FLOOR_FANOUT };

enum fconn_state { FS_FREE, FS_RAW, FS_REQUEST, FS_FRAMES, FS_HTTP, FS_TLS };

/* fanout: a channel, its subscribers' fds, and this round's frames. */
struct fchan {
    struct fchan *next, *touched_next;
    int *fds;
    uint32_t nsubs, cap;
    uint8_t *batch;
    size_t blen, bcap;
    uint32_t nmsgs;
    uint8_t touched, len;
    char name[CHAN_MAX];
};

/* Per connection, indexed by fd: the frame being echoed and any output the
 * socket refused. Nothing is allocated unless a read or write is partial. */
struct fconn {
    uint8_t state;
    uint8_t hdr_len;
    uint8_t drop;        /* the frame being read is a pong: not echoed */
    uint8_t is_close;    /* the frame being read is a close */
    uint8_t op;          /* fanout: the opcode of the frame being read */
    uint8_t close_after; /* close answered: close TCP once output is out */
    uint8_t mask[4];
    uint8_t hdr[LOAD_WS_HDR_MAX];
    uint32_t req_len;
    uint32_t pend_len;
    uint64_t left; /* payload bytes left in the frame */
    uint64_t off;  /* payload offset, for the mask */
    uint8_t *pend;
    char *req;          /* partial upgrade request (fanout: partial publish requests) */
    struct fchan *chan; /* fanout: the channel subscribed to */
    uint32_t chan_pos;  /* its index in chan->fds */
    uint32_t msg_len;   /* fanout: a client message being received */
    uint8_t *msg;
};

struct floor {
    enum floor_mode mode;
    int tls; /* --tls: every connection starts with a TLS handshake */
    int ep, lfd;
    struct fconn *conns;
    size_t nconns;
    uint8_t in[BUF_SIZE];
    uint8_t out[BUF_SIZE + 2 * LOAD_WS_HDR_MAX];
    uint64_t accepted, open, peak, handshakes, bad_requests, frames, bytes_in, bytes_out;
    struct fchan *buckets[NBUCKETS];
    struct fchan *touched;
    uint64_t publishes, deliveries, drops;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* fanout: leaves the channel (the last subscriber moves into the hole). */
static void unsubscribe(struct floor *f, int fd)
{
    struct fchan *ch = f->conns[fd].chan;
    uint32_t pos = f->conns[fd].chan_pos;
    int last = ch->fds[--ch->nsubs];
    ch->fds[pos] = last;
    f->conns[last].chan_pos = pos;
}

static void conn_close(struct floor *f, int fd)
{
    struct fconn *c = &f->conns[fd];
    if (f->tls)
        floor_tls_close(fd);
    close(fd); /* also leaves the epoll set */
    if (c->chan != NULL)
        unsubscribe(f, fd);
    free(c->pend);
    free(c->req);
    free(c->msg);
    memset(c, 0, sizeof(*c));
    f->open--;
}

static ssize_t io_send(struct floor *f, int fd, const void *p, size_t n)
{
    return f->tls ? floor_tls_send(fd, p, n) : send(fd, p, n, MSG_NOSIGNAL);
}

static int set_events(struct floor *f, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(f->ep, EPOLL_CTL_MOD, fd, &ev) == -1) {
        fprintf(stderr, "wsmill-floor: epoll_ctl(MOD, %d) failed: %s\n", fd, strerror(errno));
        return -1;
    }
    return 0;
}

/* Sends p[0..n); keeps what the socket refuses and stops reading until it
 * drains, which is all the backpressure a floor needs. -1: conn closed. */
static int send_out(struct floor *f, int fd, const uint8_t *p, size_t n)
{
    struct fconn *c = &f->conns[fd];
    ssize_t w = n ? io_send(f, fd, p, n) : 0;
    if (w == -1) {
        if (errno != EAGAIN) {
            conn_close(f, fd);
            return -1;
        }
        w = 0;
    }
    f->bytes_out += (uint64_t)w;
    if ((size_t)w == n) {
        if (c->close_after) {
            conn_close(f, fd);
            return -1;
        }
        return 0;
    }
    c->pend = malloc(n - (size_t)w);
    if (c->pend == NULL) {
        conn_close(f, fd);
        return -1;
    }
    memcpy(c->pend, p + w, n - (size_t)w);
    c->pend_len = (uint32_t)(n - (size_t)w);
    if (set_events(f, fd, EPOLLOUT) == -1) {
        conn_close(f, fd);
        return -1;
    }
    return 0;
}

static void on_writable(struct floor *f, int fd)
{
    struct fconn *c = &f->conns[fd];
    ssize_t w = io_send(f, fd, c->pend, c->pend_len);
    if (w == -1) {
        if (errno != EAGAIN)
            conn_close(f, fd);
        return;
    }
    f->bytes_out += (uint64_t)w;
    c->pend_len -= (uint32_t)w;
    memmove(c->pend, c->pend + w, c->pend_len);
    if (c->pend_len > 0)
        return;
    free(c->pend);
    c->pend = NULL;
    if (c->close_after)
        conn_close(f, fd);
    else if (set_events(f, fd, EPOLLIN) == -1)
        conn_close(f, fd);
}

/* Finds header name's value in the request; NULL when absent. */
static const char *find_header(const char *req, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = req + len;
    const char *p = memchr(req, '\n', len);
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            return NULL;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

/* Answers a complete request: a 101 when it carries a key, else a 400. */
static int answer_request(struct floor *f, int fd, const char *req, size_t len)
{
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                              "Content-Length: 0\r\n\r\n";
    struct fconn *c = &f->conns[fd];
    size_t klen;
    const char *key = find_header(req, len, "Sec-WebSocket-Key", &klen);
    if (key == NULL || klen == 0) {
        f->bad_requests++;
        c->close_after = 1;
        return send_out(f, fd, (const uint8_t *)bad, sizeof(bad) - 1);
    }
    char accept[LOAD_WS_ACCEPT_LEN + 1];
    char resp[160];
    load_ws_accept(key, klen, accept);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    f->handshakes++;
    c->state = FS_FRAMES;
    return send_out(f, fd, (const uint8_t *)resp, (size_t)n);
}

/* Consumes a frame header from p; returns bytes used, -1 on a bad frame. */
static ssize_t frame_header(struct floor *f, struct fconn *c, const uint8_t *p, size_t n, size_t *olen)
{
    struct load_ws_frame fr;
    enum load_ws_frame_err err;
    size_t room = (size_t)(LOAD_WS_HDR_MAX - c->hdr_len);
    size_t take = n < room ? n : room;
    memcpy(c->hdr + c->hdr_len, p, take);
    int h = load_ws_frame_parse(c->hdr, c->hdr_len + take, &fr, &err);
    if (h == 0) {
        c->hdr_len += (uint8_t)take;
        return (ssize_t)take;
    }
    if (h == -1 || !fr.masked || fr.rsv1) /* clients must mask (RFC 6455 5.1); no extension here */
        return -1;
    size_t used = (size_t)h - c->hdr_len;
    c->hdr_len = 0;
    c->left = fr.len;
    c->off = 0;
    memcpy(c->mask, fr.mask, 4);
    c->drop = fr.opcode == LOAD_WS_PONG;
    c->is_close = fr.opcode == LOAD_WS_CLOSE;
    f->frames++;
    if (!c->drop) {
        unsigned op = fr.opcode == LOAD_WS_PING ? LOAD_WS_PONG : fr.opcode;
        uint8_t *o = f->out + *olen;
        *olen += load_ws_frame_header(o, op, fr.len, NULL);
        if (!fr.fin)
            o[0] &= 0x7f; /* keep the client's fragmentation */
    }
    if (c->left == 0 && c->is_close)
        c->close_after = 1;
    return (ssize_t)used;
}

/* Echoes the frames in p[0..n) into f->out; -1 on a protocol error. */
static int echo_frames(struct floor *f, struct fconn *c, const uint8_t *p, size_t n, size_t *olen)
{
    while (n > 0 && !c->close_after) {
        if (c->left == 0) {
            ssize_t used = frame_header(f, c, p, n, olen);
            if (used == -1)
                return -1;
            p += used;
            n -= (size_t)used;
            continue;
        }
        size_t take = c->left < n ? (size_t)c->left : n;
        if (!c->drop) {
            memcpy(f->out + *olen, p, take);
            load_ws_mask(f->out + *olen, take, c->mask, c->off);
            *olen += take;
        }
        c->off += take;
        c->left -= take;
        p += take;
        n -= take;
        if (c->left == 0 && c->is_close)
            c->close_after = 1; /* anything after a close is ignored */
    }
    return 0;
}

/* Gathers the upgrade request. The usual case, a whole request in one
 * read, is used in place; otherwise it is copied. Returns 1 when complete
 * (req, len set; p, n keep the bytes of this read not copied), 0 when
 * more is needed, -1 when the connection was closed. */
static int gather_request(struct floor *f, int fd, const uint8_t **p, size_t *n, const char **req,
                          size_t *len)
{
    struct fconn *c = &f->conns[fd];
    if (c->req == NULL && memmem(*p, *n, "\r\n\r\n", 4) != NULL) {
        *req = (const char *)*p;
        *len = *n;
        *p += *n;
        *n = 0;
        return 1;
    }
    if (c->req == NULL && (c->req = malloc(REQ_MAX)) == NULL) {
        conn_close(f, fd);
        return -1;
    }
    size_t room = (size_t)REQ_MAX - c->req_len;
    size_t take = *n < room ? *n : room;
    memcpy(c->req + c->req_len, *p, take);
    c->req_len += (uint32_t)take;
    *p += take;
    *n -= take;
    *req = c->req;
    *len = c->req_len;
    if (memmem(c->req, c->req_len, "\r\n\r\n", 4) != NULL)
        return 1;
    if (c->req_len == REQ_MAX) /* too large to be a request worth answering */
        conn_close(f, fd);
    return c->req_len == REQ_MAX ? -1 : 0;
}

/* Sends f->out[0..olen), behind a 101 the socket partly refused if any. */
static void send_behind(struct floor *f, int fd, size_t olen)
{
    struct fconn *c = &f->conns[fd];
    if (c->pend == NULL) {
        send_out(f, fd, f->out, olen);
        return;
    }
    uint8_t *np = realloc(c->pend, c->pend_len + olen);
    if (np == NULL) {
        conn_close(f, fd);
        return;
    }
    memcpy(np + c->pend_len, f->out, olen);
    c->pend = np;
    c->pend_len += (uint32_t)olen;
}

/* ---- fanout ------------------------------------------------------------ */

static struct fchan *chan_get(struct floor *f, const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    struct fchan **b = &f->buckets[h % NBUCKETS];
    for (struct fchan *ch = *b; ch != NULL; ch = ch->next)
        if (ch->len == len && memcmp(ch->name, name, len) == 0)
            return ch;
    struct fchan *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    memcpy(ch->name, name, len);
    ch->len = (uint8_t)len;
    ch->next = *b;
    *b = ch;
    return ch;
}

/* Appends one message to its channel's round (a server frame). */
static void publish(struct floor *f, const char *name, size_t nlen, const uint8_t *p, size_t n, unsigned op)
{
    f->publishes++;
    if (nlen == 0 || nlen >= CHAN_MAX)
        return;
    struct fchan *ch = chan_get(f, name, nlen);
    if (ch == NULL || ch->nsubs == 0)
        return;
    if (ch->blen + n + LOAD_WS_HDR_MAX > ch->bcap) {
        size_t cap = ch->bcap ? ch->bcap : 4096;
        while (cap < ch->blen + n + LOAD_WS_HDR_MAX)
            cap *= 2;
        uint8_t *nb = realloc(ch->batch, cap);
        if (nb == NULL)
            return;
        ch->batch = nb;
        ch->bcap = cap;
    }
    ch->blen += load_ws_frame_header(ch->batch + ch->blen, op, n, NULL);
    memcpy(ch->batch + ch->blen, p, n);
    ch->blen += n;
    ch->nmsgs++;
    if (!ch->touched) {
        ch->touched = 1;
        ch->touched_next = f->touched;
        f->touched = ch;
    }
}

/* Hands a round's frames to one subscriber: one send, the rest waits. */
static void deliver(struct floor *f, struct fchan *ch, int fd)
{
    struct fconn *c = &f->conns[fd];
    if (c->pend == NULL) {
        f->deliveries += ch->nmsgs;
        send_out(f, fd, ch->batch, ch->blen);
        return;
    }
    if (c->pend_len + ch->blen > PEND_MAX) {
        f->drops += ch->nmsgs;
        return;
    }
    uint8_t *np = realloc(c->pend, c->pend_len + ch->blen);
    if (np == NULL) {
        f->drops += ch->nmsgs;
        return;
    }
    memcpy(np + c->pend_len, ch->batch, ch->blen);
    c->pend = np;
    c->pend_len += (uint32_t)ch->blen;
    f->deliveries += ch->nmsgs;
}

/* End of a loop iteration: every channel that got messages fans out. */
static void flush_channels(struct floor *f)
{
    while (f->touched != NULL) {
        struct fchan *ch = f->touched;
        f->touched = ch->touched_next;
        ch->touched = 0;
        /* Backwards: a subscriber closed here swaps in one already served. */
        for (uint32_t i = ch->nsubs; i-- > 0;)
            if (i < ch->nsubs)
                deliver(f, ch, ch->fds[i]);
        ch->blen = 0;
        ch->nmsgs = 0;
    }
}

static int subscribe(struct floor *f, int fd, const char *req, size_t len)
{
    const char *path = memchr(req, ' ', len);
    if (path == NULL || (size_t)(req + len - path) < 5 || memcmp(path + 1, "/ch/", 4) != 0)
        return 0; /* not a channel: just held */
    const char *name = path + 5;
    const char *end = memchr(name, ' ', (size_t)(req + len - name));
    size_t nlen = end ? (size_t)(end - name) : 0;
    if (nlen == 0 || nlen >= CHAN_MAX)
        return 0;
    struct fchan *ch = chan_get(f, name, nlen);
    if (ch == NULL)
        return -1;
    if (ch->nsubs == ch->cap) {
        uint32_t cap = ch->cap ? ch->cap * 2 : 16;
        int *nf = realloc(ch->fds, cap * sizeof(*nf));
        if (nf == NULL)
            return -1;
        ch->fds = nf;
        ch->cap = cap;
    }
    f->conns[fd].chan = ch;
    f->conns[fd].chan_pos = ch->nsubs;
    ch->fds[ch->nsubs++] = fd;
    return 0;
}

/* A subscriber's frames: data is published to its channel, a ping is
 * answered, a close is answered and ends it. -1 on a protocol error. */
static int sub_frames(struct floor *f, struct fconn *c, const uint8_t *p, size_t n, size_t *olen)
{
    while (n > 0 && !c->close_after) {
        if (c->left == 0) {
            struct load_ws_frame fr;
            enum load_ws_frame_err err;
            size_t room = (size_t)(LOAD_WS_HDR_MAX - c->hdr_len);
            size_t take = n < room ? n : room;
            memcpy(c->hdr + c->hdr_len, p, take);
            int h = load_ws_frame_parse(c->hdr, c->hdr_len + take, &fr, &err);
            if (h == 0) {
                c->hdr_len += (uint8_t)take;
                return 0;
            }
            if (h == -1 || !fr.masked || fr.rsv1 || !fr.fin || fr.len > MSG_MAX)
                return -1; /* the floor takes whole, masked messages only */
            size_t used = (size_t)h - c->hdr_len;
            c->hdr_len = 0;
            p += used;
            n -= used;
            c->left = fr.len;
            c->off = 0;
            memcpy(c->mask, fr.mask, 4);
            c->is_close = fr.opcode == LOAD_WS_CLOSE;
            c->op = fr.opcode;
            f->frames++;
            if (c->msg == NULL && (c->msg = malloc(MSG_MAX)) == NULL)
                return -1;
            c->msg_len = 0;
        } else {
            size_t take = c->left < n ? (size_t)c->left : n;
            memcpy(c->msg + c->msg_len, p, take);
            load_ws_mask(c->msg + c->msg_len, take, c->mask, c->off);
            c->msg_len += (uint32_t)take;
            c->off += take;
            c->left -= take;
            p += take;
            n -= take;
        }
        if (c->left > 0)
            continue;
        unsigned op = c->op;
        if (op == LOAD_WS_PING || op == LOAD_WS_CLOSE) {
            size_t plen = op == LOAD_WS_CLOSE && c->msg_len > 2 ? 2 : c->msg_len;
            *olen += load_ws_frame_header(f->out + *olen, op == LOAD_WS_PING ? LOAD_WS_PONG : op, plen, NULL);
            memcpy(f->out + *olen, c->msg, plen);
            *olen += plen;
            if (op == LOAD_WS_CLOSE)
                c->close_after = 1;
        } else if ((op == LOAD_WS_TEXT || op == LOAD_WS_BINARY) && c->chan != NULL) {
            publish(f, c->chan->name, c->chan->len, c->msg, c->msg_len, op);
        }
        if (*olen > BUF_SIZE - 256)
            return -1; /* a flood of pings: not a floor's business */
    }
    return 0;
}

/* POST /pub/NAME requests (keep-alive, pipelined): each publishes its body
 * and gets a 202. Partial requests wait in c->req. */
static void http_input(struct floor *f, int fd, const uint8_t *in, size_t n)
{
    static const char ok[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    struct fconn *c = &f->conns[fd];
    const char *buf = (const char *)in;
    size_t len = n, used = 0, olen = 0;
    if (c->req_len > 0) { /* the leftover is under REQ_MAX, a read under BUF_SIZE */
        memcpy(c->req + c->req_len, in, n);
        c->req_len += (uint32_t)n;
        buf = c->req;
        len = c->req_len;
    }
    for (;;) {
        const char *b = buf + used;
        size_t rem = len - used;
        const char *end = memmem(b, rem, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        size_t hlen = (size_t)(end + 4 - b), vlen, clen = 0;
        const char *v = find_header(b, hlen, "Content-Length", &vlen);
        for (size_t i = 0; v != NULL && i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
            clen = clen * 10 + (size_t)(v[i] - '0');
        if (hlen + clen > REQ_MAX || rem < 11 || memcmp(b, "POST /pub/", 10) != 0) {
            f->bad_requests++;
            conn_close(f, fd);
            return;
        }
        if (rem < hlen + clen)
            break;
        const char *name = b + 10;
        size_t nlen = strcspn(name, " ?");
        publish(f, name, nlen, (const uint8_t *)b + hlen, clen, LOAD_WS_BINARY);
        if (olen + sizeof(ok) > sizeof(f->out)) {
            send_behind(f, fd, olen);
            olen = 0;
            if (c->state != FS_HTTP)
                return; /* closed by a failed send */
        }
        memcpy(f->out + olen, ok, sizeof(ok) - 1);
        olen += sizeof(ok) - 1;
        used += hlen + clen;
    }
    size_t rest = len - used;
    if (rest > 0) {
        if (rest > REQ_MAX) { /* no end of headers in 8 KiB */
            f->bad_requests++;
            conn_close(f, fd);
            return;
        }
        if (c->req == NULL && (c->req = malloc(HTTP_BUF)) == NULL) {
            conn_close(f, fd);
            return;
        }
        memmove(c->req, buf + used, rest);
    }
    c->req_len = (uint32_t)rest;
    if (olen > 0)
        send_behind(f, fd, olen);
}

/* ---- upgrade and echo ---------------------------------------------------- */

/* Upgrade mode before the 101: answer the request, then echo any frames
 * that arrived behind it. */
static void on_request(struct floor *f, int fd, const uint8_t *p, size_t n)
{
    struct fconn *c = &f->conns[fd];
    const char *req;
    size_t len;
    if (gather_request(f, fd, &p, &n, &req, &len) != 1)
        return;
    const char *end = (const char *)memmem(req, len, "\r\n\r\n", 4) + 4;
    size_t rest = len - (size_t)(end - req);
    if (answer_request(f, fd, req, (size_t)(end - req)) == -1 || c->state != FS_FRAMES)
        return;
    if (f->mode == FLOOR_FANOUT && subscribe(f, fd, req, (size_t)(end - req)) == -1) {
        conn_close(f, fd);
        return;
    }
    /* Frames behind the request: first the part in our copy, then the rest. */
    size_t olen = 0;
    int (*frames)(struct floor *, struct fconn *, const uint8_t *, size_t, size_t *) =
        f->mode == FLOOR_FANOUT ? sub_frames : echo_frames;
    if (frames(f, c, (const uint8_t *)end, rest, &olen) == -1 || frames(f, c, p, n, &olen) == -1) {
        conn_close(f, fd);
        return;
    }
    free(c->req);
    c->req = NULL;
    c->req_len = 0;
    send_behind(f, fd, olen);
}

/* --tls: the handshake; 1 once done (the connection goes on as its mode
 * says), 0 while waiting, -1 when it failed (closed). */
static int tls_step(struct floor *f, int fd)
{
    int want_write = 0;
    int r = floor_tls_handshake(fd, &want_write);
    if (r == -1) {
        f->bad_requests++;
        conn_close(f, fd);
        return -1;
    }
    if (set_events(f, fd, r == 0 && want_write ? EPOLLOUT : EPOLLIN) == -1) {
        conn_close(f, fd);
        return -1;
    }
    if (r == 1)
        f->conns[fd].state = f->mode == FLOOR_ECHO ? FS_RAW : FS_REQUEST;
    return r;
}

static void on_readable(struct floor *f, int fd)
{
    struct fconn *c = &f->conns[fd];
    if (c->state == FS_TLS && tls_step(f, fd) != 1)
        return;
    ssize_t n = f->tls ? floor_tls_recv(fd, f->in, sizeof(f->in)) : read(fd, f->in, sizeof(f->in));
    if (n == -1 && errno == EAGAIN)
        return;
    if (n <= 0) { /* EOF or reset: the client is gone */
        conn_close(f, fd);
        return;
    }
    f->bytes_in += (uint64_t)n;
    if (c->state == FS_RAW) {
        send_out(f, fd, f->in, (size_t)n);
        return;
    }
    if (c->state == FS_REQUEST && f->mode == FLOOR_FANOUT && c->req_len == 0 && n >= 5 &&
        memcmp(f->in, "POST ", 5) == 0)
        c->state = FS_HTTP;
    if (c->state == FS_HTTP) {
        http_input(f, fd, f->in, (size_t)n);
        return;
    }
    if (c->state == FS_REQUEST) {
        on_request(f, fd, f->in, (size_t)n);
        return;
    }
    if (c->close_after)
        return; /* close answered, output pending: ignore the rest */
    size_t olen = 0;
    int r = f->mode == FLOOR_FANOUT ? sub_frames(f, c, f->in, (size_t)n, &olen)
                                    : echo_frames(f, c, f->in, (size_t)n, &olen);
    if (r == -1) {
        conn_close(f, fd);
        return;
    }
    send_out(f, fd, f->out, olen);
}

static void on_accept(struct floor *f)
{
    for (;;) {
        int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR) {
                /* EMFILE and friends: report and let the loop breathe; the
                 * listen queue keeps the rest waiting. */
                fprintf(stderr, "wsmill-floor: accept4(%d) failed: %s\n", f->lfd, strerror(errno));
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
            }
            return;
        }
        int one = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if ((size_t)fd >= f->nconns || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
            epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
            fprintf(stderr, "wsmill-floor: setting up fd %d failed: %s\n", fd, strerror(errno));
            close(fd);
            continue;
        }
        f->conns[fd].state = f->mode == FLOOR_ECHO ? FS_RAW : FS_REQUEST;
        if (f->tls && floor_tls_accept(fd) == -1) {
            fprintf(stderr, "wsmill-floor: SSL_new for fd %d failed\n", fd);
            floor_tls_close(fd);
            close(fd);
            continue;
        }
        if (f->tls)
            f->conns[fd].state = FS_TLS;
        f->accepted++;
        if (++f->open > f->peak)
            f->peak = f->open;
    }
}

static int listen_on(struct floor *f, const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sin = {.sin_family = AF_INET};
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
        fprintf(stderr, "wsmill-floor: --listen %s: expected ADDR:PORT\n", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || port <= 0 || port > 65535) {
        fprintf(stderr, "wsmill-floor: --listen %s: expected IPv4:PORT\n", addr);
        return -1;
    }
    sin.sin_port = htons((uint16_t)port);
    int one = 1;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->lfd == -1 || setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
        listen(f->lfd, 65535) == -1) { /* the kernel caps it at net.core.somaxconn */
        fprintf(stderr, "wsmill-floor: listening on %s failed: %s\n", addr, strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = f->lfd};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, f->lfd, &ev) == -1) {
        fprintf(stderr, "wsmill-floor: epoll_ctl(ADD, %d) failed: %s\n", f->lfd, strerror(errno));
        return -1;
    }
    return 0;
}

static void run(struct floor *f, double duration)
{
    static struct epoll_event evs[MAX_EVENTS];
    time_t deadline = time(NULL) + (time_t)duration;
    while (!stop && time(NULL) < deadline) {
        int n = epoll_wait(f->ep, evs, MAX_EVENTS, 1000);
        if (n == -1 && errno != EINTR) {
            fprintf(stderr, "wsmill-floor: epoll_wait(%d) failed: %s\n", f->ep, strerror(errno));
            return;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == f->lfd)
                on_accept(f);
            else if (f->conns[fd].pend != NULL)
                on_writable(f, fd);
            else
                on_readable(f, fd);
        }
        if (f->touched != NULL)
            flush_channels(f);
    }
}

static const char usage[] =
    "usage: wsmill-floor --listen ADDR:PORT [--mode echo|upgrade|fanout] [--cpu N] [--duration S]\n"
    "                    [--tls CERT,KEY]\n"
    "  --tls: echo and upgrade over TLS (a minimal OpenSSL accept loop, PEM files)\n"
    "  echo: send raw TCP bytes back (wsmill-load --raw)\n"
    "  upgrade: answer a bare 101, then echo WebSocket frames unmasked\n"
    "  fanout: GET /ch/NAME subscribes, POST /pub/NAME or a client frame publishes;\n"
    "          each loop iteration sends every subscriber its channel's new frames at once\n"
    "  --duration: stop after S seconds even without a signal (600)\n";

static size_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        fprintf(stderr, "wsmill-floor: getrlimit(RLIMIT_NOFILE) failed: %s\n", strerror(errno));
        return 1024;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        fprintf(stderr, "wsmill-floor: setrlimit(RLIMIT_NOFILE, %llu) failed: %s\n",
                (unsigned long long)rl.rlim_max, strerror(errno));
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur > 4u << 20 ? 4u << 20 : (size_t)rl.rlim_cur;
}

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) == -1) {
        fprintf(stderr, "wsmill-floor: sched_setaffinity(cpu %d) failed: %s\n", cpu, strerror(errno));
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct floor *f, const char **listen, double *duration,
                      const char **tls)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"mode", required_argument, NULL, 'm'},
        {"cpu", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"tls", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'l')
            *listen = optarg;
        else if (c == 'm' && strcmp(optarg, "echo") == 0)
            f->mode = FLOOR_ECHO;
        else if (c == 'm' && strcmp(optarg, "upgrade") == 0)
            f->mode = FLOOR_UPGRADE;
        else if (c == 'm' && strcmp(optarg, "fanout") == 0)
            f->mode = FLOOR_FANOUT;
        else if (c == 't')
            *tls = optarg;
        else if (c == 'c' && pin(atoi(optarg)) == 0)
            continue;
        else if (c == 'd' && (*duration = atof(optarg)) > 0)
            continue;
        else
            return -1;
    }
    return *listen != NULL && optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
    static struct floor f;
    const char *listen_addr = NULL, *tls = NULL;
    double duration = 600;
    if (parse_args(argc, argv, &f, &listen_addr, &duration, &tls) == -1 || (tls && f.mode == FLOOR_FANOUT)) {
        fputs(usage, stderr);
        return 2;
    }
    f.nconns = raise_nofile();
    f.conns = calloc(f.nconns, sizeof(*f.conns));
    f.ep = epoll_create1(EPOLL_CLOEXEC);
    if (f.conns == NULL || f.ep == -1) {
        fprintf(stderr, "wsmill-floor: setup failed: %s\n", strerror(errno));
        return 1;
    }
    f.tls = tls != NULL;
    if ((tls && floor_tls_init(tls, f.nconns) == -1) || listen_on(&f, listen_addr) == -1)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static const char *const names[] = {"echo", "upgrade", "fanout"};
    fprintf(stderr, "wsmill-floor: %s mode%s on %s (pid %d)\n", names[f.mode], f.tls ? " over TLS" : "",
            listen_addr, (int)getpid());

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run(&f, duration);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"floor\":\"%s\",\"tls\":%s,\"listen\":\"%s\",\"accepted\":%llu,\"open_at_exit\":%llu,"
           "\"peak_open\":%llu,\"handshakes\":%llu,\"bad_requests\":%llu,\"frames\":%llu,"
           "\"bytes_in\":%llu,\"bytes_out\":%llu,\"publishes\":%llu,\"deliveries\":%llu,\"drops\":%llu,"
           "\"elapsed_s\":%.3f}\n",
           names[f.mode], f.tls ? "true" : "false", listen_addr, (unsigned long long)f.accepted,
           (unsigned long long)f.open, (unsigned long long)f.peak, (unsigned long long)f.handshakes,
           (unsigned long long)f.bad_requests, (unsigned long long)f.frames, (unsigned long long)f.bytes_in,
           (unsigned long long)f.bytes_out, (unsigned long long)f.publishes, (unsigned long long)f.deliveries,
           (unsigned long long)f.drops,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
