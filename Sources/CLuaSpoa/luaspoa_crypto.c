/* spoa.crypto: digests, HMAC, random bytes, constant-time comparison, base64
 * and hex, and AES-256-GCM sealing, over OpenSSL's libcrypto.
 *
 * Bounded: every function that reads a caller's string feeds the library
 * LUASPOA_CRYPTO_CHUNK bytes at a time and polls the time budget between
 * chunks, so hashing 100 MB is cut by the budget like a Lua loop would be (a
 * single C call cannot be interrupted). Library contexts live in a
 * luaspoa_cres so a budget or memory error in between frees them. Library
 * failures become `nil, err`; argument errors are raised from here. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "luaspoa_crypto.h"

#define RANDOM_BYTES_MAX 4096
#define GCM_NONCE 12
#define GCM_TAG 16

static const EVP_MD *md_named(const char *name) {
    static const struct { const char *name; const EVP_MD *(*md)(void); } mds[] = {
        {"md5", EVP_md5}, {"sha1", EVP_sha1}, {"sha224", EVP_sha224}, {"sha256", EVP_sha256},
        {"sha384", EVP_sha384}, {"sha512", EVP_sha512},
    };
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++)
        if (strcmp(name, mds[i].name) == 0)
            return mds[i].md();
    return NULL;
}

const EVP_MD *luaspoa_check_md(lua_State *L, int idx) {
    const char *name = luaL_checkstring(L, idx);
    const EVP_MD *md = md_named(name);
    if (md == NULL)
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown digest '%s' (md5, sha1, sha224, sha256, sha384, sha512)", name));
    return md;
}

static void free_md_ctx(void *p) { EVP_MD_CTX_free(p); }
static void free_mac_ctx(void *p) { EVP_MAC_CTX_free(p); }
static void free_cipher_ctx(void *p) { EVP_CIPHER_CTX_free(p); }

typedef int (*update_fn)(void *ctx, const unsigned char *p, size_t n);
static int md_update(void *ctx, const unsigned char *p, size_t n) { return EVP_DigestUpdate(ctx, p, n); }
static int mac_update(void *ctx, const unsigned char *p, size_t n) { return EVP_MAC_update(ctx, p, n); }

/* Feeds s to the context in chunks, polling the budget between them. */
static int feed(lua_State *L, update_fn update, void *ctx, const unsigned char *s, size_t len) {
    for (size_t off = 0; off < len; off += LUASPOA_CRYPTO_CHUNK) {
        size_t n = luaspoa_next_chunk(L, len, off, LUASPOA_CRYPTO_CHUNK);
        if (!update(ctx, s + off, n))
            return 0;
    }
    return 1;
}

void luaspoa_push_hex(lua_State *L, const unsigned char *s, size_t len) {
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t off = 0; off < len; off += LUASPOA_CRYPTO_CHUNK) {
        size_t n = luaspoa_next_chunk(L, len, off, LUASPOA_CRYPTO_CHUNK);
        char *out = luaL_prepbuffsize(&b, 2 * n);
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = digits[s[off + i] >> 4];
            out[2 * i + 1] = digits[s[off + i] & 15];
        }
        luaL_addsize(&b, 2 * n);
    }
    luaL_pushresult(&b);
}

/* The optional output format argument: 0 raw bytes, 1 hex. */
static int check_hex_opt(lua_State *L, int idx) {
    static const char *const formats[] = {"raw", "hex", NULL};
    return luaL_checkoption(L, idx, "raw", formats);
}

static int push_digest_out(lua_State *L, const unsigned char *out, size_t n, int hex) {
    if (hex)
        luaspoa_push_hex(L, out, n);
    else
        lua_pushlstring(L, (const char *)out, n);
    return 1;
}

static int library_error(lua_State *L, const char *what) {
    ERR_clear_error(); /* the thread's queue would otherwise grow and mislead a later call */
    luaL_pushfail(L);
    lua_pushstring(L, what);
    return 2;
}

/* The owner of a context that feed gives len bytes: a luaspoa_cres on the
 * stack when feed polls the budget (more than one chunk), so that a raised
 * error frees the context; else *local, as nothing raises before the context
 * is freed, which saves a userdata and its finalizer per call. */
