/* Lifecycle: spoa.register_init (per state, after the script loaded),
 * spoa.register_task (run by the background state's thread), and the helpers
 * shared by the set-up functions (context guard, options check, classes). */
#include <stdio.h>
#include <string.h>

#include "luaspoa_internal.h"
#include "luaspoa_process.h"

#define INITS_KEY "luaspoa.inits"
#define TASKS_KEY "luaspoa.tasks"

void luaspoa_require_setup(lua_State *L, const char *fn, int allow_init) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (rt->loading || (allow_init && rt->in_init))
        return;
    luaL_error(L, "%s is only available while the script loads%s", fn,
               allow_init ? " or in an init function" : " (not in init functions, handlers or tasks)");
}

const char *luaspoa_resolve_path(lua_State *L, const char *path) {
    if (path[0] != '/' && lua_getfield(L, LUA_REGISTRYINDEX, LUASPOA_SCRIPT_PATH_KEY) == LUA_TSTRING) {
        const char *script = lua_tostring(L, -1);
        const char *slash = strrchr(script, '/');
        if (slash != NULL) {
            lua_pushlstring(L, script, (size_t)(slash - script));
            return lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), path);
        }
    }
    return path;
}

void luaspoa_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction tostring) {
    luaL_newmetatable(L, mt);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

/* Appends the value at the top to the registry array `key` (popping it). */
static void append_to(lua_State *L, const char *key) {
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static int l_register_init(lua_State *L) {
    luaspoa_require_setup(L, "spoa.register_init", 0);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    append_to(L, INITS_KEY);
    return 0;
}

/* spoa.register_task(fn [, { every = ms, at_start = true }]) */
static int l_register_task(lua_State *L) {
    luaspoa_require_setup(L, "spoa.register_task", 0);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Integer every = 0;
    int at_start = 1;
    if (luaspoa_check_options(L, 2, "spoa.register_task", "every, at_start")) {
        if (lua_getfield(L, 2, "every") != LUA_TNIL) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
                return luaL_error(L, "spoa.register_task: every must be an integer number of milliseconds >= 1");
            every = lua_tointeger(L, -1);
        }
        if (lua_getfield(L, 2, "at_start") != LUA_TNIL) {
            if (!lua_isboolean(L, -1))
                return luaL_error(L, "spoa.register_task: at_start must be a boolean");
            at_start = lua_toboolean(L, -1);
        }
        if (every == 0 && !at_start)
            return luaL_error(L, "spoa.register_task: a task without 'every' must run at start");
    }
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, every);
    lua_rawseti(L, -2, 2);
    lua_pushboolean(L, at_start);
    lua_rawseti(L, -2, 3);
    append_to(L, TASKS_KEY);
    return 0;
}

void luaspoa_run_inits(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_getfield(L, LUA_REGISTRYINDEX, INITS_KEY);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    rt->in_init = 1;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_call(L, 0, 0);
    }
    rt->in_init = 0;
    lua_pop(L, 1);
}

void luaspoa_open_lifecycle(lua_State *L) {
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, INITS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
    lua_pushcfunction(L, l_register_init);
    lua_setfield(L, -2, "register_init");
    lua_pushcfunction(L, l_register_task);
    lua_setfield(L, -2, "register_task");
}

/* ---- background tasks (called by Swift on the background thread) --------- */

int luaspoa_task_count(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
    int n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    lua_pop(L, 1);
    return n;
}

void luaspoa_task_schedule(lua_State *L, int index, int64_t *every_ms, int *at_start) {
    lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
    lua_rawgeti(L, -1, index + 1);
    lua_rawgeti(L, -1, 2);
    *every_ms = lua_tointeger(L, -1);
    lua_rawgeti(L, -2, 3);
    *at_start = lua_toboolean(L, -1);
    lua_pop(L, 4);
}

static int task_done(lua_State *L, int status, lua_KContext k) {
    (void)L;
    (void)status;
    (void)k;
    return 0;
}

/* Runs in the call's coroutine: tasks may wait too. */
static int task_body(lua_State *L) {
    luaspoa_call *c = lua_touserdata(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
    lua_rawgeti(L, -1, c->index + 1);
    lua_rawgeti(L, -1, 1);
    lua_callk(L, 0, 0, 0, task_done);
    return 0;
}

static int task_result(lua_State *L, luaspoa_call *c, int status, luaspoa_call **waiting) {
    if (status == LUA_YIELD && waiting != NULL) {
        *waiting = c;
        return LUASPOA_WAITING;
    }
    luaspoa_call_release(L, c);
    return status == LUA_OK ? LUASPOA_OK : LUASPOA_ERROR;
}

int luaspoa_run_task(lua_State *L, int index, char *errbuf, size_t errcap, luaspoa_call **waiting) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_call *c = luaspoa_call_take(L);
    if (c == NULL) {
        snprintf(errbuf, errcap, "not enough memory for the task's coroutine");
        return LUASPOA_ERROR;
    }
    c->task = 1;
    c->index = index;
    rt->can_wait = waiting != NULL;
    return task_result(L, c, luaspoa_call_start(L, c, task_body, errbuf, errcap), waiting);
}

int luaspoa_task_resume(lua_State *L, luaspoa_call *c, char *errbuf, size_t errcap, luaspoa_call **waiting) {
    return task_result(L, c, luaspoa_call_step(L, c, 0, errbuf, errcap), waiting);
}
