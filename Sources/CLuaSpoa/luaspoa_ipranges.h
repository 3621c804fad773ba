/* Longest-prefix match over a set of CIDR prefixes, shared by spoa.netset
 * (luaspoa_netset.c, arrays in a Lua state) and "ip" maps (luaspoa_mapdata.c,
 * arrays from malloc). No Lua and no allocation here: callers own the arrays.
 *
 * The prefixes (a laminar family: two either nest or are disjoint) are
 * flattened once into sorted, disjoint address ranges, each labelled with the
 * most specific prefix covering it, so a lookup is one binary search whatever
 * the number of prefix lengths. */
#ifndef LUASPOA_IPRANGES_H
#define LUASPOA_IPRANGES_H

#include <stddef.h>
#include <stdint.h>

/* An address as a big-endian number: 4 bytes in l (width 32), or 16 bytes. */
typedef struct ipr_key { uint64_t h, l; } ipr_key;

/* A prefix to flatten: addresses [lo, hi], prefix length bits, caller's label. */
typedef struct ipr_prefix { ipr_key lo, hi; uint32_t entry; uint8_t bits; } ipr_prefix;

/* A flattened range: entry is the most specific prefix covering [lo, hi]. */
typedef struct ipr_range { ipr_key lo, hi; uint32_t entry; } ipr_range;

/* width 32: bytes holds 4 bytes; width 128: 16 bytes. */
ipr_key luaspoa_ipr_key(int width, const uint8_t *bytes);
/* The prefix of `bits` (0..width) leading bits of bytes (host bits ignored). */
ipr_prefix luaspoa_ipr_prefix(int width, const uint8_t *bytes, int bits, uint32_t entry);

#define LUASPOA_IPR_FAILED SIZE_MAX
/* Sorts prefixes[0..n) (all of one width) and flattens them into out, which
 * must hold 2 * n + 1 ranges. The most specific prefix wins; of identical
 * prefixes, the one with the highest entry. Returns the number of ranges, or
 * LUASPOA_IPR_FAILED if the prefixes nest deeper than 129 (bits > 128). */
size_t luaspoa_ipr_flatten(ipr_prefix *prefixes, size_t n, ipr_range *out);
/* The range of ranges[0..n) containing k, or NULL. */
const ipr_range *luaspoa_ipr_find(const ipr_range *ranges, size_t n, ipr_key k);

#endif
