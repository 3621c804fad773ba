/* Time budget per handler call (lua-api.md §5.2 option b), in CPU time.
 *
 * An always-on count hook makes every VM instruction take the slow dispatch
 * path (measured with tools/hook-cost.c under callgrind: +27% instructions on a
 * handler-like workload, x2.07 on a pure arithmetic loop). Instead, a call only
 * stores its number, its thread's CPU clock id (pthread_getcpuclockid: no
 * syscall) and a wall deadline; one watchdog thread for the process wakes every
 * WATCHDOG_TICK_MS and, for a state whose call has used its budget, sets a count
 * hook on the Lua thread that is running (lua_sethook may be called from
 * another thread: lua.c does it from a signal handler). The hook then raises
 * "execution timeout" at every instruction until the call ends, so a script
 * cannot swallow it with pcall. A hook only fires between VM instructions: long
 * C functions poll the budget instead (luaspoa_budget_check, luaspoa_strlib.c).
 *
 * Why CPU time: a wall-clock budget cut a one-line handler in a 10-minute soak
 * on an overloaded host (load average > 10): its thread was descheduled for
 * more than 100 ms (docs/reliability.md). The watchdog reads the thread's CPU
 * clock (one clock_gettime, a syscall) when it first sees a call, and again
 * only once the wall deadline has passed (CPU time cannot run ahead of wall
 * time); the call is cut when the CPU time since that sighting reaches the
 * budget, otherwise it is checked again when it could have used the rest. A
 * descheduled or blocked handler is never cut; a spinning one is cut after its
 * budget plus at most one tick of CPU before the sighting. The per-call cost
 * stays what it was: no syscall per call.
 *
 * The deadline is read from CLOCK_MONOTONIC_COARSE: 47 -> 54 ns per trivial
 * pcall, against 47 -> 91 ns with CLOCK_MONOTONIC (tools/hook-cost.c calls).
 * One clock resolution is added so it never passes early.
 *
 * A call is identified by its number: the watchdog samples the CPU clock, then
 * checks that the same call is still running (so the thread was alive and
 * running it: a finished thread's id may be reused), and arms the hook for that
 * number only; a hook that fires in a later call (the watchdog armed it while
 * the call ended) disarms itself.
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

static int64_t ts_ns(const struct timespec *ts) {
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts_ns(&ts);
}

/* Sets the hook of L to nothing; forgets the arming if it was for another call
 * than the running one. */
static void disarm_stale(lua_State *L, luaspoa_budget *b) {
    pthread_mutex_lock(&b->lock);
    uint64_t armed = atomic_load(&b->armed);
    if (atomic_load(&b->deadline) == 0 || armed != atomic_load(&b->calls)) {
        lua_sethook(L, NULL, 0, 0);
        if (armed != 0 && armed != atomic_load(&b->calls))
            atomic_store(&b->armed, 0);
    }
    pthread_mutex_unlock(&b->lock);
}

/* Raises "file:line: execution timeout (N ms)" at the first Lua function from
 * stack level `level` up (a hook runs in the interrupted function's frame:
 * level 0; a C function polling the budget is level 0, its caller 1). */
static int raise_timeout(lua_State *L, int level) {
    luaspoa_rt *rt = luaspoa_rt_get(L);
    luaspoa_budget *b = &rt->budget;
    b->raised = 1;
    lua_Debug where;
    int found = 0;
    while (!found && lua_getstack(L, level++, &where))
        found = lua_getinfo(L, "Sl", &where) && where.currentline > 0;
    if (found)
        lua_pushfstring(L, "%s:%d: ", where.short_src, where.currentline);
    else
        lua_pushliteral(L, "");
    lua_pushfstring(L, "execution timeout%s (%d ms)", rt->loading || rt->in_init ? " while loading" : "",
                    (int)b->shown_ms);
    lua_concat(L, 2);
    return lua_error(L);
}

/* Armed by the watchdog for the call that is running now. */
static int armed_now(luaspoa_budget *b) {
    uint64_t armed = atomic_load(&b->armed);
    return armed != 0 && atomic_load(&b->deadline) != 0 && armed == atomic_load(&b->calls);
}

static void on_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    luaspoa_budget *b = &luaspoa_rt_get(L)->budget;
    if (!armed_now(b)) {
        /* Armed for a call that has ended since. */
        disarm_stale(L, b);
        return;
    }
    raise_timeout(L, 0);
}

void luaspoa_budget_check(lua_State *L) {
    if (armed_now(&luaspoa_rt_get(L)->budget))
        raise_timeout(L, 1);
}

/* CPU time of the thread running `call`, read while that call runs (so the
 * thread exists and is that one); 0 if the call ended meanwhile. */
