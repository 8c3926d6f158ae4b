/* ef_http: HTTP/1.1 transfers over one libcurl multi handle. See ef_http.h. */
#include "ef_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EASY_POOL_MAX 16
#define XFER_POOL_MAX 16
#define KEEP_BUF_MAX (64 * 1024)         /* larger buffers are not kept for reuse */

struct hdr {                    /* offsets into xfer->hbuf */
    size_t name_off, name_len, value_off, value_len;
};

struct ef_http_xfer {
    struct ef_http_xfer *prev, *next;   /* in h->active or h->done */
    struct ef_http *h;
    CURL *easy;                         /* NULL once done */
    CURLU *url;                         /* the parsed URL (CURLOPT_CURLU), until freed */
    /* request headers: one block of curl_slist nodes followed by their lines (ours,
     * freed with free(); libcurl only reads an HTTPHEADER list) */
    struct curl_slist *slist;           /* the block */
    size_t slist_cap;
    struct curl_slist *hlist;           /* the list in it; NULL for none */
    uint64_t id;
    CURLcode result;
    long status;
    int too_large, oom;
    /* request body fed by on_read (no_resend transfers only) */
    char *req;
    size_t req_len, req_off, req_cap;
    /* response body */
    char *body;
    size_t body_len, body_cap;
    /* response headers: names and values in hbuf, index in hdrs */
    char *hbuf;
    size_t hbuf_len, hbuf_cap;
    struct hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    char message[CURL_ERROR_SIZE + 64];
    char errbuf[CURL_ERROR_SIZE];
};

struct list {
    struct ef_http_xfer *first, *last;
    size_t n;
};

struct ef_http {
    CURLM *multi;
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
    struct ef_http_xfer *spare[XFER_POOL_MAX];  /* freed transfers, buffers kept */
    size_t nspare;
    struct list active, done;
    uint64_t next_id;
    long max_response_bytes;
    char *noproxy;              /* no_proxy from the environment plus loopback names */
    /* The last URL that passed parse_url and its parsed form: a request to the same URL
     * (polling) gets a copy instead of a second parse. */
    char *last_url;
    CURLU *last_u;
    struct ef_http_stats stats;
    /* What libcurl asked for through its socket and timer callbacks. */
    struct ef_http_socket *socks;
    size_t nsocks, socks_cap;
    uint64_t next_gen;
    int64_t timer_at_us;        /* monotonic time libcurl's timer is due; -1 = none */
    int socks_oom;              /* the socket callback could not record a socket */
    struct pollfd *pfds;        /* poll(2) array, sized with socks */
    size_t pfds_cap;
};

static void list_push(struct list *l, struct ef_http_xfer *x)
{
    x->next = NULL;
    x->prev = l->last;
    if (l->last)
        l->last->next = x;
    else
        l->first = x;
    l->last = x;
    l->n++;
}

static void list_unlink(struct list *l, struct ef_http_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->first = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->last = x->prev;
    x->prev = x->next = NULL;
    l->n--;
}

static void set_err(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
}

/* ---- what libcurl waits for ------------------------------------------ */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Index of fd in h->socks, or h->nsocks when libcurl does not watch it. */
static size_t sock_find(const struct ef_http *h, curl_socket_t fd)
{
    size_t i = 0;
    while (i < h->nsocks && h->socks[i].fd != fd)
        i++;
    return i;
}

/* Room for n recorded sockets and as many pollfds. */
static int reserve_socks(struct ef_http *h, size_t n)
{
    if (n <= h->socks_cap && n <= h->pfds_cap)
        return 1;
    size_t cap = h->socks_cap > h->pfds_cap ? h->socks_cap : h->pfds_cap;
    if (cap < 8)
        cap = 8;
    while (cap < n)
        cap *= 2;
    if (cap > h->socks_cap) {
        struct ef_http_socket *ns = realloc(h->socks, cap * sizeof *ns);
        if (!ns)
            return 0;
        h->socks = ns;
        h->socks_cap = cap;
    }
    if (cap > h->pfds_cap) {
        struct pollfd *np = realloc(h->pfds, cap * sizeof *np);
        if (!np)
            return 0;
        h->pfds = np;
        h->pfds_cap = cap;
    }
    return 1;
}

