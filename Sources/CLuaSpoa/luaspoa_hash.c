/* spoa.hash: string hashes in C, for sampling, bucketing and scoring.
 *
 * A hash written in Lua calls string.byte once per character: FNV-1a of an
 * address's text was 37 % of ip_reputation.lua's instructions per message
 * (tools/dispatch-cost.c under callgrind: 21,640 -> see the commit). crc32 and
 * djb2 give the values of HAProxy's converters of the same names, so a key
 * hashed in HAProxy and in the agent agrees. All return an integer 0..2^32-1. */
#include <stdint.h>

#include "luaspoa_internal.h"

static uint32_t fnv1a32(const unsigned char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib and HAProxy's hash_crc32). */
static uint32_t crc32_ieee(const unsigned char *s, size_t len) {
    static uint32_t table[256];
    static _Atomic int ready;
    if (!atomic_load_explicit(&ready, memory_order_acquire)) {
        /* Idempotent: threads racing here write the same values. */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        atomic_store_explicit(&ready, 1, memory_order_release);
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ s[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* djb2 as HAProxy's hash_djb2: h * 33 + c from 5381, 32 bits. */
static uint32_t djb2(const unsigned char *s, size_t len) {
    uint32_t h = 5381;
    for (size_t i = 0; i < len; i++)
        h = (h << 5) + h + s[i];
    return h;
}

/* The bytes to hash: a string as is, an address as its text (tostring(ip)),
 * formatted into buf without making a Lua string of it. */
static const unsigned char *hash_input(lua_State *L, size_t *len, char buf[LUASPOA_ADDR_TEXT_MAX]) {
    int family;
    const uint8_t *addr = luaspoa_test_addr(L, 1, &family);
    if (addr != NULL) {
        *len = luaspoa_format_addr(family, addr, buf);
        return (const unsigned char *)buf;
    }
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER)
        luaL_typeerror(L, 1, "string or address");
    return (const unsigned char *)lua_tolstring(L, 1, len);
}

#define HASH_FUNCTION(name)                                                    \
    static int l_##name(lua_State *L) {                                        \
        size_t len;                                                            \
        char buf[LUASPOA_ADDR_TEXT_MAX];                                       \
        const unsigned char *s = hash_input(L, &len, buf);                     \
        lua_pushinteger(L, (lua_Integer)name(s, len));                         \
        return 1;                                                              \
    }
HASH_FUNCTION(fnv1a32)
HASH_FUNCTION(crc32_ieee)
HASH_FUNCTION(djb2)

void luaspoa_open_hash(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"fnv1a32", l_fnv1a32}, {"crc32", l_crc32_ieee}, {"djb2", l_djb2}, {NULL, NULL},
    };
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "hash");
}
