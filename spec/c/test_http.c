/* Pure-C tests of ef_http: input checks, error mapping, life cycle (no server needed). */
#include "ef_test.h"
#include "ef_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback listener (never answering by itself); returns its fd and port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* One turn of a host's loop: wait on what the poller asks for (at most 200 ms), step(0). */
static void host_turn(struct ef_http *h)
{
    struct ef_http_socket socks[8];
    struct pollfd pfds[8];
    size_t n = ef_http_sockets(h, socks, 8);
    EF_CHECK(n <= 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        pfds[i].fd = socks[i].fd;
        pfds[i].events = (short)(((socks[i].want & EF_HTTP_WANT_READ) ? POLLIN : 0) |
                                 ((socks[i].want & EF_HTTP_WANT_WRITE) ? POLLOUT : 0));
        pfds[i].revents = 0;
        EF_CHECK(socks[i].want != 0 && socks[i].gen > 0);
    }
    long t = ef_http_timeout(h);
    (void)poll(pfds, n < 8 ? n : 8, t < 0 || t > 200 ? 200 : (int)t);
    char err[256];
    EF_CHECK(ef_http_step(h, 0, err, sizeof err) == EF_HTTP_ADD_OK);
}

/* A host drives a transfer with ef_http_sockets / ef_http_timeout / ef_http_step(h, 0). */
static void test_host_loop(void)
{
    int port = 0;
    int lfd = listener(&port);
    struct ef_http *h = ef_http_new(NULL);
    if (lfd < 0 || !h) {
        EF_CHECK(lfd >= 0 && h != NULL);
        ef_http_free(h);
        if (lfd >= 0)
            close(lfd);
        return;
    }
    EF_CHECK(ef_http_timeout(h) == -1);
    EF_CHECK(ef_http_sockets(h, NULL, 0) == 0);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    struct ef_http_request rq = request("GET", url);
    rq.timeout_ms = 5000;
    uint64_t id = 0;
    EF_CHECK(ef_http_add(h, &rq, &id, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(ef_http_timeout(h) == 0);              /* libcurl starts on the next step */

    /* Until the request is sent and libcurl waits to read the reply. */
    int reading = 0;
    for (int i = 0; i < 100 && !reading; i++) {
        host_turn(h);
        struct ef_http_socket sk;
        reading = ef_http_sockets(h, &sk, 1) == 1 && sk.want == EF_HTTP_WANT_READ;
    }
    EF_CHECK(reading);
    /* step(0) does not wait for the reply (nor for the 5 s timeout) */
    EF_CHECK(ef_http_step(h, 0, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(ef_http_done_peek(h) == NULL);

    int cfd = accept(lfd, NULL, NULL);
    EF_CHECK(cfd >= 0);
    char buf[1024];
    EF_CHECK(cfd >= 0 && read(cfd, buf, sizeof buf) > 0);
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    EF_CHECK(cfd >= 0 && write(cfd, reply, sizeof reply - 1) == (ssize_t)(sizeof reply - 1));
    for (int i = 0; i < 100 && !ef_http_done_peek(h); i++)
        host_turn(h);
    const struct ef_http_xfer *x = ef_http_done_peek(h);
    EF_CHECK(x != NULL);
    if (x) {
        struct ef_http_result r;
        ef_http_result_of(x, &r);
        EF_CHECK(r.id == id && r.err == EF_HTTP_OK && r.status == 200);
        EF_CHECK(r.body_len == 2 && memcmp(r.body, "ok", 2) == 0);
        ef_http_done_pop(h);
    }
    EF_CHECK(ef_http_sockets(h, NULL, 0) == 0);      /* an idle kept-alive connection */
    ef_http_free(h);
    if (cfd >= 0)
        close(cfd);
    close(lfd);
}

/* With nothing in flight, step(h, t) sleeps t (a lower bound: sleeping is never shorter). */
static void test_step_sleeps_full_time(void)
{
    struct ef_http *h = ef_http_new(NULL);
    if (!h) {
        EF_CHECK(h != NULL);
        return;
    }
    char err[256];
    long long t0 = mono_ms();
    EF_CHECK(ef_http_step(h, 120, err, sizeof err) == EF_HTTP_ADD_OK);
    EF_CHECK(mono_ms() - t0 >= 119);
    ef_http_free(h);
}

int main(void)
{
    EF_RUN(test_errnames);
    EF_RUN(test_rejects_bad_input);
    EF_RUN(test_connect_refused);
    EF_RUN(test_cancel_and_free_in_flight);
    EF_RUN(test_step_without_transfers_waits);
    EF_RUN(test_host_loop);
    EF_RUN(test_step_sleeps_full_time);
    return EF_DONE();
}
