/* spoa.netset: a set of CIDRs (with "!" exclusions and optional per-CIDR values)
 * answering longest-prefix-match lookups by binary search.
 *
 * Built once: the prefixes of each family are flattened into sorted, disjoint
 * address ranges (luaspoa_ipranges.c; of identical prefixes the later wins).
 * A lookup is one binary search (17 steps for 100k ranges).
 * The whole set lives in one userdata of the state that built it (not shared
 * between worker states; each state loads its own copy). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>

#include "luaspoa_internal.h"
#include "luaspoa_ipranges.h"

#define NETSET_MT "luaspoa.Netset"

typedef struct ns_entry {
    luaspoa_net net;
    uint8_t excluded;
    size_t value_off, value_len; /* into the value pool; SIZE_MAX offset = no value */
} ns_entry;

typedef struct ns_table { size_t n; const ipr_range *r; } ns_table;

typedef struct luaspoa_netset {
    size_t nentries;
    const ns_entry *entries;
    const char *pool;
    ns_table t4, t6;
} luaspoa_netset;

/* ---- building ------------------------------------------------------------- */

/* Builds the ranges of one family into a scratch userdata left on the stack. */
static size_t build_family(lua_State *L, const ns_entry *entries, size_t n, int family,
                           ipr_range **ranges) {
    int width = family == 4 ? 32 : 128;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += entries[i].net.family == family;
    ipr_prefix *items = lua_newuserdatauv(L, (m ? m : 1) * sizeof *items, 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const luaspoa_net *net = &entries[i].net;
        if (net->family == family)
            items[k++] = luaspoa_ipr_prefix(width, net->bytes, net->bits, (uint32_t)i);
    }
    *ranges = lua_newuserdatauv(L, (2 * m + 1) * sizeof **ranges, 0);
    size_t count = luaspoa_ipr_flatten(items, m, *ranges);
    if (count == LUASPOA_IPR_FAILED) /* cannot happen: parsed prefixes have bits <= 128 */
        luaL_error(L, "spoa.netset: prefixes nest too deep");
    lua_remove(L, -2); /* the items */
    return count;
}

/* Pushes the finished netset made from entries[0..n) and pool[0..pool_len). */
static void push_netset(lua_State *L, const ns_entry *entries, size_t n, const char *pool,
                        size_t pool_len) {
    ipr_range *r4, *r6;
    size_t n4 = build_family(L, entries, n, 4, &r4);
    size_t n6 = build_family(L, entries, n, 6, &r6);
    size_t head = sizeof(luaspoa_netset), ents = n * sizeof(ns_entry);
    size_t rsz = (n4 + n6) * sizeof(ipr_range);
    /* Layout: header, entries, ranges, pool (ranges stay aligned). */
    luaspoa_netset *s = lua_newuserdatauv(L, head + ents + rsz + pool_len, 0);
    char *p = (char *)s + head;
    memcpy(p, entries, ents);
    s->entries = (const ns_entry *)p;
    s->nentries = n;
    ipr_range *r = (ipr_range *)(p + ents);
    memcpy(r, r4, n4 * sizeof *r);
    memcpy(r + n4, r6, n6 * sizeof *r);
    s->t4 = (ns_table){n4, r};
    s->t6 = (ns_table){n6, r + n4};
    memcpy((char *)(r + n4 + n6), pool, pool_len);
    s->pool = (const char *)(r + n4 + n6);
    luaspoa_setmetatable(L, NETSET_MT);
    lua_replace(L, -3); /* drop the two scratch range arrays */
    lua_pop(L, 1);
}

/* Parses one item "[!]cidr" into e; returns 0 with err set on failure. */
static int parse_item(const char *s, size_t len, ns_entry *e, char *err, size_t errcap) {
    memset(e, 0, sizeof *e);
    e->value_off = SIZE_MAX;
    if (len > 0 && s[0] == '!') {
        e->excluded = 1;
        s++, len--;
    }
    return luaspoa_parse_cidr(s, len, &e->net, err, errcap);
}

