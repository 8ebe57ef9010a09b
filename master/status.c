/* status.c: the JSON snapshot served on the status socket, and its client. */
#include "status.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "master.h"

#define SEND_TIMEOUT_MS 500

/* A growable string; the snapshot of 256 workers is about 250 KB. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0);
        b->p = xrealloc(b->p, b->cap);
    }
}

static int sun_fill(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

int status_listen(const char *path)
{
    struct sockaddr_un sun;
    if (sun_fill(&sun, path) == -1) {
        log_error("status_socket %s: longer than %zu bytes", path, sizeof sun.sun_path - 1);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_error("socket(AF_UNIX) for %s failed: %s", path, strerror(errno));
        return -1;
    }
    /* The caller checked that no live master answers here: a file left
     * by a killed master is stale. */
    if (unlink(path) == -1 && errno != ENOENT)
        log_warn("unlink(%s) failed: %s", path, strerror(errno));
    mode_t old = umask(0177); /* the socket is created 0600: stats are local */
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc == -1) {
        log_error("bind(%s) failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 64) == -1) {
        log_error("listen(%s, 64) failed: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

static void json_rejects(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b, "\"handshakes_rejected\":{");
    for (int r = 0; r < HS_REJECT_MAX; r++)
        sb_printf(b, "%s\"%s\":%" PRIu64, r ? "," : "", shm_reject_name(r), shm_get(&s->rejected[r]));
    sb_printf(b, "},");
}

static void json_closes(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b, "\"closes\":{");
    for (int c = 0; c < CLOSE_IDX_MAX; c++) {
        int code = shm_close_code(c);
        if (code)
            sb_printf(b, "%s\"%d\":%" PRIu64, c ? "," : "", code, shm_get(&s->closes[c]));
        else
            sb_printf(b, "%s\"other\":%" PRIu64, c ? "," : "", shm_get(&s->closes[c]));
    }
    sb_printf(b, "}");
}

static void json_channels(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b,
              "\"channels\":%" PRIu64 ",\"subscriptions\":%" PRIu64 ",\"publishes\":%" PRIu64
              ",\"publish_rejected\":%" PRIu64 ",\"deliveries\":%" PRIu64 ",\"slow_drops\":%" PRIu64
              ",\"slow_closes\":%" PRIu64 ",\"ring_missed\":%" PRIu64 ",\"ring_lag\":%" PRIu64
              ",\"fanout_passes\":%" PRIu64 ",\"fanout_pass_us\":%" PRIu64 ",\"fanout_pass_last_us\":%" PRIu64
              ",",
              shm_get(&s->channels), shm_get(&s->subscriptions), shm_get(&s->publishes),
              shm_get(&s->publish_rejected), shm_get(&s->deliveries), shm_get(&s->slow_drops),
              shm_get(&s->slow_closes), shm_get(&s->ring_missed), shm_get(&s->ring_lag),
              shm_get(&s->fanout_passes), shm_get(&s->fanout_pass_us), shm_get(&s->fanout_pass_last_us));
}

static void json_deflate(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b,
              "\"deflate\":{\"negotiated\":%" PRIu64 ",\"out_compressed\":%" PRIu64 ",\"out_plain\":%" PRIu64
              ",\"out_bytes_saved\":%" PRIu64 ",\"compressions\":%" PRIu64 ",\"in_compressed\":%" PRIu64
              ",\"in_bytes_saved\":%" PRIu64 ",\"windows\":%" PRIu64 "},",
              shm_get(&s->pmd_negotiated), shm_get(&s->pmd_out_compressed), shm_get(&s->pmd_out_plain),
              shm_get(&s->pmd_out_saved), shm_get(&s->pmd_deflates), shm_get(&s->pmd_in_compressed),
              shm_get(&s->pmd_in_saved), shm_get(&s->pmd_windows));
}

static void json_limits(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b,
              "\"limits\":{\"frame_size\":%" PRIu64 ",\"message_size\":%" PRIu64 ",\"message_rate\":%" PRIu64
              ",\"byte_rate\":%" PRIu64 "},",
              shm_get(&s->limit_frame_size), shm_get(&s->limit_message_size), shm_get(&s->limit_message_rate),
              shm_get(&s->limit_byte_rate));
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(struct sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c < 0x20)
            sb_printf(b, "\\u%04x", c);
        else
            sb_printf(b, "%c", c);
    }
    sb_printf(b, "\"");
}

