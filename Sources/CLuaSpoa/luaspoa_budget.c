/* Time budget per handler call (lua-api.md §5.2 option b).
 *
 * An always-on count hook makes every VM instruction take the slow dispatch
 * path (measured with tools/hook-cost.c under callgrind: +27% instructions on a
 * handler-like workload, x2.07 on a pure arithmetic loop). Instead, a call only
 * stores its deadline; one watchdog thread for the process wakes every
 * WATCHDOG_TICK_MS and, for a state whose deadline has passed, sets a count
 * hook on the Lua thread that is running (lua_sethook may be called from
 * another thread: lua.c does it from a signal handler). The hook then raises
 * "execution timeout" at every instruction until the call ends, so a script
 * cannot swallow it with pcall. Long C calls (string.rep) are not interrupted;
 * the memory limit bounds them.
 *
 * The deadline is read from CLOCK_MONOTONIC_COARSE: 47 -> 54 ns per trivial
 * pcall, against 47 -> 91 ns with CLOCK_MONOTONIC (tools/hook-cost.c calls).
 * One clock resolution is added so a call is never cut early; it is stopped
 * at most WATCHDOG_TICK_MS + 2 resolutions (4 ms at HZ=250) late.
 *
 * After WATCHDOG_IDLE_TICKS ticks without a call started in any state, the
 * watchdog sleeps on a condition variable, so an idle agent uses no CPU; the
 * next call to start wakes it (one mutex and signal, once per idle period). */
#include <time.h>

#include "luaspoa_internal.h"

#define WATCHDOG_TICK_MS 5
#define WATCHDOG_IDLE_TICKS 20

static pthread_cond_t watch_wake = PTHREAD_COND_INITIALIZER;
static _Atomic int watch_sleeping;

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static luaspoa_budget *watch_list;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static int64_t clock_resolution_ns;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    luaspoa_budget *b = &luaspoa_rt_get(L)->budget;
    int64_t deadline = atomic_load(&b->deadline);
    if (deadline == 0 || mono_ns() < deadline) {
        /* Armed for a call that has ended since: disarm this thread. */
        pthread_mutex_lock(&b->lock);
        lua_sethook(L, NULL, 0, 0);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    b->raised = 1;
    /* A hook runs inside the interrupted function's frame: level 0 is the site. */
    lua_Debug where;
    if (lua_getstack(L, 0, &where) && lua_getinfo(L, "Sl", &where) && where.currentline > 0)
        lua_pushfstring(L, "%s:%d: ", where.short_src, where.currentline);
    else
        lua_pushliteral(L, "");
    lua_pushfstring(L, "execution timeout (%d ms)", (int)b->limit_ms);
    lua_concat(L, 2);
    lua_error(L);
}

/* Arms the hook of every state past its deadline; returns the number of calls
 * started so far in all states. Called with watch_lock held. */
static uint64_t check_deadlines(int64_t now, int *running) {
    uint64_t calls = 0;
    *running = 0;
    for (luaspoa_budget *b = watch_list; b; b = b->next) {
        calls += atomic_load_explicit(&b->calls, memory_order_relaxed);
        int64_t deadline = atomic_load(&b->deadline);
        if (deadline != 0)
            *running = 1;
        if (deadline == 0 || now < deadline || atomic_load(&b->armed))
            continue;
        pthread_mutex_lock(&b->lock);
        if (atomic_load(&b->deadline) == deadline) {
            lua_sethook(b->running, on_hook, LUA_MASKCOUNT, 1);
            atomic_store(&b->armed, 1);
        }
        pthread_mutex_unlock(&b->lock);
    }
    return calls;
}

