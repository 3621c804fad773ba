/* The txn object (txn.stream_id, txn.frame_id, txn.engine_id, txn.message,
 * txn:set_var, txn:set_var_<type>, txn:unset_var, txn:get_var), handle lifetime,
 * and variable-name parsing. */
#include <stdio.h>
#include <string.h>

#include "luaspoa_internal.h"

/* ---- variables ---------------------------------------------------------- */

/* Indexed by the SPOP scope byte (VarScope on the Swift side). */
const char *const luaspoa_scope_names[LUASPOA_SCOPES] = {"proc", "sess", "txn", "req", "res"};

/* HAProxy builds "<scope>.<prefix>.<name>" in a 64-byte buffer (NUL included). */
#define HAPROXY_VAR_NAME_MAX 63

int luaspoa_parse_var(const luaspoa_ctx *ctx, const char *var, size_t len, int *scope,
                      const char **name, size_t *name_len, char *err, size_t errcap) {
    const char *dot = memchr(var, '.', len);
    if (dot == NULL) {
        snprintf(err, errcap, "invalid variable \"%.*s\": expected \"<scope>.<name>\" "
                 "with scope proc, sess, txn, req or res", (int)len, var);
        return 0;
    }
    size_t slen = (size_t)(dot - var);
    *scope = -1;
    for (int s = 0; s < LUASPOA_SCOPES; s++)
        if (luaspoa_scope_names[s][0] == var[0] && strlen(luaspoa_scope_names[s]) == slen &&
            memcmp(luaspoa_scope_names[s], var, slen) == 0)
            *scope = s;
    if (*scope < 0) {
        snprintf(err, errcap, "invalid variable \"%.*s\": unknown scope \"%.*s\" "
                 "(expected proc, sess, txn, req or res)", (int)len, var, (int)slen, var);
        return 0;
    }
    *name = dot + 1;
    *name_len = len - slen - 1;
    if (*name_len == 0) {
        snprintf(err, errcap, "invalid variable \"%.*s\": empty name", (int)len, var);
        return 0;
    }
    for (size_t i = 0; i < *name_len; i++) {
        char c = (*name)[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_')) {
            snprintf(err, errcap, "invalid variable \"%.*s\": character '%c' not allowed "
                     "(use A-Z a-z 0-9 . _)", (int)len, var, c);
            return 0;
        }
    }
    size_t full = slen + ctx->var_prefix_len + *name_len + 2;
    if (ctx->var_prefix != NULL && full > HAPROXY_VAR_NAME_MAX) {
        snprintf(err, errcap, "invalid variable \"%.*s\": \"%.*s.%.*s.%.*s\" is %d bytes long, "
                 "HAProxy allows %d", (int)len, var, (int)slen, var, (int)ctx->var_prefix_len,
                 ctx->var_prefix, (int)*name_len, *name, (int)full, HAPROXY_VAR_NAME_MAX);
        return 0;
    }
    return 1;
}

/* Logs once per state and name when the name repeats the var-prefix
 * ("sess.iprep.score" with prefix iprep becomes sess.iprep.iprep.score). */
static void warn_doubled_prefix(lua_State *L, const luaspoa_ctx *ctx, const char *name,
                                size_t name_len) {
    size_t plen = ctx->var_prefix_len;
    if (ctx->var_prefix == NULL || name_len <= plen || name[plen] != '.' ||
        memcmp(name, ctx->var_prefix, plen) != 0)
        return;
    int top = lua_gettop(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, "luaspoa.prefix_warned") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "luaspoa.prefix_warned");
    }
    const char *n = lua_pushlstring(L, name, name_len);
    if (lua_rawget(L, -2) == LUA_TNIL) {
        n = lua_pushlstring(L, name, name_len);
        lua_pushboolean(L, 1);
        lua_rawset(L, -4);
        n = lua_pushlstring(L, name, name_len);
        const char *p = lua_pushlstring(L, ctx->var_prefix, plen);
        size_t len;
        const char *msg = lua_pushfstring(L, "variable name \"%s\" starts with the var-prefix "
            "\"%s\"; HAProxy adds the prefix itself (it becomes <scope>.%s.%s)", n, p, p, n);
        lua_tolstring(L, -1, &len);
        luaspoa_emit_log(L, LUASPOA_LOG_WARNING, msg, len);
    }
    (void)n;
    lua_settop(L, top);
}

void luaspoa_append(lua_State *L, int kind, int scope, const char *name, size_t name_len,
                    const spoa_value *value) {
    luaspoa_ctx *ctx = luaspoa_rt_get(L)->ctx;
    if (ctx->append_action == NULL)
        luaL_error(L, "no ACK to write to");
    warn_doubled_prefix(L, ctx, name, name_len);
    if (ctx->append_action(ctx->ud, kind, scope, name, name_len, value) != 0) {
        if (ctx->max_frame_size)
            luaL_error(L, "ACK full (max-frame-size %d)", (int)ctx->max_frame_size);
        luaL_error(L, "ACK full");
    }
}

/* A checked variable argument. */
typedef struct var_ref {
    int scope;
    const char *name;
    size_t len;
} var_ref;

/* The prologue of every txn:*_var method: argument 1 is a live txn, argument 2
 * a valid "scope.name" (raises with a clear message otherwise). */