static int call_cpu_ns(luaspoa_budget *b, uint64_t call, int64_t deadline, int64_t *out) {
    struct timespec ts;
    if (clock_gettime(atomic_load(&b->cpu_clock), &ts) != 0)
        return 0;
    *out = ts_ns(&ts);
    return atomic_load(&b->calls) == call && atomic_load(&b->deadline) == deadline;
}

static void arm(luaspoa_budget *b, uint64_t call, int64_t deadline) {
    pthread_mutex_lock(&b->lock);
    if (atomic_load(&b->calls) == call && atomic_load(&b->deadline) == deadline) {
        atomic_store(&b->armed, call);
        lua_sethook(atomic_load(&b->running), on_hook, LUA_MASKCOUNT, 1);
    }
    pthread_mutex_unlock(&b->lock);
}

/* One state at one tick (watch_lock held): first sighting of a call, or a
 * check of its CPU time once it could have used its budget. */
static void check_budget(luaspoa_budget *b, int64_t now) {
    uint64_t call = atomic_load(&b->calls);
    int64_t deadline = atomic_load(&b->deadline);
    if (deadline == 0 || atomic_load(&b->armed) == call)
        return;
    int64_t cpu;
    if (b->seen_call != call) {
        if (call_cpu_ns(b, call, deadline, &cpu)) {
            b->seen_call = call;
            b->seen_cpu = cpu;
            b->next_check = deadline;
        }
        return;
    }
    if (now < b->next_check || !call_cpu_ns(b, call, deadline, &cpu))
        return;
    int64_t left = (int64_t)atomic_load(&b->limit_ms) * 1000000 - (cpu - b->seen_cpu);
    if (left > 0)
        b->next_check = now + left; /* descheduled or blocked: not its fault */
    else
        arm(b, call, deadline);
}

/* Checks every state; returns the number of calls started so far in all
 * states. Called with watch_lock held. */