/* libcurl's socket callback: records what it wants for s. Runs inside libcurl: it only
 * updates h->socks, never calls anyone. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct ef_http *h = userp;
    (void)easy;
    (void)socketp;
    size_t i = sock_find(h, s);
    if (what == CURL_POLL_REMOVE) {
        if (i < h->nsocks)
            h->socks[i] = h->socks[--h->nsocks];
        return 0;
    }
    int want = ((what & CURL_POLL_IN) ? EF_HTTP_WANT_READ : 0) |
               ((what & CURL_POLL_OUT) ? EF_HTTP_WANT_WRITE : 0);
    if (i < h->nsocks) {
        h->socks[i].want = want;
        return 0;
    }
    if (!reserve_socks(h, h->nsocks + 1)) {
        h->socks_oom = 1;               /* reported by the step running now */
        return 0;
    }
    h->socks[h->nsocks].fd = s;
    h->socks[h->nsocks].want = want;
    h->socks[h->nsocks].gen = ++h->next_gen;
    h->nsocks++;
    return 0;
}

/* libcurl's timer callback: records when it next needs CURL_SOCKET_TIMEOUT. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct ef_http *h = userp;
    (void)multi;
    h->timer_at_us = timeout_ms < 0 ? -1 : mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

/* ---- easy handle pool -------------------------------------------------- */

static CURL *easy_get(struct ef_http *h)
{
    if (h->npool)
        return h->pool[--h->npool];
    return curl_easy_init();
}

static void easy_put(struct ef_http *h, CURL *e)
{
    if (h->npool < EASY_POOL_MAX) {
        curl_easy_reset(e);
        h->pool[h->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* ---- transfers --------------------------------------------------------- */

static void xfer_destroy(struct ef_http_xfer *x)
{
    free(x->slist);
    free(x->req);
    free(x->body);
    free(x->hbuf);
    free(x->hdrs);
    free(x);
}

/* A transfer in its initial state: a recycled one (its buffers kept) or a new one. */
static struct ef_http_xfer *xfer_new(struct ef_http *h)
{
    struct ef_http_xfer *x;
    if (h->nspare) {
        x = h->spare[--h->nspare];
        x->prev = x->next = NULL;
        x->easy = NULL;
        x->url = NULL;
        x->id = 0;
        x->result = CURLE_OK;
        x->status = 0;
        x->too_large = x->oom = 0;
        x->body_len = x->hbuf_len = x->nhdrs = 0;
        x->req_len = x->req_off = 0;
        x->message[0] = '\0';
        x->errbuf[0] = '\0';
        return x;
    }
    x = calloc(1, sizeof *x);
    if (x)
        x->h = h;
    return x;
}

/* Frees x's transfer state; x itself (with buffers of a reasonable size) is kept for the
 * next transfer. Its easy handle must have been released (or never attached). */
static void xfer_free(struct ef_http_xfer *x)
{
    if (!x)
        return;
    curl_url_cleanup(x->url);
    x->url = NULL;
    struct ef_http *h = x->h;
    if (h->nspare == XFER_POOL_MAX || x->body_cap > KEEP_BUF_MAX || x->hbuf_cap > KEEP_BUF_MAX ||
        x->req_cap > KEEP_BUF_MAX ||
        x->hdrs_cap > 256 || x->slist_cap > KEEP_BUF_MAX) {
        xfer_destroy(x);
        return;
    }
    h->spare[h->nspare++] = x;
}

/* Detaches x's easy handle from the multi handle and returns it to the pool. */
static void xfer_release_easy(struct ef_http *h, struct ef_http_xfer *x)
{
    if (x->easy) {
        curl_multi_remove_handle(h->multi, x->easy);
        easy_put(h, x->easy);
        x->easy = NULL;
    }
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need) {
        if (ncap > ((size_t)-1) / 2)
            return 0;
        ncap *= 2;
    }
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return 0;
    *buf = nb;
    *cap = ncap;
    return 1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct ef_http_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > (size_t)x->h->max_response_bytes - x->body_len) {
        x->too_large = 1;
        return 0;                       /* CURLE_WRITE_ERROR */
    }
    if (!grow(&x->body, &x->body_cap, x->body_len + n)) {
        x->oom = 1;
        return 0;
    }
    memcpy(x->body + x->body_len, data, n);
    x->body_len += n;
    return n;
}

/* The request body of a no_resend transfer, handed to libcurl once. */
static size_t on_read(char *out, size_t size, size_t nitems, void *ud)
{
    struct ef_http_xfer *x = ud;
    size_t n = size * nitems, left = x->req_len - x->req_off;
    if (n > left)
        n = left;
    memcpy(out, x->req + x->req_off, n);
    x->req_off += n;
    return n;
}

/* libcurl seeks back only to send the body again (its silent retry on a dead reused
 * connection): refusing makes the transfer fail with CURLE_SEND_FAIL_REWIND instead. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    (void)ud;
    (void)offset;
    (void)origin;
    return CURL_SEEKFUNC_CANTSEEK;
}

/* Sizes the body buffer for an announced Content-Length (a hint: failures are ignored,
 * on_body grows the buffer as needed and enforces the limit). */
static void reserve_body(struct ef_http_xfer *x, const char *v, size_t n)
{
    size_t len = 0;
    if (n == 0 || n > 18)
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        len = len * 10 + (size_t)(v[i] - '0');
    }
    if (len > (size_t)x->h->max_response_bytes)
        return;
    (void)grow(&x->body, &x->body_cap, len);
}

