/* spoa.Addr: IP address full userdata (family byte + 16 address bytes). */
#include <arpa/inet.h>
#include <string.h>

#include "luaspoa_internal.h"

typedef struct luaspoa_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t bytes[16];
} luaspoa_addr;

void luaspoa_push_addr(lua_State *L, int family, const uint8_t *bytes) {
    luaspoa_addr *a = lua_newuserdatauv(L, sizeof *a, 0);
    a->family = (uint8_t)family;
    memset(a->bytes, 0, sizeof a->bytes);
    memcpy(a->bytes, bytes, family == 4 ? 4 : 16);
    luaL_setmetatable(L, LUASPOA_ADDR_MT);
}

const uint8_t *luaspoa_test_addr(lua_State *L, int idx, int *family) {
    luaspoa_addr *a = luaL_testudata(L, idx, LUASPOA_ADDR_MT);
    if (a == NULL)
        return NULL;
    *family = a->family;
    return a->bytes;
}

int luaspoa_parse_addr(const char *s, size_t len, int *family, uint8_t out[16]) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (len >= sizeof buf || memchr(s, '\0', len) != NULL)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = 4;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *family = 6;
        return 1;
    }
    return 0;
}

static luaspoa_addr *check_addr(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, LUASPOA_ADDR_MT);
}

/* Pushes the canonical text form (RFC 5952 for IPv6, via inet_ntop). */
static const char *push_text(lua_State *L, const luaspoa_addr *a) {
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, buf, sizeof buf) == NULL)
        return lua_pushliteral(L, "?");
    return lua_pushstring(L, buf);
}

static int addr_tostring(lua_State *L) {
    push_text(L, check_addr(L, 1));
    return 1;
}

static int addr_concat(lua_State *L) {
    for (int i = 1; i <= 2; i++) {
        luaspoa_addr *a = luaL_testudata(L, i, LUASPOA_ADDR_MT);
        if (a != NULL)
            push_text(L, a);
        else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER)
            lua_pushvalue(L, i);
        else
            return luaL_error(L, "attempt to concatenate an address with a %s value",
                              luaL_typename(L, i));
    }
    lua_concat(L, 2);
    return 1;
}

static int addr_eq(lua_State *L) {
    luaspoa_addr *a = luaL_testudata(L, 1, LUASPOA_ADDR_MT);
    luaspoa_addr *b = luaL_testudata(L, 2, LUASPOA_ADDR_MT);
    lua_pushboolean(L, a && b && a->family == b->family &&
                           memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0);
    return 1;
}

static int addr_family(lua_State *L) {
    lua_pushinteger(L, check_addr(L, 1)->family);
    return 1;
}

static int addr_is_loopback(lua_State *L) {
    luaspoa_addr *a = check_addr(L, 1);
    static const uint8_t v6_loopback[16] = {[15] = 1};
    if (a->family == 4)
        lua_pushboolean(L, a->bytes[0] == 127);
    else
        lua_pushboolean(L, memcmp(a->bytes, v6_loopback, 16) == 0);
    return 1;
}

/* spoa.addr(text) -> Addr | nil, err */
static int l_addr(lua_State *L) {
    if (luaL_testudata(L, 1, LUASPOA_ADDR_MT)) {
        lua_settop(L, 1);
        return 1;
    }
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int family;
    uint8_t bytes[16];
    if (!luaspoa_parse_addr(s, len, &family, bytes)) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid IP address: %s", s);
        return 2;
    }
    luaspoa_push_addr(L, family, bytes);
    return 1;
}

static int l_is_addr(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, LUASPOA_ADDR_MT) != NULL);
    return 1;
}

void luaspoa_open_addr(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__tostring", addr_tostring}, {"__concat", addr_concat}, {"__eq", addr_eq},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"family", addr_family}, {"is_loopback", addr_is_loopback}, {NULL, NULL},
    };
    luaL_newmetatable(L, LUASPOA_ADDR_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "spoa.Addr");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_addr);
    lua_setfield(L, -2, "addr");
    lua_pushcfunction(L, l_is_addr);
    lua_setfield(L, -2, "is_addr");
}