static luaspoa_cres *ctx_owner(lua_State *L, size_t len, void (*free_fn)(void *), luaspoa_cres *local) {
    if (len > LUASPOA_CRYPTO_CHUNK)
        return luaspoa_cres_push(L, free_fn);
    local->p = NULL;
    local->free_fn = free_fn;
    return local;
}

static void ctx_release(lua_State *L, luaspoa_cres *r, const luaspoa_cres *local) {
    luaspoa_cres_free(r);
    if (r != local)
        lua_pop(L, 1);
}

int luaspoa_digest(lua_State *L, const EVP_MD *md, const unsigned char *s, size_t len,
                   unsigned char out[EVP_MAX_MD_SIZE], unsigned *outlen) {
    luaspoa_cres local, *r = ctx_owner(L, len, free_md_ctx, &local);
    EVP_MD_CTX *ctx = r->p = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) && feed(L, md_update, ctx, s, len) &&
             EVP_DigestFinal_ex(ctx, out, outlen);
    ctx_release(L, r, &local);
    return ok;
}

static int digest_named(lua_State *L, const char *name) {
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    int hex = check_hex_opt(L, 2);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned n;
    if (!luaspoa_digest(L, md_named(name), s, len, out, &n))
        return library_error(L, "digest failed");
    return push_digest_out(L, out, n, hex);
}

#define DIGEST_FUNCTION(name) \
    static int l_##name(lua_State *L) { return digest_named(L, #name); }
DIGEST_FUNCTION(md5)
DIGEST_FUNCTION(sha1)
DIGEST_FUNCTION(sha224)
DIGEST_FUNCTION(sha256)
DIGEST_FUNCTION(sha384)
DIGEST_FUNCTION(sha512)

/* HMAC is fetched once per process: a fetch walks the provider's tables. */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void fetch_hmac(void) { hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL); }

int luaspoa_hmac(lua_State *L, const EVP_MD *md, const unsigned char *key, size_t keylen,
                 const unsigned char *s, size_t len, unsigned char out[EVP_MAX_MD_SIZE], size_t *outlen) {
    pthread_once(&hmac_once, fetch_hmac);
    if (hmac_impl == NULL)
        return 0;
    luaspoa_cres local, *r = ctx_owner(L, len, free_mac_ctx, &local);
    EVP_MAC_CTX *ctx = r->p = EVP_MAC_CTX_new(hmac_impl);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) && feed(L, mac_update, ctx, s, len) &&
             EVP_MAC_final(ctx, out, outlen, EVP_MAX_MD_SIZE);
    ctx_release(L, r, &local);
    return ok;
}

/* hmac(alg, key, data [, "hex"]) */
static int l_hmac(lua_State *L) {
    const EVP_MD *md = luaspoa_check_md(L, 1);
    size_t keylen, len;
    const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 2, &keylen);
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 3, &len);
    int hex = check_hex_opt(L, 4);
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t n;
    if (!luaspoa_hmac(L, md, key, keylen, s, len, out, &n))
        return library_error(L, "hmac failed");
    return push_digest_out(L, out, n, hex);
}

static int l_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= RANDOM_BYTES_MAX, 1, "must be 0..4096");
    unsigned char buf[RANDOM_BYTES_MAX];
    if (n > 0 && RAND_bytes(buf, (int)n) != 1)
        return library_error(L, "random generator failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* Constant time in the content for equal lengths; a length difference is
 * not hidden (MACs and tokens compared here have public lengths). */
static int l_equals(lua_State *L) {
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
    return 1;
}

/* ---- base64 (RFC 4648 section 4) and base64url (section 5, no padding) ---- */

static void base64_encode(lua_State *L, const unsigned char *s, size_t len, int url) {
    /* A multiple of 3 so that only the last chunk is padded. */
    enum { IN = 3 * 16384, OUT = 4 * 16384 + 1 };
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t off = 0; off < len; off += IN) {
        size_t n = luaspoa_next_chunk(L, len, off, IN);
        char *out = luaL_prepbuffsize(&b, OUT);
        int m = EVP_EncodeBlock((unsigned char *)out, s + off, (int)n);
        if (url) {
            while (m > 0 && out[m - 1] == '=')
                m--;
            for (int i = 0; i < m; i++)
                out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
        }
        luaL_addsize(&b, (size_t)m);
    }
    luaL_pushresult(&b);
}

