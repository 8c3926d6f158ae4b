/* AWS Signature Version 4 signer; see ef_sigv4.h.
 *
 * The canonical request is built in named steps (method, path, query,
 * headers, signed headers, payload hash) into buffers the signer owns, so a
 * signature costs no allocation once the buffers have grown. */
#include "ef_sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define S_ALGORITHM "AWS4-HMAC-SHA256"
#define S_CACHE_SLOTS 4
#define S_CACHE_SECRET_MAX 128
#define S_CACHE_NAME_MAX 64
#define S_MAX_TIME 253402300799LL /* 9999-12-31T23:59:59Z */

struct s_key_entry {
    int used;
    unsigned char key[32];
    char date[8];
    size_t secret_len, region_len, service_len;
    unsigned char secret[S_CACHE_SECRET_MAX];
    char region[S_CACHE_NAME_MAX];
    char service[S_CACHE_NAME_MAX];
};

/* One header of the canonical set: offsets into s->hs until sorting. */
struct s_hent {
    size_t name_off, name_len, value_off, value_len, index;
    const char *name, *value;
};

struct s_qent {
    size_t key_off, key_len, value_off, value_len;
    const char *key, *value;
};

struct ef_sigv4_signer {
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    EVP_MAC *hmac;
    EVP_MAC_CTX *mac;    /* key derivation */
    EVP_MAC_CTX *sigmac; /* the final HMAC, keyed for cache slot sigmac_slot */
    int sigmac_slot;     /* -1: keyed for nothing reusable */
    struct ef_buf creq;  /* canonical request (holds the session token) */
    struct ef_buf sts;   /* string to sign */
    struct ef_buf auth;  /* Authorization value */
    struct ef_buf sh;    /* signed headers */
    struct ef_buf scope; /* credential scope */
    struct ef_buf hs;    /* header names and canonical values */
    struct ef_buf qs;    /* encoded query keys and values */
    struct ef_buf np;    /* normalised path */
    struct s_hent *hent;
    size_t hent_cap;
    struct s_qent *qent;
    size_t qent_cap;
    struct ef_sigv4_header *in;
    size_t in_cap;
    int64_t date_time; /* the last time formatted (-1: none) */
    char date_text[17];
    struct s_key_entry cache[S_CACHE_SLOTS];
    unsigned next_slot;
    struct ef_sigv4_stats stats;
};

static const char s_HEX[] = "0123456789ABCDEF";

/* ---------------------------------------------------------------- errors */

static int s_fail(struct ef_sigv4_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int s_nomem(struct ef_sigv4_err *err)
{
    return s_fail(err, EF_SIGV4_ENOMEM, "out of memory");
}

/* --------------------------------------------------------- character sets */

/* Byte classes, one table lookup each (generated from the definitions). */
enum {
    S_UNRES = 1,   /* RFC 3986 unreserved: A-Z a-z 0-9 - _ . ~ */
    S_TCHAR = 2,   /* RFC 9110 token (header names) */
    S_SPACE = 4,   /* SP HT CR LF VT FF: folded in header values */
    S_HDRCTL = 8,  /* control characters but HT (CR, LF allowed only as obs-fold) */
    S_URLCTL = 16, /* control characters */
    S_HEX = 32,
    S_AUTH = 64,     /* '/', '?', '#', '@': end of the authority, or userinfo */
    S_PATHEND = 128, /* '?', '#' */
};

static const unsigned char s_cls[256] = {
     24,  24,  24,  24,  24,  24,  24,  24,  24,  20,  28,  28,  28,  28,  24,  24,
     24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,  24,
      4,   2,   0, 194,   2,   2,   2,   2,   0,   0,   2,   2,   0,   3,   3,  64,
     35,  35,  35,  35,  35,  35,  35,  35,  35,  35,   0,   0,   0,   0,   0, 192,
     64,  35,  35,  35,  35,  35,  35,   3,   3,   3,   3,   3,   3,   3,   3,   3,
      3,   3,   3,   3,   3,   3,   3,   3,   3,   3,   3,   0,   0,   0,   2,   3,
      2,  35,  35,  35,  35,  35,  35,   3,   3,   3,   3,   3,   3,   3,   3,   3,
      3,   3,   3,   3,   3,   3,   3,   3,   3,   3,   3,   0,   2,   0,   3,  24,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
};

#define S_IS(c, k) (s_cls[(unsigned char)(c)] & (k))

static int s_is_unreserved(unsigned char c)
{
    return S_IS(c, S_UNRES);
}

static int s_hexval(unsigned char c)
{
    if (c <= '9')
        return c >= '0' ? c - '0' : -1;
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static unsigned char s_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int s_ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (s_lower((unsigned char)a[i]) != (unsigned char)b[i])
            return 0;
    return 1;
}

struct s_name {
    const char *s;
    size_t n;
};
#define S_NAME(lit) { lit, sizeof(lit) - 1 }

static const struct s_name s_owned_headers[] = {
    S_NAME("x-amz-date"), S_NAME("authorization"), S_NAME("x-amz-security-token"),
    S_NAME("x-amz-content-sha256"), { NULL, 0 },
};

/* Never signed: aws-c-auth's s_skipped_headers, botocore's
 * SIGNED_HEADERS_BLACKLIST, and hop-by-hop headers a proxy may rewrite. */
static const struct s_name s_unsigned_headers[] = {
    S_NAME("user-agent"), S_NAME("x-amzn-trace-id"), S_NAME("expect"),
    S_NAME("connection"), S_NAME("keep-alive"), S_NAME("proxy-connection"),
    S_NAME("transfer-encoding"), S_NAME("upgrade"), S_NAME("sec-websocket-key"),
    S_NAME("sec-websocket-protocol"), S_NAME("sec-websocket-version"), { NULL, 0 },
};

/* name is lower-case */
static int s_lc_in(const char *name, size_t n, const struct s_name *list)
{
    for (size_t i = 0; list[i].s; i++)
        if (list[i].n == n && memcmp(list[i].s, name, n) == 0)
            return 1;
    return 0;
}

static int s_any_case_in(const char *name, size_t n, const struct s_name *list)
{
    char lc[32];
    if (n > sizeof lc)
        return 0; /* longer than any listed name */
    for (size_t i = 0; i < n; i++)
        lc[i] = (char)s_lower((unsigned char)name[i]);
    return s_lc_in(lc, n, list);
}

int ef_sigv4_header_is_owned(const char *name, size_t n)
{
    return s_any_case_in(name, n, s_owned_headers);
}

int ef_sigv4_header_is_unsigned(const char *name, size_t n)
{
    return s_any_case_in(name, n, s_unsigned_headers);
}

/* Appends inline (the hot path has many small pieces). */
static inline int s_app(struct ef_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len <= n && ef_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static inline int s_app1(struct ef_buf *b, char ch)
{
    if (b->cap - b->len <= 1 && ef_buf_reserve(b, 1) != 0)
        return -1;
    b->p[b->len++] = ch;
    b->p[b->len] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ time */

int ef_sigv4_amz_date(int64_t t, char out[17])
{
    if (t < 0 || t > S_MAX_TIME)
        return -1;
    int64_t days = t / 86400, sec = t % 86400;
    /* civil-from-days (proleptic Gregorian), epoch shifted to 0000-03-01 */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400 + (m <= 2));
    int hh = (int)(sec / 3600), mm = (int)(sec / 60 % 60), ss = (int)(sec % 60);
    int f[6] = { y, m, d, hh, mm, ss };
    char *w = out;
    for (int i = 0; i < 6; i++) {
        if (i == 0) {
            *w++ = (char)('0' + f[0] / 1000);
            *w++ = (char)('0' + f[0] / 100 % 10);
        }
        if (i == 3)
            *w++ = 'T';
        *w++ = (char)('0' + f[i] / 10 % 10);
        *w++ = (char)('0' + f[i] % 10);
    }
    *w++ = 'Z';
    *w = '\0';
    return 0;
}

/* ---------------------------------------------------------------- crypto */

static const char s_hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void s_hexify(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, s_hex_pairs + 2 * in[i], 2);
    out[2 * n] = '\0';
}

static int s_sha256(struct ef_sigv4_signer *s, const void *data, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(s->md, s->sha256, NULL) != 1 ||
        EVP_DigestUpdate(s->md, data, n) != 1 || EVP_DigestFinal_ex(s->md, out, &len) != 1 ||
        len != 32)
        return -1;
    return 0;
}

