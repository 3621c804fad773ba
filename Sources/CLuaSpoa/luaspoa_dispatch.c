/* luaspoa_dispatch: one protected call per message, with rollback of that
 * message's actions on any error, and encoding of a returned action table. */
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"

enum { SLOT_PARAMS = 1, SLOT_HANDLERS, SLOT_HANDLER, SLOT_RESULT };

typedef struct dispatch_params {
    int found;
    int skipped; /* not run: the frame had used its budget */
} dispatch_params;

static int compare_keys(const void *pa, const void *pb) {
    const spoa_bytes *a = pa, *b = pb;
    int c = memcmp(a->ptr, b->ptr, a->len < b->len ? a->len : b->len);
    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Raises an error about action table `what`, located at the handler's
 * definition (no Lua frame is running once the handler has returned). */
static int result_error(lua_State *L, const char *what, const char *key, const char *why) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_Debug ar;
    lua_pushvalue(L, SLOT_HANDLER);
    lua_getinfo(L, ">S", &ar);
    /* The message name is not NUL-terminated: go through a Lua string. */
    const char *name = lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    if (key)
        return luaL_error(L, "%s:%d: %s of '%s': [\"%s\"]: %s",
                          ar.short_src, ar.linedefined, what, name, key, why);
    return luaL_error(L, "%s:%d: %s of '%s': %s", ar.short_src, ar.linedefined, what, name, why);
}

void luaspoa_encode_actions(lua_State *L, int t, const char *what) {
    t = lua_absindex(L, t);
    if (lua_isnil(L, t))
        return;
    if (!lua_istable(L, t)) {
        lua_pushfstring(L, "must return nil or an action table, got %s", luaL_typename(L, t));
        result_error(L, "handler", NULL, lua_tostring(L, -1));
    }
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "action table keys must be \"scope.name\" strings, got %s",
                            luaL_typename(L, -1));
            result_error(L, "handler", NULL, lua_tostring(L, -1));
        }
        n++;
    }
    if (n == 0)
        return;
    /* Scratch array anchored on the stack, so an error cannot leak it. Keys
     * stay valid: they are anchored in the table and no Lua code runs. */
    spoa_bytes *keys = lua_newuserdatauv(L, n * sizeof *keys, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        keys[i].ptr = lua_tolstring(L, -1, &keys[i].len);
        i++;
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    for (i = 0; i < n; i++) {
        int scope;
        const char *name;
        size_t name_len;
        char err[256];
        if (!luaspoa_parse_var(luaspoa_rt_get(L)->ctx, keys[i].ptr, keys[i].len, &scope, &name, &name_len, err, sizeof err))
            result_error(L, "handler", NULL, err);
        lua_pushlstring(L, keys[i].ptr, keys[i].len);
        lua_rawget(L, t);
        spoa_value v;
        const char *why = NULL;
        int kind = luaspoa_tovalue(L, -1, &v, &why);
        if (kind == 0)
            result_error(L, what, keys[i].ptr, why);
        luaspoa_append(L, kind, scope, name, name_len, kind == LUASPOA_ACTION_SET ? &v : NULL);
        lua_pop(L, 1);
    }
}

/* Pushes opts[field] for the current message (nil when it has none). */
static int push_option(lua_State *L, luaspoa_rt *rt, const char *field) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->opts_ref);
    lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 2);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int type = lua_getfield(L, -1, field);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return type;
}

/* Handlers are registered only while the script loads, so the last message's
 * handler and time budget can be remembered: a frame's messages usually all
 * have the same name, and the lookup by name (two string interns, three table
 * reads) was ~1,000 instructions per message (tools/dispatch-cost.c). */
static int cached_handler(lua_State *L, luaspoa_rt *rt, uint32_t *ms) {
    luaspoa_handler_cache *c = &rt->last_handler;
    if (c->name_len != rt->msg_name_len || c->name_len == 0 ||
        memcmp(c->name, rt->msg_name, c->name_len) != 0)
        return 0;
    lua_pushnil(L); /* SLOT_HANDLERS */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    *ms = c->has_timeout ? c->timeout_ms : rt->ctx->timeout_ms;
    return 1;
}

static int lookup_handler(lua_State *L, luaspoa_rt *rt, uint32_t *ms) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->handlers_ref);
    lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    if (lua_rawget(L, SLOT_HANDLERS) != LUA_TFUNCTION)
        return 0;
    push_option(L, rt, "timeout_ms");
    int has_timeout = lua_isinteger(L, -1);
    *ms = has_timeout ? (uint32_t)lua_tointeger(L, -1) : rt->ctx->timeout_ms;
    lua_pop(L, 1);
    luaspoa_handler_cache *c = &rt->last_handler;
    if (rt->msg_name_len <= sizeof c->name) {
        if (c->ref == 0) {
            lua_pushboolean(L, 0);
            c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        lua_pushvalue(L, SLOT_HANDLER);
        lua_rawseti(L, LUA_REGISTRYINDEX, c->ref);
        memcpy(c->name, rt->msg_name, rt->msg_name_len);
        c->name_len = rt->msg_name_len;
        c->has_timeout = has_timeout;
        c->timeout_ms = *ms;
    }
    return 1;
}

