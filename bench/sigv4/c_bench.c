/* SigV4 at C level vs the bare OpenSSL floor, for bench/sigv4_bench.lua.
 *
 *   c_bench BODY_FILE SECONDS ROUNDS
 *
 * Prints "c <ns per signature>", "floor <ns per op>" and "floor_keyed", each
 * the best of ROUNDS rounds of about SECONDS of CPU time in all (CPU time, so
 * other processes on the machine disturb the figures less; the three
 * alternate in small batches within a round),
 * then the sizes and the signature (so the caller can check it signed the
 * same request). With "c" or "floor" as 4th argument only that one runs.
 *
 * c:     ef_sigv4_sign of an emr-containers StartJobRun request (POST, JSON
 *        body, Content-Type + User-Agent headers, session token), the body
 *        hashed every time, signing key cached (as in steady state).
 * floor: what any SigV4 signer must at least do with OpenSSL for the same
 *        request: SHA-256 of the body, SHA-256 of a buffer the size of the
 *        canonical request, one HMAC-SHA256 of a string to sign with an
 *        already derived key; with pre-fetched algorithms and reused
 *        contexts, so the floor is as cheap as OpenSSL gets.
 * floor_keyed: the same with the HMAC context keyed once and re-initialised
 *        per signature (EVP_MAC_init with a NULL key), as the signer does for
 *        a cached signing key: the strictest comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ef_sigv4.h"

static double s_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *s_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *n = len;
    return buf;
}

static const struct ef_sigv4_header s_headers[] = {
    { "Content-Type", 12, "application/json", 16 },
    { "User-Agent", 10, "emrflow/0.1 lua/5.4", 19 },
};

#define URL "https://emr-containers.us-east-1.amazonaws.com/virtualclusters/abc123/jobruns"
#define TOKEN "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLESESSIONTOKEN+/="
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static struct ef_sigv4_request s_request(const char *body, size_t body_len)
{
    struct ef_sigv4_request r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.method_len = 4;
    r.url = URL;
    r.url_len = strlen(URL);
    r.headers = s_headers;
    r.n_headers = 2;
    r.body = body;
    r.body_len = body_len;
    r.region = "us-east-1";
    r.region_len = 9;
    r.service = "emr-containers";
    r.service_len = 14;
    r.access_key_id = "AKIDEXAMPLE";
    r.access_key_id_len = 11;
    r.secret_access_key = SECRET;
    r.secret_access_key_len = strlen(SECRET);
    r.session_token = TOKEN;
    r.session_token_len = strlen(TOKEN);
    r.time_s = 1440938160;
    return r;
}

static volatile unsigned char s_sink;

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: c_bench BODY_FILE SECONDS ROUNDS [c|floor]\n");
        return 2;
    }
    size_t body_len;
    char *body = s_read_file(argv[1], &body_len);
    double seconds = atof(argv[2]);
    int rounds = atoi(argv[3]);
    if (!body || seconds <= 0 || rounds <= 0) {
        fprintf(stderr, "c_bench: bad arguments\n");
        free(body);
        return 2;
    }

    struct ef_sigv4_signer *s = ef_sigv4_signer_new();
    struct ef_sigv4_request r = s_request(body, body_len);
    struct ef_sigv4_result res;
    struct ef_sigv4_err err;
    if (!s || ef_sigv4_sign(s, &r, &res, &err) != EF_SIGV4_OK) {
        fprintf(stderr, "c_bench: signing failed\n");
        return 1;
    }
    size_t creq_len = res.canonical_request_len, sts_len = res.string_to_sign_len;
    char signature[65];
    memcpy(signature, res.signature, sizeof signature);

    /* floor set-up */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *mdctx = EVP_MD_CTX_new();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *macctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!md || !mdctx || !macctx || EVP_MAC_CTX_set_params(macctx, params) != 1) {
        fprintf(stderr, "c_bench: OpenSSL set-up failed\n");
        return 1;
    }
    unsigned char key[32] = { 1, 2, 3 };
    EVP_MAC_CTX *keyed = EVP_MAC_CTX_dup(macctx);
    if (!keyed || EVP_MAC_init(keyed, key, sizeof key, NULL) != 1) {
        fprintf(stderr, "c_bench: OpenSSL set-up failed\n");
        return 1;
    }
    unsigned char *creq = malloc(creq_len), *sts = malloc(sts_len);
    if (!creq || !sts) {
        free(creq);
        free(sts);
        return 1;
    }
    memcpy(creq, res.canonical_request, creq_len);
    memcpy(sts, res.string_to_sign, sts_len);


    const char *only = argc == 5 ? argv[4] : "";
    /* Each round interleaves batches of BATCH operations of the three kinds,
     * so all three see the same machine conditions; per round the time of
     * each kind is summed, and the best round of each is reported. */
    enum { BATCH = 200 };
    int run_c = strcmp(only, "floor") != 0, run_floor = strcmp(only, "c") != 0;
    double best_c = 1e30, best_floor = 1e30, best_floor_keyed = 1e30;
    for (int round = 0; round < rounds; round++) {
        double tc = 0, tf = 0, tk = 0, t0;
        long n = 0;
        do {
            if (run_c) {
                t0 = s_cpu_now();
                for (int i = 0; i < BATCH; i++) {
                    ef_sigv4_sign(s, &r, &res, &err); /* signed once above: cannot fail */
                    s_sink ^= (unsigned char)res.signature[0];
                }
                tc += s_cpu_now() - t0;
            }
            if (run_floor) {
                t0 = s_cpu_now();
                for (int i = 0; i < BATCH; i++) {
                    unsigned char d1[32], d2[32], d3[32];
                    unsigned int l1, l2;
                    size_t l3;
                    EVP_DigestInit_ex2(mdctx, md, NULL);
                    EVP_DigestUpdate(mdctx, body, body_len);
                    EVP_DigestFinal_ex(mdctx, d1, &l1);
                    EVP_DigestInit_ex2(mdctx, md, NULL);
                    EVP_DigestUpdate(mdctx, creq, creq_len);
                    EVP_DigestFinal_ex(mdctx, d2, &l2);
                    EVP_MAC_init(macctx, key, sizeof key, NULL);
                    EVP_MAC_update(macctx, sts, sts_len);
                    EVP_MAC_final(macctx, d3, &l3, sizeof d3);
                    s_sink ^= (unsigned char)(d1[0] ^ d2[0] ^ d3[0]);
                }
                tf += s_cpu_now() - t0;
                /* the floor with the HMAC context keyed once and
                 * re-initialised, as the signer does for a cached key */
                t0 = s_cpu_now();
                for (int i = 0; i < BATCH; i++) {
                    unsigned char d1[32], d2[32], d3[32];
                    unsigned int l1, l2;
                    size_t l3;
                    EVP_DigestInit_ex2(mdctx, md, NULL);
                    EVP_DigestUpdate(mdctx, body, body_len);
                    EVP_DigestFinal_ex(mdctx, d1, &l1);
                    EVP_DigestInit_ex2(mdctx, md, NULL);
                    EVP_DigestUpdate(mdctx, creq, creq_len);
                    EVP_DigestFinal_ex(mdctx, d2, &l2);
                    EVP_MAC_init(keyed, NULL, 0, NULL);
                    EVP_MAC_update(keyed, sts, sts_len);
                    EVP_MAC_final(keyed, d3, &l3, sizeof d3);
                    s_sink ^= (unsigned char)(d1[0] ^ d2[0] ^ d3[0]);
                }
                tk += s_cpu_now() - t0;
            }
            n += BATCH;
        } while (tc + tf + tk < seconds);
        if (run_c && tc / (double)n < best_c)
            best_c = tc / (double)n;
        if (run_floor && tf / (double)n < best_floor)
            best_floor = tf / (double)n;
        if (run_floor && tk / (double)n < best_floor_keyed)
            best_floor_keyed = tk / (double)n;
    }
    printf("c %.1f\nfloor %.1f\nfloor_keyed %.1f\ncreq_bytes %zu\nbody_bytes %zu\nsignature %s\n",
           best_c * 1e9, best_floor * 1e9, best_floor_keyed * 1e9, creq_len, body_len, signature);

    free(creq);
    free(sts);
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_CTX_free(macctx);
    EVP_MAC_free(mac);
    EVP_MD_CTX_free(mdctx);
    EVP_MD_free(md);
    ef_sigv4_signer_free(s);
    free(body);
    return 0;
}