static int hbuf_add(struct ef_http_xfer *x, const char *s, size_t n)
{
    if (!grow(&x->hbuf, &x->hbuf_cap, x->hbuf_len + n + 1))
        return 0;
    memcpy(x->hbuf + x->hbuf_len, s, n);
    x->hbuf_len += n;
    return 1;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    struct ef_http_xfer *x = ud;
    size_t total = size * nitems, n = total;
    while (n && (data[n - 1] == '\r' || data[n - 1] == '\n'))
        n--;
    if (n == 0)
        return total;                   /* the blank line ending a header block */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->nhdrs = 0;                   /* a new response (after 1xx): start over */
        x->hbuf_len = 0;
        return total;
    }
    if (is_ws(data[0])) {               /* obsolete line folding: extend the last value */
        if (x->nhdrs == 0)
            return total;
        size_t b = 0;
        while (b < n && is_ws(data[b]))
            b++;
        struct hdr *last = &x->hdrs[x->nhdrs - 1];
        if (last->value_off + last->value_len != x->hbuf_len)
            return total;
        if (!hbuf_add(x, " ", 1) || !hbuf_add(x, data + b, n - b)) {
            x->oom = 1;
            return 0;
        }
        last->value_len = x->hbuf_len - last->value_off;
        return total;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon || colon == data)
        return total;                   /* not a header line: ignore */
    size_t nlen = (size_t)(colon - data);
    size_t vb = nlen + 1, ve = n;
    while (vb < ve && is_ws(data[vb]))
        vb++;
    while (ve > vb && is_ws(data[ve - 1]))
        ve--;
    if (x->nhdrs == x->hdrs_cap) {
        size_t ncap = x->hdrs_cap ? x->hdrs_cap * 2 : 16;
        struct hdr *nh = realloc(x->hdrs, ncap * sizeof *nh);
        if (!nh) {
            x->oom = 1;
            return 0;
        }
        x->hdrs = nh;
        x->hdrs_cap = ncap;
    }
    if (nlen == 14 && x->body_len == 0 && curl_strnequal(data, "Content-Length", 14))
        reserve_body(x, data + vb, ve - vb);
    struct hdr hd;
    hd.name_off = x->hbuf_len;
    hd.name_len = nlen;
    if (!hbuf_add(x, data, nlen)) {
        x->oom = 1;
        return 0;
    }
    hd.value_off = x->hbuf_len;
    hd.value_len = ve - vb;
    if (!hbuf_add(x, data + vb, ve - vb)) {
        x->oom = 1;
        return 0;
    }
    x->hdrs[x->nhdrs++] = hd;
    return total;
}

