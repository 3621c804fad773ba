/* spoa.metrics: counters, gauges and histograms defined by scripts, exported
 * on /metrics as luaspoa_script_<name>.
 *
 * One process-wide registry: every worker state updates the same series, so
 * /metrics shows the sum over workers with no merging, and a reload (new
 * states declaring the same metrics) keeps the values. Families are never
 * freed. Each family caps its label combinations at METRIC_SERIES_MAX; the
 * rest are counted in one series whose labels are all "__overflow__", and the
 * first overflow is logged once per family. A family has its own lock, held
 * for one update (a hash lookup and an add) or while it is rendered. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_internal.h"

#define METRICS_CLASS "spoa.metrics"
#define METRIC_SERIES_MAX 1000
#define METRIC_LABELS_MAX 8
#define METRIC_BUCKETS_MAX 32
#define METRIC_KEY_MAX 1024
#define METRIC_HASH 256
#define OVERFLOW "__overflow__"

enum kind { COUNTER, GAUGE, HISTOGRAM };
static const char *const kind_names[] = {"counter", "gauge", "histogram"};

typedef struct series {
    struct series *next, *hash_next;
    char *key; /* label values, each followed by a NUL */
    size_t keylen;
    double value;     /* counter, gauge; histogram: the sum */
    uint64_t count;   /* histogram */
    uint64_t *buckets; /* histogram: per bound, not cumulative */
} series;

typedef struct family {
    struct family *next;
    char *name, *help;
    enum kind kind;
    int nlabels, nbounds;
    char *labels[METRIC_LABELS_MAX];
    double bounds[METRIC_BUCKETS_MAX];
    pthread_mutex_t lock;
    series *first, **last;
    series *hash[METRIC_HASH];
    int nseries, overflowed;
} family;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family *families, **families_last = &families;

static int valid_name(const char *s, int colon) {
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              (colon && *s == ':')))
            return 0;
    return 1;
}

/* The declaration being made (from the Lua arguments), compared with or
 * copied into a family. */
typedef struct {
    const char *name, *help;
    enum kind kind;
    int nlabels, nbounds;
    const char *labels[METRIC_LABELS_MAX];
    double bounds[METRIC_BUCKETS_MAX];
} decl;

static int same_decl(const family *f, const decl *d) {
    if (f->kind != d->kind || f->nlabels != d->nlabels || f->nbounds != d->nbounds)
        return 0;
    for (int i = 0; i < d->nlabels; i++)
        if (strcmp(f->labels[i], d->labels[i]) != 0)
            return 0;
    for (int i = 0; i < d->nbounds; i++)
        if (f->bounds[i] != d->bounds[i])
            return 0;
    return 1;
}

/* The family named d->name: the existing one (1) when declared the same way,
 * NULL with *clash set when declared otherwise, or a new one. */
static family *declare(const decl *d, int *clash) {
    pthread_mutex_lock(&registry_lock);
    family *f;
    for (f = families; f != NULL && strcmp(f->name, d->name) != 0; f = f->next) {}
    if (f != NULL) {
        *clash = !same_decl(f, d);
        pthread_mutex_unlock(&registry_lock);
        return *clash ? NULL : f;
    }
    *clash = 0;
    f = calloc(1, sizeof *f);
    int ok = f != NULL && (f->name = strdup(d->name)) != NULL && (f->help = strdup(d->help)) != NULL;
    for (int i = 0; ok && i < d->nlabels; i++)
        ok = (f->labels[i] = strdup(d->labels[i])) != NULL;
    if (!ok) {
        if (f != NULL) {
            for (int i = 0; i < d->nlabels; i++)
                free(f->labels[i]);
            free(f->help);
            free(f->name);
            free(f);
        }
        pthread_mutex_unlock(&registry_lock);
        return NULL;
    }
    f->kind = d->kind;
    f->nlabels = d->nlabels;
    f->nbounds = d->nbounds;
    memcpy(f->bounds, d->bounds, sizeof f->bounds);
    pthread_mutex_init(&f->lock, NULL);
    f->last = &f->first;
    *families_last = f;
    families_last = &f->next;
    pthread_mutex_unlock(&registry_lock);
    return f;
}

