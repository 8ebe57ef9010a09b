/* test_config.c: common/config.c. Most checks walk the key table itself, so
 * a key added later is covered without touching this file: every key must
 * set, format and set again to the same value; every numeric key must
 * refuse garbage and out-of-range values with an error naming it; every
 * key's reloadable flag must be what config_diff reports. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/config.h"
#include "tap.h"

static int64_t *num(struct config *c, const struct config_key *k)
{
    return (int64_t *)((char *)c + k->offset);
}

static const char *str(const struct config *c, const struct config_key *k)
{
    return (const char *)c + k->offset;
}

static int is_numeric(const struct config_key *k)
{
    return k->type != CONFIG_STRING && k->type != CONFIG_LISTEN;
}

/* One key's value in a and b is the same (derived listen fields too). */
static int same_value(const struct config *a, const struct config *b, const struct config_key *k)
{
    if (k->type == CONFIG_LISTEN)
        return strcmp(a->listen, b->listen) == 0 && strcmp(a->listen_host, b->listen_host) == 0 &&
               a->listen_port == b->listen_port;
    if (k->type == CONFIG_STRING)
        return strcmp(str(a, k), str(b, k)) == 0;
    return *num((struct config *)a, k) == *num((struct config *)b, k);
}

/* Values written the way a user would for a number in the stored unit. */
static void write_stored(const struct config_key *k, int64_t v, char *buf, size_t len)
{
    snprintf(buf, len, "%lld%s", (long long)v, k->type == CONFIG_DURATION ? "ms" : "");
}

/* The idx-th word of a CONFIG_CHOICE key's "a|b|c" into buf; 0 past the end. */
static int choice_word(const struct config_key *k, int64_t idx, char *buf, size_t len)
{
    const char *p = k->choices;
    for (int64_t i = 0; p && *p; i++) {
        size_t n = strcspn(p, "|");
        if (i == idx) {
            snprintf(buf, len, "%.*s", (int)n, p);
            return 1;
        }
        p += n + (p[n] == '|');
    }
    return 0;
}

/* set(v) -> format -> set(formatted) on a fresh config gives the same value,
 * and formatting is stable. */
static void round_trip(const struct config_key *k, const char *v)
{
    struct config a, b;
    char err[512] = "", f1[CONFIG_LIST_MAX + 16], f2[CONFIG_LIST_MAX + 16];
    config_defaults(&a);
    config_defaults(&b);
    if (config_set(&a, k->name, v, err, sizeof(err)) != 0) {
        ok(0, "%s = '%s' is accepted", k->name, v);
        diag("%s", err);
        return;
    }
    config_format(&a, k, f1, sizeof(f1));
    if (config_set(&b, k->name, f1, err, sizeof(err)) != 0) {
        ok(0, "%s: formatted '%s' (from '%s') is accepted back", k->name, f1, v);
        diag("%s", err);
        return;
    }
    config_format(&b, k, f2, sizeof(f2));
    ok(same_value(&a, &b, k) && strcmp(f1, f2) == 0, "%s = '%s' formats as '%s' and round-trips", k->name, v,
       f1);
}

static void test_table(void)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    ok(keys != NULL && n >= 10, "config_keys has %zu keys", n);
    static const char *expected[] = {
        "listen",           "workers",           "max_connections", "max_message_size", "max_header_size",
        "max_backpressure", "handshake_timeout", "ping_interval",   "idle_timeout",     "drain_timeout",
        "allowed_origins",  "status_socket",     "pid_file",        "log_file",         "log_level"};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const struct config_key *k = config_key_find(expected[i]);
        ok(k != NULL && strcmp(k->name, expected[i]) == 0, "config_key_find(%s)", expected[i]);
    }
    ok(config_key_find("no_such_key") == NULL, "config_key_find(no_such_key) is NULL");
    ok(config_key_find("") == NULL, "config_key_find('') is NULL");
    int sane = 1;
    for (size_t i = 0; i < n; i++) {
        if (!keys[i].name || !keys[i].dflt || !keys[i].doc || !keys[i].doc[0] ||
            keys[i].offset >= sizeof(struct config) || (is_numeric(&keys[i]) && keys[i].min > keys[i].max) ||
            config_key_find(keys[i].name) != &keys[i]) {
            sane = 0;
            diag("key %zu (%s) is malformed or shadowed", i, keys[i].name ? keys[i].name : "?");
        }
    }
    ok(sane, "every key has name, default, doc, a field, min <= max, and a unique name");
}

