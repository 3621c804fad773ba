/* Client stubs of spoa.test (`luaspoa test` only): T.stub_http, T.stub_dns,
 * T.stub_redis and T.stub_tcp put a Lua function (or, for HTTP and DNS, a
 * table of answers) in place of a client. luaspoa_wait_yield asks
 * luaspoa_test_stub first: the request was checked by the client's own C
 * function, the stub answers, and its answer is shaped as the real client
 * returns it (HTTP headers from index 0, DNS addresses as address objects).
 * The call still yields once, so the handler waits as it does for real. Each
 * call is recorded in the list the T.stub_* function returned. Stubs last
 * until the end of the case. */
#include <ctype.h>
#include <string.h>

#include "luaspoa_internal.h"

/* Registry: wait kind -> { stub = function | table, calls = { ... } }. */
#define STUBS_KEY "luaspoa.test_stubs"

static const char *stub_name(int kind) {
    switch (kind) {
    case LUASPOA_WAIT_HTTP: return "T.stub_http";
    case LUASPOA_WAIT_DNS: return "T.stub_dns";
    case LUASPOA_WAIT_REDIS: return "T.stub_redis";
    default: return "T.stub_tcp";
    }
}

/* T.stub_*(stub): a function, a table of answers where the kind takes one, or
 * nil to use the real client again. Returns the list of recorded calls. */
static int set_stub(lua_State *L, int kind, int tables_ok) {
    int t = lua_type(L, 1);
    if (t != LUA_TFUNCTION && t != LUA_TNIL && !(tables_ok && t == LUA_TTABLE))
        return luaL_error(L, "%s: a function%s expected, got %s", stub_name(kind),
                          tables_ok ? " or a table of answers" : "", luaL_typename(L, 1));
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, STUBS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, STUBS_KEY);
    }
    if (t == LUA_TNIL) {
        lua_pushnil(L);
        lua_rawseti(L, 2, kind);
        return 0;
    }
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "stub");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "calls");
    lua_insert(L, -2);
    lua_rawseti(L, 2, kind);
    return 1;
}

static int l_stub_http(lua_State *L) { return set_stub(L, LUASPOA_WAIT_HTTP, 1); }
static int l_stub_dns(lua_State *L) { return set_stub(L, LUASPOA_WAIT_DNS, 1); }
static int l_stub_redis(lua_State *L) { return set_stub(L, LUASPOA_WAIT_REDIS, 0); }
static int l_stub_tcp(lua_State *L) { return set_stub(L, LUASPOA_WAIT_TCP, 0); }

void luaspoa_test_stubs_reset(lua_State *L) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, STUBS_KEY);
}

void luaspoa_open_test_stubs(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"stub_http", l_stub_http}, {"stub_dns", l_stub_dns}, {"stub_redis", l_stub_redis},
        {"stub_tcp", l_stub_tcp}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}

/* ---- the call, as the stub and the record see it ------------------------- */

static void push_arg(lua_State *L, const luaspoa_wait *w, int i) {
    if (w->args[i].ptr == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, w->args[i].ptr, w->args[i].len);
}

/* { method =, url =, body =, ca_file =, timeout =, headers = { name = value
 * or { v1, v2 } for a repeated name } }; see luaspoa_http.c for the args. */
static void push_http_request(lua_State *L, const luaspoa_wait *w) {
    lua_createtable(L, 0, 6);
    static const char *const fields[] = {"method", "url", "body", "ca_file"};
    for (int i = 0; i < 4; i++) {
        push_arg(L, w, i);
        lua_setfield(L, -2, fields[i]);
    }
    if (w->ms > 0) {
        lua_pushinteger(L, (lua_Integer)w->ms);
        lua_setfield(L, -2, "timeout");
    }
    lua_newtable(L);
    for (int i = 4; i + 1 < w->nargs; i += 2) {
        push_arg(L, w, i);
        lua_pushvalue(L, -1);
        int had = lua_rawget(L, -3);
        if (had == LUA_TNIL) {
            lua_pop(L, 1);
            push_arg(L, w, i + 1);
        } else {
            if (had == LUA_TSTRING) { /* a second line of that name: a list of both */
                lua_createtable(L, 2, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
            }
            push_arg(L, w, i + 1);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
}

/* Pushes the stub's arguments and returns how many; appends the call's record
 * (HTTP: the request table, which is also the second argument) to `calls`. */
static int push_call(lua_State *L, const luaspoa_wait *w, int calls) {
    int n = 0;
    switch (w->kind) {
    case LUASPOA_WAIT_HTTP:
        push_arg(L, w, 0);
        push_http_request(L, w);
        n = 2;
        lua_pushvalue(L, -1);
        break;
    case LUASPOA_WAIT_DNS:
        push_arg(L, w, 0);
        push_arg(L, w, 1);
        n = 2;
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "name");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "type");
        break;
    default: /* Redis: the command's words, after the 5 settings; TCP: the
              * operation and its arguments, and the socket's id */
        luaL_checkstack(L, w->nargs + 4, "spoa.test stub: too many words");
        for (int i = w->kind == LUASPOA_WAIT_REDIS ? 5 : 0; i < w->nargs; i++, n++)
            push_arg(L, w, i);
        lua_createtable(L, n, 1);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, -1 - n + i);
            lua_rawseti(L, -2, i + 1);
        }
        if (w->kind == LUASPOA_WAIT_TCP) {
            lua_pushinteger(L, (lua_Integer)w->target);
            lua_setfield(L, -2, "socket");
        }
        break;
    }
    lua_rawseti(L, calls, (lua_Integer)lua_rawlen(L, calls) + 1);
    return n;
}