static int valid_method(const char *m)
{
    size_t n = 0;
    for (; m[n]; n++) {
        unsigned char c = (unsigned char)m[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return n > 0 && n <= 32;
}

/* Parses url as libcurl would for this transfer (CURLU_PATH_AS_IS: the path is sent as
 * signed) and checks it is an absolute http(s) URL with a host. On success *out owns the
 * parsed URL, which the transfer hands to libcurl (CURLOPT_CURLU) instead of the text, so
 * libcurl does not parse it a second time. */
static int parse_url(const char *url, CURLU **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    CURLU *u = curl_url();
    if (!u) {
        set_err(errbuf, errlen, "out of memory");
        return EF_HTTP_ENOMEM;
    }
    int rc = EF_HTTP_ADD_OK;
    char *scheme = NULL, *host = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        set_err(errbuf, errlen, "out of memory");
        rc = EF_HTTP_ENOMEM;
    } else if (uc != CURLUE_OK) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "bad url (%s)", curl_url_strerror(uc));
        rc = EF_HTTP_EBADURL;
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        set_err(errbuf, errlen, "bad url (the scheme must be http or https)");
        rc = EF_HTTP_EBADURL;
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        set_err(errbuf, errlen, "bad url (no host)");
        rc = EF_HTTP_EBADURL;
    }
    curl_free(scheme);
    curl_free(host);
    if (rc == EF_HTTP_ADD_OK)
        *out = u;
    else
        curl_url_cleanup(u);
    return rc;
}

/* Like parse_url, from the poller's last parsed URL when it is the same text. */
static int parse_url_cached(struct ef_http *h, const char *url, CURLU **out, char *errbuf,
                            size_t errlen)
{
    if (h->last_url && strcmp(h->last_url, url) == 0) {
        *out = curl_url_dup(h->last_u);
        if (!*out) {
            set_err(errbuf, errlen, "out of memory");
            return EF_HTTP_ENOMEM;
        }
        return EF_HTTP_ADD_OK;
    }
    int rc = parse_url(url, out, errbuf, errlen);
    if (rc != EF_HTTP_ADD_OK)
        return rc;
    /* Remember it (best effort: without memory there is simply no cache). */
    size_t n = strlen(url) + 1;
    char *copy = malloc(n);
    CURLU *u = copy ? curl_url_dup(*out) : NULL;
    if (!u) {
        free(copy);
        return EF_HTTP_ADD_OK;
    }
    memcpy(copy, url, n);
    free(h->last_url);
    curl_url_cleanup(h->last_u);
    h->last_url = copy;
    h->last_u = u;
    return EF_HTTP_ADD_OK;
}

static int has_header(const struct ef_http_request *rq, const char *name, size_t n)
{
    for (size_t i = 0; i < rq->nheaders; i++) {
        const struct ef_http_header *hd = &rq->headers[i];
        if (hd->name_len != n)
            continue;
        size_t k = 0;
        for (; k < n; k++) {
            char a = hd->name[k], b = name[k];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (char)(b - 'A' + 'a');
            if (a != b)
                break;
        }
        if (k == n)
            return 1;
    }
    return 0;
}

/* Headers libcurl would add by itself and that nobody signed: "Name:" removes them. */
static const char *const suppressed[] = { "Expect:", "Accept:", "Content-Type:" };
#define NSUPPRESSED (sizeof suppressed / sizeof suppressed[0])

/* Builds x->slist: the caller's headers as "name: value" lines ("name;" for an empty
 * value, libcurl's spelling), then the suppressions, as one block (nodes, then text)
 * reused from the transfer's previous life when it is large enough. */