int ef_sigv4_sha256_hex(struct ef_sigv4_signer *s, const void *data, size_t n, char out[65])
{
    unsigned char d[32];
    if (s_sha256(s, data, n, d) != 0)
        return EF_SIGV4_ECRYPTO;
    s_hexify(d, 32, out);
    return EF_SIGV4_OK;
}

static int s_hmac(struct ef_sigv4_signer *s, const void *key, size_t key_len, const void *data,
                  size_t n, unsigned char out[32])
{
    size_t len = 0;
    if (EVP_MAC_init(s->mac, key, key_len, NULL) != 1 || EVP_MAC_update(s->mac, data, n) != 1 ||
        EVP_MAC_final(s->mac, out, &len, 32) != 1 || len != 32)
        return -1;
    return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"), from the cache when possible. */
static int s_signing_key(struct ef_sigv4_signer *s, const struct ef_sigv4_request *r,
                         const char date[8], unsigned char key[32], int *slot)
{
    *slot = -1;
    int cacheable = r->secret_access_key_len <= S_CACHE_SECRET_MAX &&
                    r->region_len <= S_CACHE_NAME_MAX && r->service_len <= S_CACHE_NAME_MAX;
    if (cacheable) {
        for (int i = 0; i < S_CACHE_SLOTS; i++) {
            struct s_key_entry *e = &s->cache[i];
            if (e->used && memcmp(e->date, date, 8) == 0 && e->region_len == r->region_len &&
                e->service_len == r->service_len &&
                e->secret_len == r->secret_access_key_len &&
                memcmp(e->region, r->region, r->region_len) == 0 &&
                memcmp(e->service, r->service, r->service_len) == 0 &&
                CRYPTO_memcmp(e->secret, r->secret_access_key, e->secret_len) == 0) {
                memcpy(key, e->key, 32);
                s->stats.key_hits++;
                *slot = i;
                return 0;
            }
        }
    }
    s->stats.key_misses++;
    /* "AWS4" + secret, in a wiped buffer */
    unsigned char k[32];
    int rc = -1;
    size_t klen = 4 + r->secret_access_key_len;
    unsigned char *kbuf = malloc(klen);
    if (!kbuf)
        return -2;
    memcpy(kbuf, "AWS4", 4);
    memcpy(kbuf + 4, r->secret_access_key, r->secret_access_key_len);
    if (s_hmac(s, kbuf, klen, date, 8, k) == 0 &&
        s_hmac(s, k, 32, r->region, r->region_len, k) == 0 &&
        s_hmac(s, k, 32, r->service, r->service_len, k) == 0 &&
        s_hmac(s, k, 32, "aws4_request", 12, k) == 0)
        rc = 0;
    OPENSSL_cleanse(kbuf, klen);
    free(kbuf);
    if (rc != 0) {
        OPENSSL_cleanse(k, sizeof k);
        return -1;
    }
    memcpy(key, k, 32);
    if (cacheable) {
        *slot = (int)s->next_slot;
        struct s_key_entry *e = &s->cache[s->next_slot];
        s->next_slot = (s->next_slot + 1) % S_CACHE_SLOTS;
        if (s->sigmac_slot == *slot)
            s->sigmac_slot = -1; /* keyed for the entry being replaced */
        OPENSSL_cleanse(e, sizeof *e);
        e->used = 1;
        memcpy(e->key, k, 32);
        memcpy(e->date, date, 8);
        e->secret_len = r->secret_access_key_len;
        memcpy(e->secret, r->secret_access_key, e->secret_len);
        e->region_len = r->region_len;
        memcpy(e->region, r->region, r->region_len);
        e->service_len = r->service_len;
        memcpy(e->service, r->service, r->service_len);
    }
    OPENSSL_cleanse(k, sizeof k);
    return 0;
}

/* ---------------------------------------------------------------- signer */

/* An HMAC-SHA256 context, or NULL. */
static EVP_MAC_CTX *s_new_mac(EVP_MAC *hmac)
{
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx && EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

struct ef_sigv4_signer *ef_sigv4_signer_new(void)
{
    struct ef_sigv4_signer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    ef_buf_init_secret(&s->creq);
    ef_buf_init(&s->sts);
    ef_buf_init_secret(&s->auth);
    ef_buf_init(&s->sh);
    ef_buf_init(&s->scope);
    ef_buf_init_secret(&s->hs);
    ef_buf_init(&s->qs);
    ef_buf_init(&s->np);
    s->sigmac_slot = -1;
    s->date_time = -1;
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->md = EVP_MD_CTX_new();
    s->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    s->mac = s_new_mac(s->hmac);
    s->sigmac = s_new_mac(s->hmac);
    if (!s->sha256 || !s->md || !s->mac || !s->sigmac) {
        ef_sigv4_signer_free(s);
        return NULL;
    }
    return s;
}

/* Wipes the cache, and replaces the HMAC contexts, which hold keyed state
 * (freeing them cleanses it). */
void ef_sigv4_signer_clear_cache(struct ef_sigv4_signer *s)
{
    OPENSSL_cleanse(s->cache, sizeof s->cache);
    s->next_slot = 0;
    s->sigmac_slot = -1;
    EVP_MAC_CTX_free(s->mac);
    EVP_MAC_CTX_free(s->sigmac);
    s->mac = s_new_mac(s->hmac);
    s->sigmac = s_new_mac(s->hmac);
}

void ef_sigv4_signer_free(struct ef_sigv4_signer *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->cache, sizeof s->cache);
    EVP_MAC_CTX_free(s->sigmac);
    EVP_MAC_CTX_free(s->mac);
    EVP_MAC_free(s->hmac);
    EVP_MD_CTX_free(s->md);
    EVP_MD_free(s->sha256);
    ef_buf_clean_up(&s->creq);
    ef_buf_clean_up(&s->sts);
    ef_buf_clean_up(&s->auth);
    ef_buf_clean_up(&s->sh);
    ef_buf_clean_up(&s->scope);
    ef_buf_clean_up(&s->hs);
    ef_buf_clean_up(&s->qs);
    ef_buf_clean_up(&s->np);
    free(s->hent);
    free(s->qent);
    free(s->in);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

void ef_sigv4_signer_stats(const struct ef_sigv4_signer *s, struct ef_sigv4_stats *out)
{
    *out = s->stats;
}

static int s_grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    if (c > SIZE_MAX / size)
        return -1;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

struct ef_sigv4_header *ef_sigv4_signer_headers(struct ef_sigv4_signer *s, size_t n)
{
    if (s_grow((void **)&s->in, &s->in_cap, n ? n : 1, sizeof *s->in) != 0)
        return NULL;
    return s->in;
}

/* ------------------------------------------------------------------- URL */

struct s_url {
    const char *host; /* canonical Host value: host[:port], default port dropped */
    size_t host_len;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
};

static int s_url_ctl(struct ef_sigv4_err *err, size_t i)
{
    return s_fail(err, EF_SIGV4_EINVAL, "url: control character at byte %zu", i + 1);
}

/* One pass: scheme, authority, path, query; control characters rejected. */
static int s_parse_url(const char *u, size_t n, struct s_url *out, struct ef_sigv4_err *err)
{
    size_t i = 0;
    while (i < n && i < 6 && u[i] != ':')
        i++;
    int https;
    if (i < n && u[i] == ':' && s_ieq(u, i, "https"))
        https = 1;
    else if (i < n && u[i] == ':' && s_ieq(u, i, "http"))
        https = 0;
    else
        return s_fail(err, EF_SIGV4_EINVAL,
                      "url: not an absolute http:// or https:// URL");
    if (n - i < 3 || u[i + 1] != '/' || u[i + 2] != '/')
        return s_fail(err, EF_SIGV4_EINVAL, "url: expected '//' after the scheme");
    size_t a = i + 3, ae = a;
    for (; ae < n; ae++) {
        unsigned k = s_cls[(unsigned char)u[ae]];
        if (k & (S_URLCTL | S_AUTH)) {
            if (k & S_URLCTL)
                return s_url_ctl(err, ae);
            if (u[ae] != '@')
                break;
            a = ae + 1; /* userinfo is not part of Host */
        }
    }
    if (a == ae)
        return s_fail(err, EF_SIGV4_EINVAL, "url: no host");
    size_t he; /* end of the host name */
    if (u[a] == '[') {
        he = a + 1;
        while (he < ae && u[he] != ']') {
            unsigned char c = (unsigned char)u[he];
            if (!(s_hexval(c) >= 0 || c == ':' || c == '.'))
                return s_fail(err, EF_SIGV4_EINVAL,
                              "url: invalid character in IPv6 host at byte %zu", he + 1);
            he++;
        }
        if (he == ae)
            return s_fail(err, EF_SIGV4_EINVAL, "url: unterminated '[' in host");
        he++;
        if (he < ae && u[he] != ':')
            return s_fail(err, EF_SIGV4_EINVAL, "url: unexpected character after ']'");
    } else {
        he = a;
        while (he < ae && u[he] != ':') {
            unsigned char c = (unsigned char)u[he];
            if (!(s_is_unreserved(c) || c >= 0x80))
                return s_fail(err, EF_SIGV4_EINVAL,
                              "url: invalid character in host at byte %zu", he + 1);
            he++;
        }
        if (he == a)
            return s_fail(err, EF_SIGV4_EINVAL, "url: no host");
    }
    out->host = u + a;
    out->host_len = ae - a;
    if (he < ae) { /* ':' port */
        size_t p = he + 1;
        if (p == ae)
            return s_fail(err, EF_SIGV4_EINVAL, "url: empty port");
        long port = 0;
        for (size_t k = p; k < ae; k++) {
            if (u[k] < '0' || u[k] > '9')
                return s_fail(err, EF_SIGV4_EINVAL, "url: port is not a number");
            port = port * 10 + (u[k] - '0');
            if (port > 65535)
                return s_fail(err, EF_SIGV4_EINVAL, "url: port out of range");
        }
        if (port == 0)
            return s_fail(err, EF_SIGV4_EINVAL, "url: port out of range");
        if ((https && port == 443) || (!https && port == 80))
            out->host_len = he - a;
    }
    size_t pe = ae;
    for (; pe < n; pe++) {
        unsigned k = s_cls[(unsigned char)u[pe]];
        if (k & (S_URLCTL | S_PATHEND)) {
            if (k & S_URLCTL)
                return s_url_ctl(err, pe);
            break;
        }
    }
    out->path = u + ae;
    out->path_len = pe - ae;
    out->query = u + pe;
    out->query_len = 0;
    size_t qe = pe;
    if (pe < n && u[pe] == '?') {
        for (qe = pe + 1; qe < n && u[qe] != '#'; qe++)
            if (S_IS(u[qe], S_URLCTL))
                return s_url_ctl(err, qe);
        out->query = u + pe + 1;
        out->query_len = qe - pe - 1;
    }
    for (; qe < n; qe++) /* the fragment */
        if (S_IS(u[qe], S_URLCTL))
            return s_url_ctl(err, qe);
    return EF_SIGV4_OK;
}

/* ------------------------------------------------------------------ path */

/* botocore's remove_dot_segments: drop empty and '.' segments, '..' pops,
 * keep the leading '/' and (if anything is left) the trailing '/'. */
static int s_normalize_path(const char *p, size_t n, struct ef_buf *out)
{
    size_t base = out->len;
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && p[i] == '.')) {
            /* skip */
        } else if (len == 2 && p[i] == '.' && p[i + 1] == '.') {
            size_t k = out->len;
            while (k > base && out->p[k - 1] != '/')
                k--;
            out->len = k > base ? k - 1 : base;
            if (out->p)
                out->p[out->len] = '\0';
        } else if (ef_buf_putc(out, '/') != 0 || ef_buf_append(out, p + i, len) != 0) {
            return -1;
        }
        i = j;
    }
    if (out->len == base)
        return ef_buf_putc(out, '/');
    if (n > 0 && p[n - 1] == '/')
        return ef_buf_putc(out, '/');
    return 0;
}

