/* handshake.c: RFC 6455 section 4.2 server side, pure. */
#include "handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int hs_channel_name_valid(const char *name, size_t n)
{
    if (n < 1 || n > HS_CHANNEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int hs_channel_list(const char *list, size_t n, int max, uint16_t *off, uint8_t *len)
{
    int count = 0;
    size_t pos = 0, nl;
    const char *name;
    while (hs_list_next(list, n, &pos, &name, &nl)) {
        if (!hs_channel_name_valid(name, nl))
            return -1;
        if (count == max)
            return -2;
        off[count] = (uint16_t)(name - list);
        len[count] = (uint8_t)nl;
        count++;
    }
    return count;
}

void hs_request_init(struct hs_request *r)
{
    memset(r, 0, sizeof(*r));
    r->version = -1;
    r->origin_len = -1;
}

int hs_header_has_token(const char *value, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(value + start, token, tl) == 0)
            return 1;
    }
    return 0;
}

int hs_key_valid(const char *key, size_t len)
{
    if (len != HS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return 0;
    }
    /* 16 bytes leave 4 unused bits in the 22nd character: they must be 0
     * for the key to decode to exactly 16 bytes in canonical form. */
    unsigned char out[18];
    if (EVP_DecodeBlock(out, (const unsigned char *)key, HS_KEY_LEN) != 18)
        return 0;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *pos = strchr(b64, key[21]);
    return pos && ((pos - b64) & 0x0f) == 0;
}

void hs_accept_key(const char *key, size_t len, char *out)
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char buf[HS_KEY_LEN + sizeof(ws_guid)];
    if (len > HS_KEY_LEN)
        len = HS_KEY_LEN;
    memcpy(buf, key, len);
    memcpy(buf + len, ws_guid, sizeof(ws_guid) - 1);
    SHA1((const unsigned char *)buf, len + sizeof(ws_guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[HS_ACCEPT_LEN] = '\0';
}

int hs_check(const struct hs_request *r, const struct config *cfg)
{
    if (!r->method_get)
        return 405;
    if (r->http_major < 1 || (r->http_major == 1 && r->http_minor < 1))
        return 400;
    if (!r->has_host || !r->upgrade_websocket || !r->connection_upgrade)
        return 400;
    /* Version before key: a client speaking another version learns the one
     * we speak (426 + Sec-WebSocket-Version) instead of a bare 400. */
    if (r->version_count != 1 || r->version != 13)
        return r->version_count == 0 ? 400 : 426;
    if (r->key_count != 1 || !hs_key_valid(r->key, (size_t)r->key_len))
        return 400;
    if (r->origin_len >= 0 &&
        (r->origin_len >= HS_ORIGIN_MAX || !config_origin_allowed(cfg, r->origin, (size_t)r->origin_len)))
        return 403;
    return 0;
}

const char *hs_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

size_t hs_build_accept(char *out, size_t cap, const char *key, size_t key_len)
{
    return hs_build_accept_proto(out, cap, key, key_len, NULL);
}

size_t hs_build_accept_proto(char *out, size_t cap, const char *key, size_t key_len, const char *protocol)
{
    char accept[HS_ACCEPT_LEN + 1];
    hs_accept_key(key, key_len, accept);
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
                     protocol ? "\r\n" : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t hs_build_error(char *out, size_t cap, int status, const char *why)
{
    int n =
        snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\n"
                 "%s"
                 "%s"
                 "%s"
                 "Content-Type: text/plain\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s\n",
                 status, hs_status_text(status), status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "",
                 status == 405 ? "Allow: GET\r\n" : "",
                 status == 401 ? "WWW-Authenticate: Bearer realm=\"wsmill\"\r\n" : "", strlen(why) + 1, why);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
