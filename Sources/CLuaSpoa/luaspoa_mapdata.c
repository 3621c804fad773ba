/* Immutable map data behind spoa.map: parsing HAProxy map files and lookups.
 * No Lua and no locks here (luaspoa_map.c shares and swaps these objects).
 *
 * Every kind is one sorted array searched by bisection. "beg" groups the
 * entries by key length, longest first, and bisects each group with the key cut
 * to that length: the first hit is the longest match. "ip" flattens its CIDRs
 * into disjoint ranges (luaspoa_ipranges.c). IPv4 keys are stored as IPv4-mapped
 * IPv6 (::ffff:a.b.c.d, prefix + 96), as HAProxy matches them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaspoa_filecache.h"
#include "luaspoa_ipaddr.h"
#include "luaspoa_mapdata.h"

static int index_groups(map_data *m);
static int index_ip(map_data *m);
static int g_kind; /* qsort has no context argument; only used under parse */

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Order: group (longest prefix first) for prefix kinds, then key, then file order. */
static int cmp_entry_key(const map_entry *a, const map_entry *b, int kind) {
    if (kind == MAP_INT)
        return (a->ival > b->ival) - (a->ival < b->ival);
    if (kind != MAP_STR && a->bits != b->bits)
        return a->bits > b->bits ? -1 : 1;
    return cmp_bytes(a->key, a->klen, b->key, b->klen);
}

static int cmp_entries(const void *pa, const void *pb) {
    const map_entry *a = pa, *b = pb;
    int c = cmp_entry_key(a, b, g_kind);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* "a.b.c.d[/n]" or "x:y::z[/n]" -> 16 mapped bytes and a prefix length in bits. */
int luaspoa_map_parse_cidr(const char *s, size_t len, uint8_t out[16], int *bits) {
    luaspoa_net net;
    char why[160]; /* the callers report their own message */
    if (!luaspoa_parse_cidr(s, len, &net, why, sizeof why))
        return 0;
    luaspoa_map_ip16(net.family, net.bytes, out);
    *bits = net.family == 4 ? net.bits + 96 : net.bits;
    return 1;
}

void luaspoa_map_ip16(int family, const uint8_t *raw, uint8_t out[16]) {
    if (family == 4) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, raw, 4);
    } else {
        memcpy(out, raw, 16);
    }
}

static int parse_int(const char *s, size_t len, int64_t *out) {
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0')
        return 0;
    *out = v;
    return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Parses one "key value" line into e; returns 1, 0 (skip) or -1 (error). */
static int parse_line(map_data *m, char *line, size_t len, map_entry *e, char *err, size_t errcap) {
    size_t i = 0;
    while (i < len && is_space(line[i]))
        i++;
    if (i == len || line[i] == '#')
        return 0;
    size_t kstart = i;
    while (i < len && !is_space(line[i]))
        i++;
    size_t kend = i;
    while (i < len && is_space(line[i]))
        i++;
    size_t vend = len;
    while (vend > i && is_space(line[vend - 1]))
        vend--;
    e->key = line + kstart;
    e->klen = kend - kstart;
    e->val = line + i;
    e->vlen = vend - i;
    e->bits = (int)e->klen;
    if (m->kind == MAP_INT && !parse_int(e->key, e->klen, &e->ival)) {
        snprintf(err, errcap, "invalid integer key '%.*s'", (int)e->klen, e->key);
        return -1;
    }
    if (m->kind == MAP_IP) {
        uint8_t *slot = m->ipkeys + 16 * m->n;
        if (!luaspoa_map_parse_cidr(e->key, e->klen, slot, &e->bits)) {
            snprintf(err, errcap, "invalid IP address or CIDR '%.*s'", (int)e->klen, e->key);
            return -1;
        }
        e->key = (const char *)slot;
        e->klen = 16;
    }
    return 1;
}

map_data *luaspoa_map_parse(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap) {
    size_t len;
    char *text = luaspoa_read_file(path, &len, id, err, errcap);
    if (text == NULL)
        return NULL;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    map_data *m = calloc(1, sizeof *m);
    if (m)
        m->entries = malloc(lines * sizeof *m->entries);
    if (m && kind == MAP_IP)
        m->ipkeys = malloc(lines * 16);
    if (m == NULL || m->entries == NULL || (kind == MAP_IP && m->ipkeys == NULL)) {
        luaspoa_map_free(m);
        free(text);
        snprintf(err, errcap, "out of memory loading %s", path);
        return NULL;
    }
    m->text = text;
    m->kind = kind;
    size_t start = 0, lineno = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n')
            continue;
        lineno++;
        map_entry *e = &m->entries[m->n];
        char why[200];
        int rc = parse_line(m, text + start, i - start, e, why, sizeof why);
        if (rc < 0) {
            snprintf(err, errcap, "%s:%zu: %s", path, lineno, why);
            luaspoa_map_free(m);
            return NULL;
        }
        if (rc > 0)
            e->order = m->n++;
        start = i + 1;
    }
    g_kind = kind;
    qsort(m->entries, m->n, sizeof *m->entries, cmp_entries);
    /* Duplicate keys: the first one in the file wins, as in HAProxy. */
    size_t out = 0;
    for (size_t i = 0; i < m->n; i++)
        if (out == 0 || cmp_entry_key(&m->entries[out - 1], &m->entries[i], kind) != 0)
            m->entries[out++] = m->entries[i];
    m->n = out;
    if (!(kind == MAP_IP ? index_ip(m) : index_groups(m))) {
        snprintf(err, errcap, "out of memory loading %s", path);
        luaspoa_map_free(m);
        return NULL;
    }
    return m;
}

