/* Process-wide caches of objects built from data files (luaspoa_filecache.h).
 *
 * A reload (SIGHUP) runs the script again in new states: each load stats the
 * file and shares the object already built when the file has the same identity
 * (device, inode, size, mtime), so an unchanged file is not parsed again, and a
 * changed one (written in place or replaced by rename) is: into a new object
 * (states still running keep the one they hold until they close) or, for a
 * cache with a rebuild function, into the same object for every holder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "luaspoa_filecache.h"

static void id_of_stat(const struct stat *st, luaspoa_file_id *id) {
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
}

int luaspoa_same_file(const luaspoa_file_id *a, const luaspoa_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

char *luaspoa_read_file(const char *path, size_t *len, luaspoa_file_id *id, char *err, size_t errcap) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    id_of_stat(&st, id);
    /* The size from fstat is a hint: the file may grow while it is read. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 65536, used = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + used, 1, cap - used, f)) > 0) {
        used += got;
        if (used == cap) {
            char *p = realloc(buf, cap *= 2);
            if (p == NULL)
                free(buf);
            buf = p;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed) {
        snprintf(err, errcap, buf ? "cannot read %s" : "out of memory reading %s", path);
        free(buf);
        return NULL;
    }
    *len = used;
    return buf;
}

luaspoa_file_obj *luaspoa_file_cache_acquire(luaspoa_file_cache *c, const char *path, int kind,
                                             int *reused, char *err, size_t errcap) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    luaspoa_file_id id;
    id_of_stat(&st, &id);
    pthread_mutex_lock(&c->lock);
    luaspoa_file_obj *o;
    for (o = c->list; o != NULL; o = o->next)
        if (o->kind == kind && strcmp(o->path, path) == 0 && (c->rebuild || luaspoa_same_file(&o->id, &id)))
            break;
    *reused = o != NULL && luaspoa_same_file(&o->id, &id);
    if (o != NULL && !*reused && !c->rebuild(o->obj, path, kind, &id, err, errcap)) {
        o = NULL;
    } else if (o != NULL) {
        o->id = id;
        o->refs++;
    } else if ((o = calloc(1, sizeof *o)) == NULL || (o->path = strdup(path)) == NULL) {
        free(o);
        o = NULL;
        snprintf(err, errcap, "out of memory loading %s", path);
    } else if ((o->obj = c->build(path, kind, &id, err, errcap)) == NULL) {
        free(o->path);
        free(o);
        o = NULL;
    } else {
        o->kind = kind;
        o->id = id;
        o->refs = 1;
        o->next = c->list;
        c->list = o;
    }
    pthread_mutex_unlock(&c->lock);
    return o;
}

void luaspoa_file_cache_release(luaspoa_file_cache *c, luaspoa_file_obj *o) {
    pthread_mutex_lock(&c->lock);
    int last = --o->refs == 0;
    if (last)
        for (luaspoa_file_obj **p = &c->list; *p != NULL; p = &(*p)->next)
            if (*p == o) {
                *p = o->next;
                break;
            }
    pthread_mutex_unlock(&c->lock);
    if (last) {
        c->destroy(o->obj);
        free(o->path);
        free(o);
    }
}

void luaspoa_file_cache_set_id(luaspoa_file_cache *c, luaspoa_file_obj *o, const luaspoa_file_id *id) {
    pthread_mutex_lock(&c->lock);
    o->id = *id;
    pthread_mutex_unlock(&c->lock);
}

/* ---- the Lua side ---------------------------------------------------------- */

#include "luaspoa_internal.h"

luaspoa_file_obj *luaspoa_acquire_file(lua_State *L, luaspoa_file_cache *c, const char *fn,
                                       const char *path, int kind) {
    char err[512];
    int reused = 0;
    luaspoa_file_obj *o = luaspoa_file_cache_acquire(c, path, kind, &reused, err, sizeof err);
    if (o == NULL)
        luaL_error(L, "%s: %s", fn, err);
    /* Debug level: says whether a reload parsed the file again. */
    char line[600];
    int n = snprintf(line, sizeof line, "%s: %s %s", fn, path,
                     reused ? "unchanged, sharing the copy already loaded" : "read");
    luaspoa_emit_log(L, LUASPOA_LOG_DEBUG, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    return o;
}