/* ---- answers, shaped as the real clients return them --------------------- */

static const char *reason_phrase(lua_Integer status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

/* The response table at idx -> { status, reason, headers = { [lowercased] =
 * { [0] = v, ... } }, body } (HEAD: empty body). */
static void shape_http(lua_State *L, int idx, const luaspoa_wait *w) {
    const char *fn = stub_name(w->kind);
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: the answer must be a response table, got %s", fn, luaL_typename(L, idx));
    lua_createtable(L, 0, 4);
    int out = lua_gettop(L);
    lua_Integer status = 200;
    if (lua_getfield(L, idx, "status") != LUA_TNIL) {
        int isint;
        status = lua_tointegerx(L, -1, &isint);
        if (!isint || status < 100 || status > 999)
            luaL_error(L, "%s: status must be an integer from 100 to 999", fn);
    }
    lua_pop(L, 1);
    lua_pushinteger(L, status);
    lua_setfield(L, out, "status");
    int rt = lua_getfield(L, idx, "reason");
    if (rt != LUA_TSTRING && rt != LUA_TNIL)
        luaL_error(L, "%s: reason must be a string", fn);
    if (rt == LUA_TNIL)
        lua_pushstring(L, reason_phrase(status)), lua_replace(L, -2);
    lua_setfield(L, out, "reason");
    int bt = lua_getfield(L, idx, "body");
    if (bt != LUA_TSTRING && bt != LUA_TNIL)
        luaL_error(L, "%s: body must be a string", fn);
    if (bt == LUA_TNIL || (w->args[0].len == 4 && memcmp(w->args[0].ptr, "HEAD", 4) == 0))
        lua_pushliteral(L, ""), lua_replace(L, -2);
    lua_setfield(L, out, "body");
    lua_newtable(L);
    int headers = lua_gettop(L);
    int ht = lua_getfield(L, idx, "headers");
    if (ht != LUA_TTABLE && ht != LUA_TNIL)
        luaL_error(L, "%s: headers must be a table", fn);
    if (ht == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, headers + 1)) {
            int key = lua_gettop(L) - 1, value = key + 1;
            size_t len;
            const char *name = lua_type(L, key) == LUA_TSTRING ? lua_tolstring(L, key, &len) : NULL;
            if (name == NULL)
                luaL_error(L, "%s: header names must be strings", fn);
            luaL_Buffer b;
            char *lower = luaL_buffinitsize(L, &b, len);
            for (size_t i = 0; i < len; i++)
                lower[i] = (char)tolower((unsigned char)name[i]);
            luaL_pushresultsize(&b, len);
            lua_newtable(L);
            if (lua_type(L, value) == LUA_TSTRING) {
                lua_pushvalue(L, value);
                lua_rawseti(L, -2, 0);
            } else if (lua_istable(L, value)) {
                /* a Lua list (from 1) or HAProxy's layout (from 0) */
                lua_Integer first = lua_rawgeti(L, value, 0) == LUA_TNIL ? 1 : 0;
                lua_pop(L, 1);
                for (lua_Integer i = first; lua_rawgeti(L, value, i) != LUA_TNIL; i++) {
                    if (lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "%s: header values must be strings", fn);
                    lua_rawseti(L, -2, i - first);
                }
                lua_pop(L, 1);
            } else {
                luaL_error(L, "%s: header values must be strings or lists of strings", fn);
            }
            lua_rawset(L, headers);
            lua_settop(L, key);
        }
    }
    lua_settop(L, headers);
    lua_setfield(L, out, "headers");
}

/* The list at idx -> for A and AAAA, address objects of that family (text is
 * parsed; the other family is left out, as a real answer has only the type
 * asked), for PTR and TXT, strings. */
