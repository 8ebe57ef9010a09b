/* test_redisurl.c: common/redisurl.c, redis_url taken apart. */
#include <string.h>
#include "common/redisurl.h"
#include "tap.h"

static void good(const char *s, const char *host, int port, const char *user, const char *pw, int db)
{
    struct redis_url u;
    char err[256] = "";
    int rc = redis_url_parse(s, &u, err, sizeof(err));
    ok(rc == 0 && !strcmp(u.host, host) && u.port == port && !strcmp(u.user, user) &&
           !strcmp(u.password, pw) && u.db == db,
       "%s -> host %s port %d user '%s' password '%s' db %d (got rc %d: %s, %s %d '%s' '%s' %d)", s, host,
       port, user, pw, db, rc, err, u.host, u.port, u.user, u.password, u.db);
}

static void bad(const char *s, const char *why)
{
    struct redis_url u;
    char err[256] = "";
    int rc = redis_url_parse(s, &u, err, sizeof(err));
    ok(rc == -1 && strstr(err, why) != NULL, "%s refused with '%s' (got rc %d: %s)", s, why, rc, err);
}

int main(void)
{
    good("redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", 0);
    good("redis://localhost", "localhost", 6379, "", "", 0);
    good("redis://127.0.0.1:7000/3", "127.0.0.1", 7000, "", "", 3);
    good("redis://127.0.0.1:7000/", "127.0.0.1", 7000, "", "", 0);
    good("redis://:s3cret@10.0.0.1:6380/1", "10.0.0.1", 6380, "", "s3cret", 1);
    good("redis://alice:s3cret@10.0.0.1:6380", "10.0.0.1", 6380, "alice", "s3cret", 0);
    good("redis://:p%40ss%2Fw%3Ard@h:1", "h", 1, "", "p@ss/w:rd", 0);
    good("redis://:a@b@h:2", "h", 2, "", "a@b", 0); /* the last '@' ends the credentials */
    good("redis://[::1]:6390/2", "::1", 6390, "", "", 2);
    good("redis://[::1]", "::1", 6379, "", "", 0);
    bad("http://127.0.0.1:6379", "redis://");
    bad("127.0.0.1:6379", "redis://");
    bad("redis://", "no host");
    bad("redis://:6379", "no host");
    bad("redis://h:0", "port must be 1-65535");
    bad("redis://h:65536", "port must be 1-65535");
    bad("redis://h:12ab", "port must be 1-65535");
    bad("redis://h:", "port must be 1-65535");
    bad("redis://h:1/x", "database");
    bad("redis://h:1/-1", "database");
    bad("redis://secret@h:1", "credentials");
    bad("redis://:@h:1", "empty password");
    bad("redis://:%zz@h:1", "escape");
    bad("redis://:%4@h:1", "escape");
    bad("redis://:%00@h:1", "escape");
    bad("redis://[::1:6379", "']'");
    bad("redis://[::1]x", "':PORT'");
    bad("redis://ho st:1", "host has a character");
    /* the password never appears in an error */
    struct redis_url u;
    char err[256];
    redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof(err));
    ok(strstr(err, "hunter2") == NULL, "error text leaves the password out (%s)", err);
    return done_testing();
}
