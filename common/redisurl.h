/* redisurl.h: redis_url, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], taken
 * apart. Pure: no I/O, no allocation. The master (`check`), the workers
 * (the broker) and config validation all read it through here. */
#ifndef WSMILL_REDISURL_H
#define WSMILL_REDISURL_H
#include <stddef.h>
#include <stdint.h>

#define REDISURL_FIELD_MAX 256

struct redis_url {
    char host[REDISURL_FIELD_MAX];     /* IPv4, IPv6 (without brackets) or a name */
    char user[REDISURL_FIELD_MAX];     /* ACL user; empty = AUTH with the password alone */
    char password[REDISURL_FIELD_MAX]; /* %XX decoded; empty = no AUTH */
    uint16_t port;                     /* 6379 when not given */
    int db;                            /* 0 when not given */
};

/* Parses s into u. Returns 0, or -1 with a reason in err (the password is
 * never copied into it). */
int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen);

#endif
