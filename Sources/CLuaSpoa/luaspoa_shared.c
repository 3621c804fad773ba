/* spoa.shared: Lua handles on the process-wide dicts of luaspoa_store.c.
 * Arguments are checked and converted before the store is called; results are
 * pushed after it returned, so no Lua error fires while a shard is locked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"
#include "luaspoa_process.h"

#define LUASPOA_DICT_MT "luaspoa.SharedDict"
#define MAX_KEY_LEN 65535
#define DEFAULT_MAX_ITEMS 10000

static luaspoa_dict *check_dict(lua_State *L) {
    return *(luaspoa_dict **)luaL_checkudata(L, 1, LUASPOA_DICT_MT);
}

/* Keys are strings (numbers are converted); an object with a :key() method
 * (spoa.Addr) is converted with it. */
static const char *check_key(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__index") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "key") == LUA_TFUNCTION) {
            lua_pushvalue(L, idx);
            lua_call(L, 1, 1);
            lua_replace(L, idx);   /* pops the key */
            lua_pop(L, 1);         /* __index */
        } else {
            lua_pop(L, 2);
        }
    }
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad key: expected a string, got %s", luaL_typename(L, idx));
    const char *k = lua_tolstring(L, idx, len);
    if (*len == 0)
        luaL_error(L, "bad key: empty key");
    if (*len > MAX_KEY_LEN)
        luaL_error(L, "bad key: longer than %d bytes", MAX_KEY_LEN);
    return k;
}

static void check_value(lua_State *L, int idx, luaspoa_sval *v) {
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        v->type = LUASPOA_SV_NIL;
        break;
    case LUA_TBOOLEAN:
        v->type = LUASPOA_SV_BOOL;
        v->i = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = LUASPOA_SV_INT;
            v->i = lua_tointeger(L, idx);
        } else {
            v->type = LUASPOA_SV_FLOAT;
            v->d = lua_tonumber(L, idx);
        }
        break;
    case LUA_TSTRING:
        v->type = LUASPOA_SV_STRING;
        v->s = lua_tolstring(L, idx, &v->len);
        break;
    default:
        luaL_error(L, "bad value: %s cannot be stored (shared values are copied between "
                      "states: use nil, a boolean, a number or a string)", luaL_typename(L, idx));
    }
}

static void check_number(lua_State *L, int idx, const char *what, luaspoa_sval *v) {
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "bad %s: expected a number, got %s", what, luaL_typename(L, idx));
    check_value(L, idx, v);
}

/* TTL in seconds (fractional, 1 ms resolution) -> ms; nil or 0: never expires. */
static int64_t check_ttl(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx))
        return 0;
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "bad ttl: expected seconds as a number, got %s", luaL_typename(L, idx));
    lua_Number ttl = lua_tonumber(L, idx);
    if (!(ttl >= 0) || ttl > 9.2e15)
        luaL_error(L, "bad ttl: %f (expected seconds >= 0)", (double)ttl);
    int64_t ms = (int64_t)llround(ttl * 1000.0);
    return ms == 0 && ttl > 0 ? 1 : ms;
}

static void push_sval(lua_State *L, const luaspoa_sval *v) {
    switch (v->type) {
    case LUASPOA_SV_BOOL: lua_pushboolean(L, (int)v->i); break;
    case LUASPOA_SV_INT: lua_pushinteger(L, v->i); break;
    case LUASPOA_SV_FLOAT: lua_pushnumber(L, v->d); break;
    case LUASPOA_SV_STRING: lua_pushlstring(L, v->s, v->len); break;
    default: lua_pushnil(L); break;
    }
}

static const char *error_text(int rc) {
    switch (rc) {
    case LUASPOA_SD_NOT_FOUND: return "not found";
    case LUASPOA_SD_EXISTS: return "exists";
    case LUASPOA_SD_NO_MEMORY: return "no memory";
    case LUASPOA_SD_NOT_A_NUMBER: return "not a number";
    case LUASPOA_SD_TOO_LARGE: return "too large";
    default: return "unknown error";
    }
}

/* ok, err[, forcible] as ngx.shared does. */
static int push_result(lua_State *L, int rc, int forcible, int with_forcible) {
    lua_pushboolean(L, rc == LUASPOA_SD_OK);
    if (rc == LUASPOA_SD_OK)
        lua_pushnil(L);
    else
        lua_pushstring(L, error_text(rc));
    if (!with_forcible)
        return 2;
    lua_pushboolean(L, forcible);
    return 3;
}

