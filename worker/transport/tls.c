/* tls.c: the TLS transport (OpenSSL 3) and its worker state.
 *
 * Memory: the SSL_CTX (certificate, key, cipher lists, ticket keys) is one
 * per worker; a connection owns its SSL and nothing else, and with
 * SSL_MODE_RELEASE_BUFFERS the SSL holds no record buffers between reads.
 * Reads go straight into the worker's scratch buffer. Writes are gathered
 * into one per-worker buffer so that a corked batch of frames leaves as
 * few 16 KiB records as it can. A record the socket refused is already
 * encrypted: its plaintext is kept (malloc'd, only while blocked) so the
 * retry passes OpenSSL the same bytes, as it requires. */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../../common/tls_ctx.h"
#include "transport.h"

#define TLS_RECORD 16384 /* largest record plaintext */

struct tls_worker {
    SSL_CTX *ctx;
    uint64_t generation; /* of the files in the shared block */
    SSL **ssl;           /* by fd; pages touched only as descriptors are used */
    size_t nssl;
    uint8_t buf[TLS_RECORD]; /* one record's plaintext, gathered from an iovec */
};

/* A write the socket refused, kept until it is retried; len 0: a
 * handshake step could not send (the handshake goes on at EV_WRITE). */
struct tls_pend {
    uint32_t len;
    uint8_t data[];
};

static struct tls_worker *tw_of(const struct conn *c)
{
    return conn_worker(c)->tls;
}

static SSL *ssl_of(const struct conn *c)
{
    return tw_of(c)->ssl[conn_fd(c)];
}

static void on_info(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_HANDSHAKE_DONE))
        return;
    struct worker *w = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    shm_add(&w->slot->tls_handshakes, 1);
}

/* ---- the transport ------------------------------------------------------ */

/* Plain HTTP on the TLS port gets a plain answer, as nginx does. */
static void answer_plain_http(struct conn *c)
{
    static const char body[] = "This port speaks TLS: use https:// or wss://\n";
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    ssize_t wr = send(conn_fd(c), resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)wr; /* best effort: the connection is closed next */
}

static ssize_t broken(struct conn *c, SSL *ssl, int e, int in_handshake)
{
    unsigned long err = ERR_peek_error();
    char why[160] = "";
    if (err)
        ERR_error_string_n(err, why, sizeof why);
    if (in_handshake) {
        shm_add(&conn_worker(c)->slot->tls_handshake_errors, 1);
        if (ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST)
            answer_plain_http(c);
    }
    log_debug("fd %d: TLS error %d%s%s", conn_fd(c), e, why[0] ? ": " : "", why);
    ERR_clear_error();
    errno = EPROTO;
    return -1;
}

/* A record of len bytes at data was refused: keep its plaintext for the
 * retry (the caller counts it as taken), or with len 0 remember that the
 * handshake wants to write. The caller arms EV_WRITE (pending says so).
 * Returns 0, or -1 when out of memory. */
static int keep_refused(SSL *ssl, const uint8_t *data, size_t len)
{
    struct tls_pend *p = malloc(sizeof *p + len);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    p->len = (uint32_t)len;
    if (len)
        memcpy(p->data, data, len);
    SSL_set_app_data(ssl, p);
    return 0;
}

