/* The sandbox of handler states (docs/lua-api.md "Sandbox"): the safe standard
 * libraries, restricted os/debug, text-only load, and io.open/io.lines for
 * reading data files while the script loads. --lua-unsafe skips all of it. */
#include <string.h>

#include "luaspoa_internal.h"

/* load() restricted to text chunks: load(chunk [, chunkname [, mode [, env]]]). */
static int l_load_text(lua_State *L) {
    int n = lua_gettop(L);
    if (n < 3)
        n = 3; /* keep an explicit env (4th argument) only when given, even if nil */
    lua_settop(L, n);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_collectgarbage(lua_State *L) {
    static const char *const allowed[] = {"collect", "count", "step", NULL};
    if (!lua_isnoneornil(L, 1))
        luaL_checkoption(L, 1, NULL, allowed);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Replaces global `name` with closure f whose upvalue is the original. */
static void wrap_global(lua_State *L, const char *name, lua_CFunction f) {
    lua_getglobal(L, name);
    lua_pushcclosure(L, f, 1);
    lua_setglobal(L, name);
}

/* Replaces global library `lib` with a table holding only `keep` fields. */
static void restrict_lib(lua_State *L, const char *lib, const char *const *keep) {
    lua_getglobal(L, lib);
    lua_newtable(L);
    for (; *keep; keep++) {
        lua_getfield(L, -2, *keep);
        lua_setfield(L, -2, *keep);
    }
    lua_setglobal(L, lib);
    lua_pop(L, 1);
}

/* io.open / io.lines for reading files while the script loads (body or init)
 * only: handlers must not block their event loop on disk I/O. */
static int l_io_load_only(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    const char *fn = lua_tostring(L, lua_upvalueindex(2));
    if (!rt->loading && !rt->in_init)
        return luaL_error(L, "io.%s is only available while the script loads or in init functions", fn);
    luaL_checkstring(L, 1); /* io.lines() without a file would read stdin */
    if (fn[0] == 'o' && !lua_isnoneornil(L, 2)) {
        const char *mode = luaL_checkstring(L, 2);
        if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
            return luaL_error(L, "io.open: only reading is allowed (mode \"r\" or \"rb\"), got \"%s\"", mode);
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static void open_load_io(lua_State *L) {
    static const char *const fns[] = {"open", "lines", NULL};
    luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 0);
    lua_createtable(L, 0, 2);
    for (const char *const *fn = fns; *fn; fn++) {
        lua_getfield(L, -2, *fn);
        lua_pushstring(L, *fn);
        lua_pushcclosure(L, l_io_load_only, 2);
        lua_setfield(L, -2, *fn);
    }
    lua_setglobal(L, LUA_IOLIBNAME);
    lua_pop(L, 1);
}

void luaspoa_open_sandbox(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_OSLIBNAME, luaopen_os}, {LUA_DBLIBNAME, luaopen_debug},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    static const char *const os_keep[] = {"time", "clock", "date", NULL};
    static const char *const debug_keep[] = {"traceback", NULL};
    restrict_lib(L, LUA_OSLIBNAME, os_keep);
    restrict_lib(L, LUA_DBLIBNAME, debug_keep);
    open_load_io(L);
    /* Drop the loaded-library cache: it would still expose the full os/debug. */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    wrap_global(L, "load", l_load_text);
    wrap_global(L, "collectgarbage", l_collectgarbage);
}