static void json_counters(struct sbuf *b, struct worker_slot *s)
{
    sb_printf(b, "\"accepted\":%" PRIu64 ",\"accept_errors\":%" PRIu64 ",\"handshakes\":%" PRIu64 ",",
              shm_get(&s->accepted), shm_get(&s->accept_errors), shm_get(&s->handshakes));
    json_rejects(b, s);
    sb_printf(b,
              "\"messages_in\":%" PRIu64 ",\"messages_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
              ",\"bytes_out\":%" PRIu64 ",\"sends\":%" PRIu64 ",\"backpressure_closes\":%" PRIu64
              ",\"pings_sent\":%" PRIu64 ",\"idle_closes\":%" PRIu64 ",",
              shm_get(&s->messages_in), shm_get(&s->messages_out), shm_get(&s->bytes_in),
              shm_get(&s->bytes_out), shm_get(&s->sends), shm_get(&s->backpressure_closes),
              shm_get(&s->pings_sent), shm_get(&s->idle_closes));
    json_channels(b, s);
    sb_printf(b,
              "\"broker_reconnects\":%" PRIu64 ",\"broker_lost\":%" PRIu64 ",\"redis_publishes\":%" PRIu64
              ",\"redis_received\":%" PRIu64 ",",
              shm_get(&s->broker_reconnects), shm_get(&s->broker_lost), shm_get(&s->redis_publishes),
              shm_get(&s->redis_received));
    sb_printf(b,
              "\"tls_handshakes\":%" PRIu64 ",\"tls_handshake_errors\":%" PRIu64 ",\"proxy_refused\":%" PRIu64
              ",\"tls_cert_generation\":%" PRIu64 ",",
              shm_get(&s->tls_handshakes), shm_get(&s->tls_handshake_errors), shm_get(&s->proxy_refused),
              shm_get(&s->tls_ctx_generation));
    json_limits(b, s);
    json_deflate(b, s);
    json_closes(b, s);
}

/* The worker writes its own state; a retired one that has not read its
 * SIGWINCH yet is already draining as far as anyone asking is concerned. */
static const char *state_name(const struct master_worker *w, struct worker_slot *s)
{
    int st = (int)atomic_load(&s->state);
    if (w->role == SLOT_RETIRING && (st == WORKER_ACTIVE || st == WORKER_STARTING))
        st = WORKER_DRAINING;
    return shm_worker_state_name(st);
}

static void json_worker(struct sbuf *b, int id, const struct master_worker *w, struct worker_slot *s)
{
    sb_printf(b,
              "{\"id\":%d,\"pid\":%d,\"generation\":%u,\"socket\":%d,\"state\":\"%s\",\"started_at\":%" PRId64
              ",\"connections\":%" PRIu64 ",\"broker_state\":\"%s\",",
              id, (int)atomic_load(&s->pid), (unsigned)atomic_load(&s->generation), w->sock, state_name(w, s),
              (int64_t)atomic_load(&s->started_at), shm_get(&s->connections),
              shm_broker_state_name((int)atomic_load(&s->broker_state)));
    json_counters(b, s);
    sb_printf(b, "}");
}

static void json_reload(struct sbuf *b, const struct reload_info *r)
{
    sb_printf(
        b,
        "\"last_reload\":{\"seq\":%" PRIu64 ",\"ok\":%d,\"at\":%" PRId64 ",\"generation\":%u,\"serving\":%d"
        ",\"serving_ms\":%" PRId64 ",\"retired_workers\":%d,\"retired_connections\":%" PRId64 ",\"changed\":",
        r->seq, r->ok, r->at, r->generation, r->serving_ms >= 0, r->serving_ms, r->retired_workers,
        r->retired_conns);
    json_str(b, r->changed);
    sb_printf(b, ",\"error\":");
    json_str(b, r->error);
    sb_printf(b, "},");
}

