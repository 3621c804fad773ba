/* spoa.txstore: per-transaction values that outlive one event, for correlating a
 * request event with its response event (HAProxy 3.1+ does not keep stream-ids
 * across events: key by an argument such as unique-id). Built on the shared-dict
 * store: one dict named "txstore", every value a tagged string, so tables of
 * scalars survive the copy between Lua states. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "luaspoa_internal.h"
#include "luaspoa_process.h"

#define TXSTORE_NAME "txstore"
#define TXSTORE_DEFAULT_MAX 100000
#define TXSTORE_DEFAULT_TTL_MS 60000
#define MAX_KEY_LEN 65535

/* Tags of the encoding: one byte, then the value (integers and lengths little-endian). */
enum { T_FALSE = 'F', T_TRUE = 'T', T_INT = 'i', T_FLOAT = 'f', T_STRING = 's', T_TABLE = 't' };

static luaspoa_dict *txstore(lua_State *L, int64_t max_items) {
    int64_t existing = 0;
    luaspoa_dict *d = luaspoa_dict_declare(TXSTORE_NAME, strlen(TXSTORE_NAME), max_items, 0, &existing);
    if (d == NULL && existing)
        d = luaspoa_dict_find(TXSTORE_NAME, strlen(TXSTORE_NAME));
    if (d == NULL)
        luaL_error(L, "spoa.txstore: out of memory");
    return d;
}

/* The encoding grows in a userdata at a fixed stack slot (a Lua error while
 * encoding leaves nothing to free; luaL_Buffer would forbid the lua_next below). */
typedef struct { char *p; size_t len, cap; int slot; } wbuf;

static void put_bytes(lua_State *L, wbuf *w, const void *src, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = (w->cap ? w->cap : 64);
        while (cap < w->len + n) cap *= 2;
        char *grown = lua_newuserdatauv(L, cap, 0);
        if (w->len) memcpy(grown, w->p, w->len);
        lua_replace(L, w->slot);
        w->p = grown;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_tag(lua_State *L, wbuf *w, char tag) { put_bytes(L, w, &tag, 1); }

/* One scalar at idx; `what` names it in errors. */
static void encode_scalar(lua_State *L, wbuf *w, int idx, const char *what) {
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        put_tag(L, w, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int64_t i = lua_tointeger(L, idx);
            put_tag(L, w, T_INT);
            put_bytes(L, w, &i, sizeof i);
        } else {
            double d = lua_tonumber(L, idx);
            put_tag(L, w, T_FLOAT);
            put_bytes(L, w, &d, sizeof d);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len > UINT32_MAX)
            luaL_error(L, "spoa.txstore.set: %s is too long", what);
        uint32_t n = (uint32_t)len;
        put_tag(L, w, T_STRING);
        put_bytes(L, w, &n, sizeof n);
        put_bytes(L, w, s, len);
        break;
    }
    default:
        luaL_error(L, "spoa.txstore.set: %s is a %s (stored values are booleans, numbers, strings, "
                      "or one table of those)", what, luaL_typename(L, idx));
    }
}

/* The value at idx (absolute) into w. */
static void encode(lua_State *L, wbuf *w, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) {
        encode_scalar(L, w, idx, "the value");
        return;
    }
    put_tag(L, w, T_TABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int top = lua_gettop(L);
        if (lua_type(L, top - 1) != LUA_TSTRING && !lua_isinteger(L, top - 1))
            luaL_error(L, "spoa.txstore.set: table keys must be strings or integers, got %s",
                       luaL_typename(L, top - 1));
        if (lua_type(L, top) == LUA_TTABLE)
            luaL_error(L, "spoa.txstore.set: nested tables are not stored");
        encode_scalar(L, w, top - 1, "a table key");
        encode_scalar(L, w, top, "a table value");
        lua_pop(L, 1);
    }
}

static const char *check_key(lua_State *L, size_t *len) {
    const char *k = luaL_checklstring(L, 1, len);
    if (*len == 0 || *len > MAX_KEY_LEN)
        luaL_error(L, "spoa.txstore: the key must be 1 to %d bytes", MAX_KEY_LEN);
    return k;
}

/* spoa.txstore.set(key, value [, ttl_seconds = 60]); nil deletes. Returns true,
 * or false and "too large" (over the store's share of max_bytes) or "no memory". */
