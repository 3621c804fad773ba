/* Waiting: spoa.sleep(ms), spoa.yield(), and luaspoa_wait_yield, the one way a
 * Lua function waits. It writes what to wait for into the running call's
 * luaspoa_wait and yields from C; the caller (LuaWaits in Swift) turns that
 * into an event-loop operation and resumes the coroutine with the result.
 * A new waiting function is a C function that checks its arguments, fills a
 * luaspoa_wait and returns luaspoa_wait_yield(...), plus its case in LuaWaits. */
#include "luaspoa_internal.h"

/* After the resume: nil, error for a failed operation, else push's results. */
static int wait_resumed(lua_State *L, int status, lua_KContext k) {
    (void)status;
    luaspoa_call *c = luaspoa_rt_get(L)->call;
    luaspoa_wait_push push = (luaspoa_wait_push)k;
    if (c->wait.error != NULL) {
        lua_pushnil(L);
        lua_pushlstring(L, c->wait.error, c->wait.error_len);
        return 2;
    }
    return push ? push(L, &c->wait) : 0;
}

/* After the resume of a stubbed call: the stub's results, left on the stack. */
static int stub_resumed(lua_State *L, int status, lua_KContext nresults) {
    (void)L;
    (void)status;
    return (int)nresults;
}

int luaspoa_wait_yield(lua_State *L, const char *fn, const luaspoa_wait *w, luaspoa_wait_push push) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (rt->loading || rt->in_init)
        return luaL_error(L, "%s: cannot wait while the script loads", fn);
    luaspoa_call *c = rt->call;
    if (c == NULL || !rt->can_wait)
        return luaL_error(L, "%s: cannot wait here (only handlers and background tasks wait)", fn);
    if (c->co != L)
        return luaL_error(L, "%s: cannot wait inside a coroutine the script made", fn);
    if (!lua_isyieldable(L))
        return luaL_error(L, "%s: cannot wait inside a function called from C "
                          "(string.gsub, table.sort, a __gc or __close method, ...)", fn);
    if (rt->test != NULL) {
        /* A spec's stub answers at once; the call still waits one turn, as a
         * real one does, so the handler runs the same way. */
        int n = luaspoa_test_stub(L, w);
        if (n >= 0) {
            c->wait = (luaspoa_wait){.kind = LUASPOA_WAIT_YIELD};
            return lua_yieldk(L, 0, (lua_KContext)n, stub_resumed);
        }
    }
    c->wait = *w;
    c->wait.error = NULL;
    c->wait.error_len = 0;
    c->wait.values = NULL;
    c->wait.nvalues = 0;
    c->wait.data = NULL;
    c->wait.data_len = 0;
    return lua_yieldk(L, 0, (lua_KContext)push, wait_resumed);
}

/* Pushes the value at *at and its children; false on a malformed tree (a bug
 * of the Swift side, reported rather than trusted). */
static int push_value(lua_State *L, const luaspoa_wait *w, size_t *at, int depth) {
    if (*at >= w->nvalues || depth > 64)
        return 0;
    const luaspoa_wait_value *v = &w->values[(*at)++];
    luaL_checkstack(L, 3, "spoa: result too deep");
    switch (v->type) {
    case LUASPOA_WV_INT:
        lua_pushinteger(L, (lua_Integer)v->i);
        return 1;
    case LUASPOA_WV_BOOL:
        lua_pushboolean(L, v->i != 0);
        return 1;
    case LUASPOA_WV_STR:
    case LUASPOA_WV_ADDR:
        if (v->i < 0 || (size_t)v->i > w->data_len || v->len > w->data_len - (size_t)v->i)
            return 0;
        if (v->type == LUASPOA_WV_STR)
            lua_pushlstring(L, w->data + v->i, v->len);
        else if (v->len == 4 || v->len == 16)
            luaspoa_push_addr(L, v->len == 4 ? 4 : 6, (const uint8_t *)w->data + v->i);
        else
            return 0;
        return 1;
    case LUASPOA_WV_ARRAY:
        lua_createtable(L, v->i > 0 && v->i < 1024 ? (int)v->i : 0, 0);
        for (int64_t k = 1; k <= v->i; k++) {
            if (!push_value(L, w, at, depth + 1))
                return 0;
            lua_rawseti(L, -2, k);
        }
        return 1;
    case LUASPOA_WV_MAP:
        lua_createtable(L, 0, v->i > 0 && v->i < 1024 ? (int)v->i : 0);
        for (int64_t k = 0; k < v->i; k++) {
            if (!push_value(L, w, at, depth + 1) || !push_value(L, w, at, depth + 1))
                return 0;
            if (lua_isnil(L, -2)) { /* a nil key cannot be stored */
                lua_pop(L, 2);
                continue;
            }
            lua_rawset(L, -3);
        }
        return 1;
    default:
        lua_pushnil(L);
        return 1;
    }
}

int luaspoa_wait_push_values(lua_State *L, const luaspoa_wait *w) {
    if (w->nvalues == 0) {
        lua_pushnil(L);
        return 1;
    }
    size_t at = 0;
    int top = lua_gettop(L);
    if (!push_value(L, w, &at, 0)) {
        lua_settop(L, top);
        lua_pushnil(L);
        lua_pushliteral(L, "malformed result");
        return 2;
    }
    return 1;
}

/* Up to one hour: the deadline ends any wait long before. */
#define MAX_SLEEP_MS 3600000

static int l_sleep(lua_State *L) {
    lua_Number ms = luaL_checknumber(L, 1);
    if (!(ms >= 0 && ms <= MAX_SLEEP_MS))
        return luaL_error(L, "spoa.sleep: milliseconds must be from 0 to %d", MAX_SLEEP_MS);
    luaspoa_wait w = {.kind = LUASPOA_WAIT_SLEEP, .ms = (int64_t)ms};
    if ((lua_Number)w.ms < ms)
        w.ms++; /* never shorter than asked */
    return luaspoa_wait_yield(L, "spoa.sleep", &w, NULL);
}

static int l_yield(lua_State *L) {
    luaspoa_wait w = {.kind = LUASPOA_WAIT_YIELD};
    return luaspoa_wait_yield(L, "spoa.yield", &w, NULL);
}

void luaspoa_open_wait(lua_State *L) {
    static const luaL_Reg fns[] = {{"sleep", l_sleep}, {"yield", l_yield}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
