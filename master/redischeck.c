/* redischeck.c: `wsmill check` asks Redis (broker = redis). A blocking
 * hiredis context is right here: check is a command-line tool, not the
 * server's loop. */
#include "redischeck.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>

#include "../common/redisurl.h"

#define CHECK_TIMEOUT_S 2

/* Sends one command; returns the reply (caller frees), or NULL with
 * the reason printed. */
static redisReply *ask(redisContext *c, FILE *err, const char *where, const char *what, const char *hint,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        fprintf(err, "redis_url: Redis at %s did not answer %s: %s\n", where, what, c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(err, "redis_url: Redis at %s refused %s: %s%s\n", where, what, r->str, hint);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int redischeck_run(const struct config *cfg, FILE *out, FILE *err)
{
    struct redis_url u;
    char why[256], where[REDISURL_FIELD_MAX + 16];
    if (redis_url_parse(cfg->redis_url, &u, why, sizeof(why)) == -1) {
        fprintf(err, "redis_url: %s\n", why);
        return REDISCHECK_FAILED;
    }
    snprintf(where, sizeof(where), strchr(u.host, ':') ? "[%s]:%u" : "%s:%u", u.host, (unsigned)u.port);
    struct timeval tv = {CHECK_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err) {
        fprintf(err, "redis_url: cannot reach Redis at %s: %s (is it running, and is this its address?)\n",
                where, c ? c->errstr : "out of memory");
        redisFree(c);
        return REDISCHECK_FAILED;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    int rc = REDISCHECK_FAILED;
    if (u.password[0]) {
        r = u.user[0]
                ? ask(c, err, where, "AUTH", " (the password or user in redis_url is wrong)", "AUTH %s %s",
                      u.user, u.password)
                : ask(c, err, where, "AUTH", " (the password in redis_url is wrong)", "AUTH %s", u.password);
        if (!r)
            goto out;
        freeReplyObject(r);
    }
    if (u.db) {
        if (!(r = ask(c, err, where, "SELECT", " (the database number in redis_url)", "SELECT %d", u.db)))
            goto out;
        freeReplyObject(r);
    }
    if (!(r = ask(c, err, where, "PING", u.password[0] ? "" : " (it wants a password: put it in redis_url)",
                  "PING")))
        goto out;
    freeReplyObject(r);
    fprintf(out, "redis_url: Redis at %s answers PING%s\n", where, u.password[0] ? " (AUTH accepted)" : "");
    rc = 0;
out:
    redisFree(c);
    return rc;
}
