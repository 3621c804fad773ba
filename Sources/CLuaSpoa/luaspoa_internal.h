/* Internal declarations shared by the CLuaSpoa C files (not exported to Swift). */
#ifndef LUASPOA_INTERNAL_H
#define LUASPOA_INTERNAL_H

#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>

#include <pthread.h>
#include <stdatomic.h>

#include "luaspoa.h"
#include "luaspoa_ipaddr.h"

#define LUASPOA_ADDR_MT "luaspoa.Addr"
#define LUASPOA_TYPED_MT "luaspoa.Typed"
#define LUASPOA_NET_MT "luaspoa.Net"

/* Registry field holding the script's path (relative data files resolve from it). */
#define LUASPOA_SCRIPT_PATH_KEY "luaspoa.script_path"

/* Pseudo type code of the spoa.unset sentinel (never sent on the wire). */
#define LUASPOA_T_UNSET 0xFF

/*
 * Time budget of one state (luaspoa_budget.c), in CPU time of the thread that
 * runs the call. The fast path only stores the call's number, its thread's CPU
 * clock and a wall deadline (before which it cannot have used its budget); the
 * watchdog thread measures the CPU time and arms a count hook on the running
 * Lua thread once the budget is used, so no hook slows the VM while calls are
 * within it.
 */
typedef struct luaspoa_budget {
    _Atomic int64_t deadline;     /* monotonic ns, start + budget; 0: no call running */
    _Atomic uint64_t calls;       /* calls started = number of the running one (state's thread writes) */
    _Atomic clockid_t cpu_clock;  /* CPU-time clock of the thread running the call */
    _Atomic uint32_t limit_ms;    /* budget of the running call */
    _Atomic uint64_t armed;       /* number of the call the watchdog set the hook for, 0: none */
    pthread_mutex_t lock;         /* orders hook changes against the watchdog */
    lua_State *main;              /* the state's main thread */
    _Atomic(lua_State *) running; /* thread to interrupt (main or a resumed coroutine) */
    uint32_t shown_ms;            /* the call's whole budget, for the error message */
    int64_t part_cpu;             /* thread CPU ns when a resumed part of a call started */
    int raised;                   /* the hook raised "execution timeout" in this call */
    /* The watchdog's own (under its list lock): CPU time is counted from its
     * first sighting of a call. */
    uint64_t seen_call;           /* call being measured */
    int64_t seen_cpu;             /* its thread's CPU ns at the sighting */
    int64_t next_check;           /* monotonic ns before which it cannot have used its budget */
    int64_t frame_started;        /* monotonic ns of the frame's first message, 0: none yet */
    struct luaspoa_budget *next;  /* watchdog list */
} luaspoa_budget;

enum { LUASPOA_HANDLE_TXN = 0, LUASPOA_HANDLE_MSG = 1, LUASPOA_HANDLE_KINDS = 2 };

/* A class metatable cached by luaspoa_udata.c. */
typedef struct luaspoa_class_cache {
    const char *name;
    const void *mt;
    int ref;
} luaspoa_class_cache;
#define LUASPOA_CLASS_CACHE 16

/* The last dispatched message's handler (luaspoa_dispatch.c). */
typedef struct luaspoa_handler_cache {
    char name[64];
    size_t name_len;                /* 0: empty */
    int ref;                        /* registry slot holding the handler, 0: none yet */
    int has_timeout;                /* the handler has its own timeout_ms */
    uint32_t timeout_ms;
    int has_deadline;               /* the handler has its own deadline_ms */
    uint32_t deadline_ms;
} luaspoa_handler_cache;

/* A handler call or task run in a pooled coroutine (luaspoa_calls.c). The
 * struct and its coroutine are reused: a call that does not wait allocates
 * nothing. */
struct luaspoa_call {
    lua_State *co;
    int ref;                        /* registry ref anchoring co */
    int args_ref;                   /* registry ref keeping its msg.args while it waits */
    int args_kept;                  /* args_ref holds its msg.args */
    struct luaspoa_call *next;      /* free list */
    struct luaspoa_call *all_prev, *all_next; /* every call of the state, for luaspoa_close */
    luaspoa_wait wait;
    int task;                       /* 1: a background task, no message */
    int index;                      /* task: its index */
    int found, skipped;             /* handler: it exists / not run (frame budget) */
    int timed_out;                  /* the time budget stopped it */
    size_t mark;                    /* ACK mark before the handler ran */
    uint64_t gen;                   /* generation of its txn/msg handles */
    uint32_t limit_ms;              /* its CPU budget (0: none) ... */
    int64_t used_ns;                /* ... and what earlier parts used of it */
    uint32_t deadline_ms;           /* wall-clock deadline once it waits, 0: none */
};

