/* test_tls_store.c: common/tls_store.c: what the master publishes is what a
 * worker copies (files, names, ticket keys), each publish moves the
 * generation, and a reader never sees half of two publishes (a writer
 * process keeps publishing two different pairs while this one reads). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/tls_store.h"
#include "tap.h"

int main(void)
{
    struct tls_store *s =
        mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0); /* zeroed */
    struct tls_store_copy c;
    uint8_t keys[TLS_TICKET_KEYS];
    is_int(tls_store_read(s, &c), 0, "reading an empty store works");
    is_u64(c.generation, 0, "  generation 0: nothing published");
    tls_store_copy_free(&c);

    memset(keys, 7, sizeof keys);
    tls_store_publish(s, "CERT-A", 6, "KEY-A!", 6, "/a.pem", "/a.key", keys);
    is_int(tls_store_read(s, &c), 0, "read after a publish");
    is_u64(c.generation, 1, "  generation 1");
    is_mem(c.pem, c.cert_len, "CERT-A", 6, "  the certificate");
    is_mem(c.pem + c.cert_len, c.key_len, "KEY-A!", 6, "  the key after it");
    is_str(c.cert_name, "/a.pem", "  the certificate's file name");
    is_str(c.key_name, "/a.key", "  the key's file name");
    is_mem(c.ticket_keys, sizeof keys, keys, sizeof keys, "  the ticket keys");
    tls_store_copy_free(&c);
    ok(c.pem == NULL, "the copy is freed");

    static char big[TLS_STORE_MAX];
    tls_store_publish(s, big, sizeof big, "K", 1, "/big", "/k", keys);
    tls_store_read(s, &c);
    is_int(c.cert_len + c.key_len, 0, "files over TLS_STORE_MAX are never copied past the store");
    tls_store_copy_free(&c);

    /* A writer alternating two pairs of different lengths; every read
     * must be one whole pair. */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 200000; i++) {
            if (i & 1)
                tls_store_publish(s, "AAAA", 4, "aaaa", 4, "/a", "/a", keys);
            else
                tls_store_publish(s, "BBBBBBBB", 8, "bbbbbbbb", 8, "/b", "/b", keys);
        }
        _exit(0);
    }
    int torn = 0, reads = 0;
    for (int i = 0; i < 20000; i++, reads++) {
        tls_store_read(s, &c);
        int a = c.cert_len == 4 && !memcmp(c.pem, "AAAAaaaa", 8) && !strcmp(c.cert_name, "/a");
        int b = c.cert_len == 8 && !memcmp(c.pem, "BBBBBBBBbbbbbbbb", 16) && !strcmp(c.cert_name, "/b");
        int first = c.cert_len == 0; /* the oversized publish above, before the writer's first */
        torn += !(a || b || first);
        tls_store_copy_free(&c);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    is_int(torn, 0, "%d reads during 200,000 publishes: none saw half of two", reads);
    return done_testing();
}