static int build_headers(struct ef_http_xfer *x, const struct ef_http_request *rq)
{
    int skip[NSUPPRESSED];
    size_t n = rq->nheaders, text = 0;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const struct ef_http_header *hd = &rq->headers[i];
        if (hd->name_len > ((size_t)-1) / 4 || hd->value_len > ((size_t)-1) / 4)
            return 0;
        text += hd->name_len + 2 + hd->value_len + 1;
    }
    for (size_t k = 0; k < NSUPPRESSED; k++) {
        size_t len = strlen(suppressed[k]);
        skip[k] = has_header(rq, suppressed[k], len - 1);
        if (!skip[k]) {
            n++;
            text += len + 1;
        }
    }
    x->hlist = NULL;
    if (n == 0)
        return 1;
    size_t need = n * sizeof(struct curl_slist) + text;
    if (need > x->slist_cap) {
        free(x->slist);
        x->slist = malloc(need);
        x->slist_cap = x->slist ? need : 0;
        if (!x->slist)
            return 0;
    }
    struct curl_slist *nodes = x->slist;
    char *p = (char *)(nodes + n);
    size_t j = 0;
    for (size_t i = 0; i < rq->nheaders; i++, j++) {
        const struct ef_http_header *hd = &rq->headers[i];
        nodes[j].data = p;
        nodes[j].next = &nodes[j + 1];
        memcpy(p, hd->name, hd->name_len);
        p += hd->name_len;
        if (hd->value_len == 0) {
            *p++ = ';';
        } else {
            *p++ = ':';
            *p++ = ' ';
            memcpy(p, hd->value, hd->value_len);
            p += hd->value_len;
        }
        *p++ = '\0';
    }
    for (size_t k = 0; k < NSUPPRESSED; k++) {
        if (skip[k])
            continue;
        size_t len = strlen(suppressed[k]) + 1;
        nodes[j].data = p;
        nodes[j].next = &nodes[j + 1];
        memcpy(p, suppressed[k], len);
        p += len;
        j++;
    }
    nodes[n - 1].next = NULL;
    x->hlist = nodes;
    return 1;
}

static int method_is(const char *m, const char *w)
{
    return strcmp(m, w) == 0;
}

#define SETOPT(opt, val)                                     \
    do {                                                     \
        if ((cc = curl_easy_setopt(e, opt, val)) != CURLE_OK) \
            goto curl_fail;                                  \
    } while (0)

int ef_http_add(struct ef_http *h, const struct ef_http_request *rq, uint64_t *id,
                char *errbuf, size_t errlen)
{
    CURLcode cc = CURLE_OK;
    if (!rq->method || !valid_method(rq->method)) {
        set_err(errbuf, errlen, "bad method (expected an HTTP token such as GET or POST)");
        return EF_HTTP_EBADMETHOD;
    }
    if (!rq->url) {
        set_err(errbuf, errlen, "bad url (missing)");
        return EF_HTTP_EBADURL;
    }
    CURLU *u;
    int rc = parse_url_cached(h, rq->url, &u, errbuf, errlen);
    if (rc != EF_HTTP_ADD_OK)
        return rc;

    /* Room for the sockets of every transfer (a connect may try two addresses at once), so
     * the socket callback seldom has to allocate. */
    if (!reserve_socks(h, 2 * (h->active.n + 1) + 2)) {
        curl_url_cleanup(u);
        goto oom_nofree;
    }
    struct ef_http_xfer *x = xfer_new(h);
    if (!x) {
        curl_url_cleanup(u);
        goto oom;
    }
    x->url = u;                         /* freed with x */
    if (!build_headers(x, rq))
        goto oom;
    CURL *e = x->easy = easy_get(h);
    if (!e)
        goto oom;

    long timeout = rq->timeout_ms > 0 ? rq->timeout_ms : EF_HTTP_DEFAULT_TIMEOUT_MS;
    long ctimeout = rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms
                                               : EF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_CURLU, x->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_PATH_AS_IS, 1L);             /* send the path exactly as signed */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_ACCEPT_ENCODING, (char *)NULL);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (rq->ca_bundle)
        SETOPT(CURLOPT_CAINFO, rq->ca_bundle);
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    /* Our headers (Authorization...) never go to a proxy in a CONNECT request. */
    SETOPT(CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
    if (h->noproxy)
        SETOPT(CURLOPT_NOPROXY, h->noproxy);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, ctimeout < timeout ? ctimeout : timeout);
    SETOPT(CURLOPT_HTTPHEADER, x->hlist);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);

    /* The body as given, for any method. A GET/HEAD/DELETE with an empty body has none. */
    int send_body = rq->body != NULL &&
                    (rq->body_len > 0 || !(method_is(rq->method, "GET") ||
                                           method_is(rq->method, "HEAD") ||
                                           method_is(rq->method, "DELETE")));
    if (method_is(rq->method, "HEAD") && !send_body) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (method_is(rq->method, "GET") && !send_body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        SETOPT(CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (send_body && rq->no_resend) {
        if (rq->body_len > x->req_cap && !grow(&x->req, &x->req_cap, rq->body_len))
            goto oom;
        if (rq->body_len)
            memcpy(x->req, rq->body, rq->body_len);
        x->req_len = rq->body_len;
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        SETOPT(CURLOPT_READFUNCTION, on_read);
        SETOPT(CURLOPT_READDATA, (void *)x);
        SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(CURLOPT_SEEKDATA, (void *)x);
    } else if (send_body) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        SETOPT(CURLOPT_COPYPOSTFIELDS, rq->body_len ? rq->body : "");
    }

    CURLMcode mc = curl_multi_add_handle(h->multi, e);
    if (mc != CURLM_OK) {
        easy_put(h, e);
        x->easy = NULL;
        xfer_free(x);
        if (mc == CURLM_OUT_OF_MEMORY)
            goto oom_nofree;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "libcurl: %s", curl_multi_strerror(mc));
        return EF_HTTP_ECURL;
    }
    x->id = ++h->next_id;
    list_push(&h->active, x);
    h->stats.requests++;
    *id = x->id;
    return EF_HTTP_ADD_OK;