/* Per-state runtime, reached through lua_getextraspace. Owned by the state. */
/* A parsed "scope.name", remembered by the Lua string it came from. */
#define LUASPOA_VAR_CACHE 8
typedef struct luaspoa_var_cache {
    const char *text; /* the Lua string's bytes; the string is anchored while cached */
    int scope;
    size_t name_offset, name_len;
} luaspoa_var_cache;

typedef struct luaspoa_rt {
    luaspoa_ctx *ctx;
    size_t allocated, limit, peak;  /* allocator accounting (bytes) */
    size_t settled;                 /* allocated after the last luaspoa_reclaim collection */
    int handlers_ref;               /* registry ref: name -> handler function */
    int loading;                    /* 1 while the script body runs */
    int active;                     /* 1 while a handler runs */
    int in_init;                    /* 1 while register_init functions run */
    uint64_t gen;                   /* the running call's; msg/txn remember theirs */
    uint64_t gens;                  /* generations handed out */
    luaspoa_call *call;             /* the call running now, NULL: none */
    int can_wait;                   /* its caller can resume it later */
    luaspoa_call *free_calls;       /* pool of idle calls */
    luaspoa_call *all_calls;        /* idle or suspended: freed by luaspoa_close */
    int nfree_calls;
    const char *msg_name;           /* current message */
    size_t msg_name_len;
    const spoa_arg *args;           /* current message's arguments */
    int nargs;
    char warnbuf[512];              /* pieces of a warn() message */
    size_t warnlen;
    int opts_ref;                   /* registry ref: name -> { timeout_ms=, on_error= } */
    luaspoa_budget budget;
    const luaspoa_test_hooks *test; /* set only while luaspoa test runs a spec */
    int handle_methods_ref[LUASPOA_HANDLE_KINDS]; /* registry refs: methods tables */
    lua_CFunction handle_index[LUASPOA_HANDLE_KINDS];
    int args_ref;                   /* registry ref: msg.args of dispatch args_gen */
    uint64_t args_gen;
    luaspoa_class_cache classes[LUASPOA_CLASS_CACHE];
    int nclasses;
    struct json_decoder *json_decoder; /* spoa.json's; the registry owns it */
    luaspoa_handler_cache last_handler;
    luaspoa_var_cache vars[LUASPOA_VAR_CACHE];
    int vars_ref;                   /* registry ref: table anchoring the cached names */
    int closing;                    /* lua_close runs: finalizers share close_cpu_ns's budget */
    int64_t close_cpu_ns;           /* thread CPU time when the close started */
} luaspoa_rt;

static inline luaspoa_rt *luaspoa_rt_get(lua_State *L) {
    return *(luaspoa_rt **)lua_getextraspace(L);
}

/* luaspoa_handle.c: handles (txn, msg), valid only during the dispatch that made them. */
/* Checks that the value at idx is a live handle of the given kind, or raises. */
void luaspoa_check_handle(lua_State *L, int idx, int kind);
/* Pushes the handle of the given kind bound to the current dispatch (no allocation). */
void luaspoa_push_handle(lua_State *L, int kind);
/* Registers a kind: its methods table (popped from the stack top) and its __index. */
void luaspoa_new_handle_kind(lua_State *L, int kind, lua_CFunction index);
void luaspoa_push_handle_methods(lua_State *L, int kind);

/* luaspoa_udata.c: luaL_testudata, luaL_checkudata, luaL_setmetatable, cached per state. */
void *luaspoa_testudata(lua_State *L, int idx, const char *tname);
void *luaspoa_checkudata(lua_State *L, int idx, const char *tname);
void luaspoa_setmetatable(lua_State *L, const char *tname);

