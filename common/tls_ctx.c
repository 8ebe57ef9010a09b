/* tls_ctx.c: reading the PEM files, building the server SSL_CTX, and
 * describing its certificate. */
#include "tls_ctx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *what)
{
    char ssl[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, ssl, sizeof ssl);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, ssl[0] ? ": " : "", ssl);
}

/* Reads a whole file of at most cap bytes into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t cap, size_t *len, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode) || (size_t)st->st_size > cap) {
        snprintf(err, errlen, "%s: not a regular file of at most %zu bytes", path, cap);
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st->st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st->st_size) : -1;
    close(fd);
    if (n != st->st_size) {
        snprintf(err, errlen, "%s: read failed: %s", path, n == -1 ? strerror(errno) : "short read");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

int tls_pem_read(const struct config *c, struct tls_pem *out, char *warn, size_t warnlen, char *err,
                 size_t errlen)
{
    struct stat st;
    memset(out, 0, sizeof *out);
    if (warn && warnlen)
        warn[0] = '\0';
    out->cert = read_file(c->tls_cert, TLS_PEM_MAX, &out->cert_len, &st, err, errlen);
    if (!out->cert)
        return -1;
    out->key = read_file(c->tls_key, TLS_PEM_MAX - out->cert_len, &out->key_len, &st, err, errlen);
    if (!out->key) {
        tls_pem_free(out);
        return -1;
    }
    if (warn && (st.st_mode & (S_IRWXG | S_IRWXO)))
        snprintf(warn, warnlen, "tls_key %s is %s (mode %03o): chmod 600 it", c->tls_key,
                 st.st_mode & S_IROTH ? "world-readable" : "readable by its group", st.st_mode & 0777);
    return 0;
}

void tls_pem_free(struct tls_pem *p)
{
    if (p->key)
        OPENSSL_cleanse(p->key, p->key_len);
    free(p->key);
    free(p->cert);
    memset(p, 0, sizeof *p);
}

/* ALPN: http/1.1 if offered; a client offering only others (h2) goes on
 * without ALPN rather than failing, like servers that do not speak ALPN. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    static const unsigned char mine[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, mine, sizeof mine - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The leaf certificate, then every further one in the PEM as the chain. */
static int load_chain(SSL_CTX *ctx, const char *cert, size_t len, const char *name, char *err, size_t errlen)
{
    char what[320];
    BIO *bio = BIO_new_mem_buf(cert, (int)len);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        snprintf(what, sizeof what, "tls_cert %s: no PEM certificate", name);
        set_err(err, errlen, what);
        X509_free(leaf);
        BIO_free(bio);
        return -1;
    }
    X509_free(leaf);
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            snprintf(what, sizeof what, "tls_cert %s: chain certificate refused", name);
            set_err(err, errlen, what);
            BIO_free(bio);
            return -1;
        }
    }
    ERR_clear_error(); /* the end of the PEM stream reads as an error */
    BIO_free(bio);
    return 0;
}

static int load_key(SSL_CTX *ctx, const char *key, size_t len, const char *cert_name, const char *name,
                    char *err, size_t errlen)
{
    char what[600];
    BIO *bio = BIO_new_mem_buf(key, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
    BIO_free(bio);
    if (!pk) {
        snprintf(what, sizeof what,
                 "tls_key %s: no usable PEM private key (encrypted keys are not supported)", name);
        set_err(err, errlen, what);
        return -1;
    }
    int used = SSL_CTX_use_PrivateKey(ctx, pk);
    EVP_PKEY_free(pk);
    if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "tls_key %s does not match the certificate in tls_cert %s", name,
                 cert_name);
        set_err(err, errlen, what);
        return -1;
    }
    return 0;
}

static void set_options(SSL_CTX *ctx, const struct config *c)
{
    SSL_CTX_set_min_proto_version(ctx, c->tls_min_version == TLS_MIN_13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (c->tls_session_tickets ? 0 : SSL_OP_NO_TICKET));
    /* Idle connections hold no read/write buffers; partial writes let the
     * output queue keep what the socket refused. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Resumption only by tickets: no server-side cache entry per session. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, c->tls_session_tickets ? 1 : 0);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* Record padding and early data stay off; a client's buffers for one
     * read are the worker's (SSL_read into the scratch buffer). */
    SSL_CTX_set_read_ahead(ctx, 0);
}

SSL_CTX *tls_ctx_build(const struct config *c, const char *cert, size_t cert_len, const char *key,
                       size_t key_len, const char *cert_name, const char *key_name, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    set_options(ctx, c);
    if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
        char what[320];
        snprintf(what, sizeof what, "tls_ciphers '%s' names no cipher OpenSSL knows", c->tls_ciphers);
        set_err(err, errlen, what);
        goto fail;
    }
    if (load_chain(ctx, cert, cert_len, cert_name, err, errlen) == -1 ||
        load_key(ctx, key, key_len, cert_name, key_name, err, errlen) == -1)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void append_san(char *buf, size_t len, const char *kind, const char *v, size_t vl)
{
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s:%.*s", used ? ", " : "", kind, (int)vl, v);
}

static void describe_sans(X509 *x, char *buf, size_t len)
{
    buf[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            append_san(buf, len, "DNS", (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                       (size_t)ASN1_STRING_length(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            char ip[64];
            int l = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, p, ip, sizeof ip);
            else
                snprintf(ip, sizeof ip, "?");
            append_san(buf, len, "IP", ip, strlen(ip));
        }
    }
    GENERAL_NAMES_free(names);
}

int tls_ctx_cert_info(SSL_CTX *ctx, struct tls_cert_info *out)
{
    memset(out, 0, sizeof *out);
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x)
        return -1;
    X509_NAME_oneline(X509_get_subject_name(x), out->subject, sizeof out->subject);
    describe_sans(x, out->sans, sizeof out->sans);
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    if (ASN1_TIME_to_tm(na, &tm) == 1) {
        out->expires = timegm(&tm);
        strftime(out->not_after, sizeof out->not_after, "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    out->chain = chain ? sk_X509_num(chain) : 0;
    return 0;
}
