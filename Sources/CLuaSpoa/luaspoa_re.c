/* spoa.re: PCRE2 regular expressions (8-bit, JIT-compiled where available).
 *
 * Lua patterns cannot alternate: `(bot|crawler|spider)` needs a regex. A
 * backtracking engine can run for ages on a hostile subject (`(a+)+$`), and
 * the budget hook cannot interrupt a C call, so every match runs under one
 * process-wide match context: at most RE_MATCH_LIMIT backtracking steps,
 * RE_DEPTH_LIMIT nested backtracks and RE_HEAP_LIMIT_KIB of heap (the
 * interpreter; JIT code is bounded by the match limit and its 32 KiB stack).
 * Past a limit the call returns nil, "regex match limit exceeded" (or depth,
 * heap, JIT stack). gsub polls the budget between matches.
 *
 * A regex is a userdata owning its pcre2_code; match data is per call (gsub's
 * replacement function may reuse the same regex) and owned by a luaspoa_cres
 * so a Lua error in between frees it. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "luaspoa_internal.h"

#define RE_CLASS "spoa.re"
#define RE_MATCH_LIMIT 1000000
#define RE_DEPTH_LIMIT 10000
#define RE_HEAP_LIMIT_KIB 16384
#define RE_CACHE_MAX 512 /* spoa.re.match's compiled patterns per state */

typedef struct {
    pcre2_code *code;
    uint32_t ncap;
} regex;

static pcre2_match_context *match_context;
static pthread_once_t match_context_once = PTHREAD_ONCE_INIT;

static void make_match_context(void) {
    match_context = pcre2_match_context_create(NULL);
    if (match_context != NULL) {
        pcre2_set_match_limit(match_context, RE_MATCH_LIMIT);
        pcre2_set_depth_limit(match_context, RE_DEPTH_LIMIT);
        pcre2_set_heap_limit(match_context, RE_HEAP_LIMIT_KIB);
    }
}

static uint32_t check_flags(lua_State *L, int idx) {
    const char *f = luaL_optstring(L, idx, "");
    uint32_t options = 0;
    for (; *f; f++) {
        switch (*f) {
        case 'i': options |= PCRE2_CASELESS; break;
        case 'm': options |= PCRE2_MULTILINE; break;
        case 's': options |= PCRE2_DOTALL; break;
        case 'x': options |= PCRE2_EXTENDED; break;
        default: luaL_argerror(L, idx, lua_pushfstring(L, "unknown regex flag '%c' (i, m, s, x)", *f));
        }
    }
    return options;
}

static int re_gc(lua_State *L) {
    regex *re = lua_touserdata(L, 1);
    pcre2_code_free(re->code);
    re->code = NULL;
    return 0;
}

/* Compiles the pattern at pi with the flags at fi and pushes the regex. */
static regex *compile(lua_State *L, int pi, int fi) {
    size_t len;
    const char *pattern = luaL_checklstring(L, pi, &len);
    uint32_t options = check_flags(L, fi);
    regex *re = lua_newuserdatauv(L, sizeof *re, 0);
    re->code = NULL;
    luaspoa_setmetatable(L, RE_CLASS);
    int code;
    PCRE2_SIZE offset;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, options, &code, &offset, NULL);
    if (re->code == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        luaL_error(L, "regex error at offset %I: %s", (lua_Integer)offset, (const char *)msg);
    }
    /* Without JIT (unsupported CPU, or no executable memory) the interpreter runs. */
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ncap);
    return re;
}

static regex *check_re(lua_State *L, int idx) {
    regex *re = luaspoa_checkudata(L, idx, RE_CLASS);
    luaL_argcheck(L, re->code != NULL, idx, "regex was freed");
    return re;
}

static void free_match_data(void *p) { pcre2_match_data_free(p); }

/* Pushes the match data's owner and returns the match data. */
static pcre2_match_data *push_match_data(lua_State *L, const regex *re) {
    luaspoa_cres *r = luaspoa_cres_push(L, free_match_data);
    r->p = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (r->p == NULL)
        luaL_error(L, "not enough memory");
    return r->p;
}

/* Pushes nil and the reason for a failed match (rc < 0, not NOMATCH); returns 2. */
static int match_error(lua_State *L, int rc) {
    luaL_pushfail(L);
    switch (rc) {
    case PCRE2_ERROR_MATCHLIMIT: lua_pushliteral(L, "regex match limit exceeded"); break;
    case PCRE2_ERROR_DEPTHLIMIT: lua_pushliteral(L, "regex depth limit exceeded"); break;
    case PCRE2_ERROR_HEAPLIMIT: lua_pushliteral(L, "regex heap limit exceeded"); break;
    case PCRE2_ERROR_JIT_STACKLIMIT: lua_pushliteral(L, "regex JIT stack limit exceeded"); break;
    default: {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        lua_pushfstring(L, "regex match failed: %s", (const char *)msg);
    }
    }
    return 2;
}

