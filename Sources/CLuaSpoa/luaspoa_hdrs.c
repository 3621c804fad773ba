/* spoa.parse_hdrs_bin(bin): decodes HAProxy's req.hdrs_bin / res.hdrs_bin.
 *
 * Format (HAProxy configuration.txt, "req.hdrs_bin"):
 *     *(<str:header-name><str:header-value>) <empty string><empty string>
 * where <str> is a varint length (SPOP/peers varint, docs/spop-protocol.md §1.4)
 * followed by that many bytes. Input comes from the network: every length is
 * checked, and malformed input returns nil plus a message naming the offset. */
#include <ctype.h>
#include <string.h>

#include "luaspoa_internal.h"

/* Decodes one varint at *pos; returns 0 if the input ends inside it or it overflows. */
static int read_varint(const unsigned char *p, size_t len, size_t *pos, uint64_t *out) {
    if (*pos >= len)
        return 0;
    uint64_t v = p[(*pos)++];
    if (v >= 240) {
        unsigned shift = 4;
        unsigned char b;
        do {
            if (*pos >= len || shift > 63)
                return 0;
            b = p[(*pos)++];
            v += (uint64_t)b << shift;
            shift += 7;
        } while (b >= 128);
    }
    *out = v;
    return 1;
}

/* Reads one <str>; returns 0 if it is truncated. */
static int read_str(const unsigned char *p, size_t len, size_t *pos, const char **s, size_t *n) {
    uint64_t l;
    if (!read_varint(p, len, pos, &l) || l > len - *pos)
        return 0;
    *s = (const char *)p + *pos;
    *n = (size_t)l;
    *pos += (size_t)l;
    return 1;
}

static int fail(lua_State *L, const char *why, size_t offset) {
    lua_pushnil(L);
    lua_pushfstring(L, "spoa.parse_hdrs_bin: %s at byte %d", why, (int)offset);
    return 2;
}

/* spoa.parse_hdrs_bin(bin) -> headers, order | nil, err
 * headers: { [lowercase name] = value } (repeated headers joined with ", ");
 * order: lowercase names as received, one per header line (repeats included). */
static int l_parse_hdrs_bin(lua_State *L) {
    size_t len;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    lua_newtable(L); /* 2: headers */
    lua_newtable(L); /* 3: order */
    luaL_Buffer lower;
    size_t pos = 0;
    lua_Integer count = 0;
    for (;;) {
        size_t at = pos, nlen, vlen;
        const char *name, *value;
        if (!read_str(p, len, &pos, &name, &nlen))
            return fail(L, at == len ? "missing end marker" : "truncated header name", at);
        at = pos;
        if (!read_str(p, len, &pos, &value, &vlen))
            return fail(L, "truncated header value", at);
        if (nlen == 0) {
            if (vlen != 0)
                return fail(L, "header value without a name", at);
            break; /* end marker: two empty strings */
        }
        char *dst = luaL_buffinitsize(L, &lower, nlen);
        for (size_t i = 0; i < nlen; i++)
            dst[i] = (char)tolower((unsigned char)name[i]);
        luaL_pushresultsize(&lower, nlen); /* 4: lowercase name */
        lua_pushvalue(L, 4);
        lua_rawseti(L, 3, ++count);
        lua_pushvalue(L, 4);
        if (lua_rawget(L, 2) == LUA_TSTRING) { /* repeated: join with ", " */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vlen);
        }
        lua_rawset(L, 2);
    }
    if (pos != len)
        return fail(L, "trailing bytes after the end marker", pos);
    return 2;
}

void luaspoa_open_hdrs(lua_State *L) {
    lua_pushcfunction(L, l_parse_hdrs_bin);
    lua_setfield(L, -2, "parse_hdrs_bin");
}
