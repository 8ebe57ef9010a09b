/* tls_check.c: reading, validating and publishing tls_cert / tls_key, and
 * `check`'s certificate report. */
#include "tls_check.h"

#include <string.h>
#include <time.h>

#include "../common/log.h"

#include <openssl/rand.h>

/* Builds a context from pem to validate it and describe it. */
static SSL_CTX *validate(const struct config *c, const struct tls_pem *pem, struct tls_cert_info *info,
                         char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_build(c, pem->cert, pem->cert_len, pem->key, pem->key_len, c->tls_cert, c->tls_key,
                                 err, errlen);
    if (ctx && tls_ctx_cert_info(ctx, info) == -1) {
        snprintf(err, errlen, "tls_cert %s: no certificate", c->tls_cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static long days_left(const struct tls_cert_info *info)
{
    return (long)((info->expires - time(NULL)) / 86400);
}

int tls_check_prepare(const struct config *c, struct tls_pem *pem, char *err, size_t errlen)
{
    char warn[512];
    struct tls_cert_info info;
    memset(pem, 0, sizeof *pem);
    if (!c->tls_listen[0])
        return 0;
    if (tls_pem_read(c, pem, warn, sizeof warn, err, errlen) == -1)
        return -1;
    if (warn[0])
        log_warn("%s", warn);
    SSL_CTX *ctx = validate(c, pem, &info, err, errlen);
    if (!ctx) {
        tls_pem_free(pem);
        return -1;
    }
    SSL_CTX_free(ctx);
    if (info.expires <= time(NULL))
        log_error("tls_cert %s expired on %s: clients will refuse it", c->tls_cert, info.not_after);
    else if (days_left(&info) < TLS_CHECK_WARN_DAYS)
        log_warn("tls_cert %s expires in %ld days (%s)", c->tls_cert, days_left(&info), info.not_after);
    return 0;
}

void tls_check_commit(struct shm *s, const struct config *c, struct tls_pem *pem)
{
    uint8_t keys[TLS_TICKET_KEYS];
    if (!pem->cert)
        return;
    /* Ticket keys live as long as the master: the same for every worker
     * and across reloads, so a ticket resumes wherever the client lands. */
    if (atomic_load(&s->tls.generation))
        memcpy(keys, s->tls.ticket_keys, sizeof keys);
    else if (RAND_bytes(keys, sizeof keys) != 1)
        memset(keys, 0, sizeof keys); /* all zero: workers keep their own keys */
    tls_store_publish(&s->tls, pem->cert, pem->cert_len, pem->key, pem->key_len, c->tls_cert, c->tls_key,
                      keys);
    OPENSSL_cleanse(keys, sizeof keys);
    log_notice("tls: certificate %s and key %s published to workers (generation %llu)", c->tls_cert,
               c->tls_key, (unsigned long long)atomic_load(&s->tls.generation));
    tls_pem_free(pem);
}

int tls_check_report(const struct config *c, const char *path, FILE *out)
{
    char err[768], warn[512];
    struct tls_pem pem;
    struct tls_cert_info info;
    if (!c->tls_listen[0])
        return 0;
    if (tls_pem_read(c, &pem, warn, sizeof warn, err, sizeof err) == -1) {
        fprintf(out, "%s: error: %s\n", path, err);
        return 1;
    }
    if (warn[0])
        fprintf(out, "%s: warning: %s\n", path, warn);
    SSL_CTX *ctx = validate(c, &pem, &info, err, sizeof err);
    tls_pem_free(&pem);
    if (!ctx) {
        fprintf(out, "%s: error: %s\n", path, err);
        return 1;
    }
    SSL_CTX_free(ctx);
    fprintf(out, "tls %s: certificate %s (+%d chain), key %s\n", c->tls_listen, c->tls_cert, info.chain,
            c->tls_key);
    fprintf(out, "  subject: %s\n  names:   %s\n  expires: %s (%ld days)\n", info.subject,
            info.sans[0] ? info.sans : "(no subjectAltName: browsers will refuse it)", info.not_after,
            days_left(&info));
    if (info.expires <= time(NULL)) {
        fprintf(out, "%s: error: tls_cert %s expired on %s\n", path, c->tls_cert, info.not_after);
        return 1;
    }
    if (days_left(&info) < TLS_CHECK_WARN_DAYS)
        fprintf(out, "%s: warning: tls_cert %s expires in %ld days (under %d)\n", path, c->tls_cert,
                days_left(&info), TLS_CHECK_WARN_DAYS);
    return 0;
}