curl_fail:
    if (x->easy)
        easy_put(h, x->easy);
    x->easy = NULL;
    xfer_free(x);
    if (cc == CURLE_OUT_OF_MEMORY)
        goto oom_nofree;
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "libcurl refused an option: %s", curl_easy_strerror(cc));
    return EF_HTTP_ECURL;
oom:
    if (x && x->easy)
        easy_put(h, x->easy);
    if (x)
        x->easy = NULL;
    xfer_free(x);
oom_nofree:
    set_err(errbuf, errlen, "out of memory");
    return EF_HTTP_ENOMEM;
}

#undef SETOPT

/* ---- the poller -------------------------------------------------------- */

static void global_init_once(void)
{
    static int done;
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
            done = 1;
    }
}

/* no_proxy as libcurl reads it (lower case first), plus the loopback names: a proxy can
 * never reach this machine's loopback interface. "*" stays "*". */
static char *make_noproxy(void)
{
    static const char loopback[] = "localhost,127.0.0.1,::1";
    const char *env = getenv("no_proxy");
    if (!env || !env[0])
        env = getenv("NO_PROXY");
    if (!env)
        env = "";
    if (strcmp(env, "*") == 0)
        return NULL;            /* libcurl's own reading already bypasses everything */
    size_t n = strlen(env);
    char *s = malloc(n + sizeof loopback + 1);
    if (!s)
        return NULL;
    if (n)
        snprintf(s, n + sizeof loopback + 1, "%s,%s", env, loopback);
    else
        memcpy(s, loopback, sizeof loopback);
    return s;
}

struct ef_http *ef_http_new(const struct ef_http_options *opts)
{
    global_init_once();
    struct ef_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return NULL;
    }
    h->noproxy = make_noproxy();
    long maxc = opts && opts->max_connections > 0 ? opts->max_connections
                                                  : EF_HTTP_DEFAULT_MAX_CONNECTIONS;
    h->max_response_bytes = opts && opts->max_response_bytes > 0
                                ? opts->max_response_bytes
                                : EF_HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxc);
    /* The connection cache keeps idle connections for a few hosts (EMR, STS, IMDS). */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, maxc * 4);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    h->timer_at_us = -1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
    return h;
}

void ef_http_free(struct ef_http *h)
{
    if (!h)
        return;
    struct ef_http_xfer *x;
    while ((x = h->active.first)) {
        list_unlink(&h->active, x);
        xfer_release_easy(h, x);
        xfer_free(x);
    }
    while ((x = h->done.first)) {
        list_unlink(&h->done, x);
        xfer_free(x);
    }
    while (h->npool)
        curl_easy_cleanup(h->pool[--h->npool]);
    while (h->nspare)
        xfer_destroy(h->spare[--h->nspare]);
    curl_multi_cleanup(h->multi);       /* may still call on_socket: h stays valid */
    free(h->socks);
    free(h->pfds);
    free(h->last_url);
    curl_url_cleanup(h->last_u);
    free(h->noproxy);
    free(h);
}

