/* test_tls_ctx.c: common/tls_ctx.c. A key and certificate are made here
 * (ECDSA P-256, in memory), contexts are built from their PEM text, and a
 * client and a server SSL shake hands through in-memory BIOs: versions,
 * ALPN, refusals with the file named. Every OpenSSL allocation is tracked
 * (CRYPTO_set_mem_functions, with the file and line OpenSSL passes), so the
 * test also says what an idle server connection keeps and where it lives,
 * and checks that released buffers are really released. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/tls_ctx.h"
#include "tap.h"

/* ---- allocation tracking ------------------------------------------------- */

#define TRACK_SLOTS (1 << 16)
struct alloc {
    void *p;
    size_t n;
    const char *file;
    int line;
};
static struct alloc track[TRACK_SLOTS];
static size_t live;

static size_t slot_of(const void *p)
{
    size_t h = (size_t)p * 0x9E3779B97F4A7C15ull;
    return (h >> 20) & (TRACK_SLOTS - 1);
}

static void remember(void *p, size_t n, const char *file, int line)
{
    size_t i = slot_of(p);
    while (track[i].p)
        i = (i + 1) & (TRACK_SLOTS - 1);
    track[i] = (struct alloc){p, n, file, line};
    live += n;
}

static void forget(void *p)
{
    size_t i = slot_of(p);
    while (track[i].p && track[i].p != p)
        i = (i + 1) & (TRACK_SLOTS - 1);
    if (!track[i].p)
        return;
    live -= track[i].n;
    track[i].p = NULL;
    /* re-insert the rest of the cluster (linear probing delete) */
    for (size_t j = (i + 1) & (TRACK_SLOTS - 1); track[j].p; j = (j + 1) & (TRACK_SLOTS - 1)) {
        struct alloc a = track[j];
        track[j].p = NULL;
        live -= a.n;
        remember(a.p, a.n, a.file, a.line);
    }
}

static void *t_malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (p)
        remember(p, n, file, line);
    return p;
}

static void *t_realloc(void *old, size_t n, const char *file, int line)
{
    if (old)
        forget(old);
    void *p = realloc(old, n ? n : 1);
    if (p)
        remember(p, n, file, line);
    return p;
}

static void t_free(void *p, const char *file, int line)
{
    if (p)
        forget(p);
    free(p);
}

/* ---- a key and a certificate ----------------------------------------------- */

/* A NUL-terminated copy of n bytes (the BIO's data is not terminated). */
static char *dup_mem(const char *p, size_t n)
{
    char *out = malloc(n + 1);
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

static char *pem_of_key(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = dup_mem(data, (size_t)n);
    BIO_free(b);
    return out;
}

static char *make_cert(EVP_PKEY *k, const char *cn)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, k, EVP_sha256());
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = dup_mem(data, (size_t)n);
    BIO_free(b);
    X509_free(x);
    return out;
}

/* ---- handshakes through memory -------------------------------------------- */

struct pair {
    SSL *c, *s;
};

/* Client and server SSLs on the two ends of a non-blocking socketpair:
 * socket BIOs, as in the server. */
static void pair_new(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
        abort();
    p->c = SSL_new(cctx);
    p->s = SSL_new(sctx);
    SSL_set_fd(p->c, sv[0]);
    SSL_set_fd(p->s, sv[1]);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
}

static void pair_free(struct pair *p)
{
    if (p->c) {
        close(SSL_get_fd(p->c));
        SSL_free(p->c);
    }
    if (p->s) {
        close(SSL_get_fd(p->s));
        SSL_free(p->s);
    }
    p->c = p->s = NULL;
}

/* Runs both sides until the handshake is done. 1 done, 0 failed. */
static int pair_handshake(struct pair *p)
{
    for (int i = 0; i < 20; i++) {
        int rc = SSL_do_handshake(p->c), rs = SSL_do_handshake(p->s);
        if (rc == 1 && rs == 1)
            return 1;
        int ec = SSL_get_error(p->c, rc), es = SSL_get_error(p->s, rs);
        if ((rc != 1 && ec != SSL_ERROR_WANT_READ && ec != SSL_ERROR_WANT_WRITE) ||
            (rs != 1 && es != SSL_ERROR_WANT_READ && es != SSL_ERROR_WANT_WRITE))
            return 0;
    }
    return 0;
}

