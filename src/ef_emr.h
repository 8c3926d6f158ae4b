/* ef_emr: the emr-containers calls in pure C (no Lua): model checks with field paths,
 * marshalling between Step Functions' spelling (PascalCase) and the REST wire (camelCase
 * members, escaped URI labels, query strings, JSON bodies), reply checks, error parsing,
 * the SDKs' standard retry mode and idempotency tokens.
 *
 * Values are cJSON trees. A parameter tree may hold, besides JSON, a cJSON_Raw item whose
 * valuestring names a value JSON cannot hold ("table" for a Lua table that is neither a
 * list nor an object, "function", ...): checks report it by that name. A string item may
 * hold NUL bytes (the Lua layer marks values known only at run time that way): made by
 * ef_emr_string, its length is then in valueint; ef_emr_strlen reads either kind.
 */
#ifndef EF_EMR_H
#define EF_EMR_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ef_buf.h"
#include "ef_emr_model.h"

cJSON *ef_emr_string(const char *s, size_t n);
size_t ef_emr_strlen(const cJSON *v);

/* ---- model checks ------------------------------------------------------------------ */

/* Pattern matcher: 1 when s[0..n) matches pattern as a whole, 0 when not, -1 when the
 * pattern cannot be used (then the check is skipped). */
typedef int (*ef_emr_match_fn)(void *ud, const char *pattern, const char *s, size_t n);

/* The model's own matcher: the pattern as Java reads it for the API (ef_regex, "." matching
 * line breaks too, the whole value), compiled once per pattern and kept for the process. */
int ef_emr_model_match(void *ud, const char *pattern, const char *s, size_t n);
/* Frees the compiled patterns (before the library is unloaded). */
void ef_emr_model_match_reset(void);

struct ef_emr_problem {
    char *path;     /* "JobDriver.SparkSubmitJobDriver.EntryPoint", "" for the whole input */
    char *message;  /* "length must be at least 1, got 0" */
};

struct ef_emr_problems {
    struct ef_emr_problem *items;
    size_t n, cap;
    int oom;        /* memory ran out: the list is incomplete */
};

void ef_emr_problems_free(struct ef_emr_problems *p);

/* Checks params (a PascalCase object, or NULL for none) against op's input: types,
 * required and unknown members, lengths, ranges, enums, patterns (through match; NULL
 * skips them), unions. Problems are appended in a stable order (members in model
 * order, then unknown names sorted, then missing required ones). Returns the count. */
size_t ef_emr_check(const struct ef_emr_operation *op, const cJSON *params, ef_emr_match_fn match,
                    void *ud, struct ef_emr_problems *out);

/* "invalid StartJobRun parameters: Name: ...; ... (3 more)" (at most 5 listed). */
int ef_emr_problems_message(const struct ef_emr_operation *op, const struct ef_emr_problems *p,
                            struct ef_buf *out);

/* ---- requests ---------------------------------------------------------------------- */

struct ef_emr_wire {
    const char *method;
    struct ef_buf target;   /* path plus "?query" when there is one */
    struct ef_buf body;     /* compact JSON, keys sorted bytewise; empty when none */
    int has_body;           /* the operation sends a JSON body ("{}" when no member set) */
};

void ef_emr_wire_init(struct ef_emr_wire *w);
void ef_emr_wire_free(struct ef_emr_wire *w);

/* Builds op's request from checked params (PascalCase). Returns 0, or -1 when memory
 * ran out. */
int ef_emr_build(const struct ef_emr_operation *op, const cJSON *params, struct ef_emr_wire *out);

/* Percent-encodes s[0..n) (unreserved bytes kept; '/' kept when greedy). */
int ef_emr_uri_escape(const char *s, size_t n, int greedy, struct ef_buf *out);

/* Unix seconds -> "2015-08-30T12:36:00Z" / "...T12:36:00.250000Z"; 0 or -1. */
int ef_emr_iso8601(double t, struct ef_buf *out);

/* ---- errors ------------------------------------------------------------------------ */

enum ef_emr_retry_kind { EF_EMR_NO_RETRY = 0, EF_EMR_THROTTLING, EF_EMR_TRANSIENT, EF_EMR_TIMEOUT };

struct ef_emr_error {
    char code[32];          /* "aws", "json", "http", "reset", ... */
    char aws_code[128];     /* "ThrottlingException", or "" */
    char message[512];
    char request_id[128];
    long status;            /* 0 when there was no reply */
    int retryable;
};

struct ef_emr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The request id of a reply (x-amzn-RequestId, else x-amz-request-id) into out; 0 when none. */
int ef_emr_request_id(const struct ef_emr_header *hs, size_t n, char *out, size_t size);

/* An error from a reply with status >= 300 (botocore's order: the x-amzn-ErrorType
 * header, the body's code/Code, the body's __type, the status). */
void ef_emr_parse_error(long status, const struct ef_emr_header *hs, size_t n, const char *body,
                        size_t len, struct ef_emr_error *out);

/* Checks a 2xx reply of op: a JSON object (an empty body only when the output has no
 * members) holding the result's key member (id, or a Describe's object). Returns the
 * parsed wire document (caller frees), or NULL with *err filled (code "json"). */
cJSON *ef_emr_reply(const struct ef_emr_operation *op, long status, const char *body, size_t len,
                    struct ef_emr_error *err);

/* Renames the members of a wire document of shape `shape` to PascalCase, in place
 * (structures recursively; unknown members renamed, their values left alone). */
void ef_emr_pascalize(unsigned shape, cJSON *doc);

/* The standard mode's class of an error: aws_code (may be "") and status for replies;
 * code ("reset", "timeout", ...) for transport failures. */
int ef_emr_classify(const char *code, const char *aws_code, long status);

/* ---- standard retry mode ---------------------------------------------------------- */

#define EF_EMR_MAX_BACKOFF_S 20.0
#define EF_EMR_RETRY_QUOTA 500
#define EF_EMR_RETRY_COST 5
#define EF_EMR_TIMEOUT_RETRY_COST 10
#define EF_EMR_NO_RETRY_INCREMENT 1

struct ef_emr_retry {
    int max_attempts;
    int capacity, max_capacity;
    double max_backoff_s;
    double (*random)(void *ud);   /* [0, 1); NULL = ef_emr_random */
    void *random_ud;
};

enum ef_emr_retry_verdict { EF_EMR_RETRY = 0, EF_EMR_NOT_RETRYABLE, EF_EMR_MAX_ATTEMPTS,
                            EF_EMR_QUOTA_EXHAUSTED };

void ef_emr_retry_init(struct ef_emr_retry *r, int max_attempts, int quota);
/* After attempt (1-based) failed with an error of class kind: EF_EMR_RETRY with *delay_s
 * (full jitter: random * min(max_backoff, 2^(attempt-1))) and *cost taken from the quota,
 * or why not. */
int ef_emr_retry_decide(struct ef_emr_retry *r, int kind, int attempt, double *delay_s, int *cost);
/* After a success: refunds last_cost (0 when the call was not retried: 1 token). */
void ef_emr_retry_success(struct ef_emr_retry *r, int last_cost);
const char *ef_emr_retry_verdict_name(int verdict);

/* ---- idempotency tokens ----------------------------------------------------------- */

/* A random UUID v4 (36 chars + NUL) from the OS; 0, or -1 when no randomness. */
int ef_emr_uuid4(char out[37]);
/* A uniform double in [0, 1) from the OS's randomness. */
double ef_emr_random(void *ud);

#endif