/* Encodes p into out: unreserved and '/' kept, all else %XX; with decode,
 * valid %XX escapes are decoded first (a decoded '/' is encoded). */
static int s_encode_path(const char *p, size_t n, int decode, struct ef_buf *out)
{
    if (ef_buf_reserve(out, n * 3) != 0)
        return -1;
    char *w = out->p + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int decoded = 0;
        if (decode && c == '%' && i + 2 < n && s_hexval((unsigned char)p[i + 1]) >= 0 &&
            s_hexval((unsigned char)p[i + 2]) >= 0) {
            c = (unsigned char)(s_hexval((unsigned char)p[i + 1]) * 16 +
                                s_hexval((unsigned char)p[i + 2]));
            i += 2;
            decoded = 1;
        }
        if (s_is_unreserved(c) || (c == '/' && !decoded)) {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = s_HEX[c >> 4];
            *w++ = s_HEX[c & 15];
        }
    }
    out->len = (size_t)(w - out->p);
    out->p[out->len] = '\0';
    return 0;
}

/* 1 when normalising would not change p: it starts with '/', and has no
 * empty, '.' or '..' segment (a trailing '/' is kept anyway). */
static int s_is_normal_path(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '/')
            continue;
        if (p[i + 1] == '/')
            return 0;
        if (p[i + 1] == '.') {
            /* "/." or "/.." followed by '/' or the end */
            size_t j = i + 2;
            if (j < n && p[j] == '.')
                j++;
            if (j == n || p[j] == '/')
                return 0;
        }
    }
    return 1;
}

