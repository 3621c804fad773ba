/*
 * luaspoa: the C side of the Lua runtime.
 *
 * Every function Lua can call, every stack-building step and every lua_pcall
 * lives in this target: a Lua error is a longjmp and must never cross a Swift
 * frame. Swift fills the plain structs below and calls luaspoa_newstate() once
 * per worker and luaspoa_dispatch() once per message. The callbacks Swift hands
 * to C never raise; they return error codes and C raises on their behalf.
 */
#ifndef LUASPOA_H
#define LUASPOA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lua_State;

/* SPOP typed-data codes (docs/spop-protocol.md §3.2). */
enum {
    LUASPOA_T_NULL = 0,
    LUASPOA_T_BOOL = 1,
    LUASPOA_T_INT32 = 2,
    LUASPOA_T_UINT32 = 3,
    LUASPOA_T_INT64 = 4,
    LUASPOA_T_UINT64 = 5,
    LUASPOA_T_IPV4 = 6,
    LUASPOA_T_IPV6 = 7,
    LUASPOA_T_STRING = 8,
    LUASPOA_T_BINARY = 9,
};

/* Action kinds passed to append_action. */
enum { LUASPOA_ACTION_SET = 1, LUASPOA_ACTION_UNSET = 2 };

/* Results of luaspoa_dispatch, luaspoa_resume and luaspoa_abandon. WAITING: the
 * call is suspended (see luaspoa_call); DEADLINE: it was abandoned at its
 * wall-clock deadline and its on_error actions written. */
enum {
    LUASPOA_NO_HANDLER = 0, LUASPOA_OK = 1, LUASPOA_ERROR = 2, LUASPOA_TIMEOUT = 3,
    LUASPOA_WAITING = 4, LUASPOA_DEADLINE = 5,
};

typedef struct spoa_bytes {
    const char *ptr;
    size_t len;
} spoa_bytes;

/* What a suspended call waits for (luaspoa_wait.c, and one C file per client). */
enum { LUASPOA_WAIT_SLEEP = 1, LUASPOA_WAIT_YIELD = 2, LUASPOA_WAIT_HTTP = 3, LUASPOA_WAIT_REDIS = 4,
       LUASPOA_WAIT_DNS = 5, LUASPOA_WAIT_TCP = 6 };

/* Types of luaspoa_wait_value. */
enum {
    LUASPOA_WV_NIL = 0, LUASPOA_WV_INT = 1, LUASPOA_WV_STR = 2, LUASPOA_WV_ARRAY = 3,
    LUASPOA_WV_MAP = 4, LUASPOA_WV_BOOL = 5, LUASPOA_WV_ADDR = 6,
};

/*
 * One Lua value of an operation's result. A result is a tree of them in
 * preorder, so every client hands C its replies (HTTP response, Redis reply,
 * DNS answers) the same way and one C function makes them Lua values:
 * an ARRAY of i elements is followed by them, a MAP of i pairs by key, value,
 * key, value... STR and ADDR (4 or 16 bytes, an address object) hold len
 * bytes at offset i of the result's data.
 */
typedef struct luaspoa_wait_value {
    int type;                    /* LUASPOA_WV_* */
    size_t len;                  /* STR, ADDR */
    int64_t i;                   /* INT, BOOL: value; ARRAY: elements; MAP: pairs; STR, ADDR: offset */
} luaspoa_wait_value;

/*
 * The operation a suspended call waits for: written by the waiting Lua function
 * before it yields, read by the caller, who writes the result before
 * luaspoa_resume. A failed operation (error not NULL, copied by C) makes the
 * Lua function return nil, error. The request's strings (args) stay valid
 * until the call resumes or ends; the caller copies them when it starts.
 */
typedef struct luaspoa_wait {
    int kind;                    /* LUASPOA_WAIT_* */
    int64_t ms;                  /* SLEEP: how long; clients: timeout (0: their default) */
    const spoa_bytes *args;      /* clients: the request, as strings (see each client's C file) */
    int nargs;
    int64_t target;              /* clients: which client object (Redis: its id) */
    const char *error;           /* result: NULL, or why the operation failed */
    size_t error_len;
    const luaspoa_wait_value *values; /* result: the values to return, NULL: none */
    size_t nvalues;
    const char *data;            /* result: bytes of its STR and ADDR values */
    size_t data_len;
} luaspoa_wait;

