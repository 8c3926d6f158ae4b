/* core.http: the Lua binding of ef_http (libcurl multi). See doc/CONTRACTS.md "core.http".
 *
 *   local p <close> = core.http.poller{ max_connections = 8, max_response_bytes = 64 MiB }
 *       max_connections     connections per host, 1..1024 (default 8; more requests queue)
 *       max_response_bytes  1..2^31-1 (default 64 MiB); a bigger body fails with code "http"
 *   local id = p:add{ method = "GET", url = "https://h/p?q", headers = { {"Host", "h"}, ... },
 *                     body = "...", timeout_ms = 60000, connect_timeout_ms = 10000,
 *                     ca_bundle = "/path/ca.pem" }
 *       method      HTTP token (required); url absolute http(s) URL (required)
 *       headers     list of {name, value} strings, sent in order exactly as given; libcurl adds
 *                   only Host (when absent) and Content-Length (when there is a body): it never
 *                   adds Expect, Accept, Content-Type, User-Agent or Accept-Encoding
 *       body        string or nil; sent as given for any method (an empty body is sent as
 *                   "Content-Length: 0" except for GET, HEAD and DELETE, which then have none)
 *       timeout_ms  whole request, 1..86400000, default 60000
 *       connect_timeout_ms  1..86400000, default 10000 (capped at timeout_ms)
 *       ca_bundle   CA file for TLS verification (the Lua layer passes AWS_CA_BUNDLE);
 *                   verification of peer and host is always on
 *       no_resend   boolean: the body goes out at most once; where libcurl would silently
 *                   re-send it on a fresh connection (a reused keep-alive one died before a
 *                   reply), the transfer ends with code "reset" (retryable) instead.
 *                   core.http.no_silent_resend is true where this is supported.
 *     Misuse raises. add never completes synchronously; returns the transfer's id (integer).
 *     Other table fields are ignored.
 *   p:step([timeout_ms]) --> list of completions, oldest first:
 *       { id = id, response = { status = 200, headers = { {"Name", "value"}, ... }, body = "" } }
 *       { id = id, err = errobj }   errobj.code: "connect", "timeout", "reset", "truncated",
 *                                   "tls", "dns", "http"; retryable = true for connect, timeout,
 *                                   reset, truncated
 *     Returns once a transfer has finished, timeout_ms (0..86400000, default 0) has passed or
 *     a signal interrupted the wait; 0 never blocks (it only hands libcurl what is ready now).
 *     With nothing in flight it just sleeps timeout_ms. A nested p:step (e.g. from a __gc
 *     during p:step) returns nil, errobj (code "busy", message "already running").
 *   p:sockets()  --> { { fd = 7, read = true, write = false, gen = 3 }, ... }: the sockets libcurl
 *                waits on now (from its socket callback); gen changes when libcurl starts
 *                watching a descriptor anew. For hosts that wait themselves, then call p:step(0).
 *   p:timeout()  --> milliseconds until p:step(0) is due for libcurl's timer (0 = now), or nil
 *   p:cancel(id) --> true when the transfer existed (in flight or finished, not yet returned)
 *   p:pending()  --> transfers in flight plus finished ones not yet returned by step
 *   p:stats()    --> { connections_opened =, requests =, completed =, cancelled =, pending = }
 *   p:close()    same as __close / __gc: cancels everything, frees libcurl state; idempotent.
 *                Any other method on a closed poller raises "attempt to use a closed poller".
 *
 * Keep-alive: connections stay in the multi handle's cache (max_connections x 4 idle ones), so
 * N calls in a row to one endpoint use one connection. When a reused connection turns out to
 * be closed by the server before any byte of the reply arrived (a stale keep-alive connection),
 * libcurl itself sends the request again once on a new connection; any other failure comes
 * back as an error, never retried here.
 *
 * Each transfer copies what it needs (URL, headers, body) into C, so nothing on the Lua side
 * has to be kept alive while it is in flight; the poller userdata owns every transfer and
 * frees them all when collected. Proxies: libcurl reads http_proxy, https_proxy/HTTPS_PROXY,
 * all_proxy/ALL_PROXY and no_proxy/NO_PROXY itself (not upper-case HTTP_PROXY); loopback
 * (localhost, 127.0.0.1, ::1) is always reached directly (no_proxy, read when the poller is
 * created, is extended with those names).
 */
#include "l_util.h"
#include "ef_http.h"

#include <string.h>

#define POLLER_T "emrflow.Poller"
#define MAX_CONNECTIONS_LIMIT 1024
#define MAX_RESPONSE_LIMIT 2147483647L

