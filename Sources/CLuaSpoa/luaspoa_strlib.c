/* String functions that respect the time budget (docs/lua-api.md "Time budget").
 *
 * The count hook only fires between VM instructions, so one long C call of the
 * string library ran past any budget: s:match("^%s*(.-)%s*x$") backtracks in
 * cubic time (minutes on 4 KB), string.rep and lower/upper are linear in sizes
 * up to the memory limit. Replaced here:
 *
 * - find, match, gmatch, gsub: our own matcher for Lua's pattern language (same
 *   results and errors), which polls the budget every STEPS_PER_CHECK steps;
 * - rep: built by doubling copies with a poll between them, result at most
 *   LUASPOA_STRING_MAX bytes;
 * - lower, upper: converted in chunks with a poll between them;
 * - format, pack: Lua's own, but refused when their inputs could make them run
 *   long (FORMAT_INPUT_MAX, and LUASPOA_STRING_MAX for what pack writes).
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <string.h>

#include "luaspoa_internal.h"

#define STEPS_PER_CHECK 1024
#define MAX_CAPTURES 32
#define MAX_DEPTH 200
#define CAP_OPEN (-1)
#define CAP_POSITION (-2)
#define CHUNK ((size_t)64 << 10)
#define LUASPOA_STRING_MAX ((size_t)16 << 20)
#define FORMAT_INPUT_MAX ((size_t)1 << 20)

/* ---- matcher -------------------------------------------------------------- */

typedef struct matcher {
    lua_State *L;
    const char *src, *src_end, *pat_end;
    int depth;        /* recursion levels left */
    long steps_left;  /* until the next look at the budget */
    int ncap;
    struct { const char *at; ptrdiff_t len; } cap[MAX_CAPTURES];
} matcher;

static void steps(matcher *m, ptrdiff_t n) {
    if ((m->steps_left -= n) < 0) {
        m->steps_left = STEPS_PER_CHECK;
        luaspoa_budget_check(m->L);
    }
}

/* %a, %d, ... (uppercase: the complement); any other letter is itself.
 * cl | 0x20 lowercases ASCII letters and maps no other byte to one. */
static inline int class_matches(int c, int cl) {
    int r;
    switch (cl | 0x20) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, still in Lua 5.4 */
    default: return cl == c;
    }
    return (cl & 0x20) == 0 ? !r : r != 0;
}

/* [set]: p is at '[', close at its ']'. */
static int set_matches(int c, const char *p, const char *close) {
    int in = 1;
    if (*++p == '^') {
        in = 0;
        p++;
    }
    for (; p < close; p++) {
        if (*p == '%') {
            if (class_matches(c, (unsigned char)*++p))
                return in;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return in;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return in;
        }
    }
    return !in;
}

/* The end of the single-character item at p. Patterns are Lua strings, so
 * reading *pat_end (their terminating NUL) is safe. */