static var_ref check_var(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_TXN);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    int is_string = lua_type(L, 2) == LUA_TSTRING;
    var_ref v;
    size_t len;
    const char *var = luaL_checklstring(L, 2, &len);
    /* A script names the same few variables with the same (interned) strings:
     * the parse of each is kept, by the string's address. The cache anchors the
     * string, so while cached that address cannot be another string's. */
    luaspoa_var_cache *slot = &rt->vars[((uintptr_t)var >> 4) % LUASPOA_VAR_CACHE];
    if (is_string && slot->text == var) {
        v.scope = slot->scope;
        v.name = var + slot->name_offset;
        v.len = slot->name_len;
        return v;
    }
    char err[256];
    if (!luaspoa_parse_var(rt->ctx, var, len, &v.scope, &v.name, &v.len, err, sizeof err))
        luaL_error(L, "%s", err);
    if (is_string) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rt->vars_ref);
        lua_pushvalue(L, 2);
        lua_rawseti(L, -2, (lua_Integer)(slot - rt->vars) + 1);
        lua_pop(L, 1);
        *slot = (luaspoa_var_cache){var, v.scope, (size_t)(v.name - var), v.len};
    }
    return v;
}

static int txn_set_var(lua_State *L) {
    var_ref var = check_var(L);
    spoa_value v;
    const char *err = NULL;
    int kind = luaspoa_tovalue(L, 3, &v, &err);
    if (kind == 0)
        return luaL_error(L, "txn:set_var(\"%s\"): %s", lua_tostring(L, 2), err);
    luaspoa_append(L, kind, var.scope, var.name, var.len, kind == LUASPOA_ACTION_SET ? &v : NULL);
    return 0;
}

static int txn_unset_var(lua_State *L) {
    var_ref var = check_var(L);
    luaspoa_append(L, LUASPOA_ACTION_UNSET, var.scope, var.name, var.len, NULL);
    return 0;
}

/* txn:set_var_<type>(var [, v]): an explicit type without building a wrapper.
 * Upvalue 1 is the type code, upvalue 2 the method name for errors. */
static int txn_set_var_typed(lua_State *L) {
    var_ref var = check_var(L);
    spoa_value v;
    luaspoa_check_typed(L, 3, (int)lua_tointeger(L, lua_upvalueindex(1)), &v,
                        lua_tostring(L, lua_upvalueindex(2)));
    luaspoa_append(L, LUASPOA_ACTION_SET, var.scope, var.name, var.len, &v);
    return 0;
}

/* txn:get_var(var) -> value, type as queued so far in this ACK (by any message of
 * the frame); nil, "unset" after unset_var; nil when nothing is queued. A failed
 * handler's actions are rolled back from the ACK, so they disappear here too. */
static int txn_get_var(lua_State *L) {
    var_ref var = check_var(L);
    luaspoa_ctx *ctx = luaspoa_rt_get(L)->ctx;
    spoa_value v;
    memset(&v, 0, sizeof v);
    int kind = ctx->get_action ? ctx->get_action(ctx->ud, var.scope, var.name, var.len, &v) : 0;
    if (kind == LUASPOA_ACTION_SET) {
        luaspoa_push_value(L, &v);
        lua_pushstring(L, luaspoa_type_name(v.type));
        return 2;
    }
    lua_pushnil(L);
    if (kind == LUASPOA_ACTION_UNSET) {
        lua_pushliteral(L, "unset");
        return 2;
    }
    return 1;
}

static int txn_index(lua_State *L) {
    luaspoa_check_handle(L, 1, LUASPOA_HANDLE_TXN);
    /* Methods first: txn:set_var is the hot lookup. */
    luaspoa_push_handle_methods(L, LUASPOA_HANDLE_TXN);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    lua_pop(L, 2);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "stream_id") == 0) {
        lua_pushinteger(L, (lua_Integer)rt->ctx->stream_id);
    } else if (strcmp(key, "frame_id") == 0) {
        lua_pushinteger(L, (lua_Integer)rt->ctx->frame_id);
    } else if (strcmp(key, "engine_id") == 0) {
        if (rt->ctx->engine_id)
            lua_pushlstring(L, rt->ctx->engine_id, rt->ctx->engine_id_len);
        else
            lua_pushnil(L);
    } else if (strcmp(key, "message") == 0) {
        lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

void luaspoa_open_txn(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"set_var", txn_set_var}, {"unset_var", txn_unset_var}, {"get_var", txn_get_var},
        {NULL, NULL},
    };
    static const struct { const char *suffix; int type; } typed[] = {
        {"null", LUASPOA_T_NULL}, {"boolean", LUASPOA_T_BOOL}, {"int32", LUASPOA_T_INT32},
        {"uint32", LUASPOA_T_UINT32}, {"int64", LUASPOA_T_INT64}, {"uint64", LUASPOA_T_UINT64},
        {"ipv4", LUASPOA_T_IPV4}, {"ipv6", LUASPOA_T_IPV6}, {"str", LUASPOA_T_STRING},
        {"bin", LUASPOA_T_BINARY},
    };
    luaL_newlib(L, methods);
    for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) {
        lua_pushinteger(L, typed[i].type);
        const char *method = lua_pushfstring(L, "txn:set_var_%s", typed[i].suffix);
        lua_pushcclosure(L, txn_set_var_typed, 2);
        lua_setfield(L, -2, method + 4);
    }
    luaspoa_new_handle_kind(L, LUASPOA_HANDLE_TXN, txn_index);
    lua_newtable(L);
    luaspoa_rt_get(L)->vars_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void luaspoa_push_txn(lua_State *L) {
    luaspoa_push_handle(L, LUASPOA_HANDLE_TXN);
}
