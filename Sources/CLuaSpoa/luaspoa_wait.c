/* Waiting: spoa.sleep(ms), spoa.yield(), and luaspoa_wait_yield, the one way a
 * Lua function waits. It writes what to wait for into the running call's
 * luaspoa_wait and yields from C; the caller (LuaWaits in Swift) turns that
 * into an event-loop operation and resumes the coroutine with the result.
 * A new waiting function is a C function that checks its arguments, fills a
 * luaspoa_wait and returns luaspoa_wait_yield(...), plus its case in LuaWaits. */
#include "luaspoa_internal.h"

/* After the resume: nil, error for a failed operation, else push's results. */
static int wait_resumed(lua_State *L, int status, lua_KContext k) {
    (void)status;
    luaspoa_call *c = luaspoa_rt_get(L)->call;
    luaspoa_wait_push push = (luaspoa_wait_push)k;
    if (c->wait.error != NULL) {
        lua_pushnil(L);
        lua_pushlstring(L, c->wait.error, c->wait.error_len);
        return 2;
    }
    return push ? push(L, &c->wait) : 0;
}

int luaspoa_wait_yield(lua_State *L, const char *fn, const luaspoa_wait *w, luaspoa_wait_push push) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (rt->loading || rt->in_init)
        return luaL_error(L, "%s: cannot wait while the script loads", fn);
    luaspoa_call *c = rt->call;
    if (c == NULL || !rt->can_wait)
        return luaL_error(L, "%s: cannot wait here (only handlers and background tasks wait)", fn);
    if (c->co != L)
        return luaL_error(L, "%s: cannot wait inside a coroutine the script made", fn);
    if (!lua_isyieldable(L))
        return luaL_error(L, "%s: cannot wait inside a function called from C "
                          "(string.gsub, table.sort, a __gc or __close method, ...)", fn);
    c->wait = *w;
    c->wait.error = NULL;
    c->wait.error_len = 0;
    return lua_yieldk(L, 0, (lua_KContext)push, wait_resumed);
}

/* Up to one hour: the deadline ends any wait long before. */
#define MAX_SLEEP_MS 3600000

static int l_sleep(lua_State *L) {
    lua_Number ms = luaL_checknumber(L, 1);
    if (!(ms >= 0 && ms <= MAX_SLEEP_MS))
        return luaL_error(L, "spoa.sleep: milliseconds must be from 0 to %d", MAX_SLEEP_MS);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_SLEEP, .ms = (int64_t)ms};
    if ((lua_Number)w.ms < ms)
        w.ms++; /* never shorter than asked */
    return luaspoa_wait_yield(L, "spoa.sleep", &w, NULL);
}

static int l_yield(lua_State *L) {
    luaspoa_wait w = {.kind = LUASPOA_WAIT_YIELD};
    return luaspoa_wait_yield(L, "spoa.yield", &w, NULL);
}

void luaspoa_open_wait(lua_State *L) {
    static const luaL_Reg fns[] = {{"sleep", l_sleep}, {"yield", l_yield}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