void luaspoa_map_free(map_data *m) {
    if (m == NULL)
        return;
    free(m->entries);
    free(m->groups);
    free(m->ranges);
    free(m->ipkeys);
    free(m->text);
    free(m);
}

/* Bisects entries[lo, hi) for probe; returns the match or NULL. */
static const map_entry *bisect(const map_data *m, size_t lo, size_t hi, const map_entry *probe) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_entry_key(&m->entries[mid], probe, m->kind);
        if (c == 0)
            return &m->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Longest prefix ("beg"): walk the key-length groups, longest first, and bisect
 * each with the key cut to that length. */
static const map_entry *lookup_prefix(const map_data *m, const char *key, size_t klen) {
    for (size_t g = 0; g < m->ngroups; g++) {
        size_t lo = m->groups[g], hi = m->groups[g + 1];
        int bits = m->entries[lo].bits;
        if ((size_t)bits > klen)
            continue;
        map_entry probe = {.bits = bits, .key = key, .klen = (size_t)bits};
        const map_entry *hit = bisect(m, lo, hi, &probe);
        if (hit)
            return hit;
    }
    return NULL;
}

/* Start index of each prefix-length group, plus n at the end. */
static int index_groups(map_data *m) {
    m->groups = malloc((m->n + 1) * sizeof *m->groups);
    if (m->groups == NULL)
        return 0;
    for (size_t i = 0; i < m->n; i++)
        if (i == 0 || m->entries[i].bits != m->entries[i - 1].bits)
            m->groups[m->ngroups++] = i;
    m->groups[m->ngroups] = m->n;
    return 1;
}

/* Flattens the (deduplicated) ip entries into m->ranges; 0 when out of memory. */
static int index_ip(map_data *m) {
    ipr_prefix *items = malloc((m->n + 1) * sizeof *items);
    m->ranges = malloc((2 * m->n + 1) * sizeof *m->ranges);
    if (items == NULL || m->ranges == NULL) {
        free(items);
        return 0;
    }
    for (size_t i = 0; i < m->n; i++)
        items[i] = luaspoa_ipr_prefix(128, (const uint8_t *)m->entries[i].key, m->entries[i].bits,
                                      (uint32_t)i);
    size_t n = luaspoa_ipr_flatten(items, m->n, m->ranges);
    free(items);
    m->nranges = n;
    return n != LUASPOA_IPR_FAILED; /* cannot fail: parsed prefixes have bits <= 128 */
}

const map_entry *luaspoa_map_find(const map_data *m, const char *key, size_t klen, int64_t ival) {
    if (m->kind == MAP_IP) {
        const ipr_range *r = luaspoa_ipr_find(m->ranges, m->nranges,
                                              luaspoa_ipr_key(128, (const uint8_t *)key));
        return r ? &m->entries[r->entry] : NULL;
    }
    if (m->kind == MAP_BEG)
        return lookup_prefix(m, key, klen);
    map_entry probe = {.key = key, .klen = klen, .ival = ival};
    return bisect(m, 0, m->n, &probe);
}
