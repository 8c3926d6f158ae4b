/* ef_emr_client: emr-containers calls from C (no Lua): check, marshal, sign (SigV4), send
 * through an ef_http poller, retry in the SDKs' standard mode, decode.
 *
 *   struct ef_emr_client_config cfg = { .endpoint = "https://emr-containers.us-east-1.amazonaws.com",
 *                                       .region = "us-east-1", .access_key_id = ..., ... };
 *   struct ef_emr_client *c = ef_emr_client_new(&cfg);
 *   struct ef_emr_error err;
 *   cJSON *out = ef_emr_call(c, "StartJobRun", params, &err);   // PascalCase in and out
 *   ...
 *   cJSON_Delete(out); ef_emr_client_free(c);
 *
 * Non-blocking use (the .sync poller): ef_emr_client_send starts one attempt on the
 * client's poller and ef_emr_client_take turns its finished transfer into a result. */
#ifndef EF_EMR_CLIENT_H
#define EF_EMR_CLIENT_H

#include <stdint.h>

#include "ef_emr.h"
#include "ef_http.h"

struct ef_emr_client_config {
    const char *endpoint;          /* base URL, no trailing slash */
    const char *region;
    const char *access_key_id, *secret_access_key, *session_token;
    int max_attempts;              /* 0 = 3 */
    int retry_quota;               /* 0 = 500 */
    long timeout_ms, connect_timeout_ms;
    const char *user_agent;        /* NULL = "emrflow-c" */
    ef_emr_match_fn match;         /* pattern checks; NULL = ef_emr_model_match */
    const char *ca_bundle;         /* CA file (PEM); NULL = the system store */
    long max_connections;          /* per host; 0 = ef_http's default */
    void *match_ud;
};

struct ef_emr_client;

struct ef_emr_client *ef_emr_client_new(const struct ef_emr_client_config *cfg);
void ef_emr_client_free(struct ef_emr_client *c);
struct ef_http *ef_emr_client_http(struct ef_emr_client *c);
struct ef_emr_retry *ef_emr_client_retry(struct ef_emr_client *c);

/* A blocking call. Returns the result (PascalCase; caller frees) or NULL with *err. An
 * idempotency token missing from params is filled once, for every attempt. */
cJSON *ef_emr_call(struct ef_emr_client *c, const char *operation, const cJSON *params,
                   struct ef_emr_error *err);

/* Replaces the credentials (on refresh). 0, or -1 when out of memory (the old ones stay). */
int ef_emr_client_set_credentials(struct ef_emr_client *c, const char *access_key_id,
                                  const char *secret_access_key, const char *session_token);

/* One blocking attempt of a call whose parameters were already checked (no retry): the
 * result (caller frees) or NULL with *err and *kind (enum ef_emr_retry_kind). The reply's
 * request id goes to request_id (may be NULL) either way. */
cJSON *ef_emr_client_attempt(struct ef_emr_client *c, const char *operation, const cJSON *params,
                             struct ef_emr_error *err, int *kind, char *request_id, size_t size);

/* One prepared request: checked, marshalled, token filled; signed at each send. */
struct ef_emr_request {
    const struct ef_emr_operation *op;
    struct ef_emr_wire wire;
    char payload_hash[65];
    int attempt;                   /* attempts sent so far */
    int last_cost;                 /* quota taken by the last retry */
};

/* Prepares op(params); 0, or -1 with *err (a validation error: code "validation"). */
int ef_emr_request_init(struct ef_emr_client *c, struct ef_emr_request *rq, const char *operation,
                        const cJSON *params, struct ef_emr_error *err);
void ef_emr_request_free(struct ef_emr_request *rq);

/* Signs and starts one attempt of rq on the client's poller; the transfer id in *id. */
int ef_emr_client_send(struct ef_emr_client *c, struct ef_emr_request *rq, uint64_t *id,
                       struct ef_emr_error *err);

/* Reads the finished transfer x of rq: the result (caller frees), or NULL with *err and,
 * when another attempt is due, *retry_in_s >= 0 (else -1). */
cJSON *ef_emr_client_take(struct ef_emr_client *c, struct ef_emr_request *rq,
                          const struct ef_http_xfer *x, struct ef_emr_error *err, double *retry_in_s);

#endif
