/* luaspoa_dispatch: one protected call per message, in a pooled coroutine
 * (luaspoa_calls.c) so that it can wait, with rollback of that message's
 * actions on any error, and encoding of a returned action table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"

enum { SLOT_PARAMS = 1, SLOT_HANDLERS, SLOT_HANDLER, SLOT_RESULT };

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
static int cached_handler(lua_State *L, luaspoa_rt *rt, luaspoa_call *call) {
    luaspoa_handler_cache *c = &rt->last_handler;
    if (c->name_len != rt->msg_name_len || c->name_len == 0 ||
        memcmp(c->name, rt->msg_name, c->name_len) != 0)
        return 0;
    lua_pushnil(L); /* SLOT_HANDLERS */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    call->limit_ms = c->has_timeout ? c->timeout_ms : rt->ctx->timeout_ms;
    call->deadline_ms = c->has_deadline ? c->deadline_ms : rt->ctx->deadline_ms;
    return 1;
}

/* The handler's integer option `field`, or `fallback`; *has: it has its own. */
static uint32_t integer_option(lua_State *L, luaspoa_rt *rt, const char *field, uint32_t fallback, int *has) {
    push_option(L, rt, field);
    *has = lua_isinteger(L, -1);
    uint32_t value = *has ? (uint32_t)lua_tointeger(L, -1) : fallback;
    lua_pop(L, 1);
    return value;
}

static int lookup_handler(lua_State *L, luaspoa_rt *rt, luaspoa_call *call) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->handlers_ref);
    lua_pushlstring(L, rt->msg_name, rt->msg_name_len);
    if (lua_rawget(L, SLOT_HANDLERS) != LUA_TFUNCTION)
        return 0;
    int has_timeout, has_deadline;
    call->limit_ms = integer_option(L, rt, "timeout_ms", rt->ctx->timeout_ms, &has_timeout);
    call->deadline_ms = integer_option(L, rt, "deadline_ms", rt->ctx->deadline_ms, &has_deadline);
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
        c->timeout_ms = call->limit_ms;
        c->has_deadline = has_deadline;
        c->deadline_ms = call->deadline_ms;
    }
    return 1;
}

/* After the handler returned, maybe after waits. */
static int dispatch_done(lua_State *L, int status, lua_KContext k) {
    (void)status;
    (void)k;
    luaspoa_budget_stop(&luaspoa_rt_get(L)->budget);
    luaspoa_encode_actions(L, SLOT_RESULT, "action table returned by handler");
    return 0;
}

/* Runs in the call's coroutine. */
static int dispatch_body(lua_State *L) {
    luaspoa_call *call = lua_touserdata(L, SLOT_PARAMS);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (!cached_handler(L, rt, call) && !lookup_handler(L, rt, call))
        return 0;
    call->found = 1;
    uint32_t frame_ms = rt->ctx->frame_timeout_ms;
    if (luaspoa_budget_frame_over(&rt->budget, frame_ms)) {
        call->skipped = 1;
        lua_pushfstring(L, "not run: the frame used its time budget (%d ms, --lua-frame-timeout)", (int)frame_ms);
        result_error(L, "handler", NULL, lua_tostring(L, -1));
    }
    lua_pushvalue(L, SLOT_HANDLER);
    luaspoa_push_txn(L);
    luaspoa_push_msg(L);
    call->used_ns = 0;
    luaspoa_budget_start(&rt->budget, call->limit_ms);
    lua_callk(L, 2, 1, 0, dispatch_done);
    return dispatch_done(L, LUA_OK, 0);
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

/* Points the state at the message a call works on (at each of its parts). */
static void enter_message(luaspoa_rt *rt, luaspoa_ctx *ctx, const char *msg_name, size_t name_len,
                          const spoa_arg *args, int nargs, luaspoa_call *call) {
    rt->ctx = ctx;
    rt->msg_name = msg_name;
    rt->msg_name_len = name_len;
    rt->args = args;
    rt->nargs = nargs;
    rt->gen = call->gen;
    rt->active = 1;
}

static void leave_message(luaspoa_rt *rt) {
    rt->active = 0;
    rt->args = NULL;
    rt->nargs = 0;
}

/* After a part of a call ran: suspended, or its result (rollback and on_error
 * after a failure); the call goes back to the pool unless it waits. */
static int finish_part(lua_State *L, luaspoa_ctx *ctx, luaspoa_call *call, int status,
                       char *errbuf, size_t errcap, luaspoa_call **waiting) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    int base = lua_gettop(L);
    if (status == LUA_YIELD) {
        call->used_ns += luaspoa_budget_pause(&rt->budget);
        /* msg.args is cached for one call at a time: keep this call's table, so
         * the handler finds the same table (and its own changes) after the wait. */
        if (rt->args_gen == call->gen) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, rt->args_ref);
            lua_rawseti(L, LUA_REGISTRYINDEX, call->args_ref);
            call->args_kept = 1;
        }
        leave_message(rt);
        *waiting = call;
        return LUASPOA_WAITING;
    }
    int timed_out = luaspoa_budget_stop(&rt->budget);
    leave_message(rt);
    int result = call->found ? LUASPOA_OK : LUASPOA_NO_HANDLER;
    if (status != LUA_OK) {
        if (ctx->ack_rollback)
            ctx->ack_rollback(ctx->ud, call->mark);
        run_on_error(L, ctx, call->mark, errbuf, errcap);
        result = timed_out || call->skipped ? LUASPOA_TIMEOUT : LUASPOA_ERROR;
    }
    luaspoa_call_release(L, call);
    lua_settop(L, base);
    return result;
}

