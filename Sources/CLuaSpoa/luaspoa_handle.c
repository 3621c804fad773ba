/* Handles (txn, msg): valid only during the dispatch that made them.
 *
 * A handle is a light userdata whose value encodes the dispatch's generation and
 * the handle's kind, (gen << 1) | kind: pushing one allocates nothing, and a
 * handle kept past its handler carries an old generation, so it still raises
 * "<what> used outside its handler". (Full userdata cost 2 mallocs, ~1,600
 * instructions and the GC work they bring per message; tools/dispatch-cost.c.)
 * All light userdata of a state share one metatable; no other light userdata
 * is visible to scripts. */
#include <stdint.h>

#include "luaspoa_internal.h"

static const char *const kind_names[LUASPOA_HANDLE_KINDS] = {"txn", "msg"};

static uintptr_t handle_bits(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TLIGHTUSERDATA)
        return 0;
    return (uintptr_t)lua_touserdata(L, idx);
}

void luaspoa_check_handle(lua_State *L, int idx, int kind) {
    uintptr_t bits = handle_bits(L, idx);
    if (bits == 0 || (int)(bits & 1) != kind) {
        lua_pushfstring(L, "spoa.%s", kind_names[kind]);
        luaL_typeerror(L, idx, lua_tostring(L, -1));
    }
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (!rt->active || (uint64_t)(bits >> 1) != rt->gen)
        luaL_error(L, "%s used outside its handler", kind_names[kind]);
}

void luaspoa_push_handle(lua_State *L, int kind) {
    lua_pushlightuserdata(L, (void *)(uintptr_t)((luaspoa_rt_get(L)->gen << 1) | (uint64_t)kind));
}

void luaspoa_push_handle_methods(lua_State *L, int kind) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, luaspoa_rt_get(L)->handle_methods_ref[kind]);
}

static int handle_index(lua_State *L) {
    uintptr_t bits = handle_bits(L, 1);
    return luaspoa_rt_get(L)->handle_index[bits & 1](L);
}

static int handle_tostring(lua_State *L) {
    uintptr_t bits = handle_bits(L, 1);
    lua_pushfstring(L, "spoa.%s: %p", kind_names[bits & 1], (void *)bits);
    return 1;
}

void luaspoa_new_handle_kind(lua_State *L, int kind, lua_CFunction index) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    rt->handle_methods_ref[kind] = luaL_ref(L, LUA_REGISTRYINDEX);
    rt->handle_index[kind] = index;
    lua_pushlightuserdata(L, NULL);
    if (!lua_getmetatable(L, -1)) {
        lua_newtable(L);
        lua_pushcfunction(L, handle_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, handle_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_pushnil(L);
    }
    lua_pop(L, 2);
}
