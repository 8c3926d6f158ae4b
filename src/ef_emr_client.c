/* ef_emr_client: emr-containers calls from C. See ef_emr_client.h. */
#include "ef_emr_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ef_sigv4.h"

#define SERVICE "emr-containers"

struct ef_emr_client {
    char *endpoint, *region, *akid, *secret, *token, *user_agent, *ca_bundle;
    long timeout_ms, connect_timeout_ms;
    ef_emr_match_fn match;
    void *match_ud;
    struct ef_emr_retry retry;
    struct ef_http *http;
    struct ef_sigv4_signer *signer;
    struct ef_buf url;
};

static char *dup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

void ef_emr_client_free(struct ef_emr_client *c)
{
    if (!c)
        return;
    ef_http_free(c->http);
    ef_sigv4_signer_free(c->signer);
    free(c->endpoint);
    free(c->region);
    free(c->akid);
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    free(c->user_agent);
    free(c->ca_bundle);
    ef_buf_clean_up(&c->url);
    free(c);
}

struct ef_emr_client *ef_emr_client_new(const struct ef_emr_client_config *cfg)
{
    if (!cfg->endpoint || !cfg->region || !cfg->access_key_id || !cfg->secret_access_key)
        return NULL;
    struct ef_emr_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int failed = 0;
    c->endpoint = dup_or_null(cfg->endpoint, &failed);
    c->region = dup_or_null(cfg->region, &failed);
    c->akid = dup_or_null(cfg->access_key_id, &failed);
    c->secret = dup_or_null(cfg->secret_access_key, &failed);
    c->token = dup_or_null(cfg->session_token, &failed);
    c->user_agent = dup_or_null(cfg->user_agent ? cfg->user_agent : "emrflow-c", &failed);
    c->ca_bundle = dup_or_null(cfg->ca_bundle, &failed);
    c->timeout_ms = cfg->timeout_ms;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->match = cfg->match ? cfg->match : ef_emr_model_match;
    c->match_ud = cfg->match_ud;
    ef_emr_retry_init(&c->retry, cfg->max_attempts, cfg->retry_quota > 0 ? cfg->retry_quota : -1);
    struct ef_http_options ho = { cfg->max_connections, 0 };
    c->http = ef_http_new(&ho);
    c->signer = ef_sigv4_signer_new();
    if (failed || !c->http || !c->signer) {
        ef_emr_client_free(c);
        return NULL;
    }
    return c;
}

struct ef_http *ef_emr_client_http(struct ef_emr_client *c)
{
    return c->http;
}

struct ef_emr_retry *ef_emr_client_retry(struct ef_emr_client *c)
{
    return &c->retry;
}

static void set_error(struct ef_emr_error *err, const char *code, const char *fmt, const char *detail)
{
    memset(err, 0, sizeof *err);
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->message, sizeof err->message, fmt, detail ? detail : "");
}

/* ---- requests ---------------------------------------------------------------------- */

void ef_emr_request_free(struct ef_emr_request *rq)
{
    ef_emr_wire_free(&rq->wire);
    memset(rq, 0, sizeof *rq);
}

/* params plus generated idempotency tokens (a copy), or params itself when none is missing. */
static const cJSON *with_tokens(const struct ef_emr_operation *op, const cJSON *params, cJSON **owned)
{
    *owned = NULL;
    if (op->input == EF_EMR_NONE)
        return params;
    const struct ef_emr_shape *in = &ef_emr_shapes[op->input];
    for (size_t i = 0; i < in->nmembers; i++) {
        const struct ef_emr_member *m = &in->members[i];
        if (!m->idempotency_token)
            continue;
        const cJSON *v = params ? cJSON_GetObjectItemCaseSensitive(params, m->pascal) : NULL;
        if (v && !cJSON_IsNull(v))
            continue;
        if (!*owned) {
            *owned = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
            if (!*owned)
                return NULL;
        }
        char token[37];
        if (ef_emr_uuid4(token))
            return NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(*owned, m->pascal);
        if (!cJSON_AddStringToObject(*owned, m->pascal, token))
            return NULL;
    }
    return *owned ? (const cJSON *)*owned : params;
}

