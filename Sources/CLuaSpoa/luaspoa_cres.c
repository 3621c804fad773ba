/* A C library resource (an OpenSSL context, PCRE2 match data) owned by a Lua
 * userdata on the stack while a C function uses it: a Lua error raised
 * meanwhile (the time budget, the memory limit) longjmps past the function's
 * own cleanup, and the resource is then freed by __gc instead of leaking. */
#include "luaspoa_internal.h"

#define CRES_CLASS "luaspoa.cres"

static int cres_gc(lua_State *L) {
    luaspoa_cres_free(lua_touserdata(L, 1));
    return 0;
}

luaspoa_cres *luaspoa_cres_push(lua_State *L, void (*free_fn)(void *)) {
    luaspoa_cres *r = lua_newuserdatauv(L, sizeof *r, 0);
    r->p = NULL;
    r->free_fn = free_fn;
    luaspoa_setmetatable(L, CRES_CLASS); /* cached: this runs on every regex match */
    return r;
}

void luaspoa_open_cres(lua_State *L) {
    luaL_newmetatable(L, CRES_CLASS);
    lua_pushcfunction(L, cres_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

void luaspoa_cres_free(luaspoa_cres *r) {
    if (r != NULL && r->p != NULL) {
        r->free_fn(r->p);
        r->p = NULL;
    }
}
