/* spoa.geoip: MaxMind DB files (GeoIP2/GeoLite2, DB-IP, ...) over libmaxminddb.
 *
 * A database is memory-mapped once per process and shared read-only by every
 * worker state (libmaxminddb lookups on one MMDB_s are thread-safe), in a
 * luaspoa_filecache.c cache: a reload (SIGHUP) finds the same mapping when the
 * file did not change, or maps the new file (a geoipupdate replaces it); a
 * mapping is unmapped when its last state closes.
 *
 * Bounded: opening happens at load time only (disk I/O); a lookup is one walk
 * of at most 128 tree nodes plus the conversion of one record (libmaxminddb
 * caps its nesting at 512), so neither needs a budget poll. */
#include <arpa/inet.h>
#include <errno.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_filecache.h"
#include "luaspoa_internal.h"

#define GEOIP_CLASS "spoa.geoip.db"
#define GEOIP_PATH_MAX_KEYS 16

/* Opens the database (a luaspoa_file_build). */
static void *open_db(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap) {
    (void)kind;
    (void)id; /* libmaxminddb maps the path itself: the stat before is the identity */
    MMDB_s *mmdb = malloc(sizeof *mmdb);
    if (mmdb == NULL) {
        snprintf(err, errcap, "%s: %s", path, MMDB_strerror(MMDB_OUT_OF_MEMORY_ERROR));
        return NULL;
    }
    errno = 0;
    int status = MMDB_open(path, MMDB_MODE_MMAP, mmdb);
    if (status != MMDB_SUCCESS) {
        int saved_errno = errno;
        snprintf(err, errcap, "%s: %s%s%s", path, MMDB_strerror(status),
                 status == MMDB_IO_ERROR && saved_errno ? ": " : "",
                 status == MMDB_IO_ERROR && saved_errno ? strerror(saved_errno) : "");
        free(mmdb);
        return NULL;
    }
    return mmdb;
}

static void close_db(void *p) {
    MMDB_close(p);
    free(p);
}

static luaspoa_file_cache databases = LUASPOA_FILE_CACHE(open_db, close_db, NULL);

static int db_gc(lua_State *L) {
    luaspoa_file_obj **ud = lua_touserdata(L, 1);
    if (*ud != NULL) {
        luaspoa_file_cache_release(&databases, *ud);
        *ud = NULL;
    }
    return 0;
}

/* spoa.geoip.open(path): relative paths from the script's directory. */
static int l_open(lua_State *L) {
    luaspoa_require_setup(L, "spoa.geoip.open", 1);
    const char *path = luaspoa_resolve_path(L, luaL_checkstring(L, 1));
    luaspoa_file_obj **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaspoa_setmetatable(L, GEOIP_CLASS);
    *ud = luaspoa_acquire_file(L, &databases, "spoa.geoip.open", path, 0);
    return 1;
}

static MMDB_s *check_db(lua_State *L) {
    luaspoa_file_obj **ud = luaspoa_checkudata(L, 1, GEOIP_CLASS);
    return (*ud)->obj;
}

static void free_list(void *p) { MMDB_free_entry_data_list(p); }

