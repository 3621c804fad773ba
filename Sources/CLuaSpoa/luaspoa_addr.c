/* spoa.Addr: IP address full userdata (family + 16 address bytes), its
 * predicates and conversions, value comparison, and the spoa.addr* constructors. */
#include <string.h>

#include "luaspoa_internal.h"

void luaspoa_push_addr(lua_State *L, int family, const uint8_t *bytes) {
    luaspoa_addr *a = lua_newuserdatauv(L, sizeof *a, 0);
    a->family = (uint8_t)family;
    memset(a->bytes, 0, sizeof a->bytes);
    memcpy(a->bytes, bytes, family == 4 ? 4 : 16);
    luaspoa_setmetatable(L, LUASPOA_ADDR_MT);
}

const uint8_t *luaspoa_test_addr(lua_State *L, int idx, int *family) {
    luaspoa_addr *a = luaspoa_testudata(L, idx, LUASPOA_ADDR_MT);
    if (a == NULL)
        return NULL;
    *family = a->family;
    return a->bytes;
}

luaspoa_addr *luaspoa_check_addr(lua_State *L, int idx) {
    return luaspoa_checkudata(L, idx, LUASPOA_ADDR_MT);
}

int luaspoa_to_addr(lua_State *L, int idx, luaspoa_addr *out) {
    luaspoa_addr *a = luaspoa_testudata(L, idx, LUASPOA_ADDR_MT);
    if (a != NULL) {
        *out = *a;
        return 1;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    int family;
    if (!luaspoa_parse_addr(s, len, &family, out->bytes))
        return 0;
    out->family = (uint8_t)family;
    return 1;
}

void luaspoa_check_addr_arg(lua_State *L, int idx, luaspoa_addr *out, const char *what) {
    if (luaspoa_to_addr(L, idx, out))
        return;
    if (lua_type(L, idx) == LUA_TSTRING)
        luaL_error(L, "%s: invalid IP address: %s", what, lua_tostring(L, idx));
    luaL_error(L, "%s: address or string expected, got %s", what, luaL_typename(L, idx));
}

const char *luaspoa_push_addr_text(lua_State *L, int family, const uint8_t *bytes) {
    char buf[LUASPOA_ADDR_TEXT_MAX];
    return lua_pushlstring(L, buf, luaspoa_format_addr(family, bytes, buf));
}

static int addr_tostring(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    luaspoa_push_addr_text(L, a->family, a->bytes);
    return 1;
}

static int addr_concat(lua_State *L) {
    for (int i = 1; i <= 2; i++) {
        luaspoa_addr *a = luaspoa_testudata(L, i, LUASPOA_ADDR_MT);
        if (a != NULL)
            luaspoa_push_addr_text(L, a->family, a->bytes);
        else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER)
            lua_pushvalue(L, i);
        else
            return luaL_error(L, "attempt to concatenate an address with a %s value",
                              luaL_typename(L, i));
    }
    lua_concat(L, 2);
    return 1;
}

/* Orders addresses by family (IPv4 first), then bytes: a total order for sorting. */
static int addr_compare(const luaspoa_addr *a, const luaspoa_addr *b) {
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->bytes, b->bytes, 16);
}

static int addr_eq(lua_State *L) {
    luaspoa_addr *a = luaspoa_testudata(L, 1, LUASPOA_ADDR_MT);
    luaspoa_addr *b = luaspoa_testudata(L, 2, LUASPOA_ADDR_MT);
    lua_pushboolean(L, a && b && addr_compare(a, b) == 0);
    return 1;
}

static int addr_lt(lua_State *L) {
    lua_pushboolean(L, addr_compare(luaspoa_check_addr(L, 1), luaspoa_check_addr(L, 2)) < 0);
    return 1;
}

static int addr_le(lua_State *L) {
    lua_pushboolean(L, addr_compare(luaspoa_check_addr(L, 1), luaspoa_check_addr(L, 2)) <= 0);
    return 1;
}

/* a:equals(x): x is an Addr or a text address; invalid text is simply unequal. */
static int addr_equals(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    luaspoa_addr b;
    lua_pushboolean(L, luaspoa_to_addr(L, 2, &b) && addr_compare(a, &b) == 0);
    return 1;
}

static int addr_family(lua_State *L) {
    lua_pushinteger(L, luaspoa_check_addr(L, 1)->family);
    return 1;
}

static int addr_is_v4(lua_State *L) {
    lua_pushboolean(L, luaspoa_check_addr(L, 1)->family == 4);
    return 1;
}

static int addr_is_v6(lua_State *L) {
    lua_pushboolean(L, luaspoa_check_addr(L, 1)->family == 6);
    return 1;
}

static const uint8_t v4_mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};

static int is_v4_mapped(const luaspoa_addr *a) {
    return a->family == 6 && memcmp(a->bytes, v4_mapped_prefix, 12) == 0;
}

/* The well-known ranges, as (family, prefix bits, first bytes). */
typedef struct known_net {
    uint8_t family, bits, bytes[2];
} known_net;

static int in_known(const luaspoa_addr *a, const known_net *nets, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (nets[i].family != a->family)
            continue;
        luaspoa_net net = {.family = nets[i].family, .bits = nets[i].bits};
        memcpy(net.bytes, nets[i].bytes, 2);
        if (luaspoa_net_contains(&net, a))
            return 1;
    }
    return 0;
}