static void test_defaults(void)
{
    struct config c;
    char err[512] = "";
    memset(&c, 0x5A, sizeof(c));
    config_defaults(&c);
    if (!ok(config_validate(&c, err, sizeof(err)) == 0, "defaults pass config_validate"))
        diag("%s", err);
    size_t n;
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        /* The default as written in the table sets exactly the default. */
        struct config d;
        config_defaults(&d);
        int r = config_set(&d, keys[i].name, keys[i].dflt, err, sizeof(err));
        ok(r == 0 && same_value(&c, &d, &keys[i]), "default %s = '%s' sets and matches", keys[i].name,
           keys[i].dflt);
        if (is_numeric(&keys[i]) && keys[i].type != CONFIG_AUTO_COUNT)
            ok(*num(&c, &keys[i]) >= keys[i].min && *num(&c, &keys[i]) <= keys[i].max,
               "default %s within [%lld, %lld]", keys[i].name, (long long)keys[i].min,
               (long long)keys[i].max);
    }
    ok(c.listen_host[0] != 0 && c.listen_port != 0, "default listen is parsed into host '%s' port %u",
       c.listen_host, c.listen_port);
    is_int(c.workers, 0, "default workers = auto (0)");
    ok(c.allowed_origins[0] == 0, "default allowed_origins is empty (any origin)");
}

static void test_round_trips(void)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    char v[CONFIG_LIST_MAX + 16];
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        switch (k->type) {
        case CONFIG_LISTEN:
            round_trip(k, "127.0.0.1:9001");
            round_trip(k, "[::1]:8080");
            round_trip(k, "0.0.0.0:65535");
            break;
        case CONFIG_AUTO_COUNT:
            round_trip(k, "auto");
            round_trip(k, "1");
            write_stored(k, k->max, v, sizeof(v));
            round_trip(k, v);
            break;
        case CONFIG_LOGLEVEL:
            round_trip(k, "debug");
            round_trip(k, "info");
            round_trip(k, "notice");
            round_trip(k, "warn");
            round_trip(k, "error");
            round_trip(k, "crit");
            break;
        case CONFIG_BOOL:
            round_trip(k, "on");
            round_trip(k, "off");
            round_trip(k, "yes");
            round_trip(k, "no");
            round_trip(k, "true");
            round_trip(k, "false");
            round_trip(k, "1");
            round_trip(k, "0");
            break;
        case CONFIG_CHOICE:
            for (int64_t w = 0; choice_word(k, w, v, sizeof(v)); w++)
                round_trip(k, v);
            break;
        case CONFIG_STRING:
            round_trip(k, "");
            round_trip(k, "/tmp/a b,c");
            /* The longest string that fits (buffer size minus the NUL). */
            memset(v, 'x', k->size - 1);
            v[k->size - 1] = 0;
            round_trip(k, v);
            break;
        default: {
            int64_t samples[] = {k->min, k->max, k->min + (k->max - k->min) / 3, k->min + 1};
            for (size_t s = 0; s < 4; s++) {
                if (samples[s] > k->max)
                    continue;
                write_stored(k, samples[s], v, sizeof(v));
                round_trip(k, v);
            }
        }
        }
    }
}

/* config_set must fail and name the key in its error. */
static void refuse(const char *key, const char *value, const char *why)
{
    struct config c;
    char err[512] = "";
    config_defaults(&c);
    int r = config_set(&c, key, value, err, sizeof(err));
    if (!ok(r == -1 && strstr(err, key) != NULL, "%s = '%s' refused (%s), error names the key", key, value,
            why))
        diag("r = %d, err = '%s'", r, err);
}

