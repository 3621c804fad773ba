/* spoa.netset: a set of CIDRs (with "!" exclusions and optional per-CIDR values)
 * answering longest-prefix-match lookups by binary search.
 *
 * Built once: the (laminar) family of prefixes is flattened into sorted,
 * disjoint address ranges per family, each labelled with the most specific
 * entry covering it. A lookup is one binary search (17 steps for 100k ranges).
 * The whole set lives in one userdata of the state that built it (not shared
 * between worker states; each state loads its own copy). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>

#include "luaspoa_internal.h"

#define NETSET_MT "luaspoa.Netset"

typedef struct ns_key { uint64_t h, l; } ns_key; /* a 128-bit address, big-endian order */

typedef struct ns_entry {
    luaspoa_net net;
    uint8_t excluded;
    size_t value_off, value_len; /* into the value pool; SIZE_MAX offset = no value */
} ns_entry;

typedef struct ns_range { ns_key lo, hi; uint32_t entry; } ns_range;

typedef struct ns_table { size_t n; const ns_range *r; } ns_table;

typedef struct luaspoa_netset {
    size_t nentries;
    const ns_entry *entries;
    const char *pool;
    ns_table t4, t6;
} luaspoa_netset;

/* ---- keys ----------------------------------------------------------------- */

static uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static ns_key addr_key(int family, const uint8_t *b) {
    if (family == 4)
        return (ns_key){0, ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3]};
    return (ns_key){load_be64(b), load_be64(b + 8)};
}

static int key_cmp(ns_key a, ns_key b) {
    if (a.h != b.h)
        return a.h < b.h ? -1 : 1;
    return a.l < b.l ? -1 : a.l > b.l;
}

/* Last address of a network: lo with every host bit set. */
static ns_key net_hi(const luaspoa_net *n) {
    int width = n->family == 4 ? 32 : 128, host = width - n->bits;
    ns_key k = addr_key(n->family, n->bytes);
    if (host >= 64) {
        k.l = ~0ULL;
        k.h |= host >= 128 ? ~0ULL : (host == 64 ? 0 : (~0ULL >> (128 - host)));
    } else if (host > 0) {
        k.l |= ~0ULL >> (64 - host);
    }
    return k;
}

static ns_key key_inc(ns_key k) { return (ns_key){k.h + (k.l == ~0ULL), k.l + 1}; }
static ns_key key_dec(ns_key k) { return (ns_key){k.h - (k.l == 0), k.l - 1}; }

/* ---- building ------------------------------------------------------------- */

/* Sort item: one entry's range, ordered by start then by prefix length
 * (outer networks first), then by position (the later duplicate wins). */
typedef struct ns_item { ns_key lo, hi; uint8_t bits; uint32_t entry; } ns_item;

static int item_cmp(const void *pa, const void *pb) {
    const ns_item *a = pa, *b = pb;
    int c = key_cmp(a->lo, b->lo);
    if (c)
        return c;
    if (a->bits != b->bits)
        return a->bits < b->bits ? -1 : 1;
    return a->entry < b->entry ? -1 : a->entry > b->entry;
}

/* Flattens one family's sorted items into disjoint ranges; returns the count. */
static size_t flatten(const ns_item *items, size_t n, ns_range *out) {
    ns_item stack[130]; /* strictly nested prefixes: at most 129 deep */
    int sp = 0, have_pos = 0;
    size_t count = 0;
    ns_key pos = {0, 0};
#define EMIT(from, to, e) (out[count++] = (ns_range){(from), (to), (e)})
    for (size_t i = 0; i < n; i++) {
        const ns_item *e = &items[i];
        if (i + 1 < n && key_cmp(items[i + 1].lo, e->lo) == 0 && items[i + 1].bits == e->bits)
            continue; /* an identical prefix follows: the later one wins */
        while (sp > 0 && key_cmp(stack[sp - 1].hi, e->lo) < 0) {
            ns_item top = stack[--sp];
            if (key_cmp(pos, top.hi) <= 0)
                EMIT(pos, top.hi, top.entry);
            pos = key_inc(top.hi);
        }
        if (sp > 0 && have_pos && key_cmp(pos, e->lo) < 0)
            EMIT(pos, key_dec(e->lo), stack[sp - 1].entry);
        pos = e->lo;
        have_pos = 1;
        stack[sp++] = *e;
    }
    while (sp > 0) {
        ns_item top = stack[--sp];
        if (have_pos && key_cmp(pos, top.hi) <= 0)
            EMIT(pos, top.hi, top.entry);
        if (top.hi.h == ~0ULL && top.hi.l == ~0ULL)
            have_pos = 0; /* reached the end of the IPv6 space */
        else
            pos = key_inc(top.hi);
    }
#undef EMIT
    return count;
}

/* Builds the ranges of one family into a scratch userdata left on the stack. */
static size_t build_family(lua_State *L, const ns_entry *entries, size_t n, int family,
                           ns_range **ranges) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += entries[i].net.family == family;
    ns_item *items = lua_newuserdatauv(L, (m ? m : 1) * sizeof *items, 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].net.family != family)
            continue;
        items[k++] = (ns_item){addr_key(family, entries[i].net.bytes), net_hi(&entries[i].net),
                               entries[i].net.bits, (uint32_t)i};
    }
    qsort(items, m, sizeof *items, item_cmp);
    *ranges = lua_newuserdatauv(L, (2 * m + 1) * sizeof **ranges, 0);
    size_t count = flatten(items, m, *ranges);
    lua_remove(L, -2); /* the items */
    return count;
}

/* Pushes the finished netset made from entries[0..n) and pool[0..pool_len). */
static void push_netset(lua_State *L, const ns_entry *entries, size_t n, const char *pool,
                        size_t pool_len) {
    ns_range *r4, *r6;
    size_t n4 = build_family(L, entries, n, 4, &r4);
    size_t n6 = build_family(L, entries, n, 6, &r6);
    size_t head = sizeof(luaspoa_netset), ents = n * sizeof(ns_entry);
    size_t rsz = (n4 + n6) * sizeof(ns_range);
    /* Layout: header, entries, ranges, pool (ranges stay aligned). */
    luaspoa_netset *s = lua_newuserdatauv(L, head + ents + rsz + pool_len, 0);
    char *p = (char *)s + head;
    memcpy(p, entries, ents);
    s->entries = (const ns_entry *)p;
    s->nentries = n;
    ns_range *r = (ns_range *)(p + ents);
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
    if ((*path)[0] != '/' &&
        lua_getfield(L, LUA_REGISTRYINDEX, LUASPOA_SCRIPT_PATH_KEY) == LUA_TSTRING) {
        const char *script = lua_tostring(L, -1);
        const char *slash = strrchr(script, '/');
        if (slash != NULL) {
            lua_pushlstring(L, script, (size_t)(slash - script));
            *path = lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), *path);
        }
    }
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
    ns_key k = addr_key(a->family, a->bytes);
    size_t lo = 0, hi = t->n; /* find the last range with r.lo <= k */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(t->r[mid].lo, k) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || key_cmp(k, t->r[lo - 1].hi) > 0)
        return NULL;
    return &s->entries[t->r[lo - 1].entry];
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