static int classify(const struct ef_http_xfer *x, int *retryable)
{
    *retryable = 0;
    if (x->oom || x->too_large)
        return EF_HTTP_EHTTP;
    switch (x->result) {
    case CURLE_OK:
        return EF_HTTP_OK;
    case CURLE_COULDNT_CONNECT:
        *retryable = 1;
        return EF_HTTP_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        *retryable = 1;
        return EF_HTTP_ETIMEOUT;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_FAIL_REWIND:        /* a no_resend body libcurl wanted to send again */
        *retryable = 1;
        return EF_HTTP_ERESET;
    case CURLE_PARTIAL_FILE:
        *retryable = 1;
        return EF_HTTP_ETRUNCATED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EF_HTTP_EDNS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return EF_HTTP_ETLS;
    default:
        return EF_HTTP_EHTTP;
    }
}

static void finish(struct ef_http *h, CURL *easy, CURLcode result)
{
    struct ef_http_xfer *x = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK || !x)
        return;
    x->result = result;
    long st = 0, nconn = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK)
        x->status = st;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
        h->stats.connections_opened += (uint64_t)nconn;
    int retryable;
    int err = classify(x, &retryable);
    if (err != EF_HTTP_OK) {
        const char *detail;
        if (x->oom)
            detail = "out of memory while receiving the response";
        else if (x->too_large)
            detail = NULL;
        else if (result == CURLE_SEND_FAIL_REWIND)
            detail = "connection closed before a reply (the request was not re-sent)";
        else
            detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(result);
        if (detail)
            snprintf(x->message, sizeof x->message, "%s", detail);
        else
            snprintf(x->message, sizeof x->message, "response body larger than %ld bytes",
                     h->max_response_bytes);
    }
    xfer_release_easy(h, x);
    list_unlink(&h->active, x);
    list_push(&h->done, x);
    h->stats.completed++;
}

static void collect(struct ef_http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg == CURLMSG_DONE) {
            CURL *easy = msg->easy_handle;
            CURLcode result = msg->data.result;     /* msg is invalid after removal */
            finish(h, easy, result);
        }
    }
}

static int multi_fail(CURLMcode mc, char *errbuf, size_t errlen)
{
    if (mc == CURLM_OUT_OF_MEMORY) {
        set_err(errbuf, errlen, "out of memory");
        return EF_HTTP_ENOMEM;
    }
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "libcurl: %s", curl_multi_strerror(mc));
    return EF_HTTP_ECURL;
}

/* Hands libcurl every watched socket poll(2) found ready, then its timer when due. */
static int dispatch(struct ef_http *h, nfds_t n, char *errbuf, size_t errlen)
{
    int running = 0;
    CURLMcode mc;
    for (nfds_t i = 0; i < n; i++) {
        short re = h->pfds[i].revents;
        /* An earlier action may have made libcurl drop this socket: skip it then. */
        if (!re || sock_find(h, h->pfds[i].fd) == h->nsocks)
            continue;
        int ev = 0;
        if (re & (POLLIN | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (re & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(h->multi, h->pfds[i].fd, ev, &running);
        if (mc != CURLM_OK)
            return multi_fail(mc, errbuf, errlen);
    }
    if (h->timer_at_us >= 0 && h->timer_at_us <= mono_us()) {
        mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (mc != CURLM_OK)
            return multi_fail(mc, errbuf, errlen);
    }
    collect(h);
    if (h->socks_oom) {
        h->socks_oom = 0;
        set_err(errbuf, errlen, "out of memory (recording a socket)");
        return EF_HTTP_ENOMEM;
    }
    return EF_HTTP_ADD_OK;
}

/* Waits up to wait_ms (less when libcurl's timer is due sooner) for the sockets libcurl
 * watches, then dispatches. A signal ends the wait early and sets *interrupted. */
static int drive(struct ef_http *h, long wait_ms, int *interrupted, char *errbuf, size_t errlen)
{
    long t = ef_http_timeout(h);
    if (t >= 0 && t < wait_ms)
        wait_ms = t;
    if (!reserve_socks(h, h->nsocks)) {
        set_err(errbuf, errlen, "out of memory");
        return EF_HTTP_ENOMEM;
    }
    nfds_t n = 0;
    for (size_t i = 0; i < h->nsocks; i++) {
        const struct ef_http_socket *sk = &h->socks[i];
        if (!sk->want)
            continue;
        h->pfds[n].fd = sk->fd;
        h->pfds[n].events = (short)(((sk->want & EF_HTTP_WANT_READ) ? POLLIN : 0) |
                                    ((sk->want & EF_HTTP_WANT_WRITE) ? POLLOUT : 0));
        h->pfds[n].revents = 0;
        n++;
    }
    if (poll(n ? h->pfds : NULL, n, (int)wait_ms) < 0) {
        if (errno != EINTR) {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "poll: %s", strerror(errno));
            return EF_HTTP_ECURL;
        }
        *interrupted = 1;
        for (nfds_t i = 0; i < n; i++)
            h->pfds[i].revents = 0;
    }
    return dispatch(h, n, errbuf, errlen);
}

int ef_http_step(struct ef_http *h, long timeout_ms, char *errbuf, size_t errlen)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (timeout_ms > EF_HTTP_MAX_TIMEOUT_MS)
        timeout_ms = EF_HTTP_MAX_TIMEOUT_MS;
    size_t done_before = h->done.n;
    int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t left = deadline - mono_us();
        int interrupted = 0;
        int rc = drive(h, left > 0 ? (long)((left + 999) / 1000) : 0, &interrupted, errbuf,
                       errlen);
        if (rc != EF_HTTP_ADD_OK)
            return rc;
        if (h->done.n != done_before || interrupted || mono_us() >= deadline)
            return EF_HTTP_ADD_OK;
    }
}