/* spoa.netset{ "10.0.0.0/8", "!10.66.0.0/16", spoa.cidr(...), addr, ... } */
static int l_netset_new(lua_State *L) {
    luaL_checktype(L, 2, LUA_TTABLE); /* argument 1 is the spoa.netset table (__call) */
    lua_Integer n = luaL_len(L, 2);
    ns_entry *entries = lua_newuserdatauv(L, (n > 0 ? (size_t)n : 1) * sizeof *entries, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        ns_entry *e = &entries[i - 1];
        char err[200];
        luaspoa_net *net = luaspoa_testudata(L, -1, LUASPOA_NET_MT);
        int family;
        const uint8_t *ip = luaspoa_test_addr(L, -1, &family);
        if (net != NULL) {
            memset(e, 0, sizeof *e);
            e->value_off = SIZE_MAX;
            e->net = *net;
        } else if (ip != NULL) {
            memset(e, 0, sizeof *e);
            e->value_off = SIZE_MAX;
            e->net = (luaspoa_net){.family = (uint8_t)family, .bits = family == 4 ? 32 : 128};
            memcpy(e->net.bytes, ip, 16);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (!parse_item(s, len, e, err, sizeof err))
                return luaL_error(L, "spoa.netset: item %I: %s", i, err);
        } else {
            return luaL_error(L, "spoa.netset: item %I: CIDR string, spoa.cidr() or address "
                              "expected, got %s", i, luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    push_netset(L, entries, (size_t)n, "", 0);
    return 1;
}

/* ---- loading a file ------------------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Pushes the file's contents and sets *path to the path actually read:
 * relative paths are resolved from the script's directory (as HAProxy's
 * "default-path config" does for its own files). */
static const char *read_file(lua_State *L, const char **path, size_t *len) {
    *path = luaspoa_resolve_path(L, *path);
    struct stat st;
    if (stat(*path, &st) != 0)
        luaL_error(L, "spoa.netset.load: cannot open %s: %s", *path, strerror(errno));
    /* Allocate before opening, so a memory error cannot leak the descriptor. */
    char *buf = lua_newuserdatauv(L, st.st_size > 0 ? (size_t)st.st_size : 1, 0);
    FILE *f = fopen(*path, "rb");
    if (f == NULL)
        luaL_error(L, "spoa.netset.load: cannot open %s: %s", *path, strerror(errno));
    *len = fread(buf, 1, (size_t)st.st_size, f);
    int failed = ferror(f);
    fclose(f);
    if (failed)
        luaL_error(L, "spoa.netset.load: cannot read %s", *path);
    return buf;
}

/* spoa.netset.load(path): one "[!]cidr [value]" per line; '#' starts a comment. */
static int l_netset_load(lua_State *L) {
    /* Reading a file may block (a FIFO, a slow disk): never in a handler. */
    luaspoa_require_setup(L, "spoa.netset.load", 1);
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *text = read_file(L, &path, &len);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    ns_entry *entries = lua_newuserdatauv(L, lines * sizeof *entries, 0);
    char *pool = lua_newuserdatauv(L, len ? len : 1, 0);
    size_t n = 0, pool_len = 0, lineno = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *hash = memchr(p, '#', (size_t)(eol - p)), *stop = hash ? hash : eol;
        lineno++;
        while (p < stop && is_space(*p))
            p++;
        while (stop > p && is_space(stop[-1]))
            stop--;
        if (p < stop) {
            const char *w = p;
            while (w < stop && !is_space(*w))
                w++;
            char err[200];
            if (!parse_item(p, (size_t)(w - p), &entries[n], err, sizeof err))
                return luaL_error(L, "%s:%d: %s", path, (int)lineno, err);
            while (w < stop && is_space(*w))
                w++;
            if (w < stop) { /* the rest of the line is the entry's value */
                memcpy(pool + pool_len, w, (size_t)(stop - w));
                entries[n].value_off = pool_len;
                entries[n].value_len = (size_t)(stop - w);
                pool_len += entries[n].value_len;
            }
            n++;
        }
        p = eol + 1;
    }
    push_netset(L, entries, n, pool, pool_len);
    return 1;
}

/* ---- lookups -------------------------------------------------------------- */

/* The entry covering a, or NULL. Does not unmap ::ffff:a.b.c.d (use a:unmap()). */
static const ns_entry *ns_find(const luaspoa_netset *s, const luaspoa_addr *a) {
    const ns_table *t = a->family == 4 ? &s->t4 : &s->t6;
    const ipr_range *r = luaspoa_ipr_find(t->r, t->n, luaspoa_ipr_key(a->family == 4 ? 32 : 128, a->bytes));
    return r ? &s->entries[r->entry] : NULL;
}

static const luaspoa_netset *check_netset(lua_State *L) {
    return luaspoa_checkudata(L, 1, NETSET_MT);
}

static const ns_entry *find_arg(lua_State *L, const luaspoa_netset *s, const char *what) {
    luaspoa_addr a;
    luaspoa_check_addr_arg(L, 2, &a, what);
    const ns_entry *e = ns_find(s, &a);
    return e && !e->excluded ? e : NULL;
}

static int netset_contains(lua_State *L) {
    const luaspoa_netset *s = check_netset(L);
    lua_pushboolean(L, find_arg(L, s, "netset:contains") != NULL);
    return 1;
}

/* s:lookup(a) -> matching CIDR text, its value (or nil) | nil */
static int netset_lookup(lua_State *L) {
    const luaspoa_netset *s = check_netset(L);
    const ns_entry *e = find_arg(L, s, "netset:lookup");
    if (e == NULL) {
        lua_pushnil(L);
        return 1;
    }
    luaspoa_push_net_text(L, &e->net);
    if (e->value_off == SIZE_MAX)
        lua_pushnil(L);
    else
        lua_pushlstring(L, s->pool + e->value_off, e->value_len);
    return 2;
}

static int netset_size(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_netset(L)->nentries);
    return 1;
}

static int netset_tostring(lua_State *L) {
    lua_pushfstring(L, "spoa.netset(%d entries)", (int)check_netset(L)->nentries);
    return 1;
}

void luaspoa_open_netset(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"contains", netset_contains}, {"lookup", netset_lookup}, {"size", netset_size},
        {NULL, NULL},
    };
    luaspoa_new_named_class(L, NETSET_MT, "spoa.netset", methods, netset_tostring, NULL);
    /* spoa.netset is a table (for .load) that is also callable. */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_netset_load);
    lua_setfield(L, -2, "load");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_netset_new);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "netset");
}
