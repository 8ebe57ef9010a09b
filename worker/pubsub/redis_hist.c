/* redis_hist.c: offsets and history in Redis (broker = redis,
 * docs/history.md), as two Lua scripts so that each is one atomic step.
 *
 * Per channel, with K = redis_prefix + NAME (the pub/sub channel's name):
 *   K:e  the epoch (16 hex digits; made when absent, which drops K:o, K:h)
 *   K:o  the last offset (INCR)
 *   K:h  a list of "OFFSET MS OPCODE\n" + payload, the last history_size
 * all three expiring history_ttl after the channel's last publish.
 *
 * PUBLISH_LUA gives each channel of a message its offset, keeps the payload
 * and PUBLISHes the envelope
 *     [2][opcode][2: list length][list]["OFFSET EPOCH\n"][payload]
 * READ_LUA answers, per channel, its epoch and last offset and, for a
 * position given, whether it can be caught up and the messages after it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/handshake.h"
#include "../../common/history.h"
#include "../../common/log.h"
#include "../worker-t.h"
#include "redis_hist.h"
#include "redis_link.h"

#define EPOCH_LUA                                                                                            \
    "local function epoch(k, prefix)\n"                                                                      \
    "  local ep = redis.call('GET', k .. ':e')\n"                                                            \
    "  if ep then return ep end\n"                                                                           \
    "  local t = redis.call('TIME')\n"                                                                       \
    "  local n = redis.call('INCR', prefix .. ':epochs')\n"                                                  \
    "  ep = string.sub(redis.sha1hex(k .. ' ' .. t[1] .. ' ' .. t[2] .. ' ' .. n), 1, 16)\n"                 \
    "  redis.call('SET', k .. ':e', ep)\n"                                                                   \
    "  redis.call('DEL', k .. ':o', k .. ':h')\n"                                                            \
    "  return ep\n"                                                                                          \
    "end\n"                                                                                                  \
    "local t = redis.call('TIME')\n"                                                                         \
    "local ms = t[1] * 1000 + math.floor(t[2] / 1000)\n"

/* ARGV: opcode, list, payload, history_size, ttl_ms, prefix. */
static const char PUBLISH_LUA[] =
    EPOCH_LUA "local size, ttl, op = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[1])\n"
              "local ll = string.len(ARGV[2])\n"
              "local head = string.char(2, op, math.floor(ll / 256), ll % 256) .. ARGV[2]\n"
              "local offs = {}\n"
              "for i, k in ipairs(KEYS) do\n"
              "  local ep = epoch(k, ARGV[6])\n"
              "  local off = redis.call('INCR', k .. ':o')\n"
              "  if size > 0 then\n"
              "    redis.call('RPUSH', k .. ':h', off .. ' ' .. ms .. ' ' .. op .. '\\n' .. ARGV[3])\n"
              "    redis.call('LTRIM', k .. ':h', -size, -1)\n"
              "  end\n"
              "  if ttl > 0 then\n"
              "    redis.call('PEXPIRE', k .. ':e', ttl)\n"
              "    redis.call('PEXPIRE', k .. ':o', ttl)\n"
              "    if size > 0 then redis.call('PEXPIRE', k .. ':h', ttl) end\n"
              "  end\n"
              "  redis.call('PUBLISH', k, head .. off .. ' ' .. ep .. '\\n' .. ARGV[3])\n"
              "  offs[i] = off\n"
              "end\n"
              "return offs\n";

/* ARGV: per key HAS EPOCH SINCE, then ttl_ms, prefix, the caller's sync
 * channel and token. Per key: {epoch, top, status, entries...}; status
 * new, recovered, epoch, too_old, ahead. Then the token is published to
 * the sync channel (histsub_redis.c says why). The list holds offsets
 * ..top densely, so the missed ones are its last top - since entries: only
 * those are read (the loop still checks every offset, so a list that is
 * not dense gives too_old, never a wrong catch-up). */
