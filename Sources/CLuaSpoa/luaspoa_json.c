/* spoa.json: JSON text <-> Lua values over json-c (libjson-c-dev).
 *
 * Why json-c and not Debian's lua-cjson (which links: liblua5.4-cjson.so
 * exports luaopen_cjson_safe): lua-cjson 2.1.0 reads every number as a float
 * and writes numbers with "%.14g", so an id like 123456789012345678 comes back
 * as 1.2345678901235e+17. json-c keeps 64-bit integers, has a depth limit and a
 * strict mode, and parses incrementally, which lets the budget be polled.
 *
 * Bounded: decode feeds the parser LUASPOA_CRYPTO_CHUNK bytes at a time with a
 * budget poll between chunks, and refuses texts over JSON_MAX_TEXT (json-c's
 * tree is malloc'd outside the state's memory limit, several times the text's
 * size while it is converted); encode refuses values whose text would exceed
 * it (json-c writes the text in one call); nesting is limited to JSON_MAX_DEPTH both ways
 * (which also stops cycles in encode); the tree walks poll the budget every
 * 4096 values. Encode's tree is owned by a luaspoa_cres value, so a budget or
 * memory error in between frees it; decode's parser and tree by the state's
 * decoder (below). */
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_TEXT ((size_t)16 << 20)
#define JSON_POLL_MASK 4095
#define JSON_ARRAY_MT "spoa.json.array"

static void free_object(void *p) { json_object_put(p); }

/* A state's decoder: one json-c tokener, reset for each text, and the tree
 * being converted. One userdata per state owns them (closing the state frees
 * them), so a decode creates no userdata and no finalizer: a Lua error raised
 * meanwhile (the time budget, the memory limit) leaves the tree to the next
 * decode, which frees it first. */
typedef struct json_decoder {
    json_tokener *tok;
    struct json_object *tree;
} json_decoder;

/* A text this long leaves its tokener's buffer as large as its longest string:
 * the tokener is freed after it rather than kept. */
#define JSON_KEEP_TOKENER_TEXT ((size_t)64 << 10)

static const char decoder_key = 0; /* registry key: &decoder_key */

static void decoder_release(json_decoder *d, int tokener_too) {
    if (d->tree != NULL)
        json_object_put(d->tree);
    d->tree = NULL;
    if (tokener_too && d->tok != NULL)
        json_tokener_free(d->tok);
    if (tokener_too)
        d->tok = NULL;
}

static int decoder_gc(lua_State *L) {
    decoder_release(lua_touserdata(L, 1), 1);
    return 0;
}

typedef struct {
    lua_State *L;
    unsigned long visited;
    size_t bytes;          /* encode: a lower bound of the text's size so far */
    const char *err;       /* static text */
    const char *badtype;   /* with err "cannot encode a": Lua's static type name */
} walk;

static void poll_budget(walk *w) {
    if ((++w->visited & JSON_POLL_MASK) == 0)
        luaspoa_budget_check(w->L);
}

/* Encode counts what it will write: json-c serialises the tree in one call,
 * which must stay short, so the text is capped like decode's input. */
static int add_bytes(walk *w, size_t n) {
    w->bytes += n + 1;
    if (w->bytes <= JSON_MAX_TEXT)
        return 1;
    w->err = "JSON text larger than 16 MiB";
    return 0;
}

/* ---- decode ---- */