static int get_common(lua_State *L, int allow_stale) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    luaspoa_sval v;
    int stale = 0;
    int rc = luaspoa_dict_get(d, k, klen, allow_stale, &v, &stale);
    if (rc == LUASPOA_SD_NO_MEMORY)
        return luaL_error(L, "spoa.shared: out of memory copying a value");
    if (rc != LUASPOA_SD_OK) {
        lua_pushnil(L);
        return 1;
    }
    push_sval(L, &v);
    if (!allow_stale)
        return 1;
    lua_pushboolean(L, stale);
    return 2;
}

static int d_get(lua_State *L) { return get_common(L, 0); }
static int d_get_stale(lua_State *L) { return get_common(L, 1); }

static int store_common(lua_State *L, int mode, int with_forcible) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    luaspoa_sval v;
    check_value(L, 3, &v);
    int64_t ttl = check_ttl(L, 4);
    int forcible = 0;
    int rc = luaspoa_dict_store(d, k, klen, &v, ttl, mode, &forcible);
    if (rc == LUASPOA_SD_TOO_LARGE) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "too large: this dict stores at most %I bytes per item (key + value, max_bytes)",
                        (LUAI_UACINT)luaspoa_dict_max_item_bytes(d));
        lua_pushboolean(L, 0);
        return with_forcible ? 3 : 2;
    }
    return push_result(L, rc, forcible, with_forcible);
}

static int d_set(lua_State *L) { return store_common(L, LUASPOA_SD_SET, 1); }
static int d_safe_set(lua_State *L) { return store_common(L, LUASPOA_SD_SAFE_SET, 0); }
static int d_add(lua_State *L) { return store_common(L, LUASPOA_SD_ADD, 1); }
static int d_safe_add(lua_State *L) { return store_common(L, LUASPOA_SD_SAFE_ADD, 0); }
static int d_replace(lua_State *L) { return store_common(L, LUASPOA_SD_REPLACE, 1); }

static int d_delete(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    luaspoa_dict_delete(d, k, klen);
    lua_pushboolean(L, 1);
    return 1;
}

static int d_incr(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    luaspoa_sval step, init, out;
    check_number(L, 3, "step", &step);
    int has_init = !lua_isnoneornil(L, 4);
    if (has_init)
        check_number(L, 4, "init", &init);
    int64_t init_ttl = check_ttl(L, 5);
    int forcible = 0;
    int rc = luaspoa_dict_incr(d, k, klen, &step, has_init ? &init : NULL, init_ttl, &out, &forcible);
    if (rc != LUASPOA_SD_OK) {
        lua_pushnil(L);
        lua_pushstring(L, error_text(rc));
        lua_pushboolean(L, 0);
        return 3;
    }
    push_sval(L, &out);
    lua_pushnil(L);
    lua_pushboolean(L, forcible);
    return 3;
}

static int d_ttl(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    int64_t ms;
    if (luaspoa_dict_ttl(d, k, klen, &ms) != LUASPOA_SD_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "not found");
        return 2;
    }
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

static int d_expire(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen);
    int64_t ttl = check_ttl(L, 3);
    return push_result(L, luaspoa_dict_expire(d, k, klen, ttl), 0, 0);
}

/* Owns the key blob while the result table is built (freed by __gc even if
 * building it raises). */
static int blob_gc(lua_State *L) {
    char **p = lua_touserdata(L, 1);
    free(*p);
    *p = NULL;
    return 0;
}

static int d_get_keys(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    lua_Integer max = luaL_optinteger(L, 2, 1024);
    luaL_argcheck(L, max >= 0, 2, "expected a count >= 0 (0: all keys)");
    char **box = lua_newuserdatauv(L, sizeof(char *), 0);
    *box = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, blob_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    size_t n = luaspoa_dict_keys(d, (size_t)max, box);
    lua_createtable(L, (int)n, 0);
    const char *p = *box;
    for (size_t i = 0; i < n; i++) {
        uint32_t len;
        memcpy(&len, p, 4);
        lua_pushlstring(L, p + 4, len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        p += 4 + len;
    }
    return 1;
}

static int d_flush_all(lua_State *L) {
    luaspoa_dict_flush_all(check_dict(L));
    return 0;
}

static int d_flush_expired(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "expected a count >= 0 (0: all)");
    lua_pushinteger(L, (lua_Integer)luaspoa_dict_flush_expired(d, (size_t)max));
    return 1;
}

