/* IP addresses and CIDR networks without Lua: parsing, canonical text, masks,
 * containment. Used by the spoa.Addr/spoa.Net bindings, netsets and map data. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "luaspoa_ipaddr.h"

int luaspoa_parse_addr(const char *s, size_t len, int *family, uint8_t out[16]) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (len >= sizeof buf || memchr(s, '\0', len) != NULL)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = 4;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *family = 6;
        return 1;
    }
    return 0;
}

/* Writes "a.b.c.d" into buf (16 bytes); returns its length. inet_ntop formats
 * IPv4 with sprintf, ~1,800 instructions per tostring(ip) (callgrind). */
static size_t format_ipv4(const uint8_t *bytes, char *buf) {
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = bytes[i];
        if (v >= 100)
            buf[n++] = (char)('0' + v / 100);
        if (v >= 10)
            buf[n++] = (char)('0' + v / 10 % 10);
        buf[n++] = (char)('0' + v % 10);
        buf[n++] = '.';
    }
    return n - 1;
}

/* Writes the canonical text form (RFC 5952 for IPv6, via inet_ntop) into buf;
 * returns its length. */
size_t luaspoa_format_addr(int family, const uint8_t *bytes, char buf[LUASPOA_ADDR_TEXT_MAX]) {
    if (family == 4)
        return format_ipv4(bytes, buf);
    if (inet_ntop(AF_INET6, bytes, buf, LUASPOA_ADDR_TEXT_MAX) == NULL) {
        buf[0] = '?';
        return 1;
    }
    return strlen(buf);
}

void luaspoa_mask_bytes(uint8_t bytes[16], int bits) {
    for (int i = 0; i < 16; i++) {
        int keep = bits - 8 * i;
        if (keep >= 8)
            continue;
        bytes[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

int luaspoa_net_contains(const luaspoa_net *net, const luaspoa_addr *a) {
    if (net->family != a->family)
        return 0;
    int full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->bytes, a->bytes, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (a->bytes[full] & m) == net->bytes[full];
}

int luaspoa_parse_cidr(const char *s, size_t len, luaspoa_net *out, char *err, size_t errcap) {
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    int family;
    memset(out, 0, sizeof *out);
    if (!luaspoa_parse_addr(s, alen, &family, out->bytes)) {
        snprintf(err, errcap, "invalid CIDR \"%.*s\": bad address \"%.*s\"", (int)len, s,
                 (int)alen, s);
        return 0;
    }
    int max = family == 4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        bits = 0;
        if (p == end || end - p > 3)
            bits = -1;
        for (; p < end && bits >= 0; p++)
            bits = (*p >= '0' && *p <= '9') ? bits * 10 + (*p - '0') : -1;
        if (bits < 0 || bits > max) {
            snprintf(err, errcap, "invalid CIDR \"%.*s\": prefix length must be 0..%d", (int)len,
                     s, max);
            return 0;
        }
    }
    out->family = (uint8_t)family;
    out->bits = (uint8_t)bits;
    luaspoa_mask_bytes(out->bytes, bits); /* "10.1.2.3/8" means 10.0.0.0/8, as in HAProxy */
    return 1;
}