static int s_canonical_path(const char *p, size_t n, unsigned flags, struct ef_buf *np,
                            struct ef_buf *out)
{
    if (n == 0) {
        p = "/";
        n = 1;
    }
    if (!(flags & EF_SIGV4_NO_NORMALIZE_PATH) && !s_is_normal_path(p, n)) {
        ef_buf_reset(np);
        if (s_normalize_path(p, n, np) != 0)
            return -1;
        p = np->p;
        n = np->len;
    }
    return s_encode_path(p, n, (flags & EF_SIGV4_NO_DOUBLE_ENCODE) != 0, out);
}

int ef_sigv4_canonical_path(const char *path, size_t n, unsigned flags, struct ef_buf *out)
{
    struct ef_buf np;
    ef_buf_init(&np);
    int rc = s_canonical_path(path, n, flags, &np, out);
    ef_buf_clean_up(&np);
    return rc == 0 ? EF_SIGV4_OK : EF_SIGV4_ENOMEM;
}

/* ----------------------------------------------------------------- query */

/* %-decodes then encodes (unreserved kept, everything else %XX). */
static int s_encode_query_part(const char *p, size_t n, struct ef_buf *out)
{
    if (ef_buf_reserve(out, n * 3) != 0)
        return -1;
    char *w = out->p + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%' && i + 2 < n && s_hexval((unsigned char)p[i + 1]) >= 0 &&
            s_hexval((unsigned char)p[i + 2]) >= 0) {
            c = (unsigned char)(s_hexval((unsigned char)p[i + 1]) * 16 +
                                s_hexval((unsigned char)p[i + 2]));
            i += 2;
        }
        if (s_is_unreserved(c)) {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = s_HEX[c >> 4];
            *w++ = s_HEX[c & 15];
        }
    }
    out->len = (size_t)(w - out->p);
    out->p[out->len] = '\0';
    return 0;
}

