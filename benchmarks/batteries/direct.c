/* The operations of benchmarks/batteries/run.sh called directly from C (the
 * libraries without the Lua binding), to show the binding's overhead. Reads
 * its inputs from the current directory (run.sh makes them). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <json-c/json.h>
#include <maxminddb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static char *readf(const char *p) { FILE *f = fopen(p, "rb"); static char b[8][8192]; static int i; char *s = b[i++]; size_t n = fread(s, 1, 8191, f); s[n] = 0; while (n && (s[n-1] == '\n')) s[--n] = 0; fclose(f); return s; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
/* base64url text -> bytes (EVP_DecodeBlock wants standard base64 with padding). */
static int b64url(const char *s, size_t n, unsigned char *out) {
    char b[4096]; size_t m = 0;
    for (size_t i = 0; i < n && m < sizeof b - 4; i++) b[m++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    int pad = 0; while (m % 4) { b[m++] = '='; pad++; }
    int r = EVP_DecodeBlock(out, (unsigned char *)b, (int)m);
    return r < 0 ? r : r - pad;
}
/* A JWT verified as a C program would with the same libraries: split the token,
 * base64url-decode its parts, parse header and claims with json-c (one tokener,
 * reset per text, as the binding keeps one per state), check the alg and exp,
 * then the signature (HMAC compared in constant time, or RSA). */
static int jwt_c(json_tokener *t, const char *tok, const char *alg, EVP_MAC *mac, const OSSL_PARAM *ps, EVP_PKEY *pk) {
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL) return 0;
    unsigned char hdr[1024], cl[2048], sig[600], mac_out[64];
    int hl = b64url(tok, d1 - tok, hdr), cll = b64url(d1 + 1, d2 - d1 - 1, cl), sl = b64url(d2 + 1, strlen(d2 + 1), sig);
    if (hl < 0 || cll < 0 || sl < 0) return 0;
    json_tokener_reset(t);
    json_object *h = json_tokener_parse_ex(t, (char *)hdr, hl), *a;
    int ok = h && json_object_object_get_ex(h, "alg", &a) && strcmp(json_object_get_string(a), alg) == 0;
    json_object_put(h);
    json_tokener_reset(t);
    json_object *c = json_tokener_parse_ex(t, (char *)cl, cll), *e;
    ok = ok && c && (!json_object_object_get_ex(c, "exp", &e) || json_object_get_int64(e) > time(NULL));
    json_object_put(c);
    size_t in = d2 - tok, ol;
    if (ok && mac) {
        EVP_MAC_CTX *x = EVP_MAC_CTX_new(mac); EVP_MAC_init(x, (unsigned char *)"secret", 6, ps);
        EVP_MAC_update(x, (unsigned char *)tok, in); EVP_MAC_final(x, mac_out, &ol, 64); EVP_MAC_CTX_free(x);
        ok = (size_t)sl == ol && CRYPTO_memcmp(mac_out, sig, ol) == 0;
    } else if (ok) {
        EVP_MD_CTX *x = EVP_MD_CTX_new(); EVP_DigestVerifyInit(x, NULL, EVP_sha256(), NULL, pk);
        ok = EVP_DigestVerify(x, sig, sl, (unsigned char *)tok, in) == 1; EVP_MD_CTX_free(x);
    }
    return ok;
}
/* direct [op iterations]: every op with its default count, or one op (re,
 * json, hs, rs, hsfull, rsfull, geo, georec) once more than n times, the first
 * as a warm-up (libraries' first-call set-up), as the Lua side runs each op
 * once before it is measured (callgrind: instructions(n) - instructions(0)). */
