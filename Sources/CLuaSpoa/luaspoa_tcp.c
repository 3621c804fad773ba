/* spoa.tcp(): a TCP socket for handlers and background tasks, like HAProxy's
 * core.tcp(): s:connect(host, port), s:send(data), s:receive("*l" | "*a" | n),
 * s:settimeout(seconds), s:close(), s:setkeepalive(). Each operation but
 * settimeout waits and returns its result, or nil, err.
 *
 * The socket is an id here; Swift (LuaTCP) owns the connection. An operation
 * goes to Swift as the wait's strings: args[0] the operation ("connect",
 * "send", "receive", "close", "keepalive"), then its arguments (connect: host,
 * port; send: data; receive: pattern or byte count); target is the id, ms the
 * timeout. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "luaspoa_internal.h"

#define LUASPOA_TCP_MT "luaspoa.TCP"
#define MAX_TIMEOUT_S 3600

typedef struct tcp_socket {
    int64_t id;
    int64_t timeout_ms; /* 0: Swift's default */
} tcp_socket;

/* Ids are unique in the process: sockets of every state (a reload's too) share
 * the worker's table in Swift. */
static _Atomic int64_t next_id = 1;

static int l_tcp(lua_State *L) {
    tcp_socket *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->id = atomic_fetch_add(&next_id, 1);
    s->timeout_ms = 0;
    luaspoa_setmetatable(L, LUASPOA_TCP_MT);
    return 1;
}

/* Waits for operation `op` with the strings at stack indexes a1, a2 (0: none). */
static int operation(lua_State *L, tcp_socket *s, const char *op, int a1, int a2, const char *fn) {
    spoa_bytes *args = lua_newuserdatauv(L, sizeof(spoa_bytes) * 3, 0);
    int n = 1;
    args[0].ptr = op;
    args[0].len = strlen(op);
    if (a1)
        args[n++].ptr = lua_tolstring(L, a1, &args[1].len);
    if (a2)
        args[n++].ptr = lua_tolstring(L, a2, &args[2].len);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_TCP, .ms = s->timeout_ms, .args = args, .nargs = n, .target = s->id};
    return luaspoa_wait_yield(L, fn, &w, luaspoa_wait_push_values);
}

static int s_connect(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    size_t len;
    luaL_checklstring(L, 2, &len);
    lua_Integer port = luaL_checkinteger(L, 3);
    if (len == 0 || len > 253)
        return luaL_error(L, "socket:connect: bad host");
    if (port < 1 || port > 65535)
        return luaL_error(L, "socket:connect: port must be from 1 to 65535");
    lua_settop(L, 3);
    lua_pushfstring(L, "%d", (int)port);
    return operation(L, s, "connect", 2, 4, "socket:connect");
}

static int s_send(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    return operation(L, s, "send", 2, 0, "socket:send");
}

static int s_receive(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_pushliteral(L, "*l");
    } else if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 2);
        if (n < 0 || n > (1 << 20))
            return luaL_error(L, "socket:receive: a byte count from 0 to %d", 1 << 20);
        lua_settop(L, 1);
        lua_pushfstring(L, "%d", (int)n);
    } else {
        const char *p = luaL_checkstring(L, 2);
        if (strcmp(p, "*l") != 0 && strcmp(p, "*a") != 0)
            return luaL_error(L, "socket:receive: pattern must be \"*l\", \"*a\" or a byte count");
        lua_settop(L, 2);
    }
    return operation(L, s, "receive", 2, 0, "socket:receive");
}

static int s_close(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    lua_settop(L, 1);
    return operation(L, s, "close", 0, 0, "socket:close");
}

static int s_setkeepalive(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    lua_settop(L, 1);
    return operation(L, s, "keepalive", 0, 0, "socket:setkeepalive");
}

/* In seconds, as HAProxy's and LuaSocket's settimeout; for the next operations. */
static int s_settimeout(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    lua_Number t = luaL_checknumber(L, 2);
    if (!(t > 0 && t <= MAX_TIMEOUT_S))
        return luaL_error(L, "socket:settimeout: seconds from 0.001 to %d", MAX_TIMEOUT_S);
    s->timeout_ms = (int64_t)(t * 1000);
    if (s->timeout_ms < 1)
        s->timeout_ms = 1;
    lua_pushinteger(L, 1);
    return 1;
}

static int s_tostring(lua_State *L) {
    tcp_socket *s = luaspoa_checkudata(L, 1, LUASPOA_TCP_MT);
    lua_pushfstring(L, "spoa.tcp(%I)", (lua_Integer)s->id);
    return 1;
}

void luaspoa_open_tcp(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"connect", s_connect}, {"send", s_send}, {"receive", s_receive}, {"close", s_close},
        {"setkeepalive", s_setkeepalive}, {"settimeout", s_settimeout}, {NULL, NULL},
    };
    luaspoa_new_named_class(L, LUASPOA_TCP_MT, "spoa.tcp", methods, s_tostring, NULL);
    lua_pushcfunction(L, l_tcp);
    lua_setfield(L, -2, "tcp");
}
