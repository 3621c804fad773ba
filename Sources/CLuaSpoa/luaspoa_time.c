/* The clock every luaspoa time read goes through (spoa.now*, shared-dict TTLs),
 * replaceable by a frozen clock for tests, and the spoa.now* functions. */
#include <stdatomic.h>
#include <time.h>

#include "luaspoa_internal.h"
#include "luaspoa_process.h"

/* Frozen epoch milliseconds, or -1 for the system clocks. Atomic: a test may
 * move it while worker threads read it. */
static _Atomic int64_t frozen_ms = -1;

static int64_t read_clock_us(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t luaspoa_clock_now_us(void) {
    int64_t f = atomic_load_explicit(&frozen_ms, memory_order_relaxed);
    return f >= 0 ? f * 1000 : read_clock_us(CLOCK_REALTIME);
}

int64_t luaspoa_clock_now_ms(void) {
    int64_t f = atomic_load_explicit(&frozen_ms, memory_order_relaxed);
    return f >= 0 ? f : read_clock_us(CLOCK_REALTIME) / 1000;
}

int64_t luaspoa_clock_mono_ms(void) {
    int64_t f = atomic_load_explicit(&frozen_ms, memory_order_relaxed);
    return f >= 0 ? f : read_clock_us(CLOCK_MONOTONIC) / 1000;
}

void luaspoa_clock_set_ms(int64_t epoch_ms) {
    atomic_store(&frozen_ms, epoch_ms < 0 ? 0 : epoch_ms);
}

void luaspoa_clock_advance_ms(int64_t delta) {
    int64_t f = atomic_load(&frozen_ms);
    if (f < 0)
        f = read_clock_us(CLOCK_REALTIME) / 1000;
    f += delta;
    atomic_store(&frozen_ms, f < 0 ? 0 : f);
}

void luaspoa_clock_real(void) {
    atomic_store(&frozen_ms, -1);
}

int luaspoa_clock_is_frozen(void) {
    return atomic_load(&frozen_ms) >= 0;
}

/* ---- Lua ---------------------------------------------------------------- */

static int l_now(lua_State *L) {
    int64_t us = luaspoa_clock_now_us();
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, us / 1000000);
    lua_setfield(L, -2, "sec");
    lua_pushinteger(L, us % 1000000);
    lua_setfield(L, -2, "usec");
    return 1;
}

static int l_now_ms(lua_State *L) {
    lua_pushinteger(L, luaspoa_clock_now_ms());
    return 1;
}

static int l_mono_ms(lua_State *L) {
    lua_pushinteger(L, luaspoa_clock_mono_ms());
    return 1;
}

void luaspoa_open_time(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"now", l_now}, {"now_ms", l_now_ms}, {"mono_ms", l_mono_ms}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