static void shape_dns(lua_State *L, int idx, const luaspoa_wait *w) {
    const char *fn = stub_name(w->kind);
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: the answer must be a list, got %s", fn, luaL_typename(L, idx));
    int family = strcmp(w->args[1].ptr, "A") == 0 ? 4 : strcmp(w->args[1].ptr, "AAAA") == 0 ? 6 : 0;
    lua_newtable(L);
    lua_Integer n = 0;
    for (lua_Integer i = 1; lua_rawgeti(L, idx, i) != LUA_TNIL; i++) {
        if (family != 0) {
            luaspoa_addr a;
            luaspoa_check_addr_arg(L, -1, &a, fn);
            lua_pop(L, 1);
            if (a.family != family)
                continue;
            luaspoa_push_addr(L, a.family, a.bytes);
        } else if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s: %s answers must be strings", fn, w->args[1].ptr);
        }
        lua_rawseti(L, -2, ++n);
    }
    lua_pop(L, 1);
}

/* What a TCP operation returns when its stub says nothing: what it returns
 * when it succeeds with no data to give (receive: the peer closed). */
static int tcp_default(lua_State *L, const luaspoa_wait *w) {
    if (w->args[0].len == 7 && memcmp(w->args[0].ptr, "receive", 7) == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    if (w->args[0].len == 4 && memcmp(w->args[0].ptr, "send", 4) == 0)
        lua_pushinteger(L, (lua_Integer)w->args[1].len);
    else
        lua_pushinteger(L, 1);
    return 1;
}

/* The stub's answer at (top-1, top) -> the client's results. */
static int shape(lua_State *L, const luaspoa_wait *w) {
    int r1 = lua_gettop(L) - 1;
    if (lua_isnil(L, r1)) {
        if (lua_type(L, r1 + 1) == LUA_TSTRING) /* nil, err: a failure */
            return 2;
        lua_settop(L, r1 - 1);
        if (w->kind == LUASPOA_WAIT_REDIS) { /* a nil reply */
            lua_pushnil(L);
            return 1;
        }
        if (w->kind == LUASPOA_WAIT_TCP)
            return tcp_default(L, w);
        return luaL_error(L, "%s: the stub returned neither an answer nor nil, error", stub_name(w->kind));
    }
    if (w->kind == LUASPOA_WAIT_HTTP)
        shape_http(L, r1, w);
    else if (w->kind == LUASPOA_WAIT_DNS)
        shape_dns(L, r1, w);
    else
        lua_pushvalue(L, r1);
    lua_replace(L, r1);
    lua_settop(L, r1);
    return 1;
}

/* A table stub's answer for the call: HTTP by "METHOD url", then url (none:
 * the case fails, naming it); DNS by name (none: "not found", as a zone
 * without it answers). A string answer is the error of a failed call. */
static void answer_from_table(lua_State *L, int table, const luaspoa_wait *w) {
    if (w->kind == LUASPOA_WAIT_HTTP) {
        lua_pushfstring(L, "%s %s", w->args[0].ptr, w->args[1].ptr);
        if (lua_rawget(L, table) == LUA_TNIL) {
            lua_pop(L, 1);
            push_arg(L, w, 1);
            if (lua_rawget(L, table) == LUA_TNIL)
                luaL_error(L, "T.stub_http: no answer for %s %s", w->args[0].ptr, w->args[1].ptr);
        }
    } else {
        push_arg(L, w, 0);
        if (lua_rawget(L, table) == LUA_TNIL) {
            lua_pushliteral(L, "not found");
            return;
        }
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushnil(L);
        lua_insert(L, -2);
    } else {
        lua_pushnil(L);
    }
}

int luaspoa_test_stub(lua_State *L, const luaspoa_wait *w) {
    if (w->kind < LUASPOA_WAIT_HTTP || w->kind > LUASPOA_WAIT_TCP)
        return -1;
    if (lua_getfield(L, LUA_REGISTRYINDEX, STUBS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        return -1;
    }
    if (lua_rawgeti(L, -1, w->kind) != LUA_TTABLE) {
        lua_pop(L, 2);
        return -1;
    }
    lua_remove(L, -2);
    int entry = lua_gettop(L);
    luaL_checkstack(L, 16, "spoa.test stub");
    lua_getfield(L, entry, "stub");
    lua_getfield(L, entry, "calls");
    int stub = entry + 1, calls = entry + 2;
    if (lua_istable(L, stub)) {
        push_call(L, w, calls);
        lua_settop(L, calls);
        answer_from_table(L, stub, w);
    } else {
        lua_pushvalue(L, stub);
        lua_call(L, push_call(L, w, calls), 2);
    }
    int nres = shape(L, w);
    /* keep the results only: entry, stub and calls go */
    for (int i = 0; i < 3; i++)
        lua_remove(L, entry);
    return nres;
}
