/* Measures what an always-on Lua count hook costs (lua-api.md §5.2).
 *   gcc -O2 tools/hook-cost.c $(pkg-config --cflags --libs lua5.4) -o /tmp/hook-cost
 *   valgrind --tool=callgrind /tmp/hook-cost handler 0   # no hook
 *   valgrind --tool=callgrind /tmp/hook-cost handler 1   # count hook every 10000
 * Workloads: "loop" is pure VM arithmetic (worst case), "handler" resembles a
 * request handler (string ops, table reads, a few C calls).
 *   /tmp/hook-cost calls   # what the watchdog design adds per call instead:
 *                          # one clock read and three atomic operations around
 *                          # each lua_pcall of a trivial handler (time ratio) */
#include <stdatomic.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* what the deadline check costs */
    (void)L;
}

static const char *loop_src =
    "return function(n) local s = 0 for i = 1, n do s = s + (i % 7) * 3 end return s end";
static const char *handler_src =
    "local BAD = { 'curl/', 'wget/', 'python-requests', 'go-http-client', 'sqlmap' }\n"
    "return function(n)\n"
    "  local hits = 0\n"
    "  for i = 1, n do\n"
    "    local args = { ua = 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120', ver = '1.1', ip = '192.0.2.' .. (i % 250) }\n"
    "    local lc = args.ua:lower()\n"
    "    local score = 0\n"
    "    for j = 1, #BAD do if lc:find(BAD[j], 1, true) then score = score + 60 break end end\n"
    "    if args.ver == '1.0' then score = score + 10 end\n"
    "    if score >= 60 then hits = hits + 1 end\n"
    "  end\n"
    "  return hits\n"
    "end";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double run(const char *src, int with_hook, lua_Integer n) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, src) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); exit(1); }
    if (with_hook) lua_sethook(L, hook, LUA_MASKCOUNT, 10000);
    double t0 = now();
    lua_pushinteger(L, n);
    lua_call(L, 1, 1);
    double t = now() - t0;
    lua_close(L);
    return t;
}

static _Atomic int64_t deadline;
static _Atomic int armed;

static double run_calls(int with_deadline, int n) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_dostring(L, "return function(txn, msg) local x = txn end");
    double t0 = now();
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_pushnil(L);
        if (with_deadline) { /* luaspoa_budget_start/stop */
            struct timespec ts;
            clock_gettime(with_deadline == 2 ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC, &ts);
            atomic_store(&deadline, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 100000000);
        }
        lua_pcall(L, 2, 0, 0);
        if (with_deadline) {
            atomic_store(&deadline, 0);
            if (atomic_load(&armed)) abort();
        }
    }
    double t = now() - t0;
    lua_close(L);
    return t;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "calls") == 0) {
        int n = 2000000;
        double off = 0, on = 0, coarse = 0;
        for (int r = 0; r < 5; r++) { off += run_calls(0, n); on += run_calls(1, n); coarse += run_calls(2, n); }
        printf("per call: %.1f ns without, %.1f ns with CLOCK_MONOTONIC (ratio %.3f), %.1f ns with CLOCK_MONOTONIC_COARSE (ratio %.3f)\n",
               off / 5 / n * 1e9, on / 5 / n * 1e9, on / off, coarse / 5 / n * 1e9, coarse / off);
        return 0;
    }
    const char *src = (argc > 1 && strcmp(argv[1], "loop") == 0) ? loop_src : handler_src;
    lua_Integer n = (argc > 3) ? atoll(argv[3]) : 200000;
    if (argc > 2 && strcmp(argv[2], "ratio") != 0) { /* single run, for callgrind */
        printf("%.3f s\n", run(src, atoi(argv[2]), n));
        return 0;
    }
    /* ratio in one run: alternate to share the machine's noise */
    double off = 0, on = 0;
    for (int r = 0; r < 5; r++) { off += run(src, 0, n); on += run(src, 1, n); }
    printf("hook/no-hook time ratio: %.3f\n", on / off);
    return 0;
}