static int s_bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int s_qent_cmp(const void *pa, const void *pb)
{
    const struct s_qent *a = pa, *b = pb;
    int c = s_bytes_cmp(a->key, a->key_len, b->key, b->key_len);
    return c ? c : s_bytes_cmp(a->value, a->value_len, b->value, b->value_len);
}

static int s_canonical_query(const char *q, size_t n, struct ef_buf *qs, struct s_qent **qent,
                             size_t *qcap, struct ef_buf *out)
{
    size_t count = 0;
    ef_buf_reset(qs);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && q[eq] != '=')
                eq++;
            if (s_grow((void **)qent, qcap, count + 1, sizeof **qent) != 0)
                return -1;
            struct s_qent *e = &(*qent)[count++];
            e->key_off = qs->len;
            if (s_encode_query_part(q + i, eq - i, qs) != 0)
                return -1;
            e->key_len = qs->len - e->key_off;
            e->value_off = qs->len;
            if (eq < j && s_encode_query_part(q + eq + 1, j - eq - 1, qs) != 0)
                return -1;
            e->value_len = qs->len - e->value_off;
        }
        i = j + 1;
    }
    if (count == 0)
        return 0;
    for (size_t k = 0; k < count; k++) {
        (*qent)[k].key = qs->p + (*qent)[k].key_off;
        (*qent)[k].value = qs->p + (*qent)[k].value_off;
    }
    if (count > 1)
        qsort(*qent, count, sizeof **qent, s_qent_cmp);
    for (size_t k = 0; k < count; k++) {
        const struct s_qent *e = &(*qent)[k];
        if ((k && ef_buf_putc(out, '&') != 0) || ef_buf_append(out, e->key, e->key_len) != 0 ||
            ef_buf_putc(out, '=') != 0 || ef_buf_append(out, e->value, e->value_len) != 0)
            return -1;
    }
    return 0;
}

int ef_sigv4_canonical_query(const char *query, size_t n, struct ef_buf *out)
{
    struct ef_buf qs;
    struct s_qent *qent = NULL;
    size_t cap = 0;
    ef_buf_init(&qs);
    int rc = s_canonical_query(query, n, &qs, &qent, &cap, out);
    ef_buf_clean_up(&qs);
    free(qent);
    return rc == 0 ? EF_SIGV4_OK : EF_SIGV4_ENOMEM;
}

/* --------------------------------------------------------------- headers */

static int s_hent_cmp(const void *pa, const void *pb)
{
    const struct s_hent *a = pa, *b = pb;
    int c = s_bytes_cmp(a->name, a->name_len, b->name, b->name_len);
    if (c)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Stable sort by (name, original index): insertion sort for the usual
 * handful of headers, qsort beyond. */
static void s_sort_headers(struct s_hent *h, size_t n)
{
    if (n > 16) {
        qsort(h, n, sizeof *h, s_hent_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct s_hent x = h[i];
        size_t j = i;
        while (j > 0 && s_hent_cmp(&h[j - 1], &x) > 0) {
            h[j] = h[j - 1];
            j--;
        }
        h[j] = x;
    }
}

#define S_BAD_NAME (-2)
#define S_BAD_VALUE (-3)

/* Appends one header: the name lower-cased (and checked to be a token), the
 * value trimmed with every run of white space squashed to one space (and
 * checked: no control characters, CR/LF only as obs-fold line breaks).
 * Returns 0, -1 (no memory), S_BAD_NAME or S_BAD_VALUE with *pos the byte. */
static int s_add_header(struct ef_sigv4_signer *s, size_t *count, const char *name,
                        size_t name_len, const char *value, size_t value_len, size_t *pos)
{
    if (s_grow((void **)&s->hent, &s->hent_cap, *count + 1, sizeof *s->hent) != 0)
        return -1;
    struct ef_buf *hs = &s->hs;
    if (ef_buf_reserve(hs, name_len + value_len) != 0)
        return -1;
    struct s_hent *e = &s->hent[*count];
    e->name_off = hs->len;
    e->name_len = name_len;
    char *w = hs->p + hs->len;
    for (size_t i = 0; i < name_len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!S_IS(c, S_TCHAR)) {
            *pos = i + 1;
            return S_BAD_NAME;
        }
        *w++ = (char)s_lower(c);
    }
    e->value_off = (size_t)(w - hs->p);
    int any = 0, space = 0;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        unsigned k = s_cls[c];
        if (k & (S_SPACE | S_HDRCTL)) {
            if (k & S_HDRCTL) {
                int ok = (c == '\n' && i + 1 < value_len &&
                          (value[i + 1] == ' ' || value[i + 1] == '\t')) ||
                         (c == '\r' && i + 1 < value_len && value[i + 1] == '\n');
                if (!ok) {
                    *pos = i + 1;
                    return S_BAD_VALUE;
                }
            }
            if (k & S_SPACE) {
                space = any;
                continue;
            }
        }
        if (space)
            *w++ = ' ';
        *w++ = (char)c;
        any = 1;
        space = 0;
    }
    e->value_len = (size_t)(w - hs->p) - e->value_off;
    e->index = (*count)++;
    hs->len = (size_t)(w - hs->p);
    hs->p[hs->len] = '\0';
    return 0;
}

