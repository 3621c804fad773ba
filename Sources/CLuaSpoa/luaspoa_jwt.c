/* spoa.jwt: verification of compact JWS tokens (RFC 7519/7515) over libcrypto.
 *
 * The algorithm is always the caller's (opts.alg): a token naming another one,
 * "none" included, is refused before any key is used, which closes the
 * classic alg-confusion attacks (an RS256 public key used as an HS256 secret).
 * The header and claims are read with spoa.json's decoder.
 *
 * Bounded: a token is at most JWT_MAX_TOKEN bytes, so each library call
 * (one HMAC, one RSA or ECDSA verification) works on a few KiB. Public keys
 * parsed from PEM by spoa.jwt.key are kept in a userdata; a PEM string passed
 * to verify is parsed on each call. Contexts live in luaspoa_cres values. */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <string.h>

#include "luaspoa_crypto.h"
#include "luaspoa_process.h"

#define JWT_MAX_TOKEN ((size_t)16 << 10)
#define JWT_KEY_CLASS "spoa.jwt.key"

enum family { FAMILY_HMAC, FAMILY_RSA, FAMILY_ECDSA };

typedef struct {
    const char *name;
    enum family family;
    const EVP_MD *(*md)(void); /* libcrypto's built-in digest: no lookup by name per call */
    int ec_bits;       /* ECDSA: the curve's size, which is also r's and s's */
    const char *curve; /* ECDSA: OpenSSL's name of the curve RFC 7518 requires */
} jwt_alg;

static const jwt_alg algs[] = {
    {"HS256", FAMILY_HMAC, EVP_sha256, 0}, {"HS384", FAMILY_HMAC, EVP_sha384, 0}, {"HS512", FAMILY_HMAC, EVP_sha512, 0},
    {"RS256", FAMILY_RSA, EVP_sha256, 0},  {"RS384", FAMILY_RSA, EVP_sha384, 0},  {"RS512", FAMILY_RSA, EVP_sha512, 0},
    {"ES256", FAMILY_ECDSA, EVP_sha256, 256, "prime256v1"}, {"ES384", FAMILY_ECDSA, EVP_sha384, 384, "secp384r1"},
};

static const jwt_alg *alg_named(const char *name) {
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(name, algs[i].name) == 0)
            return &algs[i];
    return NULL;
}

static void free_pkey(void *p) { EVP_PKEY_free(p); }
static void free_md_ctx(void *p) { EVP_MD_CTX_free(p); }
static void free_ecdsa_sig(void *p) { ECDSA_SIG_free(p); }

static int key_gc(lua_State *L) {
    luaspoa_cres_free(lua_touserdata(L, 1));
    return 0;
}

/* Parses a PEM public key into owner (NULL when it is not one). */
static EVP_PKEY *read_pem_key(const char *pem, size_t len, luaspoa_cres *owner) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio == NULL ? NULL : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    owner->p = pkey;
    return pkey;
}

/* spoa.jwt.key(pem) -> a parsed public key for verify's opts.key */
static int l_key(lua_State *L) {
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    luaspoa_cres *owner = lua_newuserdatauv(L, sizeof *owner, 0);
    owner->p = NULL;
    owner->free_fn = free_pkey;
    luaspoa_setmetatable(L, JWT_KEY_CLASS);
    if (read_pem_key(pem, len, owner) == NULL)
        return luaspoa_library_error(L, "not a PEM public key");
    return 1;
}

/* The public key in opts.key (at idx): a spoa.jwt.key or a PEM string, for
 * the algorithm's family; raises on a configuration error. */
static EVP_PKEY *check_public_key(lua_State *L, int idx, const jwt_alg *alg) {
    EVP_PKEY *pkey;
    luaspoa_cres *owner = luaspoa_testudata(L, idx, JWT_KEY_CLASS);
    if (owner != NULL) {
        pkey = owner->p;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *pem = lua_tolstring(L, idx, &len);
        pkey = read_pem_key(pem, len, luaspoa_cres_push(L, free_pkey));
    } else {
        luaL_error(L, "spoa.jwt.verify: opts.key must be a PEM public key or spoa.jwt.key(pem) for %s", alg->name);
        return NULL;
    }
    if (pkey == NULL)
        luaL_error(L, "spoa.jwt.verify: opts.key is not a PEM public key");
    int want = alg->family == FAMILY_RSA ? EVP_PKEY_RSA : EVP_PKEY_EC;
    char curve[64] = "";
    if (alg->family == FAMILY_ECDSA)
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, NULL);
    if (EVP_PKEY_get_base_id(pkey) != want || (alg->family == FAMILY_ECDSA && strcmp(curve, alg->curve) != 0))
        luaL_error(L, "spoa.jwt.verify: opts.key is not a%s key for %s",
                   alg->family == FAMILY_RSA ? "n RSA" : alg->ec_bits == 256 ? " P-256" : " P-384", alg->name);
    return pkey;
}

