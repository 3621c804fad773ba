/* spoa.netset: a set of CIDRs (with "!" exclusions and optional per-CIDR values)
 * answering longest-prefix-match lookups by binary search.
 *
 * Built once: the prefixes of each family are flattened into sorted, disjoint
 * address ranges (luaspoa_ipranges.c; of identical prefixes the later wins).
 * A lookup is one binary search (17 steps for 100k ranges).
 * A set built from a table lives in one userdata of its state; a set loaded
 * from a file is built once per process (luaspoa_filecache.c: again only when
 * the file changes) and shared read-only by every state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_filecache.h"
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
    luaspoa_file_obj *file; /* a loaded set: the shared block the pointers are into */
} luaspoa_netset;

/* ---- building ------------------------------------------------------------- */

static size_t count_family(const ns_entry *entries, size_t n, int family) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += entries[i].net.family == family;
    return m;
}

/* Flattens the prefixes of one family into ranges (room for 2m + 1), with
 * items (room for m) as scratch; returns the number of ranges. */
static size_t flatten_family(const ns_entry *entries, size_t n, int family, ipr_prefix *items,
                             ipr_range *ranges) {
    int width = family == 4 ? 32 : 128;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const luaspoa_net *net = &entries[i].net;
        if (net->family == family)
            items[k++] = luaspoa_ipr_prefix(width, net->bytes, net->bits, (uint32_t)i);
    }
    /* Cannot fail: parsed prefixes have bits <= 128. */
    return luaspoa_ipr_flatten(items, k, ranges);
}

static size_t netset_bytes(size_t n, size_t nranges, size_t pool_len) {
    return sizeof(luaspoa_netset) + n * sizeof(ns_entry) + nranges * sizeof(ipr_range) + pool_len;
}

/* Lays the set out in block (netset_bytes long): header, entries, ranges (kept
 * aligned), pool. */
static luaspoa_netset *assemble(void *block, const ns_entry *entries, size_t n, const ipr_range *r4,
                                size_t n4, const ipr_range *r6, size_t n6, const char *pool, size_t pool_len) {
    luaspoa_netset *s = block;
    char *p = (char *)s + sizeof *s;
    memcpy(p, entries, n * sizeof *entries);
    s->entries = (const ns_entry *)p;
    s->nentries = n;
    ipr_range *r = (ipr_range *)(p + n * sizeof *entries);
    memcpy(r, r4, n4 * sizeof *r);
    memcpy(r + n4, r6, n6 * sizeof *r);
    s->t4 = (ns_table){n4, r};
    s->t6 = (ns_table){n6, r + n4};
    memcpy((char *)(r + n4 + n6), pool, pool_len);
    s->pool = (const char *)(r + n4 + n6);
    s->file = NULL;
    return s;
}

/* Pushes a set of the state made from entries[0..n) (spoa.netset{...}). */
static void push_netset(lua_State *L, const ns_entry *entries, size_t n) {
    size_t m4 = count_family(entries, n, 4), m6 = n - m4;
    ipr_prefix *items = lua_newuserdatauv(L, ((m4 > m6 ? m4 : m6) + 1) * sizeof *items, 0);
    ipr_range *r4 = lua_newuserdatauv(L, (2 * m4 + 1) * sizeof *r4, 0);
    ipr_range *r6 = lua_newuserdatauv(L, (2 * m6 + 1) * sizeof *r6, 0);
    size_t n4 = flatten_family(entries, n, 4, items, r4);
    size_t n6 = flatten_family(entries, n, 6, items, r6);
    assemble(lua_newuserdatauv(L, netset_bytes(n, n4 + n6, 0), 0), entries, n, r4, n4, r6, n6, "", 0);
    luaspoa_setmetatable(L, NETSET_MT);
    lua_replace(L, -4); /* drop the scratch arrays */
    lua_pop(L, 2);
}

/* The same in one malloc'd block, shared by every state (spoa.netset.load);
 * NULL when out of memory. */
