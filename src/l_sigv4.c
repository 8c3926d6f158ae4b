/* core.sigv4: the Lua binding of ef_sigv4 (thin: check, call, push).
 *
 *   local signer = core.sigv4.new([defaults])   -- emrflow.Sigv4Signer
 *   local s = signer:sign(req [, now])          -- see lua/emrflow/sigv4.lua
 *   signer:hash(body)    --> hex SHA-256 (counted in stats().body_hashes)
 *   signer:stats()       --> { key_hits =, key_misses =, body_hashes = }
 *   signer:clear_cache() ; signer:close()
 *
 * `defaults` (optional) supplies any request field the request lacks
 * (region, service, credentials, flags, ...). `now` is the time used when
 * neither the request nor the defaults set `time`. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "ef_sigv4.h"
#include "l_util.h"

#define EF_SIGV4_SIGNER_MT "emrflow.Sigv4Signer"
#define S_WHERE "emrflow.sigv4.sign: "

struct l_signer {
    struct ef_sigv4_signer *s; /* NULL once closed */
};

static struct ef_sigv4_signer *s_check_signer(lua_State *L, int idx)
{
    struct l_signer *u = luaL_checkudata(L, idx, EF_SIGV4_SIGNER_MT);
    if (!u->s)
        luaL_error(L, "attempt to use a closed signer");
    return u->s;
}

static int l_sigv4_new(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* the owner first, then the resource */
    struct l_signer *u = lua_newuserdatauv(L, sizeof *u, 1); /* defaults, u */
    u->s = NULL;
    luaL_setmetatable(L, EF_SIGV4_SIGNER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    u->s = ef_sigv4_signer_new();
    if (!u->s)
        return luaL_error(L, "emrflow.sigv4: cannot create a signer (out of memory or "
                             "OpenSSL lacks SHA-256/HMAC)");
    return 1;
}

static int l_signer_gc(lua_State *L)
{
    struct l_signer *u = luaL_checkudata(L, 1, EF_SIGV4_SIGNER_MT);
    ef_sigv4_signer_free(u->s); /* wipes cached keys */
    u->s = NULL;
    return 0;
}

static int l_signer_tostring(lua_State *L)
{
    struct l_signer *u = luaL_checkudata(L, 1, EF_SIGV4_SIGNER_MT);
    lua_pushfstring(L, "emrflow.Sigv4Signer (%s)", u->s ? "open" : "closed");
    return 1;
}

static int l_signer_stats(lua_State *L)
{
    struct ef_sigv4_signer *s = s_check_signer(L, 1);
    struct ef_sigv4_stats st;
    ef_sigv4_signer_stats(s, &st);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st.key_hits);
    lua_setfield(L, -2, "key_hits");
    lua_pushinteger(L, (lua_Integer)st.key_misses);
    lua_setfield(L, -2, "key_misses");
    lua_pushinteger(L, (lua_Integer)st.body_hashes);
    lua_setfield(L, -2, "body_hashes");
    return 1;
}

static int l_signer_clear_cache(lua_State *L)
{
    ef_sigv4_signer_clear_cache(s_check_signer(L, 1));
    return 0;
}

static int l_signer_hash(lua_State *L)
{
    struct ef_sigv4_signer *s = s_check_signer(L, 1);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    char hex[65];
    if (n == 0) {
        lua_pushliteral(L, EF_SIGV4_EMPTY_SHA256);
        return 1;
    }
    if (ef_sigv4_sha256_hex(s, p, n, hex) != EF_SIGV4_OK)
        return luaL_error(L, "emrflow.sigv4.hash: SHA-256 failed");
    lua_pushlstring(L, hex, 64);
    return 1;
}

/* ------------------------------------------------------------- sign */

/* Raises msg with the position of the caller `lv` levels up (1: the
 * caller of the C function; the Lua wrappers pass 2, their own caller). */