#define KNOWN(L, a, ...) do { \
        static const known_net nets_[] = {__VA_ARGS__}; \
        lua_pushboolean(L, in_known(a, nets_, sizeof nets_ / sizeof nets_[0])); \
        return 1; \
    } while (0)

static int addr_is_loopback(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    static const uint8_t v6_loopback[16] = {[15] = 1};
    if (a->family == 6) {
        lua_pushboolean(L, memcmp(a->bytes, v6_loopback, 16) == 0);
        return 1;
    }
    KNOWN(L, a, {4, 8, {127}});
}

static int addr_is_private(lua_State *L) {
    KNOWN(L, luaspoa_check_addr(L, 1), {4, 8, {10}}, {4, 12, {172, 16}}, {4, 16, {192, 168}},
          {6, 7, {0xfc}});
}

static int addr_is_link_local(lua_State *L) {
    KNOWN(L, luaspoa_check_addr(L, 1), {4, 16, {169, 254}}, {6, 10, {0xfe, 0x80}});
}

static int addr_is_multicast(lua_State *L) {
    KNOWN(L, luaspoa_check_addr(L, 1), {4, 4, {224}}, {6, 8, {0xff}});
}

static int addr_is_unspecified(lua_State *L) {
    static const uint8_t zero[16];
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    lua_pushboolean(L, memcmp(a->bytes, zero, 16) == 0);
    return 1;
}

static int addr_is_v4_mapped(lua_State *L) {
    lua_pushboolean(L, is_v4_mapped(luaspoa_check_addr(L, 1)));
    return 1;
}

/* a:unmap(): ::ffff:a.b.c.d becomes a.b.c.d; any other address is returned as is. */
static int addr_unmap(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    if (is_v4_mapped(a))
        luaspoa_push_addr(L, 4, a->bytes + 12);
    else
        lua_settop(L, 1);
    return 1;
}

/* a:mask(bits): the network address of a's /bits. */
static int addr_mask(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    lua_Integer bits = luaL_checkinteger(L, 2);
    int max = a->family == 4 ? 32 : 128;
    if (bits < 0 || bits > max)
        return luaL_error(L, "mask: prefix length %I out of range for IPv%d (0..%d)", bits,
                          (int)a->family, max);
    luaspoa_addr m = *a;
    luaspoa_mask_bytes(m.bytes, (int)bits);
    luaspoa_push_addr(L, m.family, m.bytes);
    return 1;
}

/* a:bytes() and a:key(): the raw 4 or 16 bytes (network order), which are also
 * a unique per-address table key (IPv4 and IPv6 keys differ in length). */
static int addr_bytes(lua_State *L) {
    luaspoa_addr *a = luaspoa_check_addr(L, 1);
    lua_pushlstring(L, (const char *)a->bytes, a->family == 4 ? 4 : 16);
    return 1;
}

/* spoa.addr(text) -> Addr | nil, err (an Addr argument is copied) */
static int l_addr(lua_State *L) {
    luaspoa_addr a;
    if (luaspoa_to_addr(L, 1, &a)) {
        luaspoa_push_addr(L, a.family, a.bytes);
        return 1;
    }
    const char *s = luaL_checkstring(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "invalid IP address: %s", s);
    return 2;
}

/* spoa.addr_from_bytes(raw) -> Addr | nil, err (raw: 4 or 16 bytes) */
static int l_addr_from_bytes(lua_State *L) {
    size_t len;
    const char *raw = luaL_checklstring(L, 1, &len);
    if (len != 4 && len != 16) {
        lua_pushnil(L);
        lua_pushfstring(L, "address bytes must be 4 or 16 bytes long, got %d", (int)len);
        return 2;
    }
    luaspoa_push_addr(L, len == 4 ? 4 : 6, (const uint8_t *)raw);
    return 1;
}

static int l_is_addr(lua_State *L) {
    lua_pushboolean(L, luaspoa_testudata(L, 1, LUASPOA_ADDR_MT) != NULL);
    return 1;
}

void luaspoa_new_named_class(lua_State *L, const char *mt, const char *name,
                             const luaL_Reg *methods, lua_CFunction tostring, const luaL_Reg *meta) {
    luaspoa_new_class(L, mt, methods, tostring);
    luaL_getmetatable(L, mt);
    if (meta != NULL)
        luaL_setfuncs(L, meta, 0);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

void luaspoa_open_addr(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__concat", addr_concat}, {"__eq", addr_eq},
        {"__lt", addr_lt}, {"__le", addr_le}, {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"family", addr_family}, {"is_v4", addr_is_v4}, {"is_v6", addr_is_v6},
        {"is_loopback", addr_is_loopback}, {"is_private", addr_is_private},
        {"is_link_local", addr_is_link_local}, {"is_multicast", addr_is_multicast},
        {"is_unspecified", addr_is_unspecified}, {"is_v4_mapped", addr_is_v4_mapped},
        {"unmap", addr_unmap}, {"mask", addr_mask}, {"bytes", addr_bytes}, {"key", addr_bytes},
        {"equals", addr_equals}, {"in_cidr", luaspoa_addr_in_cidr}, {NULL, NULL},
    };
    luaspoa_new_named_class(L, LUASPOA_ADDR_MT, "spoa.Addr", methods, addr_tostring, meta);
    static const luaL_Reg constructors[] = {
        {"addr", l_addr}, {"addr_from_bytes", l_addr_from_bytes}, {"is_addr", l_is_addr},
        {NULL, NULL},
    };
    luaL_setfuncs(L, constructors, 0);
}
