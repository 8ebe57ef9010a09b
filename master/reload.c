/* reload.c: SIGHUP. Hot keys are published in the shared block and every
 * worker re-reads them; keys a running worker cannot change (workers,
 * listen, and any other restart key) start a new generation of workers
 * on the sockets the master holds (plus new ones for a new address or a
 * larger group). When all of it is active, the older generations retire:
 * they stop accepting and serve what they have until it ends or
 * drain_timeout passes. Sockets no generation needs any more are closed
 * by the master; with net.ipv4.tcp_migrate_req their queues move to the
 * sockets that stay. */
#include "master.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/log.h"
#include "capacity.h"
#include "listen.h"
#include "portowner.h"
#include "status.h"
#include "tls_check.h"
#include "tls_listen.h"

/* Keys the master applies itself: nothing for the workers to do. */
static const char *const master_keys[] = {"status_socket", "pid_file"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return 1;
    return 0;
}

static int key_differs(const struct config *a, const struct config *b, const struct config_key *k)
{
    char x[CONFIG_LIST_MAX + 64], y[CONFIG_LIST_MAX + 64];
    config_format(a, k, x, sizeof x);
    config_format(b, k, y, sizeof y);
    return strcmp(x, y) != 0;
}

static void append(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? "," : "", name);
}

/* What a reload has to do, decided key by key. */
struct plan {
    int new_generation; /* a restart key that workers read changed */
    int new_address;    /* listen changed: a new socket group */
    int nworkers;       /* resolved size of the new generation */
    char changed[512];  /* every key that changed */
    char kept[256];     /* restart keys that changed and were kept */
};

static void make_plan(const struct master *m, struct config *nc, struct plan *p)
{
    size_t n;
    const struct config_key *k = config_keys(&n);
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        if (!key_differs(&m->cfg, nc, &k[i]))
            continue;
        /* Restart keys (the table's RELOAD_RESTART) belong to the whole
         * master: ring_size lays out the shared block a new generation
         * shares with the old, and user must be the same for every worker
         * of the block (they wake each other with signals). */
        if (k[i].reloadable == RELOAD_RESTART) {
            memcpy((char *)nc + k[i].offset, (const char *)&m->cfg + k[i].offset, k[i].size);
            append(p->kept, sizeof p->kept, k[i].name);
            continue;
        }
        append(p->changed, sizeof p->changed, k[i].name);
        if (k[i].reloadable == RELOAD_HOT ||
            in_list(k[i].name, master_keys, sizeof master_keys / sizeof *master_keys))
            continue;
        if (!strcmp(k[i].name, "listen"))
            p->new_address = 1;
        /* "auto" and the number of cores are the same generation. */
        if (strcmp(k[i].name, "workers") || capacity_workers(nc) != m->nworkers)
            p->new_generation = 1;
    }
    p->nworkers = capacity_workers(nc);
}

/* The sockets the newest generation serves, in order. */
static int current_socks(const struct master *m, int *cur)
{
    memcpy(cur, m->cur_socks, (size_t)m->nworkers * sizeof *cur);
    return m->nworkers;
}

static int free_sock_entries(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < MASTER_MAX_SOCKETS; i++)
        n += m->socks[i].fd == -1;
    return n;
}

static void unprepare_sockets(struct master *m, const int *socks, int n);

/* Opens what the new generation lacks and fills socks[0..nworkers-1]
 * with socket-table indices. Returns 0, or -1 with the reason in err
 * (nothing new left open). */
