/* spoa.test, installed only by `luaspoa test` (luaspoa_run_spec): cases,
 * assertions, the test clock, and T.notify, which sends a real NOTIFY through
 * the server's path (Swift hooks) and reads the ACK back from its bytes, so a
 * spec also checks the wire types. */
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"
#include "luaspoa_process.h"

#define ACK_MT "luaspoa.TestAck"

static const luaspoa_test_hooks *hooks(lua_State *L) {
    const luaspoa_test_hooks *h = luaspoa_rt_get(L)->test;
    if (h == NULL)
        luaL_error(L, "spoa.test is only available under `luaspoa test`");
    return h;
}

/* ---- reading the ACK bytes ---------------------------------------------- */

typedef struct reader {
    const unsigned char *p, *end;
} reader;

static int read_varint(reader *r, uint64_t *out) {
    if (r->p >= r->end)
        return 0;
    uint64_t v = *r->p++;
    if (v < 240) {
        *out = v;
        return 1;
    }
    for (unsigned shift = 4; r->p < r->end && shift <= 60; shift += 7) {
        unsigned char b = *r->p++;
        v += (uint64_t)b << shift;
        if (b < 128) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static int read_bytes(reader *r, const char **ptr, size_t *len) {
    uint64_t n;
    if (!read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return 0;
    *ptr = (const char *)r->p;
    *len = (size_t)n;
    r->p += n;
    return 1;
}

/* Pushes the typed value at r as (value, type name); 0 if malformed. */
static int push_typed(lua_State *L, reader *r) {
    if (r->p >= r->end)
        return 0;
    unsigned char tb = *r->p++;
    int type = tb & 0x0F;
    uint64_t u;
    const char *s;
    size_t len;
    switch (type) {
    case LUASPOA_T_NULL: lua_pushnil(L); break;
    case LUASPOA_T_BOOL: lua_pushboolean(L, (tb & 0xF0) == 0x10); break;
    case LUASPOA_T_INT32: case LUASPOA_T_UINT32: case LUASPOA_T_INT64: case LUASPOA_T_UINT64:
        if (!read_varint(r, &u))
            return 0;
        if (type == LUASPOA_T_INT32)
            lua_pushinteger(L, (int32_t)(uint32_t)u);
        else if (type == LUASPOA_T_UINT32)
            lua_pushinteger(L, (uint32_t)u);
        else
            lua_pushinteger(L, (lua_Integer)u);
        break;
    case LUASPOA_T_IPV4: case LUASPOA_T_IPV6: {
        size_t n = type == LUASPOA_T_IPV4 ? 4 : 16;
        if ((size_t)(r->end - r->p) < n)
            return 0;
        luaspoa_push_addr(L, type == LUASPOA_T_IPV4 ? 4 : 6, r->p);
        r->p += n;
        break;
    }
    case LUASPOA_T_STRING: case LUASPOA_T_BINARY:
        if (!read_bytes(r, &s, &len))
            return 0;
        lua_pushlstring(L, s, len);
        break;
    default:
        return 0;
    }
    lua_pushstring(L, luaspoa_type_name(type));
    return 1;
}

/* Pushes the array of { action=, var=, value=, type= } decoded from the payload. */
static void push_actions(lua_State *L, const char *bytes, size_t len) {
    reader r = {(const unsigned char *)bytes, (const unsigned char *)bytes + len};
    lua_newtable(L);
    for (lua_Integer i = 1; r.p < r.end; i++) {
        if (r.end - r.p < 3)
            luaL_error(L, "T.notify: truncated ACK action");
        int kind = r.p[0], scope = r.p[2];
        r.p += 3;
        const char *name;
        size_t name_len;
        if (scope >= LUASPOA_SCOPES || !read_bytes(&r, &name, &name_len))
            luaL_error(L, "T.notify: malformed ACK action");
        lua_createtable(L, 0, 4);
        lua_pushstring(L, kind == LUASPOA_ACTION_SET ? "set-var" : "unset-var");
        lua_setfield(L, -2, "action");
        lua_pushfstring(L, "%s.", luaspoa_scope_names[scope]);
        lua_pushlstring(L, name, name_len);
        lua_concat(L, 2);
        lua_setfield(L, -2, "var");
        if (kind == LUASPOA_ACTION_SET) {
            if (!push_typed(L, &r))
                luaL_error(L, "T.notify: malformed value in the ACK");
            lua_setfield(L, -3, "type");
            lua_setfield(L, -2, "value");
        }
        lua_rawseti(L, -2, i);
    }
}

/* ---- the ack object ------------------------------------------------------ */

/* ack:get(var) -> value, type of the last action on var (nil, "unset" / nil). */
static int ack_get(lua_State *L) {
    luaL_checkudata(L, 1, ACK_MT);
    const char *var = luaL_checkstring(L, 2);
    lua_getiuservalue(L, 1, 1);
    for (lua_Integer i = (lua_Integer)lua_rawlen(L, -1); i >= 1; i--) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "var");
        int match = strcmp(lua_tostring(L, -1), var) == 0;
        lua_pop(L, 1);
        if (match) {
            lua_getfield(L, -1, "value");
            if (lua_getfield(L, -2, "type") == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushliteral(L, "unset");
            }
            return 2;
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return 1;
}

static int ack_actions(lua_State *L) {
    luaL_checkudata(L, 1, ACK_MT);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int ack_index(lua_State *L) {
    luaL_checkudata(L, 1, ACK_MT);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "error") == 0) {
        lua_getiuservalue(L, 1, 2);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, key);
    return 1;
}

/* One line per action, as `luaspoa eval` prints them. */
static int ack_tostring(lua_State *L) {
    luaL_checkudata(L, 1, ACK_MT);
    lua_settop(L, 1);
    lua_getiuservalue(L, 1, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int t = lua_gettop(L);
        lua_getfield(L, t, "action");
        lua_getfield(L, t, "var");
        if (lua_getfield(L, t, "type") == LUA_TNIL) {
            lua_pushfstring(L, "%s(%s)", lua_tostring(L, t + 1), lua_tostring(L, t + 2));
        } else {
            lua_getfield(L, t, "value");
            const char *q = strcmp(lua_tostring(L, t + 3), "string") == 0 ? "\"" : "";
            const char *v = luaL_tolstring(L, t + 4, NULL);
            lua_pushfstring(L, "%s(%s) %s:%s%s%s", lua_tostring(L, t + 1), lua_tostring(L, t + 2),
                            lua_tostring(L, t + 3), q, v, q);
        }
        if (i < n)
            lua_pushliteral(L, "\n"), lua_concat(L, 2);
        lua_replace(L, t);
        lua_settop(L, t);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- T.notify ------------------------------------------------------------ */

/* Converts one (name at -2, value at -1) pair into args[i]; pops nothing. */
static void fill_arg(lua_State *L, spoa_arg *arg) {
    size_t len = 0;
    arg->name = lua_isnil(L, -2) ? "" : luaL_checklstring(L, -2, &len);
    arg->name_len = len;
    const char *why = NULL;
    if (lua_isnil(L, -1)) {
        arg->value.type = LUASPOA_T_NULL;
    } else if (luaspoa_tovalue(L, -1, &arg->value, &why) != LUASPOA_ACTION_SET) {
        luaL_error(L, "T.notify: argument '%s': %s", arg->name, why ? why : "spoa.unset is not a value");
    }
}

static int compare_names(const void *a, const void *b) {
    return strcmp(((const spoa_arg *)a)->name, ((const spoa_arg *)b)->name);
}

/* T.notify(name, args [, opts]): args is { name = value } (sent in name order)
 * or { {name, value}, ... } (sent in that order). */
static int l_notify(lua_State *L) {
    const luaspoa_test_hooks *h = hooks(L);
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    lua_settop(L, 3);
    if (lua_isnil(L, 2))
        lua_newtable(L), lua_replace(L, 2);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2) != 0)
        n++, lua_pop(L, 1);
    if (n > 255)
        return luaL_error(L, "T.notify: at most 255 arguments");
    spoa_arg *args = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *args, 0);
    lua_Integer ordered = (lua_Integer)lua_rawlen(L, 2);
    if (ordered > 0 && ordered == n) {
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 2, i + 1);
            luaL_argexpected(L, lua_istable(L, -1), 2, "{ {name, value}, ... }");
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            fill_arg(L, &args[i]);  /* strings stay anchored in the args table */
            lua_pop(L, 3);
        }
    } else {
        int i = 0;
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "T.notify: mix of named and positional arguments; use { {name, value}, ... }");
            fill_arg(L, &args[i++]);
            lua_pop(L, 1);
        }
        qsort(args, (size_t)n, sizeof *args, compare_names);
    }
    uint64_t stream_id = 1, frame_id = 1;
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "stream_id") != LUA_TNIL)
            stream_id = (uint64_t)luaL_checkinteger(L, -1);
        if (lua_getfield(L, 3, "frame_id") != LUA_TNIL)
            frame_id = (uint64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    size_t ack_len = 0, err_len = 0;
    const char *err = NULL;
    const char *ack = h->notify(h->ud, name, name_len, args, n, stream_id, frame_id, &ack_len, &err, &err_len);
    if (ack == NULL)
        return luaL_error(L, "T.notify: %s", err ? err : "the NOTIFY could not be handled");
    lua_pushlstring(L, ack, ack_len);      /* copy before any other call reuses it */
    if (err)
        lua_pushlstring(L, err, err_len);
    else
        lua_pushnil(L);
    lua_newuserdatauv(L, 1, 2);
    luaL_setmetatable(L, ACK_MT);
    size_t len;
    const char *bytes = lua_tolstring(L, -3, &len);
    push_actions(L, bytes, len);
    lua_setiuservalue(L, -2, 1);
    lua_insert(L, -2);
    lua_setiuservalue(L, -2, 2);
    return 1;
}

