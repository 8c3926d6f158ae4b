/* Pure-C tests of ef_http: input checks, error mapping, life cycle (no server needed). */
#include "ef_test.h"
#include "ef_http.h"

#include <stdint.h>

static struct ef_http_request request(const char *method, const char *url)
{
    struct ef_http_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = method;
    rq.url = url;
    return rq;
}

/* Steps until the done queue is non-empty (at most ~10 s). */
static const struct ef_http_xfer *wait_done(struct ef_http *h)
{
    char err[256];
    for (int i = 0; i < 200 && !ef_http_done_peek(h); i++)
        EF_CHECK(ef_http_step(h, 50, err, sizeof err) == EF_HTTP_ADD_OK);
    return ef_http_done_peek(h);
}

static void test_errnames(void)
{
    EF_CHECK(ef_http_errname(EF_HTTP_OK) == NULL);
    EF_CHECK_STR(ef_http_errname(EF_HTTP_ECONNECT), "connect");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_ETIMEOUT), "timeout");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_ERESET), "reset");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_ETRUNCATED), "truncated");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_ETLS), "tls");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_EDNS), "dns");
    EF_CHECK_STR(ef_http_errname(EF_HTTP_EHTTP), "http");
}

static void test_rejects_bad_input(void)
{
    struct ef_http *h = ef_http_new(NULL);
    EF_CHECK(h != NULL);
    if (!h)
        return;
    static const struct {
        const char *method, *url;
        int rc;
        const char *msg;
    } cases[] = {
        { "GET", "ftp://127.0.0.1/", EF_HTTP_EBADURL, "scheme" },
        { "GET", "no scheme", EF_HTTP_EBADURL, "bad url" },
        { "GET", "", EF_HTTP_EBADURL, "bad url" },
        { "GET", NULL, EF_HTTP_EBADURL, "missing" },
        { "G ET", "http://127.0.0.1/", EF_HTTP_EBADMETHOD, "bad method" },
        { "", "http://127.0.0.1/", EF_HTTP_EBADMETHOD, "bad method" },
        { NULL, "http://127.0.0.1/", EF_HTTP_EBADMETHOD, "bad method" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ef_http_request rq = request(cases[i].method, cases[i].url);
        uint64_t id = 0;
        char err[256] = "";
        EF_CHECK(ef_http_add(h, &rq, &id, err, sizeof err) == cases[i].rc);
        EF_CHECK(strstr(err, cases[i].msg) != NULL);
        EF_CHECK(id == 0);
    }
    EF_CHECK(ef_http_pending(h) == 0);
    ef_http_free(h);
}

static void test_connect_refused(void)
{
    struct ef_http *h = ef_http_new(NULL);
    if (!h) {
        EF_CHECK(h != NULL);
        return;
    }
    struct ef_http_header hs[] = { { "X-A", 3, "1", 1 }, { "X-Empty", 7, "", 0 } };
    struct ef_http_request rq = request("POST", "http://127.0.0.1:1/x");
    rq.headers = hs;
    rq.nheaders = 2;
    rq.body = "abc";
    rq.body_len = 3;
    rq.timeout_ms = 5000;
    uint64_t id = 0;
    char err[256];
    EF_CHECK(ef_http_add(h, &rq, &id, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(id == 1);
    EF_CHECK(ef_http_pending(h) == 1);
    EF_CHECK(ef_http_done_peek(h) == NULL);       /* never synchronous */
    const struct ef_http_xfer *x = wait_done(h);
    EF_CHECK(x != NULL);
    if (x) {
        struct ef_http_result r;
        ef_http_result_of(x, &r);
        EF_CHECK(r.id == id);
        EF_CHECK(r.err == EF_HTTP_ECONNECT);
        EF_CHECK(r.retryable == 1);
        EF_CHECK(r.message && r.message[0]);
        ef_http_done_pop(h);
    }
    EF_CHECK(ef_http_pending(h) == 0);
    struct ef_http_stats st;
    ef_http_get_stats(h, &st);
    EF_CHECK(st.requests == 1 && st.completed == 1 && st.cancelled == 0);
    ef_http_free(h);
}

static void test_cancel_and_free_in_flight(void)
{
    struct ef_http *h = ef_http_new(NULL);
    if (!h) {
        EF_CHECK(h != NULL);
        return;
    }
    uint64_t ids[4];
    char err[256];
    for (int i = 0; i < 4; i++) {
        struct ef_http_request rq = request("GET", "http://127.0.0.1:1/");
        EF_CHECK(ef_http_add(h, &rq, &ids[i], err, sizeof err) == EF_HTTP_ADD_OK);
    }
    EF_CHECK(ef_http_pending(h) == 4);
    EF_CHECK(ef_http_cancel(h, ids[1]) == 1);
    EF_CHECK(ef_http_cancel(h, ids[1]) == 0);
    EF_CHECK(ef_http_cancel(h, 999) == 0);
    EF_CHECK(ef_http_pending(h) == 3);
    ef_http_free(h);                               /* three still in flight */
    ef_http_free(NULL);
}

static void test_step_without_transfers_waits(void)
{
    struct ef_http *h = ef_http_new(NULL);
    if (!h) {
        EF_CHECK(h != NULL);
        return;
    }
    char err[256];
    EF_CHECK(ef_http_step(h, 0, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(ef_http_step(h, 20, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(ef_http_done_peek(h) == NULL);
    ef_http_free(h);
}

int main(void)
{
    EF_RUN(test_errnames);
    EF_RUN(test_rejects_bad_input);
    EF_RUN(test_connect_refused);
    EF_RUN(test_cancel_and_free_in_flight);
    EF_RUN(test_step_without_transfers_waits);
    return EF_DONE();
}
