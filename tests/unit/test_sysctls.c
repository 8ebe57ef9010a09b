/* test_sysctls.c: master/sysctls.c, the one rule for "is the current
 * value enough" shared by check, check --plan and tune-kernel.sh. The
 * multi-valued case of issue 18 (tcp_mem was lowered from "1000000 1500000
 * 2000000" to "500000 750000 1000000") comes first; reads and writes go to
 * a fake /proc/sys ($WSMILL_PROC_SYS) in a temporary directory. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../master/sysctls.h"
#include "tap.h"

static const struct sysctl_want *find(const struct sysctl_want *w, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i].key, key))
            return &w[i];
    return NULL;
}

static void merged(const struct sysctl_want *w, const char *current, const char *want, const char *what)
{
    int64_t cur[SYSCTLS_MAX_VALUES], out[SYSCTLS_MAX_VALUES];
    char got[96];
    int n = sysctls_parse(current, cur, SYSCTLS_MAX_VALUES);
    sysctls_merge(w, cur, n, out);
    sysctls_format(out, w->n, got, sizeof got);
    ok(!strcmp(got, want), "%s: %s now \"%s\" -> writes \"%s\" (want \"%s\")", what, w->key, current, got,
       want);
}

static int enough(const struct sysctl_want *w, const char *current)
{
    int64_t cur[SYSCTLS_MAX_VALUES];
    int n = sysctls_parse(current, cur, SYSCTLS_MAX_VALUES);
    return sysctls_enough(w, cur, n);
}

static void test_multi_valued(void)
{
    struct sysctl_want w[SYSCTLS_MAX];
    int n = sysctls_for(1000000, 0, w, SYSCTLS_MAX);
    const struct sysctl_want *mem = find(w, n, "net.ipv4.tcp_mem");
    ok(mem && mem->n == 3, "tcp_mem has three values");
    ok(enough(mem, "1000000 1500000 2000000"), "twice the target is enough (it was lowered before)");
    ok(!enough(mem, "20000 30000 40000"), "the 160 MB cap is not");
    ok(!enough(mem, "600000 700000 2000000"), "one value short is short");
    merged(mem, "20000 30000 40000", "500000 750000 1000000", "all short");
    merged(mem, "600000 700000 2000000", "600000 750000 2000000", "each value on its own, none lowered");
    merged(mem, "1000000 1500000 2000000", "1000000 1500000 2000000", "nothing lowered");
    n = sysctls_for(1000, 1, w, SYSCTLS_MAX);
    const struct sysctl_want *range = find(w, n, "net.ipv4.ip_local_port_range");
    ok(range && !strcmp(range->dir, "-+"), "port range: the low end at most, the high end at least");
    ok(enough(range, "1024 65535") && enough(range, "1000 65535"), "1024-65535 and wider are enough");
    ok(!enough(range, "32768 60999"), "the default range is not");
    merged(range, "32768 60999", "1024 65535", "widened");
    merged(range, "500 61000", "500 65535", "a lower start is kept");
    const struct sysctl_want *defer = find(w, n, "net.core.skb_defer_max");
    ok(defer && enough(defer, "0") && !enough(defer, "64"), "skb_defer_max: at most 0");
    ok(!enough(defer, "0 0"), "a count of values other than the table's is not enough");
}

static void test_targets(void)
{
    struct sysctl_want w[SYSCTLS_MAX];
    int n = sysctls_for(1000000, 0, w, SYSCTLS_MAX), nl = sysctls_for(1000000, 1, w, SYSCTLS_MAX);
    ok(nl > n, "local clients add settings (%d > %d)", nl, n);
    n = sysctls_for(1000000, 0, w, SYSCTLS_MAX);
    const struct sysctl_want *fm = find(w, n, "fs.file-max");
    ok(fm && fm->v[0] >= 1000000, "file-max covers a descriptor per connection (%lld)", (long long)fm->v[0]);
    n = sysctls_for(1000000, 1, w, SYSCTLS_MAX);
    const struct sysctl_want *fm2 = find(w, n, "fs.file-max");
    ok(fm2 && fm2->v[0] >= 2000000, "both ends on the host: two per connection (%lld)", (long long)fm2->v[0]);
    ok(find(w, n, "net.netfilter.nf_conntrack_max")->optional, "conntrack only where loaded");
    for (int i = 0; i < n; i++)
        ok(w[i].reason && strlen(w[i].reason) > 10 && (int)strlen(w[i].dir) == w[i].n,
           "%s has a reason and a direction per value", w[i].key);
}

static void test_parse(void)
{
    int64_t v[SYSCTLS_MAX_VALUES];
    is_int(sysctls_parse("4096\n", v, 3), 1, "one value with a newline");
    is_int(sysctls_parse("1\t2  3\n", v, 3), 3, "tabs and spaces");
    ok(v[0] == 1 && v[1] == 2 && v[2] == 3, "values in order");
    is_int(sysctls_parse("1 2 3 4", v, 3), -1, "more than max");
    is_int(sysctls_parse("bbr", v, 3), -1, "not a number");
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void get(const char *dir, const char *rel, char *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)len, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
}

static void test_tune_fake_proc(void)
{
    char dir[] = "/tmp/wsmill-test-sysctls-XXXXXX", sub[600], buf[128];
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    const char *dirs[] = {"fs", "net", "net/ipv4", "net/core", "vm"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, dirs[i]);
        mkdir(sub, 0700);
    }
    put(dir, "net/ipv4/tcp_mem", "1000000\t1500000\t2000000\n");
    put(dir, "net/core/somaxconn", "4096\n");
    put(dir, "net/ipv4/ip_local_port_range", "32768\t60999\n");
    put(dir, "fs/file-max", "9223372036854775807\n");
    setenv("WSMILL_PROC_SYS", dir, 1);
    int64_t v[3];
    is_int(sysctls_read("net.ipv4.tcp_mem", v, 3), 3, "reads the fake tcp_mem");
    is_int(sysctls_read("net.ipv4.tcp_rmem", v, 3), 0, "an absent setting reads as 0 values");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = sysctls_tune(20000, 1, 1, out);
    fclose(out);
    get(dir, "net/ipv4/tcp_mem", buf, sizeof buf);
    ok(!strcmp(buf, "1000000\t1500000\t2000000"), "tune --apply left the larger tcp_mem alone: '%s'", buf);
    get(dir, "net/core/somaxconn", buf, sizeof buf);
    ok(!strcmp(buf, "65535"), "raised somaxconn: '%s'", buf);
    get(dir, "net/ipv4/ip_local_port_range", buf, sizeof buf);
    ok(!strcmp(buf, "1024 65535"), "widened the port range: '%s'", buf);
    ok(strstr(text, "changed net.core.somaxconn: 4096 -> 65535") != NULL, "says what it changed");
    ok(strstr(text, "changed net.ipv4.tcp_mem") == NULL && strstr(text, "# ok  net.ipv4.tcp_mem"),
       "and that tcp_mem was enough");
    ok(strstr(text, "not on this kernel") != NULL, "names settings the (fake) kernel lacks");
    is_int(rc, 0, "nothing short after --apply");
    free(text);
    unsetenv("WSMILL_PROC_SYS");
    snprintf(sub, sizeof sub, "rm -rf '%s'", dir);
    if (system(sub) != 0)
        diag("could not remove %s", dir);
}

int main(void)
{
    test_parse();
    test_multi_valued();
    test_targets();
    test_tune_fake_proc();
    return done_testing();
}
