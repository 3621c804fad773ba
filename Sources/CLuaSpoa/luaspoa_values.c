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
    luaspoa_setmetatable(L, LUASPOA_TYPED_MT);
    return t;
}

/* ---- explicit types --------------------------------------------------- */

/* Reads argument idx as an integer; `what` names the caller in errors. */
static lua_Integer check_integer(lua_State *L, int idx, const char *what) {
    int isint = 0;
    lua_Integer n = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) /* no silent string-to-number conversion */
        n = lua_tointegerx(L, idx, &isint);
    if (!isint) {
        if (lua_type(L, idx) == LUA_TNUMBER)
            luaL_error(L, "%s: number has no integer representation: %s", what,
                       lua_tostring(L, idx));
        else
            luaL_error(L, "%s: integer expected, got %s", what, luaL_typename(L, idx));
    }
    return n;
}

/* Any integer (taken as the unsigned bit pattern) or a decimal string. */
static lua_Integer check_uint64(lua_State *L, int idx, const char *what) {
    if (lua_type(L, idx) != LUA_TSTRING)
        return check_integer(L, idx, what);
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    char *end;
    errno = 0;
    unsigned long long u = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || end != s + len || errno == ERANGE)
        luaL_error(L, "uint64 out of range: %s", s);
    return (lua_Integer)u;
}

static void check_ip(lua_State *L, int idx, int want, uint8_t out[16], const char *what) {
    luaspoa_addr a;
    luaspoa_check_addr_arg(L, idx, &a, what);
    if (a.family != want)
        luaL_error(L, "%s: not an IPv%d address (got IPv%d)", what, want, (int)a.family);
    memcpy(out, a.bytes, 16);
}

void luaspoa_check_typed(lua_State *L, int idx, int type, spoa_value *out, const char *what) {
    memset(out, 0, sizeof *out);
    out->type = (uint8_t)type;
    lua_Integer n;
    switch (type) {
    case LUASPOA_T_NULL:
        break;
    case LUASPOA_T_BOOL:
        luaL_checktype(L, idx, LUA_TBOOLEAN);
        out->v.i = lua_toboolean(L, idx);
        break;
    case LUASPOA_T_INT32:
        n = check_integer(L, idx, what);
        if (n < INT32_MIN || n > INT32_MAX)
            luaL_error(L, "int32 out of range: %I", n);
        out->v.i = n;
        break;
    case LUASPOA_T_UINT32:
        n = check_integer(L, idx, what);
        if (n < 0 || n > (lua_Integer)UINT32_MAX)
            luaL_error(L, "uint32 out of range: %I", n);
        out->v.i = n;
        break;
    case LUASPOA_T_INT64:
        out->v.i = check_integer(L, idx, what);
        break;
    case LUASPOA_T_UINT64:
        out->v.i = check_uint64(L, idx, what);
        break;
    case LUASPOA_T_IPV4: case LUASPOA_T_IPV6:
        check_ip(L, idx, type == LUASPOA_T_IPV4 ? 4 : 6, out->v.ip, what);
        break;
    default: /* STRING, BINARY: numbers become strings in place */
        luaL_checklstring(L, idx, NULL);
        out->v.bytes.ptr = lua_tolstring(L, idx, &out->v.bytes.len);
        break;
    }
}

/* spoa.<type>(v): the checked value as a wrapper. The upvalue is the type code;
 * string and binary wrappers keep their Lua string as user value 1. */
static int l_wrapper(lua_State *L) {
    int type = (int)lua_tointeger(L, lua_upvalueindex(1));
    lua_settop(L, 1);
    spoa_value v;
    luaspoa_check_typed(L, 1, type, &v, lua_tostring(L, lua_upvalueindex(2)));
    int keeps_string = type == LUASPOA_T_STRING || type == LUASPOA_T_BINARY;
    luaspoa_typed *t = push_typed(L, (uint8_t)type, keeps_string);
    t->v = v.v;
    if (keeps_string) {
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, 1);
    }
    return 1;
}

static int typed_tostring(lua_State *L) {
    luaspoa_typed *t = luaspoa_checkudata(L, 1, LUASPOA_TYPED_MT);
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
        luaspoa_typed *t = luaspoa_testudata(L, idx, LUASPOA_TYPED_MT);
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
    static const struct { const char *name; int type; } wrappers[] = {
        {"boolean", LUASPOA_T_BOOL}, {"int32", LUASPOA_T_INT32}, {"uint32", LUASPOA_T_UINT32},
        {"int64", LUASPOA_T_INT64}, {"uint64", LUASPOA_T_UINT64}, {"ipv4", LUASPOA_T_IPV4},
        {"ipv6", LUASPOA_T_IPV6}, {"string", LUASPOA_T_STRING}, {"binary", LUASPOA_T_BINARY},
    };
    luaL_newmetatable(L, LUASPOA_TYPED_MT);
    lua_pushcfunction(L, typed_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "spoa.value");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++) {
        lua_pushinteger(L, wrappers[i].type);
        lua_pushfstring(L, "spoa.%s", wrappers[i].name);
        lua_pushcclosure(L, l_wrapper, 2);
        lua_setfield(L, -2, wrappers[i].name);
    }
    lua_pushcfunction(L, l_typeof);
    lua_setfield(L, -2, "typeof");
    push_typed(L, LUASPOA_T_NULL, 0);
    lua_setfield(L, -2, "null");
    push_typed(L, LUASPOA_T_UNSET, 0);
    lua_setfield(L, -2, "unset");
}