static int prepare(struct ef_emr_client *c, struct ef_emr_request *rq, const char *operation,
                   const cJSON *params, struct ef_emr_error *err, int check);

int ef_emr_request_init(struct ef_emr_client *c, struct ef_emr_request *rq, const char *operation,
                        const cJSON *params, struct ef_emr_error *err)
{
    return prepare(c, rq, operation, params, err, 1);
}

static int prepare(struct ef_emr_client *c, struct ef_emr_request *rq, const char *operation,
                   const cJSON *params, struct ef_emr_error *err, int check)
{
    memset(rq, 0, sizeof *rq);
    ef_emr_wire_init(&rq->wire);
    rq->op = ef_emr_operation_find(operation, strlen(operation));
    if (!rq->op) {
        set_error(err, "validation", "unknown emr-containers operation \"%s\"", operation);
        snprintf(err->aws_code, sizeof err->aws_code, "ValidationException");
        return -1;
    }
    cJSON *owned;
    const cJSON *p = with_tokens(rq->op, params, &owned);
    if (!p && params) {
        set_error(err, "memory", "%sout of memory", NULL);
        return -1;
    }
    struct ef_emr_problems probs;
    memset(&probs, 0, sizeof probs);
    if (check && (ef_emr_check(rq->op, p, c->match, c->match_ud, &probs) || probs.oom)) {
        struct ef_buf msg;
        ef_buf_init(&msg);
        if (ef_emr_problems_message(rq->op, &probs, &msg))
            ef_buf_clean_up(&msg);
        set_error(err, "validation", "%s", msg.p ? msg.p : "out of memory");
        snprintf(err->aws_code, sizeof err->aws_code, "ValidationException");
        ef_buf_clean_up(&msg);
        ef_emr_problems_free(&probs);
        cJSON_Delete(owned);
        return -1;
    }
    ef_emr_problems_free(&probs);
    int rc = ef_emr_build(rq->op, p, &rq->wire);
    cJSON_Delete(owned);
    if (rc) {
        set_error(err, "memory", "%sout of memory", NULL);
        ef_emr_request_free(rq);
        return -1;
    }
    return 0;
}

/* ---- sending ----------------------------------------------------------------------- */

int ef_emr_client_send(struct ef_emr_client *c, struct ef_emr_request *rq, uint64_t *id,
                       struct ef_emr_error *err)
{
    const struct ef_emr_wire *w = &rq->wire;
    ef_buf_reset(&c->url);
    if (ef_buf_append_str(&c->url, c->endpoint) || ef_buf_append(&c->url, w->target.p, w->target.len)) {
        set_error(err, "memory", "%sout of memory", NULL);
        return -1;
    }
    const char *body = w->has_body ? (w->body.p ? w->body.p : "{}") : "";
    size_t body_len = w->has_body ? (w->body.p ? w->body.len : 2) : 0;
    struct ef_sigv4_header in[1] = { { "Content-Type", 12, "application/json", 16 } };
    struct ef_sigv4_request sr;
    memset(&sr, 0, sizeof sr);
    sr.method = w->method;
    sr.method_len = strlen(w->method);
    sr.url = c->url.p;
    sr.url_len = c->url.len;
    sr.headers = in;
    sr.n_headers = w->has_body ? 1 : 0;
    sr.body = body;
    sr.body_len = body_len;
    if (rq->payload_hash[0]) {
        sr.payload_hash = rq->payload_hash;
        sr.payload_hash_len = strlen(rq->payload_hash);
    }
    sr.region = c->region;
    sr.region_len = strlen(c->region);
    sr.service = SERVICE;
    sr.service_len = strlen(SERVICE);
    sr.access_key_id = c->akid;
    sr.access_key_id_len = strlen(c->akid);
    sr.secret_access_key = c->secret;
    sr.secret_access_key_len = strlen(c->secret);
    sr.session_token = c->token;
    sr.session_token_len = c->token ? strlen(c->token) : 0;
    sr.time_s = (int64_t)time(NULL);
    struct ef_sigv4_result res;
    struct ef_sigv4_err serr;
    if (ef_sigv4_sign(c->signer, &sr, &res, &serr) != EF_SIGV4_OK) {
        set_error(err, "signing", "cannot sign the request: %s", serr.message);
        return -1;
    }
    snprintf(rq->payload_hash, sizeof rq->payload_hash, "%s", res.payload_hash);
    struct ef_http_header hs[8];
    size_t n = 0;
    if (w->has_body)
        hs[n++] = (struct ef_http_header){ "Content-Type", 12, "application/json", 16 };
    for (size_t i = 0; i < res.n_added; i++)
        hs[n++] = (struct ef_http_header){ res.added[i].name, res.added[i].name_len, res.added[i].value,
                                           res.added[i].value_len };
    hs[n++] = (struct ef_http_header){ "User-Agent", 10, c->user_agent, strlen(c->user_agent) };
    if (!w->has_body && strcmp(w->method, "GET") != 0 && strcmp(w->method, "HEAD") != 0)
        hs[n++] = (struct ef_http_header){ "Content-Length", 14, "0", 1 };
    struct ef_http_request hr;
    memset(&hr, 0, sizeof hr);
    hr.method = w->method;
    hr.url = c->url.p;
    hr.headers = hs;
    hr.nheaders = n;
    hr.body = w->has_body ? body : NULL;
    hr.body_len = body_len;
    hr.timeout_ms = c->timeout_ms;
    hr.connect_timeout_ms = c->connect_timeout_ms;
    hr.ca_bundle = c->ca_bundle;
    hr.no_resend = strcmp(w->method, "POST") == 0;    /* our retry loop counts every send */
    char msg[256];
    if (ef_http_add(c->http, &hr, id, msg, sizeof msg) != EF_HTTP_ADD_OK) {
        set_error(err, "http", "%s", msg);
        return -1;
    }
    rq->attempt++;
    return 0;
}

