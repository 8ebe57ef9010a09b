/* tls_ctx.h: OpenSSL server contexts for tls_listen, built from PEM bytes
 * the master read (so workers never open the key file), and what `check`
 * says about a certificate.
 *
 * One SSL_CTX per worker holds everything connections can share: the
 * certificate chain, the key, the cipher lists, the ticket keys. A
 * connection's SSL object keeps no buffers while idle
 * (SSL_MODE_RELEASE_BUFFERS) and the server keeps no session cache
 * (resumption is by stateless tickets). */
#ifndef WSMILL_TLS_CTX_H
#define WSMILL_TLS_CTX_H
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "tls_store.h"

/* The PEM text of the certificate chain and of the key, as read by the
 * master (malloc'd; tls_pem_free cleanses the key). */
struct tls_pem {
    char *cert, *key;
    size_t cert_len, key_len;
};

#define TLS_PEM_MAX TLS_STORE_MAX /* both files together, as published to workers */

/* Reads c->tls_cert and c->tls_key. A key file readable by group or others
 * is not an error: *warn (when not NULL) receives a warning naming it and
 * its mode, else is set to "". Returns 0, or -1 with a reason naming the
 * file in err. */
int tls_pem_read(const struct config *c, struct tls_pem *out, char *warn, size_t warnlen, char *err,
                 size_t errlen);
void tls_pem_free(struct tls_pem *p);

/* Builds a server context from PEM bytes: TLS 1.2 (or 1.3) and up, c's
 * cipher list, ALPN http/1.1, tickets per c, no session cache, released
 * buffers. The key must match the certificate. cert_name and key_name
 * name the files in err. Returns the context, or NULL with the reason. */
SSL_CTX *tls_ctx_build(const struct config *c, const char *cert, size_t cert_len, const char *key,
                       size_t key_len, const char *cert_name, const char *key_name, char *err, size_t errlen);

struct tls_cert_info {
    char subject[256];
    char sans[512]; /* "DNS:a.example, IP:127.0.0.1", or "" */
    char not_after[64];
    time_t expires; /* unix seconds */
    int chain;      /* certificates after the leaf */
};

/* Describes ctx's leaf certificate. Returns 0, or -1 when it has none. */
int tls_ctx_cert_info(SSL_CTX *ctx, struct tls_cert_info *out);

#endif