static int run(const regex *re, const char *s, size_t len, size_t pos, uint32_t options, pcre2_match_data *md) {
    pthread_once(&match_context_once, make_match_context);
    if (match_context == NULL)
        return PCRE2_ERROR_NOMEMORY;
    return pcre2_match(re->code, (PCRE2_SPTR)s, len, pos, options, md, match_context);
}

/* Pushes capture i (0: the whole match); false when the group did not take part. */
static void push_capture(lua_State *L, const char *s, const PCRE2_SIZE *ov, int rc, uint32_t i) {
    if ((int)i < rc && ov[2 * i] != PCRE2_UNSET)
        lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
    else
        lua_pushboolean(L, 0);
}

/* Pushes the captures, or the whole match when the pattern has none. */
static int push_captures(lua_State *L, const regex *re, const char *s, const PCRE2_SIZE *ov, int rc) {
    if (re->ncap == 0) {
        push_capture(L, s, ov, rc, 0);
        return 1;
    }
    luaL_checkstack(L, (int)re->ncap, "too many captures");
    for (uint32_t i = 1; i <= re->ncap; i++)
        push_capture(L, s, ov, rc, i);
    return (int)re->ncap;
}

/* The 1-based init argument at idx as a 0-based offset (negative counts from
 * the end, as string.find's); len + 1 when it is past the end. */
static size_t check_init(lua_State *L, int idx, size_t len) {
    lua_Integer init = luaL_optinteger(L, idx, 1);
    if (init < 0)
        init = (size_t)-init > len ? 1 : (lua_Integer)len + init + 1;
    else if (init == 0)
        init = 1;
    return (size_t)init - 1 > len ? len + 1 : (size_t)init - 1;
}

/* match (find = 0) or find (find = 1) of subject si from the init at ii. */
static int match_or_find(lua_State *L, const regex *re, int si, int ii, int find) {
    size_t len;
    const char *s = luaL_checklstring(L, si, &len);
    size_t pos = check_init(L, ii, len);
    if (pos > len) {
        luaL_pushfail(L);
        return 1;
    }
    pcre2_match_data *md = push_match_data(L, re);
    int rc = run(re, s, len, pos, 0, md);
    if (rc == PCRE2_ERROR_NOMATCH) {
        luaL_pushfail(L);
        return 1;
    }
    if (rc < 0)
        return match_error(L, rc);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (!find)
        return push_captures(L, re, s, ov, rc);
    lua_pushinteger(L, (lua_Integer)ov[0] + 1);
    lua_pushinteger(L, (lua_Integer)ov[1]);
    return re->ncap == 0 ? 2 : 2 + push_captures(L, re, s, ov, rc);
}

/* Adds "%0".."%9" expanded (%% is a %), as string.gsub's replacement string. */
static void add_template(lua_State *L, luaL_Buffer *b, const regex *re, const char *s, const PCRE2_SIZE *ov,
                         int rc, int ri) {
    size_t tlen;
    const char *t = lua_tolstring(L, ri, &tlen);
    for (size_t i = 0; i < tlen; i++) {
        if (t[i] != '%' || i + 1 == tlen) {
            luaL_addchar(b, t[i]);
            continue;
        }
        char c = t[++i];
        if (c == '%') {
            luaL_addchar(b, '%');
        } else if (c >= '0' && c <= '9' && (uint32_t)(c - '0') <= re->ncap) {
            uint32_t g = (uint32_t)(c - '0');
            if ((int)g < rc && ov[2 * g] != PCRE2_UNSET)
                luaL_addlstring(b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        } else {
            luaL_error(L, "invalid capture index %%%c in replacement string", c);
        }
    }
}

/* Adds the replacement of one match, as string.gsub does for a table or function. */
static void add_value(lua_State *L, luaL_Buffer *b, const regex *re, const char *s, const PCRE2_SIZE *ov, int rc,
                      int ri) {
    if (lua_type(L, ri) == LUA_TFUNCTION) {
        lua_pushvalue(L, ri);
        int n = push_captures(L, re, s, ov, rc);
        lua_call(L, n, 1);
    } else if (lua_type(L, ri) == LUA_TTABLE) {
        push_capture(L, s, ov, rc, re->ncap == 0 ? 0 : 1);
        lua_gettable(L, ri);
    } else {
        add_template(L, b, re, s, ov, rc, ri);
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s + ov[0], ov[1] - ov[0]);
    } else if (lua_isstring(L, -1)) {
        luaL_addvalue(b);
    } else {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
}

/* gsub of subject si with the replacement at ri and the optional maximum count at mi. */
static int gsub(lua_State *L, const regex *re, int si, int ri, int mi) {
    size_t len;
    const char *s = luaL_checklstring(L, si, &len);
    int rt = lua_type(L, ri);
    luaL_argexpected(L, rt == LUA_TNUMBER || rt == LUA_TSTRING || rt == LUA_TFUNCTION || rt == LUA_TTABLE, ri,
                     "string/function/table");
    lua_Integer max = luaL_optinteger(L, mi, LUA_MAXINTEGER);
    pcre2_match_data *md = push_match_data(L, re);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t pos = 0, copied = 0;
    lua_Integer n = 0;
    uint32_t options = 0;
    while (n < max) {
        luaspoa_budget_check(L);
        int rc = run(re, s, len, pos, options, md);
        if (rc == PCRE2_ERROR_NOMATCH) {
            /* After an empty match, retry one character further (pcre2demo.c). */
            if (options == 0 || pos >= len)
                break;
            options = 0;
            pos++;
            continue;
        }
        if (rc < 0)
            return match_error(L, rc);
        luaL_addlstring(&b, s + copied, ov[0] - copied);
        add_value(L, &b, re, s, ov, rc, ri);
        copied = pos = ov[1];
        options = ov[0] == ov[1] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
        n++;
    }
    luaL_addlstring(&b, s + copied, len - copied);
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

static int l_re_match(lua_State *L) { return match_or_find(L, check_re(L, 1), 2, 3, 0); }
static int l_re_find(lua_State *L) { return match_or_find(L, check_re(L, 1), 2, 3, 1); }
static int l_re_gsub(lua_State *L) { return gsub(L, check_re(L, 1), 2, 3, 4); }

static int l_compile(lua_State *L) {
    compile(L, 1, 2);
    return 1;
}

static void clear_table(lua_State *L, int t) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, t); /* clearing an existing field during lua_next is allowed */
    }
}

