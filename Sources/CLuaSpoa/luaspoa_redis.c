/* spoa.redis: Redis from handlers and background tasks.
 *
 *   local r = spoa.redis.new{ host =, port =, db =, password =, timeout = ms, pool = n }
 *   r:call("INCR", key)            -> reply, or nil, err
 *   r:eval(script, keys, args)     -> reply, or nil, err
 *
 * new() only records the settings (nothing connects: a Redis that is down at
 * start must not stop the agent). A call goes to Swift (LuaWaits, Redis case) as
 * the wait's strings: args[0] host, [1] port, [2] db, [3] password, [4] pool,
 * then the command's words; ms is the timeout. Swift keeps each worker's
 * connections per settings and pipelines the calls on them. */
#include <stdio.h>
#include <string.h>

#include "luaspoa_internal.h"

#define LUASPOA_REDIS_MT "luaspoa.Redis"
/* Words of one command at most: bounds the stack a call anchors. */
#define MAX_WORDS 4096
#define MAX_TIMEOUT_MS 3600000
#define DEFAULT_TIMEOUT_MS 1000

typedef struct redis_client {
    char host[256];
    char password[256];
    char port[8], db[8], pool[8];
    int64_t timeout_ms;
} redis_client;

static int int_option(lua_State *L, const char *key, int fallback, int min, int max) {
    if (lua_getfield(L, 1, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return fallback;
    }
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < min || v > max)
        luaL_error(L, "spoa.redis.new: %s must be an integer from %d to %d", key, min, max);
    lua_pop(L, 1);
    return (int)v;
}

static void string_option(lua_State *L, const char *key, const char *fallback, char *out, size_t cap) {
    size_t len = strlen(fallback);
    const char *s = fallback;
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &len);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "spoa.redis.new: %s must be a string", key);
    }
    if (len >= cap || memchr(s, 0, len) != NULL)
        luaL_error(L, "spoa.redis.new: %s must be shorter than %d bytes, without NUL", key, (int)cap);
    memcpy(out, s, len);
    out[len] = 0;
    lua_pop(L, 1);
}

static int l_new(lua_State *L) {
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaspoa_check_options(L, 1, "spoa.redis.new", "host, port, db, password, timeout, pool");
    redis_client *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    string_option(L, "host", "127.0.0.1", r->host, sizeof r->host);
    string_option(L, "password", "", r->password, sizeof r->password);
    snprintf(r->port, sizeof r->port, "%d", int_option(L, "port", 6379, 1, 65535));
    snprintf(r->db, sizeof r->db, "%d", int_option(L, "db", 0, 0, 9999));
    snprintf(r->pool, sizeof r->pool, "%d", int_option(L, "pool", 1, 1, 64));
    r->timeout_ms = int_option(L, "timeout", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS);
    luaspoa_setmetatable(L, LUASPOA_REDIS_MT);
    return 1;
}

/* The strings of the call: settings from the client, then the `nwords` words
 * at stack indexes first.., each a string (numbers converted in place). */
static int send_command(lua_State *L, redis_client *r, int first, int nwords, const char *fn) {
    if (nwords < 1)
        return luaL_error(L, "%s: no command", fn);
    if (nwords > MAX_WORDS)
        return luaL_error(L, "%s: more than %d words", fn, MAX_WORDS);
    for (int i = 0; i < nwords; i++) {
        int t = lua_type(L, first + i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "%s: argument %d must be a string or a number, not %s", fn, i + 1,
                              lua_typename(L, t));
    }
    spoa_bytes *args = lua_newuserdatauv(L, sizeof(spoa_bytes) * (size_t)(5 + nwords), 0);
    const char *settings[5] = {r->host, r->port, r->db, r->password, r->pool};
    for (int i = 0; i < 5; i++) {
        args[i].ptr = settings[i];
        args[i].len = strlen(settings[i]);
    }
    for (int i = 0; i < nwords; i++)
        args[5 + i].ptr = lua_tolstring(L, first + i, &args[5 + i].len);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_REDIS, .ms = r->timeout_ms, .args = args, .nargs = 5 + nwords};
    return luaspoa_wait_yield(L, fn, &w, luaspoa_wait_push_values);
}

static int r_call(lua_State *L) {
    redis_client *r = luaspoa_checkudata(L, 1, LUASPOA_REDIS_MT);
    return send_command(L, r, 2, lua_gettop(L) - 1, "redis:call");
}

/* EVAL script numkeys key... arg...: the table elements are pushed on the stack,
 * where they stay while the call waits. */
static int r_eval(lua_State *L) {
    redis_client *r = luaspoa_checkudata(L, 1, LUASPOA_REDIS_MT);
    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    lua_Integer nkeys = lua_isnil(L, 3) ? 0 : luaL_len(L, 3);
    lua_Integer nargs = lua_isnil(L, 4) ? 0 : luaL_len(L, 4);
    if (nkeys + nargs > MAX_WORDS)
        return luaL_error(L, "redis:eval: more than %d keys and arguments", MAX_WORDS);
    luaL_checkstack(L, (int)(nkeys + nargs + 8), "redis:eval");
    int first = lua_gettop(L) + 1;
    lua_pushliteral(L, "EVAL");
    lua_pushvalue(L, 2);
    lua_pushinteger(L, nkeys);
    for (lua_Integer i = 1; i <= nkeys; i++)
        lua_geti(L, 3, i);
    for (lua_Integer i = 1; i <= nargs; i++)
        lua_geti(L, 4, i);
    return send_command(L, r, first, lua_gettop(L) - first + 1, "redis:eval");
}

static int r_tostring(lua_State *L) {
    redis_client *r = luaspoa_checkudata(L, 1, LUASPOA_REDIS_MT);
    lua_pushfstring(L, "spoa.redis(%s:%s/%s)", r->host, r->port, r->db);
    return 1;
}

void luaspoa_open_redis(lua_State *L) {
    static const luaL_Reg methods[] = {{"call", r_call}, {"eval", r_eval}, {NULL, NULL}};
    luaspoa_new_named_class(L, LUASPOA_REDIS_MT, "spoa.redis", methods, r_tostring, NULL);
    lua_newtable(L);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    lua_setfield(L, -2, "redis");
}