static const char READ_LUA[] = EPOCH_LUA
    "local n = #KEYS\n"
    "local ttl = tonumber(ARGV[3 * n + 1])\n"
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local ep = epoch(k, ARGV[3 * n + 2])\n"
    "  local top = tonumber(redis.call('GET', k .. ':o') or '0')\n"
    "  local r = {ep, top, 'new'}\n"
    "  if ARGV[3 * i - 2] == '1' then\n"
    "    local since = tonumber(ARGV[3 * i])\n"
    "    if ARGV[3 * i - 1] ~= ep then r[3] = 'epoch'\n"
    "    elseif since > top then r[3] = 'ahead'\n"
    "    elseif since == top then r[3] = 'recovered'\n"
    "    else\n"
    "      r[3] = 'too_old'\n"
    "      local want = since + 1\n"
    "      local from = redis.call('LLEN', k .. ':h') - (top - since)\n"
    "      if from < 0 then from = 0 end\n"
    "      for _, e in ipairs(redis.call('LRANGE', k .. ':h', from, -1)) do\n"
    "        local a = string.find(e, ' ')\n"
    "        local b = string.find(e, ' ', a + 1)\n"
    "        local off, at = tonumber(string.sub(e, 1, a - 1)), tonumber(string.sub(e, a + 1, b - 1))\n"
    "        if off == want and (ttl == 0 or ms - at <= ttl) then\n"
    "          table.insert(r, e)\n"
    "          want = want + 1\n"
    "        end\n"
    "      end\n"
    "      if want == top + 1 then r[3] = 'recovered' else r = {ep, top, 'too_old'} end\n"
    "    end\n"
    "  end\n"
    "  out[i] = r\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[3 * n + 3], ARGV[3 * n + 4])\n"
    "return out\n";

/* ARGV: since, limit, ttl_ms, prefix. {epoch, top, first, up to limit
 * held entries after since}; first is the oldest held offset (top + 1
 * when none is). Held entries are a run ending at top: the list is
 * appended in offset order and its oldest expire first. */
static const char RANGE_LUA[] =
    EPOCH_LUA "local since, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
              "local k = KEYS[1]\n"
              "local ep = epoch(k, ARGV[4])\n"
              "local top = tonumber(redis.call('GET', k .. ':o') or '0')\n"
              "local out = {ep, top, top + 1}\n"
              "local held = false\n"
              "for _, e in ipairs(redis.call('LRANGE', k .. ':h', 0, -1)) do\n"
              "  local a = string.find(e, ' ')\n"
              "  local b = string.find(e, ' ', a + 1)\n"
              "  local off, at = tonumber(string.sub(e, 1, a - 1)), tonumber(string.sub(e, a + 1, b - 1))\n"
              "  if ttl == 0 or ms - at <= ttl then\n"
              "    if not held then out[3] = off; held = true end\n"
              "    if off > since and #out - 3 < limit then table.insert(out, e) end\n"
              "  end\n"
              "end\n"
              "return out\n";

#define ARGS_MAX (2 + 1 + 2 * 1024 + 6 + 2)

static size_t make_key(const struct broker *b, const char *name, size_t len, char *key)
{
    memcpy(key, b->prefix, b->prefix_len);
    memcpy(key + b->prefix_len, name, len);
    return b->prefix_len + len;
}

/* EVAL script with the keys of list and extra args; returns what
 * redisAsyncCommandArgv did. */
static int eval(struct broker *b, redisCallbackFn *fn, void *priv, const char *script, const char *list,
                size_t list_len, int nextra, const char **extra, const size_t *extra_len)
{
    static const char *argv[ARGS_MAX];
    static size_t argvlen[ARGS_MAX];
    static char keys[1024][CONFIG_STR_MAX + HS_CHANNEL_MAX];
    static char numkeys[16];
    int nk = 0, n = 3;
    size_t pos = 0, nl;
    const char *name;
    while (nk < 1024 && hs_list_next(list, list_len, &pos, &name, &nl)) {
        argvlen[n] = make_key(b, name, nl, keys[nk]);
        argv[n++] = keys[nk++];
    }
    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = script;
    argvlen[1] = strlen(script);
    argvlen[2] = (size_t)snprintf(numkeys, sizeof numkeys, "%d", nk);
    argv[2] = numkeys;
    for (int i = 0; i < nextra && n < ARGS_MAX; i++, n++) {
        argv[n] = extra[i];
        argvlen[n] = extra_len[i];
    }
    return redisAsyncCommandArgv(b->pub.ac, fn, priv, n, argv, argvlen);
}