static int s_error(lua_State *L, int lv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    luaL_where(L, lv);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* The field names, pushed once as upvalues of sign: looking a field up with
 * an interned key costs no strcmp and no hashing. */
enum {
    K_METHOD = 1, K_URL, K_BODY, K_PAYLOAD_HASH, K_REGION, K_SERVICE, K_CREDENTIALS,
    K_ACCESS_KEY_ID, K_SECRET_ACCESS_KEY, K_SESSION_TOKEN, K_TIME, K_NORMALIZE_PATH,
    K_DOUBLE_ENCODE, K_SIGN_BODY, K_UNSIGNED_PAYLOAD, K_OMIT_SESSION_TOKEN, K_HEADERS,
    K_AUTHORIZATION, K_SIGNATURE, K_CANONICAL_REQUEST, K_STRING_TO_SIGN, K_AMZ_DATE,
    K_SIGNED_HEADERS, K_CREDENTIAL_SCOPE, K_H_DATE, K_H_TOKEN, K_H_SHA256, K_H_AUTHORIZATION,
    K_COUNT
};

static const char *const s_keys[K_COUNT] = {
    NULL, "method", "url", "body", "payload_hash", "region", "service", "credentials",
    "access_key_id", "secret_access_key", "session_token", "time", "normalize_path",
    "double_encode", "sign_body", "unsigned_payload", "omit_session_token", "headers",
    "authorization", "signature", "canonical_request", "string_to_sign", "amz_date",
    "signed_headers", "credential_scope", "X-Amz-Date", "X-Amz-Security-Token",
    "X-Amz-Content-Sha256", "Authorization",
};

#define S_KEY(L, k) lua_pushvalue((L), lua_upvalueindex(k))

/* Pushes req[k], or defaults[k] when req[k] is nil; returns its type. The
 * value stays on the stack, so strings taken from it stay valid. */
static int s_field(lua_State *L, int req, int def, int k)
{
    S_KEY(L, k);
    int t = lua_gettable(L, req);
    if (t == LUA_TNIL && def) {
        lua_pop(L, 1);
        S_KEY(L, k);
        t = lua_gettable(L, def);
    }
    return t;
}

static const char *s_opt_string(lua_State *L, int lv, int t, const char *what, size_t *n)
{
    if (t == LUA_TNIL) {
        *n = 0;
        return NULL;
    }
    if (t != LUA_TSTRING)
        s_error(L, lv, S_WHERE "%s must be a string, got %s", what, lua_typename(L, t));
    return lua_tolstring(L, -1, n);
}

static const char *s_req_string(lua_State *L, int lv, int t, const char *what, size_t *n)
{
    if (t == LUA_TNIL)
        s_error(L, lv, S_WHERE "%s is required", what);
    return s_opt_string(L, lv, t, what, n);
}

static int s_bool(lua_State *L, int lv, int req, int def, int k, int dflt)
{
    int t = s_field(L, req, def, k);
    int v = dflt;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        s_error(L, lv, S_WHERE "%s must be a boolean, got %s", s_keys[k], lua_typename(L, t));
    lua_pop(L, 1);
    return v;
}

/* Pushes {name, value} from two stack slots. */
static void s_push_pair(lua_State *L, int name, int value)
{
    name = lua_absindex(L, name);
    value = lua_absindex(L, value);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, value);
    lua_rawseti(L, -2, 2);
}

static void s_set(lua_State *L, int t, int k, int value)
{
    S_KEY(L, k);
    lua_pushvalue(L, value);
    lua_rawset(L, t);
}