static void json_upgrade(struct sbuf *b, const struct master *m)
{
    const char *phase = m->up.handover ? "handing_over" : m->up.child ? "new_master_running" : "none";
    sb_printf(
        b,
        "\"upgrade\":{\"phase\":\"%s\",\"new_master_pid\":%d,\"started\":%u,\"failed\":%u,\"refused\":%u,"
        "\"inherited\":%d,\"binary\":",
        phase, (int)m->up.child, m->up.started, m->up.failed, m->up.refused, m->up.status_inherited);
    json_str(b, m->up.exe);
    sb_printf(b, ",\"last_error\":");
    json_str(b, m->up.last_error);
    sb_printf(b, "},");
}

/* The broker across workers: "connected" when every live worker is,
 * "degraded" when only some are, else what they all are (down, connecting). */
static void json_broker(struct sbuf *b, struct master *m)
{
    struct worker_slot *g = &m->shm->gone;
    uint64_t reconnects = shm_get(&g->broker_reconnects), lost = shm_get(&g->broker_lost);
    uint64_t pubs = shm_get(&g->redis_publishes), recv = shm_get(&g->redis_received);
    int n = 0, connected = 0, worst = BROKER_STATE_LOCAL;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        struct worker_slot *s = &m->shm->slots[i];
        if (m->w[i].role == SLOT_FREE)
            continue;
        reconnects += shm_get(&s->broker_reconnects);
        lost += shm_get(&s->broker_lost);
        pubs += shm_get(&s->redis_publishes);
        recv += shm_get(&s->redis_received);
        int st = (int)atomic_load(&s->broker_state);
        if (atomic_load(&s->state) != WORKER_ACTIVE && atomic_load(&s->state) != WORKER_DRAINING)
            continue;
        n++;
        connected += st == BROKER_STATE_CONNECTED;
        if (st != BROKER_STATE_CONNECTED && st > worst)
            worst = st;
    }
    const char *state = m->cfg.broker == BROKER_LOCAL ? "local"
                        : n && connected == n         ? "connected"
                        : connected                   ? "degraded"
                                                      : shm_broker_state_name(worst);
    sb_printf(
        b,
        "\"broker\":{\"kind\":\"%s\",\"connection\":\"%s\",\"workers_connected\":%d,\"reconnects\":%" PRIu64
        ",\"lost\":%" PRIu64 ",\"redis_publishes\":%" PRIu64 ",\"redis_received\":%" PRIu64 "},",
        m->cfg.broker == BROKER_REDIS ? "redis" : "local", state, connected, reconnects, lost, pubs, recv);
}

/* What the server serves and reads: the addresses actually bound (port 0
 * resolved), the file a reload re-reads, where the log goes. */
static void json_where(struct sbuf *b, const struct master *m)
{
    sb_printf(b, "\"listen\":");
    json_str(b, m->cur_socks[0] >= 0 && m->socks[m->cur_socks[0]].fd != -1 ? m->socks[m->cur_socks[0]].addr
                                                                           : m->cfg.listen);
    sb_printf(b, ",\"publish_listen\":");
    json_str(b, m->cfg.publish_listen);
    sb_printf(b, ",\"config_file\":");
    json_str(b, m->conf_real);
    sb_printf(b, ",\"log_file\":");
    json_str(b, m->cfg.log_file);
    sb_printf(b, ",\"max_connections_auto\":%d,", m->max_conns_auto);
}