struct l_poller {
    struct ef_http *h;      /* NULL once closed */
    int stepping;
};

static struct l_poller *check_open(lua_State *L)
{
    struct l_poller *p = luaL_checkudata(L, 1, POLLER_T);
    if (!p->h)
        luaL_error(L, "attempt to use a closed poller");
    return p;
}

/* Reads t[field] (t at idx) as an integer in [lo, hi]; nil gives def. */
static lua_Integer opt_int_field(lua_State *L, int idx, const char *field, lua_Integer lo,
                                 lua_Integer hi, lua_Integer def, const char *where)
{
    lua_getfield(L, idx, field);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        if (lua_type(L, -1) == LUA_TNUMBER)
            v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < lo || v > hi) {
            if (lua_type(L, -1) == LUA_TNUMBER)
                luaL_error(L, "%s: %s must be an integer between %I and %I (got %s)", where,
                           field, lo, hi, lua_tostring(L, -1));
            luaL_error(L, "%s: %s must be an integer between %I and %I (got %s)", where, field,
                       lo, hi, luaL_typename(L, -1));
        }
    }
    lua_pop(L, 1);
    return v;
}

/* Pushes t[field] and returns it as a string, NULL when nil; raises for other types. */
static const char *opt_str_field(lua_State *L, int idx, const char *field, size_t *len,
                                 int required, const char *where)
{
    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        if (required)
            luaL_error(L, "%s: request.%s is required (a string)", where, field);
        if (len)
            *len = 0;
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: request.%s must be a string (got %s)", where, field,
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

/* RFC 9110 tchar: the bytes allowed in a header name. */
static const unsigned char s_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* A header value may hold anything but CR, LF and NUL. */
static int value_ok(const char *v, size_t n)
{
    return strlen(v) == n && !memchr(v, '\r', n) && !memchr(v, '\n', n);
}

static int poller_new(lua_State *L)
{
    const char *where = "core.http.poller";
    struct ef_http_options o = { 0, 0 };
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        o.max_connections = (long)opt_int_field(L, 1, "max_connections", 1,
                                                MAX_CONNECTIONS_LIMIT,
                                                EF_HTTP_DEFAULT_MAX_CONNECTIONS, where);
        o.max_response_bytes = (long)opt_int_field(L, 1, "max_response_bytes", 1,
                                                   MAX_RESPONSE_LIMIT,
                                                   EF_HTTP_DEFAULT_MAX_RESPONSE_BYTES, where);
    }
    /* The owner first, then the resource: an error below leaves a closed poller. */
    struct l_poller *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->h = NULL;
    p->stepping = 0;
    luaL_setmetatable(L, POLLER_T);
    p->h = ef_http_new(&o);
    if (!p->h)
        return luaL_error(L, "%s: cannot create an HTTP poller (out of memory or libcurl "
                             "failed to start)", where);
    return 1;
}

