/* The msg object: msg.name, msg.nargs, msg.args (built lazily), msg:type(k),
 * msg:get(k), msg:argname(i), msg:all(name), msg:iter(). It reads the current
 * message's spoa_arg array, which is valid only while the handler runs.
 *
 * The proposal's msg:name(i) is spelled msg:argname(i): msg.name is already the
 * message name, and a method of the same name would shadow it (or be shadowed). */
#include <string.h>

#include "luaspoa_internal.h"

/* Index (0-based) of the first argument with this name, or -1. */
static int find_named(const luaspoa_rt *rt, const char *name, size_t len, int limit) {
    if (len == 0)
        return -1;
    for (int i = 0; i < limit; i++) {
        const spoa_arg *a = &rt->args[i];
        if (a->name_len == len && memcmp(a->name, name, len) == 0)
            return i;
    }
    return -1;
}

/* Resolves argument key k (1-based index or name) to a 0-based index, or -1. */
static int resolve_key(lua_State *L, const luaspoa_rt *rt, int k) {
    if (lua_type(L, k) == LUA_TSTRING) {
        size_t len;
        const char *name = lua_tolstring(L, k, &len);
        return find_named(rt, name, len, rt->nargs);
    }
    int isint;
    lua_Integer i = lua_tointegerx(L, k, &isint);
    if (!isint)
        return luaL_error(L, "argument index or name expected, got %s", luaL_typename(L, k));
    return (i >= 1 && i <= rt->nargs) ? (int)(i - 1) : -1;
}

/* The value msg:type(key) / msg:get(key) names, or NULL when there is none. */
static const spoa_value *keyed_value(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    int i = resolve_key(L, rt, 2);
    return i < 0 ? NULL : &rt->args[i].value;
}

static int msg_type(lua_State *L) {
    const spoa_value *v = keyed_value(L);
    if (v == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, luaspoa_type_name(v->type));
    return 1;
}

static int msg_get(lua_State *L) {
    const spoa_value *v = keyed_value(L);
    if (v == NULL) {
        lua_pushnil(L);
        return 1;
    }
    luaspoa_push_value(L, v);
    lua_pushstring(L, luaspoa_type_name(v->type));
    return 2;
}

static int msg_argname(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > rt->nargs) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, rt->args[i - 1].name, rt->args[i - 1].name_len);
    return 1;
}

/* msg:all(name) -> array of the values of every argument with that name (NULLs
 * are skipped, as in msg.args; use msg:iter() to see them). */
static int msg_all(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_newtable(L);
    lua_Integer n = 0;
    for (int i = 0; i < rt->nargs; i++) {
        const spoa_arg *a = &rt->args[i];
        if (a->name_len != len || memcmp(a->name, name, len) != 0 ||
            a->value.type == LUASPOA_T_NULL)
            continue;
        luaspoa_push_value(L, &a->value);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* Iterator step: (msg, i) -> i + 1, name, value, type. */
static int msg_iter_next(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 0 || i >= rt->nargs)
        return 0;
    const spoa_arg *a = &rt->args[i];
    lua_pushinteger(L, i + 1);
    lua_pushlstring(L, a->name, a->name_len);
    luaspoa_push_value(L, &a->value);
    lua_pushstring(L, luaspoa_type_name(a->value.type));
    return 4;
}

/* for i, name, value, type in msg:iter() do ... end (NULL: value nil, type "null") */
static int msg_iter(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    lua_pushcfunction(L, msg_iter_next);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    return 3;
}

/* Builds msg.args: positions 1..nargs and first-occurrence names. */
static void push_args_table(lua_State *L, const luaspoa_rt *rt) {
    int named = 0;
    for (int i = 0; i < rt->nargs; i++)
        if (rt->args[i].name_len > 0)
            named++;
    lua_createtable(L, rt->nargs, named);
    for (int i = 0; i < rt->nargs; i++) {
        const spoa_arg *a = &rt->args[i];
        if (a->value.type == LUASPOA_T_NULL)
            continue;
        luaspoa_push_value(L, &a->value);
        if (a->name_len > 0 && find_named(rt, a->name, a->name_len, i) < 0) {
            lua_pushlstring(L, a->name, a->name_len);
            lua_pushvalue(L, -2);
            lua_rawset(L, -4);
        }
        lua_rawseti(L, -2, i + 1);
    }
}

static int msg_index(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_MSG);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);
    if (strcmp(key, "args") == 0) {
        /* Built once per dispatch, on first use. */
        if (rt->args_gen == rt->gen) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, rt->args_ref);
        } else {
            push_args_table(L, rt);
            lua_pushvalue(L, -1);
            lua_rawseti(L, LUA_REGISTRYINDEX, rt->args_ref);
            rt->args_gen = rt->gen;
        }
    } else if (strcmp(key, "name") == 0) {
        lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    } else if (strcmp(key, "nargs") == 0) {
        lua_pushinteger(L, rt->nargs);
    } else {
        luaspoa_push_handle_methods(L, LUASPOA_HANDLE_MSG);
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
    }
    return 1;
}

void luaspoa_open_msg(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"type", msg_type}, {"get", msg_get}, {"argname", msg_argname},
        {"all", msg_all}, {"iter", msg_iter}, {NULL, NULL},
    };
    luaL_newlib(L, methods);
    luaspoa_new_handle_kind(L, LUASPOA_HANDLE_MSG, msg_index);
    lua_pushboolean(L, 0); /* a slot for msg.args */
    luaspoa_rt_get(L)->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void luaspoa_push_msg(lua_State *L) {
    luaspoa_push_handle(L, LUASPOA_HANDLE_MSG);
}