/* A handler call or task run that waits: a coroutine of the state, suspended
 * until luaspoa_resume or luaspoa_abandon ends it. Owned by the state. */
typedef struct luaspoa_call luaspoa_call;

/* syslog-style levels used by spoa.log and the log callback. */
enum {
    LUASPOA_LOG_EMERG = 0, LUASPOA_LOG_ALERT = 1, LUASPOA_LOG_CRIT = 2, LUASPOA_LOG_ERR = 3,
    LUASPOA_LOG_WARNING = 4, LUASPOA_LOG_NOTICE = 5, LUASPOA_LOG_INFO = 6, LUASPOA_LOG_DEBUG = 7,
    /* A warning from Lua's warn function (errors in __gc): logged rate-limited,
     * since a finalizer can fail once per object. */
    LUASPOA_LOG_LUA_WARNING = 8,
};

typedef union spoa_value_data {
    int64_t i;          /* BOOL (0/1) and the four integer types, as a 64-bit pattern */
    uint8_t ip[16];     /* IPV4 in ip[0..3], IPV6 in ip[0..15], network byte order */
    spoa_bytes bytes;   /* STRING and BINARY; borrowed, never owned */
} spoa_value_data;

/* One typed value, used both for incoming arguments and outgoing SET-VAR values. */
typedef struct spoa_value {
    uint8_t type;       /* LUASPOA_T_* */
    spoa_value_data v;
} spoa_value;

/*
 * Swift reads and writes the union only through these accessors. Swift 6.3's
 * optimizer miscompiles a raw-pointer load or store through an imported C array
 * member (`withUnsafeBytes(of: &value.v.ip)`): in -O builds every IPv4 address
 * read as 0.0.0.6 and was written as 0.0.0.0, while debug builds were right.
 * Addresses cross as integers in host order; C does the byte layout.
 */
static inline int64_t luaspoa_value_int(const spoa_value *value) { return value->v.i; }

static inline void luaspoa_value_set_int(spoa_value *value, uint8_t type, int64_t bits) {
    value->type = type;
    value->v.i = bits;
}

static inline spoa_bytes luaspoa_value_bytes(const spoa_value *value) { return value->v.bytes; }

static inline void luaspoa_value_set_bytes(spoa_value *value, uint8_t type, const void *ptr, size_t len) {
    value->type = type;
    value->v.bytes.ptr = (const char *)ptr;
    value->v.bytes.len = len;
}

