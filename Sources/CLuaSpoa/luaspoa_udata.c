/* luaL_testudata / checkudata / setmetatable with the class metatables cached
 * per state: the luaL versions look the metatable up in the registry by name on
 * every call (a string hash lookup, ~300 instructions per check; about 4.5 % of
 * the agent's CPU with ip_reputation.lua). Metatables are never removed from
 * the registry, so a cached pointer stays valid for the state's lifetime. */
#include "luaspoa_internal.h"

/* The cache entry for class `tname` (keyed by the name's address, so each
 * string literal gets its own entry), or NULL when there is no such class. */
static luaspoa_class_cache *class_entry(lua_State *L, const char *tname) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    for (int i = 0; i < rt->nclasses; i++)
        if (rt->classes[i].name == tname)
            return &rt->classes[i];
    if (rt->nclasses == LUASPOA_CLASS_CACHE)
        return NULL;
    if (luaL_getmetatable(L, tname) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    luaspoa_class_cache *c = &rt->classes[rt->nclasses++];
    c->name = tname;
    c->mt = lua_topointer(L, -1);
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return c;
}

void *luaspoa_testudata(lua_State *L, int idx, const char *tname) {
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return NULL;
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    luaspoa_class_cache *c = class_entry(L, tname);
    if (c == NULL)
        return luaL_testudata(L, idx, tname);
    return mt == c->mt ? lua_touserdata(L, idx) : NULL;
}

void *luaspoa_checkudata(lua_State *L, int idx, const char *tname) {
    void *p = luaspoa_testudata(L, idx, tname);
    if (p == NULL)
        luaL_typeerror(L, idx, tname);
    return p;
}

void luaspoa_setmetatable(lua_State *L, const char *tname) {
    luaspoa_class_cache *c = class_entry(L, tname);
    if (c == NULL) {
        luaL_setmetatable(L, tname);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_setmetatable(L, -2);
}
