/* luaspoa_crypto.c's helpers for the modules built on it (spoa.jwt). */
#ifndef LUASPOA_CRYPTO_H
#define LUASPOA_CRYPTO_H

#include <openssl/evp.h>

#include "luaspoa_internal.h"

/* The digest named by the string at idx (md5, sha1, sha224..sha512), or raises. */
const EVP_MD *luaspoa_check_md(lua_State *L, int idx);
/* Digest and HMAC of s, fed in chunks under the budget; 0 on a library failure. */
int luaspoa_digest(lua_State *L, const EVP_MD *md, const unsigned char *s, size_t len,
                   unsigned char out[EVP_MAX_MD_SIZE], unsigned *outlen);
int luaspoa_hmac(lua_State *L, const EVP_MD *md, const unsigned char *key, size_t keylen,
                 const unsigned char *s, size_t len, unsigned char out[EVP_MAX_MD_SIZE], size_t *outlen);
/* Decodes into b (initialised here; luaL_buffaddr, luaL_bufflen) and returns 1,
 * or pushes a message and returns 0. b takes one stack slot either way. */
int luaspoa_base64url_decode(lua_State *L, const char *s, size_t len, luaL_Buffer *b);
void luaspoa_push_hex(lua_State *L, const unsigned char *s, size_t len);
/* Clears OpenSSL's error queue, pushes nil, what; returns 2. */
int luaspoa_library_error(lua_State *L, const char *what);

#endif
