/* Option tables of the spoa.* functions ({ max_items = n, ... }): unknown keys are
 * errors, and one reader per kind of value. */
#include <string.h>

#include "luaspoa_internal.h"

int luaspoa_check_options(lua_State *L, int idx, const char *fn, const char *supported) {
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        size_t n = k ? strlen(k) : 0;
        const char *at = k && n ? strstr(supported, k) : NULL;
        /* A whole word of the comma-separated list. */
        if (at == NULL || (at != supported && at[-1] != ' ') || (at[n] != '\0' && at[n] != ','))
            luaL_error(L, "%s: unknown option '%s' (supported: %s)", fn, luaL_tolstring(L, -1, NULL), supported);
    }
    return 1;
}

lua_Integer luaspoa_opt_positive(lua_State *L, int idx, const char *fn, const char *field, lua_Integer dflt) {
    lua_Integer value = dflt;
    if (lua_getfield(L, idx, field) != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
            luaL_error(L, "%s: %s must be an integer >= 1", fn, field);
        value = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return value;
}