static void check_labels(lua_State *L, int idx, decl *d) {
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    d->nlabels = (int)lua_rawlen(L, idx);
    luaL_argcheck(L, d->nlabels <= METRIC_LABELS_MAX, idx, "at most 8 labels");
    for (int i = 0; i < d->nlabels; i++) {
        lua_rawgeti(L, idx, i + 1);
        d->labels[i] = lua_tostring(L, -1);
        if (d->labels[i] == NULL || !valid_name(d->labels[i], 0) || strncmp(d->labels[i], "__", 2) == 0)
            luaL_argerror(L, idx, "label names are [a-zA-Z_][a-zA-Z0-9_]*, not starting with __");
        if (strcmp(d->labels[i], "le") == 0 && d->kind == HISTOGRAM)
            luaL_argerror(L, idx, "a histogram cannot have a label named le");
        lua_pop(L, 1); /* the string stays in the table */
    }
}

static void check_bounds(lua_State *L, int idx, decl *d) {
    luaL_checktype(L, idx, LUA_TTABLE);
    d->nbounds = (int)lua_rawlen(L, idx);
    luaL_argcheck(L, d->nbounds >= 1 && d->nbounds <= METRIC_BUCKETS_MAX, idx, "1 to 32 bucket bounds");
    for (int i = 0; i < d->nbounds; i++) {
        lua_rawgeti(L, idx, i + 1);
        int isnum;
        d->bounds[i] = (double)lua_tonumberx(L, -1, &isnum);
        lua_pop(L, 1);
        luaL_argcheck(L, isnum && isfinite(d->bounds[i]) && (i == 0 || d->bounds[i] > d->bounds[i - 1]), idx,
                      "bucket bounds must be finite numbers in increasing order");
    }
}

/* counter(name, help [, labels]), gauge(...), histogram(name, help, buckets [, labels]) */
static int declare_metric(lua_State *L) {
    luaspoa_require_setup(L, "spoa.metrics", 1);
    decl d = {0};
    d.kind = (enum kind)lua_tointeger(L, lua_upvalueindex(1));
    d.name = luaL_checkstring(L, 1);
    d.help = luaL_checkstring(L, 2);
    luaL_argcheck(L, valid_name(d.name, 1), 1, "metric names are [a-zA-Z_:][a-zA-Z0-9_:]*");
    if (d.kind == HISTOGRAM) {
        check_bounds(L, 3, &d);
        check_labels(L, 4, &d);
    } else {
        check_labels(L, 3, &d);
    }
    int clash;
    family *f = declare(&d, &clash);
    if (clash)
        return luaL_error(L, "spoa.metrics: '%s' is already declared with another type, labels or buckets", d.name);
    if (f == NULL)
        return luaL_error(L, "not enough memory");
    *(family **)lua_newuserdatauv(L, sizeof f, 0) = f;
    luaspoa_setmetatable(L, METRICS_CLASS);
    return 1;
}

/* ---- updates ---- */