/* One WebSocket-sized exchange each way, so the connection is "open and
 * idle" rather than just shaken hands. */
static void pair_exchange(struct pair *p)
{
    char buf[256];
    size_t n;
    SSL_write_ex(p->c, "GET /echo HTTP/1.1\r\n\r\n", 22, &n);
    SSL_read_ex(p->s, buf, sizeof buf, &n);
    SSL_write_ex(p->s, "HTTP/1.1 101 Switching Protocols\r\n\r\n", 36, &n);
    SSL_read_ex(p->c, buf, sizeof buf, &n);
    SSL_read_ex(p->c, buf, sizeof buf, &n); /* tickets, if any */
    /* The server reads until the socket is dry, as the worker does: that
     * last read finds nothing and must not leave a buffer behind. */
    if (SSL_read_ex(p->s, buf, sizeof buf, &n) == 1 || SSL_get_error(p->s, 0) != SSL_ERROR_WANT_READ)
        abort();
}

/* Live bytes an idle server SSL keeps, and (when where) the biggest sites. */
static size_t idle_server_bytes(SSL_CTX *sctx, SSL_CTX *cctx, int release, int where)
{
    struct pair p;
    pair_new(&p, sctx, cctx);
    if (!release)
        SSL_clear_mode(p.s, SSL_MODE_RELEASE_BUFFERS);
    if (!pair_handshake(&p))
        return 0;
    pair_exchange(&p);
    /* What the client holds is not the server's: free it, then count. */
    close(SSL_get_fd(p.c));
    SSL_free(p.c);
    int sfd = SSL_get_fd(p.s);
    size_t before = live;
    SSL *s = p.s;
    /* The bytes the server SSL keeps are those freed with it. */
    static struct alloc snap[TRACK_SLOTS];
    memcpy(snap, track, sizeof track);
    SSL_free(s);
    close(sfd);
    size_t kept = before - live;
    if (where) {
        /* Allocations present before SSL_free and gone after it. */
        struct {
            const char *file;
            int line;
            size_t n, count;
        } site[64];
        int nsites = 0;
        for (size_t i = 0; i < TRACK_SLOTS; i++) {
            if (!snap[i].p)
                continue;
            size_t j = slot_of(snap[i].p);
            while (track[j].p && track[j].p != snap[i].p)
                j = (j + 1) & (TRACK_SLOTS - 1);
            if (track[j].p == snap[i].p)
                continue; /* still alive: not the SSL's */
            int k = 0;
            while (k < nsites && !(site[k].line == snap[i].line && !strcmp(site[k].file, snap[i].file)))
                k++;
            if (k == nsites && nsites < 64)
                site[nsites++] = (typeof(site[0])){snap[i].file ? snap[i].file : "?", snap[i].line, 0, 0};
            if (k < nsites) {
                site[k].n += snap[i].n;
                site[k].count++;
            }
        }
        for (int a = 0; a < nsites; a++)
            for (int b = a + 1; b < nsites; b++)
                if (site[b].n > site[a].n) {
                    typeof(site[0]) t = site[a];
                    site[a] = site[b];
                    site[b] = t;
                }
        for (int a = 0; a < nsites && a < 12; a++) {
            const char *f = strstr(site[a].file, "ssl/")      ? strstr(site[a].file, "ssl/")
                            : strstr(site[a].file, "crypto/") ? strstr(site[a].file, "crypto/")
                                                              : site[a].file;
            diag("  %6zu bytes in %3zu allocations at %s:%d", site[a].n, site[a].count, f, site[a].line);
        }
    }
    return kept;
}