/* Appends a header the signer made (lower-case name, canonical value). */
static int s_add_raw(struct ef_sigv4_signer *s, size_t *count, const char *name,
                     size_t name_len, const char *value, size_t value_len)
{
    if (s_grow((void **)&s->hent, &s->hent_cap, *count + 1, sizeof *s->hent) != 0)
        return -1;
    struct s_hent *e = &s->hent[*count];
    e->name_off = s->hs.len;
    e->name_len = name_len;
    e->value_off = s->hs.len + name_len;
    e->value_len = value_len;
    if (s_app(&s->hs, name, name_len) != 0 || s_app(&s->hs, value, value_len) != 0)
        return -1;
    e->index = (*count)++;
    return 0;
}

/* Drops the header just added. */
static void s_drop_last_header(struct ef_sigv4_signer *s, size_t *count)
{
    (*count)--;
    s->hs.len = s->hent[*count].name_off;
    s->hs.p[s->hs.len] = '\0';
}

static int s_header_error(struct ef_sigv4_err *err, int rc, const struct ef_sigv4_header *h,
                          size_t i, size_t pos)
{
    if (rc == S_BAD_NAME)
        return s_fail(err, EF_SIGV4_EINVAL,
                      "headers[%zu]: invalid character in header name at byte %zu", i + 1, pos);
    if (rc == S_BAD_VALUE)
        return s_fail(err, EF_SIGV4_EINVAL,
                      "headers[%zu] (%.*s): control character in the value at byte %zu "
                      "(only a line break followed by a space or tab, obs-fold, is allowed)",
                      i + 1, h->name_len > 64 ? 64 : (int)h->name_len, h->name, pos);
    return s_nomem(err);
}

/* ------------------------------------------------------------ validation */

static const char *const s_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL,
};

static const char *s_method(const char *m, size_t n)
{
    for (size_t i = 0; s_methods[i]; i++) {
        size_t len = strlen(s_methods[i]);
        if (len != n)
            continue;
        size_t k = 0;
        while (k < n && (unsigned char)(m[k] & ~0x20) == (unsigned char)s_methods[i][k])
            k++;
        if (k == n)
            return s_methods[i];
    }
    return NULL;
}

static int s_check_name(const char *what, const char *p, size_t n, struct ef_sigv4_err *err)
{
    if (!p || n == 0)
        return s_fail(err, EF_SIGV4_EINVAL, "%s: missing or empty", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!S_IS(c, S_UNRES) || c == '~')
            return s_fail(err, EF_SIGV4_EINVAL,
                          "%s: invalid character at byte %zu (letters, digits, '-', '_', '.')",
                          what, i + 1);
    }
    return 0;
}

/* Printable ASCII (for an access key id also without '/', ',', ';', '=',
 * which would break the Authorization syntax). Used for values that go into
 * headers verbatim; never echoes the value. */
static int s_check_printable(const char *what, const char *p, size_t n, int key_id,
                             struct ef_sigv4_err *err)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e ||
            (key_id && (c == '/' || c == ',' || c == ';' || c == '=')))
            return s_fail(err, EF_SIGV4_EINVAL, "%s: invalid character at byte %zu", what,
                          i + 1);
    }
    return 0;
}

static int s_check_payload_hash(const char *p, size_t n, struct ef_sigv4_err *err)
{
    if (n == 16 && memcmp(p, EF_SIGV4_UNSIGNED_PAYLOAD_HASH, 16) == 0)
        return 0;
    int ok = n == 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f');
    if (!ok)
        return s_fail(err, EF_SIGV4_EINVAL,
                      "payload_hash: expected 64 lower-case hex digits or UNSIGNED-PAYLOAD");
    return 0;
}

/* ------------------------------------------------------------------ sign */

#define S_TRY_MEM(expr)               \
    do {                              \
        if ((expr) != 0)              \
            return s_nomem(err);      \
    } while (0)

/* "name:value[,value...]\n" per distinct name, and "a;b;c" into s->sh. */
static int s_append_canonical_headers(struct ef_sigv4_signer *s, size_t count)
{
    struct ef_buf *cr = &s->creq;
    ef_buf_reset(&s->sh);
    for (size_t k = 0; k < count; k++) {
        const struct s_hent *e = &s->hent[k];
        int same = k > 0 && s_bytes_cmp(e->name, e->name_len, s->hent[k - 1].name,
                                        s->hent[k - 1].name_len) == 0;
        if (same) {
            if (s_app1(cr, ',') != 0)
                return -1;
        } else {
            if ((k > 0 && s_app1(cr, '\n') != 0) || s_app(cr, e->name, e->name_len) != 0 ||
                s_app1(cr, ':') != 0)
                return -1;
            if ((k > 0 && s_app1(&s->sh, ';') != 0) || s_app(&s->sh, e->name, e->name_len) != 0)
                return -1;
        }
        if (s_app(cr, e->value, e->value_len) != 0)
            return -1;
    }
    return s_app1(cr, '\n');
}

/* HMAC-SHA256(signing key, string to sign): a context keyed for the cached
 * slot is reused (re-initialised, not re-keyed). */