static uint64_t check_budgets(int64_t now, int *running) {
    uint64_t calls = 0;
    *running = 0;
    for (luaspoa_budget *b = watch_list; b; b = b->next) {
        calls += atomic_load_explicit(&b->calls, memory_order_relaxed);
        if (atomic_load(&b->deadline) != 0)
            *running = 1;
        check_budget(b, now);
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
        uint64_t calls = check_budgets(mono_ns(), &running);
        idle_ticks = (calls == last_calls && !running) ? idle_ticks + 1 : 0;
        last_calls = calls;
        if (idle_ticks >= WATCHDOG_IDLE_TICKS) {
            /* A starter stores its deadline, then reads watch_sleeping; we set
             * watch_sleeping, then read the deadlines: one of us sees the other. */
            atomic_store(&watch_sleeping, 1);
            check_budgets(mono_ns(), &running);
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
    clock_resolution_ns = ts_ns(&res);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&thread, &attr, watchdog, NULL);
    pthread_attr_destroy(&attr);
}

void luaspoa_budget_init(lua_State *L, luaspoa_budget *b) {
    pthread_mutex_init(&b->lock, NULL);
    b->main = L;
    atomic_store(&b->running, L);
    /* A reload's new state (maybe at a freed state's address) is a stranger to
     * the watchdog until its first call. The clock id is taken per call, not
     * per state: a state may move to another thread (tests, the CLI). */
    b->seen_call = 0;
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
    /* `running` stays: a call may start inside a coroutine (handlers run in
     * one), and enter/leave pairs keep it right. */
    lua_sethook(b->main, NULL, 0, 0);
    lua_sethook(atomic_load(&b->running), NULL, 0, 0);
    atomic_store(&b->armed, 0);
    pthread_mutex_unlock(&b->lock);
}

void luaspoa_budget_start(luaspoa_budget *b, uint32_t ms) {
    if (atomic_load(&b->armed))
        disarm(b);
    b->raised = 0;
    b->shown_ms = ms;
    b->part_cpu = 0;
    atomic_store_explicit(&b->limit_ms, ms, memory_order_relaxed);
    if (ms == 0)
        return;
    pthread_once(&watch_once, start_watchdog);
    clockid_t cpu_clock;
    if (pthread_getcpuclockid(pthread_self(), &cpu_clock) == 0)
        atomic_store_explicit(&b->cpu_clock, cpu_clock, memory_order_relaxed);
    atomic_store_explicit(&b->calls, atomic_load_explicit(&b->calls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* The store that publishes the call: the watchdog reads the rest after it. */
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

/* ---- calls that wait ---------------------------------------------------- */

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts_ns(&ts);
}

void luaspoa_budget_part(luaspoa_budget *b, uint32_t limit_ms, int64_t used_ns) {
    if (limit_ms == 0) {
        luaspoa_budget_start(b, 0);
        return;
    }
    int64_t left = (int64_t)limit_ms * 1000000 - used_ns;
    uint32_t ms = left < 1000000 ? 1 : (uint32_t)((left + 999999) / 1000000);
    luaspoa_budget_start(b, ms);
    b->shown_ms = limit_ms;
    b->part_cpu = thread_cpu_ns();
}

int64_t luaspoa_budget_pause(luaspoa_budget *b) {
    int64_t deadline = atomic_load(&b->deadline);
    int64_t used = 0;
    if (deadline != 0) {
        if (b->part_cpu != 0)
            used = thread_cpu_ns() - b->part_cpu;
        else
            used = mono_ns() - (deadline - (int64_t)atomic_load(&b->limit_ms) * 1000000 - clock_resolution_ns);
    }
    luaspoa_budget_stop(b);
    return used < 0 ? 0 : used;
}

/* ---- frames ------------------------------------------------------------- */

/* Wall time, unlike a call's budget: HAProxy waits for the frame's ACK in wall
 * time (timeout processing), and one coarse clock read per message costs
 * ~10 ns where the thread's CPU clock is a system call. */
int luaspoa_budget_frame_over(luaspoa_budget *b, uint32_t ms) {
    if (ms == 0)
        return 0;
    if (b->frame_started == 0) {
        b->frame_started = mono_ns();
        return 0;
    }
    return mono_ns() - b->frame_started >= (int64_t)ms * 1000000;
}

int64_t luaspoa_frame_elapsed(lua_State *L) {
    int64_t started = luaspoa_rt_get(L)->budget.frame_started;
    return started == 0 ? 0 : mono_ns() - started;
}

int64_t luaspoa_frame_clock(lua_State *L) {
    return luaspoa_rt_get(L)->budget.frame_started;
}

void luaspoa_frame_set_clock(lua_State *L, int64_t clock) {
    luaspoa_rt_get(L)->budget.frame_started = clock;
}

/* ---- coroutines: keep `running` on the thread the VM is executing -------- */

/* Every handler call enters its coroutine: with no call running and nothing
 * armed, the watchdog cannot be arming (it arms only a running call, and sees
 * `running` through the deadline store that publishes the next call), so the
 * lock is skipped. A stale hook left by a race disarms itself (on_hook). */
static int quiet(luaspoa_budget *b) {
    return atomic_load(&b->deadline) == 0 && atomic_load(&b->armed) == 0;
}

lua_State *luaspoa_budget_enter(luaspoa_budget *b, lua_State *co) {
    if (quiet(b))
        return atomic_exchange(&b->running, co);
    pthread_mutex_lock(&b->lock);
    lua_State *prev = atomic_exchange(&b->running, co);
    if (atomic_load(&b->armed))
        lua_sethook(co, on_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&b->lock);
    return prev;
}

void luaspoa_budget_leave(luaspoa_budget *b, lua_State *prev) {
    if (quiet(b)) {
        atomic_store(&b->running, prev);
        return;
    }
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->running, prev);
    if (atomic_load(&b->armed)) /* the coroutine stopped; interrupt its resumer too */
        lua_sethook(prev, on_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&b->lock);
}

/* Calls the function at index 1 with the rest of the stack while `co` is the
 * running thread; restores the previous one, then re-raises any error. */
static int call_running(lua_State *L, lua_State *co) {
    luaspoa_budget *b = &luaspoa_rt_get(L)->budget;
    lua_State *prev = luaspoa_budget_enter(b, co);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    luaspoa_budget_leave(b, prev);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

/* coroutine.resume and coroutine.close (which runs pending __close methods) run
 * code on the coroutine given as argument 1: the original is upvalue 1. */
static int co_on_thread(lua_State *L) {
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

/* ---- xpcall: no message handler runs once the budget is used ------------- */

/* Lua calls a message handler from inside lua_error, so the timeout raised by
 * the hook runs it while hooks are off: a looping handler would never be cut,
 * and one that catches would keep the call going. Once the budget has raised,
 * the error passes through untouched. */
static int guarded_msgh(lua_State *L) {
    if (luaspoa_rt_get(L)->budget.raised) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int finish_xpcall(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* xpcall(f, msgh, ...) with msgh guarded; lua_pcallk keeps it yieldable. */
static int l_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, msgh, true, f, args... */
    return finish_xpcall(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_xpcall), 2);
}

void luaspoa_budget_wrap_libs(lua_State *L) {
    lua_pushcfunction(L, l_xpcall);
    lua_setglobal(L, "xpcall");
    lua_getglobal(L, LUA_COLIBNAME);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    static const char *const on_thread[] = {"resume", "close"};
    for (size_t i = 0; i < sizeof on_thread / sizeof *on_thread; i++) {
        lua_getfield(L, -1, on_thread[i]);
        lua_pushcclosure(L, co_on_thread, 1);
        lua_setfield(L, -2, on_thread[i]);
    }
    lua_getfield(L, -1, "wrap");
    lua_pushcclosure(L, co_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
}