static int64_t set_get(const char *key, const char *value, int *rc)
{
    struct config c;
    char err[512] = "";
    config_defaults(&c);
    *rc = config_set(&c, key, value, err, sizeof(err));
    if (*rc)
        diag("%s = '%s': %s", key, value, err);
    return *num(&c, config_key_find(key));
}

static void test_units(void)
{
    static const struct {
        const char *key, *value;
        int64_t want;
    } v[] = {
        {"max_message_size", "512", 512},        {"max_message_size", "1k", 1024},
        {"max_message_size", "64k", 65536},      {"max_message_size", "16m", 16 << 20},
        {"max_message_size", "1g", 1LL << 30},   {"max_backpressure", "8g", 8LL << 30},
        {"handshake_timeout", "250ms", 250},     {"handshake_timeout", "7", 7000},
        {"handshake_timeout", "10s", 10000},     {"handshake_timeout", "2m", 120000},
        {"handshake_timeout", "1h", 3600000},    {"idle_timeout", "0", 0},
        {"max_connections", "1000000", 1000000}, {"workers", "64", 64},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int rc;
        int64_t got = set_get(v[i].key, v[i].value, &rc);
        ok(rc == 0 && got == v[i].want, "%s = %s -> %lld (got %lld, rc %d)", v[i].key, v[i].value,
           (long long)v[i].want, (long long)got, rc);
    }
    int rc;
    int64_t got = set_get("workers", "auto", &rc);
    ok(rc == 0 && got == 0, "workers = auto -> 0");

    /* Booleans and choices, on every key of those types. */
    size_t n;
    const struct config_key *keys = config_keys(&n);
    static const char *yes[] = {"on", "yes", "true", "1"}, *no[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        if (k->type == CONFIG_BOOL) {
            for (size_t j = 0; j < 4; j++) {
                got = set_get(k->name, yes[j], &rc);
                ok(rc == 0 && got == 1, "%s = %s -> 1", k->name, yes[j]);
                got = set_get(k->name, no[j], &rc);
                ok(rc == 0 && got == 0, "%s = %s -> 0", k->name, no[j]);
            }
        } else if (k->type == CONFIG_CHOICE) {
            char w[64];
            int64_t idx = 0;
            for (; choice_word(k, idx, w, sizeof(w)); idx++) {
                got = set_get(k->name, w, &rc);
                ok(rc == 0 && got == idx, "%s = %s -> index %lld", k->name, w, (long long)idx);
            }
            ok(idx >= 2 && idx - 1 == k->max, "%s has %lld choices, max %lld", k->name, (long long)idx,
               (long long)k->max);
        }
    }
}

/* Issue 18: one rule for size suffixes. Every spelling of 16 MiB means the
 * same bytes; what is not k/m/g (+ b or ib) is refused. */
static void test_size_suffixes(void)
{
    static const char *same[] = {"16M", "16m", "16MB", "16mb", "16 M", "16MiB", "16mib", "16 MiB", "16Mib"};
    static const char *kib[] = {"4k", "4K", "4kB", "4KB", "4KiB", "4 kib"};
    static const char *bad[] = {"16Mi", "16MiBs", "16 MB B", "16iB", "16Bi", "16T", "16TiB", "16 bytes"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        int rc;
        int64_t got = set_get("max_message_size", same[i], &rc);
        ok(rc == 0 && got == 16 << 20, "max_message_size = '%s' -> 16 MiB (got %lld, rc %d)", same[i],
           (long long)got, rc);
    }
    for (size_t i = 0; i < sizeof(kib) / sizeof(kib[0]); i++) {
        int rc;
        int64_t got = set_get("max_header_size", kib[i], &rc);
        ok(rc == 0 && got == 4096, "max_header_size = '%s' -> 4096 (got %lld, rc %d)", kib[i], (long long)got,
           rc);
    }
    int rc;
    int64_t got = set_get("ring_size", "1GiB", &rc);
    ok(rc == 0 && got == 1LL << 30, "ring_size = 1GiB -> 2^30 (got %lld)", (long long)got);
    got = set_get("max_message_size", "100b", &rc);
    ok(rc == 0 && got == 100, "max_message_size = 100b -> 100 bytes (got %lld)", (long long)got);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refuse("max_message_size", bad[i], "not one of k/m/g (+b or ib)");
    struct config c;
    char err[512] = "";
    config_defaults(&c);
    config_set(&c, "max_message_size", "16Mi", err, sizeof(err));
    ok(strstr(err, "KiB") != NULL, "the refusal names the accepted suffixes: '%s'", err);
}

