/* AWS Signature Version 4 (AWS4-HMAC-SHA256), header signing.
 *
 * Pure C over OpenSSL 3 (no lua.h). Time and credentials are inputs: the
 * signer never reads a clock, the environment or a file.
 *
 *   struct ef_sigv4_signer *s = ef_sigv4_signer_new();
 *   struct ef_sigv4_request req = { .method = "POST", .method_len = 4, ... };
 *   struct ef_sigv4_result res;
 *   struct ef_sigv4_err err;
 *   if (ef_sigv4_sign(s, &req, &res, &err) != EF_SIGV4_OK) ... err.message ...
 *   ... res.authorization, res.added[] ...
 *   ef_sigv4_signer_free(s);
 *
 * A signer owns reusable work buffers (the result points into them, valid
 * until the next ef_sigv4_sign or ef_sigv4_signer_free) and a small cache of
 * derived signing keys keyed by (secret, date, region, service); cached keys
 * and secrets are overwritten with OPENSSL_cleanse when replaced or freed.
 * A signer is not thread-safe; use one per thread.
 *
 * Canonicalisation (matching AWS's test suite, botocore and aws-c-auth):
 * - method: GET HEAD POST PUT DELETE PATCH OPTIONS (any case, signed upper-case).
 * - path: RFC 3986 dot segments removed and empty segments dropped (unless
 *   EF_SIGV4_NO_NORMALIZE_PATH), then each byte but unreserved and '/' is
 *   %XX-encoded: the path is taken as already encoded for the wire and is
 *   encoded again ("double encoding"); with EF_SIGV4_NO_DOUBLE_ENCODE (S3)
 *   valid %XX escapes are decoded first, so the path is encoded exactly once.
 * - query: split on '&', then at the first '='; each key and value is
 *   %-decoded, then encoded (unreserved kept, all else %XX upper-case);
 *   pairs sorted by encoded key, then encoded value. Empty parts are dropped.
 * - headers: names lower-cased, sorted (stable); repeated names joined in
 *   their original order with ','; values trimmed and every run of white
 *   space (including obs-fold line breaks) squashed to one space. Headers
 *   that are never signed (ef_sigv4_header_is_unsigned: user-agent,
 *   x-amzn-trace-id, expect, connection, transfer-encoding, ...) are skipped;
 *   the signer-owned ones (ef_sigv4_header_is_owned: x-amz-date,
 *   authorization, x-amz-security-token, x-amz-content-sha256) are dropped
 *   from the input and regenerated. Host comes from the URL (default port
 *   omitted) unless the request carries one.
 */
#ifndef EF_SIGV4_H
#define EF_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "ef_buf.h"

#define EF_SIGV4_OK 0
#define EF_SIGV4_EINVAL (-1) /* bad input; message says what and where */
#define EF_SIGV4_ENOMEM (-2)
#define EF_SIGV4_ECRYPTO (-3) /* OpenSSL failed */

enum ef_sigv4_flags {
    EF_SIGV4_NO_NORMALIZE_PATH = 1u << 0,  /* keep '.', '..' and '//' */
    EF_SIGV4_NO_DOUBLE_ENCODE = 1u << 1,   /* encode the path once (S3) */
    EF_SIGV4_SIGN_BODY = 1u << 2,          /* add + sign X-Amz-Content-Sha256 */
    EF_SIGV4_UNSIGNED_PAYLOAD = 1u << 3,   /* payload hash "UNSIGNED-PAYLOAD" */
    EF_SIGV4_OMIT_SESSION_TOKEN = 1u << 4, /* token added after signing */
};