static int s_sign_hmac(struct ef_sigv4_signer *s, int slot, const unsigned char key[32],
                       const char *data, size_t n, unsigned char out[32])
{
    size_t len = 0;
    int ok;
    if (slot >= 0 && slot == s->sigmac_slot) {
        ok = EVP_MAC_init(s->sigmac, NULL, 0, NULL) == 1;
    } else {
        s->sigmac_slot = -1;
        ok = EVP_MAC_init(s->sigmac, key, 32, NULL) == 1;
        if (ok)
            s->sigmac_slot = slot;
    }
    if (!ok || EVP_MAC_update(s->sigmac, (const unsigned char *)data, n) != 1 ||
        EVP_MAC_final(s->sigmac, out, &len, 32) != 1 || len != 32) {
        s->sigmac_slot = -1;
        return -1;
    }
    return 0;
}

int ef_sigv4_sign(struct ef_sigv4_signer *s, const struct ef_sigv4_request *r,
                  struct ef_sigv4_result *out, struct ef_sigv4_err *err)
{
    out->n_added = 0;
    out->body_hashed = 0;
    if (err) {
        err->code = 0;
        err->message[0] = '\0';
    }

    if (!s->mac || !s->sigmac)
        return s_fail(err, EF_SIGV4_ECRYPTO, "OpenSSL HMAC contexts unavailable");

    /* scalars */
    const char *method = r->method ? s_method(r->method, r->method_len) : NULL;
    if (!method)
        return s_fail(err, EF_SIGV4_EINVAL,
                      "method: expected one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    if (r->time_s == s->date_time && s->date_time >= 0) {
        memcpy(out->amz_date, s->date_text, 17);
    } else if (ef_sigv4_amz_date(r->time_s, out->amz_date) == 0) {
        s->date_time = r->time_s;
        memcpy(s->date_text, out->amz_date, 17);
    } else
        return s_fail(err, EF_SIGV4_EINVAL,
                      "time: out of range (Unix seconds from 0 to 253402300799)");
    int rc;
    if ((rc = s_check_name("region", r->region, r->region_len, err)) != 0 ||
        (rc = s_check_name("service", r->service, r->service_len, err)) != 0)
        return rc;
    if (!r->access_key_id || r->access_key_id_len == 0)
        return s_fail(err, EF_SIGV4_EINVAL, "credentials.access_key_id: missing or empty");
    if ((rc = s_check_printable("credentials.access_key_id", r->access_key_id,
                                r->access_key_id_len, 1, err)) != 0)
        return rc;
    if (!r->secret_access_key || r->secret_access_key_len == 0)
        return s_fail(err, EF_SIGV4_EINVAL, "credentials.secret_access_key: missing or empty");
    int token = r->session_token && r->session_token_len > 0;
    if (token && (rc = s_check_printable("credentials.session_token", r->session_token,
                                         r->session_token_len, 0, err)) != 0)
        return rc;
    int sign_token = token && !(r->flags & EF_SIGV4_OMIT_SESSION_TOKEN);
    if (!r->url)
        return s_fail(err, EF_SIGV4_EINVAL, "url: missing");
    struct s_url url = { NULL, 0, NULL, 0, NULL, 0 };
    if ((rc = s_parse_url(r->url, r->url_len, &url, err)) != 0)
        return rc;
    if (r->n_headers && !r->headers)
        return s_fail(err, EF_SIGV4_EINVAL, "headers: missing");
    if (r->body_len && !r->body)
        return s_fail(err, EF_SIGV4_EINVAL, "body: missing");

    /* payload hash */
    if (r->payload_hash) {
        if ((rc = s_check_payload_hash(r->payload_hash, r->payload_hash_len, err)) != 0)
            return rc;
        if ((r->flags & EF_SIGV4_UNSIGNED_PAYLOAD) &&
            !(r->payload_hash_len == 16 &&
              memcmp(r->payload_hash, EF_SIGV4_UNSIGNED_PAYLOAD_HASH, 16) == 0))
            return s_fail(err, EF_SIGV4_EINVAL,
                          "payload_hash: a body hash contradicts unsigned_payload");
        memcpy(out->payload_hash, r->payload_hash, r->payload_hash_len);
        out->payload_hash[r->payload_hash_len] = '\0';
    } else if (r->flags & EF_SIGV4_UNSIGNED_PAYLOAD) {
        memcpy(out->payload_hash, EF_SIGV4_UNSIGNED_PAYLOAD_HASH,
               sizeof EF_SIGV4_UNSIGNED_PAYLOAD_HASH);
    } else if (r->body_len == 0) {
        memcpy(out->payload_hash, EF_SIGV4_EMPTY_SHA256, sizeof EF_SIGV4_EMPTY_SHA256);
    } else {
        if (ef_sigv4_sha256_hex(s, r->body, r->body_len, out->payload_hash) != 0)
            return s_fail(err, EF_SIGV4_ECRYPTO, "SHA-256 failed");
        s->stats.body_hashes++;
        out->body_hashed = 1;
    }
    size_t ph_len = out->payload_hash[16] ? 64 : 16;