/* Pushes the regex for (pattern at pi, flags at fi) from the state's cache
 * (upvalue 1: "flags/pattern" -> regex, the count at [0]; RE_CACHE_MAX entries,
 * then cleared). It stays on the stack: a replacement function could evict it. */
static const regex *cached(lua_State *L, int pi, int fi) {
    int cache = lua_upvalueindex(1);
    luaL_checkstring(L, pi);
    if (lua_isnil(L, fi)) {
        lua_pushliteral(L, "");
        lua_replace(L, fi);
    }
    luaL_checkstring(L, fi);
    lua_pushvalue(L, fi);
    lua_pushliteral(L, "/");
    lua_pushvalue(L, pi);
    lua_concat(L, 3);
    int key = lua_gettop(L);
    lua_pushvalue(L, key);
    if (lua_rawget(L, cache) == LUA_TUSERDATA) {
        lua_remove(L, key);
        return lua_touserdata(L, -1);
    }
    lua_pop(L, 1);
    lua_rawgeti(L, cache, 0);
    lua_Integer count = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (count >= RE_CACHE_MAX) {
        clear_table(L, cache);
        count = 0;
    }
    const regex *re = compile(L, pi, fi);
    lua_pushinteger(L, count + 1);
    lua_rawseti(L, cache, 0);
    lua_pushvalue(L, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
    lua_remove(L, key);
    return re;
}

/* spoa.re.match(s, pattern [, flags [, init]]), and find (upvalue 2 true). */
static int l_match(lua_State *L) {
    lua_settop(L, 4);
    const regex *re = cached(L, 2, 3);
    return match_or_find(L, re, 1, 4, lua_toboolean(L, lua_upvalueindex(2)));
}

/* spoa.re.gsub(s, pattern, repl [, flags [, max]]) */
static int l_gsub(lua_State *L) {
    lua_settop(L, 5);
    const regex *re = cached(L, 2, 4);
    return gsub(L, re, 1, 3, 5);
}

/* The module functions share one cache table. */
static void set_cached(lua_State *L, int cache, const char *name, lua_CFunction f, int find) {
    lua_pushvalue(L, cache);
    lua_pushboolean(L, find);
    lua_pushcclosure(L, f, 2);
    lua_setfield(L, -2, name);
}

void luaspoa_open_re(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"match", l_re_match}, {"find", l_re_find}, {"gsub", l_re_gsub}, {NULL, NULL},
    };
    luaL_newmetatable(L, RE_CLASS);
    lua_pushcfunction(L, re_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, l_compile);
    lua_setfield(L, -2, "compile");
    lua_newtable(L);
    int cache = lua_gettop(L);
    lua_pushvalue(L, cache - 1);
    set_cached(L, cache, "match", l_match, 0);
    set_cached(L, cache, "find", l_match, 1);
    set_cached(L, cache, "gsub", l_gsub, 0);
    lua_pop(L, 2);
    lua_setfield(L, -2, "re");
}
