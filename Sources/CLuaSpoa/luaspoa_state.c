/* State creation: allocator, panic, sandboxed libraries, the spoa table,
 * registration, and loading the script inside a protected call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "luaspoa_internal.h"

/* ---- allocator ---------------------------------------------------------- */

static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    luaspoa_rt *rt = ud;
    /* When ptr is NULL, osize encodes the object type, not a size. */
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        rt->allocated -= old;
        return NULL;
    }
    if (rt->limit && nsize > old && rt->allocated - old + nsize > rt->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    rt->allocated = rt->allocated - old + nsize;
    if (rt->allocated > rt->peak)
        rt->peak = rt->allocated;
    return p;
}

/* ---- giving memory back ------------------------------------------------- */

/* A handler that built big strings leaves the state far above its usual size:
 * Lua frees the garbage only in a later GC cycle (an idle state has none), and
 * malloc keeps freed memory for reuse, so RSS stays up. Past this growth since
 * the last collection (and past twice the settled size, beyond what the
 * incremental GC reaches by itself), luaspoa_reclaim collects and trims. Each
 * reclaim needs that much new allocation first, which is its rate limit. */
#define RECLAIM_MIN_GROWTH ((size_t)32 << 20)

static int collect_body(lua_State *L) {
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

int luaspoa_reclaim(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    size_t growth = rt->settled > RECLAIM_MIN_GROWTH / 2 ? rt->settled * 2 : RECLAIM_MIN_GROWTH;
    if (rt->peak - rt->settled <= growth)
        return 0;
    /* Finalizers run Lua code: under the state's time budget, in a protected call. */
    luaspoa_budget_start(&rt->budget, rt->ctx->timeout_ms);
    lua_pushcfunction(L, collect_body);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        lua_pop(L, 1);
    luaspoa_budget_stop(&rt->budget);
    rt->settled = rt->peak = rt->allocated;
#ifdef __GLIBC__
    malloc_trim(0);   /* glibc: return free heap pages to the system */
#endif
    return 1;
}

/* ---- errors ------------------------------------------------------------- */

static int on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "luaspoa: PANIC: unprotected error in Lua: %s\n", msg ? msg : "(no message)");
    fflush(stderr);
    abort();
    return 0;
}

/* Message handler: turns any error object into "message\nstack traceback:...". */
int luaspoa_msgh(lua_State *L) {
    if (lua_tostring(L, 1) != NULL)
        lua_pushvalue(L, 1);
    else if (!luaL_callmeta(L, 1, "__tostring") || lua_type(L, -1) != LUA_TSTRING)
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    /* The message stays a Lua string (luaL_traceback's msg would stop at a NUL). */
    lua_pushliteral(L, "\n");
    luaL_traceback(L, L, NULL, 1);
    lua_concat(L, 3);
    return 1;
}

void luaspoa_copy_error(lua_State *L, int idx, char *buf, size_t cap) {
    if (buf == NULL || cap == 0)
        return;
    size_t len = 0;
    /* Only read strings: converting a number would allocate outside protection.
     * msgh always returns a string, and so do LUA_ERRMEM and LUA_ERRERR. */
    const char *msg = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
    if (msg == NULL) {
        msg = "(error object is not a string)";
        len = strlen(msg);
    }
    /* Callers read buf as a C string: a NUL inside the message becomes "\0" so the
     * rest of it is not lost. */
    size_t out = 0;
    for (size_t i = 0; i < len && out + 1 < cap; i++) {
        if (msg[i] != '\0') {
            buf[out++] = msg[i];
        } else if (out + 2 < cap) {
            buf[out++] = '\\';
            buf[out++] = '0';
        } else {
            break;
        }
    }
    buf[out] = '\0';
}

/* ---- logging ------------------------------------------------------------ */

void luaspoa_emit_log(lua_State *L, int level, const char *msg, size_t len) {
    luaspoa_ctx *ctx = luaspoa_rt_get(L)->ctx;
    if (ctx && ctx->log)
        ctx->log(ctx->ud, level, msg, len);
}