int main(void)
{
    CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free);
    struct config c;
    char err[768];
    config_defaults(&c);
    EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
    char *cert = make_cert(k, "wsmill-unit"), *key = pem_of_key(k), *key2 = pem_of_key(k2);

    SSL_CTX *sctx =
        tls_ctx_build(&c, cert, strlen(cert), key, strlen(key), "c.pem", "k.pem", err, sizeof err);
    if (!ok(sctx != NULL, "a context from an ECDSA P-256 pair"))
        diag("%s", err);
    struct tls_cert_info info;
    is_int(tls_ctx_cert_info(sctx, &info), 0, "its certificate is described");
    is_str(info.subject, "/CN=wsmill-unit", "  subject");
    is_str(info.sans, "DNS:localhost, IP:127.0.0.1", "  names");
    ok(info.expires > time(NULL) + 29 * 86400, "  expiry 30 days ahead (%s)", info.not_after);

    ok(tls_ctx_build(&c, cert, strlen(cert), key2, strlen(key2), "c.pem", "k2.pem", err, sizeof err) ==
               NULL &&
           strstr(err, "tls_key k2.pem does not match the certificate in tls_cert c.pem"),
       "a key of another pair is refused naming both files (%s)", err);
    ok(tls_ctx_build(&c, "junk", 4, key, strlen(key), "junk.pem", "k.pem", err, sizeof err) == NULL &&
           strstr(err, "tls_cert junk.pem: no PEM certificate"),
       "junk as a certificate is refused naming the file");
    ok(tls_ctx_build(&c, cert, strlen(cert), "junk", 4, "c.pem", "junk.key", err, sizeof err) == NULL &&
           strstr(err, "tls_key junk.key: no usable PEM private key"),
       "junk as a key is refused naming the file");
    struct config bad = c;
    snprintf(bad.tls_ciphers, sizeof bad.tls_ciphers, "NO-SUCH-CIPHER");
    ok(tls_ctx_build(&bad, cert, strlen(cert), key, strlen(key), "c", "k", err, sizeof err) == NULL &&
           strstr(err, "tls_ciphers 'NO-SUCH-CIPHER'"),
       "an unknown cipher list is refused naming the key");

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    struct pair p;
    pair_new(&p, sctx, cctx);
    is_int(pair_handshake(&p), 1, "a client shakes hands");
    is_int(SSL_version(p.s), TLS1_3_VERSION, "  TLS 1.3");
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(p.s, &alpn, &alen);
    ok(alen == 8 && !memcmp(alpn, "http/1.1", 8), "  ALPN http/1.1 chosen from h2, http/1.1");
    pair_free(&p);

    SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
    SSL_CTX_set_security_level(cctx, 0);
    pair_new(&p, sctx, cctx);
    is_int(pair_handshake(&p), 0, "a TLS 1.1 client is refused");
    pair_free(&p);
    ERR_clear_error();
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    struct config only13 = c;
    only13.tls_min_version = TLS_MIN_13;
    SSL_CTX *s13 = tls_ctx_build(&only13, cert, strlen(cert), key, strlen(key), "c", "k", err, sizeof err);
    pair_new(&p, s13, cctx);
    is_int(pair_handshake(&p), 0, "tls_min_version 1.3 refuses a TLS 1.2 client");
    pair_free(&p);
    ERR_clear_error();
    SSL_CTX_set_max_proto_version(cctx, 0);

    /* What an idle connection keeps (TLS 1.3, AES-128-GCM, one ticket). */
    size_t held = idle_server_bytes(sctx, cctx, 0, 0);
    diag("idle server SSL without SSL_MODE_RELEASE_BUFFERS: %zu bytes", held);
    diag("idle server SSL as wsmill builds it, by allocation site:");
    size_t idle = idle_server_bytes(sctx, cctx, 1, 1);
    diag("idle server SSL as wsmill builds it: %zu bytes", idle);
    ok(idle > 0 && idle + 16 * 1024 <= held, "released buffers are released (%zu vs %zu bytes)", idle, held);

    SSL_CTX_free(s13);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    free(cert);
    OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(key2);
    return done_testing();
}