/* Per variant (0 base64, 1 base64url), each byte's character in the standard
 * alphabet that EVP_DecodeBlock reads, or 0 when the variant has no such
 * character: one load per character checks and translates it. */
static unsigned char base64_in[2][256];
static pthread_once_t base64_once = PTHREAD_ONCE_INIT;
static void fill_base64_in(void) {
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int url = 0; url < 2; url++)
        for (int i = 0; i < 64; i++)
            base64_in[url][(unsigned char)(url && i >= 62 ? "-_"[i - 62] : std[i])] = (unsigned char)std[i];
}

/* Strict: only the variant's alphabet, '=' padding optional but only at the
 * end (EVP_DecodeBlock alone would skip whitespace and accept either
 * alphabet's mistakes silently). Returns 1 with the bytes in b, or 0 with a
 * message pushed; b takes a stack slot either way. The bytes stay in b (not a
 * Lua string) for a caller that only reads them, as spoa.jwt does. */
static int base64_decode(lua_State *L, const char *s, size_t len, int url, luaL_Buffer *b) {
    enum { IN = 4 * 4096 };
    unsigned char in[IN], out[3 * 4096];
    size_t pad = 0;
    while (pad < 2 && len > 0 && s[len - 1] == '=') {
        len--;
        pad++;
    }
    luaL_buffinit(L, b);
    pthread_once(&base64_once, fill_base64_in);
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0)) {
        lua_pushliteral(L, "invalid base64 length");
        return 0;
    }
    for (size_t off = 0; off < len; off += IN) {
        size_t n = luaspoa_next_chunk(L, len, off, IN);
        for (size_t i = 0; i < n; i++) {
            in[i] = base64_in[url][(unsigned char)s[off + i]];
            if (in[i] == 0) {
                lua_pushfstring(L, "invalid base64 character at position %I", (lua_Integer)(off + i + 1));
                return 0;
            }
        }
        size_t missing = (4 - n % 4) % 4; /* only in the last chunk: IN is a multiple of 4 */
        for (size_t i = 0; i < missing; i++)
            in[n + i] = '=';
        int m = EVP_DecodeBlock(out, in, (int)(n + missing));
        if (m < 0) {
            lua_pushliteral(L, "invalid base64");
            return 0;
        }
        luaL_addlstring(b, (const char *)out, (size_t)m - missing);
    }
    return 1;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* As base64_decode: 1 with the bytes in b, or 0 with a message pushed. */
static int hex_decode(lua_State *L, const char *s, size_t len, luaL_Buffer *b) {
    luaL_buffinit(L, b);
    if (len % 2 != 0) {
        lua_pushliteral(L, "invalid hex length");
        return 0;
    }
    for (size_t off = 0; off < len; off += LUASPOA_CRYPTO_CHUNK) {
        size_t n = luaspoa_next_chunk(L, len, off, LUASPOA_CRYPTO_CHUNK);
        char *out = luaL_prepbuffsize(b, n / 2);
        for (size_t i = 0; i < n; i += 2) {
            int hi = hex_value((unsigned char)s[off + i]), lo = hex_value((unsigned char)s[off + i + 1]);
            if (hi < 0 || lo < 0) {
                lua_pushfstring(L, "invalid hex character at position %I", (lua_Integer)(off + i + (hi < 0 ? 1 : 2)));
                return 0;
            }
            out[i / 2] = (char)(hi << 4 | lo);
        }
        luaL_addsize(b, n / 2);
    }
    return 1;
}

enum codec { BASE64, BASE64URL, HEX };

static int codec_encode(lua_State *L) {
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    int codec = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (codec == HEX)
        luaspoa_push_hex(L, s, len);
    else
        base64_encode(L, s, len, codec == BASE64URL);
    return 1;
}

static int codec_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int codec = (int)lua_tointeger(L, lua_upvalueindex(1));
    luaL_Buffer b;
    if (codec == HEX ? hex_decode(L, s, len, &b) : base64_decode(L, s, len, codec == BASE64URL, &b)) {
        luaL_pushresult(&b);
        return 1;
    }
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

int luaspoa_base64url_decode(lua_State *L, const char *s, size_t len, luaL_Buffer *b) {
    return base64_decode(L, s, len, 1, b);
}

int luaspoa_library_error(lua_State *L, const char *what) {
    return library_error(L, what);
}