/* Logs the message at msg_idx with the fields table at msg_idx + 1 (if any);
 * more arguments are an error, not dropped. fn names the caller in errors. */
static int log_with_fields(lua_State *L, const char *fn, int level, int msg_idx) {
    int fields_idx = msg_idx + 1;
    if (lua_gettop(L) > fields_idx)
        return luaL_error(L, "%s: expected (%smessage [, fields]), got %d arguments", fn,
                          msg_idx > 1 ? "level, " : "", lua_gettop(L));
    if (!lua_isnoneornil(L, fields_idx) && !lua_istable(L, fields_idx))
        return luaL_error(L, "%s: fields must be a table of key = value, got %s", fn, luaL_typename(L, fields_idx));
    size_t len;
    const char *msg = luaL_tolstring(L, msg_idx, &len);
    if (level < 0)
        return 0; /* spoa.silent */
    luaspoa_log_field fields[LUASPOA_LOG_MAX_FIELDS];
    size_t n = 0;
    if (lua_istable(L, fields_idx)) {
        luaL_checkstack(L, 2 * LUASPOA_LOG_MAX_FIELDS + 4, "log fields");
        lua_pushnil(L);
        while (lua_next(L, fields_idx) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "%s: field names must be strings, got %s", fn, luaL_typename(L, -2));
            if (n == LUASPOA_LOG_MAX_FIELDS)
                return luaL_error(L, "%s: at most %d fields", fn, LUASPOA_LOG_MAX_FIELDS);
            int t = lua_type(L, -1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN && !luaL_getmetafield(L, -1, "__tostring"))
                return luaL_error(L, "%s: field '%s' is a %s (strings, numbers, booleans or values with "
                                  "__tostring)", fn, lua_tostring(L, -2), luaL_typename(L, -1));
            if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
                lua_pop(L, 1); /* the __tostring found above */
            fields[n].key = lua_tolstring(L, -2, &fields[n].key_len);
            fields[n].value = luaL_tolstring(L, -1, &fields[n].value_len);
            /* Keep key and text on the stack (they anchor the strings) and
             * continue lua_next from a copy of the key. */
            lua_remove(L, -2);
            lua_pushvalue(L, -2);
            n++;
        }
    }
    luaspoa_ctx *ctx = luaspoa_rt_get(L)->ctx;
    if (n > 0 && ctx && ctx->log_fields) {
        ctx->log_fields(ctx->ud, level, msg, len, fields, n);
    } else if (n > 0) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addlstring(&b, msg, len);
        for (size_t i = 0; i < n; i++) {
            luaL_addchar(&b, ' ');
            luaL_addlstring(&b, fields[i].key, fields[i].key_len);
            luaL_addchar(&b, '=');
            luaL_addlstring(&b, fields[i].value, fields[i].value_len);
        }
        luaL_pushresult(&b);
        msg = lua_tolstring(L, -1, &len);
        luaspoa_emit_log(L, level, msg, len);
    } else {
        luaspoa_emit_log(L, level, msg, len);
    }
    return 0;
}

static int l_log(lua_State *L) {
    lua_Integer level = luaL_checkinteger(L, 1);
    if (level > LUASPOA_LOG_DEBUG)
        return luaL_error(L, "spoa.log: invalid level %I (expected 0..7)", (LUAI_UACINT)level);
    return log_with_fields(L, "spoa.log", level < 0 ? -1 : (int)level, 2);
}

static int l_log_at(lua_State *L) {
    return log_with_fields(L, lua_tostring(L, lua_upvalueindex(2)), (int)lua_tointeger(L, lua_upvalueindex(1)), 1);
}

static int l_print(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b); /* pops the string pushed by luaL_tolstring */
        (void)s;
        (void)len;
    }
    luaL_pushresult(&b);
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    luaspoa_emit_log(L, LUASPOA_LOG_INFO, msg, len);
    return 0;
}

