/* Typed value wrappers (spoa.int32, ..., spoa.null, spoa.unset), type inference
 * for outgoing values, and pushing incoming values. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"

/* A wrapper: one outgoing value with an explicit type. String and binary
 * wrappers keep their Lua string in user value 1, so bytes.ptr stays valid. */
typedef struct luaspoa_typed {
    uint8_t type; /* LUASPOA_T_* or LUASPOA_T_UNSET */
    spoa_value_data v;
} luaspoa_typed;

static const char *const type_names[] = {
    "null", "boolean", "int32", "uint32", "int64", "uint64", "ipv4", "ipv6", "string", "binary",
};

const char *luaspoa_type_name(int type) {
    if (type >= 0 && type <= LUASPOA_T_BINARY)
        return type_names[type];
    return NULL;
}

void luaspoa_push_value(lua_State *L, const spoa_value *v) {
    switch (v->type) {
    case LUASPOA_T_BOOL:
        lua_pushboolean(L, v->v.i != 0);
        break;
    case LUASPOA_T_INT32: case LUASPOA_T_UINT32: case LUASPOA_T_INT64: case LUASPOA_T_UINT64:
        lua_pushinteger(L, (lua_Integer)v->v.i);
        break;
    case LUASPOA_T_IPV4:
        luaspoa_push_addr(L, 4, v->v.ip);
        break;
    case LUASPOA_T_IPV6:
        luaspoa_push_addr(L, 6, v->v.ip);
        break;
    case LUASPOA_T_STRING: case LUASPOA_T_BINARY:
        lua_pushlstring(L, v->v.bytes.ptr ? v->v.bytes.ptr : "", v->v.bytes.len);
        break;
    default: /* NULL */
        lua_pushnil(L);
        break;
    }
}

static luaspoa_typed *push_typed(lua_State *L, uint8_t type, int nuv) {
    luaspoa_typed *t = lua_newuserdatauv(L, sizeof *t, nuv);
    memset(t, 0, sizeof *t);
    t->type = type;
    luaL_setmetatable(L, LUASPOA_TYPED_MT);
    return t;
}

/* ---- wrappers ----------------------------------------------------------- */

/* Reads argument 1 as an integer; `what` names the wrapper in errors. */
static lua_Integer wrapper_integer(lua_State *L, const char *what) {
    int isint = 0;
    lua_Integer n = 0;
    if (lua_type(L, 1) == LUA_TNUMBER) /* no silent string-to-number conversion */
        n = lua_tointegerx(L, 1, &isint);
    if (!isint) {
        if (lua_type(L, 1) == LUA_TNUMBER)
            luaL_error(L, "%s: number has no integer representation: %s", what,
                       lua_tostring(L, 1));
        else
            luaL_error(L, "%s: integer expected, got %s", what, luaL_typename(L, 1));
    }
    return n;
}

static int l_int32(lua_State *L) {
    lua_Integer n = wrapper_integer(L, "spoa.int32");
    if (n < INT32_MIN || n > INT32_MAX)
        return luaL_error(L, "int32 out of range: %I", n);
    push_typed(L, LUASPOA_T_INT32, 0)->v.i = n;
    return 1;
}

static int l_uint32(lua_State *L) {
    lua_Integer n = wrapper_integer(L, "spoa.uint32");
    if (n < 0 || n > (lua_Integer)UINT32_MAX)
        return luaL_error(L, "uint32 out of range: %I", n);
    push_typed(L, LUASPOA_T_UINT32, 0)->v.i = n;
    return 1;
}

static int l_int64(lua_State *L) {
    lua_Integer n = wrapper_integer(L, "spoa.int64");
    push_typed(L, LUASPOA_T_INT64, 0)->v.i = n;
    return 1;
}

/* Any integer (taken as the unsigned bit pattern) or a decimal string. */
static int l_uint64(lua_State *L) {
    lua_Integer n;
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || end != s + len || errno == ERANGE)
            return luaL_error(L, "uint64 out of range: %s", s);
        n = (lua_Integer)u;
    } else {
        n = wrapper_integer(L, "spoa.uint64");
    }
    push_typed(L, LUASPOA_T_UINT64, 0)->v.i = n;
    return 1;
}

static int l_boolean(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    push_typed(L, LUASPOA_T_BOOL, 0)->v.i = lua_toboolean(L, 1);
    return 1;
}

static int push_bytes_wrapper(lua_State *L, uint8_t type) {
    size_t len;
    luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    lua_tolstring(L, 1, &len); /* numbers become strings in place */
    luaspoa_typed *t = push_typed(L, type, 1);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    t->v.bytes.ptr = lua_tostring(L, 1);
    t->v.bytes.len = len;
    return 1;
}

static int l_string(lua_State *L) { return push_bytes_wrapper(L, LUASPOA_T_STRING); }
static int l_binary(lua_State *L) { return push_bytes_wrapper(L, LUASPOA_T_BINARY); }

