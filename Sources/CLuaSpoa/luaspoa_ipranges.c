/* Flattening CIDR prefixes into disjoint ranges, and looking addresses up in
 * them (see luaspoa_ipranges.h). */
#include <stdlib.h>

#include "luaspoa_ipranges.h"

/* Prefixes that strictly nest have strictly growing lengths: 0..128. */
#define MAX_DEPTH 129

static uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int lt(ipr_key a, ipr_key b) { return a.h < b.h || (a.h == b.h && a.l < b.l); }
static int eq(ipr_key a, ipr_key b) { return a.h == b.h && a.l == b.l; }
static ipr_key inc(ipr_key k) { return (ipr_key){k.h + (k.l == ~0ULL), k.l + 1}; }
static ipr_key dec(ipr_key k) { return (ipr_key){k.h - (k.l == 0), k.l - 1}; }

ipr_key luaspoa_ipr_key(int width, const uint8_t *b) {
    if (width == 32)
        return (ipr_key){0, ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3]};
    return (ipr_key){load_be64(b), load_be64(b + 8)};
}

ipr_prefix luaspoa_ipr_prefix(int width, const uint8_t *bytes, int bits, uint32_t entry) {
    int host = width - bits; /* host bits: set in hi, clear in lo */
    ipr_key mask = {host > 64 ? ~0ULL >> (128 - host) : 0,
                    host >= 64 ? ~0ULL : (host > 0 ? ~0ULL >> (64 - host) : 0)};
    ipr_key k = luaspoa_ipr_key(width, bytes);
    ipr_key lo = {k.h & ~mask.h, k.l & ~mask.l};
    return (ipr_prefix){lo, {lo.h | mask.h, lo.l | mask.l}, entry, (uint8_t)bits};
}

/* By start, then outer prefixes first, then entry (so the last of identical
 * prefixes is the one kept). */
static int prefix_cmp(const void *pa, const void *pb) {
    const ipr_prefix *a = pa, *b = pb;
    if (!eq(a->lo, b->lo))
        return lt(a->lo, b->lo) ? -1 : 1;
    if (a->bits != b->bits)
        return a->bits < b->bits ? -1 : 1;
    return (a->entry > b->entry) - (a->entry < b->entry);
}

size_t luaspoa_ipr_flatten(ipr_prefix *p, size_t n, ipr_range *out) {
    static const ipr_key KEY_MAX = {~0ULL, ~0ULL};
    qsort(p, n, sizeof *p, prefix_cmp);
    /* Sweep: the stack holds the prefixes containing the current position,
     * innermost on top; cur is the first address not yet labelled. */
    ipr_prefix stack[MAX_DEPTH];
    size_t sp = 0, count = 0;
    ipr_key cur = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const ipr_prefix *e = &p[i];
        if (i + 1 < n && eq(p[i + 1].lo, e->lo) && p[i + 1].bits == e->bits)
            continue; /* an identical prefix follows: the later one wins */
        while (sp && lt(stack[sp - 1].hi, e->lo)) {
            const ipr_prefix *top = &stack[--sp];
            if (!lt(top->hi, cur))
                out[count++] = (ipr_range){cur, top->hi, top->entry};
            cur = inc(top->hi); /* top->hi < e->lo: no overflow */
        }
        if (sp && lt(cur, e->lo))
            out[count++] = (ipr_range){cur, dec(e->lo), stack[sp - 1].entry};
        if (sp == MAX_DEPTH)
            return LUASPOA_IPR_FAILED;
        cur = e->lo;
        stack[sp++] = *e;
    }
    while (sp) {
        const ipr_prefix *top = &stack[--sp];
        if (!lt(top->hi, cur))
            out[count++] = (ipr_range){cur, top->hi, top->entry};
        if (eq(top->hi, KEY_MAX))
            break; /* the rest of the stack ends there too */
        cur = inc(top->hi);
    }
    return count;
}

const ipr_range *luaspoa_ipr_find(const ipr_range *r, size_t n, ipr_key k) {
    size_t lo = 0, hi = n; /* find the last range starting at or before k */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lt(k, r[mid].lo))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0 || lt(r[lo - 1].hi, k))
        return NULL;
    return &r[lo - 1];
}