static void on_warn(void *ud, const char *msg, int tocont) {
    lua_State *L = ud;
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (rt->warnlen == 0 && !tocont && msg[0] == '@')
        return; /* control message ("@on", "@off") */
    size_t len = strlen(msg);
    size_t room = sizeof rt->warnbuf - rt->warnlen;
    if (len > room)
        len = room;
    memcpy(rt->warnbuf + rt->warnlen, msg, len);
    rt->warnlen += len;
    if (!tocont) {
        luaspoa_emit_log(L, LUASPOA_LOG_LUA_WARNING, rt->warnbuf, rt->warnlen);
        rt->warnlen = 0;
    }
}

void luaspoa_open_log(lua_State *L) {
    static const struct { const char *name; int level; } levels[] = {
        {"emerg", 0}, {"alert", 1}, {"crit", 2}, {"err", 3}, {"warning", 4},
        {"notice", 5}, {"info", 6}, {"debug", 7}, {"silent", -1},
    };
    static const struct { const char *name; int level; } shortcuts[] = {
        {"Debug", LUASPOA_LOG_DEBUG}, {"Info", LUASPOA_LOG_INFO},
        {"Warning", LUASPOA_LOG_WARNING}, {"Alert", LUASPOA_LOG_ALERT},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        lua_pushinteger(L, levels[i].level);
        lua_setfield(L, -2, levels[i].name);
    }
    for (size_t i = 0; i < sizeof shortcuts / sizeof shortcuts[0]; i++) {
        lua_pushinteger(L, shortcuts[i].level);
        lua_pushfstring(L, "spoa.%s", shortcuts[i].name);
        lua_pushcclosure(L, l_log_at, 2);
        lua_setfield(L, -2, shortcuts[i].name);
    }
    lua_pushcfunction(L, l_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
}

/* ---- registration ------------------------------------------------------- */

static void register_one(lua_State *L, luaspoa_rt *rt, int name_idx) {
    size_t len;
    if (lua_type(L, name_idx) != LUA_TSTRING)
        luaL_error(L, "spoa.register_message: message names must be strings, got %s",
                   luaL_typename(L, name_idx));
    const char *name = lua_tolstring(L, name_idx, &len);
    if (len == 0)
        luaL_error(L, "spoa.register_message: empty message name");
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->handlers_ref);
    lua_pushvalue(L, name_idx);
    if (lua_rawget(L, -2) != LUA_TNIL)
        luaL_error(L, "spoa.register_message: message '%s' is already registered", name);
    lua_pop(L, 1);
    lua_pushvalue(L, name_idx);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    rt->last_handler.name_len = 0; /* the dispatch's cache of the last handler */
}

/* Validates the options table at index 3 and stores a normalized copy as
 * opts[name] for every name registered by this call (names at idx, or the list). */
static void store_options(lua_State *L, luaspoa_rt *rt, int names_idx) {
    if (lua_isnoneornil(L, 3))
        return;
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_createtable(L, 0, 2);
    int opts = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(key, "timeout_ms") == 0 || strcmp(key, "deadline_ms") == 0) {
            int isint;
            lua_Integer ms = lua_tointegerx(L, -1, &isint);
            if (!isint || ms <= 0 || ms > 3600000)
                luaL_error(L, "spoa.register_message: %s must be an integer from 1 to 3600000", key);
        } else if (strcmp(key, "on_error") == 0) {
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                size_t len;
                int scope;
                const char *name, *why = NULL;
                char err[256];
                spoa_value v;
                if (lua_type(L, -2) != LUA_TSTRING)
                    luaL_error(L, "spoa.register_message: on_error keys must be \"scope.name\" strings");
                const char *var = lua_tolstring(L, -2, &len);
                if (!luaspoa_parse_var(rt->ctx, var, len, &scope, &name, &len, err, sizeof err))
                    luaL_error(L, "spoa.register_message: on_error: %s", err);
                if (luaspoa_tovalue(L, -1, &v, &why) == 0)
                    luaL_error(L, "spoa.register_message: on_error[\"%s\"]: %s", var, why);
                lua_pop(L, 1);
            }
        } else {
            luaL_error(L, "spoa.register_message: unknown option '%s' (expected timeout_ms, deadline_ms, on_error)", key);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, opts);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->opts_ref);
    if (lua_type(L, names_idx) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, names_idx);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, names_idx, i);
            lua_pushvalue(L, opts);
            lua_rawset(L, -3);
        }
    } else {
        lua_pushvalue(L, names_idx);
        lua_pushvalue(L, opts);
        lua_rawset(L, -3);
    }
    lua_pop(L, 2);
}