/* signer:sign(req [, now [, level]]) */
static int l_signer_sign(lua_State *L)
{
    struct ef_sigv4_signer *s = s_check_signer(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer level = luaL_optinteger(L, 4, 1);
    const int lv = level < 1 ? 1 : level > 16 ? 16 : (int)level;
    lua_settop(L, 3);
    luaL_checkstack(L, 40, "emrflow.sigv4.sign");
    const int req = 2, now = 3;
    lua_getiuservalue(L, 1, 1); /* 4: defaults or nil */
    const int def = lua_istable(L, 4) ? 4 : 0;

    struct ef_sigv4_request r;
    memset(&r, 0, sizeof r);
    int t;

    t = s_field(L, req, def, K_METHOD);
    r.method = s_req_string(L, lv, t, "method", &r.method_len);
    t = s_field(L, req, def, K_URL);
    r.url = s_req_string(L, lv, t, "url", &r.url_len);
    t = s_field(L, req, def, K_BODY);
    r.body = s_opt_string(L, lv, t, "body", &r.body_len);
    t = s_field(L, req, def, K_PAYLOAD_HASH);
    r.payload_hash = s_opt_string(L, lv, t, "payload_hash", &r.payload_hash_len);
    t = s_field(L, req, def, K_REGION);
    r.region = s_req_string(L, lv, t, "region", &r.region_len);
    t = s_field(L, req, def, K_SERVICE);
    r.service = s_req_string(L, lv, t, "service", &r.service_len);

    t = s_field(L, req, def, K_CREDENTIALS);
    if (t != LUA_TTABLE)
        return s_error(L, lv, S_WHERE "credentials must be a table with access_key_id and "
                                      "secret_access_key, got %s", lua_typename(L, t));
    const int creds = lua_gettop(L);
    S_KEY(L, K_ACCESS_KEY_ID);
    t = lua_gettable(L, creds);
    r.access_key_id =
        s_req_string(L, lv, t, "credentials.access_key_id", &r.access_key_id_len);
    S_KEY(L, K_SECRET_ACCESS_KEY);
    t = lua_gettable(L, creds);
    r.secret_access_key =
        s_req_string(L, lv, t, "credentials.secret_access_key", &r.secret_access_key_len);
    S_KEY(L, K_SESSION_TOKEN);
    t = lua_gettable(L, creds);
    const int token = lua_gettop(L);
    r.session_token =
        s_opt_string(L, lv, t, "credentials.session_token", &r.session_token_len);

    t = s_field(L, req, def, K_TIME);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, now);
        t = lua_type(L, -1);
    }
    if (t == LUA_TNIL)
        return s_error(L, lv, S_WHERE "time is required (Unix seconds)");
    if (t != LUA_TNUMBER)
        return s_error(L, lv, S_WHERE "time must be a number (Unix seconds), got %s",
                       lua_typename(L, t));
    if (lua_isinteger(L, -1)) {
        r.time_s = (int64_t)lua_tointeger(L, -1);
    } else {
        lua_Number x = floor(lua_tonumber(L, -1));
        if (!(x >= 0 && x <= 253402300799.0))
            return s_error(L, lv, S_WHERE "time: out of range (Unix seconds from 0 to "
                                          "253402300799)");
        r.time_s = (int64_t)x;
    }

    if (!s_bool(L, lv, req, def, K_NORMALIZE_PATH, 1))
        r.flags |= EF_SIGV4_NO_NORMALIZE_PATH;
    if (!s_bool(L, lv, req, def, K_DOUBLE_ENCODE, 1))
        r.flags |= EF_SIGV4_NO_DOUBLE_ENCODE;
    if (s_bool(L, lv, req, def, K_SIGN_BODY, 0))
        r.flags |= EF_SIGV4_SIGN_BODY;
    if (s_bool(L, lv, req, def, K_UNSIGNED_PAYLOAD, 0))
        r.flags |= EF_SIGV4_UNSIGNED_PAYLOAD;
    if (s_bool(L, lv, req, def, K_OMIT_SESSION_TOKEN, 0))
        r.flags |= EF_SIGV4_OMIT_SESSION_TOKEN;

    /* Headers last, read raw: no metamethod (user code) runs from here on,
     * so the strings stay reachable from the table on the stack. */
    t = s_field(L, req, def, K_HEADERS);
    const int hidx = lua_gettop(L);
    size_t nh = 0;
    if (t == LUA_TTABLE) {
        nh = (size_t)lua_rawlen(L, hidx);
        /* A map such as {["Content-Type"] = "..."} is misuse, not "no headers". */
        lua_pushnil(L);
        while (lua_next(L, hidx) != 0) {
            lua_pop(L, 1);
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
                (lua_Unsigned)lua_tointeger(L, -1) > nh) {
                int kt = lua_type(L, -1);
                lua_pop(L, 1);
                return s_error(L, lv, S_WHERE "headers must be a list of {name, value} pairs, "
                               "found a %s key", lua_typename(L, kt));
            }
        }
    } else if (t != LUA_TNIL)
        return s_error(L, lv, S_WHERE "headers must be a list of {name, value} pairs, got %s",
                       lua_typename(L, t));
    struct ef_sigv4_header *hs = ef_sigv4_signer_headers(s, nh);
    if (!hs)
        return s_error(L, lv, S_WHERE "out of memory");
    for (size_t i = 0; i < nh; i++) {
        lua_Integer li = (lua_Integer)i + 1;
        t = lua_rawgeti(L, hidx, li);
        if (t != LUA_TTABLE)
            return s_error(L, lv, S_WHERE "headers[%d] must be a {name, value} pair, got %s",
                           (int)li, lua_typename(L, t));
        t = lua_rawgeti(L, -1, 1);
        if (t != LUA_TSTRING)
            return s_error(L, lv, S_WHERE "headers[%d][1] (the name) must be a string, got %s",
                           (int)li, lua_typename(L, t));
        hs[i].name = lua_tolstring(L, -1, &hs[i].name_len);
        t = lua_rawgeti(L, -2, 2);
        if (t != LUA_TSTRING)
            return s_error(L, lv, S_WHERE "headers[%d][2] (the value of '%s') must be a "
                                          "string, got %s",
                           (int)li, hs[i].name_len <= 64 ? hs[i].name : "...",
                           lua_typename(L, t));
        hs[i].value = lua_tolstring(L, -1, &hs[i].value_len);
        lua_pop(L, 3);
    }
    r.headers = hs;
    r.n_headers = nh;

    struct ef_sigv4_result res;
    struct ef_sigv4_err err;
    if (ef_sigv4_sign(s, &r, &res, &err) != EF_SIGV4_OK) {
        /* Bad credential text (a pasted token with a line break) comes from the
         * environment or a file, not from the calling code: no code position,
         * which would send the user to emrflow's sources. */
        int from_data = strncmp(err.message, "credentials", 11) == 0;
        return s_error(L, from_data ? 0 : lv, S_WHERE "%s", err.message);
    }

    /* result: each string pushed once, shared by its field and its header */
    lua_pushlstring(L, res.authorization, res.authorization_len);
    const int auth = lua_gettop(L);
    lua_pushlstring(L, res.amz_date, 16);
    const int date = auth + 1;
    lua_pushstring(L, res.payload_hash);
    const int ph = auth + 2;

    lua_createtable(L, 0, 10);
    const int out = lua_gettop(L);
    lua_createtable(L, (int)(nh + res.n_added), 0);
    const int list = out + 1;
    lua_Integer k = 0;
    for (size_t i = 0; i < nh; i++) {
        if (ef_sigv4_header_is_owned(hs[i].name, hs[i].name_len))
            continue;
        lua_rawgeti(L, hidx, (lua_Integer)i + 1); /* the pair */
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        s_push_pair(L, -2, -1);
        lua_rawseti(L, list, ++k);
        lua_pop(L, 3);
    }
    for (size_t i = 0; i < res.n_added; i++) {
        const struct ef_sigv4_header *h = &res.added[i];
        int name, value;
        if (h->value == res.amz_date) {
            name = K_H_DATE;
            value = date;
        } else if (h->value == r.session_token) {
            name = K_H_TOKEN;
            value = token;
        } else if (h->value == res.payload_hash) {
            name = K_H_SHA256;
            value = ph;
        } else {
            name = K_H_AUTHORIZATION;
            value = auth;
        }
        S_KEY(L, name);
        s_push_pair(L, -1, value);
        lua_rawseti(L, list, ++k);
        lua_pop(L, 1);
    }
    S_KEY(L, K_HEADERS);
    lua_pushvalue(L, list);
    lua_rawset(L, out);
    s_set(L, out, K_AUTHORIZATION, auth);
    s_set(L, out, K_AMZ_DATE, date);
    s_set(L, out, K_PAYLOAD_HASH, ph);
    S_KEY(L, K_SIGNATURE);
    lua_pushlstring(L, res.signature, 64);
    lua_rawset(L, out);
    S_KEY(L, K_CANONICAL_REQUEST);
    lua_pushlstring(L, res.canonical_request, res.canonical_request_len);
    lua_rawset(L, out);
    S_KEY(L, K_STRING_TO_SIGN);
    lua_pushlstring(L, res.string_to_sign, res.string_to_sign_len);
    lua_rawset(L, out);
    S_KEY(L, K_SIGNED_HEADERS);
    lua_pushlstring(L, res.signed_headers, res.signed_headers_len);
    lua_rawset(L, out);
    S_KEY(L, K_CREDENTIAL_SCOPE);
    lua_pushlstring(L, res.credential_scope, res.credential_scope_len);
    lua_rawset(L, out);
    lua_settop(L, out);
    return 1;
}