static void push_data(lua_State *L, const MMDB_entry_data_s *d) {
    switch (d->type) {
    case MMDB_DATA_TYPE_UTF8_STRING: lua_pushlstring(L, d->utf8_string, d->data_size); break;
    case MMDB_DATA_TYPE_BYTES: lua_pushlstring(L, (const char *)d->bytes, d->data_size); break;
    case MMDB_DATA_TYPE_DOUBLE: lua_pushnumber(L, d->double_value); break;
    case MMDB_DATA_TYPE_FLOAT: lua_pushnumber(L, d->float_value); break;
    case MMDB_DATA_TYPE_UINT16: lua_pushinteger(L, d->uint16); break;
    case MMDB_DATA_TYPE_UINT32: lua_pushinteger(L, d->uint32); break;
    case MMDB_DATA_TYPE_INT32: lua_pushinteger(L, d->int32); break;
    case MMDB_DATA_TYPE_UINT64:
        if (d->uint64 > (uint64_t)LUA_MAXINTEGER)
            lua_pushnumber(L, (lua_Number)d->uint64);
        else
            lua_pushinteger(L, (lua_Integer)d->uint64);
        break;
    case MMDB_DATA_TYPE_UINT128: {
        /* No Lua number holds 128 bits: its 32 hex digits. */
        uint8_t bytes[16];
#if MMDB_UINT128_IS_BYTE_ARRAY
        memcpy(bytes, d->uint128, 16);
#else
        for (int i = 0; i < 16; i++)
            bytes[i] = (uint8_t)(d->uint128 >> (8 * (15 - i)));
#endif
        char hex[33];
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
        lua_pushlstring(L, hex, 32);
        break;
    }
    case MMDB_DATA_TYPE_BOOLEAN: lua_pushboolean(L, d->boolean); break;
    default: lua_pushnil(L); break;
    }
}

/* Pushes the value starting at l (a map or array takes the entries after it);
 * returns the entry after the value. */
static MMDB_entry_data_list_s *push_list(lua_State *L, MMDB_entry_data_list_s *l) {
    if (l == NULL) {
        lua_pushnil(L);
        return NULL;
    }
    luaL_checkstack(L, 4, "MaxMind DB record nesting");
    uint32_t n = l->entry_data.data_size;
    if (l->entry_data.type == MMDB_DATA_TYPE_MAP) {
        lua_createtable(L, 0, (int)(n < 64 ? n : 64));
        l = l->next;
        for (uint32_t i = 0; i < n && l != NULL; i++) {
            push_data(L, &l->entry_data); /* the key, a string */
            l = push_list(L, l->next);
            lua_rawset(L, -3);
        }
        return l;
    }
    if (l->entry_data.type == MMDB_DATA_TYPE_ARRAY) {
        lua_createtable(L, (int)(n < 64 ? n : 64), 0);
        l = l->next;
        for (uint32_t i = 0; i < n && l != NULL; i++) {
            l = push_list(L, l);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return l;
    }
    push_data(L, &l->entry_data);
    return l->next;
}

/* Pushes the whole value at entry (a record, or a map/array inside one);
 * returns 0 with a message pushed on a corrupt file. */
static int push_entry(lua_State *L, MMDB_entry_s *entry) {
    luaspoa_cres *owner = luaspoa_cres_push(L, free_list);
    MMDB_entry_data_list_s *list = NULL;
    int status = MMDB_get_entry_data_list(entry, &list);
    owner->p = list;
    if (status != MMDB_SUCCESS) {
        lua_pushstring(L, MMDB_strerror(status));
        return 0;
    }
    push_list(L, list);
    luaspoa_cres_free(owner);
    lua_remove(L, -2);
    return 1;
}

/* push_entry as a Lua result: the value, or nil and the message. */
static int entry_result(lua_State *L, MMDB_entry_s *entry) {
    if (push_entry(L, entry))
        return 1;
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

static int lookup_error(lua_State *L, const char *what) {
    luaL_pushfail(L);
    lua_pushstring(L, what);
    return 2;
}

/* db:lookup(addr [, key, ...]): the record (or the value at the key path), nil
 * when the database has no network for addr. addr is a spoa address or text. */
static int l_lookup(lua_State *L) {
    MMDB_s *mmdb = check_db(L);
    int family, gai = 0, status = MMDB_SUCCESS;
    MMDB_lookup_result_s r;
    const uint8_t *bytes = luaspoa_test_addr(L, 2, &family);
    if (bytes != NULL) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (family == 4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, bytes, 4);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, bytes, 16);
        }
        r = MMDB_lookup_sockaddr(mmdb, (struct sockaddr *)&ss, &status);
    } else {
        const char *text = luaL_checkstring(L, 2);
        /* Only a numeric address: getaddrinfo would otherwise resolve names. */
        unsigned char probe[16];
        if (inet_pton(AF_INET, text, probe) != 1 && inet_pton(AF_INET6, text, probe) != 1)
            return lookup_error(L, "invalid address");
        r = MMDB_lookup_string(mmdb, text, &gai, &status);
        if (gai != 0)
            return lookup_error(L, "invalid address");
    }
    if (status != MMDB_SUCCESS)
        return lookup_error(L, MMDB_strerror(status));
    if (!r.found_entry) {
        luaL_pushfail(L);
        return 1;
    }
    int nkeys = lua_gettop(L) - 2;
    if (nkeys == 0)
        return entry_result(L, &r.entry);
    luaL_argcheck(L, nkeys <= GEOIP_PATH_MAX_KEYS, GEOIP_PATH_MAX_KEYS + 3, "too many keys");
    const char *keys[GEOIP_PATH_MAX_KEYS + 1];
    for (int i = 0; i < nkeys; i++) {
        int type = lua_type(L, 3 + i);
        if (type == LUA_TSTRING) { /* the argument itself: it stays on the stack */
            keys[i] = lua_tostring(L, 3 + i);
            continue;
        }
        if (type == LUA_TNUMBER) /* an array index: 0-based in MMDB paths */
            lua_pushfstring(L, "%I", (lua_Integer)luaL_checkinteger(L, 3 + i) - 1);
        else
            lua_pushvalue(L, 3 + i);
        keys[i] = luaL_checkstring(L, -1);
    }
    keys[nkeys] = NULL;
    MMDB_entry_data_s d;
    status = MMDB_aget_value(&r.entry, &d, keys);
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || status == MMDB_INVALID_LOOKUP_PATH_ERROR ||
        (status == MMDB_SUCCESS && !d.has_data)) {
        luaL_pushfail(L);
        return 1;
    }
    if (status != MMDB_SUCCESS)
        return lookup_error(L, MMDB_strerror(status));
    if (d.type == MMDB_DATA_TYPE_MAP || d.type == MMDB_DATA_TYPE_ARRAY) {
        MMDB_entry_s sub = {.mmdb = r.entry.mmdb, .offset = d.offset};
        return entry_result(L, &sub);
    }
    push_data(L, &d);
    return 1;
}

