/* tls_store.c: publishing the PEM files to workers under a sequence lock. */
#include "tls_store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tls_store_publish(struct tls_store *s, const char *cert, size_t cert_len, const char *key,
                       size_t key_len, const char *cert_name, const char *key_name,
                       const uint8_t *ticket_keys)
{
    uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (cert_len + key_len > sizeof s->pem)
        cert_len = key_len = 0; /* the file reader refuses these; never overflow */
    memcpy(s->pem, cert, cert_len);
    memcpy(s->pem + cert_len, key, key_len);
    OPENSSL_cleanse(s->pem + cert_len + key_len, sizeof s->pem - cert_len - key_len);
    s->cert_len = (uint32_t)cert_len;
    s->key_len = (uint32_t)key_len;
    snprintf(s->cert_name, sizeof s->cert_name, "%s", cert_name);
    snprintf(s->key_name, sizeof s->key_name, "%s", key_name);
    memcpy(s->ticket_keys, ticket_keys, sizeof s->ticket_keys);
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

int tls_store_read(struct tls_store *s, struct tls_store_copy *out)
{
    memset(out, 0, sizeof *out);
    char *pem = malloc(TLS_STORE_MAX);
    if (!pem)
        return -1;
    for (;;) {
        uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (!(before & 1)) {
            out->generation = atomic_load_explicit(&s->generation, memory_order_acquire);
            out->cert_len = s->cert_len;
            out->key_len = s->key_len;
            memcpy(out->cert_name, s->cert_name, sizeof out->cert_name);
            memcpy(out->key_name, s->key_name, sizeof out->key_name);
            memcpy(out->ticket_keys, s->ticket_keys, sizeof out->ticket_keys);
            memcpy(pem, s->pem, TLS_STORE_MAX);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == before)
                break;
        }
        usleep(100); /* the master is mid-write; it takes microseconds */
    }
    out->cert_name[TLS_STORE_NAMES - 1] = out->key_name[TLS_STORE_NAMES - 1] = '\0';
    if ((size_t)out->cert_len + out->key_len > TLS_STORE_MAX)
        out->cert_len = out->key_len = 0;
    out->pem = pem;
    return 0;
}

void tls_store_copy_free(struct tls_store_copy *c)
{
    OPENSSL_cleanse(c->ticket_keys, sizeof c->ticket_keys);
    if (c->pem)
        OPENSSL_cleanse(c->pem, TLS_STORE_MAX);
    free(c->pem);
    c->pem = NULL;
}