static void json_snapshot(struct sbuf *b, struct master *m)
{
    struct shm *shm = m->shm;
    uint64_t total = 0, draining = 0;
    int ndraining = 0, nsocks = 0, first = 1;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (m->w[i].role == SLOT_FREE)
            continue;
        uint64_t c = shm_get(&shm->slots[i].connections);
        total += c;
        if (!strcmp(state_name(&m->w[i], &shm->slots[i]), "draining")) {
            draining += c;
            ndraining++;
        }
    }
    for (int s = 0; s < MASTER_MAX_SOCKETS; s++)
        nsocks += m->socks[s].fd != -1;
    sb_printf(
        b,
        "{\"master_pid\":%d,\"uptime\":%" PRId64 ",\"config_generation\":%" PRIu64 ",\"connections\":%" PRIu64
        ",\"max_connections\":%" PRId64 ",\"generation\":%u,\"switching\":%d"
        ",\"draining_workers\":%d,\"draining_connections\":%" PRIu64 ",\"listening_sockets\":%d"
        ",\"tcp_migrate_req\":%d,\"iptable_full\":%" PRIu64 ",\"worker_deaths\":%" PRIu64 ",",
        (int)shm->master_pid, (int64_t)time(NULL) - shm->start_time,
        (uint64_t)atomic_load(&shm->config_generation), total, m->cfg.max_connections, m->generation,
        m->switching, ndraining, draining, nsocks, m->migrate, shm_get(&shm->iptable_full), m->worker_deaths);
    json_where(b, m);
    json_reload(b, &m->reload);
    json_broker(b, m);
    sb_printf(b,
              "\"retired\":{\"workers\":%" PRIu64 ",\"drained\":%" PRIu64 ",\"closed_at_deadline\":%" PRIu64
              "},",
              m->retire.workers, m->retire.drained, m->retire.at_deadline);
    json_upgrade(b, m);
    /* Counters of workers whose slots were freed, so sums never go back. */
    sb_printf(b, "\"exited_workers\":{");
    json_counters(b, &m->shm->gone);
    sb_printf(b, "},\"workers\":[");
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (m->w[i].role == SLOT_FREE)
            continue;
        if (!first)
            sb_printf(b, ",");
        first = 0;
        json_worker(b, i, &m->w[i], &shm->slots[i]);
    }
    sb_printf(b, "]}\n");
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            log_info("status: send() failed: %s", strerror(errno));
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

void status_serve(int lfd, struct master *m)
{
    struct sbuf b = {xmalloc(4096), 0, 4096};
    struct timeval tv = {0, SEND_TIMEOUT_MS * 1000};
    b.p[0] = '\0';
    for (;;) {
        /* Blocking client socket with a send timeout: a reader that stops
         * reading costs the master at most SEND_TIMEOUT_MS. */
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_error("accept4(status socket) failed: %s", strerror(errno));
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1)
            log_warn("setsockopt(status, SO_SNDTIMEO) failed: %s", strerror(errno));
        b.len = 0;
        json_snapshot(&b, m);
        send_all(fd, b.p, b.len);
        close(fd);
    }
    free(b.p);
}

void status_close(int lfd, const char *path)
{
    if (lfd == -1)
        return;
    close(lfd);
    if (unlink(path) == -1 && errno != ENOENT)
        log_warn("unlink(%s) failed: %s", path, strerror(errno));
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun;
    if (sun_fill(&sun, path) == -1)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int status_adopt(int fd, const char *path)
{
    struct sockaddr_un sun;
    socklen_t len = sizeof sun;
    int on = 0;
    socklen_t olen = sizeof on;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == -1 || !on)
        return 0;
    if (getsockname(fd, (struct sockaddr *)&sun, &len) == -1 || sun.sun_family != AF_UNIX)
        return 0;
    if (len <= offsetof(struct sockaddr_un, sun_path))
        return 0;
    sun.sun_path[sizeof sun.sun_path - 1] = '\0';
    return strcmp(sun.sun_path, path) == 0;
}

int status_probe(const char *path)
{
    int fd = connect_to(path);
    if (fd == -1)
        return 0;
    close(fd);
    return 1;
}

int status_fetch(const char *path, char **out, size_t *outlen)
{
    struct timeval tv = {5, 0};
    struct sbuf b = {xmalloc(65536), 0, 65536};
    int fd = connect_to(path);
    if (fd == -1) {
        fprintf(stderr, "connect(%s) failed: %s: is wsmill running with this config?\n", path,
                strerror(errno));
        free(b.p);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n;
    for (;;) {
        if (b.cap - b.len < 4096)
            b.p = xrealloc(b.p, b.cap *= 2);
        n = read(fd, b.p + b.len, b.cap - b.len - 1);
        if (n <= 0)
            break;
        b.len += (size_t)n;
    }
    int e = errno;
    close(fd);
    if (n == -1 || b.len == 0) {
        fprintf(stderr, "read(%s) failed: %s\n", path, n == -1 ? strerror(e) : "empty answer");
        free(b.p);
        return -1;
    }
    b.p[b.len] = '\0';
    *out = b.p;
    *outlen = b.len;
    return 0;
}

int status_query(const char *path, FILE *out)
{
    char *buf;
    size_t len;
    if (status_fetch(path, &buf, &len) == -1)
        return 1;
    fwrite(buf, 1, len, out);
    free(buf);
    return fflush(out) == 0 ? 0 : 1;
}
