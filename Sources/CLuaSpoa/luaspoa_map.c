/* spoa.map: read-mostly maps loaded once per process per (path, type) and
 * shared by every state. A map's data is immutable; reload() parses aside and
 * swaps it under a write lock, keeping the old data if the new file fails.
 * Lookups copy the value out under the read lock and push it after, so no Lua
 * error fires while the lock is held. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"
#include "luaspoa_mapdata.h"

#define LUASPOA_MAP_MT "luaspoa.Map"

typedef struct shared_map {
    char *path;
    int kind;
    pthread_rwlock_t lock;
    map_data *data;
    struct shared_map *next;
} shared_map;

static const char *const kind_names[] = {"str", "beg", "int", "ip", NULL};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static shared_map *maps;

/* Finds or loads the map; parsing happens under maps_lock so it runs once. */
static shared_map *get_map(const char *path, int kind, char *err, size_t errcap) {
    pthread_mutex_lock(&maps_lock);
    shared_map *m = maps;
    while (m && (m->kind != kind || strcmp(m->path, path) != 0))
        m = m->next;
    if (m == NULL) {
        map_data *data = luaspoa_map_parse(path, kind, err, errcap);
        if (data && (m = calloc(1, sizeof *m)) != NULL && (m->path = strdup(path)) != NULL) {
            m->kind = kind;
            m->data = data;
            pthread_rwlock_init(&m->lock, NULL);
            m->next = maps;
            maps = m;
        } else if (data) {
            free(m);
            m = NULL;
            luaspoa_map_free(data);
            snprintf(err, errcap, "out of memory loading %s", path);
        }
    }
    pthread_mutex_unlock(&maps_lock);
    return m;
}

static shared_map *check_map(lua_State *L) {
    return *(shared_map **)luaL_checkudata(L, 1, LUASPOA_MAP_MT);
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
    char err[512];
    shared_map *m = get_map(path, kind, err, sizeof err);
    if (m == NULL)
        return luaL_error(L, "spoa.map.load: %s", err);
    *(shared_map **)lua_newuserdatauv(L, sizeof m, 0) = m;
    luaL_setmetatable(L, LUASPOA_MAP_MT);
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
    shared_map *m = check_map(L);
    if (luaspoa_rt_get(L)->active)
        return luaL_error(L, "map:reload is not available in message handlers (use a task)");
    char err[512];
    map_data *fresh = luaspoa_map_parse(m->path, m->kind, err, sizeof err);
    if (fresh == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    pthread_rwlock_wrlock(&m->lock);
    map_data *old = m->data;
    m->data = fresh;
    pthread_rwlock_unlock(&m->lock);
    luaspoa_map_free(old);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_tostring(lua_State *L) {
    shared_map *m = check_map(L);
    lua_pushfstring(L, "spoa.map(%s, %s)", m->path, kind_names[m->kind]);
    return 1;
}

void luaspoa_open_map(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"lookup", m_lookup}, {"size", m_size}, {"reload", m_reload}, {NULL, NULL},
    };
    luaspoa_new_class(L, LUASPOA_MAP_MT, methods, m_tostring);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
    lua_setfield(L, -2, "map");
}