static int dispatch_body(lua_State *L) {
    dispatch_params *p = lua_touserdata(L, SLOT_PARAMS);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    uint32_t ms;
    if (!cached_handler(L, rt, &ms) && !lookup_handler(L, rt, &ms))
        return 0;
    p->found = 1;
    uint32_t frame_ms = rt->ctx->frame_timeout_ms;
    if (luaspoa_budget_frame_over(&rt->budget, frame_ms)) {
        p->skipped = 1;
        lua_pushfstring(L, "not run: the frame used its time budget (%d ms, --lua-frame-timeout)", (int)frame_ms);
        result_error(L, "handler", NULL, lua_tostring(L, -1));
    }
    lua_pushvalue(L, SLOT_HANDLER);
    luaspoa_push_txn(L);
    luaspoa_push_msg(L);
    luaspoa_budget_start(&rt->budget, ms);
    lua_call(L, 2, 1);
    luaspoa_budget_stop(&rt->budget);
    luaspoa_encode_actions(L, SLOT_RESULT, "action table returned by handler");
    return 0;
}

/* After a failure: the handler's on_error actions, then --lua-error-var. */
static int on_error_body(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->handlers_ref);       /* SLOT_HANDLERS */
    lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    lua_rawget(L, SLOT_HANDLERS);                              /* SLOT_HANDLER */
    push_option(L, rt, "on_error");
    luaspoa_encode_actions(L, -1, "on_error actions");
    const luaspoa_ctx *ctx = rt->ctx;
    if (ctx->error_var) {
        int scope;
        const char *name;
        size_t name_len;
        char err[256];
        if (!luaspoa_parse_var(ctx, ctx->error_var, ctx->error_var_len, &scope, &name, &name_len, err, sizeof err))
            return luaL_error(L, "--lua-error-var: %s", err);
        spoa_value v = {.type = LUASPOA_T_BOOL, .v.i = 1};
        luaspoa_append(L, LUASPOA_ACTION_SET, scope, name, name_len, &v);
    }
    return 0;
}

/* Appends "\n(on_error: <error>)" to errbuf when the failure actions fail too. */
static void run_on_error(lua_State *L, luaspoa_ctx *ctx, size_t mark, char *errbuf, size_t errcap) {
    int base = lua_gettop(L);
    lua_pushcfunction(L, on_error_body);
    lua_pushnil(L); /* SLOT_PARAMS */
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        if (ctx->ack_rollback)
            ctx->ack_rollback(ctx->ud, mark);
        size_t used = errbuf ? strlen(errbuf) : 0;
        if (errbuf && used + 16 < errcap) {
            memcpy(errbuf + used, "\n(on_error: ", 12);
            luaspoa_copy_error(L, -1, errbuf + used + 12, errcap - used - 13);
            strcat(errbuf, ")");
        }
    }
    lua_settop(L, base);
}

void luaspoa_frame_begin(lua_State *L) {
    luaspoa_rt_get(L)->budget.frame_started = 0;
}

int luaspoa_dispatch(lua_State *L, luaspoa_ctx *ctx, const char *msg_name, size_t name_len,
                     const spoa_arg *args, int nargs, char *errbuf, size_t errcap) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    int base = lua_gettop(L);
    if (!lua_checkstack(L, 8)) {
        if (errbuf && errcap)
            strncpy(errbuf, "Lua stack overflow", errcap - 1), errbuf[errcap - 1] = '\0';
        return LUASPOA_ERROR;
    }
    rt->ctx = ctx;
    rt->msg_name = msg_name;
    rt->msg_name_len = name_len;
    rt->args = args;
    rt->nargs = nargs;
    rt->gen++;
    rt->active = 1;
    size_t mark = ctx->ack_mark ? ctx->ack_mark(ctx->ud) : 0;
    dispatch_params p = {0};
    lua_pushcfunction(L, luaspoa_msgh);
    lua_pushcfunction(L, dispatch_body);
    lua_pushlightuserdata(L, &p);
    int status = lua_pcall(L, 1, 0, base + 1);
    int timed_out = luaspoa_budget_stop(&rt->budget);
    rt->active = 0;
    rt->args = NULL;
    rt->nargs = 0;
    int result = p.found ? LUASPOA_OK : LUASPOA_NO_HANDLER;
    if (status != LUA_OK) {
        luaspoa_copy_error(L, -1, errbuf, errcap);
        lua_settop(L, base);
        if (ctx->ack_rollback)
            ctx->ack_rollback(ctx->ud, mark);
        run_on_error(L, ctx, mark, errbuf, errcap);
        result = timed_out || p.skipped ? LUASPOA_TIMEOUT : LUASPOA_ERROR;
    }
    lua_settop(L, base);
    return result;
}
