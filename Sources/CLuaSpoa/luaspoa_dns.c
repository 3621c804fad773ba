/* spoa.dns: DNS lookups from handlers and background tasks.
 *
 *   spoa.dns.resolve(name [, { type = "A"|"AAAA"|"PTR"|"TXT", timeout = ms }])
 *       -> list (addresses as address objects, names and texts as strings), or nil, err
 *   spoa.dns.reverse(addr [, { timeout = ms }])  -> list of names, or nil, err
 *   spoa.dns.configure{ servers = { "127.0.0.1:5353", ... } }   (while the script loads)
 *
 * A lookup goes to Swift (LuaWaits, DNS case) as the wait's strings: args[0] the
 * name, [1] the type, [2] the servers ("host:port,..."; empty: /etc/resolv.conf). */
#include <stdio.h>
#include <string.h>

#include "luaspoa_internal.h"

#define SERVERS_KEY "luaspoa.dns_servers"
#define MAX_TIMEOUT_MS 3600000
#define MAX_SERVERS 8

static const char *const TYPES[] = {"A", "AAAA", "PTR", "TXT", NULL};

/* Fills args[2] with the configured servers (a string anchored in the registry). */
static void servers_arg(lua_State *L, spoa_bytes *arg) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, SERVERS_KEY) == LUA_TSTRING) {
        arg->ptr = lua_tolstring(L, -1, &arg->len);
    } else {
        arg->ptr = "";
        arg->len = 0;
    }
    lua_pop(L, 1);
}

static int64_t timeout_option(lua_State *L, int idx, const char *fn) {
    if (lua_isnoneornil(L, idx) || lua_getfield(L, idx, "timeout") == LUA_TNIL) {
        if (!lua_isnoneornil(L, idx))
            lua_pop(L, 1);
        return 0;
    }
    lua_Number ms = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || !(ms > 0 && ms <= MAX_TIMEOUT_MS))
        luaL_error(L, "%s: timeout must be milliseconds from 1 to %d", fn, MAX_TIMEOUT_MS);
    lua_pop(L, 1);
    int64_t whole = (int64_t)ms;
    return (lua_Number)whole < ms ? whole + 1 : whole;
}

/* The lookup of the string at name_idx, of type `type`: the name and the args
 * array stay on the stack while the call waits. */
static int lookup(lua_State *L, int name_idx, const char *type, int64_t ms, const char *fn) {
    spoa_bytes *args = lua_newuserdatauv(L, sizeof(spoa_bytes) * 3, 0);
    args[0].ptr = lua_tolstring(L, name_idx, &args[0].len);
    args[1].ptr = type;
    args[1].len = strlen(type);
    servers_arg(L, &args[2]);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_DNS, .ms = ms, .args = args, .nargs = 3};
    return luaspoa_wait_yield(L, fn, &w, luaspoa_wait_push_values);
}

static int l_resolve(lua_State *L) {
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    if (len == 0 || len > 253 || memchr(name, 0, len) != NULL)
        return luaL_error(L, "spoa.dns.resolve: bad name");
    const char *type = "A";
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        luaspoa_check_options(L, 2, "spoa.dns.resolve", "type, timeout");
        if (lua_getfield(L, 2, "type") != LUA_TNIL) {
            const char *t = lua_tostring(L, -1);
            type = NULL;
            for (int i = 0; t != NULL && TYPES[i] != NULL; i++)
                if (strcmp(t, TYPES[i]) == 0)
                    type = TYPES[i];
            if (type == NULL)
                return luaL_error(L, "spoa.dns.resolve: type must be \"A\", \"AAAA\", \"PTR\" or \"TXT\"");
        }
        lua_pop(L, 1);
    }
    int64_t ms = timeout_option(L, 2, "spoa.dns.resolve");
    lua_settop(L, 1);
    return lookup(L, 1, type, ms, "spoa.dns.resolve");
}

/* The PTR name of an address: 4.3.2.1.in-addr.arpa, or the 32 nibbles of ip6.arpa. */
static int l_reverse(lua_State *L) {
    luaspoa_addr a;
    luaspoa_check_addr_arg(L, 1, &a, "spoa.dns.reverse");
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        luaspoa_check_options(L, 2, "spoa.dns.reverse", "timeout");
    }
    int64_t ms = timeout_option(L, 2, "spoa.dns.reverse");
    char name[80];
    if (a.family == 4) {
        snprintf(name, sizeof name, "%u.%u.%u.%u.in-addr.arpa", a.bytes[3], a.bytes[2], a.bytes[1], a.bytes[0]);
    } else {
        static const char hex[] = "0123456789abcdef";
        char *p = name;
        for (int i = 15; i >= 0; i--) {
            *p++ = hex[a.bytes[i] & 15];
            *p++ = '.';
            *p++ = hex[a.bytes[i] >> 4];
            *p++ = '.';
        }
        strcpy(p, "ip6.arpa");
    }
    lua_settop(L, 0);
    lua_pushstring(L, name);
    return lookup(L, 1, "PTR", ms, "spoa.dns.reverse");
}

/* Servers for this state's lookups, instead of /etc/resolv.conf's. */
static int l_configure(lua_State *L) {
    luaspoa_require_setup(L, "spoa.dns.configure", 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaspoa_check_options(L, 1, "spoa.dns.configure", "servers");
    if (lua_getfield(L, 1, "servers") != LUA_TTABLE)
        return luaL_error(L, "spoa.dns.configure: servers must be a list of \"address[:port]\"");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = luaL_len(L, 2);
    if (n < 1 || n > MAX_SERVERS)
        return luaL_error(L, "spoa.dns.configure: from 1 to %d servers", MAX_SERVERS);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len > 64 || strpbrk(s, ", \t") != NULL)
            return luaL_error(L, "spoa.dns.configure: server %d must be \"address[:port]\"", (int)i);
        lua_pop(L, 1);
        if (i > 1)
            luaL_addchar(&b, ',');
        luaL_addlstring(&b, s, len);
    }
    luaL_pushresult(&b);
    lua_setfield(L, LUA_REGISTRYINDEX, SERVERS_KEY);
    return 0;
}

void luaspoa_open_dns(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"resolve", l_resolve}, {"reverse", l_reverse}, {"configure", l_configure}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "dns");
}