static const char *item_end(matcher *m, const char *p) {
    switch (*p++) {
    case '%':
        if (p == m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^')
            p++;
        do { /* a ']' right after '[' or '[^' is a member */
            if (p == m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && p < m->pat_end)
                p++;
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

static inline int single_matches(matcher *m, const char *s, const char *p, const char *ep) {
    if (s >= m->src_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_matches(c, (unsigned char)p[1]);
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static int capture_index(matcher *m, int digit) {
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        return luaL_error(m->L, "invalid capture index %%%d", i + 1);
    return i;
}

static const char *do_match(matcher *m, const char *s, const char *p);

/* %bxy at p (just after "%b"). */
static const char *match_balance(matcher *m, const char *s, const char *p) {
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p)
        return NULL;
    int depth = 1;
    while (++s < m->src_end) {
        steps(m, 1);
        if (*s == p[1]) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == *p) {
            depth++;
        }
    }
    return NULL;
}

/* Greedy: the longest run of the item first, then shorter ones. */
static const char *max_expand(matcher *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (single_matches(m, s + n, p, ep))
        n++;
    steps(m, n);
    for (; n >= 0; n--) {
        const char *e = do_match(m, s + n, ep + 1);
        if (e)
            return e;
    }
    return NULL;
}

/* Lazy: the shortest run first. */
static const char *min_expand(matcher *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *e = do_match(m, s, ep + 1);
        if (e)
            return e;
        if (!single_matches(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t kind) {
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = kind;
    m->ncap++;
    const char *e = do_match(m, s, p);
    if (e == NULL)
        m->ncap--;
    return e;
}

static const char *close_capture(matcher *m, const char *s, const char *p) {
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *e = do_match(m, s, p);
    if (e == NULL)
        m->cap[i].len = CAP_OPEN;
    return e;
}

/* %1-%9 in a pattern: the same bytes again (a position capture never matches). */
static const char *match_back_reference(matcher *m, const char *s, int digit) {
    int i = capture_index(m, digit);
    size_t len = (size_t)m->cap[i].len;
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[i].at, s, len) == 0)
        return s + len;
    return NULL;
}

/* The end of the match of pattern p at s, or NULL. Single items continue in the
 * loop; captures and expansions recurse, MAX_DEPTH deep at most. */
static const char *do_match(matcher *m, const char *s, const char *p) {
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    steps(m, 1);
    while (p != m->pat_end) {
        const char *ep;
        switch (*p) {
        case '(':
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION) : open_capture(m, s, p + 1, CAP_OPEN);
            goto done;
        case ')':
            s = close_capture(m, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != m->pat_end)
                break; /* a literal '$' */
            s = s == m->src_end ? s : NULL;
            goto done;
        case '%':
            if (p[1] == 'b') {
                s = match_balance(m, s, p + 2);
                if (s == NULL)
                    goto done;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                ep = item_end(m, p);
                int before = s == m->src ? '\0' : (unsigned char)s[-1];
                int here = s < m->src_end ? (unsigned char)*s : '\0';
                if (set_matches(before, p, ep - 1) || !set_matches(here, p, ep - 1)) {
                    s = NULL;
                    goto done;
                }
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = match_back_reference(m, s, (unsigned char)p[1]);
                if (s == NULL)
                    goto done;
                p += 2;
                continue;
            }
            break;
        }
        /* A single-character item, maybe with a quantifier. */
        ep = item_end(m, p);
        if (!single_matches(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero occurrences are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (*ep) {
        case '?': {
            const char *e = do_match(m, s + 1, ep + 1);
            if (e) {
                s = e;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = max_expand(m, s + 1, p, ep);
            goto done;
        case '*':
            s = max_expand(m, s, p, ep);
            goto done;
        case '-':
            s = min_expand(m, s, p, ep);
            goto done;
        default:
            s++;
            p = ep;
        }
    }
done:
    m->depth++;
    return s;
}

static void matcher_init(matcher *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps_left = STEPS_PER_CHECK;
}

static void matcher_reset(matcher *m) {
    m->ncap = 0;
    m->depth = MAX_DEPTH;
}

/* Capture i of the match [s, e); with no captures, capture 0 is the match. */
static void push_capture(matcher *m, int i, const char *s, const char *e) {
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].at - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* All captures, or the whole match when there are none and s is given. */
static int push_captures(matcher *m, const char *s, const char *e) {
    int n = m->ncap == 0 && s ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* Lua's rule for a start position: negative counts from the end, clamped to 1. */
static size_t start_offset(lua_State *L, int arg, size_t len) {
    lua_Integer pos = luaL_optinteger(L, arg, 1);
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len + (size_t)pos;
}

static int has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (memchr("^$*+?.([%-", p[i], 10))
            return 1;
    return 0;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(L, 3, ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* glibc's memmem is linear (two-way), so a plain find needs no polling. */
        const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (at) {
            lua_pushinteger(L, at - s + 1);
            lua_pushinteger(L, (lua_Integer)(at - s + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher m;
    matcher_init(&m, L, s, ls, p, lp);
    const char *start = s + init;
    do {
        matcher_reset(&m);
        const char *e = do_match(&m, start, p);
        if (e) {
            if (!find)
                return push_captures(&m, start, e);
            lua_pushinteger(L, start - s + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (start++ < m.src_end && !anchored);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L) { return find_or_match(L, 1); }
static int l_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct gmatch_state {
    const char *next, *pattern, *last_end;
    matcher m;
} gmatch_state;

/* Upvalues: the subject, the pattern (anchored there) and the state. */
static int gmatch_next(lua_State *L) {
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L; /* the iterator may run in another coroutine */
    for (const char *s = g->next; s <= g->m.src_end; s++) {
        matcher_reset(&g->m);
        const char *e = do_match(&g->m, s, g->pattern);
        if (e && e != g->last_end) { /* an empty match right after a match is skipped */
            g->next = g->last_end = e;
            return push_captures(&g->m, s, e);
        }
    }
    return 0;
}

static int l_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(L, 3, ls);
    lua_settop(L, 2);
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    matcher_init(&g->m, L, s, ls, p, lp);
    g->next = s + (init > ls ? ls + 1 : init);
    g->pattern = p;
    g->last_end = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* A replacement string: %0-%9 are captures, %% is '%'. */
static void add_replacement_string(matcher *m, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = m->L;
    size_t len;
    const char *r = lua_tolstring(L, 3, &len), *end = r + len, *pct;
    while ((pct = memchr(r, '%', (size_t)(end - r))) != NULL) {
        luaL_addlstring(b, r, (size_t)(pct - r));
        pct++; /* the string's NUL stops a trailing '%' */
        if (*pct == '%') {
            luaL_addchar(b, '%');
        } else if (*pct == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*pct)) {
            push_capture(m, *pct - '1', s, e);
            luaL_tolstring(L, -1, NULL); /* a position capture is a number */
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        r = pct + 1;
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e, int kind) {
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_replacement_string(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the match */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int l_gsub(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION || kind == LUA_TTABLE,
                     3, "string/function/table");
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    matcher m;
    matcher_init(&m, L, s, ls, p, lp);
    const char *last_end = NULL;
    lua_Integer n = 0;
    while (n < max) {
        matcher_reset(&m);
        const char *e = do_match(&m, s, p);
        if (e && e != last_end) {
            n++;
            add_replacement(&m, &b, s, e, kind);
            s = last_end = e;
        } else if (s < m.src_end) {
            luaL_addchar(&b, *s++);
        } else {
            break;
        }
        if (anchored)
            break;
    }
    luaL_addlstring(&b, s, (size_t)(m.src_end - s));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/* ---- rep, lower, upper ---------------------------------------------------- */

static int l_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    size_t unit = l + lsep;
    if (n <= 0 || unit == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if ((lua_Unsigned)n > (LUASPOA_STRING_MAX + lsep) / unit)
        return luaL_error(L, "string.rep: the result would be over %d MiB", (int)(LUASPOA_STRING_MAX >> 20));
    size_t whole = (size_t)n * unit; /* with a trailing separator, dropped below */
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, whole);
    memcpy(out, s, l);
    memcpy(out + l, sep, lsep);
    for (size_t done = unit; done < whole;) {
        size_t copy = done < whole - done ? done : whole - done;
        memcpy(out + done, out, copy);
        done += copy;
        luaspoa_budget_check(L);
    }
    luaL_pushresultsize(&b, whole - lsep);
    return 1;
}

static int convert_case(lua_State *L, int (*convert)(int)) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len);
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)convert((unsigned char)s[i]);
        if ((i & (CHUNK - 1)) == CHUNK - 1)
            luaspoa_budget_check(L);
    }
    luaL_pushresultsize(&b, len);
    return 1;
}

static int l_lower(lua_State *L) { return convert_case(L, tolower); }
static int l_upper(lua_State *L) { return convert_case(L, toupper); }

/* ---- format, pack: size checks around Lua's own ---------------------------- */

/* Bytes of the string arguments from `first` on. */
static size_t string_args_size(lua_State *L, int first) {
    size_t total = 0;
    for (int i = first; i <= lua_gettop(L); i++)
        if (lua_type(L, i) == LUA_TSTRING)
            total += lua_rawlen(L, i);
    return total;
}

static int call_original(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* string.format's time is linear in its format and string arguments (%q costs
 * ~50 ns per byte), so those are capped. */
static int l_format(lua_State *L) {
    size_t len;
    luaL_checklstring(L, 1, &len);
    size_t total = len + string_args_size(L, 2);
    if (total > FORMAT_INPUT_MAX)
        return luaL_error(L, "string.format: %I bytes of format and string arguments, over the %d KiB limit",
                          (lua_Integer)total, (int)(FORMAT_INPUT_MAX >> 10));
    return call_original(L);
}

/* string.pack writes at most the sizes its format names (c1000, i16, X, !)
 * plus its string arguments: their sum is capped, as rep's result is. */
static int l_pack(lua_State *L) {
    size_t len;
    const char *fmt = luaL_checklstring(L, 1, &len);
    size_t total = string_args_size(L, 2) + 16 * len;
    for (size_t i = 0; i < len && total <= LUASPOA_STRING_MAX; i++) {
        size_t number = 0;
        while (i < len && isdigit((unsigned char)fmt[i]) && number <= LUASPOA_STRING_MAX)
            number = number * 10 + (size_t)(fmt[i++] - '0');
        total += number;
    }
    if (total > LUASPOA_STRING_MAX)
        return luaL_error(L, "string.pack: the result could be over %d MiB", (int)(LUASPOA_STRING_MAX >> 20));
    return call_original(L);
}

void luaspoa_open_strlib(lua_State *L) {
    static const luaL_Reg own[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub},
        {"rep", l_rep}, {"lower", l_lower}, {"upper", l_upper}, {NULL, NULL},
    };
    static const luaL_Reg checked[] = {{"format", l_format}, {"pack", l_pack}, {NULL, NULL}};
    /* The string metatable's __index is this same table, so s:match() uses them too. */
    if (lua_getglobal(L, LUA_STRLIBNAME) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    luaL_setfuncs(L, own, 0);
    for (const luaL_Reg *f = checked; f->name; f++) {
        lua_getfield(L, -1, f->name);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pop(L, 1);
}