int redis_hist_publish(struct broker *b, redisCallbackFn *fn, void *priv, const char *list, size_t list_len,
                       unsigned opcode, const uint8_t *payload, size_t len)
{
    char op[8], size[24], ttl[24];
    const struct config *cfg = &b->w->cfg;
    const char *x[6] = {op, list, (const char *)payload, size, ttl, b->prefix};
    size_t xl[6] = {(size_t)snprintf(op, sizeof op, "%u", opcode),
                    list_len,
                    len,
                    (size_t)snprintf(size, sizeof size, "%lld", (long long)cfg->history_size),
                    (size_t)snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->history_ttl),
                    b->prefix_len};
    return eval(b, fn, priv, PUBLISH_LUA, list, list_len, 6, x, xl);
}

int redis_hist_envelope(const uint8_t *e, size_t len, struct redis_envelope *out)
{
    if (len < 4 || (e[0] != 1 && e[0] != 2))
        return -1;
    size_t ll = (size_t)e[2] << 8 | e[3], at = 4 + ll;
    if (at > len)
        return -1;
    out->opcode = e[1];
    out->list = (const char *)e + 4;
    out->list_len = ll;
    out->offset = 0;
    if (e[0] == 2) { /* "OFFSET EPOCH\n" */
        const uint8_t *nlp = memchr(e + at, '\n', len - at);
        if (!nlp)
            return -1;
        for (; at < len && e[at] >= '0' && e[at] <= '9'; at++)
            out->offset = out->offset * 10 + (uint64_t)(e[at] - '0');
        at = (size_t)(nlp - e) + 1;
    }
    out->payload = e + at;
    out->len = len - at;
    return 0;
}

/* ---- reading ---------------------------------------------------------------- */

struct read_req {
    redis_read_cb cb;
    void *arg;
    int n;
};

static uint64_t hex64(const char *s, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        v = v << 4 | (uint64_t)(s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
    return v;
}

static int status_of(const redisReply *r)
{
    static const char *const names[] = {"recovered", "epoch", "too_old", "ahead"};
    for (int i = 0; i < 4; i++)
        if (r->len == strlen(names[i]) && !memcmp(r->str, names[i], r->len))
            return i; /* enum history_result */
    return -1;        /* "new" */
}

static void read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct read_req *q = priv;
    struct link *l = ac->data;
    redisReply *r = reply;
    struct redis_read_chan *out = NULL;
    int ok = r && r->type == REDIS_REPLY_ARRAY && (int)r->elements == q->n;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("redis broker %s: history read refused: %.*s", l->b->where, (int)r->len, r->str);
    if (ok && !(out = calloc((size_t)q->n, sizeof(*out))))
        ok = 0;
    for (int i = 0; ok && i < q->n; i++) {
        const redisReply *c = r->element[i];
        if (c->type != REDIS_REPLY_ARRAY || c->elements < 3 || c->element[0]->type != REDIS_REPLY_STRING) {
            ok = 0;
            break;
        }
        out[i].epoch = hex64(c->element[0]->str, c->element[0]->len);
        out[i].top = (uint64_t)c->element[1]->integer;
        out[i].result = status_of(c->element[2]);
        out[i].entries = (const void *const *)(c->element + 3);
        out[i].nentries = c->elements - 3;
    }
    q->cb(l->b->w, q->arg, ok, out);
    free(out);
    free(q);
}

int redis_hist_entry(const void *entry, uint64_t *offset, unsigned *opcode, const uint8_t **payload,
                     size_t *len)
{
    const redisReply *e = entry;
    if (e->type != REDIS_REPLY_STRING)
        return -1;
    const char *nl = memchr(e->str, '\n', e->len), *sp = memrchr(e->str, ' ', nl ? (size_t)(nl - e->str) : 0);
    if (!nl || !sp)
        return -1;
    *offset = strtoull(e->str, NULL, 10);
    *opcode = (unsigned)strtoul(sp + 1, NULL, 10);
    *payload = (const uint8_t *)nl + 1;
    *len = e->len - (size_t)(nl + 1 - e->str);
    return 0;
}