static void test_refusals(void)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    char v[64];
    static const char *garbage[] = {"", "abc", "12x", "1.5", "0x10", "--1", "1 2", "99999999999999999999999"};
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        if (!is_numeric(k) || k->type == CONFIG_LOGLEVEL)
            continue;
        for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++)
            refuse(k->name, garbage[g], "garbage");
        if (k->max < INT64_MAX) {
            write_stored(k, k->max + 1, v, sizeof(v));
            refuse(k->name, v, "max + 1");
        }
        if (k->min > 0) {
            write_stored(k, k->min - 1, v, sizeof(v));
            refuse(k->name, v, "min - 1");
        }
        refuse(k->name, "-1", "negative");
    }
    refuse("max_connections", "1k", "a size suffix on a plain integer");
    refuse("max_message_size", "1t", "unknown size suffix");
    refuse("max_message_size", "2g", "2 GiB over the 1 GiB max");
    refuse("handshake_timeout", "5d", "unknown duration suffix");
    refuse("handshake_timeout", "1k", "a size suffix on a duration");
    refuse("handshake_timeout", "99999999999999h", "overflow through the suffix");
    refuse("max_backpressure", "9999999999999999g", "overflow through the suffix");
    refuse("workers", "0", "0 workers (auto is the way to say that)");
    refuse("log_level", "verbose", "unknown level");
    refuse("log_level", "", "empty level");
    refuse("listen", "8080", "no colon");
    refuse("listen", "127.0.0.1:", "no port");
    refuse("listen", "127.0.0.1:0", "port 0");
    refuse("listen", "127.0.0.1:65536", "port 65536");
    refuse("listen", "127.0.0.1:80x", "port with junk");
    char big[CONFIG_STR_MAX + 1];
    memset(big, 'p', CONFIG_STR_MAX);
    big[CONFIG_STR_MAX] = 0;
    refuse("pid_file", big, "one byte longer than the buffer");

    struct config c;
    char err[512] = "";
    config_defaults(&c);
    int r = config_set(&c, "no_such_key", "1", err, sizeof(err));
    ok(r == -1 && strstr(err, "no_such_key") != NULL, "unknown key refused, named: '%s'", err);

    /* A tiny error buffer is filled, not overrun (heap: ASan checks). */
    char *tiny = malloc(8);
    r = config_set(&c, "max_connections", "lots", tiny, 8);
    ok(r == -1 && memchr(tiny, 0, 8) != NULL, "error truncated into an 8-byte buffer");
    free(tiny);
}

static char tmpdir[] = "/tmp/wsmill-test-config-XXXXXX";

/* Writes text to a fresh file in tmpdir; returns its path (static). */
static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

/* config_load must fail with an error that starts "PATH:LINE:" (line > 0)
 * or "PATH:" (line 0) and mentions needle. */
static void load_fails(const char *name, const char *text, int line, const char *needle)
{
    struct config c;
    char err[1024] = "", prefix[300];
    const char *path = write_file(name, text);
    int r = config_load(&c, path, err, sizeof(err));
    if (line > 0)
        snprintf(prefix, sizeof(prefix), "%s:%d:", path, line);
    else
        snprintf(prefix, sizeof(prefix), "%s:", path);
    int good =
        r == -1 && strncmp(err, prefix, strlen(prefix)) == 0 && (!needle || strstr(err, needle) != NULL);
    if (!ok(good, "config_load %s fails with '%s...'%s%s", name, prefix, needle ? " naming " : "",
            needle ? needle : ""))
        diag("r = %d, err = '%s'", r, err);
}

