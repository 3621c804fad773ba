/* spoa.Net: one CIDR network (spoa.cidr), CIDR text parsing, and a:in_cidr(c)
 * with a per-state cache of parsed CIDR strings. */
#include <string.h>

#include "luaspoa_internal.h"

/* Registry key of the in_cidr cache: CIDR text -> Net userdata. */
#define CIDR_CACHE_KEY "luaspoa.cidr_cache"
/* The cache is dropped when it grows past this many entries, so a script that
 * passes ever-changing strings cannot grow it without bound. */
#define CIDR_CACHE_MAX 1024

void luaspoa_push_net(lua_State *L, const luaspoa_net *net) {
    luaspoa_net *n = lua_newuserdatauv(L, sizeof *n, 0);
    *n = *net;
    luaspoa_setmetatable(L, LUASPOA_NET_MT);
}

void luaspoa_push_net_text(lua_State *L, const luaspoa_net *net) {
    luaspoa_push_addr_text(L, net->family, net->bytes);
    lua_pushfstring(L, "%s/%d", lua_tostring(L, -1), (int)net->bits);
    lua_remove(L, -2);
}

static luaspoa_net *check_net(lua_State *L, int idx) {
    return luaspoa_checkudata(L, idx, LUASPOA_NET_MT);
}

static int net_tostring(lua_State *L) {
    luaspoa_push_net_text(L, check_net(L, 1));
    return 1;
}

static int net_eq(lua_State *L) {
    luaspoa_net *a = luaspoa_testudata(L, 1, LUASPOA_NET_MT);
    luaspoa_net *b = luaspoa_testudata(L, 2, LUASPOA_NET_MT);
    lua_pushboolean(L, a && b && a->family == b->family && a->bits == b->bits &&
                           memcmp(a->bytes, b->bytes, 16) == 0);
    return 1;
}

/* n:contains(a): a is an Addr or a text address; other families never match. */
static int net_contains(lua_State *L) {
    luaspoa_net *net = check_net(L, 1);
    luaspoa_addr a;
    luaspoa_check_addr_arg(L, 2, &a, "contains");
    lua_pushboolean(L, luaspoa_net_contains(net, &a));
    return 1;
}

static int net_prefix(lua_State *L) {
    lua_pushinteger(L, check_net(L, 1)->bits);
    return 1;
}

static int net_network(lua_State *L) {
    luaspoa_net *net = check_net(L, 1);
    luaspoa_push_addr(L, net->family, net->bytes);
    return 1;
}

static int net_family(lua_State *L) {
    lua_pushinteger(L, check_net(L, 1)->family);
    return 1;
}

/* spoa.cidr(text) -> Net | nil, err */
static int l_cidr(lua_State *L) {
    if (luaspoa_testudata(L, 1, LUASPOA_NET_MT)) {
        lua_settop(L, 1);
        return 1;
    }
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaspoa_net net;
    char err[160];
    if (!luaspoa_parse_cidr(s, len, &net, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    luaspoa_push_net(L, &net);
    return 1;
}

/* The Net for argument idx (a Net, or CIDR text parsed once per state). */
static const luaspoa_net *net_arg(lua_State *L, int idx) {
    luaspoa_net *n = luaspoa_testudata(L, idx, LUASPOA_NET_MT);
    if (n != NULL)
        return n;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "in_cidr: CIDR string or spoa.cidr() expected, got %s", luaL_typename(L, idx));
    if (lua_getfield(L, LUA_REGISTRYINDEX, CIDR_CACHE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 16);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, CIDR_CACHE_KEY);
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) {
        n = lua_touserdata(L, -1);
        lua_pop(L, 2); /* the cache keeps it alive */
        return n;
    }
    lua_pop(L, 1);
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    luaspoa_net net;
    char err[160];
    if (!luaspoa_parse_cidr(s, len, &net, err, sizeof err))
        luaL_error(L, "in_cidr: %s", err);
    lua_rawgeti(L, -1, 1); /* entry count, kept at integer key 1 (no CIDR text collides) */
    lua_Integer count = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (count > CIDR_CACHE_MAX) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 16);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, CIDR_CACHE_KEY);
        count = 1;
    }
    lua_pushinteger(L, count);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, idx);
    luaspoa_push_net(L, &net);
    n = lua_touserdata(L, -1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return n;
}

/* a:in_cidr(c): c is CIDR text (parsed once and cached per state) or a Net. */
int luaspoa_addr_in_cidr(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    lua_pushboolean(L, luaspoa_net_contains(net_arg(L, 2), a));
    return 1;
}

void luaspoa_open_net(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__eq", net_eq}, {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"contains", net_contains}, {"prefix", net_prefix}, {"network", net_network},
        {"family", net_family}, {NULL, NULL},
    };
    luaspoa_new_named_class(L, LUASPOA_NET_MT, "spoa.Net", methods, net_tostring, meta);
    lua_pushcfunction(L, l_cidr);
    lua_setfield(L, -2, "cidr");
}