/* luaspoa_state.c */
int luaspoa_msgh(lua_State *L);
void luaspoa_copy_error(lua_State *L, int idx, char *buf, size_t cap);
void luaspoa_emit_log(lua_State *L, int level, const char *msg, size_t len);
void luaspoa_open_log(lua_State *L);              /* spoa table at top */

/* luaspoa_sandbox.c */
void luaspoa_open_sandbox(lua_State *L);          /* libraries of a handler state */

/* luaspoa_budget.c */
void luaspoa_budget_init(lua_State *L, luaspoa_budget *b);
void luaspoa_budget_release(luaspoa_budget *b);   /* before lua_close */
void luaspoa_budget_start(luaspoa_budget *b, uint32_t ms);
/* Ends the call's budget; returns 1 if the call was stopped for using it up. */
int luaspoa_budget_stop(luaspoa_budget *b);
/* For long C functions: raises the running call's "execution timeout" if the
 * watchdog has found its budget used (the count hook only fires between VM
 * instructions). Two atomic loads: call it every few thousand steps. */
void luaspoa_budget_check(lua_State *L);
/* Makes `co` the thread the watchdog interrupts (armed at once if the budget
 * is used); returns the previous one, to give back to luaspoa_budget_leave. */
lua_State *luaspoa_budget_enter(luaspoa_budget *b, lua_State *co);
void luaspoa_budget_leave(luaspoa_budget *b, lua_State *prev);
/* A part of a call that waits: luaspoa_budget_part starts it with what is
 * left of the call's limit_ms after used_ns (at least 1 ms); the pause ends it
 * and returns what it used (CPU time when resumed; the first part, started by
 * luaspoa_budget_start, is counted in wall time: reading the thread's CPU
 * clock there would cost a system call per message). */
void luaspoa_budget_part(luaspoa_budget *b, uint32_t limit_ms, int64_t used_ns);
int64_t luaspoa_budget_pause(luaspoa_budget *b);
/* The frame's total budget (wall ms, 0: none): 1 once its messages have used
 * it. The first message of a frame starts its clock. */
int luaspoa_budget_frame_over(luaspoa_budget *b, uint32_t ms);
/* Replaces coroutine.resume/wrap so the watchdog interrupts the running
 * coroutine, and xpcall so its message handler cannot outlive the budget. */
void luaspoa_budget_wrap_libs(lua_State *L);

/* luaspoa_strlib.c */
void luaspoa_open_strlib(lua_State *L);           /* string functions under the budget */

/* luaspoa_finalizers.c */
void luaspoa_open_finalizers(lua_State *L);       /* replaces setmetatable */
void luaspoa_finalizers_closing(lua_State *L);    /* before lua_close: one budget for all */

/* luaspoa_calls.c */
/* A call from the pool (or a new one), NULL on memory error. */
luaspoa_call *luaspoa_call_take(lua_State *L);
void luaspoa_call_release(lua_State *L, luaspoa_call *c);
/* Runs (nargs on c->co: body, param) or resumes c's coroutine with `c` as the
 * running call. Returns LUA_YIELD when it waits, else the status of the body
 * (protected inside the coroutine, with luaspoa_msgh) and its error in errbuf. */
int luaspoa_call_step(lua_State *L, luaspoa_call *c, int nargs, char *errbuf, size_t errcap);
/* Starts c: body(param) in its coroutine, under luaspoa_msgh. */
int luaspoa_call_start(lua_State *L, luaspoa_call *c, lua_CFunction body, char *errbuf, size_t errcap);
/* Closes c's coroutine without resuming it: pending __close run under the
 * state's time budget. */
void luaspoa_call_close(lua_State *L, luaspoa_call *c);

/* luaspoa_wait.c */
void luaspoa_open_wait(lua_State *L);             /* spoa table at top */
/* Records what the running call waits for and yields; once resumed, returns
 * nil, error when the operation failed, else what `push` pushes. Raises with
 * `fn` and file:line where waiting is impossible. */
typedef int (*luaspoa_wait_push)(lua_State *L, const luaspoa_wait *w);
int luaspoa_wait_yield(lua_State *L, const char *fn, const luaspoa_wait *w, luaspoa_wait_push push);
/* A push that returns the result's values (luaspoa_wait_value) as one Lua value. */
int luaspoa_wait_push_values(lua_State *L, const luaspoa_wait *w);
/* luaspoa_teststubs.c: the client stubs of spoa.test. */
void luaspoa_open_test_stubs(lua_State *L);       /* the spoa.test table at top */
void luaspoa_test_stubs_reset(lua_State *L);      /* every client real again */
/* Under `luaspoa test`: when the spec stubbed w's client, calls the stub and
 * pushes what the client returns (its results, or nil, err); returns their
 * number, or -1 (nothing pushed) when the real client is to run. */