    /* headers */
    size_t count = 0, pos = 0;
    int have_host = 0;
    ef_buf_reset(&s->hs);
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct ef_sigv4_header *h = &r->headers[i];
        if (!h->name || h->name_len == 0)
            return s_fail(err, EF_SIGV4_EINVAL, "headers[%zu]: empty header name", i + 1);
        if (!h->value && h->value_len)
            return s_fail(err, EF_SIGV4_EINVAL, "headers[%zu]: no value", i + 1);
        rc = s_add_header(s, &count, h->name, h->name_len, h->value, h->value_len, &pos);
        if (rc != 0)
            return s_header_error(err, rc, h, i, pos);
        const char *lc = s->hs.p + s->hent[count - 1].name_off;
        if (s_lc_in(lc, h->name_len, s_owned_headers) ||
            s_lc_in(lc, h->name_len, s_unsigned_headers))
            s_drop_last_header(s, &count);
        else if (h->name_len == 4 && memcmp(lc, "host", 4) == 0)
            have_host = 1;
    }
    /* values already canonical: the URL's host has no white space, the token
     * is printable ASCII without spaces */
    if (!have_host)
        S_TRY_MEM(s_add_raw(s, &count, "host", 4, url.host, url.host_len));
    S_TRY_MEM(s_add_raw(s, &count, "x-amz-date", 10, out->amz_date, 16));
    if (sign_token)
        S_TRY_MEM(s_add_raw(s, &count, "x-amz-security-token", 20, r->session_token,
                            r->session_token_len));
    if (r->flags & EF_SIGV4_SIGN_BODY)
        S_TRY_MEM(s_add_raw(s, &count, "x-amz-content-sha256", 20, out->payload_hash, ph_len));
    for (size_t k = 0; k < count; k++) {
        s->hent[k].name = s->hs.p + s->hent[k].name_off;
        s->hent[k].value = s->hs.p + s->hent[k].value_off;
    }
    s_sort_headers(s->hent, count);

    /* canonical request */
    struct ef_buf *cr = &s->creq;
    ef_buf_reset(cr);
    S_TRY_MEM(ef_buf_reserve(cr, 16 + 3 * (url.path_len + url.query_len) + 2 * s->hs.len +
                                     3 * count + 80));
    S_TRY_MEM(s_app(cr, method, strlen(method)));
    S_TRY_MEM(s_app1(cr, '\n'));
    S_TRY_MEM(s_canonical_path(url.path, url.path_len, r->flags, &s->np, cr));
    S_TRY_MEM(s_app1(cr, '\n'));
    S_TRY_MEM(s_canonical_query(url.query, url.query_len, &s->qs, &s->qent, &s->qent_cap, cr));
    S_TRY_MEM(s_app1(cr, '\n'));
    S_TRY_MEM(s_append_canonical_headers(s, count));
    S_TRY_MEM(s_app1(cr, '\n'));
    S_TRY_MEM(s_app(cr, s->sh.p, s->sh.len));
    S_TRY_MEM(s_app1(cr, '\n'));
    S_TRY_MEM(s_app(cr, out->payload_hash, ph_len));

    /* credential scope and string to sign */
    struct ef_buf *sc = &s->scope;
    ef_buf_reset(sc);
    S_TRY_MEM(s_app(sc, out->amz_date, 8));
    S_TRY_MEM(s_app1(sc, '/'));
    S_TRY_MEM(s_app(sc, r->region, r->region_len));
    S_TRY_MEM(s_app1(sc, '/'));
    S_TRY_MEM(s_app(sc, r->service, r->service_len));
    S_TRY_MEM(s_app(sc, "/aws4_request", 13));

    char creq_hash[65];
    if (ef_sigv4_sha256_hex(s, cr->p, cr->len, creq_hash) != 0)
        return s_fail(err, EF_SIGV4_ECRYPTO, "SHA-256 failed");
    struct ef_buf *st = &s->sts;
    ef_buf_reset(st);
    S_TRY_MEM(s_app(st, S_ALGORITHM "\n", sizeof S_ALGORITHM));
    S_TRY_MEM(s_app(st, out->amz_date, 16));
    S_TRY_MEM(s_app1(st, '\n'));
    S_TRY_MEM(s_app(st, sc->p, sc->len));
    S_TRY_MEM(s_app1(st, '\n'));
    S_TRY_MEM(s_app(st, creq_hash, 64));

    /* signature */
    unsigned char key[32], sig[32];
    int slot = -1;
    rc = s_signing_key(s, r, out->amz_date, key, &slot);
    if (rc == -2)
        return s_nomem(err);
    if (rc != 0 || s_sign_hmac(s, slot, key, st->p, st->len, sig) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        return s_fail(err, EF_SIGV4_ECRYPTO, "HMAC-SHA256 failed");
    }
    OPENSSL_cleanse(key, sizeof key);
    s_hexify(sig, 32, out->signature);

    /* Authorization */
    struct ef_buf *au = &s->auth;
    ef_buf_reset(au);
    S_TRY_MEM(s_app(au, S_ALGORITHM " Credential=", sizeof S_ALGORITHM + 11));
    S_TRY_MEM(s_app(au, r->access_key_id, r->access_key_id_len));
    S_TRY_MEM(s_app1(au, '/'));
    S_TRY_MEM(s_app(au, sc->p, sc->len));
    S_TRY_MEM(s_app(au, ", SignedHeaders=", 16));
    S_TRY_MEM(s_app(au, s->sh.p, s->sh.len));
    S_TRY_MEM(s_app(au, ", Signature=", 12));
    S_TRY_MEM(s_app(au, out->signature, 64));

    out->canonical_request = cr->p;
    out->canonical_request_len = cr->len;
    out->string_to_sign = st->p;
    out->string_to_sign_len = st->len;
    out->authorization = au->p;
    out->authorization_len = au->len;
    out->signed_headers = s->sh.p;
    out->signed_headers_len = s->sh.len;
    out->credential_scope = sc->p;
    out->credential_scope_len = sc->len;

    size_t n = 0;
    out->added[n++] = (struct ef_sigv4_header){ "X-Amz-Date", 10, out->amz_date, 16 };
    if (sign_token)
        out->added[n++] = (struct ef_sigv4_header){ "X-Amz-Security-Token", 20,
                                                    r->session_token, r->session_token_len };
    if (r->flags & EF_SIGV4_SIGN_BODY)
        out->added[n++] = (struct ef_sigv4_header){ "X-Amz-Content-Sha256", 20,
                                                    out->payload_hash, ph_len };
    out->added[n++] = (struct ef_sigv4_header){ "Authorization", 13, au->p, au->len };
    if (token && !sign_token)
        out->added[n++] = (struct ef_sigv4_header){ "X-Amz-Security-Token", 20,
                                                    r->session_token, r->session_token_len };
    out->n_added = n;
    return EF_SIGV4_OK;
}
