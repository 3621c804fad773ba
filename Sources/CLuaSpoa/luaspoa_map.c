/* spoa.map: read-mostly maps loaded once per process per (path, type) and
 * shared by every state (luaspoa_filecache.c: a load after a reload parses the
 * file again only if it changed). A map's data is immutable; reload() parses
 * aside and swaps it under a write lock, keeping the old data if the new file
 * fails.
 * Lookups copy the value out under the read lock and push it after, so no Lua
 * error fires while the lock is held. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_filecache.h"
#include "luaspoa_internal.h"
#include "luaspoa_mapdata.h"

#define LUASPOA_MAP_MT "luaspoa.Map"

/* A map's data behind its lock: reload() swaps it for every state holding it. */
typedef struct shared_map {
    int kind;
    pthread_rwlock_t lock;
    map_data *data;
} shared_map;

static const char *const kind_names[] = {"str", "beg", "int", "ip", NULL};

/* Parses the map (a luaspoa_file_build). */
static void *build_map(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap) {
    map_data *data = luaspoa_map_parse(path, kind, id, err, errcap);
    shared_map *m = data ? calloc(1, sizeof *m) : NULL;
    if (m == NULL) {
        if (data)
            snprintf(err, errcap, "out of memory loading %s", path);
        luaspoa_map_free(data);
        return NULL;
    }
    m->kind = kind;
    m->data = data;
    pthread_rwlock_init(&m->lock, NULL);
    return m;
}

/* Parses the file aside and swaps it in (a luaspoa_file_rebuild); the old
 * data stays when the file fails. */
static int swap_map(void *p, const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap) {
    shared_map *m = p;
    map_data *fresh = luaspoa_map_parse(path, kind, id, err, errcap);
    if (fresh == NULL)
        return 0;
    pthread_rwlock_wrlock(&m->lock);
    map_data *old = m->data;
    m->data = fresh;
    pthread_rwlock_unlock(&m->lock);
    luaspoa_map_free(old);
    return 1;
}

static void free_map(void *p) {
    shared_map *m = p;
    pthread_rwlock_destroy(&m->lock);
    luaspoa_map_free(m->data);
    free(m);
}

/* One map per (path, type) in the process, parsed again only when the file
 * changed, in place: every state sees the same data, as with reload(). */
static luaspoa_file_cache maps = LUASPOA_FILE_CACHE(build_map, free_map, swap_map);

static luaspoa_file_obj *check_file(lua_State *L) {
    return *(luaspoa_file_obj **)luaspoa_checkudata(L, 1, LUASPOA_MAP_MT);
}

static shared_map *check_map(lua_State *L) {
    return check_file(L)->obj;
}

static int m_gc(lua_State *L) {
    luaspoa_file_obj **ud = lua_touserdata(L, 1);
    if (*ud != NULL) {
        luaspoa_file_cache_release(&maps, *ud);
        *ud = NULL;
    }
    return 0;
}

