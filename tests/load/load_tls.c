/* load_tls.c: the client side of wss:// for wsmill-load. */
#include "load_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

static SSL_CTX *ctx;

static SSL_CTX *client_ctx(void)
{
    if (ctx)
        return ctx;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Hundreds of thousands of idle clients: no buffers while idle. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* every handshake a full one */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    return ctx;
}

void *load_tls_new(int fd, const char *sni)
{
    SSL_CTX *c = client_ctx();
    SSL *ssl = c ? SSL_new(c) : NULL;
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    if (sni && *sni)
        SSL_set_tlsext_host_name(ssl, sni);
    SSL_set_connect_state(ssl);
    return ssl;
}

int load_tls_handshake(void *ssl, int *want_write)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    *want_write = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ERR_clear_error();
    return -1;
}

/* -1 with errno for an error SSL_get_error reported. */
static ssize_t io_error(SSL *ssl, int e)
{
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
        ERR_clear_error();
        if (errno == 0)
            return 0;
        return -1;
    }
    ERR_clear_error();
    errno = EPROTO;
    return -1;
}

ssize_t load_tls_recv(void *ssl, void *buf, size_t n)
{
    size_t got = 0;
    ERR_clear_error();
    /* Take everything that is readable now: epoll cannot see plaintext
     * that stays inside OpenSSL. */
    while (got < n) {
        size_t k;
        if (SSL_read_ex(ssl, (char *)buf + got, n - got, &k) == 1) {
            got += k;
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        if (got)
            break;
        errno = 0;
        return io_error(ssl, e);
    }
    return (ssize_t)got;
}

ssize_t load_tls_send(void *ssl, const void *buf, size_t n)
{
    size_t k;
    ERR_clear_error();
    if (n == 0)
        return 0;
    if (SSL_write_ex(ssl, buf, n, &k) == 1)
        return (ssize_t)k;
    int e = SSL_get_error(ssl, 0);
    errno = 0;
    ssize_t r = io_error(ssl, e);
    if (r == 0) {
        errno = EPIPE;
        r = -1;
    }
    return r;
}

void load_tls_free(void *ssl)
{
    SSL_free(ssl);
}
