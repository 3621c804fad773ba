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

/* __index of a restricted table: a name the sandbox removed raises, saying so
 * (upvalue 1: the removed names, upvalue 2: the table's name); others are nil. */
static int l_sandboxed(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL)
        return 1;
    const char *lib = lua_tostring(L, lua_upvalueindex(2));
    return luaL_error(L, "%s%s%s is not available: the sandbox removes it (luaspoa --lua-unsafe loads the "
                      "full standard library, for trusted scripts)", lib, *lib ? "." : "", lua_tostring(L, 2));
}

/* Sets l_sandboxed as __index of the table at the top; the removed names are
 * the keys of the table at `full` that `t` lacks. */
static void mark_removed(lua_State *L, int full, const char *lib) {
    full = lua_absindex(L, full);
    int t = lua_gettop(L);
    lua_newtable(L); /* the metatable */
    lua_newtable(L); /* the removed names */
    lua_pushnil(L);
    while (lua_next(L, full) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, t) == LUA_TNIL) {
                lua_pushvalue(L, -2);
                lua_pushboolean(L, 1);
                lua_rawset(L, -5);
            }
            lua_pop(L, 1);
        }
    }
    lua_pushstring(L, lib);
    lua_pushcclosure(L, l_sandboxed, 2);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, t);
}

/* Replaces global library `lib` with a table holding only `keep` fields. */
static void restrict_lib(lua_State *L, const char *lib, const char *const *keep) {
    lua_getglobal(L, lib);
    lua_newtable(L);
    for (; *keep; keep++) {
        lua_getfield(L, -2, *keep);
        lua_setfield(L, -2, *keep);
    }
    mark_removed(L, -2, lib);
    lua_setglobal(L, lib);
    lua_pop(L, 1);
}

/* Functions for the script's set-up only (body or init functions): io.open and
 * io.lines (handlers must not block their event loop on disk I/O; a relative
 * path is read from the script's directory, as spoa.map.load does) and
 * os.getenv (configuration is read once, at load). Upvalue 1: the original,
 * upvalue 2: its full name. */
static int l_load_only(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    const char *fn = lua_tostring(L, lua_upvalueindex(2));
    if (!rt->loading && !rt->in_init)
        return luaL_error(L, "%s is only available while the script loads or in init functions", fn);
    luaL_checkstring(L, 1); /* io.lines() without a file would read stdin */
    if (strcmp(fn, "io.open") == 0 && !lua_isnoneornil(L, 2)) {
        const char *mode = luaL_checkstring(L, 2);
        if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
            return luaL_error(L, "io.open: only reading is allowed (mode \"r\" or \"rb\"), got \"%s\"", mode);
    }
    int n = lua_gettop(L);
    if (fn[0] == 'i') {
        const char *path = lua_tostring(L, 1);
        const char *resolved = luaspoa_resolve_path(L, path);
        if (resolved != path) {
            lua_pushstring(L, resolved);
            lua_replace(L, 1);
        }
        lua_settop(L, n);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Sets field `name` of the table at the top to the load-only form of the
 * same field of the table at `from`. */
static void set_load_only(lua_State *L, int from, const char *lib, const char *name) {
    from = lua_absindex(L, from);
    lua_getfield(L, from, name);
    lua_pushfstring(L, "%s.%s", lib, name);
    lua_pushcclosure(L, l_load_only, 2);
    lua_setfield(L, -2, name);
}

static void open_load_io(lua_State *L) {
    luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 0);
    lua_createtable(L, 0, 2);
    set_load_only(L, -2, "io", "open");
    set_load_only(L, -2, "io", "lines");
    mark_removed(L, -2, "io");
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
    lua_getglobal(L, LUA_OSLIBNAME); /* the full os, for getenv */
    restrict_lib(L, LUA_OSLIBNAME, os_keep);
    lua_getglobal(L, LUA_OSLIBNAME);
    set_load_only(L, -2, "os", "getenv");
    lua_pop(L, 2);
    restrict_lib(L, LUA_DBLIBNAME, debug_keep);
    open_load_io(L);
    /* The names of the full globals the sandbox removes: dofile, loadfile,
     * require, package (the base library would not be told apart). */
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 4);
    static const char *const removed_globals[] = {"dofile", "loadfile", "require", "package", NULL};
    for (const char *const *g = removed_globals; *g; g++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, *g);
    }
    /* Drop the loaded-library cache: it would still expose the full os/debug. */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    wrap_global(L, "load", l_load_text);
    wrap_global(L, "collectgarbage", l_collectgarbage);
    lua_createtable(L, 0, 1); /* _G's metatable */
    lua_insert(L, -2);
    lua_pushstring(L, "");
    lua_pushcclosure(L, l_sandboxed, 2);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}