static int l_register_message(lua_State *L) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (!rt->loading && rt->ctx->worker_index == 0)
        return luaL_error(L, "spoa.register_message is not available in the background state");
    if (!rt->loading)
        return luaL_error(L, "spoa.register_message is only available while the script loads");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 1);
        if (n == 0)
            return luaL_error(L, "spoa.register_message: empty list of message names");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 1, i);
            register_one(L, rt, lua_gettop(L));
            lua_pop(L, 1);
        }
    } else {
        register_one(L, rt, 1);
    }
    store_options(L, rt, 1);
    return 0;
}

/* ---- state -------------------------------------------------------------- */

typedef struct script {
    const char *path, *source;   /* source NULL: read the file at path */
    size_t source_len;
} script;

/* Loads the script's bytes as luaL_loadfilex would load its file: named
 * "@path" (errors say path:line), a first line starting with '#' skipped but
 * counted. */
static int load_source(lua_State *L, const script *sc) {
    const char *p = sc->source;
    size_t len = sc->source_len;
    lua_pushfstring(L, "@%s", sc->path);
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3, len -= 3;   /* UTF-8 BOM */
    if (len > 0 && p[0] == '#') {
        const char *nl = memchr(p, '\n', len);
        len = nl ? len - (size_t)(nl - p) : 0;   /* keep the newline: line numbers stay */
        p = nl ? nl : p + len;
    }
    int status = luaL_loadbufferx(L, p, len, lua_tostring(L, -1), "t");
    lua_remove(L, -2);
    return status;
}

