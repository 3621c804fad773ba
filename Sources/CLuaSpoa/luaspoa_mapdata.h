/* Immutable parsed map files (luaspoa_mapdata.c), shared by luaspoa_map.c. */
#ifndef LUASPOA_MAPDATA_H
#define LUASPOA_MAPDATA_H

#include <stddef.h>
#include <stdint.h>

#include "luaspoa_filecache.h"
#include "luaspoa_ipranges.h"

enum { MAP_STR = 0, MAP_BEG = 1, MAP_INT = 2, MAP_IP = 3 };

typedef struct map_entry {
    const char *key;   /* into map_data.text, or 16 bytes of map_data.ipkeys */
    size_t klen;
    const char *val;   /* into map_data.text */
    size_t vlen;
    int64_t ival;      /* MAP_INT key */
    int bits;          /* prefix length: key bytes (beg) or bits (ip) */
    size_t order;      /* line order, so the first duplicate wins */
} map_entry;

typedef struct map_data {
    int kind;
    size_t n;
    map_entry *entries;   /* sorted */
    size_t *groups;       /* "beg": start of each key-length group, then n */
    size_t ngroups;
    ipr_range *ranges;    /* "ip": flattened prefixes, labelled with entries[] indexes */
    size_t nranges;
    uint8_t *ipkeys;
    char *text;           /* the file, owned */
} map_data;

/* Parses a map file and sets *id to the identity of what it read; NULL with
 * "path:line: why" in err on failure. */
map_data *luaspoa_map_parse(const char *path, int kind, luaspoa_file_id *id, char *err, size_t errcap);
void luaspoa_map_free(map_data *m);
/* key: bytes (str, beg), 16 mapped bytes (ip); ival for int maps. */
const map_entry *luaspoa_map_find(const map_data *m, const char *key, size_t klen, int64_t ival);
/* 16-byte IPv4-mapped form of an address. */
void luaspoa_map_ip16(int family, const uint8_t *raw, uint8_t out[16]);
int luaspoa_map_parse_cidr(const char *s, size_t len, uint8_t out[16], int *bits);

#endif