static int push_ip_wrapper(lua_State *L, int want) {
    const char *what = want == 4 ? "spoa.ipv4" : "spoa.ipv6";
    int family;
    uint8_t bytes[16];
    const uint8_t *p = luaspoa_test_addr(L, 1, &family);
    if (p != NULL) {
        memcpy(bytes, p, 16);
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (!luaspoa_parse_addr(s, len, &family, bytes))
            return luaL_error(L, "%s: invalid IP address: %s", what, s);
    } else {
        return luaL_error(L, "%s: address or string expected, got %s", what, luaL_typename(L, 1));
    }
    if (family != want)
        return luaL_error(L, "%s: not an IPv%d address (got IPv%d)", what, want, family);
    luaspoa_typed *t = push_typed(L, want == 4 ? LUASPOA_T_IPV4 : LUASPOA_T_IPV6, 0);
    memcpy(t->v.ip, bytes, 16);
    return 1;
}

static int l_ipv4(lua_State *L) { return push_ip_wrapper(L, 4); }
static int l_ipv6(lua_State *L) { return push_ip_wrapper(L, 6); }

static int typed_tostring(lua_State *L) {
    luaspoa_typed *t = luaL_checkudata(L, 1, LUASPOA_TYPED_MT);
    switch (t->type) {
    case LUASPOA_T_UNSET: lua_pushliteral(L, "spoa.unset"); break;
    case LUASPOA_T_NULL: lua_pushliteral(L, "spoa.null"); break;
    case LUASPOA_T_BOOL: lua_pushfstring(L, "spoa.boolean(%s)", t->v.i ? "true" : "false"); break;
    case LUASPOA_T_STRING: case LUASPOA_T_BINARY:
        lua_pushfstring(L, "spoa.%s(%d bytes)", type_names[t->type], (int)t->v.bytes.len);
        break;
    case LUASPOA_T_IPV4: case LUASPOA_T_IPV6:
        luaspoa_push_addr(L, t->type == LUASPOA_T_IPV4 ? 4 : 6, t->v.ip);
        lua_pushfstring(L, "spoa.%s(%s)", type_names[t->type], luaL_tolstring(L, -1, NULL));
        break;
    default:
        lua_pushfstring(L, "spoa.%s(%I)", type_names[t->type], (lua_Integer)t->v.i);
        break;
    }
    return 1;
}

/* ---- inference ---------------------------------------------------------- */

int luaspoa_tovalue(lua_State *L, int idx, spoa_value *out, const char **err) {
    memset(out, 0, sizeof *out);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
        int isint;
        lua_Integer n = lua_tointegerx(L, idx, &isint);
        if (!isint) {
            *err = "HAProxy variables have no float type; use // or math.floor";
            return 0;
        }
        out->type = LUASPOA_T_INT64;
        out->v.i = n;
        return LUASPOA_ACTION_SET;
    }
    case LUA_TBOOLEAN:
        out->type = LUASPOA_T_BOOL;
        out->v.i = lua_toboolean(L, idx);
        return LUASPOA_ACTION_SET;
    case LUA_TSTRING:
        out->type = LUASPOA_T_STRING;
        out->v.bytes.ptr = lua_tolstring(L, idx, &out->v.bytes.len);
        return LUASPOA_ACTION_SET;
    case LUA_TUSERDATA: {
        int family;
        const uint8_t *ip = luaspoa_test_addr(L, idx, &family);
        if (ip != NULL) {
            out->type = family == 4 ? LUASPOA_T_IPV4 : LUASPOA_T_IPV6;
            memcpy(out->v.ip, ip, 16);
            return LUASPOA_ACTION_SET;
        }
        luaspoa_typed *t = luaL_testudata(L, idx, LUASPOA_TYPED_MT);
        if (t != NULL) {
            if (t->type == LUASPOA_T_UNSET)
                return LUASPOA_ACTION_UNSET;
            out->type = t->type;
            out->v = t->v;
            return LUASPOA_ACTION_SET;
        }
        break;
    }
    case LUA_TNIL:
        *err = "nil cannot be sent; use txn:unset_var() or spoa.null";
        return 0;
    default:
        break;
    }
    *err = "this value cannot be sent (expected integer, boolean, string, address or a "
           "spoa wrapper); use txn:unset_var() or spoa.null";
    return 0;
}

/* spoa.typeof(v) -> type name | nil, reason */
static int l_typeof(lua_State *L) {
    spoa_value v;
    const char *err = NULL;
    lua_settop(L, 1);
    int kind = luaspoa_tovalue(L, 1, &v, &err);
    if (kind == LUASPOA_ACTION_SET) {
        lua_pushstring(L, luaspoa_type_name(v.type));
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, kind == LUASPOA_ACTION_UNSET ? "unset" : err);
    return 2;
}

void luaspoa_open_values(lua_State *L) {
    static const luaL_Reg wrappers[] = {
        {"int32", l_int32}, {"uint32", l_uint32}, {"int64", l_int64}, {"uint64", l_uint64},
        {"boolean", l_boolean}, {"string", l_string}, {"binary", l_binary},
        {"ipv4", l_ipv4}, {"ipv6", l_ipv6}, {"typeof", l_typeof}, {NULL, NULL},
    };
    luaL_newmetatable(L, LUASPOA_TYPED_MT);
    lua_pushcfunction(L, typed_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "spoa.value");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    luaL_setfuncs(L, wrappers, 0);
    push_typed(L, LUASPOA_T_NULL, 0);
    lua_setfield(L, -2, "null");
    push_typed(L, LUASPOA_T_UNSET, 0);
    lua_setfield(L, -2, "unset");
}