static const luaL_Reg s_signer_methods[] = {
    { "hash", l_signer_hash },
    { "stats", l_signer_stats },
    { "clear_cache", l_signer_clear_cache },
    { "close", l_signer_gc },
    { NULL, NULL },
};

static const luaL_Reg s_signer_meta[] = {
    { "__gc", l_signer_gc },
    { "__close", l_signer_gc },
    { "__tostring", l_signer_tostring },
    { NULL, NULL },
};

static const luaL_Reg s_funcs[] = {
    { "new", l_sigv4_new },
    { NULL, NULL },
};

int ef_l_open_sigv4(lua_State *L)
{
    if (luaL_newmetatable(L, EF_SIGV4_SIGNER_MT)) { /* core, mt */
        luaL_setfuncs(L, s_signer_meta, 0);
        luaL_newlib(L, s_signer_methods); /* core, mt, methods */
        /* The key strings become upvalues: more than LUA_MINSTACK slots. */
        luaL_checkstack(L, K_COUNT, "emrflow.sigv4: cannot grow the stack");
        for (int k = 1; k < K_COUNT; k++)
            lua_pushstring(L, s_keys[k]); /* core, mt, methods, keys... */
        lua_pushcclosure(L, l_signer_sign, K_COUNT - 1);
        lua_setfield(L, -2, "sign");      /* core, mt, methods */
        lua_setfield(L, -2, "__index");   /* core, mt */
        lua_pushliteral(L, "emrflow.Sigv4Signer");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);             /* core */
    luaL_newlib(L, s_funcs);   /* core, sigv4 */
    lua_setfield(L, -2, "sigv4"); /* core */
    return 0;
}