/* spoa.map.load(path [, { type = "str" | "beg" | "int" | "ip" }]) */
static int l_load(lua_State *L) {
    luaspoa_require_setup(L, "spoa.map.load", 1);
    lua_settop(L, 2); /* the resolved path is pushed above the options */
    const char *path = luaspoa_resolve_path(L, luaL_checkstring(L, 1));
    int kind = MAP_STR;
    if (luaspoa_check_options(L, 2, "spoa.map.load", "type")) {
        lua_getfield(L, 2, "type");
        const char *t = lua_tostring(L, -1);
        for (kind = 0; t && kind_names[kind] && strcmp(kind_names[kind], t) != 0; kind++) {}
        if (t == NULL || kind_names[kind] == NULL)
            return luaL_error(L, "spoa.map.load: type must be \"str\", \"beg\", \"int\" or \"ip\", got %s",
                              luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
    }
    luaspoa_file_obj **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaspoa_setmetatable(L, LUASPOA_MAP_MT);
    *ud = luaspoa_acquire_file(L, &maps, "spoa.map.load", path, kind);
    return 1;
}

static _Thread_local char *tl_val;
static _Thread_local size_t tl_cap;

/* map:lookup(key) -> value string | nil. Keys: strings; an Addr or an integer
 * where the map type calls for one. */
static int m_lookup(lua_State *L) {
    shared_map *m = check_map(L);
    uint8_t ip[16];
    const char *key = NULL;
    size_t klen = 0;
    int64_t ival = 0;
    if (m->kind == MAP_IP) {
        int family, bits;
        const uint8_t *raw = luaspoa_test_addr(L, 2, &family);
        if (raw) {
            luaspoa_map_ip16(family, raw, ip);
        } else if (lua_type(L, 2) == LUA_TSTRING) {
            key = lua_tolstring(L, 2, &klen);
            if (!luaspoa_map_parse_cidr(key, klen, ip, &bits) || memchr(key, '/', klen))
                return luaL_error(L, "map:lookup: invalid IP address '%s'", key);
        } else {
            return luaL_error(L, "map:lookup: expected an address or a string, got %s", luaL_typename(L, 2));
        }
        key = (const char *)ip;
        klen = 16;
    } else if (m->kind == MAP_INT) {
        if (!lua_isinteger(L, 2) && !(lua_type(L, 2) == LUA_TSTRING && lua_stringtonumber(L, lua_tostring(L, 2)) && lua_isinteger(L, -1)))
            return luaL_error(L, "map:lookup: expected an integer key, got %s", luaL_typename(L, 2));
        ival = lua_tointeger(L, lua_isinteger(L, 2) ? 2 : -1);
    } else {
        if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
            return luaL_error(L, "map:lookup: expected a string key, got %s", luaL_typename(L, 2));
        key = lua_tolstring(L, 2, &klen);
    }
    int found = 0, copied = 1;
    size_t vlen = 0;
    pthread_rwlock_rdlock(&m->lock);
    const map_entry *e = luaspoa_map_find(m->data, key, klen, ival);
    if (e) {
        found = 1;
        vlen = e->vlen;
        if (vlen > tl_cap) {
            char *p = realloc(tl_val, vlen);
            if (p) {
                tl_val = p;
                tl_cap = vlen;
            }
        }
        if (vlen <= tl_cap)
            memcpy(tl_val, e->val, vlen);
        else
            copied = 0;
    }
    pthread_rwlock_unlock(&m->lock);
    if (!copied)
        return luaL_error(L, "map:lookup: out of memory");
    if (found)
        lua_pushlstring(L, tl_val, vlen);
    else
        lua_pushnil(L);
    return 1;
}

static int m_size(lua_State *L) {
    shared_map *m = check_map(L);
    pthread_rwlock_rdlock(&m->lock);
    lua_Integer n = (lua_Integer)m->data->n;
    pthread_rwlock_unlock(&m->lock);
    lua_pushinteger(L, n);
    return 1;
}

/* map:reload() -> true | nil, err. Every state sees the new data at once. */
static int m_reload(lua_State *L) {
    luaspoa_file_obj *o = check_file(L);
    shared_map *m = o->obj;
    if (luaspoa_rt_get(L)->active)
        return luaL_error(L, "map:reload is not available in message handlers (use a task)");
    char err[512];
    luaspoa_file_id id;
    if (!swap_map(m, o->path, m->kind, &id, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    luaspoa_file_cache_set_id(&maps, o, &id); /* a load of the same file shares this data */
    lua_pushboolean(L, 1);
    return 1;
}

static int m_tostring(lua_State *L) {
    luaspoa_file_obj *o = check_file(L);
    lua_pushfstring(L, "spoa.map(%s, %s)", o->path, kind_names[o->kind]);
    return 1;
}

void luaspoa_open_map(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"lookup", m_lookup}, {"size", m_size}, {"reload", m_reload}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", m_gc}, {NULL, NULL}};
    luaspoa_new_named_class(L, LUASPOA_MAP_MT, "spoa.map", methods, m_tostring, meta);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
    lua_setfield(L, -2, "map");
}
