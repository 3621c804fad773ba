/* The shared-dictionary store behind spoa.shared: a process-wide registry of
 * named dicts, each split into shards with their own lock, hash table and LRU
 * list. No Lua here: the Lua side (luaspoa_shared.c) copies values in and out,
 * so no Lua error can ever fire while a lock is held. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_process.h"

/* Dicts smaller than this keep one shard, so LRU order and capacity are exact;
 * bigger ones split the capacity (items and bytes) evenly across SHARDS shards. */
#define SHARD_THRESHOLD 4096
#define SHARDS 16

typedef struct entry {
    struct entry *hnext;          /* hash chain */
    struct entry *prev, *next;    /* LRU list, most recent first */
    uint64_t hash;
    int64_t expires;              /* monotonic ms, 0: never */
    luaspoa_sval v;               /* v.s is owned (malloc) for strings */
    size_t klen;
    char key[];
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets;              /* power of two */
    size_t count, cap;
    size_t bytes, max_bytes;      /* keys + values (item_bytes) */
    entry *head, *tail;
} shard;

struct luaspoa_dict {
    char *name;
    int64_t max_items, max_bytes;
    int nshards;
    shard shards[];
};

/* ---- per-thread copy-out buffer ----------------------------------------- */

static _Thread_local char *tl_buf;
static _Thread_local size_t tl_cap;
/* Frees a thread's buffer when the thread ends (background-task threads end on reload). */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static void tl_key_create(void) { pthread_key_create(&tl_key, free); }

/* Copies a stored value for the caller: strings go to the thread's buffer. */
static int copy_out(const luaspoa_sval *in, luaspoa_sval *out) {
    *out = *in;
    if (in->type != LUASPOA_SV_STRING)
        return 1;
    if (in->len + 1 > tl_cap) {
        size_t cap = in->len + 1 < 256 ? 256 : in->len + 1;
        char *p = realloc(tl_buf, cap);
        if (p == NULL)
            return 0;
        tl_buf = p;
        tl_cap = cap;
        pthread_once(&tl_once, tl_key_create);
        pthread_setspecific(tl_key, p);
    }
    memcpy(tl_buf, in->s, in->len);
    tl_buf[in->len] = '\0';
    out->s = tl_buf;
    return 1;
}

/* ---- entries -------------------------------------------------------------- */