static int prepare_sockets(struct master *m, const struct config *nc, const struct plan *p, int *socks,
                           char *err, size_t errlen)
{
    int cur[SHM_MAX_WORKERS], fds[SHM_MAX_WORKERS];
    int ncur = current_socks(m, cur);
    int reuse = p->new_address ? 0 : (ncur < p->nworkers ? ncur : p->nworkers);
    int need = p->nworkers - reuse;
    for (int k = 0; k < reuse; k++)
        socks[k] = cur[k];
    if (need == 0)
        return 0;
    if (need > free_sock_entries(m)) {
        snprintf(err, errlen,
                 "%d more listening sockets needed, the table has room for %d until older"
                 " generations finish draining",
                 need, free_sock_entries(m));
        return -1;
    }
    int rc = reuse > 0 ? listen_open_like(m->socks[cur[0]].fd, need, fds) : listen_open(nc, need, fds);
    if (rc == -1) {
        snprintf(err, errlen, "cannot open %d listening sockets on %s (the log names the failed call)", need,
                 nc->listen);
        return -1;
    }
    for (int k = 0; k < need; k++)
        socks[reuse + k] = listen_table_add(m->socks, MASTER_MAX_SOCKETS, fds[k]);
    for (int k = 0; k < need; k++) {
        if (tls_listen_twin(m, &m->cfg, socks[reuse + k]) == -1) {
            unprepare_sockets(m, socks, p->nworkers);
            snprintf(err, errlen, "cannot open %d sockets on tls_listen %s (the log names the failed call)",
                     need, m->cfg.tls_listen);
            return -1;
        }
    }
    return 0;
}

/* Undoes prepare_sockets for the entries it opened. */
static void unprepare_sockets(struct master *m, const int *socks, int n)
{
    int cur[SHM_MAX_WORKERS];
    int ncur = current_socks(m, cur);
    for (int k = 0; k < n; k++) {
        int used = 0;
        for (int j = 0; j < ncur; j++)
            used |= cur[j] == socks[k];
        if (!used) {
            close(m->socks[socks[k]].fd);
            m->socks[socks[k]].fd = -1;
            tls_listen_untwin(m, socks[k]);
        }
    }
}

/* A new status socket path: bind the new one first, so a failure keeps
 * the old. Returns the new fd, the old one when unchanged, or -1. */
static int prepare_status(struct master *m, const struct config *nc, char *err, size_t errlen)
{
    if (!strcmp(m->cfg.status_socket, nc->status_socket))
        return m->status_fd;
    if (status_probe(nc->status_socket)) {
        snprintf(err, errlen, "status_socket %s: another process answers there", nc->status_socket);
        return -1;
    }
    int fd = status_listen(nc->status_socket);
    if (fd == -1)
        snprintf(err, errlen, "status_socket %s: cannot listen (the log names the failed call)",
                 nc->status_socket);
    return fd;
}

static void apply_log(const struct config *old, struct config *nc)
{
    if (strcmp(old->log_file, nc->log_file) && log_open(nc->log_file) == -1) {
        log_error("log_open(%s) failed: %s; keeping %s", nc->log_file, strerror(errno),
                  old->log_file[0] ? old->log_file : "stderr");
        memcpy(nc->log_file, old->log_file, sizeof nc->log_file);
    }
    log_set_level((int)nc->log_level);
}

static void refuse(struct master *m, const char *why)
{
    snprintf(m->reload.error, sizeof m->reload.error, "%s", why);
    shm_add(&m->shm->reloads_failed, 1);
    log_error("reload failed: %s; keeping the old configuration", why);
}

/* Everything that can fail, before anything changes. Returns 0 with the
 * new status fd in *status_fd and the new generation's sockets in socks,
 * or -1 after refuse(). */