/* ECDSA in JWS is r || s, fixed width; libcrypto verifies DER. Pushes the
 * DER and returns 1, or 0 for a signature of the wrong size. */
static int push_ecdsa_der(lua_State *L, const unsigned char *sig, size_t len, int bits) {
    size_t half = (size_t)(bits + 7) / 8;
    if (len != 2 * half)
        return 0;
    luaspoa_cres *owner = luaspoa_cres_push(L, free_ecdsa_sig);
    ECDSA_SIG *es = owner->p = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        return luaL_error(L, "not enough memory");
    }
    unsigned char der[2 * 66 + 16];
    unsigned char *p = der;
    int n = i2d_ECDSA_SIG(es, &p);
    luaspoa_cres_free(owner);
    lua_pop(L, 1);
    if (n <= 0)
        return 0;
    lua_pushlstring(L, (const char *)der, (size_t)n);
    return 1;
}

/* 1 when sig is the signature of input under opts.key (at ki). */
static int signature_ok(lua_State *L, const jwt_alg *alg, int ki, const char *input, size_t inlen,
                        const unsigned char *sig, size_t siglen) {
    const EVP_MD *md = alg->md();
    if (alg->family == FAMILY_HMAC) {
        size_t keylen;
        const char *key = lua_tolstring(L, ki, &keylen);
        if (key == NULL || lua_type(L, ki) != LUA_TSTRING)
            luaL_error(L, "spoa.jwt.verify: opts.key must be the shared secret (a string) for %s", alg->name);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen;
        if (!luaspoa_hmac(L, md, (const unsigned char *)key, keylen, (const unsigned char *)input, inlen, mac,
                          &maclen))
            return 0;
        return maclen == siglen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }
    EVP_PKEY *pkey = check_public_key(L, ki, alg);
    if (alg->family == FAMILY_ECDSA) {
        if (!push_ecdsa_der(L, sig, siglen, alg->ec_bits))
            return 0;
        sig = (const unsigned char *)lua_tolstring(L, -1, &siglen);
    }
    luaspoa_cres *owner = luaspoa_cres_push(L, free_md_ctx);
    EVP_MD_CTX *ctx = owner->p = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1;
    luaspoa_cres_free(owner);
    ERR_clear_error();
    return ok;
}

/* Pushes the JSON object in base64url part [s, s + len) and returns 1, or 0.
 * The JSON text is decoded from the base64 buffer, never a Lua string. */
static int push_json_part(lua_State *L, const char *s, size_t len) {
    luaL_Buffer b;
    if (!luaspoa_base64url_decode(L, s, len, &b) || luaspoa_json_push(L, luaL_buffaddr(&b), luaL_bufflen(&b)) != 1)
        return 0;
    lua_remove(L, -2); /* the buffer's slot */
    /* A JSON object: a non-empty array decodes to a sequence. */
    return lua_type(L, -1) == LUA_TTABLE && lua_rawlen(L, -1) == 0;
}

static int refuse(lua_State *L, const char *reason) {
    luaL_pushfail(L);
    lua_pushstring(L, reason);
    return 2;
}

/* A NumericDate claim: 1 with *t, 0 when absent, -1 when not a number. */
static int numeric_claim(lua_State *L, int claims, const char *name, double *t) {
    int type = lua_getfield(L, claims, name);
    *t = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return type == LUA_TNUMBER ? 1 : type == LUA_TNIL ? 0 : -1;
}