/* db:metadata() */
static int l_metadata(lua_State *L) {
    const MMDB_metadata_s *m = &check_db(L)->metadata;
    lua_createtable(L, 0, 9);
    lua_pushstring(L, m->database_type);
    lua_setfield(L, -2, "database_type");
    lua_pushinteger(L, m->ip_version);
    lua_setfield(L, -2, "ip_version");
    lua_pushinteger(L, m->node_count);
    lua_setfield(L, -2, "node_count");
    lua_pushinteger(L, m->record_size);
    lua_setfield(L, -2, "record_size");
    lua_pushinteger(L, (lua_Integer)m->build_epoch);
    lua_setfield(L, -2, "build_epoch");
    lua_pushinteger(L, m->binary_format_major_version);
    lua_setfield(L, -2, "binary_format_major_version");
    lua_pushinteger(L, m->binary_format_minor_version);
    lua_setfield(L, -2, "binary_format_minor_version");
    lua_createtable(L, (int)m->languages.count, 0);
    for (size_t i = 0; i < m->languages.count; i++) {
        lua_pushstring(L, m->languages.names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "languages");
    lua_createtable(L, 0, (int)m->description.count);
    for (size_t i = 0; i < m->description.count; i++) {
        lua_pushstring(L, m->description.descriptions[i]->description);
        lua_setfield(L, -2, m->description.descriptions[i]->language);
    }
    lua_setfield(L, -2, "description");
    return 1;
}

void luaspoa_open_geoip(lua_State *L) {
    static const luaL_Reg methods[] = {{"lookup", l_lookup}, {"metadata", l_metadata}, {NULL, NULL}};
    luaL_newmetatable(L, GEOIP_CLASS);
    lua_pushcfunction(L, db_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_open);
    lua_setfield(L, -2, "open");
    lua_setfield(L, -2, "geoip");
}
