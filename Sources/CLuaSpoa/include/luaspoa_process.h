/*
 * luaspoa: process-wide services shared by every Lua state — the clock, the
 * shared dictionaries (spoa.shared), the read-mostly maps (spoa.map) — and the
 * lifecycle entry points (init functions, background tasks).
 *
 * Nothing here calls into Lua: the stores are plain C, thread-safe, and values
 * cross states by copy. They live as long as the process, so states created
 * later (a reload) find the same dicts and maps by name.
 */
#ifndef LUASPOA_PROCESS_H
#define LUASPOA_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "luaspoa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lua_State;

/* ---- clock (luaspoa_time.c) ---------------------------------------------
 * Every time read by luaspoa (spoa.now*, shared-dict TTLs) goes through these.
 * A test mode freezes the clock at a wall-clock value and moves it by hand;
 * the monotonic clock then follows the same value. */
int64_t luaspoa_clock_now_us(void);   /* epoch microseconds */
int64_t luaspoa_clock_now_ms(void);   /* epoch milliseconds */
int64_t luaspoa_clock_mono_ms(void);  /* monotonic milliseconds */
void luaspoa_clock_set_ms(int64_t epoch_ms);   /* freezes the clock (test mode) */
void luaspoa_clock_advance_ms(int64_t delta);  /* moves a frozen clock */
void luaspoa_clock_real(void);                 /* back to the system clocks */
int luaspoa_clock_is_frozen(void);

/* ---- shared dictionaries (luaspoa_store.c) ------------------------------ */

typedef struct luaspoa_dict luaspoa_dict;

enum {
    LUASPOA_SV_NIL = 0, LUASPOA_SV_BOOL = 1, LUASPOA_SV_INT = 2,
    LUASPOA_SV_FLOAT = 3, LUASPOA_SV_STRING = 4,
};

/* A stored value. Strings returned by the store point into a per-thread
 * buffer that stays valid until the next store call on the same thread. */
typedef struct luaspoa_sval {
    int type;          /* LUASPOA_SV_* */
    int64_t i;         /* BOOL (0/1) and INT */
    double d;          /* FLOAT */
    const char *s;     /* STRING */
    size_t len;
} luaspoa_sval;

/* Results of the store operations. */
enum {
    LUASPOA_SD_OK = 0, LUASPOA_SD_NOT_FOUND = 1, LUASPOA_SD_EXISTS = 2,
    LUASPOA_SD_NO_MEMORY = 3, LUASPOA_SD_NOT_A_NUMBER = 4,
    LUASPOA_SD_TOO_LARGE = 5,   /* the item alone exceeds max_item_bytes */
};

/* Keys + values a dict holds when declared without max_bytes. */
#define LUASPOA_DICT_DEFAULT_MAX_BYTES 67108864 /* 64 MiB */

/* Write modes of luaspoa_dict_store. */
enum {
    LUASPOA_SD_SET = 0, LUASPOA_SD_SAFE_SET = 1, LUASPOA_SD_ADD = 2,
    LUASPOA_SD_SAFE_ADD = 3, LUASPOA_SD_REPLACE = 4,
};

/* Returns the dict named `name`, creating it with `max_items` (>= 1) and
 * `max_bytes` (keys + values; <= 0: the default) on first use. Same name, other
 * limits: NULL and *existing_max set to its max_items. LRU eviction keeps both
 * limits. */
luaspoa_dict *luaspoa_dict_declare(const char *name, size_t len, int64_t max_items,
                                   int64_t max_bytes, int64_t *existing_max);
luaspoa_dict *luaspoa_dict_find(const char *name, size_t len);
const char *luaspoa_dict_name(const luaspoa_dict *d);
luaspoa_dict *luaspoa_dict_at(size_t i);
int64_t luaspoa_dict_capacity(const luaspoa_dict *d);
int64_t luaspoa_dict_max_bytes(const luaspoa_dict *d);
/* The largest item (key + value) one store call accepts: max_bytes, or its
 * share of one shard for dicts of 4096 items and more. */
int64_t luaspoa_dict_max_item_bytes(const luaspoa_dict *d);

/* get: LUASPOA_SD_OK or NOT_FOUND. With allow_stale, expired items not yet
 * removed are returned too, and *stale tells which. */
int luaspoa_dict_get(luaspoa_dict *d, const char *key, size_t klen, int allow_stale,
                     luaspoa_sval *out, int *stale);
/* ttl_ms 0: never expires. A NIL value deletes. *forcible: a live item was evicted. */
int luaspoa_dict_store(luaspoa_dict *d, const char *key, size_t klen, const luaspoa_sval *v,
                       int64_t ttl_ms, int mode, int *forcible);
/* Adds step (INT or FLOAT) to a number. Missing key: NOT_FOUND unless init is
 * given, then the item starts at init with init_ttl_ms. Result in *out. */
int luaspoa_dict_incr(luaspoa_dict *d, const char *key, size_t klen, const luaspoa_sval *step,
                      const luaspoa_sval *init, int64_t init_ttl_ms, luaspoa_sval *out,
                      int *forcible);
int luaspoa_dict_delete(luaspoa_dict *d, const char *key, size_t klen);
/* *remaining_ms: 0 when the item never expires. */
int luaspoa_dict_ttl(luaspoa_dict *d, const char *key, size_t klen, int64_t *remaining_ms);
int luaspoa_dict_expire(luaspoa_dict *d, const char *key, size_t klen, int64_t ttl_ms);
/* Live keys (at most max, 0: all), packed "len(4 bytes) bytes" into a malloc'd
 * blob the caller frees; returns the number of keys. */
size_t luaspoa_dict_keys(luaspoa_dict *d, size_t max, char **blob);
void luaspoa_dict_flush_all(luaspoa_dict *d);
/* Removes up to max expired items (0: all); returns how many. */
size_t luaspoa_dict_flush_expired(luaspoa_dict *d, size_t max);
/* Items stored, including expired ones not yet removed. */
size_t luaspoa_dict_count(luaspoa_dict *d);
/* Bytes of keys and values stored (what max_bytes bounds). */
size_t luaspoa_dict_bytes(luaspoa_dict *d);
/* Empties every dict (declarations stay: states keep their handles). For tests. */
void luaspoa_shared_reset_all(void);

/* ---- lifecycle (luaspoa_lifecycle.c) ------------------------------------ */

/* Number of tasks registered by the state's script with spoa.register_task. */
int luaspoa_task_count(struct lua_State *L);
/* every_ms 0: run once. */
void luaspoa_task_schedule(struct lua_State *L, int index, int64_t *every_ms, int *at_start);
/* Runs task `index` (0-based) in a coroutine: LUASPOA_OK or LUASPOA_ERROR
 * with "file:line: message" and a traceback in errbuf, or LUASPOA_WAITING
 * with *waiting suspended (continue it with luaspoa_resume). */
int luaspoa_run_task(struct lua_State *L, int index, char *errbuf, size_t errcap, luaspoa_call **waiting);

#ifdef __cplusplus
}
#endif

#endif
