/* Finalizers (__gc) under the time budget.
 *
 * Lua runs a __gc metamethod with hooks off (lgc.c, GCTM), so the watchdog's
 * count hook could never stop a looping finalizer, in a handler or in the
 * lua_close of a reload's old state. So setmetatable is replaced: when the
 * metatable has a __gc field, the object is set without Lua marking it for
 * finalization (the field is hidden during the call), and a sentinel userdata
 * that holds the object, with our own C __gc, is stored in an ephemeron table
 * keyed by the object: it becomes garbage with the object (and is finalized in
 * the same cycle and order Lua would have used). Its __gc runs the object's
 * metatable's __gc, read then as Lua does, in a fresh coroutine: hooks are on
 * there, so the budget applies. A finalizer runs under the running call's
 * budget, or outside any budgeted call (tasks, after a handler returned) under
 * its own --lua-timeout; while the state closes, all finalizers share one. A
 * finalizer that fails or times out is abandoned with a log line, as Lua turns
 * an error in __gc into a warning. */
#include <time.h>

#include "luaspoa_internal.h"

#define SENTINELS_KEY "luaspoa.gc_sentinels"
#define SENTINEL_MT "luaspoa.GcSentinel"

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void abandoned(lua_State *L, const char *why) {
    lua_pushfstring(L, "__gc finalizer abandoned: %s", why);
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    luaspoa_emit_log(L, LUASPOA_LOG_LUA_WARNING, msg, len);   /* rate-limited like warn() */
    lua_pop(L, 1);
}

/* The budget of a finalizer outside any running call, in ms (0: none); -1 when
 * the state is closing and the close has used its budget. */
static int64_t own_budget_ms(luaspoa_rt *rt) {
    int64_t ms = rt->ctx ? rt->ctx->timeout_ms : 0;
    if (!rt->closing || ms == 0)
        return ms;
    int64_t left = ms - (thread_cpu_ns() - rt->close_cpu_ns) / 1000000;
    return left > 0 ? left : -1;
}

/* __gc of a sentinel: uservalue 1 is the object. */
static int sentinel_gc(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_budget *b = &rt->budget;
    lua_getiuservalue(L, 1, 1);
    /* Forget it, so a resurrected object set again with __gc is marked again. */
    lua_getfield(L, LUA_REGISTRYINDEX, SENTINELS_KEY);
    lua_pushvalue(L, -2);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (!lua_getmetatable(L, -1))
        return 0;
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, -2) == LUA_TNIL)
        return 0;
    int own = atomic_load(&b->deadline) == 0;
    int64_t ms = own ? own_budget_ms(rt) : 0;
    if (ms < 0) {
        abandoned(L, "the state's close used its time budget");
        return 0;
    }
    lua_State *co = lua_newthread(L);  /* anchored on L's stack */
    lua_rotate(L, -2, 1);              /* object, metatable, thread, __gc */
    lua_xmove(L, co, 1);               /* __gc */
    lua_pushvalue(L, -3);
    lua_xmove(L, co, 1);               /* the object */
    if (own)
        luaspoa_budget_start(b, (uint32_t)ms);
    lua_State *prev = luaspoa_budget_enter(b, co);
    int nres;
    int status = lua_resume(co, L, 1, &nres);
    luaspoa_budget_leave(b, prev);
    if (own)
        luaspoa_budget_stop(b);
    if (status == LUA_YIELD)
        abandoned(L, "it yielded");
    else if (status != LUA_OK)
        abandoned(L, lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "(error object is not a string)");
    return 0;
}

/* setmetatable(t, mt) with the checks of the base library's. */
static int l_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_pushliteral(L, "__gc");
    if (t != LUA_TTABLE || lua_rawget(L, 2) == LUA_TNIL) {
        lua_settop(L, 2);
        lua_setmetatable(L, 1);
        return 1;
    }
    /* Hide __gc while setting, so Lua does not mark the object itself. Setting
     * an existing key to nil and back does not allocate: nothing can raise. */
    lua_pushliteral(L, "__gc");
    lua_pushnil(L);
    lua_rawset(L, 2);
    lua_pushvalue(L, 2);
    lua_setmetatable(L, 1);
    lua_pushliteral(L, "__gc");
    lua_pushvalue(L, 3);
    lua_rawset(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, SENTINELS_KEY);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) == LUA_TNIL) { /* one sentinel per object, as Lua marks it once */
        lua_pushvalue(L, 1);
        lua_newuserdatauv(L, 0, 1);
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, 1);
        luaL_setmetatable(L, SENTINEL_MT);
        lua_rawset(L, -4);
    }
    lua_settop(L, 1);
    return 1;
}

void luaspoa_open_finalizers(lua_State *L) {
    luaL_newmetatable(L, SENTINEL_MT);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SENTINELS_KEY);
    lua_pushcfunction(L, l_setmetatable);
    lua_setglobal(L, "setmetatable");
}

void luaspoa_finalizers_closing(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    rt->closing = 1;
    rt->close_cpu_ns = thread_cpu_ns();
}
