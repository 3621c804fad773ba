/* Objects built from data files (spoa.map, spoa.netset, spoa.geoip), shared by
 * every state of the process and rebuilt only when the file changes. No Lua. */
#ifndef LUASPOA_FILECACHE_H
#define LUASPOA_FILECACHE_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* A file's identity: a rename over it or a write changes one of these. */
typedef struct luaspoa_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} luaspoa_file_id;

int luaspoa_same_file(const luaspoa_file_id *a, const luaspoa_file_id *b);
/* The whole file (malloc'd, to free) and the identity of what was read;
 * NULL with "cannot open PATH: why" (or read, or out of memory) in err. */
char *luaspoa_read_file(const char *path, size_t *len, luaspoa_file_id *id, char *err, size_t errcap);

/* One built object, with the path, kind and identity it was built from. */
typedef struct luaspoa_file_obj {
    char *path;
    int kind;
    luaspoa_file_id id;
    void *obj;
    int refs;                       /* holders, under the cache's lock */
    struct luaspoa_file_obj *next;
} luaspoa_file_obj;

/* Builds the object of `path` (kind is the caller's); may set *id to the
 * identity of what it read. NULL with err set. */
typedef void *(*luaspoa_file_build)(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap);

/* Rebuilds obj in place from the changed file (1), or leaves it as it was and
 * sets err (0). */
typedef int (*luaspoa_file_rebuild)(void *obj, const char *path, int kind, luaspoa_file_id *id,
                                    char *err, size_t errcap);

typedef struct luaspoa_file_cache {
    pthread_mutex_t lock;
    luaspoa_file_obj *list;
    luaspoa_file_build build;
    void (*destroy)(void *obj);
    /* NULL: a changed file makes a new object (states holding the old one keep
     * it); else the one object of (path, kind) is rebuilt for every holder. */
    luaspoa_file_rebuild rebuild;
} luaspoa_file_cache;
#define LUASPOA_FILE_CACHE(build, destroy, rebuild) {PTHREAD_MUTEX_INITIALIZER, NULL, (build), (destroy), (rebuild)}

/* The object built from path's current file, with one more reference: the one
 * already built when the file has the same identity (*reused = 1), else a new
 * or rebuilt one (under the cache's lock, so concurrent loads build once).
 * NULL with err. */
luaspoa_file_obj *luaspoa_file_cache_acquire(luaspoa_file_cache *c, const char *path, int kind,
                                             int *reused, char *err, size_t errcap);
/* Drops a reference; the last one destroys the object. */
void luaspoa_file_cache_release(luaspoa_file_cache *c, luaspoa_file_obj *o);
/* Records that o's object now reflects the file with identity id (after an
 * in-place rebuild), under the cache's lock. */
void luaspoa_file_cache_set_id(luaspoa_file_cache *c, luaspoa_file_obj *o, const luaspoa_file_id *id);

#endif