static ssize_t tls_recv(struct conn *c, uint8_t *buf, size_t len)
{
    SSL *ssl = ssl_of(c);
    size_t got = 0, n;
    int in_handshake = !SSL_is_init_finished(ssl); /* an error turns the state to "error" */
    ERR_clear_error();
    /* One record per SSL_read; loop until the socket is dry so the caller
     * sees everything that arrived, keeping room for a whole record (no
     * plaintext may stay inside OpenSSL, where epoll cannot see it). */
    while (len - got >= TLS_RECORD) {
        if (SSL_read_ex(ssl, buf + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) { /* handshake bytes the socket refused */
            if (!SSL_get_app_data(ssl) && keep_refused(ssl, NULL, 0) == -1)
                return -1;
            break;
        }
        if (got)
            break; /* hand over what we have; the error comes back next time */
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
            return errno ? -1 : 0;
        return broken(c, ssl, e, in_handshake);
    }
    if (got)
        return (ssize_t)got;
    errno = EAGAIN;
    return -1;
}

/* Retries a refused record. Returns 0 when nothing is left, -1 with errno. */
static int tls_flush(struct conn *c)
{
    SSL *ssl = ssl_of(c);
    struct tls_pend *p = SSL_get_app_data(ssl);
    size_t wr;
    if (!p)
        return 0;
    ERR_clear_error();
    if (p->len == 0) { /* the handshake wanted to write: let it go on */
        SSL_set_app_data(ssl, NULL);
        free(p);
        if (SSL_do_handshake(ssl) == 1)
            return 0;
        int e = SSL_get_error(ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        if (e == SSL_ERROR_WANT_WRITE) {
            if (keep_refused(ssl, NULL, 0) == 0)
                errno = EAGAIN;
            return -1;
        }
        broken(c, ssl, e, 1);
        return -1;
    }
    if (SSL_write_ex(ssl, p->data, p->len, &wr) == 1) {
        SSL_set_app_data(ssl, NULL);
        free(p);
        return 0;
    }
    int e = SSL_get_error(ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        errno = EAGAIN;
        return -1;
    }
    broken(c, ssl, e, 0);
    return -1;
}

/* Copies up to TLS_RECORD bytes from iov (from entry *i, offset *off) into
 * buf, or points *out straight at the entry when it alone fills a record
 * or is all there is. Returns the length. */
static size_t gather(const struct iovec *iov, int n, int *i, size_t *off, uint8_t *buf, const uint8_t **out)
{
    size_t rest = iov[*i].iov_len - *off;
    if (rest >= TLS_RECORD || (*i == n - 1 && *off == 0)) {
        size_t k = rest < TLS_RECORD ? rest : TLS_RECORD;
        *out = (const uint8_t *)iov[*i].iov_base + *off;
        *off += k;
        if (*off == iov[*i].iov_len) {
            (*i)++;
            *off = 0;
        }
        return k;
    }
    size_t k = 0;
    while (*i < n && k < TLS_RECORD) {
        size_t take = iov[*i].iov_len - *off;
        if (take > TLS_RECORD - k)
            take = TLS_RECORD - k;
        memcpy(buf + k, (const uint8_t *)iov[*i].iov_base + *off, take);
        k += take;
        *off += take;
        if (*off == iov[*i].iov_len) {
            (*i)++;
            *off = 0;
        }
    }
    *out = buf;
    return k;
}

static ssize_t tls_sendv(struct conn *c, const struct iovec *iov, int n)
{
    SSL *ssl = ssl_of(c);
    if (SSL_get_app_data(ssl) && tls_flush(c) == -1)
        return -1; /* an earlier record goes first */
    size_t total = 0, off = 0, wr;
    int i = 0;
    ERR_clear_error();
    for (;;) {
        while (i < n && iov[i].iov_len == off) { /* empty entries write nothing */
            i++;
            off = 0;
        }
        if (i == n)
            break;
        const uint8_t *p;
        size_t k = gather(iov, n, &i, &off, tw_of(c)->buf, &p);
        if (SSL_write_ex(ssl, p, k, &wr) == 1) {
            total += wr;
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            if (keep_refused(ssl, p, k) == -1)
                return total ? (ssize_t)total : -1;
            return (ssize_t)(total + k);
        }
        if (total)
            return (ssize_t)total;
        return broken(c, ssl, e, 0); /* we write only once the handshake is done */
    }
    return (ssize_t)total;
}

static int tls_pending(const struct conn *c)
{
    const struct tls_worker *tw = tw_of(c);
    return tw && tw->ssl[conn_fd(c)] && SSL_get_app_data(tw->ssl[conn_fd(c)]) != NULL;
}

static void tls_shutdown(struct conn *c)
{
    SSL *ssl = ssl_of(c);
    if (SSL_is_init_finished(ssl) && !SSL_get_app_data(ssl)) {
        ERR_clear_error();
        SSL_shutdown(ssl); /* close_notify; we do not wait for the peer's */
        ERR_clear_error();
    }
    shutdown(conn_fd(c), SHUT_WR);
}

static void tls_release(struct conn *c)
{
    struct tls_worker *tw = tw_of(c);
    SSL *ssl = tw->ssl[conn_fd(c)];
    if (!ssl)
        return;
    free(SSL_get_app_data(ssl));
    SSL_free(ssl);
    tw->ssl[conn_fd(c)] = NULL;
}

const struct transport transport_tls = {
    .name = "tls",
    .recv = tls_recv,
    .sendv = tls_sendv,
    .flush = tls_flush,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .release = tls_release,
    .answers_early = 0,
};

/* ---- the worker's side --------------------------------------------------- */

int tls_conn_start(struct conn *c)
{
    struct tls_worker *tw = tw_of(c);
    SSL *ssl = SSL_new(tw->ctx);
    if (!ssl || SSL_set_fd(ssl, conn_fd(c)) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(ssl);
    tw->ssl[conn_fd(c)] = ssl;
    c->transport = TRANSPORT_TLS;
    return 0;
}

/* A context from the files in the shared block, or NULL (logged). */
static SSL_CTX *load_ctx(struct worker *w, uint64_t *generation)
{
    struct tls_store_copy copy;
    char err[768];
    if (tls_store_read(&w->shm->tls, &copy) == -1) {
        log_error("out of memory copying the TLS certificate and key");
        return NULL;
    }
    SSL_CTX *ctx = NULL;
    if (copy.generation == 0)
        log_error("tls_listen is set but the master published no certificate");
    else
        ctx = tls_ctx_build(&w->cfg, copy.pem, copy.cert_len, copy.pem + copy.cert_len, copy.key_len,
                            copy.cert_name, copy.key_name, err, sizeof err);
    if (copy.generation && !ctx)
        log_error("%s", err);
    static const uint8_t none[TLS_TICKET_KEYS];
    if (ctx && memcmp(copy.ticket_keys, none, sizeof none) &&
        SSL_CTX_set_tlsext_ticket_keys(ctx, copy.ticket_keys, TLS_TICKET_KEYS) != 1)
        log_warn("SSL_CTX_set_tlsext_ticket_keys failed: tickets resume only on the worker that issued them");
    if (ctx) {
        SSL_CTX_set_app_data(ctx, w);
        SSL_CTX_set_info_callback(ctx, on_info);
        *generation = copy.generation;
    }
    tls_store_copy_free(&copy);
    return ctx;
}

int tls_start(struct worker *w)
{
    if (!w->cfg.tls_listen[0])
        return 0;
    if (w->tls_listen_fd == -1) {
        log_crit("tls_listen %s is set but the master gave this worker no socket on it", w->cfg.tls_listen);
        return -1;
    }
    struct tls_worker *tw = calloc(1, sizeof *tw);
    if (!tw) {
        log_crit("out of memory for the TLS state");
        return -1;
    }
    tw->nssl = (size_t)w->nconns;
    tw->ssl = mmap(NULL, tw->nssl * sizeof(SSL *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tw->ssl == MAP_FAILED) {
        log_crit("mmap(%zu bytes) for the TLS connection table failed: %s", tw->nssl * sizeof(SSL *),
                 strerror(errno));
        free(tw);
        return -1;
    }
    w->tls = tw;
    tw->ctx = load_ctx(w, &tw->generation);
    if (!tw->ctx)
        return -1;
    atomic_store_explicit(&w->slot->tls_ctx_generation, tw->generation, memory_order_relaxed);
    return 0;
}

void tls_reload(struct worker *w)
{
    struct tls_worker *tw = w->tls;
    if (!tw || atomic_load(&w->shm->tls.generation) == tw->generation)
        return;
    uint64_t gen = 0;
    SSL_CTX *ctx = load_ctx(w, &gen);
    if (!ctx) {
        log_error("keeping certificate generation %llu", (unsigned long long)tw->generation);
        return;
    }
    SSL_CTX_free(tw->ctx); /* each SSL holds a reference: established connections keep it */
    tw->ctx = ctx;
    tw->generation = gen;
    atomic_store_explicit(&w->slot->tls_ctx_generation, gen, memory_order_relaxed);
    log_info("certificate generation %llu: new TLS handshakes use it", (unsigned long long)gen);
}

void tls_stop(struct worker *w)
{
    if (w->tls_listen_fd == -1)
        return;
    ev_io_stop(w->loop, &w->tls_accept_io);
    /* Our copy only: the master (and a successor) keep the socket open. */
    close(w->tls_listen_fd);
    w->tls_listen_fd = -1;
}