static int d_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)luaspoa_dict_count(check_dict(L)));
    return 1;
}

static int d_capacity(lua_State *L) {
    lua_pushinteger(L, luaspoa_dict_capacity(check_dict(L)));
    return 1;
}

/* d:bytes() -> bytes used (keys + values), max_bytes */
static int d_bytes(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    lua_pushinteger(L, (lua_Integer)luaspoa_dict_bytes(d));
    lua_pushinteger(L, luaspoa_dict_max_bytes(d));
    return 2;
}

static int d_tostring(lua_State *L) {
    luaspoa_dict *d = check_dict(L);
    lua_pushfstring(L, "spoa.shared.%s", luaspoa_dict_name(d));
    return 1;
}

static void push_dict(lua_State *L, luaspoa_dict *d) {
    *(luaspoa_dict **)lua_newuserdatauv(L, sizeof d, 0) = d;
    luaL_setmetatable(L, LUASPOA_DICT_MT);
}

/* spoa.shared.declare(name [, { max_items = n, max_bytes = n }]) */
static int l_declare(lua_State *L) {
    luaspoa_require_setup(L, "spoa.shared.declare", 1);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    if (len == 0 || strcmp(name, "declare") == 0)
        return luaL_error(L, "spoa.shared.declare: invalid dict name '%s'", name);
    lua_Integer max_items = DEFAULT_MAX_ITEMS, max_bytes = LUASPOA_DICT_DEFAULT_MAX_BYTES;
    if (luaspoa_check_options(L, 2, "spoa.shared.declare", "max_items, max_bytes")) {
        max_items = luaspoa_opt_positive(L, 2, "spoa.shared.declare", "max_items", max_items);
        max_bytes = luaspoa_opt_positive(L, 2, "spoa.shared.declare", "max_bytes", max_bytes);
    }
    int64_t existing = 0;
    luaspoa_dict *d = luaspoa_dict_declare(name, len, max_items, max_bytes, &existing);
    if (d == NULL && existing != max_items)
        return luaL_error(L, "spoa.shared.declare: dict '%s' already declared with max_items = %I "
                             "(this call asks for %I)", name, (lua_Integer)existing, max_items);
    if (d == NULL && existing)
        return luaL_error(L, "spoa.shared.declare: dict '%s' already declared with max_bytes = %I "
                             "(this call asks for %I)", name,
                          (lua_Integer)luaspoa_dict_max_bytes(luaspoa_dict_find(name, len)), max_bytes);
    if (d == NULL)
        return luaL_error(L, "spoa.shared.declare: out of memory");
    push_dict(L, d);
    lua_getfield(L, LUA_REGISTRYINDEX, "luaspoa.shared");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return 1;
}

/* spoa.shared.<name>: dicts declared by any state of the process. */
static int shared_index(lua_State *L) {
    size_t len;
    const char *name = lua_tolstring(L, 2, &len);
    luaspoa_dict *d = name ? luaspoa_dict_find(name, len) : NULL;
    if (d == NULL)
        return luaL_error(L, "spoa.shared.%s is not declared (use spoa.shared.declare)",
                          name ? name : "?");
    push_dict(L, d);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

void luaspoa_open_shared(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"get", d_get}, {"get_stale", d_get_stale}, {"set", d_set}, {"safe_set", d_safe_set},
        {"add", d_add}, {"safe_add", d_safe_add}, {"replace", d_replace}, {"delete", d_delete},
        {"incr", d_incr}, {"ttl", d_ttl}, {"expire", d_expire}, {"get_keys", d_get_keys},
        {"flush_all", d_flush_all}, {"flush_expired", d_flush_expired}, {"count", d_count},
        {"capacity", d_capacity}, {"bytes", d_bytes}, {NULL, NULL},
    };
    luaspoa_new_class(L, LUASPOA_DICT_MT, methods, d_tostring);

    lua_createtable(L, 0, 4);                 /* spoa.shared */
    lua_pushcfunction(L, l_declare);
    lua_setfield(L, -2, "declare");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, shared_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "luaspoa.shared");
    lua_setfield(L, -2, "shared");
}