static void push_json(walk *w, struct json_object *o) {
    lua_State *L = w->L;
    poll_budget(w);
    switch (json_object_get_type(o)) {
    case json_type_null:
        lua_pushlightuserdata(L, NULL);
        break;
    case json_type_boolean:
        lua_pushboolean(L, json_object_get_boolean(o));
        break;
    case json_type_int: {
        int64_t i = json_object_get_int64(o);
        uint64_t u;
        /* json-c clamps a value above INT64_MAX; Lua has no wider integer. */
        if (i == INT64_MAX && (u = json_object_get_uint64(o)) > (uint64_t)INT64_MAX)
            lua_pushnumber(L, (lua_Number)u);
        else
            lua_pushinteger(L, (lua_Integer)i);
        break;
    }
    case json_type_double: {
        double d = json_object_get_double(o);
        if (!isfinite(d)) /* json-c reads NaN and Infinity even in strict mode */
            w->err = "NaN or Infinity is not JSON";
        lua_pushnumber(L, d);
        break;
    }
    case json_type_string:
        lua_pushlstring(L, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(o);
        luaL_checkstack(L, 3, "JSON nesting");
        lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(w, json_object_array_get_idx(o, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case json_type_object: {
        luaL_checkstack(L, 3, "JSON nesting");
        lua_createtable(L, 0, json_object_object_length(o));
        json_object_object_foreach(o, key, value) {
            lua_pushlstring(L, key, strlen(key)); /* not lua_pushstring: its cache keys on the pointer, new each time */
            push_json(w, value);
            lua_rawset(L, -3);
        }
        break;
    }
    }
}

static int fail(lua_State *L, const char *msg) {
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}

/* Pushes the value of the JSON text [s, s + len) and returns 1, or pushes nil,
 * err and returns 2. s need not be a Lua string (spoa.jwt decodes into a
 * buffer); it must stay valid meanwhile. */
int luaspoa_json_push(lua_State *L, const char *s, size_t len) {
    if (len > JSON_MAX_TEXT)
        return fail(L, "JSON text larger than 16 MiB");
    json_decoder *d = luaspoa_rt_get(L)->json_decoder;
    decoder_release(d, 0); /* a tree an interrupted decode left */
    if (d->tok == NULL) {
        d->tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (d->tok == NULL)
            return luaL_error(L, "not enough memory");
        json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    } else {
        json_tokener_reset(d->tok); /* keeps the flags */
    }
    json_tokener *tok = d->tok;
    struct json_object *o = NULL;
    enum json_tokener_error e = json_tokener_continue;
    size_t off = 0, n = 0;
    while (e == json_tokener_continue && off < len) {
        n = luaspoa_next_chunk(L, len, off, LUASPOA_CRYPTO_CHUNK);
        o = json_tokener_parse_ex(tok, s + off, (int)n);
        e = json_tokener_get_error(tok);
        off += n;
    }
    size_t end = off - n + json_tokener_get_parse_end(tok);
    if (e == json_tokener_continue && len > 0) {
        /* A NUL ends the text: a number at its very end is complete only then. */
        o = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
        end = len;
    }
    d->tree = o;
    if (len > JSON_KEEP_TOKENER_TEXT) {
        json_tokener_free(d->tok);
        d->tok = NULL;
    }
    if (e != json_tokener_success)
        decoder_release(d, 0);
    if (e == json_tokener_continue || len == 0)
        return fail(L, "unexpected end of JSON text");
    if (e != json_tokener_success) {
        lua_pushfstring(L, "%s at byte %I", json_tokener_error_desc(e), (lua_Integer)end);
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    while (end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\n' || s[end] == '\r'))
        end++;
    if (end < len) {
        decoder_release(d, 0);
        lua_pushfstring(L, "unexpected text after the JSON value at byte %I", (lua_Integer)end + 1);
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    walk w = {L, 0, 0, NULL, NULL};
    push_json(&w, o);
    decoder_release(d, 0);
    return w.err != NULL ? fail(L, w.err) : 1;
}

/* decode(text) -> value, or nil, err */
static int l_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    return luaspoa_json_push(L, s, len);
}

/* ---- encode ---- */

static struct json_object *new_number(lua_State *L, int idx, walk *w) {
    if (lua_isinteger(L, idx))
        return json_object_new_int64((int64_t)lua_tointeger(L, idx));
    double d = (double)lua_tonumber(L, idx);
    if (!isfinite(d)) {
        w->err = "cannot encode NaN or infinity";
        return NULL;
    }
    /* The shortest of %.14g (Lua's tostring) and %.17g that reads back as d;
     * ".0" keeps an integral float a float, as tostring(5.0) is "5.0". */
    char text[40];
    snprintf(text, sizeof text, "%.14g", d);
    if (strtod(text, NULL) != d)
        snprintf(text, sizeof text, "%.17g", d);
    if (strspn(text, "-0123456789") == strlen(text))
        strcat(text, ".0");
    return json_object_new_double_s(d, text);
}

/* 1..n keys exactly (or the array metatable): n, else -1. Empty is an object. */
static lua_Integer array_length(lua_State *L, int idx) {
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, JSON_ARRAY_MT);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked)
            return (lua_Integer)lua_rawlen(L, idx);
    }
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        max = k > max ? k : max;
        count++;
    }
    return count > 0 && count == max ? count : -1;
}

static struct json_object *to_json(walk *w, int idx, int depth);

static int fill_array(walk *w, struct json_object *a, int idx, lua_Integer n, int depth) {
    lua_State *L = w->L;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        struct json_object *v = lua_isnil(L, -1) ? NULL : to_json(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (w->err != NULL || json_object_array_add(a, v) != 0) {
            json_object_put(v);
            w->err = w->err ? w->err : "not enough memory";
            return 0;
        }
    }
    return 1;
}

static int fill_object(walk *w, struct json_object *o, int idx, int depth) {
    lua_State *L = w->L;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int t = lua_type(L, -2);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            w->err = "table keys must be strings or numbers";
            lua_pop(L, 2);
            return 0;
        }
        lua_pushvalue(L, -2); /* tolstring on a copy keeps lua_next's key a number */
        size_t klen;
        const char *key = lua_tolstring(L, -1, &klen);
        if (!add_bytes(w, klen + 3)) {
            lua_pop(L, 3);
            return 0;
        }
        if (strlen(key) != klen) {
            w->err = "table key contains a NUL byte";
            lua_pop(L, 3);
            return 0;
        }
        struct json_object *v = to_json(w, lua_gettop(L) - 1, depth + 1);
        if (w->err != NULL || json_object_object_add(o, key, v) != 0) {
            json_object_put(v);
            w->err = w->err ? w->err : "not enough memory";
            lua_pop(L, 3);
            return 0;
        }
        lua_pop(L, 2);
    }
    return 1;
}