static int poller_add(lua_State *L)
{
    const char *where = "poller:add";
    struct l_poller *p = check_open(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct ef_http_request rq;
    memset(&rq, 0, sizeof rq);
    /* Strings stay on the stack (anchored) until ef_http_add has copied them. */
    rq.method = opt_str_field(L, 2, "method", NULL, 1, where);
    rq.url = opt_str_field(L, 2, "url", NULL, 1, where);
    rq.body = opt_str_field(L, 2, "body", &rq.body_len, 0, where);
    rq.ca_bundle = opt_str_field(L, 2, "ca_bundle", NULL, 0, where);
    if (rq.ca_bundle && !rq.ca_bundle[0])
        return luaL_error(L, "%s: request.ca_bundle must be a file path (got an empty string)",
                          where);
    rq.timeout_ms = (long)opt_int_field(L, 2, "timeout_ms", 1, EF_HTTP_MAX_TIMEOUT_MS,
                                        EF_HTTP_DEFAULT_TIMEOUT_MS, where);
    rq.connect_timeout_ms = (long)opt_int_field(L, 2, "connect_timeout_ms", 1,
                                                EF_HTTP_MAX_TIMEOUT_MS,
                                                EF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS, where);
    lua_getfield(L, 2, "no_resend");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        return luaL_error(L, "%s: request.no_resend must be a boolean (got %s)", where,
                          luaL_typename(L, -1));
    rq.no_resend = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "headers");                      /* ... headers */
    int hidx = lua_gettop(L);
    if (!lua_isnil(L, hidx)) {
        if (!lua_istable(L, hidx))
            return luaL_error(L, "%s: request.headers must be a list of {name, value} pairs "
                                 "(got %s)", where, luaL_typename(L, hidx));
        lua_Unsigned n = lua_rawlen(L, hidx);
        if (n > 10000)
            return luaL_error(L, "%s: request.headers has too many entries (%I)", where,
                              (lua_Integer)n);
        struct ef_http_header *hs =
            lua_newuserdatauv(L, (n ? (size_t)n : 1) * sizeof *hs, 0);  /* ... headers buf */
        for (lua_Unsigned i = 1; i <= n; i++) {
            if (lua_rawgeti(L, hidx, (lua_Integer)i) != LUA_TTABLE)
                return luaL_error(L, "%s: request.headers[%I] must be a {name, value} pair "
                                     "(got %s)", where, (lua_Integer)i, luaL_typename(L, -1));
            struct ef_http_header *hd = &hs[i - 1];
            /* The strings live in the pair table, anchored by headers: safe to pop. */
            if (lua_rawgeti(L, -1, 1) != LUA_TSTRING || lua_rawgeti(L, -2, 2) != LUA_TSTRING)
                return luaL_error(L, "%s: request.headers[%I] must be a pair of strings "
                                     "{name, value}", where, (lua_Integer)i);
            hd->name = lua_tolstring(L, -2, &hd->name_len);
            hd->value = lua_tolstring(L, -1, &hd->value_len);
            if (hd->name_len == 0)
                return luaL_error(L, "%s: request.headers[%I] has an empty name", where,
                                  (lua_Integer)i);
            for (size_t k = 0; k < hd->name_len; k++)
                if (!s_tchar[(unsigned char)hd->name[k]])
                    return luaL_error(L, "%s: request.headers[%I] name is not a valid header "
                                         "name", where, (lua_Integer)i);
            if (!value_ok(hd->value, hd->value_len))
                return luaL_error(L, "%s: request.headers[%I] (%s) value contains CR, LF "
                                     "or NUL", where, (lua_Integer)i, hd->name);
            lua_pop(L, 3);
        }
        rq.headers = hs;
        rq.nheaders = (size_t)n;
    }
    uint64_t id = 0;
    char err[256];
    int rc = ef_http_add(p->h, &rq, &id, err, sizeof err);
    if (rc != EF_HTTP_ADD_OK)   /* nothing is allocated on failure: raising is safe */
        return luaL_error(L, "%s: %s", where, err);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static void push_completion(lua_State *L, const struct ef_http_xfer *x)
{
    struct ef_http_result r;
    ef_http_result_of(x, &r);
    lua_createtable(L, 0, 2);                           /* c */
    lua_pushinteger(L, (lua_Integer)r.id);
    lua_setfield(L, -2, "id");
    if (r.err != EF_HTTP_OK) {
        struct ef_l_error e;
        memset(&e, 0, sizeof e);
        e.code = ef_http_errname(r.err);
        e.message = r.message;
        e.retryable = r.retryable;
        ef_l_pusherror(L, &e);                          /* c err */
        lua_setfield(L, -2, "err");
        return;
    }
    lua_createtable(L, 0, 3);                           /* c resp */
    lua_pushinteger(L, (lua_Integer)r.status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, (int)(r.nheaders < 1000000 ? r.nheaders : 0), 0);  /* c resp hs */
    for (size_t i = 0; i < r.nheaders; i++) {
        struct ef_http_header hd;
        ef_http_header_at(x, i, &hd);
        lua_createtable(L, 2, 0);                       /* c resp hs pair */
        lua_pushlstring(L, hd.name, hd.name_len);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, hd.value, hd.value_len);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);         /* c resp hs */
    }
    lua_setfield(L, -2, "headers");                     /* c resp */
    lua_pushlstring(L, r.body, r.body_len);
    lua_setfield(L, -2, "body");
    lua_setfield(L, -2, "response");                    /* c */
}

static int poller_step(lua_State *L)
{
    struct l_poller *p = check_open(L);
    lua_Integer t = 0;
    if (!lua_isnoneornil(L, 2)) {
        int isint = 0;
        if (lua_type(L, 2) == LUA_TNUMBER)
            t = lua_tointegerx(L, 2, &isint);
        if (!isint || t < 0 || t > EF_HTTP_MAX_TIMEOUT_MS)
            return luaL_argerror(L, 2, "timeout_ms must be an integer between 0 and 86400000");
    }
    if (p->stepping) {
        struct ef_l_error e;
        memset(&e, 0, sizeof e);
        e.code = "busy";
        e.message = "already running";
        return ef_l_pushfail(L, &e);
    }
    char err[256];
    p->stepping = 1;
    int rc = ef_http_step(p->h, (long)t, err, sizeof err);
    if (rc != EF_HTTP_ADD_OK) {
        p->stepping = 0;
        return luaL_error(L, "poller:step: %s", err);
    }
    /* A finished transfer stays owned by the poller until its completion table is built,
     * so an error (out of memory) here leaks nothing. */
    lua_createtable(L, 4, 0);                           /* list */
    lua_Integer n = 0;
    const struct ef_http_xfer *x;
    while (p->h && (x = ef_http_done_peek(p->h))) {
        push_completion(L, x);
        lua_rawseti(L, -2, ++n);
        if (p->h)                                       /* a __gc may have closed p */
            ef_http_done_pop(p->h);
    }
    p->stepping = 0;
    return 1;
}