/* Protected body of luaspoa_newstate: libraries, the spoa table, the script. */
static int setup_body(lua_State *L) {
    const script *sc = lua_touserdata(L, 1);
    luaspoa_rt *rt = luaspoa_rt_get(L);
    if (rt->ctx->unsafe_libs)
        luaL_openlibs(L);
    else
        luaspoa_open_sandbox(L);
    luaspoa_budget_wrap_libs(L);
    luaspoa_open_finalizers(L);
    luaspoa_open_strlib(L);
    lua_setwarnf(L, on_warn, L);

    lua_newtable(L);
    rt->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushstring(L, sc->path);
    lua_setfield(L, LUA_REGISTRYINDEX, LUASPOA_SCRIPT_PATH_KEY);
    lua_newtable(L);
    rt->opts_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    luaspoa_open_msg(L);
    luaspoa_open_txn(L);

    lua_createtable(L, 0, 48);
    lua_pushcfunction(L, l_register_message);
    lua_setfield(L, -2, "register_message");
    lua_pushinteger(L, rt->ctx->worker_index);
    lua_setfield(L, -2, "worker");
    lua_pushinteger(L, rt->ctx->worker_count);
    lua_setfield(L, -2, "workers");
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, (lua_Integer)rt->ctx->generation);
    lua_setfield(L, -2, "generation");
    /* Where relative paths given to spoa.map/netset/geoip resolve from. */
    const char *slash = strrchr(sc->path, '/');
    if (slash != NULL)
        lua_pushlstring(L, sc->path, slash == sc->path ? 1 : (size_t)(slash - sc->path));
    else
        lua_pushliteral(L, ".");
    lua_setfield(L, -2, "script_dir");
    luaspoa_open_log(L);
    luaspoa_open_addr(L);
    luaspoa_open_values(L);
    luaspoa_open_time(L);
    luaspoa_open_shared(L);
    luaspoa_open_txstore(L);
    luaspoa_open_map(L);
    luaspoa_open_lifecycle(L);
    luaspoa_open_net(L);
    luaspoa_open_netset(L);
    luaspoa_open_hdrs(L);
    luaspoa_open_hash(L);
    luaspoa_open_wait(L);
    luaspoa_open_cres(L);
    luaspoa_open_crypto(L);
    luaspoa_open_re(L);
    luaspoa_open_json(L);
    luaspoa_open_jwt(L);
    luaspoa_open_geoip(L);
    luaspoa_open_metrics(L);
    luaspoa_open_http(L);
    luaspoa_open_redis(L);
    luaspoa_open_dns(L);
    luaspoa_open_tcp(L);
    lua_setglobal(L, "spoa");

    /* A load failure is returned, not raised: its message already holds
     * path:line (syntax) or the I/O error, and a traceback would only add noise. */
    if (sc->source == NULL ? luaL_loadfilex(L, sc->path, "t") != LUA_OK
                           : load_source(L, sc) != LUA_OK)
        return 1;
    /* A body or init function that never returns must not hang a start,
     * `luaspoa check`, or a reload (which would then never finish). */
    luaspoa_budget_start(&rt->budget, rt->ctx->load_timeout_ms);
    rt->loading = 1;
    lua_call(L, 0, 0);
    rt->loading = 0;
    luaspoa_run_inits(L);
    luaspoa_budget_stop(&rt->budget);
    return 0;
}

lua_State *luaspoa_newstate(luaspoa_ctx *ctx, const char *path, const char *source, size_t source_len,
                            size_t mem_limit, char *errbuf, size_t errcap) {
    script sc = {path, source, source_len};
    luaspoa_rt *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        snprintf(errbuf, errcap, "cannot allocate the Lua runtime");
        return NULL;
    }
    rt->ctx = ctx;
    rt->limit = mem_limit;
    rt->handlers_ref = LUA_NOREF;
    rt->opts_ref = LUA_NOREF;
#if LUA_VERSION_NUM >= 505
    lua_State *L = lua_newstate(rt_alloc, rt, 0);
#else
    lua_State *L = lua_newstate(rt_alloc, rt);
#endif
    if (L == NULL) {
        free(rt);
        snprintf(errbuf, errcap, "cannot create a Lua state (out of memory)");
        return NULL;
    }
    *(luaspoa_rt **)lua_getextraspace(L) = rt;
    luaspoa_budget_init(L, &rt->budget);
    lua_atpanic(L, on_panic);
    lua_pushcfunction(L, luaspoa_msgh);
    lua_pushcfunction(L, setup_body);
    lua_pushlightuserdata(L, &sc);
    int status = lua_pcall(L, 1, 1, 1);
    luaspoa_budget_stop(&rt->budget); /* the load budget, when the load failed */
    if (status != LUA_OK || !lua_isnil(L, -1)) {
        luaspoa_copy_error(L, -1, errbuf, errcap);
        luaspoa_close(L);
        return NULL;
    }
    lua_settop(L, 0);
    return L;
}

void luaspoa_close(lua_State *L) {
    if (L == NULL)
        return;
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_finalizers_closing(L);
    lua_close(L);
    luaspoa_budget_release(&rt->budget);
    /* Idle calls, and suspended ones whose frames were dropped at shutdown (their
     * coroutines went with the state). */
    while (rt->all_calls) {
        luaspoa_call *c = rt->all_calls;
        rt->all_calls = c->all_next;
        free(c);
    }
    free(rt);
}

size_t luaspoa_memory(lua_State *L) {
    return luaspoa_rt_get(L)->allocated;
}