static uint32_t hash_key(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The series for key, created if there is room, else the overflow series
 * (*overflow set the first time for this family). Under f->lock; NULL when
 * out of memory. */
static series *find_series(family *f, const char *key, size_t keylen, int *overflow) {
    uint32_t h = hash_key(key, keylen) % METRIC_HASH;
    for (series *s = f->hash[h]; s != NULL; s = s->hash_next)
        if (s->keylen == keylen && memcmp(s->key, key, keylen) == 0)
            return s;
    if (f->nseries >= METRIC_SERIES_MAX) {
        char over[METRIC_LABELS_MAX * sizeof OVERFLOW];
        size_t n = 0;
        for (int i = 0; i < f->nlabels; i++, n += sizeof OVERFLOW)
            memcpy(over + n, OVERFLOW, sizeof OVERFLOW);
        if (!f->overflowed)
            *overflow = f->overflowed = 1;
        if (keylen != n || memcmp(key, over, n) != 0)
            return find_series(f, over, n, overflow);
    }
    series *s = calloc(1, sizeof *s);
    if (s == NULL || (s->key = malloc(keylen ? keylen : 1)) == NULL ||
        (f->kind == HISTOGRAM && (s->buckets = calloc((size_t)f->nbounds, sizeof *s->buckets)) == NULL)) {
        if (s != NULL)
            free(s->key);
        free(s);
        return NULL;
    }
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    s->hash_next = f->hash[h];
    f->hash[h] = s;
    *f->last = s;
    f->last = &s->next;
    f->nseries++;
    return s;
}

/* The label values in the table at idx (or none) as a key, into buf. */
static size_t label_key(lua_State *L, const family *f, int idx, char buf[METRIC_KEY_MAX]) {
    size_t n = 0;
    if (!lua_isnoneornil(L, idx))
        luaL_checktype(L, idx, LUA_TTABLE);
    for (int i = 0; i < f->nlabels; i++) {
        size_t len = 0;
        const char *v = "";
        if (!lua_isnoneornil(L, idx)) {
            lua_getfield(L, idx, f->labels[i]);
            if (!lua_isnil(L, -1) && (v = lua_tolstring(L, -1, &len)) == NULL)
                luaL_error(L, "spoa.metrics: label '%s' must be a string or a number", f->labels[i]);
            if (memchr(v, '\0', len) != NULL)
                luaL_error(L, "spoa.metrics: label '%s' contains a NUL byte", f->labels[i]);
        }
        if (n + len + 1 > METRIC_KEY_MAX)
            luaL_error(L, "spoa.metrics: label values longer than %d bytes", METRIC_KEY_MAX - 1);
        memcpy(buf + n, v, len);
        buf[n + len] = '\0';
        n += len + 1;
        if (!lua_isnoneornil(L, idx))
            lua_pop(L, 1);
    }
    return n;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(lua_State *L, family *f, int labels, enum op op, double v) {
    char key[METRIC_KEY_MAX];
    size_t keylen = label_key(L, f, labels, key);
    int overflow = 0;
    pthread_mutex_lock(&f->lock);
    series *s = find_series(f, key, keylen, &overflow);
    if (s != NULL) {
        if (op == OP_SET) {
            s->value = v;
        } else if (op == OP_ADD) {
            s->value += v;
        } else {
            s->value += v;
            s->count++;
            for (int i = 0; i < f->nbounds; i++)
                if (v <= f->bounds[i]) {
                    s->buckets[i]++;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (s == NULL)
        luaL_error(L, "not enough memory");
    if (overflow) {
        char msg[200];
        int n = snprintf(msg, sizeof msg, "spoa.metrics: %s has %d label combinations; further ones are counted "
                         "with labels \"" OVERFLOW "\"", f->name, METRIC_SERIES_MAX);
        luaspoa_emit_log(L, LUASPOA_LOG_WARNING, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    }
}

static family *check_family(lua_State *L, int kinds) {
    family *f = *(family **)luaspoa_checkudata(L, 1, METRICS_CLASS);
    if (!(kinds & (1 << f->kind)))
        luaL_error(L, "spoa.metrics: %s is a %s", f->name, kind_names[f->kind]);
    return f;
}

/* c:inc([labels] [, n]) or c:inc(n); gauges too. Counters only go up. */
static int m_inc(lua_State *L) {
    family *f = check_family(L, 1 << COUNTER | 1 << GAUGE);
    int labels = lua_type(L, 2) == LUA_TNUMBER ? 0 : 2;
    double n = (double)luaL_optnumber(L, labels ? 3 : 2, 1);
    luaL_argcheck(L, isfinite(n) && (f->kind == GAUGE || n >= 0), labels ? 3 : 2,
                  "a counter is increased by a finite number >= 0");
    update(L, f, labels, OP_ADD, n);
    return 0;
}

/* g:dec([labels] [, n]) */
static int m_dec(lua_State *L) {
    family *f = check_family(L, 1 << GAUGE);
    int labels = lua_type(L, 2) == LUA_TNUMBER ? 0 : 2;
    double n = (double)luaL_optnumber(L, labels ? 3 : 2, 1);
    luaL_argcheck(L, isfinite(n), labels ? 3 : 2, "must be finite");
    update(L, f, labels, OP_ADD, -n);
    return 0;
}

/* g:set(v [, labels]) */
static int m_set(lua_State *L) {
    family *f = check_family(L, 1 << GAUGE);
    update(L, f, 3, OP_SET, (double)luaL_checknumber(L, 2));
    return 0;
}

/* h:observe(v [, labels]) */
static int m_observe(lua_State *L) {
    family *f = check_family(L, 1 << HISTOGRAM);
    double v = (double)luaL_checknumber(L, 2);
    luaL_argcheck(L, !isnan(v), 2, "must be a number");
    update(L, f, 3, OP_OBSERVE, v);
    return 0;
}

/* ---- rendering (Prometheus text format 0.0.4) ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

/* s escaped for a label value (\\, \" and \n) or, without quotes, HELP (\\ and \n). */
static void put_escaped(text *t, const char *s, size_t n, int quote) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            puts_(t, "\\\\");
        else if (s[i] == '\n')
            puts_(t, "\\n");
        else if (quote && s[i] == '"')
            puts_(t, "\\\"");
        else
            put(t, s + i, 1);
    }
}

/* The shortest of %.15g and %.17g that reads back as v (0.1, not 0.10000000000000001). */
static const char *format_number(char buf[40], double v) {
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(buf, 40, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, 40, "%.17g", v);
    return buf;
}

static void put_number(text *t, double v) {
    char buf[40];
    puts_(t, format_number(buf, v));
}

/* name{labels[,le="bound"]} value */
static void put_sample(text *t, const family *f, const series *s, const char *suffix, const char *le, double v) {
    puts_(t, "luaspoa_script_");
    puts_(t, f->name);
    puts_(t, suffix);
    if (f->nlabels > 0 || le != NULL) {
        put(t, "{", 1);
        const char *k = s->key;
        for (int i = 0; i < f->nlabels; i++) {
            size_t n = strlen(k);
            if (i > 0)
                put(t, ",", 1);
            puts_(t, f->labels[i]);
            puts_(t, "=\"");
            put_escaped(t, k, n, 1);
            put(t, "\"", 1);
            k += n + 1;
        }
        if (le != NULL) {
            puts_(t, f->nlabels > 0 ? ",le=\"" : "le=\"");
            puts_(t, le);
            put(t, "\"", 1);
        }
        put(t, "}", 1);
    }
    put(t, " ", 1);
    put_number(t, v);
    put(t, "\n", 1);
}

char *luaspoa_metrics_render(size_t *len) {
    text t = {0};
    pthread_mutex_lock(&registry_lock);
    family *all = families;
    pthread_mutex_unlock(&registry_lock);
    /* Families are only appended and never freed: the list read is stable. */
    for (family *f = all; f != NULL; f = f->next) {
        puts_(&t, "# HELP luaspoa_script_");
        puts_(&t, f->name);
        put(&t, " ", 1);
        put_escaped(&t, f->help, strlen(f->help), 0);
        puts_(&t, "\n# TYPE luaspoa_script_");
        puts_(&t, f->name);
        put(&t, " ", 1);
        puts_(&t, kind_names[f->kind]);
        put(&t, "\n", 1);
        pthread_mutex_lock(&f->lock);
        for (series *s = f->first; s != NULL; s = s->next) {
            if (f->kind != HISTOGRAM) {
                put_sample(&t, f, s, "", NULL, s->value);
                continue;
            }
            uint64_t cumulative = 0;
            for (int i = 0; i < f->nbounds; i++) {
                char le[40];
                cumulative += s->buckets[i];
                put_sample(&t, f, s, "_bucket", format_number(le, f->bounds[i]), (double)cumulative);
            }
            put_sample(&t, f, s, "_bucket", "+Inf", (double)s->count);
            put_sample(&t, f, s, "_sum", NULL, s->value);
            put_sample(&t, f, s, "_count", NULL, (double)s->count);
        }
        pthread_mutex_unlock(&f->lock);
    }
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p != NULL ? t.p : calloc(1, 1);
}

void luaspoa_metrics_free(char *text) { free(text); }

void luaspoa_open_metrics(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"inc", m_inc}, {"dec", m_dec}, {"set", m_set}, {"observe", m_observe}, {NULL, NULL},
    };
    luaL_newmetatable(L, METRICS_CLASS);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    for (int k = COUNTER; k <= HISTOGRAM; k++) {
        lua_pushinteger(L, k);
        lua_pushcclosure(L, declare_metric, 1);
        lua_setfield(L, -2, kind_names[k]);
    }
    lua_setfield(L, -2, "metrics");
}
