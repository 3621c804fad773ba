/* Longest-prefix match for "ip" maps: the CIDRs (a laminar family: two prefixes
 * either nest or are disjoint) are flattened once into sorted, disjoint address
 * ranges, each labelled with the most specific entry covering it, so a lookup
 * is a single binary search whatever the number of prefix lengths. */
#include <stdlib.h>
#include <string.h>

#include "luaspoa_mapdata.h"

static const k128 K128_MAX = {~0ULL, ~0ULL};

static uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static k128 key_of(const uint8_t b[16]) { return (k128){load_be64(b), load_be64(b + 8)}; }
static int lt(k128 a, k128 b) { return a.h < b.h || (a.h == b.h && a.l < b.l); }
static int eq(k128 a, k128 b) { return a.h == b.h && a.l == b.l; }
static k128 inc(k128 k) { return (k128){k.h + (k.l == ~0ULL), k.l + 1}; }
static k128 dec(k128 k) { return (k128){k.h - (k.l == 0), k.l - 1}; }

/* Last address of a prefix: lo with every host bit set. */
static k128 last_of(k128 lo, int bits) {
    uint64_t mh = bits >= 64 ? 0 : (bits == 0 ? ~0ULL : ~0ULL >> bits);
    uint64_t ml = bits >= 128 ? 0 : (bits <= 64 ? ~0ULL : ~0ULL >> (bits - 64));
    return (k128){lo.h | mh, lo.l | ml};
}

/* Widest first among equal starts, so a prefix comes before what it contains. */
static int cmp_ranges(const void *pa, const void *pb) {
    const ip_range *a = pa, *b = pb;
    if (!eq(a->lo, b->lo))
        return lt(a->lo, b->lo) ? -1 : 1;
    if (!eq(a->hi, b->hi))
        return lt(a->hi, b->hi) ? 1 : -1;
    return 0;
}

static void emit(ip_range *out, size_t *n, k128 lo, k128 hi, uint32_t entry) {
    out[(*n)++] = (ip_range){lo, hi, entry};
}

int luaspoa_map_index_ip(map_data *m) {
    ip_range *items = malloc((m->n + 1) * sizeof *items);
    ip_range *stack = malloc((m->n + 1) * sizeof *stack);
    m->ranges = malloc((2 * m->n + 1) * sizeof *m->ranges);
    if (items == NULL || stack == NULL || m->ranges == NULL) {
        free(items);
        free(stack);
        return 0;
    }
    for (size_t i = 0; i < m->n; i++) {
        k128 lo = key_of((const uint8_t *)m->entries[i].key);
        items[i] = (ip_range){lo, last_of(lo, m->entries[i].bits), (uint32_t)i};
    }
    qsort(items, m->n, sizeof *items, cmp_ranges);
    /* Sweep: the stack holds the prefixes containing the current position,
     * innermost on top; cur is the first address not yet labelled. */
    size_t sp = 0, n = 0;
    k128 cur = {0, 0};
    for (size_t i = 0; i < m->n; i++) {
        const ip_range *it = &items[i];
        while (sp && lt(stack[sp - 1].hi, it->lo)) {
            const ip_range *top = &stack[--sp];
            if (!lt(top->hi, cur))
                emit(m->ranges, &n, cur, top->hi, top->entry);
            cur = inc(top->hi); /* top->hi < it->lo: no overflow */
        }
        if (sp && lt(cur, it->lo))
            emit(m->ranges, &n, cur, dec(it->lo), stack[sp - 1].entry);
        cur = it->lo;
        stack[sp++] = *it;
    }
    while (sp) {
        const ip_range *top = &stack[--sp];
        if (!lt(top->hi, cur))
            emit(m->ranges, &n, cur, top->hi, top->entry);
        if (eq(top->hi, K128_MAX))
            break; /* the rest of the stack ends there too */
        cur = inc(top->hi);
    }
    m->nranges = n;
    free(items);
    free(stack);
    return 1;
}

const map_entry *luaspoa_map_find_ip(const map_data *m, const uint8_t key[16]) {
    k128 k = key_of(key);
    size_t lo = 0, hi = m->nranges; /* find the last range starting at or before k */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lt(k, m->ranges[mid].lo))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0 || lt(m->ranges[lo - 1].hi, k))
        return NULL;
    return &m->entries[m->ranges[lo - 1].entry];
}
