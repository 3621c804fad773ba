/* Handler calls and task runs as coroutines, so that they can wait: a waiting
 * function (luaspoa_wait.c) yields from C and the caller resumes the coroutine
 * later, on the same thread, with lua_resume.
 *
 * Coroutines are pooled: a call that ends is reset and kept for the next one,
 * so a handler that never waits allocates nothing (lua_newthread costs a
 * thread object and its stack). The body runs under lua_pcallk with the
 * traceback handler inside the coroutine: errors read exactly as under the old
 * lua_pcall, pending to-be-closed variables are closed by the unwinding, and
 * the coroutine itself ends normally, reusable as it is. */
#include <stdlib.h>

#include "luaspoa_internal.h"

/* Idle calls kept beyond this are released: a burst of waiting handlers must
 * not pin its coroutines' memory for ever. */
#define MAX_IDLE_CALLS 64

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) ((void)(from), lua_resetthread(co))
#endif

static int new_thread_body(lua_State *L) {
    luaspoa_call *c = lua_touserdata(L, 1);
    c->co = lua_newthread(L);
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0); /* a slot for msg.args while it waits: no allocation later */
    c->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

luaspoa_call *luaspoa_call_take(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_call *c = rt->free_calls;
    if (c != NULL) {
        rt->free_calls = c->next;
        rt->nfree_calls--;
        return c;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    /* lua_newthread raises on memory errors: protected. */
    lua_pushcfunction(L, new_thread_body);
    lua_pushlightuserdata(L, c);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        free(c);
        return NULL;
    }
    c->all_next = rt->all_calls;
    if (rt->all_calls)
        rt->all_calls->all_prev = c;
    rt->all_calls = c;
    return c;
}

void luaspoa_call_release(lua_State *L, luaspoa_call *c) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    lua_settop(c->co, 0);
    if (c->args_kept) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, c->args_ref);
        c->args_kept = 0;
    }
    if (rt->nfree_calls >= MAX_IDLE_CALLS) {
        luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
        luaL_unref(L, LUA_REGISTRYINDEX, c->args_ref);
        if (c->all_prev)
            c->all_prev->all_next = c->all_next;
        else
            rt->all_calls = c->all_next;
        if (c->all_next)
            c->all_next->all_prev = c->all_prev;
        free(c);
        return;
    }
    c->next = rt->free_calls;
    rt->free_calls = c;
    rt->nfree_calls++;
}

/* The body's status, or LUA_OK after a yield that ended well. */
static int call_main_k(lua_State *co, int status, lua_KContext k) {
    (void)k;
    if (status == LUA_YIELD)
        status = LUA_OK;
    lua_pushinteger(co, status);
    if (status != LUA_OK)
        lua_insert(co, -2); /* status, error */
    return status == LUA_OK ? 1 : 2;
}

/* The coroutine's function: luaspoa_msgh, body, param on the stack. */
static int call_main(lua_State *co) {
    return call_main_k(co, lua_pcallk(co, 1, 0, 1, 0, call_main_k), 0);
}

int luaspoa_call_start(lua_State *L, luaspoa_call *c, lua_CFunction body, char *errbuf, size_t errcap) {
    lua_State *co = c->co;
    lua_pushcfunction(co, call_main);
    lua_pushcfunction(co, luaspoa_msgh);
    lua_pushcfunction(co, body);
    lua_pushlightuserdata(co, c);
    return luaspoa_call_step(L, c, 3, errbuf, errcap);
}

int luaspoa_call_step(lua_State *L, luaspoa_call *c, int nargs, char *errbuf, size_t errcap) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_call *outer = rt->call; /* a spec's T.notify runs a call inside another */
    rt->call = c;
    lua_State *prev = luaspoa_budget_enter(&rt->budget, c->co);
    int nres = 0;
    int status = lua_resume(c->co, L, nargs, &nres);
    luaspoa_budget_leave(&rt->budget, prev);
    rt->call = outer;
    if (status == LUA_YIELD) {
        lua_pop(c->co, nres);
        return LUA_YIELD;
    }
    if (status == LUA_OK) {
        status = (int)lua_tointeger(c->co, -nres);
        if (status != LUA_OK)
            luaspoa_copy_error(c->co, -1, errbuf, errcap);
        lua_settop(c->co, 0);
        return status;
    }
    /* Raised outside the body's protection (memory, C stack): the coroutine is
     * dead; reset it for reuse. */
    luaspoa_copy_error(c->co, -1, errbuf, errcap);
    close_thread(c->co, L);
    lua_settop(c->co, 0);
    return status;
}

void luaspoa_call_close(lua_State *L, luaspoa_call *c) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_budget *b = &rt->budget;
    /* __close methods are script code: the state's time budget bounds them. */
    luaspoa_budget_start(b, c->task ? 0 : rt->ctx->timeout_ms);
    lua_State *prev = luaspoa_budget_enter(b, c->co);
    luaspoa_call *outer = rt->call;
    rt->call = c;
    int status = close_thread(c->co, L);
    rt->call = outer;
    luaspoa_budget_leave(b, prev);
    luaspoa_budget_stop(b);
    if (status != LUA_OK && lua_type(c->co, -1) == LUA_TSTRING) {
        size_t len;
        const char *msg = lua_tolstring(c->co, -1, &len);
        luaspoa_emit_log(L, LUASPOA_LOG_WARNING, msg, len);
    }
    lua_settop(c->co, 0);
}

luaspoa_wait *luaspoa_call_wait(luaspoa_call *call) {
    return &call->wait;
}

uint32_t luaspoa_call_deadline_ms(const luaspoa_call *call) {
    return call->deadline_ms;
}
