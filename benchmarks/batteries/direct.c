/* The operations of benchmarks/batteries/run.sh called directly from C (the
 * libraries without the Lua binding), to show the binding's overhead. Reads
 * its inputs from the current directory (run.sh makes them). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static char *readf(const char *p) { FILE *f = fopen(p, "rb"); static char b[8][8192]; static int i; char *s = b[i++]; size_t n = fread(s, 1, 8191, f); s[n] = 0; while (n && (s[n-1] == '\n')) s[--n] = 0; fclose(f); return s; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
/* direct [op iterations]: all four with their default counts, or one op
 * (re, json, hs, rs) n times (callgrind: instructions(n) - instructions(0)). */
int main(int argc, char **argv) {
    const char *only = argc > 2 ? argv[1] : NULL;
    int count = argc > 2 ? atoi(argv[2]) : -1;
#define RUN(op, n) for (int N = (only == NULL ? (n) : strcmp(only, op) == 0 ? count : 0), once = 1; once; once = 0)
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
    for (int i = 0; i < N; i++) { json_tokener *tok = json_tokener_new_ex(64); json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8); json_object *o = json_tokener_parse_ex(tok, obj, (int)len); json_object_put(o); json_tokener_free(tok); }
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
    return 0;
}