static void test_load(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        abort();
    }
    struct config c, d;
    char err[1024] = "";
    const char *path = write_file("good.conf", "; wsmill test config\n"
                                               "# a hash comment\n"
                                               "listen = 127.0.0.1:9100\n"
                                               "workers = 3\n"
                                               "\n"
                                               "[limits]\n"
                                               "max_connections = 5000\n"
                                               "max_message_size = 1m\n"
                                               "ping_interval = 20s\n"
                                               "idle_timeout = 2m\n"
                                               "allowed_origins = https://a.example, https://b.example\n"
                                               "log_level = warn\n");
    int r = config_load(&c, path, err, sizeof(err));
    if (!ok(r == 0, "config_load good.conf"))
        diag("%s", err);
    config_defaults(&d);
    ok(r == 0 && strcmp(c.listen_host, "127.0.0.1") == 0 && c.listen_port == 9100 && c.workers == 3 &&
           c.max_connections == 5000 && c.max_message_size == 1 << 20 && c.ping_interval == 20000 &&
           c.idle_timeout == 120000 &&
           strcmp(c.allowed_origins, "https://a.example, https://b.example") == 0 && c.log_level == 3,
       "good.conf values are loaded");
    ok(r == 0 && c.max_header_size == d.max_header_size && c.drain_timeout == d.drain_timeout &&
           strcmp(c.pid_file, d.pid_file) == 0,
       "keys absent from the file keep their defaults");

    path = write_file("empty.conf", "");
    r = config_load(&c, path, err, sizeof(err));
    ok(r == 0 && config_diff(&c, &d, 0, err, sizeof(err)) == 0, "an empty file gives defaults");

    /* A section groups; it does not rename keys. */
    struct config flat, sect;
    char err2[1024] = "";
    path = write_file("flat.conf", "max_connections = 7\nworkers = 2\n");
    int r1 = config_load(&flat, path, err, sizeof(err));
    path = write_file("sections.conf", "[server]\nmax_connections = 7\n[other]\nworkers = 2\n");
    int r2 = config_load(&sect, path, err2, sizeof(err2));
    ok(r1 == 0 && r2 == 0 && flat.max_connections == 7 && flat.workers == 2 &&
           config_diff(&flat, &sect, 0, err, sizeof(err)) == 0,
       "keys under [server] and [other] mean the same as without sections");

    load_fails("unknown.conf", "workers = 2\n\nbogus_key = 1\n", 3, "bogus_key");
    load_fails("duplicate.conf", "workers = 2\nmax_connections = 10\n\nworkers = 4\n", 4, "workers");
    load_fails("duplicate-sections.conf", "[a]\nworkers = 2\n[b]\nworkers = 4\n", 4, "workers");
    load_fails("badvalue.conf", "listen = 127.0.0.1:9000\nmax_connections = lots\n", 2, "max_connections");
    load_fails("range.conf", "; comment\nmax_message_size = 2g\n", 2, "max_message_size");
    load_fails("syntax.conf", "workers = 2\nworkers 4\n", 2, NULL);
    load_fails("relation.conf", "ping_interval = 30s\nidle_timeout = 10s\n", 0, "ping_interval");

    char missing[300];
    snprintf(missing, sizeof(missing), "%s/does-not-exist.conf", tmpdir);
    r = config_load(&c, missing, err, sizeof(err));
    ok(r == -1 && strncmp(err, missing, strlen(missing)) == 0 && err[strlen(missing)] == ':',
       "missing file: '%s'", err);

    static const char *names[] = {"good.conf",
                                  "empty.conf",
                                  "flat.conf",
                                  "sections.conf",
                                  "unknown.conf",
                                  "duplicate.conf",
                                  "duplicate-sections.conf",
                                  "badvalue.conf",
                                  "range.conf",
                                  "syntax.conf",
                                  "relation.conf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static void test_validate(void)
{
    struct config c;
    char err[512] = "";
    config_defaults(&c);
    c.ping_interval = 30000;
    c.idle_timeout = 10000;
    ok(config_validate(&c, err, sizeof(err)) == -1 && err[0],
       "ping_interval >= idle_timeout "
       "refused: '%s'",
       err);
    c.ping_interval = 0;
    ok(config_validate(&c, err, sizeof(err)) == 0, "ping off with an idle timeout is fine");
    c.ping_interval = 5000;
    c.idle_timeout = 0;
    ok(config_validate(&c, err, sizeof(err)) == 0, "ping with idle timeout off is fine");
    const char *bad_pub[] = {"example.com:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "[::1]:x"};
    for (size_t i = 0; i < sizeof(bad_pub) / sizeof(bad_pub[0]); i++) {
        snprintf(c.publish_listen, sizeof(c.publish_listen), "%s", bad_pub[i]);
        ok(config_validate(&c, err, sizeof(err)) == -1 && strstr(err, "publish_listen"),
           "publish_listen %s refused: '%s'", bad_pub[i], err);
    }
    const char *good_pub[] = {"", "127.0.0.1:8081", "[::1]:9000", "*:8081", "localhost:1"};
    for (size_t i = 0; i < sizeof(good_pub) / sizeof(good_pub[0]); i++) {
        snprintf(c.publish_listen, sizeof(c.publish_listen), "%s", good_pub[i]);
        ok(config_validate(&c, err, sizeof(err)) == 0, "publish_listen '%s' accepted", good_pub[i]);
    }
}

/* Alternative valid value for k, different from the default. */
static void other_value(const struct config_key *k, const struct config *d, char *v, size_t len)
{
    switch (k->type) {
    case CONFIG_LISTEN: snprintf(v, len, "127.0.0.9:9999"); break;
    case CONFIG_AUTO_COUNT: snprintf(v, len, "%s", *num((struct config *)d, k) == 2 ? "3" : "2"); break;
    case CONFIG_LOGLEVEL: snprintf(v, len, "%s", *num((struct config *)d, k) == 0 ? "crit" : "debug"); break;
    case CONFIG_BOOL: snprintf(v, len, "%s", *num((struct config *)d, k) ? "off" : "on"); break;
    case CONFIG_CHOICE: choice_word(k, *num((struct config *)d, k) == 0 ? 1 : 0, v, len); break;
    case CONFIG_STRING: snprintf(v, len, "%s.other", str(d, k)); break;
    default: write_stored(k, *num((struct config *)d, k) == k->min ? k->max : k->min, v, len);
    }
}

static void test_diff(void)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    struct config a, b;
    char buf[1024], err[512], v[CONFIG_LIST_MAX];
    config_defaults(&a);
    config_defaults(&b);
    is_int(config_diff(&a, &b, 0, buf, sizeof(buf)), 0, "config_diff of equal configs is 0");
    is_str(buf, "", "and writes an empty list");

    int restart_only = 0;
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        config_defaults(&b);
        other_value(k, &a, v, sizeof(v));
        if (config_set(&b, k->name, v, err, sizeof(err)) != 0) {
            ok(0, "diff: set %s = %s: %s", k->name, v, err);
            continue;
        }
        int all = config_diff(&a, &b, 0, buf, sizeof(buf));
        ok(all == 1 && strcmp(buf, k->name) == 0, "diff after changing %s: %d '%s'", k->name, all, buf);
        int rs = config_diff(&a, &b, 1, buf, sizeof(buf));
        int hot = k->reloadable == RELOAD_HOT;
        ok(rs == !hot && strcmp(buf, hot ? "" : k->name) == 0,
           "restart-only diff after changing %s (reloadable %d): %d '%s'", k->name, k->reloadable, rs, buf);
        restart_only += !hot;
    }
    ok(config_key_find("listen")->reloadable == RELOAD_GENERATION, "listen needs a new worker generation");
    ok(config_key_find("ring_size")->reloadable == RELOAD_RESTART,
       "ring_size needs a restart (it sizes the block)");
    ok(config_key_find("max_connections")->reloadable == RELOAD_HOT, "max_connections is reloadable");

    /* Several changes: the count and every name appear. */
    config_defaults(&b);
    int want_rs = 0, want_all = 0;
    for (size_t i = 0; i < n; i++) {
        other_value(&keys[i], &a, v, sizeof(v));
        if (config_set(&b, keys[i].name, v, err, sizeof(err)) == 0) {
            want_all++;
            want_rs += keys[i].reloadable != RELOAD_HOT;
        }
    }
    int rs = config_diff(&a, &b, 1, buf, sizeof(buf));
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].reloadable == RELOAD_HOT)
            continue;
        /* Look the name up as a whole comma-separated item. */
        for (char *p = buf; (p = strstr(p, keys[i].name)) != NULL; p++) {
            char after = p[strlen(keys[i].name)];
            if ((p == buf || p[-1] == ',' || p[-1] == ' ') && (after == 0 || after == ',')) {
                found++;
                break;
            }
        }
    }
    ok(rs == want_rs && found == want_rs && restart_only == want_rs,
       "every key changed: %d restart-only (want %d), %d named in '%s'", rs, want_rs, found, buf);
    is_int(config_diff(&a, &b, 0, buf, sizeof(buf)), want_all, "every key changed: all differ");
    /* A short buffer is truncated, not overrun, and the count still right. */
    char *small = malloc(5);
    is_int(config_diff(&a, &b, 0, small, 5), want_all, "count with a 5-byte buffer");
    ok(memchr(small, 0, 5) != NULL, "5-byte buffer NUL-terminated");
    free(small);
}

