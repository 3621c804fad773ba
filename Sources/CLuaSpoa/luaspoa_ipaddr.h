/* IP addresses and CIDR networks without Lua (luaspoa_ipaddr.c). */
#ifndef LUASPOA_IPADDR_H
#define LUASPOA_IPADDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct luaspoa_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t bytes[16];
} luaspoa_addr;

typedef struct luaspoa_net {
    uint8_t family;
    uint8_t bits;       /* prefix length */
    uint8_t bytes[16];  /* network address, host bits zero */
} luaspoa_net;

/* Parses text into family + bytes; returns 1 on success, 0 otherwise. */
int luaspoa_parse_addr(const char *s, size_t len, int *family, uint8_t out[16]);
#define LUASPOA_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
/* Writes the canonical text form into buf; returns its length. */
size_t luaspoa_format_addr(int family, const uint8_t *bytes, char buf[LUASPOA_ADDR_TEXT_MAX]);
/* Zeroes the bits after the first `bits`. */
void luaspoa_mask_bytes(uint8_t bytes[16], int bits);
int luaspoa_net_contains(const luaspoa_net *net, const luaspoa_addr *a);
/* Parses "addr[/bits]"; returns 0 with a message in err on failure. */
int luaspoa_parse_cidr(const char *s, size_t len, luaspoa_net *out, char *err, size_t errcap);

#endif
