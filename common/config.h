/* config.h: the server's settings and the one declarative table that
 * parsing, validation, `check` and the documentation all read.
 *
 * struct config holds no pointers, so the master can publish a copy in the
 * shared-memory block and every worker can read it at the same address-free
 * layout. */
#ifndef WSMILL_CONFIG_H
#define WSMILL_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR_MAX  256
#define CONFIG_LIST_MAX 1024

/* Mozilla's "intermediate" TLS 1.2 list: ECDHE with AES-GCM or ChaCha20-Poly1305. */
#define TLS_DEFAULT_CIPHERS                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct config {
    char listen[CONFIG_STR_MAX];           /* HOST:PORT as written */
    char listen_host[CONFIG_STR_MAX];      /* derived: HOST part */
    uint16_t listen_port;                  /* derived: PORT part */
    int64_t workers;                       /* 0 = auto (one per core) */
    int64_t max_connections;               /* 0 = auto: the master resolves it (capacity.h) */
    int64_t max_message_size;              /* bytes */
    int64_t max_header_size;               /* bytes */
    int64_t max_backpressure;              /* bytes queued per connection */
    int64_t handshake_timeout;             /* milliseconds */
    int64_t ping_interval;                 /* milliseconds, 0 = off */
    int64_t idle_timeout;                  /* milliseconds, 0 = off */
    int64_t drain_timeout;                 /* milliseconds */
    char allowed_origins[CONFIG_LIST_MAX]; /* comma-separated; empty = any */
    char status_socket[CONFIG_STR_MAX];
    char pid_file[CONFIG_STR_MAX];
    char log_file[CONFIG_STR_MAX]; /* empty = stderr */
    int64_t log_level;             /* enum log_level */
    /* channels */
    char publish_listen[CONFIG_STR_MAX]; /* HOST:PORT of the publish API; empty = off */
    char publish_token[CONFIG_STR_MAX];  /* Bearer token the publish API requires; empty = none */
    char metrics_token[CONFIG_STR_MAX];  /* token /metrics, /status and /dashboard require; empty = none */
    int64_t client_publish;              /* bool: client messages on /ch/ are published */
    int64_t max_channels_per_conn;
    int64_t slow_consumer; /* enum slow_consumer_policy */
    int64_t ring_size;     /* bytes of the shared publish ring */
    /* history (common/history.c, docs/history.md) */
    int64_t history_size;     /* messages kept per channel; 0 = none */
    int64_t history_ttl;      /* ms a kept message is served; 0 = no limit */
    int64_t history_channels; /* channel slots in the store */
    int64_t history_memory;   /* payload bytes the store keeps */
    /* limits (hostile clients) */
    int64_t max_frame_size;           /* bytes of one frame's payload */
    int64_t max_messages_per_second;  /* per connection, token bucket; 0 = off */
    int64_t max_bytes_per_second;     /* per connection, token bucket; 0 = off */
    int64_t max_connections_per_ip;   /* across workers; 0 = off */
    int64_t max_handshakes_per_ip;    /* unfinished, across workers; 0 = off */
    char auth_secret[CONFIG_STR_MAX]; /* HS256 key for connection tokens; empty = no auth */
    char user[CONFIG_STR_MAX];        /* workers switch to this user; empty = stay */
    /* permessage-deflate (RFC 7692) */
    int64_t permessage_deflate;         /* bool */
    int64_t deflate_min_size;           /* bytes: shorter messages go uncompressed */
    int64_t deflate_level;              /* zlib level 1-9 */
    int64_t deflate_client_window_bits; /* 8-15, asked of clients that allow it */
    /* past one machine (worker/pubsub/broker_redis.c) */
    int64_t broker;                    /* enum broker_kind */
    char redis_url[CONFIG_STR_MAX];    /* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
    char redis_prefix[CONFIG_STR_MAX]; /* prepended to a channel's name in Redis */
    /* TLS and load balancers (docs/tls.md) */
    char tls_listen[CONFIG_STR_MAX];       /* HOST:PORT of the wss listener; empty = none */
    char tls_cert[CONFIG_STR_MAX];         /* PEM file: certificate, then its chain */
    char tls_key[CONFIG_STR_MAX];          /* PEM file: the private key */
    char tls_ciphers[CONFIG_STR_MAX];      /* TLS 1.2 cipher list (1.3 suites are OpenSSL's) */
    int64_t tls_min_version;               /* enum tls_min_version */
    int64_t tls_session_tickets;           /* bool */
    int64_t proxy_protocol;                /* bool: connections on listen start with a PROXY header */
    int64_t tls_proxy_protocol;            /* bool: connections on tls_listen start with one */
    char trusted_proxies[CONFIG_LIST_MAX]; /* CIDRs that may send a PROXY header */
};

