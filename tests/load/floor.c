/* floor.c: wsmill-floor, the physical floor a WebSocket server is measured
 * against.
 *
 * One thread, one epoll loop, no allocation while idle. --mode echo sends
 * raw TCP bytes back; --mode upgrade answers a bare, correct 101 and then
 * echoes frames as cheaply as possible: unmask, send back unmasked with the
 * same opcode and FIN bit (ping becomes pong, pongs are dropped, a close is
 * answered with the same close and the connection ends). Whatever wsmill
 * costs beyond this, for the same load, is wsmill's own overhead. */
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

#include "load_ws.h"

#define BUF_SIZE   65536
#define REQ_MAX    8192
#define MAX_EVENTS 1024

enum floor_mode { FLOOR_ECHO, FLOOR_UPGRADE };

enum fconn_state { FS_FREE, FS_RAW, FS_REQUEST, FS_FRAMES };

/* Per connection, indexed by fd: the frame being echoed and any output the
 * socket refused. Nothing is allocated unless a read or write is partial. */
struct fconn {
    uint8_t state;
    uint8_t hdr_len;
    uint8_t drop;        /* the frame being read is a pong: not echoed */
    uint8_t is_close;    /* the frame being read is a close */
    uint8_t close_after; /* close answered: close TCP once output is out */
    uint8_t mask[4];
    uint8_t hdr[LOAD_WS_HDR_MAX];
    uint16_t req_len;
    uint32_t pend_len;
    uint64_t left; /* payload bytes left in the frame */
    uint64_t off;  /* payload offset, for the mask */
    uint8_t *pend;
    char *req; /* partial upgrade request */
};

struct floor {
    enum floor_mode mode;
    int ep, lfd;
    struct fconn *conns;
    size_t nconns;
    uint8_t in[BUF_SIZE];
    uint8_t out[BUF_SIZE + 2 * LOAD_WS_HDR_MAX];
    uint64_t accepted, open, peak, handshakes, bad_requests, frames, bytes_in, bytes_out;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_close(struct floor *f, int fd)
{
    struct fconn *c = &f->conns[fd];
    close(fd); /* also leaves the epoll set */
    free(c->pend);
    free(c->req);
    memset(c, 0, sizeof(*c));
    f->open--;
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
    ssize_t w = n ? send(fd, p, n, MSG_NOSIGNAL) : 0;
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
    ssize_t w = send(fd, c->pend, c->pend_len, MSG_NOSIGNAL);
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
    if (h == -1 || !fr.masked) /* clients must mask (RFC 6455 5.1) */
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
    c->req_len += (uint16_t)take;
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
    /* Frames behind the request: first the part in our copy, then the rest. */
    size_t olen = 0;
    if (echo_frames(f, c, (const uint8_t *)end, rest, &olen) == -1 || echo_frames(f, c, p, n, &olen) == -1) {
        conn_close(f, fd);
        return;
    }
    free(c->req);
    c->req = NULL;
    c->req_len = 0;
    send_behind(f, fd, olen);
}

static void on_readable(struct floor *f, int fd)
{
    struct fconn *c = &f->conns[fd];
    ssize_t n = read(fd, f->in, sizeof(f->in));
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
    if (c->state == FS_REQUEST) {
        on_request(f, fd, f->in, (size_t)n);
        return;
    }
    if (c->close_after)
        return; /* close answered, output pending: ignore the rest */
    size_t olen = 0;
    if (echo_frames(f, c, f->in, (size_t)n, &olen) == -1) {
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
    }
}

static const char usage[] =
    "usage: wsmill-floor --listen ADDR:PORT [--mode echo|upgrade] [--cpu N] [--duration S]\n"
    "  echo: send raw TCP bytes back (wsmill-load --raw)\n"
    "  upgrade: answer a bare 101, then echo WebSocket frames unmasked\n"
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

static int parse_args(int argc, char **argv, struct floor *f, const char **listen, double *duration)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"mode", required_argument, NULL, 'm'},
        {"cpu", required_argument, NULL, 'c'},    {"duration", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'l')
            *listen = optarg;
        else if (c == 'm' && strcmp(optarg, "echo") == 0)
            f->mode = FLOOR_ECHO;
        else if (c == 'm' && strcmp(optarg, "upgrade") == 0)
            f->mode = FLOOR_UPGRADE;
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
    const char *listen_addr = NULL;
    double duration = 600;
    if (parse_args(argc, argv, &f, &listen_addr, &duration) == -1) {
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
    if (listen_on(&f, listen_addr) == -1)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "wsmill-floor: %s mode on %s (pid %d)\n", f.mode == FLOOR_ECHO ? "echo" : "upgrade",
            listen_addr, (int)getpid());

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run(&f, duration);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"floor\":\"%s\",\"listen\":\"%s\",\"accepted\":%llu,\"open_at_exit\":%llu,"
           "\"peak_open\":%llu,\"handshakes\":%llu,\"bad_requests\":%llu,\"frames\":%llu,"
           "\"bytes_in\":%llu,\"bytes_out\":%llu,\"elapsed_s\":%.3f}\n",
           f.mode == FLOOR_ECHO ? "echo" : "upgrade", listen_addr, (unsigned long long)f.accepted,
           (unsigned long long)f.open, (unsigned long long)f.peak, (unsigned long long)f.handshakes,
           (unsigned long long)f.bad_requests, (unsigned long long)f.frames, (unsigned long long)f.bytes_in,
           (unsigned long long)f.bytes_out,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