static int origin_ok(const struct config *c, const char *o)
{
    size_t n = strlen(o);
    char *p = malloc(n ? n : 1); /* not NUL-terminated, as the worker passes it */
    memcpy(p, o, n);
    int r = config_origin_allowed(c, p, n);
    free(p);
    return r;
}

static void test_doc(void)
{
    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);
    config_doc_write(f);
    fclose(f);
    size_t n;
    const struct config_key *keys = config_keys(&n);
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strstr(doc, keys[i].name) || !strstr(doc, keys[i].doc)) {
            diag("config_doc_write lacks %s or its doc line", keys[i].name);
            missing++;
        }
    }
    ok(len > 0 && missing == 0, "config_doc_write names every key with its doc (%zu bytes)", len);
    free(doc);
}

static void test_origins(void)
{
    struct config c;
    char err[512];
    config_defaults(&c);
    is_int(origin_ok(&c, "https://x.example"), 1, "empty list allows any origin");
    is_int(origin_ok(&c, "null"), 1, "empty list allows 'null'");
    int r = config_set(&c, "allowed_origins", "https://a.example, https://b.example:8443", err, sizeof(err));
    is_int(r, 0, "set a two-origin list");
    is_int(origin_ok(&c, "https://a.example"), 1, "first origin allowed");
    is_int(origin_ok(&c, "https://b.example:8443"), 1, "second origin (after ', ') allowed");
    is_int(origin_ok(&c, "https://c.example"), 0, "other origin refused");
    is_int(origin_ok(&c, "https://b.example"), 0, "origin without the listed port refused");
    is_int(origin_ok(&c, "https://a.exampl"), 0, "prefix of a listed origin refused");
    is_int(origin_ok(&c, "https://a.example.evil"), 0, "extension of a listed origin refused");
    is_int(origin_ok(&c, "http://a.example"), 0, "other scheme refused");
    is_int(origin_ok(&c, ""), 0, "empty origin refused");
    is_int(origin_ok(&c, "https://a.example, https://b.example:8443"), 0,
           "the whole list as one origin refused");
    r = config_set(&c, "allowed_origins", "https://only.example", err, sizeof(err));
    is_int(origin_ok(&c, "https://only.example"), 1, "single-origin list");
    is_int(origin_ok(&c, "https://only.example/"), 0, "trailing slash is another origin");
}

int main(void)
{
    test_table();
    test_defaults();
    test_round_trips();
    test_units();
    test_refusals();
    test_size_suffixes();
    test_load();
    test_validate();
    test_diff();
    test_origins();
    test_doc();
    return done_testing();
}