/* ---- cases, assertions, logs, clock -------------------------------------- */

static int l_case(lua_State *L) {
    const luaspoa_test_hooks *h = hooks(L);
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaspoa_shared_reset_all();   /* each case starts with empty shared dicts */
    luaspoa_clock_real();
    luaspoa_test_stubs_reset(L);
    if (h->case_started)
        h->case_started(h->ud);
    lua_pushcfunction(L, luaspoa_msgh);
    lua_pushvalue(L, 2);
    int status = lua_pcall(L, 0, 0, -2);
    size_t err_len = 0;
    const char *err = status == LUA_OK ? NULL : lua_tolstring(L, -1, &err_len);
    h->report(h->ud, status == LUA_OK, name, name_len, err, err_len);
    return 0;
}

/* Pushes "[key]" (or ".key" for identifier-like strings) for a diff path. */
static void push_key(lua_State *L, int k) {
    if (lua_type(L, k) == LUA_TSTRING) {
        const char *s = lua_tostring(L, k);
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
        if (n > 0 && s[n] == '\0' && !(s[0] >= '0' && s[0] <= '9'))
            lua_pushfstring(L, ".%s", s);
        else
            lua_pushfstring(L, "[\"%s\"]", s);
    } else {
        lua_pushfstring(L, "[%s]", luaL_tolstring(L, k, NULL));
        lua_remove(L, -2);
    }
}