enum tls_min_version { TLS_MIN_12 = 0, TLS_MIN_13 = 1 };

enum broker_kind { BROKER_LOCAL = 0, BROKER_REDIS = 1 };

enum slow_consumer_policy { SLOW_CLOSE = 0, SLOW_DROP = 1 };

enum config_type {
    CONFIG_INT,      /* plain integer */
    CONFIG_SIZE,     /* bytes, with optional k/m/g suffix (powers of 1024) */
    CONFIG_DURATION, /* seconds by default; ms/s/m/h suffixes */
    CONFIG_STRING,
    CONFIG_LISTEN,     /* HOST:PORT, fills listen_host/listen_port */
    CONFIG_AUTO_COUNT, /* "auto" (stored as 0, resolved by the master) or an integer */
    CONFIG_LOGLEVEL,
    CONFIG_BOOL,   /* on/off, yes/no, true/false, 1/0 */
    CONFIG_CHOICE, /* one of the words in choices, stored as its index */
};

enum config_reload {
    RELOAD_RESTART = 0,    /* only a restart or binary upgrade applies it */
    RELOAD_HOT = 1,        /* SIGHUP applies it to running workers and open connections */
    RELOAD_GENERATION = 2, /* SIGHUP starts a new generation of workers; the old one drains */
    RELOAD_MASTER = 3,     /* SIGHUP: the master applies it (moves the file) */
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    size_t size;         /* for strings: buffer size */
    int64_t min, max;    /* for numeric types, in the stored unit */
    const char *dflt;    /* default, as it would be written in the file */
    int reloadable;      /* enum config_reload */
    const char *doc;     /* one line for docs and `check` */
    const char *choices; /* CONFIG_CHOICE: "a|b|c" */
};

/* The table, in documentation order; *n receives its length. */
const struct config_key *config_keys(size_t *n);
const struct config_key *config_key_find(const char *name);

/* Fills c with every key's default. */
void config_defaults(struct config *c);

/* Sets one key from its textual value. Returns 0, or -1 with a reason
 * naming the key, the value and the accepted range in err. */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);

/* Loads defaults, then the file. Returns 0, or -1 with "FILE:LINE: reason"
 * (or "FILE: reason" when it cannot be read) in err; c is then unspecified,
 * so callers load into a scratch struct and copy on success. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Checks relations between keys (e.g. ping_interval < idle_timeout).
 * Returns 0 or -1 with a reason in err. config_load calls it. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* Writes into buf the comma-separated names of keys that differ between
 * a and b and that running workers cannot take as they are (only_restart
 * = 1: every key but RELOAD_HOT ones), or all keys that differ
 * (only_restart = 0). Returns how many differ. */
int config_diff(const struct config *a, const struct config *b, int only_restart, char *buf, size_t len);

/* A size as the config file writes it ("16M", "16 MiB", "100b"). Returns
 * 0 with the bytes in *bytes, or -1. */
int config_parse_size(const char *text, int64_t *bytes);

/* Formats a key's current value as it would be written in the file. */
void config_format(const struct config *c, const struct config_key *k, char *buf, size_t len);

/* Writes the key table as Markdown (docs/config.md embeds it). */
void config_doc_write(FILE *out); /* config_doc.c */

/* 1 if origin (not NUL-terminated, length n) is allowed by the list. */
int config_origin_allowed(const struct config *c, const char *origin, size_t n);

#endif