static int poller_cancel(lua_State *L)
{
    struct l_poller *p = check_open(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (p->stepping)
        return luaL_error(L, "poller:cancel: the poller is running a step");
    lua_pushboolean(L, id > 0 && ef_http_cancel(p->h, (uint64_t)id));
    return 1;
}

static int poller_pending(lua_State *L)
{
    struct l_poller *p = check_open(L);
    lua_pushinteger(L, (lua_Integer)ef_http_pending(p->h));
    return 1;
}

static int poller_sockets(lua_State *L)
{
    struct l_poller *p = check_open(L);
    struct ef_http_socket few[16];
    size_t n = ef_http_sockets(p->h, few, 16);
    struct ef_http_socket *all = few;
    if (n > 16) {                       /* rare: a buffer the GC owns, so errors leak nothing */
        all = lua_newuserdatauv(L, n * sizeof *all, 0);
        n = ef_http_sockets(p->h, all, n);
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, all[i].fd);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, all[i].want & EF_HTTP_WANT_READ);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, all[i].want & EF_HTTP_WANT_WRITE);
        lua_setfield(L, -2, "write");
        lua_pushinteger(L, (lua_Integer)all[i].gen);
        lua_setfield(L, -2, "gen");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int poller_timeout(lua_State *L)
{
    struct l_poller *p = check_open(L);
    long ms = ef_http_timeout(p->h);
    if (ms < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)ms);
    return 1;
}

static void set_count(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int poller_stats(lua_State *L)
{
    struct l_poller *p = check_open(L);
    struct ef_http_stats st;
    ef_http_get_stats(p->h, &st);
    lua_createtable(L, 0, 5);
    set_count(L, "connections_opened", st.connections_opened);
    set_count(L, "requests", st.requests);
    set_count(L, "completed", st.completed);
    set_count(L, "cancelled", st.cancelled);
    set_count(L, "pending", ef_http_pending(p->h));
    return 1;
}

/* __gc, __close and close(): one idempotent finaliser. */
static int poller_gc(lua_State *L)
{
    struct l_poller *p = luaL_checkudata(L, 1, POLLER_T);
    if (p->h) {
        if (p->stepping)
            return luaL_error(L, "poller:close: the poller is running a step");
        struct ef_http *h = p->h;
        p->h = NULL;
        ef_http_free(h);
    }
    return 0;
}

static int poller_tostring(lua_State *L)
{
    struct l_poller *p = luaL_checkudata(L, 1, POLLER_T);
    if (p->h)
        lua_pushfstring(L, "emrflow.Poller (%p, %d pending)", (void *)p,
                        (int)ef_http_pending(p->h));
    else
        lua_pushfstring(L, "emrflow.Poller (%p, closed)", (void *)p);
    return 1;
}

static const luaL_Reg s_methods[] = {
    { "add", poller_add },       { "step", poller_step },   { "cancel", poller_cancel },
    { "pending", poller_pending }, { "stats", poller_stats }, { "close", poller_gc },
    { "sockets", poller_sockets }, { "timeout", poller_timeout },
    { NULL, NULL },
};

static const luaL_Reg s_meta[] = {
    { "__gc", poller_gc }, { "__close", poller_gc }, { "__tostring", poller_tostring },
    { NULL, NULL },
};

int ef_l_open_http(lua_State *L)
{
    if (luaL_newmetatable(L, POLLER_T)) {               /* core mt */
        luaL_setfuncs(L, s_meta, 0);
        luaL_newlib(L, s_methods);                      /* core mt methods */
        lua_setfield(L, -2, "__index");                 /* core mt */
    }
    lua_pop(L, 1);                                      /* core */
    lua_createtable(L, 0, 2);                           /* core http */
    lua_pushcfunction(L, poller_new);
    lua_setfield(L, -2, "poller");
    /* requests may say no_resend = true (see ef_http.h) */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "no_silent_resend");
    lua_setfield(L, -2, "http");                        /* core */
    return 0;
}