/* ---- AES-256-GCM: nonce(12) || ciphertext || tag(16) ---- */

static const unsigned char *check_aes_key(lua_State *L, int idx) {
    size_t len;
    const char *key = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, len == 32, idx, "AES-256 key must be 32 bytes");
    return (const unsigned char *)key;
}

/* Runs the cipher over s into the buffer in chunks; 0 on a library failure. */
static int cipher_chunks(lua_State *L, EVP_CIPHER_CTX *ctx, const unsigned char *s, size_t len,
                         luaL_Buffer *b) {
    for (size_t off = 0; off < len; off += LUASPOA_CRYPTO_CHUNK) {
        size_t n = luaspoa_next_chunk(L, len, off, LUASPOA_CRYPTO_CHUNK);
        unsigned char *out = (unsigned char *)luaL_prepbuffsize(b, n);
        int m;
        if (!EVP_CipherUpdate(ctx, out, &m, s + off, (int)n))
            return 0;
        luaL_addsize(b, (size_t)m);
    }
    return 1;
}

/* seal(key, plaintext [, aad]) */
static int l_seal(lua_State *L) {
    const unsigned char *key = check_aes_key(L, 1);
    size_t len, aadlen;
    const unsigned char *plain = (const unsigned char *)luaL_checklstring(L, 2, &len);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
    unsigned char nonce[GCM_NONCE], tag[GCM_TAG];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return library_error(L, "random generator failed");
    luaspoa_cres *r = luaspoa_cres_push(L, free_cipher_ctx);
    EVP_CIPHER_CTX *ctx = r->p = EVP_CIPHER_CTX_new();
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)nonce, sizeof nonce);
    int m;
    int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) &&
             (aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &m, aad, (int)aadlen)) &&
             cipher_chunks(L, ctx, plain, len, &b) && EVP_EncryptFinal_ex(ctx, tag, &m) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag);
    luaspoa_cres_free(r);
    if (!ok)
        return library_error(L, "encryption failed");
    luaL_addlstring(&b, (const char *)tag, sizeof tag);
    luaL_pushresult(&b);
    return 1;
}

/* open(key, sealed [, aad]): the plaintext only once the tag has verified. */
static int l_open(lua_State *L) {
    const unsigned char *key = check_aes_key(L, 1);
    size_t len, aadlen;
    const unsigned char *sealed = (const unsigned char *)luaL_checklstring(L, 2, &len);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
    if (len < GCM_NONCE + GCM_TAG)
        return library_error(L, "authentication failed");
    luaspoa_cres *r = luaspoa_cres_push(L, free_cipher_ctx);
    EVP_CIPHER_CTX *ctx = r->p = EVP_CIPHER_CTX_new();
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int m;
    unsigned char tag[GCM_TAG];
    memcpy(tag, sealed + len - GCM_TAG, GCM_TAG);
    int ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, sealed) &&
             (aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &m, aad, (int)aadlen)) &&
             cipher_chunks(L, ctx, sealed + GCM_NONCE, len - GCM_NONCE - GCM_TAG, &b) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag);
    unsigned char last[16];
    ok = ok && EVP_DecryptFinal_ex(ctx, last, &m) == 1;
    luaspoa_cres_free(r);
    if (!ok)
        return library_error(L, "authentication failed");
    luaL_pushresult(&b);
    return 1;
}

static void set_codec(lua_State *L, const char *name, enum codec codec) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, codec);
    lua_pushcclosure(L, codec_encode, 1);
    lua_setfield(L, -2, "encode");
    lua_pushinteger(L, codec);
    lua_pushcclosure(L, codec_decode, 1);
    lua_setfield(L, -2, "decode");
    lua_setfield(L, -2, name);
}

void luaspoa_open_crypto(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"md5", l_md5}, {"sha1", l_sha1}, {"sha224", l_sha224}, {"sha256", l_sha256},
        {"sha384", l_sha384}, {"sha512", l_sha512}, {"hmac", l_hmac}, {"random_bytes", l_random_bytes},
        {"equals", l_equals}, {"seal", l_seal}, {"open", l_open}, {NULL, NULL},
    };
    luaL_newlib(L, functions);
    set_codec(L, "base64", BASE64);
    set_codec(L, "base64url", BASE64URL);
    set_codec(L, "hex", HEX);
    lua_setfield(L, -2, "crypto");
}