/* 1 if got and want are equal: equal values (== with __eq), or tables whose keys
 * and values are deeply equal. Otherwise pushes the path of the first difference,
 * then the got and want values found there, and returns 0. Depth is bounded so
 * cyclic tables end (they compare by identity past it). */
static int deep_equal(lua_State *L, int got, int want, int depth) {
    if (lua_compare(L, got, want, LUA_OPEQ))
        return 1;
    if (!lua_istable(L, got) || !lua_istable(L, want) || depth > 32) {
        lua_pushliteral(L, "");
        lua_pushvalue(L, got);
        lua_pushvalue(L, want);
        return 0;
    }
    luaL_checkstack(L, 8, "T.eq: tables nested too deep");
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: every key of got; pass 1: keys of want missing from got */
        int from = pass == 0 ? got : want, other = pass == 0 ? want : got;
        lua_pushnil(L);
        while (lua_next(L, from) != 0) {
            int k = lua_gettop(L) - 1;
            lua_pushvalue(L, k);
            lua_rawget(L, other);
            if (pass == 1 && !lua_isnil(L, -1)) {
                lua_pop(L, 2);
                continue;
            }
            int g = pass == 0 ? k + 1 : k + 2, w = pass == 0 ? k + 2 : k + 1;
            if (!deep_equal(L, g, w, depth + 1)) {
                /* stack: k, v1, v2, path, got, want -> path', got, want */
                push_key(L, k);
                lua_pushvalue(L, -4);
                lua_concat(L, 2);
                lua_replace(L, -4);
                lua_rotate(L, k, -3);
                lua_settop(L, k + 2);
                return 0;
            }
            lua_pop(L, 2);
        }
    }
    return 1;
}