static inline uint32_t luaspoa_value_ipv4(const spoa_value *value) {
    const uint8_t *ip = value->v.ip;
    return (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | (uint32_t)ip[3];
}

static inline void luaspoa_value_set_ipv4(spoa_value *value, uint32_t address) {
    value->type = LUASPOA_T_IPV4;
    for (int i = 0; i < 4; i++)
        value->v.ip[i] = (uint8_t)(address >> (24 - 8 * i));
}

/* The upper (half 0) or lower (half 1) 64 bits of an IPV6 value. */
static inline uint64_t luaspoa_value_ipv6_half(const spoa_value *value, int half) {
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = bits << 8 | value->v.ip[8 * half + i];
    return bits;
}

static inline void luaspoa_value_set_ipv6(spoa_value *value, uint64_t high, uint64_t low) {
    value->type = LUASPOA_T_IPV6;
    for (int i = 0; i < 8; i++) {
        value->v.ip[i] = (uint8_t)(high >> (56 - 8 * i));
        value->v.ip[8 + i] = (uint8_t)(low >> (56 - 8 * i));
    }
}

/* One NOTIFY argument; name and byte values point into the frame buffer. */
typedef struct spoa_arg {
    const char *name;
    size_t name_len;
    spoa_value value;
} spoa_arg;

/* Callbacks into Swift. They must never raise: they return codes and C raises. */
typedef int (*luaspoa_append_action_fn)(void *ud, int kind, int scope,
                                        const char *name, size_t name_len,
                                        const spoa_value *value /* NULL for unset */);
typedef size_t (*luaspoa_ack_mark_fn)(void *ud);
typedef void (*luaspoa_ack_rollback_fn)(void *ud, size_t mark);
typedef void (*luaspoa_log_fn)(void *ud, int level, const char *msg, size_t len);
/* One structured field of a log line (spoa.log's fields table), as text. */
typedef struct luaspoa_log_field {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} luaspoa_log_field;
#define LUASPOA_LOG_MAX_FIELDS 32
typedef void (*luaspoa_log_fields_fn)(void *ud, int level, const char *msg, size_t len,
                                      const luaspoa_log_field *fields, size_t nfields);
/* The latest action queued in the ACK being built for scope + name: returns 0
 * (none), LUASPOA_ACTION_SET (*out filled; byte values point into the ACK and
 * stay valid until the next append) or LUASPOA_ACTION_UNSET. */
typedef int (*luaspoa_get_action_fn)(void *ud, int scope, const char *name, size_t name_len,
                                     spoa_value *out);

/*
 * Per-state context, owned by the caller (Swift) and alive as long as the state.
 * The state keeps a pointer to it; the per-frame fields are updated by the caller
 * before each dispatch.
 */
typedef struct luaspoa_ctx {
    int worker_index;            /* spoa.worker (1-based) */
    int worker_count;            /* spoa.workers */
    uint64_t stream_id;          /* txn.stream_id */
    uint64_t frame_id;           /* txn.frame_id */
    const char *engine_id;       /* txn.engine_id, NULL if unknown */
    size_t engine_id_len;
    size_t max_frame_size;       /* only for the "ACK full" message; 0 if unknown */
    void *ud;                    /* passed back to every callback */
    luaspoa_append_action_fn append_action; /* 0 ok, nonzero: ACK full */
    luaspoa_ack_mark_fn ack_mark;
    luaspoa_ack_rollback_fn ack_rollback;
    luaspoa_log_fn log;
    /* A line with structured fields (NULL: they are appended to the text as
     * key=value). */
    luaspoa_log_fields_fn log_fields;
    /* txn:get_var reads the ACK back through this (NULL: nothing is ever queued). */
    luaspoa_get_action_fn get_action;
    /* The SPOE "option var-prefix" (--var-prefix), NULL if not given: variable
     * names are then checked against HAProxy's 63-byte limit. */
    const char *var_prefix;
    size_t var_prefix_len;
    /* Limits and failure handling, read when the state is created. */
    uint32_t timeout_ms;         /* default time budget per handler call, 0: none */
    uint32_t load_timeout_ms;    /* time budget of the script body and init functions, 0: none */
    uint32_t frame_timeout_ms;   /* messages of a frame start only within this (wall ms), 0: none */
    int unsafe_libs;             /* 1: the full standard library (--lua-unsafe) */
    const char *error_var;       /* "scope.name" set to true when a handler fails, or NULL */
    size_t error_var_len;
    int64_t generation;          /* spoa.generation: number of reloads before this state */
    uint32_t deadline_ms;        /* default wall-clock deadline of a message that waits, 0: none */
} luaspoa_ctx;

/*
 * Creates a sandboxed state, installs the `spoa` API, then loads and runs the
 * script at `path` (text chunks only), or `source` (source_len bytes, named
 * after path) when not NULL: a reload reads the file once for all its states.
 * Returns NULL on failure with the error (including file:line and a traceback
 * for runtime errors) in errbuf. `ctx` must outlive the state. `mem_limit` is
 * in bytes, 0 for no limit.
 */
struct lua_State *luaspoa_newstate(luaspoa_ctx *ctx, const char *path, const char *source, size_t source_len,
                                   size_t mem_limit, char *errbuf, size_t errcap);

/* Called after a frame (or task): when the state grew far past its size after
 * the last full collection, collects and returns free heap to the system
 * (malloc_trim). Otherwise one comparison. Returns 1 if it reclaimed. */
int luaspoa_reclaim(struct lua_State *L);

/* Closes a state made by luaspoa_newstate. */
void luaspoa_close(struct lua_State *L);

/* Starts a NOTIFY frame: its messages then share ctx->frame_timeout_ms. */
void luaspoa_frame_begin(struct lua_State *L);

/* Nanoseconds since the frame's first message (0 when --lua-frame-timeout is off). */
int64_t luaspoa_frame_elapsed(struct lua_State *L);
/* The frame's clock, to save when a frame waits and give back before it goes on
 * (frames interleave once handlers wait). */
int64_t luaspoa_frame_clock(struct lua_State *L);
void luaspoa_frame_set_clock(struct lua_State *L, int64_t clock);

/*
 * Runs the handler registered for one message, in a coroutine of the state.
 * Returns LUASPOA_NO_HANDLER, LUASPOA_OK, or LUASPOA_ERROR / LUASPOA_TIMEOUT
 * (errbuf then holds "file:line: message" and a short traceback, and the
 * message's actions have been rolled back to the mark taken before the handler
 * ran, followed by its on_error actions). LUASPOA_WAITING: the handler waits;
 * *waiting is the suspended call (its luaspoa_call_wait says for what). With
 * waiting NULL, a handler that tries to wait raises instead.
 */
int luaspoa_dispatch(struct lua_State *L, luaspoa_ctx *ctx,
                     const char *msg_name, size_t name_len,
                     const spoa_arg *args, int nargs,
                     char *errbuf, size_t errcap, luaspoa_call **waiting);

/* What a suspended call waits for; its result fields are written before resuming. */
luaspoa_wait *luaspoa_call_wait(luaspoa_call *call);
/* The wall-clock deadline of a suspended handler call (deadline_ms or
 * ctx->deadline_ms), 0: none. */
uint32_t luaspoa_call_deadline_ms(const luaspoa_call *call);

/*
 * Continues a suspended call once its wait is over, with the same results as
 * luaspoa_dispatch (or luaspoa_run_task for a task: name and args unused). The
 * message's name and arguments are given again: the caller may have moved them.
 * The ACK's mark taken before the handler first ran must still be valid.
 */
int luaspoa_resume(struct lua_State *L, luaspoa_ctx *ctx, luaspoa_call *call,
                   const char *msg_name, size_t name_len, const spoa_arg *args, int nargs,
                   char *errbuf, size_t errcap, luaspoa_call **waiting);

/*
 * Ends a suspended call without resuming it: its coroutine is closed (pending
 * __close methods run under the time budget). deadline_ms > 0: the deadline
 * passed; its actions are rolled back, its on_error actions written, errbuf
 * says where it waited, and it returns LUASPOA_DEADLINE. deadline_ms == 0: its
 * connection is gone; nothing is written and it returns LUASPOA_OK.
 */
int luaspoa_abandon(struct lua_State *L, luaspoa_ctx *ctx, luaspoa_call *call,
                    const char *msg_name, size_t name_len, uint32_t deadline_ms,
                    char *errbuf, size_t errcap);

/*
 * Runs the spec file `path` in state L with `spoa.test` installed (luaspoa
 * test). Cases run as they are declared; their results go to hooks->report.
 * Returns 0, or -1 with errbuf set when the spec file itself fails to load/run.
 */
typedef struct luaspoa_test_hooks {
    void *ud;
    /* Runs one NOTIFY (the args are C values borrowed from Lua) through the real
     * server path and returns the ACK's LIST-OF-ACTIONS bytes; *error is the
     * handler's error or NULL. Both stay valid until the next call. Returns NULL
     * (with *error saying why) if the NOTIFY could not be handled. Never raises. */
    const char *(*notify)(void *ud, const char *name, size_t name_len,
                          const spoa_arg *args, int nargs, uint64_t stream_id,
                          uint64_t frame_id, size_t *len, const char **error, size_t *error_len);
    void (*report)(void *ud, int passed, const char *name, size_t name_len,
                   const char *error, size_t error_len);
    /* Log line i (0-based) captured since the current case started, or NULL. */
    const char *(*log_line)(void *ud, size_t i, size_t *len);
    void (*case_started)(void *ud);
    /* Runs the script's task `index` (0-based) once in this state, blocking
     * while it waits; returns its error (valid until the next call) or NULL. */
    const char *(*run_task)(void *ud, int index, size_t *error_len);
} luaspoa_test_hooks;

int luaspoa_run_spec(struct lua_State *L, const char *path, const luaspoa_test_hooks *hooks,
                     char *errbuf, size_t errcap);

/* Bytes currently allocated by the state (for metrics and tests). */
size_t luaspoa_memory(struct lua_State *L);

/* The metrics scripts declared with spoa.metrics, in Prometheus text format
 * (malloc'd, *len bytes; free with luaspoa_metrics_free), or NULL when out of memory. */
char *luaspoa_metrics_render(size_t *len);
void luaspoa_metrics_free(char *text);

#ifdef __cplusplus
}
#endif

#endif
