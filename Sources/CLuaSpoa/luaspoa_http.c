/* spoa.httpclient(): HTTP requests from handlers and background tasks, like
 * HAProxy's core.httpclient(). hc:get{ url =, headers =, body =, timeout = }
 * (and post, put, head, delete) waits for the response and returns
 * { status =, reason =, headers =, body = }, or nil, error.
 *
 * The request goes to Swift (LuaWaits, HTTP case) as the wait's strings:
 * args[0] method, args[1] url, args[2] body (ptr NULL: none), args[3] the CA
 * file to trust for https (ptr NULL: the system's), then header name, value
 * pairs. The strings belong to Lua values kept on this call's stack
 * while it waits. The response comes back as luaspoa_wait_values. */
#include <string.h>

#include "luaspoa_internal.h"

#define LUASPOA_HTTP_MT "luaspoa.HTTPClient"
/* More header lines than any sane request: bounds the args array. */
#define MAX_HEADERS 100
/* Longest accepted timeout (ms): the handler's deadline ends a wait long before. */
#define MAX_TIMEOUT_MS 3600000

/* Adds one header line; raises past MAX_HEADERS. */
static void add_header(lua_State *L, spoa_bytes *args, int *n, const char *fn, int name_idx, int value_idx) {
    if (*n >= 4 + 2 * MAX_HEADERS)
        luaL_error(L, "%s: more than %d headers", fn, MAX_HEADERS);
    args[*n].ptr = lua_tolstring(L, name_idx, &args[*n].len);
    args[*n + 1].ptr = lua_tolstring(L, value_idx, &args[*n + 1].len);
    *n += 2;
}

static int request(lua_State *L, const char *method, const char *fn) {
    luaspoa_checkudata(L, 1, LUASPOA_HTTP_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaspoa_check_options(L, 2, fn, "url, headers, body, timeout, ca_file");
    lua_settop(L, 2);
    /* 3: url, 4: body, 5: headers, 6: ca_file, 7: args array; all stay on the
     * stack while the call waits, so the strings args points to stay alive. */
    if (lua_getfield(L, 2, "url") != LUA_TSTRING)
        return luaL_error(L, "%s: url must be a string", fn);
    int body_type = lua_getfield(L, 2, "body");
    if (body_type != LUA_TNIL && body_type != LUA_TSTRING)
        return luaL_error(L, "%s: body must be a string", fn);
    int headers_type = lua_getfield(L, 2, "headers");
    if (headers_type != LUA_TNIL && headers_type != LUA_TTABLE)
        return luaL_error(L, "%s: headers must be a table", fn);
    int ca_type = lua_getfield(L, 2, "ca_file");
    if (ca_type != LUA_TNIL && ca_type != LUA_TSTRING)
        return luaL_error(L, "%s: ca_file must be a path", fn);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_HTTP};
    if (lua_getfield(L, 2, "timeout") != LUA_TNIL) {
        lua_Number ms = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || !(ms > 0 && ms <= MAX_TIMEOUT_MS))
            return luaL_error(L, "%s: timeout must be milliseconds from 1 to %d", fn, MAX_TIMEOUT_MS);
        w.ms = (int64_t)ms;
        if ((lua_Number)w.ms < ms)
            w.ms++;
    }
    lua_pop(L, 1);
    spoa_bytes *args = lua_newuserdatauv(L, sizeof(spoa_bytes) * (4 + 2 * MAX_HEADERS), 0);
    int n = 4;
    args[0].ptr = method;
    args[0].len = strlen(method);
    args[1].ptr = lua_tolstring(L, 3, &args[1].len);
    args[2].ptr = body_type == LUA_TSTRING ? lua_tolstring(L, 4, &args[2].len) : NULL;
    if (body_type != LUA_TSTRING)
        args[2].len = 0;
    args[3].ptr = ca_type == LUA_TSTRING ? lua_tolstring(L, 6, &args[3].len) : NULL;
    if (ca_type != LUA_TSTRING)
        args[3].len = 0;
    if (headers_type == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 5)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "%s: header names must be strings", fn);
            if (lua_type(L, -1) == LUA_TSTRING) {
                add_header(L, args, &n, fn, -2, -1);
            } else if (lua_type(L, -1) == LUA_TTABLE) {
                /* { "v1", "v2" }: one line each, as HAProxy's httpclient takes them */
                for (lua_Integer i = 1;; i++) {
                    int t = lua_rawgeti(L, -1, i);
                    if (t == LUA_TNIL) {
                        lua_pop(L, 1);
                        break;
                    }
                    if (t != LUA_TSTRING)
                        return luaL_error(L, "%s: header values must be strings", fn);
                    add_header(L, args, &n, fn, -3, -1);
                    lua_pop(L, 1); /* the string stays alive in the table */
                }
            } else {
                return luaL_error(L, "%s: header values must be strings or lists of strings", fn);
            }
            lua_pop(L, 1);
        }
    }
    w.args = args;
    w.nargs = n;
    return luaspoa_wait_yield(L, fn, &w, luaspoa_wait_push_values);
}

static int hc_get(lua_State *L) { return request(L, "GET", "httpclient:get"); }
static int hc_post(lua_State *L) { return request(L, "POST", "httpclient:post"); }
static int hc_put(lua_State *L) { return request(L, "PUT", "httpclient:put"); }
static int hc_head(lua_State *L) { return request(L, "HEAD", "httpclient:head"); }
static int hc_delete(lua_State *L) { return request(L, "DELETE", "httpclient:delete"); }

static int hc_tostring(lua_State *L) {
    lua_pushliteral(L, "spoa.httpclient");
    return 1;
}

/* The object holds nothing: connections are pooled by the process (Swift). */
static int l_httpclient(lua_State *L) {
    lua_newuserdatauv(L, 1, 0);
    luaspoa_setmetatable(L, LUASPOA_HTTP_MT);
    return 1;
}

void luaspoa_open_http(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"get", hc_get}, {"post", hc_post}, {"put", hc_put}, {"head", hc_head}, {"delete", hc_delete},
        {NULL, NULL},
    };
    luaspoa_new_named_class(L, LUASPOA_HTTP_MT, "spoa.httpclient", methods, hc_tostring, NULL);
    lua_pushcfunction(L, l_httpclient);
    lua_setfield(L, -2, "httpclient");
}