int redis_hist_ready(struct worker *w)
{
    struct broker *b = w->broker_state;
    if (b)
        broker_redis_want_sync(b);
    return b && b->sync_live && b->pub.ready;
}

int redis_hist_read(struct worker *w, const char *list, size_t len, const struct redis_read_pos *pos, int n,
                    uint64_t token, redis_read_cb cb, void *arg)
{
    struct broker *b = w->broker_state;
    if (!b || !b->pub.ready)
        return -1;
    struct read_req *q = malloc(sizeof(*q));
    static char bufs[1024][3][24];
    static const char *x[3 * 1024 + 4];
    static size_t xl[3 * 1024 + 4];
    char ttl[24], tok[24];
    if (!q)
        return -1;
    *q = (struct read_req){cb, arg, n};
    for (int i = 0; i < n; i++) {
        x[3 * i] = pos[i].has ? "1" : "0";
        xl[3 * i] = 1;
        x[3 * i + 1] = bufs[i][1];
        xl[3 * i + 1] = (size_t)snprintf(bufs[i][1], 24, "%016llx", (unsigned long long)pos[i].epoch);
        x[3 * i + 2] = bufs[i][2];
        xl[3 * i + 2] = (size_t)snprintf(bufs[i][2], 24, "%llu", (unsigned long long)pos[i].since);
    }
    x[3 * n] = ttl;
    xl[3 * n] = (size_t)snprintf(ttl, sizeof ttl, "%lld", (long long)w->cfg.history_ttl);
    x[3 * n + 1] = b->prefix;
    xl[3 * n + 1] = b->prefix_len;
    x[3 * n + 2] = b->sync_key;
    xl[3 * n + 2] = strlen(b->sync_key);
    x[3 * n + 3] = tok;
    xl[3 * n + 3] = (size_t)snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    if (eval(b, read_cb, q, READ_LUA, list, len, 3 * n + 4, x, xl) != REDIS_OK) {
        free(q);
        return -1;
    }
    return 0;
}

/* ---- a range, for GET /history and /channels ---------------------------- */

struct range_req {
    redis_range_cb cb;
    void *arg;
};

static void range_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct range_req *q = priv;
    struct link *l = ac->data;
    const redisReply *r = reply;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
             r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_INTEGER &&
             r->element[2]->type == REDIS_REPLY_INTEGER;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("redis broker %s: history range refused: %.*s", l->b->where, (int)r->len, r->str);
    struct redis_range out = {0};
    if (ok)
        out = (struct redis_range){hex64(r->element[0]->str, r->element[0]->len),
                                   (uint64_t)r->element[1]->integer, (uint64_t)r->element[2]->integer,
                                   (const void *const *)(r->element + 3), r->elements - 3};
    q->cb(l->b->w, q->arg, ok, ok ? &out : NULL);
    free(q);
}

int redis_hist_range(struct worker *w, const char *name, size_t nl, uint64_t since, uint64_t limit,
                     redis_range_cb cb, void *arg)
{
    struct broker *b = w->broker_state;
    if (!b || !b->pub.ready)
        return -1;
    struct range_req *q = malloc(sizeof(*q));
    if (!q)
        return -1;
    *q = (struct range_req){cb, arg};
    char a[3][24];
    const char *x[4] = {a[0], a[1], a[2], b->prefix};
    size_t xl[4] = {(size_t)snprintf(a[0], sizeof a[0], "%llu", (unsigned long long)since),
                    (size_t)snprintf(a[1], sizeof a[1], "%llu", (unsigned long long)limit),
                    (size_t)snprintf(a[2], sizeof a[2], "%lld", (long long)w->cfg.history_ttl),
                    b->prefix_len};
    if (eval(b, range_cb, q, RANGE_LUA, name, nl, 4, x, xl) != REDIS_OK) {
        free(q);
        return -1;
    }
    return 0;
}