static int l_set(lua_State *L) {
    size_t klen;
    check_key(L, &klen);
    int64_t ttl_ms = TXSTORE_DEFAULT_TTL_MS;
    if (!lua_isnoneornil(L, 3)) {
        lua_Number ttl = luaL_checknumber(L, 3);
        if (!(ttl > 0) || ttl > 9.2e12)
            return luaL_error(L, "spoa.txstore.set: ttl must be seconds > 0, got %f", (double)ttl);
        ttl_ms = (int64_t)llround(ttl * 1000.0);
        if (ttl_ms == 0) ttl_ms = 1;
    }
    lua_settop(L, 2);
    luaspoa_sval v = { .type = LUASPOA_SV_NIL };
    if (!lua_isnil(L, 2)) {
        lua_pushnil(L);                       /* slot 3: the encoding */
        wbuf w = { .slot = 3 };
        encode(L, &w, 2);
        v.type = LUASPOA_SV_STRING;
        v.s = w.p;
        v.len = w.len;
    }
    size_t len;
    const char *k = lua_tolstring(L, 1, &len);
    int forcible = 0;
    int rc = luaspoa_dict_store(txstore(L, TXSTORE_DEFAULT_MAX), k, len, &v, ttl_ms, LUASPOA_SD_SET, &forcible);
    lua_pushboolean(L, rc == LUASPOA_SD_OK);
    if (rc == LUASPOA_SD_OK) return 1;
    lua_pushstring(L, rc == LUASPOA_SD_TOO_LARGE ? "too large" : "no memory");
    return 2;
}

/* Reads one scalar at *p (bounds-checked); pushes it. */
static int decode_scalar(lua_State *L, const char **p, const char *end) {
    if (*p >= end) return 0;
    char tag = *(*p)++;
    switch (tag) {
    case T_FALSE: case T_TRUE: lua_pushboolean(L, tag == T_TRUE); return 1;
    case T_INT: case T_FLOAT: {
        if (end - *p < 8) return 0;
        if (tag == T_INT) { int64_t i; memcpy(&i, *p, 8); lua_pushinteger(L, i); }
        else { double d; memcpy(&d, *p, 8); lua_pushnumber(L, d); }
        *p += 8;
        return 1;
    }
    case T_STRING: {
        uint32_t n;
        if (end - *p < 4) return 0;
        memcpy(&n, *p, 4);
        *p += 4;
        if ((size_t)(end - *p) < n) return 0;
        lua_pushlstring(L, *p, n);
        *p += n;
        return 1;
    }
    default: return 0;
    }
}

static void push_decoded(lua_State *L, const char *s, size_t len) {
    const char *p = s, *end = s + len;
    if (len > 0 && *s == T_TABLE) {
        p++;
        lua_newtable(L);
        while (p < end) {
            if (!decode_scalar(L, &p, end) || !decode_scalar(L, &p, end))
                luaL_error(L, "spoa.txstore: corrupt stored value");
            lua_rawset(L, -3);
        }
        return;
    }
    if (!decode_scalar(L, &p, end) || p != end)
        luaL_error(L, "spoa.txstore: corrupt stored value");
}

static int get_common(lua_State *L, int take) {
    size_t klen;
    const char *k = check_key(L, &klen);
    luaspoa_dict *d = txstore(L, TXSTORE_DEFAULT_MAX);
    luaspoa_sval v;
    int stale = 0;
    int rc = luaspoa_dict_get(d, k, klen, 0, &v, &stale);
    if (rc == LUASPOA_SD_NO_MEMORY)
        return luaL_error(L, "spoa.txstore: out of memory copying a value");
    if (rc != LUASPOA_SD_OK || v.type != LUASPOA_SV_STRING) {
        lua_pushnil(L);
        return 1;
    }
    /* v.s points into a per-thread buffer: copy it before the next store call. */
    lua_pushlstring(L, v.s, v.len);
    if (take)
        luaspoa_dict_delete(d, k, klen);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    push_decoded(L, s, len);
    return 1;
}

static int l_get(lua_State *L) { return get_common(L, 0); }
static int l_take(lua_State *L) { return get_common(L, 1); }

static int l_delete(lua_State *L) {
    size_t klen;
    const char *k = check_key(L, &klen);
    luaspoa_dict_delete(txstore(L, TXSTORE_DEFAULT_MAX), k, klen);
    return 0;
}

/* spoa.txstore.declare{ max_items = n } at load time: the store's capacity
 * (default 100000; LRU eviction beyond it). */
static int l_declare(lua_State *L) {
    luaspoa_require_setup(L, "spoa.txstore.declare", 1);
    lua_Integer max_items = TXSTORE_DEFAULT_MAX;
    if (luaspoa_check_options(L, 1, "spoa.txstore.declare", "max_items"))
        max_items = luaspoa_opt_positive(L, 1, "spoa.txstore.declare", "max_items", max_items);
    int64_t existing = 0;
    if (luaspoa_dict_declare(TXSTORE_NAME, strlen(TXSTORE_NAME), max_items, 0, &existing) == NULL && existing)
        return luaL_error(L, "spoa.txstore.declare: already declared with max_items = %I", (lua_Integer)existing);
    return 0;
}

static int l_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)luaspoa_dict_count(txstore(L, TXSTORE_DEFAULT_MAX)));
    return 1;
}

void luaspoa_open_txstore(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"set", l_set}, {"get", l_get}, {"take", l_take}, {"delete", l_delete},
        {"declare", l_declare}, {"count", l_count}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "txstore");
}