/* A transport failure as an error; replies whose headers pass libcurl's limits are not
 * worth another attempt (libcurl reports them like a reset or as "Out of memory"). */
static void transport_error(const struct ef_http_result *r, struct ef_emr_error *err)
{
    const char *name = ef_http_errname(r->err);
    set_error(err, name ? name : "http", "%s", r->message);
    if ((r->message && strstr(r->message, "Too large response headers")) ||
        (r->err == EF_HTTP_EHTTP && r->message && strcmp(r->message, "Out of memory") == 0)) {
        snprintf(err->code, sizeof err->code, "http");
        snprintf(err->message, sizeof err->message,
                 "the reply's headers are over the size limit (libcurl: %s)", r->message);
    }
}

cJSON *ef_emr_client_take(struct ef_emr_client *c, struct ef_emr_request *rq,
                          const struct ef_http_xfer *x, struct ef_emr_error *err, double *retry_in_s)
{
    *retry_in_s = -1;
    struct ef_http_result r;
    ef_http_result_of(x, &r);
    struct ef_emr_header hs[64];
    size_t n = r.nheaders < 64 ? r.nheaders : 64;
    for (size_t i = 0; i < n; i++) {
        struct ef_http_header h;
        ef_http_header_at(x, i, &h);
        hs[i] = (struct ef_emr_header){ h.name, h.name_len, h.value, h.value_len };
    }
    int kind;
    if (r.err == EF_HTTP_OK && r.status >= 200 && r.status < 300) {
        cJSON *doc = ef_emr_reply(rq->op, r.status, r.body, r.body_len, err);
        if (!doc) {
            ef_emr_request_id(hs, n, err->request_id, sizeof err->request_id);
            return NULL;
        }
        ef_emr_retry_success(&c->retry, rq->last_cost);
        ef_emr_pascalize(rq->op->output, doc);
        return doc;
    }
    if (r.err == EF_HTTP_OK) {
        ef_emr_parse_error(r.status, hs, n, r.body, r.body_len, err);
        kind = ef_emr_classify("aws", err->aws_code, r.status);
    } else {
        transport_error(&r, err);
        kind = ef_emr_classify(err->code, NULL, 0);
        err->retryable = kind != EF_EMR_NO_RETRY;
    }
    double delay;
    int cost;
    if (ef_emr_retry_decide(&c->retry, kind, rq->attempt, &delay, &cost) == EF_EMR_RETRY) {
        rq->last_cost = cost;
        *retry_in_s = delay;
    }
    return NULL;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

cJSON *ef_emr_call(struct ef_emr_client *c, const char *operation, const cJSON *params,
                   struct ef_emr_error *err)
{
    struct ef_emr_request rq;
    if (ef_emr_request_init(c, &rq, operation, params, err))
        return NULL;
    cJSON *out = NULL;
    for (;;) {
        uint64_t id;
        if (ef_emr_client_send(c, &rq, &id, err))
            break;
        char msg[256];
        const struct ef_http_xfer *x = NULL;
        while (!(x = ef_http_done_peek(c->http)))
            if (ef_http_step(c->http, 100, msg, sizeof msg) != EF_HTTP_ADD_OK) {
                ef_http_cancel(c->http, id);
                set_error(err, "http", "%s", msg);
                break;
            }
        if (!x)
            break;
        double retry_in;
        out = ef_emr_client_take(c, &rq, x, err, &retry_in);
        ef_http_done_pop(c->http);
        if (out || retry_in < 0)
            break;
        sleep_s(retry_in);
    }
    ef_emr_request_free(&rq);
    return out;
}

static int replace(char **slot, const char *v)
{
    char *d = NULL;
    if (v && !(d = strdup(v)))
        return -1;
    if (*slot) {
        memset(*slot, 0, strlen(*slot));
        free(*slot);
    }
    *slot = d;
    return 0;
}

int ef_emr_client_set_credentials(struct ef_emr_client *c, const char *access_key_id,
                                  const char *secret_access_key, const char *session_token)
{
    if (!access_key_id || !secret_access_key)
        return -1;
    if (c->akid && strcmp(c->akid, access_key_id) == 0 && c->secret &&
        strcmp(c->secret, secret_access_key) == 0 &&
        ((!c->token && !session_token) || (c->token && session_token && !strcmp(c->token, session_token))))
        return 0;
    if (replace(&c->akid, access_key_id) || replace(&c->secret, secret_access_key) ||
        replace(&c->token, session_token && *session_token ? session_token : NULL))
        return -1;
    return 0;
}

cJSON *ef_emr_client_attempt(struct ef_emr_client *c, const char *operation, const cJSON *params,
                             struct ef_emr_error *err, int *kind, char *request_id, size_t size)
{
    struct ef_emr_request rq;
    *kind = EF_EMR_NO_RETRY;
    if (request_id && size)
        request_id[0] = '\0';
    if (prepare(c, &rq, operation, params, err, 0))
        return NULL;
    cJSON *out = NULL;
    uint64_t id;
    if (ef_emr_client_send(c, &rq, &id, err) == 0) {
        char msg[256];
        const struct ef_http_xfer *x;
        while (!(x = ef_http_done_peek(c->http)))
            if (ef_http_step(c->http, 1000, msg, sizeof msg) != EF_HTTP_ADD_OK) {
                ef_http_cancel(c->http, id);
                set_error(err, "http", "%s", msg);
                break;
            }
        if (x) {
            struct ef_http_result r;
            ef_http_result_of(x, &r);
            struct ef_emr_header hs[64];
            size_t n = r.nheaders < 64 ? r.nheaders : 64;
            for (size_t i = 0; i < n; i++) {
                struct ef_http_header h;
                ef_http_header_at(x, i, &h);
                hs[i] = (struct ef_emr_header){ h.name, h.name_len, h.value, h.value_len };
            }
            if (request_id && size)
                ef_emr_request_id(hs, n, request_id, size);
            if (r.err == EF_HTTP_OK && r.status >= 200 && r.status < 300) {
                out = ef_emr_reply(rq.op, r.status, r.body, r.body_len, err);
                if (out)
                    ef_emr_pascalize(rq.op->output, out);
                else if (request_id)
                    snprintf(err->request_id, sizeof err->request_id, "%s", request_id);
            } else if (r.err == EF_HTTP_OK) {
                ef_emr_parse_error(r.status, hs, n, r.body, r.body_len, err);
                *kind = ef_emr_classify("aws", err->aws_code, r.status);
            } else {
                transport_error(&r, err);
                *kind = ef_emr_classify(err->code, NULL, 0);
                err->retryable = *kind != EF_EMR_NO_RETRY;
            }
            ef_http_done_pop(c->http);
        }
    }
    ef_emr_request_free(&rq);
    return out;
}
