/* ef_http: HTTP/1.1 transfers over one libcurl multi handle (pure C, no Lua).
 *
 * A poller (struct ef_http) owns a multi handle, a small pool of easy handles and
 * every transfer it started. Transfers copy everything they are given, so callers
 * may release their inputs as soon as ef_http_add returns. Responses are buffered
 * in C by the libcurl callbacks; nothing here calls back into the caller.
 *
 * Life of a transfer: ef_http_add -> (in flight) -> ef_http_step moves it to the
 * "done" queue -> the caller reads it with ef_http_done_peek and frees it with
 * ef_http_done_pop. ef_http_cancel drops one at any point; ef_http_free drops all.
 *
 * Waiting: the poller follows libcurl's event API. libcurl's socket and timer callbacks only
 * record, in C, which sockets it wants watched and when it next needs to run; they never call
 * the caller. ef_http_step polls exactly those sockets (its own poll(2)); a host with its own
 * event loop reads them with ef_http_sockets and ef_http_timeout, waits itself, and calls
 * ef_http_step(h, 0), which never blocks.
 *
 * Connections are kept alive in the multi handle's connection cache, so N calls
 * in a row to one endpoint open one connection. TLS peer and host verification are
 * always on. Proxies come from libcurl's own environment variables: http_proxy,
 * https_proxy / HTTPS_PROXY, all_proxy / ALL_PROXY, no_proxy / NO_PROXY (libcurl
 * ignores upper-case HTTP_PROXY on purpose). localhost, 127.0.0.1 and ::1 never go
 * through a proxy (no_proxy is read when the poller is created and extended with them).
 */
#ifndef EF_HTTP_H
#define EF_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define EF_HTTP_DEFAULT_TIMEOUT_MS 60000L
#define EF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define EF_HTTP_MAX_TIMEOUT_MS 86400000L         /* one day */
#define EF_HTTP_DEFAULT_MAX_CONNECTIONS 8L
#define EF_HTTP_DEFAULT_MAX_RESPONSE_BYTES (64L * 1024 * 1024)

/* Failure kinds of a finished transfer. */
enum ef_http_err {
    EF_HTTP_OK = 0,
    EF_HTTP_ECONNECT,     /* could not connect */
    EF_HTTP_ETIMEOUT,     /* connect or whole-request timeout */
    EF_HTTP_ERESET,       /* connection reset / closed before a reply */
    EF_HTTP_ETRUNCATED,   /* body shorter than announced */
    EF_HTTP_ETLS,         /* TLS handshake or verification */
    EF_HTTP_EDNS,         /* host or proxy name not resolved */
    EF_HTTP_EHTTP         /* anything else: protocol error, too large, ... */
};

/* Results of ef_http_add / ef_http_step other than EF_HTTP_OK. */
enum ef_http_status {
    EF_HTTP_ADD_OK = 0,
    EF_HTTP_ENOMEM,
    EF_HTTP_EBADURL,      /* not an absolute http:// or https:// URL */
    EF_HTTP_EBADMETHOD,
    EF_HTTP_ECURL         /* libcurl refused (message in errbuf) */
};

struct ef_http_options {
    long max_connections;       /* per host; 0 = default */
    long max_response_bytes;    /* 0 = default */
};

struct ef_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct ef_http_request {
    const char *method;         /* "GET", "POST", ... */
    const char *url;            /* absolute http:// or https:// URL */
    const struct ef_http_header *headers;
    size_t nheaders;
    const char *body;           /* NULL = no body */
    size_t body_len;
    long timeout_ms;            /* whole request; 0 = default */
    long connect_timeout_ms;    /* 0 = default */
    const char *ca_bundle;      /* CA file (PEM) or NULL for the system store */
    int no_resend;              /* 1: the body is sent at most once per ef_http_add: when a
                                 * reused keep-alive connection turns out dead, libcurl does not
                                 * re-send it on a fresh connection by itself; the transfer ends
                                 * with EF_HTTP_ERESET (retryable) and the caller's own retry
                                 * loop decides, counting that attempt. */
};

struct ef_http_stats {
    uint64_t requests;           /* transfers started */
    uint64_t completed;          /* transfers finished (response or error) */
    uint64_t cancelled;
    uint64_t connections_opened; /* sum of CURLINFO_NUM_CONNECTS */
};

struct ef_http;
struct ef_http_xfer;

/* Creates a poller; NULL when out of memory or libcurl could not start. */
struct ef_http *ef_http_new(const struct ef_http_options *opts);
/* Cancels every transfer and frees everything. NULL is fine. */
void ef_http_free(struct ef_http *h);

/* Starts a transfer. On success stores its id (> 0) and returns EF_HTTP_ADD_OK;
 * otherwise returns a status, writes a message to errbuf, and has allocated nothing.
 * Never completes synchronously. */
int ef_http_add(struct ef_http *h, const struct ef_http_request *rq, uint64_t *id,
                char *errbuf, size_t errlen);

/* Drives the transfers: hands libcurl every socket that is ready and its timer when due,
 * moving finished transfers to the done queue; repeats, waiting for the sockets and the
 * timer, until at least one transfer has finished, timeout_ms has passed or a signal
 * interrupted the wait. timeout_ms = 0 never blocks. With no transfer in flight it simply
 * waits timeout_ms. Returns EF_HTTP_ADD_OK, or EF_HTTP_ENOMEM / EF_HTTP_ECURL. */
int ef_http_step(struct ef_http *h, long timeout_ms, char *errbuf, size_t errlen);

/* What libcurl waits for on one socket. gen changes whenever libcurl starts watching a
 * socket anew, so a host can tell a reused descriptor number from the same socket. */
enum { EF_HTTP_WANT_READ = 1, EF_HTTP_WANT_WRITE = 2 };
struct ef_http_socket {
    int fd;
    int want;                   /* EF_HTTP_WANT_READ | EF_HTTP_WANT_WRITE */
    uint64_t gen;
};

/* The sockets to watch now (libcurl's socket callback, recorded): copies up to max of them
 * into out and returns how many there are. They change after every ef_http_step. */
size_t ef_http_sockets(const struct ef_http *h, struct ef_http_socket *out, size_t max);

/* Milliseconds until ef_http_step(h, 0) is due for libcurl's timer: 0 = now, -1 = no timer
 * (libcurl's timer callback, recorded). */
long ef_http_timeout(const struct ef_http *h);

/* Drops a transfer (in flight or done); returns 1 when it existed. */
int ef_http_cancel(struct ef_http *h, uint64_t id);

/* Transfers in flight plus done ones not yet popped. */
size_t ef_http_pending(const struct ef_http *h);
void ef_http_get_stats(const struct ef_http *h, struct ef_http_stats *out);

/* The oldest done transfer, or NULL. It stays owned by the poller. */
const struct ef_http_xfer *ef_http_done_peek(const struct ef_http *h);
/* Frees the oldest done transfer. */
void ef_http_done_pop(struct ef_http *h);

/* What a done transfer produced. Pointers stay valid until it is popped. */
struct ef_http_result {
    uint64_t id;
    int err;                    /* enum ef_http_err; EF_HTTP_OK = a response */
    int retryable;              /* for errors */
    const char *message;        /* for errors */
    long status;                /* for responses */
    const char *body;
    size_t body_len;
    size_t nheaders;
};
void ef_http_result_of(const struct ef_http_xfer *x, struct ef_http_result *out);
void ef_http_header_at(const struct ef_http_xfer *x, size_t i, struct ef_http_header *out);

/* "connect", "timeout", ... for an enum ef_http_err (NULL for EF_HTTP_OK). */
const char *ef_http_errname(int err);

#endif