static uint64_t hash_key(const char *k, size_t len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)k[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int expired(const entry *e, int64_t now) {
    return e->expires != 0 && e->expires <= now;
}

static int64_t deadline(int64_t ttl_ms, int64_t now) {
    return ttl_ms > 0 ? now + ttl_ms : 0;
}

/* What an item counts against max_bytes: its key and its value. */
static size_t item_bytes(size_t klen, const luaspoa_sval *v) {
    return klen + (v->type == LUASPOA_SV_STRING ? v->len : v->type == LUASPOA_SV_NIL ? 0 : sizeof(int64_t));
}

static void set_value(shard *s, entry *e, const luaspoa_sval *v) {
    s->bytes -= item_bytes(e->klen, &e->v);
    if (e->v.type == LUASPOA_SV_STRING)
        free((void *)e->v.s);
    e->v = *v;
    if (v->type == LUASPOA_SV_STRING) {
        char *copy = malloc(v->len ? v->len : 1);
        if (copy && v->len)
            memcpy(copy, v->s, v->len);
        e->v.s = copy;
        if (copy == NULL)
            e->v.len = 0;
    }
    s->bytes += item_bytes(e->klen, &e->v);
}

static void lru_unlink(shard *s, entry *e) {
    if (e->prev) e->prev->next = e->next; else s->head = e->next;
    if (e->next) e->next->prev = e->prev; else s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(shard *s, entry *e) {
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e; else s->tail = e;
    s->head = e;
}

static entry **find_slot(shard *s, const char *key, size_t klen, uint64_t h) {
    entry **slot = &s->buckets[h & (s->nbuckets - 1)];
    for (; *slot; slot = &(*slot)->hnext) {
        entry *e = *slot;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return slot;
    }
    return slot;
}

static void remove_entry(shard *s, entry *e) {
    entry **slot = find_slot(s, e->key, e->klen, e->hash);
    *slot = e->hnext;
    lru_unlink(s, e);
    s->bytes -= item_bytes(e->klen, &e->v);
    if (e->v.type == LUASPOA_SV_STRING)
        free((void *)e->v.s);
    free(e);
    s->count--;
}

static void grow(shard *s) {
    size_t n = s->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        entry *e = s->buckets[i];
        while (e) {
            entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

/* Whether `slots` more items and `need` more bytes fit. */
static int fits(const shard *s, size_t slots, size_t need) {
    return s->count + slots <= s->cap && s->bytes + need <= s->max_bytes;
}

/* Makes room for `slots` (0 or 1) more items and `need` more bytes, never
 * removing `keep` (the item being rewritten). Expired items at the LRU tail go
 * first; live ones only when `evict` allows it (then *forcible is set). The
 * caller has checked that the item alone fits in max_bytes. */
static int make_room(shard *s, const entry *keep, size_t slots, size_t need, int64_t now, int evict,
                     int *forcible) {
    if (fits(s, slots, need))
        return 1;
    for (entry *e = s->tail; e && !fits(s, slots, need);) {
        entry *prev = e->prev;
        if (e != keep && expired(e, now))
            remove_entry(s, e);
        e = prev;
    }
    if (fits(s, slots, need))
        return 1;
    if (!evict)
        return 0;
    for (entry *e = s->tail; e && !fits(s, slots, need);) {
        entry *prev = e->prev;
        if (e != keep) {
            remove_entry(s, e);
            *forcible = 1;
        }
        e = prev;
    }
    return fits(s, slots, need);
}

static entry *insert(shard *s, const char *key, size_t klen, uint64_t h, entry **slot) {
    entry *e = calloc(1, sizeof *e + klen);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = h;
    e->hnext = NULL;
    s->bytes += klen;
    *slot = e;
    lru_push_front(s, e);
    if (++s->count > s->nbuckets)
        grow(s);
    return e;
}

/* Readies *e (the key's entry, or NULL: a new one is inserted) to take a value
 * making the item new_bytes: most recent in the LRU, room made around it. */
static int prepare_entry(shard *s, entry **e, const char *key, size_t klen, uint64_t h, size_t new_bytes,
                         int64_t now, int evict, int *forcible) {
    if (new_bytes > s->max_bytes)
        return LUASPOA_SD_TOO_LARGE;
    size_t now_bytes = *e ? item_bytes(klen, &(*e)->v) : 0;
    if (*e) {
        lru_unlink(s, *e);
        lru_push_front(s, *e);
    }
    if (!make_room(s, *e, *e ? 0 : 1, new_bytes > now_bytes ? new_bytes - now_bytes : 0, now, evict, forcible))
        return LUASPOA_SD_NO_MEMORY;
    if (*e == NULL && (*e = insert(s, key, klen, h, find_slot(s, key, klen, h))) == NULL)
        return LUASPOA_SD_NO_MEMORY;
    return LUASPOA_SD_OK;
}

/* ---- dicts and the registry ----------------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static luaspoa_dict **registry;
static size_t registry_len, registry_cap;

static luaspoa_dict *find_locked(const char *name, size_t len) {
    for (size_t i = 0; i < registry_len; i++)
        if (strlen(registry[i]->name) == len && memcmp(registry[i]->name, name, len) == 0)
            return registry[i];
    return NULL;
}

static luaspoa_dict *new_dict(const char *name, size_t len, int64_t max_items, int64_t max_bytes) {
    int n = max_items >= SHARD_THRESHOLD ? SHARDS : 1;
    luaspoa_dict *d = calloc(1, sizeof *d + n * sizeof(shard));
    char *copy = malloc(len + 1);
    if (d == NULL || copy == NULL) {
        free(d);
        free(copy);
        return NULL;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    d->name = copy;
    d->max_items = max_items;
    d->max_bytes = max_bytes;
    d->nshards = n;
    for (int i = 0; i < n; i++) {
        shard *s = &d->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = 16;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        s->cap = (size_t)(max_items / n + (i < max_items % n)); /* sums to max_items */
        s->max_bytes = (size_t)(max_bytes / n + (i < max_bytes % n));
    }
    return d;
}

luaspoa_dict *luaspoa_dict_declare(const char *name, size_t len, int64_t max_items,
                                   int64_t max_bytes, int64_t *existing_max) {
    if (max_bytes <= 0)
        max_bytes = LUASPOA_DICT_DEFAULT_MAX_BYTES;
    pthread_mutex_lock(&registry_lock);
    luaspoa_dict *d = find_locked(name, len);
    if (d && (d->max_items != max_items || d->max_bytes != max_bytes)) {
        *existing_max = d->max_items;
        d = NULL;
    } else if (d == NULL) {
        if (registry_len == registry_cap) {
            size_t cap = registry_cap ? registry_cap * 2 : 8;
            luaspoa_dict **r = realloc(registry, cap * sizeof *r);
            if (r) {
                registry = r;
                registry_cap = cap;
            }
        }
        if (registry_len < registry_cap && (d = new_dict(name, len, max_items, max_bytes)) != NULL)
            registry[registry_len++] = d;
        *existing_max = 0;
    }
    pthread_mutex_unlock(&registry_lock);
    return d;
}

luaspoa_dict *luaspoa_dict_find(const char *name, size_t len) {
    pthread_mutex_lock(&registry_lock);
    luaspoa_dict *d = find_locked(name, len);
    pthread_mutex_unlock(&registry_lock);
    return d;
}

const char *luaspoa_dict_name(const luaspoa_dict *d) { return d->name; }
int64_t luaspoa_dict_capacity(const luaspoa_dict *d) { return d->max_items; }
int64_t luaspoa_dict_max_bytes(const luaspoa_dict *d) { return d->max_bytes; }

/* One item may take a whole shard's bytes: max_bytes, or max_bytes / SHARDS. */
int64_t luaspoa_dict_max_item_bytes(const luaspoa_dict *d) { return d->max_bytes / d->nshards; }

/* The i-th declared dict, or NULL past the end (metrics walk them; dicts live
 * as long as the process). */
luaspoa_dict *luaspoa_dict_at(size_t i) {
    pthread_mutex_lock(&registry_lock);
    luaspoa_dict *d = i < registry_len ? registry[i] : NULL;
    pthread_mutex_unlock(&registry_lock);
    return d;
}

/* ---- operations ---------------------------------------------------------- */

/* Locks the key's shard and finds its slot; *live is the entry if present and
 * not expired. */
#define LOCATE(d, key, klen)                                                   \
    uint64_t h = hash_key(key, klen);                                          \
    shard *s = &(d)->shards[(h >> 56) % (uint64_t)(d)->nshards];               \
    int64_t now = luaspoa_clock_mono_ms();                                     \
    pthread_mutex_lock(&s->lock);                                              \
    entry **slot = find_slot(s, key, klen, h);                                 \
    entry *e = *slot;                                                          \
    entry *live = e && !expired(e, now) ? e : NULL

int luaspoa_dict_get(luaspoa_dict *d, const char *key, size_t klen, int allow_stale,
                     luaspoa_sval *out, int *stale) {
    LOCATE(d, key, klen);
    entry *found = allow_stale ? e : live;
    int rc = LUASPOA_SD_NOT_FOUND;
    if (found) {
        if (live) {
            lru_unlink(s, e);
            lru_push_front(s, e);
        }
        if (stale)
            *stale = live == NULL;
        rc = copy_out(&found->v, out) ? LUASPOA_SD_OK : LUASPOA_SD_NO_MEMORY;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int luaspoa_dict_store(luaspoa_dict *d, const char *key, size_t klen, const luaspoa_sval *v,
                       int64_t ttl_ms, int mode, int *forcible) {
    *forcible = 0;
    LOCATE(d, key, klen);
    int rc = LUASPOA_SD_OK;
    if ((mode == LUASPOA_SD_ADD || mode == LUASPOA_SD_SAFE_ADD) && live) {
        rc = LUASPOA_SD_EXISTS;
    } else if (mode == LUASPOA_SD_REPLACE && !live) {
        rc = LUASPOA_SD_NOT_FOUND;
    } else if (v->type == LUASPOA_SV_NIL) {
        if (e)
            remove_entry(s, e);
    } else {
        int evict = mode == LUASPOA_SD_SET || mode == LUASPOA_SD_ADD;
        rc = prepare_entry(s, &e, key, klen, h, item_bytes(klen, v), now, evict, forcible);
        if (rc == LUASPOA_SD_OK) {
            set_value(s, e, v);
            e->expires = deadline(ttl_ms, now);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int is_number(const luaspoa_sval *v) {
    return v->type == LUASPOA_SV_INT || v->type == LUASPOA_SV_FLOAT;
}

/* a + b with the Lua rules: integers wrap, any float makes a float. */
static luaspoa_sval add_numbers(const luaspoa_sval *a, const luaspoa_sval *b) {
    luaspoa_sval r = {0};
    if (a->type == LUASPOA_SV_INT && b->type == LUASPOA_SV_INT) {
        r.type = LUASPOA_SV_INT;
        r.i = (int64_t)((uint64_t)a->i + (uint64_t)b->i);
    } else {
        r.type = LUASPOA_SV_FLOAT;
        r.d = (a->type == LUASPOA_SV_INT ? (double)a->i : a->d) +
              (b->type == LUASPOA_SV_INT ? (double)b->i : b->d);
    }
    return r;
}

int luaspoa_dict_incr(luaspoa_dict *d, const char *key, size_t klen, const luaspoa_sval *step,
                      const luaspoa_sval *init, int64_t init_ttl_ms, luaspoa_sval *out,
                      int *forcible) {
    *forcible = 0;
    LOCATE(d, key, klen);
    int rc = LUASPOA_SD_OK;
    if (live) {
        if (!is_number(&live->v)) {
            rc = LUASPOA_SD_NOT_A_NUMBER;
        } else {
            live->v = add_numbers(&live->v, step);
            lru_unlink(s, live);
            lru_push_front(s, live);
            *out = live->v;
        }
    } else if (init == NULL) {
        rc = LUASPOA_SD_NOT_FOUND;
    } else {
        luaspoa_sval sum = add_numbers(init, step);
        rc = prepare_entry(s, &e, key, klen, h, item_bytes(klen, &sum), now, 1, forcible);
        if (rc == LUASPOA_SD_OK) {
            set_value(s, e, &sum);
            e->expires = deadline(init_ttl_ms, now);
            *out = sum;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int luaspoa_dict_delete(luaspoa_dict *d, const char *key, size_t klen) {
    LOCATE(d, key, klen);
    (void)live;
    if (e)
        remove_entry(s, e);
    pthread_mutex_unlock(&s->lock);
    return LUASPOA_SD_OK;
}

int luaspoa_dict_ttl(luaspoa_dict *d, const char *key, size_t klen, int64_t *remaining_ms) {
    LOCATE(d, key, klen);
    int rc = LUASPOA_SD_NOT_FOUND;
    if (live) {
        *remaining_ms = live->expires ? live->expires - now : 0;
        rc = LUASPOA_SD_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int luaspoa_dict_expire(luaspoa_dict *d, const char *key, size_t klen, int64_t ttl_ms) {
    LOCATE(d, key, klen);
    int rc = LUASPOA_SD_NOT_FOUND;
    if (live) {
        live->expires = deadline(ttl_ms, now);
        rc = LUASPOA_SD_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

size_t luaspoa_dict_keys(luaspoa_dict *d, size_t max, char **blob) {
    size_t n = 0, used = 0, cap = 0;
    char *out = NULL;
    int64_t now = luaspoa_clock_mono_ms();
    for (int i = 0; i < d->nshards && (max == 0 || n < max); i++) {
        shard *s = &d->shards[i];
        pthread_mutex_lock(&s->lock);
        for (entry *e = s->head; e && (max == 0 || n < max); e = e->next) {
            if (expired(e, now))
                continue;
            if (used + 4 + e->klen > cap) {
                size_t ncap = (cap ? cap * 2 : 1024) + 4 + e->klen;
                char *p = realloc(out, ncap);
                if (p == NULL)
                    break;
                out = p;
                cap = ncap;
            }
            uint32_t len = (uint32_t)e->klen;
            memcpy(out + used, &len, 4);
            memcpy(out + used + 4, e->key, e->klen);
            used += 4 + e->klen;
            n++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    *blob = out;
    return n;
}

void luaspoa_dict_flush_all(luaspoa_dict *d) {
    for (int i = 0; i < d->nshards; i++) {
        shard *s = &d->shards[i];
        pthread_mutex_lock(&s->lock);
        while (s->head)
            remove_entry(s, s->head);
        pthread_mutex_unlock(&s->lock);
    }
}

size_t luaspoa_dict_flush_expired(luaspoa_dict *d, size_t max) {
    size_t removed = 0;
    int64_t now = luaspoa_clock_mono_ms();
    for (int i = 0; i < d->nshards && (max == 0 || removed < max); i++) {
        shard *s = &d->shards[i];
        pthread_mutex_lock(&s->lock);
        for (entry *e = s->tail; e && (max == 0 || removed < max);) {
            entry *prev = e->prev;
            if (expired(e, now)) {
                remove_entry(s, e);
                removed++;
            }
            e = prev;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return removed;
}

/* The sum over all shards of the size_t field at `offset`, each read under its lock. */
static size_t shard_sum(luaspoa_dict *d, size_t offset) {
    size_t n = 0;
    for (int i = 0; i < d->nshards; i++) {
        pthread_mutex_lock(&d->shards[i].lock);
        n += *(const size_t *)((const char *)&d->shards[i] + offset);
        pthread_mutex_unlock(&d->shards[i].lock);
    }
    return n;
}

size_t luaspoa_dict_count(luaspoa_dict *d) { return shard_sum(d, offsetof(shard, count)); }

size_t luaspoa_dict_bytes(luaspoa_dict *d) { return shard_sum(d, offsetof(shard, bytes)); }

void luaspoa_shared_reset_all(void) {
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_len; i++)
        luaspoa_dict_flush_all(registry[i]);
    pthread_mutex_unlock(&registry_lock);
}