/* The value at idx as a json-c object, owned by the caller (NULL for null,
 * or with w->err set). A table's object is filled after it is created, so a
 * failure frees what was built through the parent that owns it. */
static struct json_object *to_json(walk *w, int idx, int depth) {
    lua_State *L = w->L;
    poll_budget(w);
    if (!add_bytes(w, lua_type(L, idx) == LUA_TSTRING ? lua_rawlen(L, idx) + 2 : 4))
        return NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return NULL;
    case LUA_TBOOLEAN: return json_object_new_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER: return new_number(L, idx, w);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return json_object_new_string_len(s, (int)len);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return NULL;
        break;
    case LUA_TTABLE: {
        if (depth >= JSON_MAX_DEPTH) {
            w->err = "nesting deeper than 64 (or a cycle)";
            return NULL;
        }
        luaL_checkstack(L, 4, "JSON nesting");
        lua_Integer n = array_length(L, idx);
        struct json_object *o = n >= 0 ? json_object_new_array_ext(n > INT_MAX ? INT_MAX : (int)n) : json_object_new_object();
        if (o == NULL) {
            w->err = "not enough memory";
            return NULL;
        }
        if (!(n >= 0 ? fill_array(w, o, idx, n, depth) : fill_object(w, o, idx, depth))) {
            json_object_put(o);
            return NULL;
        }
        return o;
    }
    default: break;
    }
    w->err = "cannot encode a";
    w->badtype = luaL_typename(L, idx);
    return NULL;
}

/* encode(value) -> text, or nil, err */
static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    luaspoa_cres *tree = luaspoa_cres_push(L, free_object);
    walk w = {L, 0, 0, NULL, NULL};
    tree->p = to_json(&w, 1, 0);
    if (w.badtype != NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s %s", w.err, w.badtype);
        return 2;
    }
    if (w.err != NULL)
        return fail(L, w.err);
    size_t len;
    const char *text = tree->p == NULL ? "null"
                       : json_object_to_json_string_length(tree->p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text == NULL)
        return fail(L, "not enough memory");
    lua_pushlstring(L, text, tree->p == NULL ? 4 : len);
    luaspoa_cres_free(tree);
    return 1;
}

void luaspoa_open_json(lua_State *L) {
    static const luaL_Reg functions[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
    luaL_newlib(L, functions);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_newmetatable(L, JSON_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_setfield(L, -2, "json");
    json_decoder *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->tok = NULL;
    d->tree = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, decoder_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &decoder_key);
    luaspoa_rt_get(L)->json_decoder = d; /* a pointer: no registry lookup per decode */
}