int luaspoa_test_stub(lua_State *L, const luaspoa_wait *w);
void luaspoa_open_http(lua_State *L);             /* spoa table at top */
void luaspoa_open_redis(lua_State *L);            /* spoa table at top */
void luaspoa_open_dns(lua_State *L);              /* spoa table at top */
void luaspoa_open_tcp(lua_State *L);              /* spoa table at top */

/* luaspoa_dispatch.c */
/* Encodes the action table at index t ({ ["scope.name"] = value }) in sorted
 * key order; `what` names it in errors. */
void luaspoa_encode_actions(lua_State *L, int t, const char *what);

/* luaspoa_addr.c */
void luaspoa_open_addr(lua_State *L);             /* spoa table at top */
/* luaspoa_new_class plus a __name and the extra metamethods `meta` (may be NULL). */
void luaspoa_new_named_class(lua_State *L, const char *mt, const char *name,
                             const luaL_Reg *methods, lua_CFunction tostring, const luaL_Reg *meta);
void luaspoa_push_addr(lua_State *L, int family, const uint8_t *bytes);
/* Returns the 16 address bytes and sets *family (4 or 6), or NULL if not an Addr. */
const uint8_t *luaspoa_test_addr(lua_State *L, int idx, int *family);
luaspoa_addr *luaspoa_check_addr(lua_State *L, int idx);
/* Reads an Addr or a text address at idx into *out; returns 0 if it is neither. */
int luaspoa_to_addr(lua_State *L, int idx, luaspoa_addr *out);
/* Same, raising "<what>: invalid IP address: ..." or a type error. */
void luaspoa_check_addr_arg(lua_State *L, int idx, luaspoa_addr *out, const char *what);
const char *luaspoa_push_addr_text(lua_State *L, int family, const uint8_t *bytes);

/* luaspoa_net.c */
void luaspoa_open_net(lua_State *L);              /* spoa table at top */
void luaspoa_push_net(lua_State *L, const luaspoa_net *net);
void luaspoa_push_net_text(lua_State *L, const luaspoa_net *net);
int luaspoa_addr_in_cidr(lua_State *L);           /* the a:in_cidr method */

/* luaspoa_netset.c */
void luaspoa_open_netset(lua_State *L);           /* spoa table at top */
void luaspoa_open_hash(lua_State *L);             /* spoa table at top */
void luaspoa_open_crypto(lua_State *L);           /* spoa table at top */
void luaspoa_open_re(lua_State *L);               /* spoa table at top */
void luaspoa_open_json(lua_State *L);             /* spoa table at top */
/* spoa.json.decode of [s, s + len): pushes the value (returns 1) or nil, err (2). */
int luaspoa_json_push(lua_State *L, const char *s, size_t len);
void luaspoa_open_jwt(lua_State *L);              /* spoa table at top */
void luaspoa_open_geoip(lua_State *L);            /* spoa table at top */
void luaspoa_open_metrics(lua_State *L);          /* spoa table at top */

/* luaspoa_cres.c: a C resource owned by a userdata, freed by __gc if a Lua
 * error interrupts the function using it. */
typedef struct luaspoa_cres {
    void *p;                    /* NULL until set, and once freed */
    void (*free_fn)(void *);
} luaspoa_cres;
luaspoa_cres *luaspoa_cres_push(lua_State *L, void (*free_fn)(void *));
void luaspoa_open_cres(lua_State *L);             /* its metatable, before any push */
void luaspoa_cres_free(luaspoa_cres *r);

/* Bytes per library call between two polls of the budget (crypto, json). */
#define LUASPOA_CRYPTO_CHUNK ((size_t)64 << 10)
/* The size of the chunk of [0, len) at off, at most max; polls the budget
 * before every chunk but the first (a long C call cannot be interrupted). */
static inline size_t luaspoa_next_chunk(lua_State *L, size_t len, size_t off, size_t max) {
    if (off > 0)
        luaspoa_budget_check(L);
    return len - off < max ? len - off : max;
}