size_t ef_http_sockets(const struct ef_http *h, struct ef_http_socket *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nsocks; i++) {
        if (!h->socks[i].want)
            continue;
        if (n < max)
            out[n] = h->socks[i];
        n++;
    }
    return n;
}

long ef_http_timeout(const struct ef_http *h)
{
    if (h->timer_at_us < 0)
        return -1;
    int64_t left = h->timer_at_us - mono_us();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999) / 1000;           /* never report "due" before it is */
    return ms > EF_HTTP_MAX_TIMEOUT_MS ? EF_HTTP_MAX_TIMEOUT_MS : (long)ms;
}

int ef_http_cancel(struct ef_http *h, uint64_t id)
{
    struct ef_http_xfer *x;
    for (x = h->active.first; x; x = x->next) {
        if (x->id == id) {
            list_unlink(&h->active, x);
            xfer_release_easy(h, x);
            xfer_free(x);
            h->stats.cancelled++;
            return 1;
        }
    }
    for (x = h->done.first; x; x = x->next) {
        if (x->id == id) {
            list_unlink(&h->done, x);
            xfer_free(x);
            h->stats.cancelled++;
            return 1;
        }
    }
    return 0;
}

size_t ef_http_pending(const struct ef_http *h)
{
    return h->active.n + h->done.n;
}

void ef_http_get_stats(const struct ef_http *h, struct ef_http_stats *out)
{
    *out = h->stats;
}

const struct ef_http_xfer *ef_http_done_peek(const struct ef_http *h)
{
    return h->done.first;
}

void ef_http_done_pop(struct ef_http *h)
{
    struct ef_http_xfer *x = h->done.first;
    if (x) {
        list_unlink(&h->done, x);
        xfer_free(x);
    }
}

void ef_http_result_of(const struct ef_http_xfer *x, struct ef_http_result *out)
{
    int retryable;
    memset(out, 0, sizeof *out);
    out->id = x->id;
    out->err = classify(x, &retryable);
    if (out->err != EF_HTTP_OK) {
        out->retryable = retryable;
        out->message = x->message;
        return;
    }
    out->status = x->status;
    out->body = x->body ? x->body : "";
    out->body_len = x->body_len;
    out->nheaders = x->nhdrs;
}

void ef_http_header_at(const struct ef_http_xfer *x, size_t i, struct ef_http_header *out)
{
    const struct hdr *hd = &x->hdrs[i];
    out->name = x->hbuf + hd->name_off;
    out->name_len = hd->name_len;
    out->value = x->hbuf + hd->value_off;
    out->value_len = hd->value_len;
}

const char *ef_http_errname(int err)
{
    switch (err) {
    case EF_HTTP_ECONNECT: return "connect";
    case EF_HTTP_ETIMEOUT: return "timeout";
    case EF_HTTP_ERESET: return "reset";
    case EF_HTTP_ETRUNCATED: return "truncated";
    case EF_HTTP_ETLS: return "tls";
    case EF_HTTP_EDNS: return "dns";
    case EF_HTTP_EHTTP: return "http";
    default: return NULL;
    }
}