int main(int argc, char **argv) {
    const char *only = argc > 2 ? argv[1] : NULL;
    int count = argc > 2 ? atoi(argv[2]) : -1;
#define RUN(op, n) for (int N = (only == NULL ? (n) : strcmp(only, op) == 0 ? count + 1 : 0), once = 1; once; once = 0)
    char *pat = readf("pat.txt"), *ua = readf("ua.txt"), *obj = readf("obj.json");
    int err; PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), PCRE2_CASELESS, &err, &off, NULL);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    double t = now();
    RUN("re", 200000) {
    for (int i = 0; i < N; i++) { pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL); pcre2_match(re, (PCRE2_SPTR)ua, 200, 0, 0, md, mc); pcre2_match_data_free(md); }
    if (N) printf("re   %.0f ns\n", (now() - t) / N);
    }
    size_t len = strlen(obj);
    RUN("json", 20000) {
    t = now();
    /* One tokener, reset per text, as spoa.json.decode keeps one per state. */
    json_tokener *tok = json_tokener_new_ex(64); json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    for (int i = 0; i < N; i++) { json_tokener_reset(tok); json_object *o = json_tokener_parse_ex(tok, obj, (int)len); json_object_put(o); }
    json_tokener_free(tok);
    if (N) printf("json %.0f ns (parse only, no Lua tables)\n", (now() - t) / N);
    }
    /* HS256: HMAC over the signing input, as verify does. */
    char *hs = readf("hs.tok"); size_t in = strrchr(hs, '.') - hs;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL); unsigned char out[64]; size_t ol;
    OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
    RUN("hs", 20000) {
    t = now();
    for (int i = 0; i < N; i++) { EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac); EVP_MAC_init(c, (unsigned char *)"secret", 6, ps); EVP_MAC_update(c, (unsigned char *)hs, in); EVP_MAC_final(c, out, &ol, 64); EVP_MAC_CTX_free(c); }
    if (N) printf("hs256 %.0f ns (HMAC only)\n", (now() - t) / N);
    }
    char *rs = readf("rs.tok"); in = strrchr(rs, '.') - rs;
    FILE *f = fopen("rsa.pub", "r"); EVP_PKEY *pk = PEM_read_PUBKEY(f, NULL, NULL, NULL); fclose(f);
    /* The signature, base64url-decoded once (a 2048-bit key: 256 bytes). */
    unsigned char sig[300];
    char b[400];
    strcpy(b, rs + in + 1);
    for (char *p = b; *p; p++) *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    while (strlen(b) % 4) strcat(b, "=");
    EVP_DecodeBlock(sig, (unsigned char *)b, (int)strlen(b));
    size_t sl = 256;
    RUN("rs", 2000) {
    t = now(); int ok = 0;
    for (int i = 0; i < N; i++) { EVP_MD_CTX *c = EVP_MD_CTX_new(); EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pk); ok += EVP_DigestVerify(c, sig, sl, (unsigned char *)rs, in) == 1; EVP_MD_CTX_free(c); }
    if (N) printf("rs256 %.0f ns (verify only; ok %d/%d)\n", (now() - t) / N, ok, N);
    }
    json_tokener *jt = json_tokener_new_ex(64);
    json_tokener_set_flags(jt, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    RUN("hsfull", 20000) {
    t = now(); int ok = 0;
    for (int i = 0; i < N; i++) ok += jwt_c(jt, hs, "HS256", mac, ps, NULL);
    if (N) printf("hs256 %.0f ns (the whole verify from C; ok %d/%d)\n", (now() - t) / N, ok, N);
    }
    RUN("rsfull", 2000) {
    t = now(); int ok = 0;
    for (int i = 0; i < N; i++) ok += jwt_c(jt, rs, "RS256", NULL, NULL, pk);
    if (N) printf("rs256 %.0f ns (the whole verify from C; ok %d/%d)\n", (now() - t) / N, ok, N);
    }
    /* The same address and path as the Lua side (192.0.2.10, country/iso_code). */
    MMDB_s db;
    if (MMDB_open("test.mmdb", MMDB_MODE_MMAP, &db) != MMDB_SUCCESS) return 1;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.10", &sin.sin_addr);
    RUN("geo", 200000) {
    t = now(); int found = 0;
    for (int i = 0; i < N; i++) {
        int st; MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db, (struct sockaddr *)&sin, &st);
        MMDB_entry_data_s d;
        found += r.found_entry && MMDB_get_value(&r.entry, &d, "country", "iso_code", NULL) == MMDB_SUCCESS && d.has_data;
    }
    if (N) printf("geo  %.0f ns (lookup and path; found %d/%d)\n", (now() - t) / N, found, N);
    }
    /* The whole record: its data list, every key and value read once (a string's
     * bytes, a number's value), the least a C caller does to use them; it
     * builds no structure of its own, where the binding builds Lua tables. */
    RUN("georec", 100000) {
    t = now(); int found = 0; unsigned long sum = 0;
    for (int i = 0; i < N; i++) {
        int st; MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db, (struct sockaddr *)&sin, &st);
        MMDB_entry_data_list_s *l = NULL;
        found += r.found_entry && MMDB_get_entry_data_list(&r.entry, &l) == MMDB_SUCCESS;
        for (MMDB_entry_data_list_s *e = l; e != NULL; e = e->next) {
            const MMDB_entry_data_s *d = &e->entry_data;
            switch (d->type) {
            case MMDB_DATA_TYPE_UTF8_STRING: for (uint32_t k = 0; k < d->data_size; k++) sum += (unsigned char)d->utf8_string[k]; break;
            case MMDB_DATA_TYPE_DOUBLE: sum += (unsigned long)d->double_value; break;
            case MMDB_DATA_TYPE_UINT16: sum += d->uint16; break;
            case MMDB_DATA_TYPE_UINT32: sum += d->uint32; break;
            case MMDB_DATA_TYPE_UINT64: sum += d->uint64; break;
            case MMDB_DATA_TYPE_BOOLEAN: sum += d->boolean; break;
            default: sum += d->data_size; break; /* a map's or array's size */
            }
        }
        MMDB_free_entry_data_list(l);
    }
    if (N) printf("georec %.0f ns (lookup, the record's data list, each key and value read; found %d/%d, sum %lu)\n", (now() - t) / N, found, N, sum);
    }
    return 0;
}
