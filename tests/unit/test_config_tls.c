/* test_config_tls.c: common/config.c's checks on the TLS and PROXY protocol
 * keys (config_validate), kept apart from test_config.c for its size. */
#include <string.h>
#include "common/config.h"
#include "tap.h"

/* Sets pairs "key", "value", ... (NULL-terminated) on defaults and runs
 * config_validate; returns its result with the reason in err. */
static int with(char *err, size_t errlen, const char *const *kv)
{
    struct config c;
    config_defaults(&c);
    for (; kv[0]; kv += 2)
        if (config_set(&c, kv[0], kv[1], err, errlen) != 0)
            return -2;
    return config_validate(&c, err, errlen);
}

static void accepts(const char *what, const char *const *kv)
{
    char err[512] = "";
    if (!ok(with(err, sizeof err, kv) == 0, "accepted: %s", what))
        diag("%s", err);
}

static void refuses(const char *what, const char *needle, const char *const *kv)
{
    char err[512] = "";
    int r = with(err, sizeof err, kv);
    ok(r == -1 && strstr(err, needle), "refused: %s (reason names '%s')", what, needle);
    if (r != -1 || !strstr(err, needle))
        diag("result %d, reason '%s'", r, err);
}

#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})

int main(void)
{
    accepts("no TLS listener, no PROXY protocol (defaults)", KV("log_level", "info"));
    accepts("tls_listen with its files",
            KV("tls_listen", "127.0.0.1:8443", "tls_cert", "/c.pem", "tls_key", "/k.pem"));
    refuses("tls_listen without files", "tls_cert and tls_key", KV("tls_listen", "127.0.0.1:8443"));
    refuses("tls_listen without a key", "tls_cert and tls_key",
            KV("tls_listen", "127.0.0.1:8443", "tls_cert", "/c.pem"));
    refuses("tls_listen not HOST:PORT", "tls_listen: 'nowhere'",
            KV("tls_listen", "nowhere", "tls_cert", "/c.pem", "tls_key", "/k.pem"));
    refuses(
        "tls_listen on listen's own address", "same address as listen",
        KV("listen", "127.0.0.1:9000", "tls_listen", "127.0.0.1:9000", "tls_cert", "/c", "tls_key", "/k"));
    refuses("proxy_protocol without trusted_proxies", "trusted_proxies is empty", KV("proxy_protocol", "on"));
    refuses(
        "tls_proxy_protocol without trusted_proxies", "tls_proxy_protocol is on",
        KV("tls_listen", "127.0.0.1:8443", "tls_cert", "/c", "tls_key", "/k", "tls_proxy_protocol", "on"));
    accepts("tls_proxy_protocol without a TLS listener has nothing to guard", KV("tls_proxy_protocol", "on"));
    accepts("proxy_protocol with a trust list",
            KV("proxy_protocol", "on", "trusted_proxies", "127.0.0.0/8, 10.1.0.0/16, ::1"));
    refuses("a bad trusted_proxies entry", "trusted_proxies: '10.0.0.1/8'",
            KV("trusted_proxies", "127.0.0.1, 10.0.0.1/8"));
    char err[256];
    struct config c;
    config_defaults(&c);
    is_int(config_set(&c, "tls_min_version", "1.1", err, sizeof err), -1, "tls_min_version 1.1 is refused");
    is_int(config_set(&c, "tls_min_version", "1.3", err, sizeof err), 0, "tls_min_version 1.3 is taken");
    is_int(c.tls_min_version, TLS_MIN_13, "  stored as TLS_MIN_13");
    ok(strstr(c.tls_ciphers, "ECDHE") && !strstr(c.tls_ciphers, "CBC"), "default ciphers: ECDHE, no CBC");
    return done_testing();
}