int luaspoa_dispatch(lua_State *L, luaspoa_ctx *ctx, const char *msg_name, size_t name_len,
                     const spoa_arg *args, int nargs, char *errbuf, size_t errcap, luaspoa_call **waiting) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_call *call = lua_checkstack(L, 8) ? luaspoa_call_take(L) : NULL;
    if (call == NULL) {
        if (errbuf && errcap)
            strncpy(errbuf, "not enough memory for the handler's coroutine", errcap - 1), errbuf[errcap - 1] = '\0';
        return LUASPOA_ERROR;
    }
    call->task = 0;
    call->found = call->skipped = 0;
    call->gen = ++rt->gens;
    call->mark = ctx->ack_mark ? ctx->ack_mark(ctx->ud) : 0;
    rt->can_wait = waiting != NULL;
    enter_message(rt, ctx, msg_name, name_len, args, nargs, call);
    int status = luaspoa_call_start(L, call, dispatch_body, errbuf, errcap);
    return finish_part(L, ctx, call, status, errbuf, errcap, waiting);
}

/* Pushes a waiting function's results (nil, error on failure) and goes on. */
int luaspoa_resume(lua_State *L, luaspoa_ctx *ctx, luaspoa_call *call, const char *msg_name, size_t name_len,
                   const spoa_arg *args, int nargs, char *errbuf, size_t errcap, luaspoa_call **waiting) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    rt->can_wait = waiting != NULL;
    if (call->task)
        return luaspoa_task_resume(L, call, errbuf, errcap, waiting);
    enter_message(rt, ctx, msg_name, name_len, args, nargs, call);
    if (call->args_kept) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, call->args_ref);
        lua_rawseti(L, LUA_REGISTRYINDEX, rt->args_ref);
        rt->args_gen = call->gen;
    }
    luaspoa_budget_part(&rt->budget, call->limit_ms, call->used_ns);
    int status = luaspoa_call_step(L, call, 0, errbuf, errcap);
    return finish_part(L, ctx, call, status, errbuf, errcap, waiting);
}

/* "file:line" of the innermost Lua function of a suspended coroutine. */
static void wait_location(lua_State *co, char *buf, size_t cap) {
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 0; lua_getstack(co, level, &ar); level++) {
        if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, cap, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

int luaspoa_abandon(lua_State *L, luaspoa_ctx *ctx, luaspoa_call *call, const char *msg_name, size_t name_len,
                    uint32_t deadline_ms, char *errbuf, size_t errcap) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    char where[LUA_IDSIZE + 24];
    wait_location(call->co, where, sizeof where);
    /* __close methods may use txn: they run as a part of the call. */
    enter_message(rt, ctx, msg_name, name_len, NULL, 0, call);
    luaspoa_call_close(L, call);
    leave_message(rt);
    int result = LUASPOA_OK;
    if (deadline_ms > 0 && !call->task) {
        if (errbuf && errcap)
            snprintf(errbuf, errcap, "%sdeadline exceeded (%u ms, deadline_ms or --lua-deadline)", where,
                     (unsigned)deadline_ms);
        if (ctx->ack_rollback)
            ctx->ack_rollback(ctx->ud, call->mark);
        run_on_error(L, ctx, call->mark, errbuf, errcap);
        result = LUASPOA_DEADLINE;
    }
    luaspoa_call_release(L, call);
    return result;
}
