/* floor_tls.c: wsmill-floor --tls. */
#include "floor_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD 16384

static SSL_CTX *ctx;
static SSL **ssl; /* by fd */

int floor_tls_init(const char *cert_key, size_t nfds)
{
    char cert[512];
    const char *comma = strchr(cert_key, ',');
    if (!comma || (size_t)(comma - cert_key) >= sizeof cert) {
        fprintf(stderr, "wsmill-floor: --tls %s: expected CERT,KEY\n", cert_key);
        return -1;
    }
    snprintf(cert, sizeof cert, "%.*s", (int)(comma - cert_key), cert_key);
    ctx = SSL_CTX_new(TLS_server_method());
    ssl = calloc(nfds, sizeof *ssl);
    if (!ctx || !ssl || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, comma + 1, SSL_FILETYPE_PEM) != 1) {
        char e[256] = "";
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        fprintf(stderr, "wsmill-floor: --tls %s: %s\n", cert_key, e);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    return 0;
}

int floor_tls_accept(int fd)
{
    ssl[fd] = SSL_new(ctx);
    if (!ssl[fd] || SSL_set_fd(ssl[fd], fd) != 1)
        return -1;
    SSL_set_accept_state(ssl[fd]);
    return 0;
}

int floor_tls_handshake(int fd, int *want_write)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl[fd]);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl[fd], r);
    *want_write = e == SSL_ERROR_WANT_WRITE;
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

static ssize_t io_error(SSL *s, int e)
{
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    return -1;
}

ssize_t floor_tls_recv(int fd, void *buf, size_t n)
{
    size_t got = 0, k;
    ERR_clear_error();
    while (n - got >= RECORD) { /* whole records only: nothing stays in OpenSSL */
        if (SSL_read_ex(ssl[fd], (char *)buf + got, n - got, &k) == 1) {
            got += k;
            continue;
        }
        int e = SSL_get_error(ssl[fd], 0);
        if (got)
            break;
        return io_error(ssl[fd], e);
    }
    return (ssize_t)got;
}

ssize_t floor_tls_send(int fd, const void *buf, size_t n)
{
    size_t k;
    ERR_clear_error();
    if (SSL_write_ex(ssl[fd], buf, n, &k) == 1)
        return (ssize_t)k;
    return io_error(ssl[fd], SSL_get_error(ssl[fd], 0));
}

void floor_tls_close(int fd)
{
    SSL_free(ssl[fd]);
    ssl[fd] = NULL;
}