#define EF_SIGV4_UNSIGNED_PAYLOAD_HASH "UNSIGNED-PAYLOAD"
#define EF_SIGV4_EMPTY_SHA256 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Byte strings are (pointer, length); they need not be NUL-terminated. */
struct ef_sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct ef_sigv4_request {
    const char *method;
    size_t method_len;
    const char *url; /* http(s)://[user@]host[:port][/path][?query][#fragment] */
    size_t url_len;
    const struct ef_sigv4_header *headers;
    size_t n_headers;
    const char *body; /* may be NULL when body_len == 0 */
    size_t body_len;
    /* Precomputed payload hash (64 lower-case hex digits, or
     * "UNSIGNED-PAYLOAD"), e.g. from an earlier signing of the same body;
     * NULL: hash the body. */
    const char *payload_hash;
    size_t payload_hash_len;
    const char *region;
    size_t region_len;
    const char *service;
    size_t service_len;
    const char *access_key_id;
    size_t access_key_id_len;
    const char *secret_access_key;
    size_t secret_access_key_len;
    const char *session_token; /* NULL or empty: no session token */
    size_t session_token_len;
    int64_t time_s; /* Unix seconds, UTC, 0 .. 253402300799 */
    unsigned flags; /* enum ef_sigv4_flags */
};

struct ef_sigv4_result {
    /* NUL-terminated, owned by the signer */
    const char *canonical_request;
    size_t canonical_request_len;
    const char *string_to_sign;
    size_t string_to_sign_len;
    const char *authorization;
    size_t authorization_len;
    const char *signed_headers;
    size_t signed_headers_len;
    const char *credential_scope;
    size_t credential_scope_len;
    char signature[65];
    char amz_date[17];     /* 20150830T123600Z */
    char payload_hash[65]; /* hex, or "UNSIGNED-PAYLOAD" */
    /* The headers to add to the request, in order (X-Amz-Date,
     * X-Amz-Security-Token, X-Amz-Content-Sha256, Authorization; an omitted
     * session token comes last). Values point into the result, the signer
     * or the request. */
    struct ef_sigv4_header added[4];
    size_t n_added;
    int body_hashed; /* 1 when this call hashed the body */
};

struct ef_sigv4_err {
    int code;
    char message[200]; /* never holds a secret, a token or a header value */
};

struct ef_sigv4_stats {
    unsigned long key_hits;    /* signing keys served from the cache */
    unsigned long key_misses;  /* signing keys derived */
    unsigned long body_hashes; /* bodies hashed (empty bodies are free) */
};

struct ef_sigv4_signer;

/* NULL when out of memory or OpenSSL lacks SHA-256 / HMAC. */
struct ef_sigv4_signer *ef_sigv4_signer_new(void);
/* Wipes cached keys and work buffers, then frees. NULL is fine. */
void ef_sigv4_signer_free(struct ef_sigv4_signer *s);
/* Forgets (and wipes) every cached signing key. */
void ef_sigv4_signer_clear_cache(struct ef_sigv4_signer *s);
void ef_sigv4_signer_stats(const struct ef_sigv4_signer *s, struct ef_sigv4_stats *out);

/* A header array of n entries owned by the signer (valid until the next call
 * or free), so a caller can fill it without owning memory. NULL on ENOMEM. */
struct ef_sigv4_header *ef_sigv4_signer_headers(struct ef_sigv4_signer *s, size_t n);

int ef_sigv4_sign(struct ef_sigv4_signer *s, const struct ef_sigv4_request *req,
                  struct ef_sigv4_result *out, struct ef_sigv4_err *err);

/* Lower-case hex SHA-256 of data into out[65]. */
int ef_sigv4_sha256_hex(struct ef_sigv4_signer *s, const void *data, size_t n, char out[65]);

/* 1 if the signer sets this header itself (x-amz-date, authorization,
 * x-amz-security-token, x-amz-content-sha256), any case. */
int ef_sigv4_header_is_owned(const char *name, size_t n);
/* 1 if this header is never signed (user-agent, x-amzn-trace-id, ...). */
int ef_sigv4_header_is_unsigned(const char *name, size_t n);

/* The canonicalisation steps on their own (appending to out). */
int ef_sigv4_canonical_path(const char *path, size_t n, unsigned flags, struct ef_buf *out);
int ef_sigv4_canonical_query(const char *query, size_t n, struct ef_buf *out);
/* "20150830T123600Z" into out[17]; -1 when t is out of range. */
int ef_sigv4_amz_date(int64_t t, char out[17]);

#endif