static void *watchdog(void *arg) {
    (void)arg;
    struct timespec tick = {0, WATCHDOG_TICK_MS * 1000000L};
    uint64_t last_calls = 0;
    int idle_ticks = 0;
    for (;;) {
        nanosleep(&tick, NULL);
        pthread_mutex_lock(&watch_lock);
        int running;
        uint64_t calls = check_deadlines(mono_ns(), &running);
        idle_ticks = (calls == last_calls && !running) ? idle_ticks + 1 : 0;
        last_calls = calls;
        if (idle_ticks >= WATCHDOG_IDLE_TICKS) {
            /* A starter stores its deadline, then reads watch_sleeping; we set
             * watch_sleeping, then read the deadlines: one of us sees the other. */
            atomic_store(&watch_sleeping, 1);
            check_deadlines(mono_ns(), &running);
            while (!running && atomic_load(&watch_sleeping))
                pthread_cond_wait(&watch_wake, &watch_lock);
            atomic_store(&watch_sleeping, 0);
            idle_ticks = 0;
        }
        pthread_mutex_unlock(&watch_lock);
    }
    return NULL;
}

static void start_watchdog(void) {
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    clock_resolution_ns = (int64_t)res.tv_sec * 1000000000 + res.tv_nsec;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&thread, &attr, watchdog, NULL);
    pthread_attr_destroy(&attr);
}

void luaspoa_budget_init(lua_State *L, luaspoa_budget *b) {
    pthread_mutex_init(&b->lock, NULL);
    b->main = b->running = L;
    pthread_mutex_lock(&watch_lock);
    b->next = watch_list;
    watch_list = b;
    pthread_mutex_unlock(&watch_lock);
}

void luaspoa_budget_release(luaspoa_budget *b) {
    pthread_mutex_lock(&watch_lock);
    for (luaspoa_budget **p = &watch_list; *p; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            break;
        }
    }
    pthread_mutex_unlock(&watch_lock);
    pthread_mutex_destroy(&b->lock);
}

/* Clears what the watchdog armed (rare path). */
static void disarm(luaspoa_budget *b) {
    pthread_mutex_lock(&b->lock);
    lua_sethook(b->main, NULL, 0, 0);
    b->running = b->main;
    atomic_store(&b->armed, 0);
    pthread_mutex_unlock(&b->lock);
}

void luaspoa_budget_start(luaspoa_budget *b, uint32_t ms) {
    if (atomic_load(&b->armed))
        disarm(b);
    b->raised = 0;
    b->limit_ms = ms;
    if (ms == 0)
        return;
    pthread_once(&watch_once, start_watchdog);
    atomic_store_explicit(&b->calls, atomic_load_explicit(&b->calls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store(&b->deadline, mono_ns() + (int64_t)ms * 1000000 + clock_resolution_ns);
    if (atomic_load(&watch_sleeping)) {
        pthread_mutex_lock(&watch_lock);
        atomic_store(&watch_sleeping, 0);
        pthread_cond_signal(&watch_wake);
        pthread_mutex_unlock(&watch_lock);
    }
}

int luaspoa_budget_stop(luaspoa_budget *b) {
    atomic_store(&b->deadline, 0);
    if (atomic_load(&b->armed))
        disarm(b);
    return b->raised;
}

/* ---- coroutines: keep `running` on the thread the VM is executing -------- */

/* Calls the function at index 1 with the rest of the stack while `co` is the
 * running thread; restores the previous one, then re-raises any error. */
static int call_running(lua_State *L, lua_State *co) {
    luaspoa_budget *b = &luaspoa_rt_get(L)->budget;
    pthread_mutex_lock(&b->lock);
    lua_State *prev = b->running;
    b->running = co;
    if (atomic_load(&b->armed))
        lua_sethook(co, on_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&b->lock);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    pthread_mutex_lock(&b->lock);
    b->running = prev;
    if (atomic_load(&b->armed)) /* the coroutine stopped; interrupt its resumer too */
        lua_sethook(prev, on_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&b->lock);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

static int co_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    return call_running(L, co);
}

static int co_wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    return call_running(L, co);
}

static int co_wrap(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);   /* original wrap: a closure over the coroutine */
    lua_getupvalue(L, -1, 1);            /* that coroutine */
    lua_pushcclosure(L, co_wrapped, 2);
    return 1;
}

void luaspoa_budget_wrap_coroutines(lua_State *L) {
    lua_getglobal(L, LUA_COLIBNAME);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, -1, "resume");
    lua_pushcclosure(L, co_resume, 1);
    lua_setfield(L, -2, "resume");
    lua_getfield(L, -1, "wrap");
    lua_pushcclosure(L, co_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
}