static int prepare(struct master *m, struct config *nc, const struct plan *p, int *socks, int *status_fd)
{
    char err[512];
    if (p->new_generation && spawn_free_slots(m) < p->nworkers) {
        snprintf(err, sizeof err,
                 "the new generation needs %d worker slots and %d of %d are free (older generations"
                 " still draining hold the rest)",
                 p->nworkers, spawn_free_slots(m), SHM_MAX_WORKERS);
        refuse(m, err);
        return -1;
    }
    if (portowner_check_config(nc, &m->cfg, getpid(), err, sizeof err) == -1) {
        refuse(m, err);
        return -1;
    }
    if (p->new_generation && prepare_sockets(m, nc, p, socks, err, sizeof err) == -1) {
        refuse(m, err);
        return -1;
    }
    *status_fd = prepare_status(m, nc, err, sizeof err);
    if (*status_fd == -1)
        goto undo_socks;
    if (strcmp(m->cfg.pid_file, nc->pid_file) && pidfile_write(nc->pid_file) == -1) {
        snprintf(err, sizeof err, "pid_file %s: cannot write it (the log names the failed call)",
                 nc->pid_file);
        goto undo_status;
    }
    return 0;
undo_status:
    if (*status_fd != m->status_fd)
        status_close(*status_fd, nc->status_socket);
undo_socks:
    if (p->new_generation)
        unprepare_sockets(m, socks, p->nworkers);
    refuse(m, err);
    return -1;
}

/* The files the master owns move to their new paths. */
static void commit_paths(struct master *m, const struct config *nc, int status_fd)
{
    if (status_fd != m->status_fd) {
        status_close(m->status_fd, m->cfg.status_socket);
        m->status_fd = status_fd;
        log_notice("status socket moved from %s to %s", m->cfg.status_socket, nc->status_socket);
    }
    if (strcmp(m->cfg.pid_file, nc->pid_file)) {
        pidfile_remove(m->cfg.pid_file);
        log_notice("pid file moved from %s to %s", m->cfg.pid_file[0] ? m->cfg.pid_file : "(none)",
                   nc->pid_file[0] ? nc->pid_file : "(none)");
    }
}

static void start_generation(struct master *m, int n, const int *socks)
{
    char err[512];
    /* More or fewer workers change what each must hold. */
    if (capacity_raise_nofile(&m->cfg, err, sizeof err) == -1)
        log_notice("%s", err);
    m->generation++;
    m->nworkers = n;
    memmove(m->cur_socks, socks, (size_t)n * sizeof *socks);
    m->switching = 1;
    m->reload.generation = m->generation;
    m->reload.serving_ms = -1;
    if (spawn_generation(m, m->generation, n, m->cur_socks) == -1) /* callers checked the slots */
        log_crit("no free slots for worker generation %u", m->generation);
    log_notice("starting worker generation %u: %d workers on %s", m->generation, n,
               m->socks[m->cur_socks[0]].addr);
}

void reload_restart_generation(struct master *m)
{
    m->reload.begun_ms = master_now_ms();
    snprintf(m->reload.changed, sizeof m->reload.changed,
             "nothing (the new master failed during the handover)");
    start_generation(m, m->nworkers, m->cur_socks);
}