static int l_eq(lua_State *L) {
    lua_settop(L, 3);
    if (deep_equal(L, 1, 2, 0))
        return 0;
    /* 4: path of the difference ("" at the top), 5: got there, 6: want there */
    luaL_where(L, 1);
    const char *got = luaL_tolstring(L, 5, NULL);
    const char *want = luaL_tolstring(L, 6, NULL);
    const char *path = lua_tostring(L, 4);
    lua_pushfstring(L, "%s%s%s%s%s%sexpected %s (%s), got %s (%s)", lua_tostring(L, 7),
                    lua_isnil(L, 3) ? "" : luaL_tolstring(L, 3, NULL), lua_isnil(L, 3) ? "" : ": ",
                    *path ? "at " : "", path, *path ? ": " : "",
                    want, luaL_typename(L, 6), got, luaL_typename(L, 5));
    return lua_error(L);
}

static int l_ok(lua_State *L) {
    if (lua_toboolean(L, 1))
        return 0;
    luaL_where(L, 1);
    lua_pushfstring(L, "%s%s", lua_tostring(L, -1),
                    lua_isnoneornil(L, 2) ? "expected a true value" : luaL_tolstring(L, 2, NULL));
    return lua_error(L);
}

static int l_logs(lua_State *L) {
    const luaspoa_test_hooks *h = hooks(L);
    lua_newtable(L);
    size_t len;
    const char *line;
    for (size_t i = 0; (line = h->log_line(h->ud, i, &len)) != NULL; i++) {
        lua_pushlstring(L, line, len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* T.run_task(n): the script's n-th task (registration order) runs once, here
 * and now, waiting as the background thread lets it; its error fails the case. */
static int l_run_task(lua_State *L) {
    const luaspoa_test_hooks *h = hooks(L);
    lua_Integer n = luaL_checkinteger(L, 1);
    int count = luaspoa_task_count(L);
    if (n < 1 || n > count)
        return luaL_error(L, "T.run_task: no task %I (the script registered %d)", n, count);
    size_t len = 0;
    const char *err = h->run_task(h->ud, (int)n - 1, &len);
    if (err == NULL)
        return 0;
    lua_pushfstring(L, "T.run_task: task %I: ", n);
    lua_pushlstring(L, err, len);
    lua_concat(L, 2);
    return lua_error(L);
}

static int l_clock_set(lua_State *L) {
    luaspoa_clock_set_ms(luaL_checkinteger(L, 1));
    return 0;
}

static int l_clock_advance(lua_State *L) {
    if (!luaspoa_clock_is_frozen())
        return luaL_error(L, "T.clock.advance_ms: call T.clock.set_ms first");
    luaspoa_clock_advance_ms(luaL_checkinteger(L, 1));
    return 0;
}

static int spec_body(lua_State *L) {
    const char *path = lua_touserdata(L, 1);
    static const luaL_Reg ack_methods[] = {
        {"get", ack_get}, {"actions", ack_actions}, {"__index", ack_index},
        {"__tostring", ack_tostring}, {NULL, NULL},
    };
    luaL_newmetatable(L, ACK_MT);
    luaL_setfuncs(L, ack_methods, 0);
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"case", l_case}, {"notify", l_notify}, {"eq", l_eq}, {"ok", l_ok}, {"logs", l_logs},
        {"run_task", l_run_task}, {NULL, NULL},
    };
    static const luaL_Reg clock[] = {{"set_ms", l_clock_set}, {"advance_ms", l_clock_advance}, {NULL, NULL}};
    lua_getglobal(L, "spoa");
    luaL_newlib(L, fns);
    luaspoa_open_test_stubs(L);
    luaL_newlib(L, clock);
    lua_setfield(L, -2, "clock");
    lua_setfield(L, -2, "test");
    lua_pop(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}

int luaspoa_run_spec(lua_State *L, const char *path, const luaspoa_test_hooks *h, char *errbuf, size_t errcap) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    int base = lua_gettop(L);
    rt->test = h;
    lua_pushcfunction(L, luaspoa_msgh);
    lua_pushcfunction(L, spec_body);
    lua_pushlightuserdata(L, (void *)path);
    int status = lua_pcall(L, 1, 0, base + 1);
    if (status != LUA_OK)
        luaspoa_copy_error(L, -1, errbuf, errcap);
    rt->test = NULL;
    luaspoa_clock_real();
    luaspoa_test_stubs_reset(L);
    lua_settop(L, base);
    return status == LUA_OK ? 0 : -1;
}
