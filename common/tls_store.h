/* tls_store.h: the certificate chain and key as the master last read and
 * validated them, in the shared-memory block, so workers that dropped
 * their privileges can build a new context on reload without opening the
 * key file. One writer (the master) under a sequence lock; a generation of
 * 0 means nothing was published (no tls_listen). */
#ifndef WSMILL_TLS_STORE_H
#define WSMILL_TLS_STORE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_STORE_MAX   (60 * 1024) /* both PEM files together */
#define TLS_STORE_NAMES 256
#define TLS_TICKET_KEYS 80 /* name, HMAC and AES keys for session tickets */

struct tls_store {
    _Atomic uint64_t generation;
    _Atomic uint32_t seq; /* odd while the master writes */
    uint32_t cert_len, key_len;
    char cert_name[TLS_STORE_NAMES], key_name[TLS_STORE_NAMES]; /* the files, for messages */
    /* One set of ticket keys for every worker (a ticket from any worker
     * resumes on any other), made by the master once per start. */
    uint8_t ticket_keys[TLS_TICKET_KEYS];
    char pem[TLS_STORE_MAX]; /* cert_len bytes, then key_len */
};

/* Master: publishes both files' bytes (cert_len + key_len <= TLS_STORE_MAX,
 * checked by the reader of the files) and bumps the generation. */
void tls_store_publish(struct tls_store *s, const char *cert, size_t cert_len, const char *key,
                       size_t key_len, const char *cert_name, const char *key_name,
                       const uint8_t *ticket_keys);

/* A worker's private copy. */
struct tls_store_copy {
    uint64_t generation;
    uint32_t cert_len, key_len;
    char cert_name[TLS_STORE_NAMES], key_name[TLS_STORE_NAMES];
    uint8_t ticket_keys[TLS_TICKET_KEYS];
    char *pem; /* malloc'd; tls_store_copy_free cleanses it */
};

/* Worker: copies the current files. Returns 0 (out->generation 0 when
 * nothing is published), or -1 when out of memory. */
int tls_store_read(struct tls_store *s, struct tls_store_copy *out);
void tls_store_copy_free(struct tls_store_copy *c);

#endif