/* claims.aud (a string or an array of them) contains the string at want. */
static int audience_ok(lua_State *L, int claims, int want) {
    int found = 0;
    int type = lua_getfield(L, claims, "aud");
    if (type == LUA_TSTRING) {
        found = lua_rawequal(L, -1, want);
    } else if (type == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n && !found; i++) {
            lua_rawgeti(L, -1, i);
            found = lua_rawequal(L, -1, want);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return found;
}

/* verify(token, { alg =, key =, iss =, aud =, leeway = }) -> claims, header | nil, reason */
static int l_verify(lua_State *L) {
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_getfield(L, 2, "alg");   /* 3 */
    lua_getfield(L, 2, "key");   /* 4 */
    lua_getfield(L, 2, "iss");   /* 5 */
    lua_getfield(L, 2, "aud");   /* 6 */
    lua_getfield(L, 2, "leeway"); /* 7 */
    const char *alg_name = lua_tostring(L, 3);
    const jwt_alg *alg = alg_name == NULL ? NULL : alg_named(alg_name);
    if (alg == NULL)
        return luaL_error(L, "spoa.jwt.verify: opts.alg must be one of HS256, HS384, HS512, RS256, RS384, RS512, "
                             "ES256, ES384");
    if (lua_isnil(L, 4))
        return luaL_error(L, "spoa.jwt.verify: opts.key is required");
    luaL_argcheck(L, lua_isnil(L, 5) || lua_type(L, 5) == LUA_TSTRING, 2, "opts.iss must be a string");
    luaL_argcheck(L, lua_isnil(L, 6) || lua_type(L, 6) == LUA_TSTRING, 2, "opts.aud must be a string");
    double leeway = lua_isnil(L, 7) ? 0 : (double)luaL_checknumber(L, 7);

    const char *dot1 = len <= JWT_MAX_TOKEN ? memchr(token, '.', len) : NULL;
    const char *dot2 = dot1 == NULL ? NULL : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return refuse(L, "malformed");
    if (!push_json_part(L, token, (size_t)(dot1 - token))) /* 8: header */
        return refuse(L, "malformed");
    lua_getfield(L, 8, "alg");
    int same_alg = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), alg->name) == 0;
    lua_pop(L, 1);
    if (!same_alg)
        return refuse(L, "alg not allowed");
    /* RFC 7515 4.1.11: critical extensions we do not implement must be refused. */
    if (lua_getfield(L, 8, "crit") != LUA_TNIL)
        return refuse(L, "malformed");
    lua_pop(L, 1);
    if (!push_json_part(L, dot1 + 1, (size_t)(dot2 - dot1 - 1))) /* 9: claims */
        return refuse(L, "malformed");
    luaL_Buffer sigb; /* 10: signature */
    if (!luaspoa_base64url_decode(L, dot2 + 1, len - (size_t)(dot2 + 1 - token), &sigb))
        return refuse(L, "malformed");
    const unsigned char *sig = (const unsigned char *)luaL_buffaddr(&sigb);
    if (!signature_ok(L, alg, 4, token, (size_t)(dot2 - token), sig, luaL_bufflen(&sigb)))
        return refuse(L, "bad signature");

    double now = (double)luaspoa_clock_now_ms() / 1000.0;
    double exp, nbf;
    int has_exp = numeric_claim(L, 9, "exp", &exp), has_nbf = numeric_claim(L, 9, "nbf", &nbf);
    if (has_exp < 0 || has_nbf < 0)
        return refuse(L, "malformed");
    if (has_exp && now >= exp + leeway)
        return refuse(L, "expired");
    if (has_nbf && now + leeway < nbf)
        return refuse(L, "not yet valid");
    if (!lua_isnil(L, 5)) {
        lua_getfield(L, 9, "iss");
        int same = lua_rawequal(L, -1, 5);
        lua_pop(L, 1);
        if (!same)
            return refuse(L, "wrong issuer");
    }
    if (!lua_isnil(L, 6) && !audience_ok(L, 9, 6))
        return refuse(L, "wrong audience");
    lua_pushvalue(L, 9);
    lua_pushvalue(L, 8);
    return 2;
}

void luaspoa_open_jwt(lua_State *L) {
    static const luaL_Reg functions[] = {{"verify", l_verify}, {"key", l_key}, {NULL, NULL}};
    if (luaL_newmetatable(L, JWT_KEY_CLASS)) {
        lua_pushcfunction(L, key_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "jwt");
}