static luaspoa_netset *new_shared_netset(const ns_entry *entries, size_t n, const char *pool, size_t pool_len) {
    size_t m4 = count_family(entries, n, 4), m6 = n - m4;
    ipr_prefix *items = malloc(((m4 > m6 ? m4 : m6) + 1) * sizeof *items);
    ipr_range *r4 = malloc((2 * m4 + 1) * sizeof *r4), *r6 = malloc((2 * m6 + 1) * sizeof *r6);
    luaspoa_netset *s = NULL;
    if (items && r4 && r6) {
        size_t n4 = flatten_family(entries, n, 4, items, r4);
        size_t n6 = flatten_family(entries, n, 6, items, r6);
        void *block = malloc(netset_bytes(n, n4 + n6, pool_len));
        if (block)
            s = assemble(block, entries, n, r4, n4, r6, n6, pool, pool_len);
    }
    free(items);
    free(r4);
    free(r6);
    return s;
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
    push_netset(L, entries, (size_t)n);
    return 1;
}

/* ---- loading a file ------------------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Parses text: one "[!]cidr [value]" per line, '#' starts a comment. entries
 * has room for one per line, pool for len bytes. 0 with "path:line: why". */
static int parse_text(const char *path, const char *text, size_t len, ns_entry *entries, size_t *count,
                      char *pool, size_t *pool_used, char *err, size_t errcap) {
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
            char why[200];
            if (!parse_item(p, (size_t)(w - p), &entries[n], why, sizeof why)) {
                snprintf(err, errcap, "%s:%zu: %s", path, lineno, why);
                return 0;
            }
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
    *count = n;
    *pool_used = pool_len;
    return 1;
}

/* Reads and builds a set file (a luaspoa_file_build). */
static void *load_file(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap) {
    (void)kind;
    size_t len, n = 0, pool_len = 0, lines = 1;
    char *text = luaspoa_read_file(path, &len, id, err, errcap);
    if (text == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    ns_entry *entries = malloc(lines * sizeof *entries);
    char *pool = malloc(len ? len : 1);
    luaspoa_netset *s = NULL;
    if (entries == NULL || pool == NULL)
        snprintf(err, errcap, "out of memory loading %s", path);
    else if (parse_text(path, text, len, entries, &n, pool, &pool_len, err, errcap) &&
             (s = new_shared_netset(entries, n, pool, pool_len)) == NULL)
        snprintf(err, errcap, "out of memory loading %s", path);
    free(text);
    free(entries);
    free(pool);
    return s;
}

/* Sets loaded from files: one per file version in the process. */
static luaspoa_file_cache set_files = LUASPOA_FILE_CACHE(load_file, free, NULL);

static int netset_gc(lua_State *L) {
    luaspoa_netset *s = lua_touserdata(L, 1);
    if (s->file != NULL) {
        luaspoa_file_cache_release(&set_files, s->file);
        s->file = NULL;
    }
    return 0;
}

/* spoa.netset.load(path): relative paths from the script's directory (as
 * HAProxy's "default-path config" does for its own files). The set is built
 * once per process and shared read-only: this state holds a header copy. */
static int l_netset_load(lua_State *L) {
    /* Reading a file may block (a FIFO, a slow disk): never in a handler. */
    luaspoa_require_setup(L, "spoa.netset.load", 1);
    const char *path = luaspoa_resolve_path(L, luaL_checkstring(L, 1));
    luaspoa_netset *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaspoa_setmetatable(L, NETSET_MT);
    luaspoa_file_obj *o = luaspoa_acquire_file(L, &set_files, "spoa.netset.load", path, 0);
    *s = *(const luaspoa_netset *)o->obj;
    s->file = o;
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
    static const luaL_Reg meta[] = {{"__gc", netset_gc}, {NULL, NULL}};
    luaspoa_new_named_class(L, NETSET_MT, "spoa.netset", methods, netset_tostring, meta);
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