/* luaspoa_hdrs.c */
void luaspoa_open_hdrs(lua_State *L);             /* spoa table at top */

/* luaspoa_values.c */
void luaspoa_open_values(lua_State *L);           /* spoa table at top */
/* Checks the Lua value at idx as an explicit SPOE `type` (same range rules and
 * messages as the spoa.<type> wrappers) and fills *out. Byte values borrow the
 * Lua string at idx. `what` names the caller in errors. */
void luaspoa_check_typed(lua_State *L, int idx, int type, spoa_value *out, const char *what);
const char *luaspoa_type_name(int type);
/* Pushes an incoming argument value (NULL pushes nil). */
void luaspoa_push_value(lua_State *L, const spoa_value *v);
/*
 * Converts the Lua value at idx to an outgoing value by the documented
 * inference rules. Returns LUASPOA_ACTION_SET, LUASPOA_ACTION_UNSET (spoa.unset)
 * or 0 with *err set to a static explanation. Byte values borrow the Lua
 * string, which must stay reachable while *out is used.
 */
int luaspoa_tovalue(lua_State *L, int idx, spoa_value *out, const char **err);

/* luaspoa_msg.c */
void luaspoa_open_msg(lua_State *L);
void luaspoa_push_msg(lua_State *L);

/* luaspoa_txn.c */
void luaspoa_open_txn(lua_State *L);
void luaspoa_push_txn(lua_State *L);
/* Queues one action through the Swift callback; raises on ACK full. */
void luaspoa_append(lua_State *L, int kind, int scope, const char *name, size_t name_len,
                    const spoa_value *value);
#define LUASPOA_SCOPES 5
extern const char *const luaspoa_scope_names[LUASPOA_SCOPES]; /* "proc" ... "res" */
/* Parses "scope.name" (scope, [A-Za-z0-9._]+, and with ctx->var_prefix HAProxy's
 * 63-byte limit); returns 1 or 0 with a message written into err. */
int luaspoa_parse_var(const luaspoa_ctx *ctx, const char *var, size_t len, int *scope,
                      const char **name, size_t *name_len, char *err, size_t errcap);

/* luaspoa_time.c, luaspoa_shared.c, luaspoa_map.c, luaspoa_lifecycle.c (spoa table at top) */
void luaspoa_open_time(lua_State *L);
void luaspoa_open_shared(lua_State *L);
void luaspoa_open_txstore(lua_State *L);        /* spoa table at top */
void luaspoa_open_map(lua_State *L);
void luaspoa_open_lifecycle(lua_State *L);
/* luaspoa_resume for a task. */
int luaspoa_task_resume(lua_State *L, luaspoa_call *c, char *errbuf, size_t errcap, luaspoa_call **waiting);
/* Runs the functions given to spoa.register_init, in order (inside a protected call). */
void luaspoa_run_inits(lua_State *L);
/* Raises unless the script body (or, with allow_init, an init function) is running. */
void luaspoa_require_setup(lua_State *L, const char *fn, int allow_init);
/* A relative path resolved from the script's directory (as HAProxy's
 * "default-path config" does); may push up to 3 values that keep it alive. */
const char *luaspoa_resolve_path(lua_State *L, const char *path);
/* Checks an options table at idx (nil allowed: returns 0) against "a, b, c";
 * raises on unknown keys. Returns 1 when a table is there. */
int luaspoa_check_options(lua_State *L, int idx, const char *fn, const char *supported);
/* Field `field` of the options table at idx: an integer >= 1 (raises otherwise), or dflt when absent. */
lua_Integer luaspoa_opt_positive(lua_State *L, int idx, const char *fn, const char *field, lua_Integer dflt);
/* luaspoa_filecache.c: the shared object built from the file at path (one
 * more reference, see luaspoa_filecache.h), or raises "fn: why". Logs at debug
 * level whether the file was read or found unchanged. */
struct luaspoa_file_cache;
struct luaspoa_file_obj *luaspoa_acquire_file(lua_State *L, struct luaspoa_file_cache *c, const char *fn,
                                              const char *path, int kind);
/* Registers metatable `mt` with a methods table as __index and a __tostring. */
void luaspoa_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction tostring);

#endif
