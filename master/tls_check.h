/* tls_check.h: the master's side of tls_listen: it reads the certificate
 * and key (before workers drop privileges, and again on every reload),
 * validates them by building a context, and publishes the bytes to the
 * workers through the shared block; `check` describes the certificate. */
#ifndef WSMILL_TLS_CHECK_H
#define WSMILL_TLS_CHECK_H
#include <stdio.h>

#include "../common/config.h"
#include "../common/shm.h"
#include "../common/tls_ctx.h"

#define TLS_CHECK_WARN_DAYS 14

/* Reads and validates c's files into pem (nothing when tls_listen is
 * empty: pem stays empty and 0 is returned). Warnings (a readable key, an
 * expiry under 14 days) are logged. Returns 0, or -1 with a reason naming
 * the file in err; pem is then empty. */
int tls_check_prepare(const struct config *c, struct tls_pem *pem, char *err, size_t errlen);

/* Publishes what tls_check_prepare read (if anything) and frees pem. */
void tls_check_commit(struct shm *s, const struct config *c, struct tls_pem *pem);

/* `check`: prints the certificate's subject, names, expiry and warnings
 * under path's name. Returns 0 when usable (or no tls_listen), 1 when not. */
int tls_check_report(const struct config *c, const char *path, FILE *out);

#endif