void reload_run(struct master *m)
{
    char err[768];
    struct plan p;
    int socks[SHM_MAX_WORKERS], status_fd = m->status_fd;
    struct reload_info *r = &m->reload;
    r->seq++;
    shm_add(&m->shm->reloads, 1);
    r->ok = 0;
    r->generation = 0;
    r->at = (int64_t)time(NULL);
    r->begun_ms = master_now_ms();
    r->serving_ms = -1;
    r->retired_workers = 0;
    r->retired_conns = 0;
    r->changed[0] = r->error[0] = '\0';
    struct config *nc = xmalloc(sizeof *nc);
    if (config_load(nc, m->conf_path, err, sizeof err) == -1) {
        refuse(m, err);
        free(nc);
        return;
    }
    /* auto resolves against today's limits, so an unchanged file compares equal. */
    char why[256];
    int is_auto = nc->max_connections == 0;
    int64_t resolved = capacity_resolve(nc, why, sizeof why);
    /* auto in both files is no change of the file, even when workers
     * moved what it resolves to (the new value applies all the same). */
    if (is_auto && m->max_conns_auto)
        nc->max_connections = m->cfg.max_connections;
    make_plan(m, nc, &p);
    nc->max_connections = resolved;
    if (is_auto && resolved != m->cfg.max_connections)
        log_notice("%s", why);
    if (p.kept[0])
        log_warn("%s changed: only a binary upgrade (SIGUSR2) or a restart applies it; keeping the old value",
                 p.kept);
    /* The certificate and key are re-read on every reload (the paths may
     * stay the same while the files change); a bad pair keeps the old. */
    struct tls_pem pem;
    if (tls_check_prepare(nc, &pem, err, sizeof err) == -1) {
        refuse(m, err);
        free(nc);
        return;
    }
    if (prepare(m, nc, &p, socks, &status_fd) == -1) {
        tls_pem_free(&pem);
        free(nc);
        return;
    }
    commit_paths(m, nc, status_fd);
    tls_check_commit(m->shm, nc, &pem);
    apply_log(&m->cfg, nc);
    int capacity_moved = nc->max_connections != m->cfg.max_connections || p.new_generation;
    m->cfg = *nc;
    m->max_conns_auto = is_auto;
    free(nc);
    master_log_chown(m); /* before workers hear of a new log_file */
    /* Old generations read the new hot settings too: they share the block. */
    shm_publish_config(m->shm, &m->cfg);
    spawn_signal_all(m, SIGHUP);
    if (capacity_moved) {
        struct capacity cap;
        capacity_compute(&m->cfg, &cap);
        capacity_warn(&cap);
    }
    snprintf(r->changed, sizeof r->changed, "%s", p.changed[0] ? p.changed : "nothing");
    r->ok = 1;
    log_notice("reload: configuration generation %" PRIu64 " applied (changed: %s)",
               (uint64_t)atomic_load(&m->shm->config_generation), r->changed);
    if (p.new_generation)
        start_generation(m, p.nworkers, socks);
    else
        r->serving_ms = 0;
}

static int sock_in_use(const struct master *m, int s)
{
    for (int k = 0; k < m->nworkers; k++)
        if (m->cur_socks[k] == s)
            return 1;
    return 0;
}

/* The master's copy of a socket the newest generation does not serve is
 * closed now; the retiring workers close theirs when they stop accepting,
 * and the last close hands the queue to the group (tcp_migrate_req). */
static int close_unused_sockets(struct master *m)
{
    int n = 0;
    for (int s = 0; s < MASTER_MAX_SOCKETS; s++) {
        if (m->socks[s].fd == -1 || sock_in_use(m, s))
            continue;
        close(m->socks[s].fd);
        m->socks[s].fd = -1;
        tls_listen_untwin(m, s);
        n++;
    }
    return n;
}

static int retire_older(struct master *m, int64_t *conns)
{
    int n = 0;
    *conns = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        struct master_worker *w = &m->w[i];
        if (w->role != SLOT_SERVING || w->generation == m->generation)
            continue;
        if (w->pid > 0) {
            *conns += (int64_t)shm_get(&m->shm->slots[i].connections);
            n++;
        }
        spawn_retire(m, i);
    }
    return n;
}

void reload_check_switch(struct master *m)
{
    if (!m->switching || m->stop || !spawn_generation_active(m, m->generation))
        return;
    m->switching = 0;
    int64_t conns;
    int n = retire_older(m, &conns);
    int closed = close_unused_sockets(m);
    struct reload_info *r = &m->reload;
    if (r->generation == m->generation) {
        r->serving_ms = master_now_ms() - r->begun_ms;
        r->retired_workers = n;
        r->retired_conns = conns;
    }
    log_notice("reload: worker generation %u serving after %" PRId64 " ms (changed: %s); retiring %d"
               " workers of older generations with %" PRId64 " connections; %d listening sockets closed%s",
               m->generation, r->serving_ms, r->changed, n, conns, closed,
               closed && !m->migrate ? " (tcp_migrate_req is off: their queued connections were reset)" : "");
}

int reload_retire_all(struct master *m)
{
    int n = 0;
    m->switching = 0;
    for (int i = 0; i < SHM_MAX_WORKERS; i++) {
        if (m->w[i].role != SLOT_SERVING)
            continue;
        n += m->w[i].pid > 0;
        spawn_retire(m, i);
    }
    return n;
}
