/* core.json: JSON text <-> Lua values, keeping key order, [] vs {}, and
 * integers.
 *
 * Why a hand-written decoder rather than cJSON: cJSON parses into its own
 * tree of doubles (integers above 2^53 lose digits), reports no byte offset,
 * does not check UTF-8 and forgets nothing we could not rebuild — so a cJSON
 * parse followed by a tree walk would cost two passes and an extra copy of
 * every string and still miss three of our rules.  The decoder below is one
 * recursive-descent pass straight onto the Lua stack: strings without escapes
 * are pushed from the input in place, container members are collected on the
 * stack and moved into a table created at its final size.  cJSON is used
 * where it serves (src/ef_json.c: pulling a field out of a wire body).
 *
 * Representation (see lua/emrflow/json.lua for the user-level view):
 *   - arrays carry one shared metatable, ARRAY_MT (upvalue 1);
 *   - every object carries its own metatable `m` whose array part m[1..n] is
 *     the recorded key order and whose own metatable is OBJ_MARK (upvalue 2);
 *     m[0], when present, is a key -> position index that json.set builds
 *     lazily for large objects.  m has no string keys, so no JSON key can
 *     ever turn into a metamethod.
 *   - objects of one shape may share one m (json.keyset/object_from, and
 *     json.copy_shallow, whose copy lists the same keys): such an m is
 *     marked m[-1] = true and is never changed again; json.set gives the
 *     object an m of its own before it records a change (copy on write).
 *     Sharing saves a table per object for the ASL engine's payloads.
 *
 * Errors: decode raises "emrflow.json: <what> at line <l>, column <c> (byte <n>)"
 * (1-based; the column counts characters);
 * encode raises "emrflow.json: <what> at <path>" (JSONPath, 0-based indices).
 * Nothing here owns C memory while it may raise: scratch space is Lua
 * userdata or a luaL_Buffer. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_json.h"
#include "l_json.h"
#include "l_util.h"

#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_OBJ_MARK lua_upvalueindex(2)
#define UV_THREAD lua_upvalueindex(3) /* encode only: its spare buffer thread */

#define DEFAULT_DEPTH 1000
#define MAX_DEPTH_LIMIT 10000 /* C recursion bound for the max_depth option */
#define CHUNK 64              /* members collected on the stack before a table exists */
#define INDEX_MIN 9           /* json.set builds a key index from this many keys on */
#define LOCAL_LEVELS 32       /* encoder path levels kept on the C stack */
#define OBJECT_ROOM 4         /* initial size of objects made by json.object() */
#define SHARED_SLOT (-1)      /* m[SHARED_SLOT] == true: m is shared, copy before changing */
#define MAX_KEYSET 200        /* json.keyset: at most this many keys */

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */

enum { KIND_PLAIN, KIND_ARRAY, KIND_OBJECT };

/* Kind of the table at idx (absolute).  For KIND_OBJECT the order table m is
 * pushed; otherwise nothing is.  *foreign (if given) is set when it has a
 * metatable that is not one of ours. */
static int s_kind(lua_State *L, int idx, int *foreign)
{
    if (foreign)
        *foreign = 0;
    if (!lua_getmetatable(L, idx))
        return KIND_PLAIN;
    if (lua_rawequal(L, -1, UV_ARRAY_MT)) {
        lua_pop(L, 1);
        return KIND_ARRAY;
    }
    if (lua_getmetatable(L, -1)) {
        int ours = lua_rawequal(L, -1, UV_OBJ_MARK);
        lua_pop(L, 1);
        if (ours)
            return KIND_OBJECT; /* m stays pushed */
    }
    lua_pop(L, 1);
    if (foreign)
        *foreign = 1;
    return KIND_PLAIN;
}

/* Pushes a new order table with room for n keys. */
static void s_new_order(lua_State *L, int n)
{
    lua_createtable(L, n, 0);
    lua_pushvalue(L, UV_OBJ_MARK);
    lua_setmetatable(L, -2);
}

struct skey {
    const char *s;
    size_t n;
    lua_Integer i;
};

static int s_skey_cmp(const void *a, const void *b)
{
    const struct skey *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* Pushes a list of the string keys of the table at t (absolute) sorted
 * bytewise, leaving out keys for which the table at skip (0: none) holds a
 * value.  Returns the number of non-string keys seen (not listed). */
static int s_push_sorted_keys(lua_State *L, int t, int skip)
{
    int bad = 0;
    lua_Integer n = 0;
    luaL_checkstack(L, 6, "emrflow.json");
    lua_newtable(L); /* unsorted */
    int u = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            bad++;
            continue;
        }
        if (skip) {
            lua_pushvalue(L, -1);
            int seen = lua_rawget(L, skip) != LUA_TNIL;
            lua_pop(L, 1);
            if (seen)
                continue;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, u, ++n);
    }
    struct skey *keys = lua_newuserdatauv(L, (size_t)n * sizeof *keys + 1, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, u, i);
        keys[i - 1].s = lua_tolstring(L, -1, &keys[i - 1].n); /* anchored by u */
        keys[i - 1].i = i;
        lua_pop(L, 1);
    }
    if (n > 1)
        qsort(keys, (size_t)n, sizeof *keys, s_skey_cmp);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, u, keys[i - 1].i);
        lua_rawseti(L, -2, i);
    }
    lua_replace(L, u); /* sorted list replaces the unsorted one */
    lua_pop(L, 1);     /* the scratch array */
    return bad;
}

/* Pushes the keys of object t (absolute) with order table m (absolute), as
 * json.keys defines them.  Returns the number of non-string keys. */
static int s_push_object_keys(lua_State *L, int t, int m)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, m), cnt = 0, total = 0;
    int bad = 0;
    luaL_checkstack(L, 8, "emrflow.json");
    lua_createtable(L, (int)n, 0);
    int res = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, m, i) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, t) != LUA_TNIL) {
                lua_pop(L, 1);
                lua_rawseti(L, res, ++cnt);
                continue;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        total++;
    }
    if (total != cnt) { /* keys set without json.set: sorted, after the rest */
        lua_createtable(L, 0, (int)cnt);
        for (lua_Integer i = 1; i <= cnt; i++) {
            lua_rawgeti(L, res, i);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
        bad = s_push_sorted_keys(L, t, lua_gettop(L));
        lua_Integer k = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= k; i++) {
            lua_rawgeti(L, -1, i);
            lua_rawseti(L, res, ++cnt);
        }
        lua_pop(L, 2);
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

struct dec {
    lua_State *L;
    const unsigned char *start, *p, *end;
    int depth, max_depth;
};

/* Characters a string can hold as they are: printable ASCII but '"', '\\'. */
static const unsigned char s_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                      /* 0x00-0x1f */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,      /* 0x20-0x2f: '"' */
    R16(1), R16(1),                                      /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,      /* 0x50-0x5f: '\\' */
    R16(1), R16(1),                                      /* 0x60-0x7f */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

/* Line and column (1-based; the column counts UTF-8 characters, as editors do)
 * of `at`.  Only computed on error, so decoding pays nothing for it. */
static void s_dec_locate(const struct dec *d, const unsigned char *at, lua_Integer *line,
                         lua_Integer *col)
{
    const unsigned char *q, *bol = d->start;
    *line = 1;
    for (q = d->start; q < at; q++)
        if (*q == '\n') {
            (*line)++;
            bol = q + 1;
        }
    *col = 1;
    for (q = bol; q < at; q++)
        if ((*q & 0xC0) != 0x80)
            (*col)++;
}

_Noreturn static void s_dec_fail(struct dec *d, const unsigned char *at, const char *what)
{
    lua_State *L = d->L;
    lua_Integer line, col;
    s_dec_locate(d, at, &line, &col);
    lua_pushfstring(L, "emrflow.json: %s at line %I, column %I (byte %I)", what, line, col,
                    (lua_Integer)(at - d->start) + 1);
    lua_error(L);
    abort(); /* not reached: lua_error does not return */
}

_Noreturn static void s_dec_unexpected(struct dec *d, const unsigned char *at, const char *expected)
{
    char what[128];
    if (at >= d->end)
        s_dec_fail(d, d->end, "unexpected end of input");
    if (*at >= 0x20 && *at < 0x7f)
        snprintf(what, sizeof what, "expected %s, found '%c'", expected, *at);
    else if (at == d->start && d->end - at >= 3 && at[0] == 0xEF && at[1] == 0xBB && at[2] == 0xBF)
        /* editors that save "UTF-8 with BOM": say so, JSON text has none (RFC 8259 8.1) */
        snprintf(what, sizeof what, "expected %s, found a UTF-8 byte order mark (save the text without BOM)",
                 expected);
    else
        snprintf(what, sizeof what, "expected %s, found byte 0x%02X", expected, *at);
    s_dec_fail(d, at, what);
}

static inline void s_skip_ws(struct dec *d)
{
    const unsigned char *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    d->p = p;
}

/* After a member of an array or object: 1 after a ',' (another member follows),
 * 0 after the closing `close`; anything else is an error. */
static inline int s_dec_next(struct dec *d, unsigned char close, const char *expected)
{
    s_skip_ws(d);
    if (d->p < d->end && *d->p == ',') {
        d->p++;
        return 1;
    }
    if (d->p < d->end && *d->p == close) {
        d->p++;
        return 0;
    }
    s_dec_unexpected(d, d->p, expected);
}

static void s_dec_value(struct dec *d);

static int s_hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], x;
        if (c >= '0' && c <= '9')
            x = c - '0';
        else if (c >= 'a' && c <= 'f')
            x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            x = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + x;
    }
    return v;
}

static char *s_put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The part of a string from its first backslash on: find the closing quote,
 * then unescape into a buffer of that size (the text never grows). */
static void s_dec_string_escaped(struct dec *d, const unsigned char *s, const unsigned char *q)
{
    const unsigned char *end = d->end, *close = q;
    while (close < end && *close != '"')
        close += (*close == '\\') ? 2 : 1;
    if (close >= end)
        s_dec_fail(d, end, "unexpected end of input (unterminated string)");
    luaL_Buffer b;
    char *o0 = luaL_buffinitsize(d->L, &b, (size_t)(close - s));
    char *o = o0;
    memcpy(o, s, (size_t)(q - s));
    o += q - s;
    while (q < close) {
        unsigned c = *q;
        if (s_plain[c]) {
            *o++ = (char)c;
            q++;
        } else if (c == '\\') {
            unsigned e = q[1];
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                int hi = close - q >= 6 ? s_hex4(q + 2) : -1;
                unsigned long cp;
                if (hi < 0)
                    s_dec_fail(d, q, "invalid \\u escape (expected 4 hex digits)");
                cp = (unsigned long)hi;
                if (hi >= 0xDC00 && hi <= 0xDFFF)
                    s_dec_fail(d, q, "lone low surrogate in \\u escape");
                if (hi >= 0xD800 && hi <= 0xDBFF) {
                    int lo = (close - q >= 12 && q[6] == '\\' && q[7] == 'u') ? s_hex4(q + 8) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        s_dec_fail(d, q, "lone high surrogate in \\u escape (no low surrogate follows)");
                    cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
                    q += 6;
                }
                o = s_put_utf8(o, cp);
                q += 4; /* plus the 2 below */
                break;
            }
            default:
                s_dec_fail(d, q, "invalid escape in string");
            }
            q += 2;
        } else if (c < 0x20) {
            s_dec_fail(d, q, "control character in string (must be escaped)");
        } else {
            size_t k = ef_json_utf8_seq(q, close);
            if (!k)
                s_dec_fail(d, q, "invalid UTF-8 in string");
            memcpy(o, q, k);
            o += k;
            q += k;
        }
    }
    luaL_pushresultsize(&b, (size_t)(o - o0));
    d->p = close + 1;
}

/* d->p is at the opening quote. Pushes the string. */
static void s_dec_string(struct dec *d)
{
    const unsigned char *s = d->p + 1, *q = s, *end = d->end;
    for (;;) {
        while (q < end && s_plain[*q])
            q++;
        if (q >= end)
            s_dec_fail(d, end, "unexpected end of input (unterminated string)");
        unsigned c = *q;
        if (c == '"') {
            lua_pushlstring(d->L, (const char *)s, (size_t)(q - s));
            d->p = q + 1;
            return;
        }
        if (c == '\\') {
            s_dec_string_escaped(d, s, q);
            return;
        }
        if (c < 0x20)
            s_dec_fail(d, q, "control character in string (must be escaped)");
        size_t k = ef_json_utf8_seq(q, end);
        if (!k)
            s_dec_fail(d, q, "invalid UTF-8 in string");
        q += k;
    }
}

static const double s_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int s_isdigit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Numbers follow RFC 8259's grammar exactly.  Integers that fit lua_Integer
 * stay integers; anything with a fraction or exponent, or too large, is a
 * float.  Floats take Clinger's exact fast path when the digits fit 2^53 and
 * the power of ten is exact, else strtod (with the locale's decimal point). */
static void s_dec_number(struct dec *d)
{
    const unsigned char *s = d->p, *q = s, *end = d->end;
    int neg = 0, isfloat = 0, digits = 0, exp10 = 0;
    uint64_t mant = 0;
    int overflow = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    if (q >= end)
        s_dec_fail(d, end, "unexpected end of input (number)");
    if (*q == '0') {
        q++;
        if (s_isdigit(q, end))
            s_dec_fail(d, s, "invalid number (leading zero)");
    } else if (*q >= '1' && *q <= '9') {
        while (s_isdigit(q, end)) {
            unsigned dg = (unsigned)(*q - '0');
            if (mant > (UINT64_MAX - dg) / 10) {
                overflow = 1;
                exp10++; /* digit dropped from the exact mantissa */
            } else {
                mant = mant * 10 + dg;
                digits++;
            }
            q++;
        }
    } else {
        s_dec_fail(d, q, "invalid number (expected a digit)");
    }
    if (q < end && *q == '.') {
        isfloat = 1;
        q++;
        if (!s_isdigit(q, end))
            s_dec_fail(d, q, "invalid number (expected a digit after '.')");
        while (s_isdigit(q, end)) {
            unsigned dg = (unsigned)(*q - '0');
            if (!overflow && mant <= (UINT64_MAX - dg) / 10) {
                mant = mant * 10 + dg;
                digits++;
                exp10--;
            } else {
                overflow = 1;
            }
            q++;
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        int eneg = 0, e = 0;
        isfloat = 1;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            eneg = *q++ == '-';
        if (!s_isdigit(q, end))
            s_dec_fail(d, q, "invalid number (expected a digit in the exponent)");
        while (s_isdigit(q, end)) {
            if (e < 100000)
                e = e * 10 + (*q - '0');
            q++;
        }
        exp10 += eneg ? -e : e;
    }
    d->p = q;
    if (!isfloat && !overflow) {
        if (!neg && mant <= (uint64_t)INT64_MAX) {
            lua_pushinteger(d->L, (lua_Integer)mant);
            return;
        }
        if (neg && mant <= (uint64_t)INT64_MAX + 1) {
            lua_pushinteger(d->L, (lua_Integer)(0 - mant)); /* two's complement: mant=2^63 -> MIN */
            return;
        }
    }
    double v;
    if (!overflow && mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        v = (double)mant;
        v = exp10 < 0 ? v / s_pow10[-exp10] : v * s_pow10[exp10];
        if (neg)
            v = -v;
    } else { /* strtod reads the sign too */
        char local[64], *buf = local;
        size_t n = (size_t)(q - s);
        if (n >= sizeof local) {
            /* Long digit strings: scratch space as a Lua string. */
            buf = lua_newuserdatauv(d->L, n + 1, 0);
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        char dp = lua_getlocaledecpoint();
        if (dp != '.') {
            char *dot = memchr(buf, '.', n);
            if (dot)
                *dot = dp;
        }
        v = strtod(buf, NULL);
        if (buf != local)
            lua_pop(d->L, 1);
    }
    if (isinf(v))
        s_dec_fail(d, s, "number out of range");
    lua_pushnumber(d->L, (lua_Number)v);
}

static void s_dec_literal(struct dec *d, const char *word, size_t n)
{
    size_t avail = (size_t)(d->end - d->p);
    if (avail >= n && memcmp(d->p, word, n) == 0) {
        d->p += n;
        return;
    }
    if (avail < n && memcmp(d->p, word, avail) == 0)
        s_dec_fail(d, d->end, "unexpected end of input");
    s_dec_fail(d, d->p, "invalid literal (expected true, false or null)");
}

static void s_dec_enter(struct dec *d, int slots)
{
    if (++d->depth > d->max_depth) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d", d->max_depth);
        s_dec_fail(d, d->p, what);
    }
    if (!lua_checkstack(d->L, slots))
        s_dec_fail(d, d->p, "document too deeply nested for the Lua stack");
}

static void s_dec_array(struct dec *d)
{
    lua_State *L = d->L;
    s_dec_enter(d, CHUNK + 8);
    d->p++;
    int base = lua_gettop(L);
    lua_Integer n = 0;
    int direct = 0;
    s_skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        lua_createtable(L, 0, 0);
    } else {
        for (;;) {
            s_dec_value(d);
            if (direct) {
                lua_rawseti(L, base + 1, ++n);
            } else if (++n == CHUNK) {
                lua_createtable(L, CHUNK * 2, 0);
                lua_rotate(L, base + 1, 1);
                for (lua_Integer i = n; i >= 1; i--)
                    lua_rawseti(L, base + 1, i);
                direct = 1;
            }
            if (!s_dec_next(d, ']', "',' or ']'"))
                break;
        }
        if (!direct) {
            lua_createtable(L, (int)n, 0);
            lua_rotate(L, base + 1, 1);
            for (lua_Integer i = n; i >= 1; i--)
                lua_rawseti(L, base + 1, i);
        }
    }
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, -2);
    d->depth--;
}

/* obj and m are absolute; key and value on top.  Sets obj[key] = value and
 * records key unless a duplicate (the last value wins, the first place). */
static void s_dec_put(lua_State *L, int obj, int m, lua_Integer *cnt)
{
    lua_pushvalue(L, -2);
    if (lua_rawget(L, obj) == LUA_TNIL) {
        lua_pushvalue(L, -3);
        lua_rawseti(L, m, ++*cnt);
    }
    lua_pop(L, 1);
    lua_rawset(L, obj);
}

static void s_dec_object(struct dec *d)
{
    lua_State *L = d->L;
    s_dec_enter(d, 2 * CHUNK + 8);
    d->p++;
    int base = lua_gettop(L);
    int n = 0, direct = 0;
    lua_Integer cnt = 0;
    s_skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        lua_createtable(L, 0, 0);
        s_new_order(L, 0);
        lua_setmetatable(L, -2);
        d->depth--;
        return;
    }
    for (;;) {
        s_skip_ws(d);
        if (d->p >= d->end || *d->p != '"')
            s_dec_unexpected(d, d->p, "a string key");
        s_dec_string(d);
        s_skip_ws(d);
        if (d->p >= d->end || *d->p != ':')
            s_dec_unexpected(d, d->p, "':' after the key");
        d->p++;
        s_dec_value(d);
        if (direct) {
            s_dec_put(L, base + 1, base + 2, &cnt);
        } else if (++n == CHUNK) {
            lua_createtable(L, 0, CHUNK * 2);
            s_new_order(L, CHUNK * 2);
            lua_rotate(L, base + 1, 2);
            for (int i = 0; i < n; i++) {
                lua_pushvalue(L, base + 3 + 2 * i);
                lua_pushvalue(L, base + 4 + 2 * i);
                s_dec_put(L, base + 1, base + 2, &cnt);
            }
            lua_settop(L, base + 2);
            direct = 1;
        }
        if (!s_dec_next(d, '}', "',' or '}'"))
            break;
    }
    if (!direct) {
        lua_createtable(L, 0, n);
        s_new_order(L, n);
        lua_rotate(L, base + 1, 2);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, base + 3 + 2 * i);
            lua_pushvalue(L, base + 4 + 2 * i);
            s_dec_put(L, base + 1, base + 2, &cnt);
        }
        lua_settop(L, base + 2);
    }
    lua_setmetatable(L, base + 1);
    d->depth--;
}

static void s_dec_value(struct dec *d)
{
    s_skip_ws(d);
    if (d->p >= d->end)
        s_dec_fail(d, d->end, "unexpected end of input");
    switch (*d->p) {
    case '{': s_dec_object(d); break;
    case '[': s_dec_array(d); break;
    case '"': s_dec_string(d); break;
    case 't': s_dec_literal(d, "true", 4); lua_pushboolean(d->L, 1); break;
    case 'f': s_dec_literal(d, "false", 5); lua_pushboolean(d->L, 0); break;
    case 'n': s_dec_literal(d, "null", 4); lua_pushlightuserdata(d->L, NULL); break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        s_dec_number(d);
        break;
    default:
        s_dec_unexpected(d, d->p, "a JSON value");
    }
}

static int s_opt_depth(lua_State *L, int arg)
{
    int depth = DEFAULT_DEPTH;
    if (lua_isnoneornil(L, arg))
        return depth;
    luaL_checktype(L, arg, LUA_TTABLE);
    if (lua_getfield(L, arg, "max_depth") != LUA_TNIL) {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 1 || v > MAX_DEPTH_LIMIT)
            luaL_argerror(L, arg, lua_pushfstring(L, "max_depth must be an integer from 1 to %d",
                                                  MAX_DEPTH_LIMIT));
        depth = (int)v;
    }
    lua_pop(L, 1);
    return depth;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    struct dec d;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string");
    d.max_depth = s_opt_depth(L, 2);
    d.L = L;
    d.start = (const unsigned char *)lua_tolstring(L, 1, &len);
    d.p = d.start;
    d.end = d.start + len;
    d.depth = 0;
    lua_settop(L, 1);
    s_dec_value(&d);
    s_skip_ws(&d);
    if (d.p < d.end)
        s_dec_fail(&d, d.p, "trailing garbage after the JSON value");
    return 1;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

struct lvl {
    const void *t;  /* the table at this level */
    const char *key; /* the member being encoded (object), or NULL */
    size_t klen;
    lua_Integer idx; /* the element being encoded (array, 0-based), or -1 */
};

struct enc {
    lua_State *L;
    luaL_Buffer *b; /* lives on a helper thread, so L's stack stays free */
    int depth, max_depth, anchor;
    struct lvl *path;
    struct lvl local[LOCAL_LEVELS];
};

static int s_is_ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Pushes the JSONPath of the value being encoded. */
static void s_push_path(struct enc *e)
{
    lua_State *L = e->L;
    luaL_Buffer pb;
    luaL_buffinit(L, &pb);
    luaL_addchar(&pb, '$');
    for (int i = 0; i < e->depth; i++) {
        const struct lvl *v = &e->path[i];
        if (v->key) {
            size_t n = v->klen > 60 ? 60 : v->klen;
            if (s_is_ident(v->key, v->klen)) {
                luaL_addchar(&pb, '.');
                luaL_addlstring(&pb, v->key, n);
            } else {
                luaL_addstring(&pb, "[\"");
                for (size_t j = 0; j < n; j++) {
                    unsigned char c = (unsigned char)v->key[j];
                    if (c == '"' || c == '\\') {
                        luaL_addchar(&pb, '\\');
                        luaL_addchar(&pb, (char)c);
                    } else if (c < 0x20 || c >= 0x7f) {
                        char hex[8];
                        snprintf(hex, sizeof hex, "\\x%02X", c);
                        luaL_addstring(&pb, hex);
                    } else {
                        luaL_addchar(&pb, (char)c);
                    }
                }
                if (n < v->klen)
                    luaL_addstring(&pb, "...");
                luaL_addstring(&pb, "\"]");
            }
        } else if (v->idx >= 0) {
            char num[EF_JSON_NUMBUF + 2];
            num[0] = '[';
            size_t k = ef_json_format_integer((long long)v->idx, num + 1);
            num[k + 1] = ']';
            luaL_addlstring(&pb, num, k + 2);
        }
    }
    luaL_pushresult(&pb);
}

_Noreturn static void s_enc_fail(struct enc *e, const char *what)
{
    lua_State *L = e->L;
    luaL_checkstack(L, 4, "emrflow.json");
    s_push_path(e);
    lua_pushfstring(L, "emrflow.json: %s at %s", what, lua_tostring(L, -1));
    lua_error(L);
    abort(); /* not reached: lua_error does not return */
}

/* Output of a JSON string, escaping '"', '\\' and control characters;
 * non-ASCII UTF-8 is checked and copied as is; '/' is not escaped. */
static void s_enc_string(struct enc *e, const char *str, size_t len, const char *what)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    if (len > ((size_t)-1 - 2) / 6)
        s_enc_fail(e, "string too long");
    char *o0 = luaL_prepbuffsize(e->b, len * 6 + 2);
    char *o = o0;
    *o++ = '"';
    while (s < end) {
        const unsigned char *run = s;
        while (s < end && s_plain[*s])
            s++;
        if (s > run) {
            memcpy(o, run, (size_t)(s - run));
            o += s - run;
        }
        if (s >= end)
            break;
        unsigned c = *s;
        if (c >= 0x80) {
            size_t k = ef_json_utf8_seq(s, end);
            if (!k) {
                char msg[96];
                snprintf(msg, sizeof msg, "invalid UTF-8 in %s (byte %zu)", what,
                         (size_t)(s - (const unsigned char *)str) + 1);
                s_enc_fail(e, msg);
            }
            memcpy(o, s, k);
            o += k;
            s += k;
            continue;
        }
        o = ef_json_put_escape(o, c);
        s++;
    }
    *o++ = '"';
    luaL_addsize(e->b, (size_t)(o - o0));
}

static void s_enc_value(struct enc *e, int idx);

static void s_enc_key_value(struct enc *e, struct lvl *v, int kidx, int vidx, int first)
{
    size_t klen;
    const char *k = lua_tolstring(e->L, kidx, &klen);
    if (!first)
        luaL_addchar(e->b, ',');
    v->key = k;
    v->klen = klen;
    s_enc_string(e, k, klen, "key");
    luaL_addchar(e->b, ':');
    s_enc_value(e, vidx);
}

/* Object members in the given key list (absolute index), from position 1. */
static void s_enc_members(struct enc *e, struct lvl *v, int t, int list, int first)
{
    lua_State *L = e->L;
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        s_enc_key_value(e, v, -2, lua_gettop(L), first);
        first = 0;
        lua_pop(L, 2);
    }
}

static void s_enc_table(struct enc *e, int idx)
{
    lua_State *L = e->L;
    const void *ptr = lua_topointer(L, idx);
    for (int i = 0; i < e->depth; i++)
        if (e->path[i].t == ptr)
            s_enc_fail(e, "cycle (a table that contains itself)");
    if (e->depth >= e->max_depth) {
        char msg[64];
        snprintf(msg, sizeof msg, "nesting deeper than %d", e->max_depth);
        s_enc_fail(e, msg);
    }
    if (!lua_checkstack(L, 12))
        s_enc_fail(e, "out of Lua stack");
    if (e->depth == LOCAL_LEVELS && e->path == e->local) {
        struct lvl *p = lua_newuserdatauv(L, sizeof *p * (size_t)(e->max_depth + 1), 0);
        memcpy(p, e->local, sizeof e->local);
        lua_replace(L, e->anchor);
        e->path = p;
    }
    struct lvl *v = &e->path[e->depth++];
    v->t = ptr;
    v->key = NULL;
    v->idx = -1;
    int top = lua_gettop(L);
    int kind = s_kind(L, idx, NULL);

    if (kind == KIND_OBJECT) {
        int m = top + 1;
        lua_Integer n = (lua_Integer)lua_rawlen(L, m), emitted = 0, total = 0;
        luaL_addchar(e->b, '{');
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, m, i) != LUA_TSTRING) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushvalue(L, -1);
            if (lua_rawget(L, idx) == LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            s_enc_key_value(e, v, -2, top + 3, emitted == 0);
            emitted++;
            lua_pop(L, 2);
        }
        v->key = NULL;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            total++;
        }
        if (total != emitted) {
            /* Keys set without json.set (or not string keys at all). */
            lua_createtable(L, 0, (int)n);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, m, i) == LUA_TSTRING) {
                    lua_pushboolean(L, 1);
                    lua_rawset(L, -3);
                } else {
                    lua_pop(L, 1);
                }
            }
            if (s_push_sorted_keys(L, idx, lua_gettop(L)))
                s_enc_fail(e, "cannot encode an object with a non-string key");
            s_enc_members(e, v, idx, lua_gettop(L), emitted == 0);
        }
        luaL_addchar(e->b, '}');
    } else {
        lua_Integer nint = 0, nstr = 0, max = 0;
        int bad = LUA_TNONE;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            int kt = lua_type(L, -1);
            if (kt == LUA_TSTRING) {
                nstr++;
            } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
                lua_Integer k = lua_tointeger(L, -1);
                nint++;
                if (k > max)
                    max = k;
            } else if (bad == LUA_TNONE) {
                bad = kt;
            }
        }
        if (kind == KIND_ARRAY && (nstr || bad != LUA_TNONE))
            s_enc_fail(e, "cannot encode an array (json.array) with a non-integer key");
        if (bad != LUA_TNONE || (nint && nstr)) {
            char msg[96];
            snprintf(msg, sizeof msg, "cannot encode a table with mixed or non-string keys (%s)",
                     bad != LUA_TNONE ? lua_typename(L, bad) : "integer and string keys");
            s_enc_fail(e, msg);
        }
        if (kind == KIND_ARRAY || nint) {
            if (max != nint) {
                char msg[96];
                snprintf(msg, sizeof msg, "cannot encode a sparse array (%lld elements, largest index %lld)",
                         (long long)nint, (long long)max);
                s_enc_fail(e, msg);
            }
            luaL_addchar(e->b, '[');
            for (lua_Integer i = 1; i <= max; i++) {
                if (i > 1)
                    luaL_addchar(e->b, ',');
                v->idx = i - 1;
                lua_rawgeti(L, idx, i);
                s_enc_value(e, top + 1);
                lua_pop(L, 1);
            }
            luaL_addchar(e->b, ']');
        } else if (nstr == 0) {
            luaL_addlstring(e->b, "{}", 2);
        } else {
            luaL_addchar(e->b, '{');
            s_push_sorted_keys(L, idx, 0);
            s_enc_members(e, v, idx, top + 1, 1);
            luaL_addchar(e->b, '}');
        }
    }
    lua_settop(L, top);
    e->depth--;
}

static void s_enc_value(struct enc *e, int idx)
{
    lua_State *L = e->L;
    char num[EF_JSON_NUMBUF];
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        s_enc_string(e, s, len, "string");
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            size_t n = ef_json_format_integer((long long)lua_tointeger(L, idx), num);
            luaL_addlstring(e->b, num, n);
        } else {
            double x = (double)lua_tonumber(L, idx);
            int n = ef_json_format_double(x, num);
            if (n < 0)
                s_enc_fail(e, isnan(x) ? "cannot encode NaN" : "cannot encode an infinite number");
            luaL_addlstring(e->b, num, (size_t)n);
        }
        break;
    case LUA_TTABLE:
        s_enc_table(e, idx);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            luaL_addlstring(e->b, "true", 4);
        else
            luaL_addlstring(e->b, "false", 5);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            luaL_addlstring(e->b, "null", 4);
            break;
        }
        s_enc_fail(e, "cannot encode a light userdata other than json.null");
    case LUA_TNIL:
        s_enc_fail(e, "cannot encode nil (use json.null)");
    default: {
        char msg[64];
        snprintf(msg, sizeof msg, "cannot encode a %s", luaL_typename(L, idx));
        s_enc_fail(e, msg);
    }
    }
}

static int l_json_encode(lua_State *L)
{
    struct enc e;
    luaL_Buffer b;
    luaL_checkany(L, 1);
    e.max_depth = s_opt_depth(L, 2);
    lua_settop(L, 2);
    /* A thread whose stack holds only the output buffer: the encoder keeps
     * tables on L's stack, which luaL_Buffer's stack discipline forbids.
     * One spare thread is kept in an upvalue and taken out while in use, so
     * a nested call (from a __gc during encoding) gets its own. */
    if (lua_type(L, UV_THREAD) == LUA_TTHREAD) {
        lua_pushvalue(L, UV_THREAD);
        lua_pushnil(L);
        lua_replace(L, UV_THREAD);
    } else {
        lua_newthread(L);
    }
    lua_State *T = lua_tothread(L, 3);
    lua_settop(T, 0);
    lua_pushnil(L); /* 4: anchor for a deep path array */
    e.L = L;
    e.b = &b;
    e.depth = 0;
    e.anchor = 4;
    e.path = e.local;
    luaL_buffinit(T, &b);
    s_enc_value(&e, 1);
    luaL_pushresult(&b);
    lua_xmove(T, L, 1);
    lua_pushvalue(L, 3);
    lua_replace(L, UV_THREAD);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Marks, keys, set, copy                                              */

static int l_json_array(lua_State *L)
{
    int foreign;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    int kind = s_kind(L, 1, &foreign);
    if (foreign)
        return luaL_argerror(L, 1, "table has a metatable of its own");
    (void)kind;
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

static int l_json_object(lua_State *L)
{
    int foreign;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_createtable(L, 0, OBJECT_ROOM); /* room for json.set to fill */
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    int kind = s_kind(L, 1, &foreign);
    if (foreign)
        return luaL_argerror(L, 1, "table has a metatable of its own");
    if (kind != KIND_OBJECT) {
        s_new_order(L, OBJECT_ROOM);
        lua_setmetatable(L, 1);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_json_is_array(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && s_kind(L, 1, NULL) == KIND_ARRAY);
    return 1;
}

static int l_json_is_object(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && s_kind(L, 1, NULL) == KIND_OBJECT);
    return 1;
}

static int l_json_keys(lua_State *L)
{
    int bad;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    int kind = s_kind(L, 1, NULL);
    if (kind == KIND_ARRAY)
        return luaL_argerror(L, 1, "expected a JSON object, got an array");
    if (kind == KIND_OBJECT)
        bad = s_push_object_keys(L, 1, 2);
    else
        bad = s_push_sorted_keys(L, 1, 0);
    if (bad)
        return luaL_argerror(L, 1, "table has a non-string key");
    return 1;
}

/* Position of key (absolute) in order table m (absolute), or 0.  Large
 * lists keep a key -> position index in m[0], rebuilt when stale. */
static lua_Integer s_find_key(lua_State *L, int m, int key)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, m);
    if (n < INDEX_MIN) {
        for (lua_Integer i = n; i >= 1; i--) {
            lua_rawgeti(L, m, i);
            int eq = lua_rawequal(L, -1, key);
            lua_pop(L, 1);
            if (eq)
                return i;
        }
        return 0;
    }
    if (lua_rawgeti(L, m, 0) == LUA_TTABLE) {
        lua_pushvalue(L, key);
        if (lua_rawget(L, -2) == LUA_TNUMBER) {
            lua_Integer pos = lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (pos >= 1 && pos <= n) {
                lua_rawgeti(L, m, pos);
                int eq = lua_rawequal(L, -1, key);
                lua_pop(L, 2);
                if (eq)
                    return pos;
            } else {
                lua_pop(L, 1);
            }
        } else {
            /* absent from the index: trust it if it covers the whole list */
            lua_pop(L, 1);
            lua_pushinteger(L, 0);
            lua_Integer covered = lua_rawget(L, -2) == LUA_TNUMBER ? lua_tointeger(L, -1) : -1;
            lua_pop(L, 2);
            if (covered == n)
                return 0;
        }
    } else {
        lua_pop(L, 1);
    }
    /* (Re)build the index; idx[0] records how many positions it covers. */
    lua_Integer found = 0;
    lua_createtable(L, 0, (int)n + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, m, i);
        if (!found && lua_rawequal(L, -1, key))
            found = i;
        lua_pushinteger(L, i);
        lua_rawset(L, -3);
    }
    lua_pushinteger(L, n);
    lua_rawseti(L, -2, 0);
    lua_rawseti(L, m, 0);
    return found;
}

/* Removes position pos from order table m; drops the index. */
static void s_remove_key(lua_State *L, int m, lua_Integer pos)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, m);
    for (lua_Integer i = pos; i < n; i++) {
        lua_rawgeti(L, m, i + 1);
        lua_rawseti(L, m, i);
    }
    lua_pushnil(L);
    lua_rawseti(L, m, n);
    lua_pushnil(L);
    lua_rawseti(L, m, 0);
}

static void s_append_key(lua_State *L, int m, int key)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, m) + 1;
    lua_pushvalue(L, key);
    lua_rawseti(L, m, n);
    if (lua_rawgeti(L, m, 0) == LUA_TTABLE) {
        lua_pushvalue(L, key);
        lua_pushinteger(L, n);
        lua_rawset(L, -3);
        lua_pushinteger(L, n);
        lua_rawseti(L, -2, 0);
    }
    lua_pop(L, 1);
}

/* Is order table m (absolute) shared by several objects? */
static int s_is_shared(lua_State *L, int m)
{
    int shared = lua_rawgeti(L, m, SHARED_SLOT) != LUA_TNIL;
    lua_pop(L, 1);
    return shared;
}

static void s_mark_shared(lua_State *L, int m)
{
    if (!s_is_shared(L, m)) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, m, SHARED_SLOT);
    }
}

/* Gives obj (absolute) a private copy of its shared order table m
 * (absolute); pushes it and returns its index. */
static int s_unshare(lua_State *L, int obj, int m)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, m);
    if (n > INT32_MAX - OBJECT_ROOM)
        luaL_error(L, "emrflow.json: object too large");
    s_new_order(L, (int)n + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, m, i);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_setmetatable(L, obj);
    return lua_gettop(L);
}

/* obj[key] = value recording key's place, as json.set defines it.  obj, key
 * and value are absolute indices; m is obj's order table (absolute), or 0
 * when obj has none yet (one is made).  Leaves the stack as it found it. */
static void s_set(lua_State *L, int obj, int m, int key, int value)
{
    int top = lua_gettop(L);
    if (!m) {
        s_new_order(L, OBJECT_ROOM);
        lua_pushvalue(L, -1);
        lua_setmetatable(L, obj);
        m = lua_gettop(L);
    } else if (s_is_shared(L, m)) {
        m = s_unshare(L, obj, m);
    }
    lua_Integer pos = s_find_key(L, m, key);
    if (lua_isnil(L, value)) {
        if (pos)
            s_remove_key(L, m, pos);
    } else if (!pos) {
        s_append_key(L, m, key);
    } else {
        lua_pushvalue(L, key);
        if (lua_rawget(L, obj) == LUA_TNIL) {
            /* recorded, then removed by plain assignment: new again, so last */
            s_remove_key(L, m, pos);
            s_append_key(L, m, key);
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, key);
    lua_pushvalue(L, value);
    lua_rawset(L, obj);
    lua_settop(L, top);
}

static int l_json_set(lua_State *L)
{
    int foreign;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TSTRING);
    lua_settop(L, 3);
    int kind = s_kind(L, 1, &foreign);
    if (kind == KIND_ARRAY)
        return luaL_argerror(L, 1, "expected a JSON object, got an array");
    if (foreign)
        return luaL_argerror(L, 1, "table has a metatable of its own");
    s_set(L, 1, kind == KIND_OBJECT ? 4 : 0, 2, 3);
    lua_settop(L, 1);
    return 1;
}

/* json.copy_shallow(v [, key, value]): a new table holding v's members (the
 * values themselves, not copies) with v's mark and key order; with a key,
 * the copy then gets copy[key] = value as json.set does it (value nil
 * deletes).  v itself is never changed.  Non-tables come back as they are. */
/* The work of json.copy_shallow on its arguments at b+1 (v, a table), b+2
 * (key or nil) and b+3 (value), with nothing above them: leaves the copy at
 * b+5 and the stack top there.  b+4 is scratch. */
static void s_copy_shallow(lua_State *L, int b, int kind, int with_key)
{
    int v = b + 1, key = b + 2, value = b + 3, mo = b + 4, copy = b + 5;
    luaL_checkstack(L, 8, "emrflow.json");
    if (kind == KIND_ARRAY) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, v);
        if (n > INT32_MAX)
            luaL_error(L, "emrflow.json: copy_shallow: array too long");
        lua_settop(L, mo);
        lua_createtable(L, (int)n, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, v, i);
            lua_rawseti(L, copy, i);
        }
        lua_pushvalue(L, UV_ARRAY_MT);
        lua_setmetatable(L, copy);
        return;
    }
    /* Objects and plain tables: every member; an object's order list too.
     * An object is sized by its order list (members set without json.set
     * make the copy grow as they go in), a plain table by counting. */
    int members = 0;
    if (kind != KIND_OBJECT) {
        lua_pushnil(L);
        while (lua_next(L, v)) {
            lua_pop(L, 1);
            members++;
        }
        if (members > INT32_MAX - 1)
            luaL_error(L, "emrflow.json: copy_shallow: table too large");
    }
    int m = 0;
    if (kind == KIND_OBJECT) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, mo);
        if (n > INT32_MAX - 1)
            luaL_error(L, "emrflow.json: copy_shallow: table too large");
        members = (int)n;
        /* The copy lists the same keys as v unless the key changes the list:
         * then v's m is shared (and frozen) rather than copied. */
        int same = !with_key;
        if (with_key && !lua_isnil(L, value)) {
            lua_pushvalue(L, key);
            int present = lua_rawget(L, v) != LUA_TNIL;
            lua_pop(L, 1);
            same = present && s_find_key(L, mo, key) != 0;
        }
        lua_createtable(L, 0, members + (same ? 0 : with_key)); /* copy */
        if (same) {
            s_mark_shared(L, mo);
            lua_pushvalue(L, mo);
            lua_setmetatable(L, copy);
            lua_pushnil(L);
            while (lua_next(L, v)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, copy);
            }
            if (with_key) {
                lua_pushvalue(L, key);
                lua_pushvalue(L, value);
                lua_rawset(L, copy);
            }
            lua_settop(L, copy);
            return;
        }
        s_new_order(L, (int)n + with_key); /* copy + 1: its order */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, mo, i);
            lua_rawseti(L, copy + 1, i);
        }
        lua_pushvalue(L, copy + 1);
        lua_setmetatable(L, copy);
        m = copy + 1;
    } else {
        lua_settop(L, value);
        lua_pushnil(L); /* mo: no order */
        lua_createtable(L, 0, members + with_key); /* copy */
    }
    lua_pushnil(L);
    while (lua_next(L, v)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
    }
    if (with_key)
        s_set(L, copy, m, key, value);
    lua_settop(L, copy);
}

static int l_json_copy_shallow(lua_State *L)
{
    int foreign;
    luaL_checkany(L, 1);
    int with_key = !lua_isnoneornil(L, 2);
    if (with_key)
        luaL_checktype(L, 2, LUA_TSTRING);
    lua_settop(L, 3);
    if (lua_type(L, 1) != LUA_TTABLE) {
        if (with_key)
            return luaL_argerror(L, 1, "expected a JSON object");
        lua_settop(L, 1);
        return 1;
    }
    int kind = s_kind(L, 1, &foreign); /* 4: m (object) */
    if (foreign)
        return luaL_argerror(L, 1, "table has a metatable of its own");
    if (kind == KIND_ARRAY && with_key)
        return luaL_argerror(L, 1, "expected a JSON object, got an array");
    if (kind != KIND_OBJECT)
        lua_pushnil(L); /* 4: no order */
    s_copy_shallow(L, 0, kind, with_key);
    return 1;
}

int ef_l_json_set_copy(lua_State *L, int obj, int key, int value)
{
    obj = lua_absindex(L, obj);
    key = lua_absindex(L, key);
    value = lua_absindex(L, value);
    int b = lua_gettop(L);
    luaL_checkstack(L, 8, "emrflow.json");
    lua_pushvalue(L, obj);
    lua_pushvalue(L, key);
    lua_pushvalue(L, value);
    int foreign;
    if (s_kind(L, b + 1, &foreign) != KIND_OBJECT || foreign) {
        lua_settop(L, b);
        return 0;
    }
    s_copy_shallow(L, b, KIND_OBJECT, 1);
    lua_replace(L, b + 1);
    lua_settop(L, b + 1);
    return 1;
}

/* json.object_of(k1, v1, k2, v2, ...): a new object with those members in
 * that order; a pair whose value is nil is left out; a key given twice keeps
 * its first place and its last value. */
static int l_json_object_of(lua_State *L)
{
    int top = lua_gettop(L);
    if (top % 2)
        return luaL_error(L, "emrflow.json: object_of: expected key/value pairs, got %d arguments", top);
    int pairs = top / 2;
    for (int i = 1; i <= top; i += 2)
        luaL_checktype(L, i, LUA_TSTRING);
    luaL_checkstack(L, 4, "emrflow.json");
    lua_createtable(L, 0, pairs);   /* top + 1 */
    s_new_order(L, pairs);          /* top + 2 */
    int obj = top + 1, m = top + 2;
    lua_Integer cnt = 0;
    for (int i = 1; i <= top; i += 2) {
        if (lua_isnil(L, i + 1))
            continue;
        lua_pushvalue(L, i);
        if (lua_rawget(L, obj) == LUA_TNIL) {
            lua_pushvalue(L, i);
            lua_rawseti(L, m, ++cnt);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, i);
        lua_pushvalue(L, i + 1);
        lua_rawset(L, obj);
    }
    lua_setmetatable(L, obj);
    return 1;
}

/* json.keyset(k1, ..., kn): the shape of objects that hold exactly those keys
 * in that order, for json.object_from.  The keys must be distinct strings. */
static int l_json_keyset(lua_State *L)
{
    int n = lua_gettop(L);
    if (n > MAX_KEYSET)
        return luaL_error(L, "emrflow.json: keyset: at most %d keys, got %d", MAX_KEYSET, n);
    for (int i = 1; i <= n; i++) {
        luaL_checktype(L, i, LUA_TSTRING);
        for (int j = 1; j < i; j++)
            if (lua_rawequal(L, i, j))
                return luaL_error(L, "emrflow.json: keyset: key '%s' given twice", lua_tostring(L, i));
    }
    s_new_order(L, n);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i);
    }
    lua_pushboolean(L, 1);
    lua_rawseti(L, -2, SHARED_SLOT);
    return 1;
}

/* json.object_from(keyset, v1, ..., vn): a new object with keyset's keys in
 * order holding v1..vn (the values themselves).  When a value is nil its key
 * is left out (the object then gets an order of its own). */
/* Pushes a new object with the keys of keyset ks (absolute; checked by the
 * caller) holding the n values from first on (absolute), as
 * json.object_from does; n is at most the keyset's length. */
static void s_object_from(lua_State *L, int ks, int first, int n)
{
    luaL_checkstack(L, 4, "emrflow.json");
    lua_createtable(L, 0, n);
    int obj = lua_gettop(L), holes = 0;
    for (int i = 0; i < n; i++) {
        if (lua_isnil(L, first + i)) {
            holes++;
            continue;
        }
        lua_rawgeti(L, ks, i + 1);
        lua_pushvalue(L, first + i);
        lua_rawset(L, obj);
    }
    if (!holes) {
        lua_pushvalue(L, ks);
    } else {
        lua_Integer cnt = 0;
        s_new_order(L, n - holes);
        for (int i = 0; i < n; i++) {
            if (lua_isnil(L, first + i))
                continue;
            lua_rawgeti(L, ks, i + 1);
            lua_rawseti(L, -2, ++cnt);
        }
    }
    lua_setmetatable(L, obj);
}

void ef_l_json_object_from(lua_State *L, int ks, int first, int n)
{
    s_object_from(L, lua_absindex(L, ks), lua_absindex(L, first), n);
}

/* json.object_from(keyset, v1, ..., vn): a new object with keyset's keys in
 * order holding v1..vn (the values themselves).  When a value is nil its key
 * is left out (the object then gets an order of its own). */
static int l_json_object_from(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_getmetatable(L, 1) || !lua_rawequal(L, -1, UV_OBJ_MARK) || !s_is_shared(L, 1))
        return luaL_argerror(L, 1, "expected a keyset (json.keyset)");
    lua_pop(L, 1);
    int n = (int)lua_rawlen(L, 1);
    if (lua_gettop(L) > n + 1)
        return luaL_error(L, "emrflow.json: object_from: %d values for %d keys", lua_gettop(L) - 1, n);
    lua_settop(L, n + 1);
    s_object_from(L, 1, 2, n);
    return 1;
}

/* The encoded length of the value at idx (absolute), as json.encode would
 * write it, counting stops once it passes limit.  Returns -1 for what
 * encode would reject by type, -2 for nesting deeper than max_depth. */
static lua_Integer s_size(lua_State *L, int idx, lua_Integer limit, int depth, int max_depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &len);
        lua_Integer n = (lua_Integer)len + 2;
        for (size_t i = 0; i < len; i++) {
            unsigned c = s[i];
            if (c < 0x80 && !s_plain[c])
                n += (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                      c == '\t') ? 1 : 5;
        }
        return n;
    }
    case LUA_TNUMBER: {
        char num[EF_JSON_NUMBUF];
        if (lua_isinteger(L, idx))
            return (lua_Integer)ef_json_format_integer((long long)lua_tointeger(L, idx), num);
        int k = ef_json_format_double((double)lua_tonumber(L, idx), num);
        return k < 0 ? -1 : k;
    }
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? 4 : 5;
    case LUA_TLIGHTUSERDATA:
        return lua_touserdata(L, idx) == NULL ? 4 : -1;
    case LUA_TTABLE:
        break;
    default:
        return -1;
    }
    if (depth >= max_depth)
        return -2;
    if (!lua_checkstack(L, 4))
        return -2;
    int top = lua_gettop(L);
    int kind = KIND_PLAIN; /* objects and plain tables are counted alike */
    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, UV_ARRAY_MT))
            kind = KIND_ARRAY;
        lua_settop(L, top);
    }
    lua_Integer total = 2, count = 0;
    if (kind == KIND_ARRAY) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= n && total <= limit; i++) {
            lua_rawgeti(L, idx, i);
            lua_Integer k = s_size(L, top + 1, limit - total, depth + 1, max_depth);
            lua_pop(L, 1);
            if (k < 0)
                return k;
            total += k + (i > 1);
        }
        return total;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (total > limit) {
            lua_settop(L, top);
            return total;
        }
        lua_Integer k = s_size(L, top + 2, limit - total, depth + 1, max_depth);
        lua_pop(L, 1);
        if (k < 0) {
            lua_settop(L, top);
            return k;
        }
        total += k + (count > 0) + 1; /* value, comma, colon */
        if (lua_type(L, top + 1) == LUA_TSTRING) {
            total += s_size(L, top + 1, limit, depth + 1, max_depth);
        } else if (!lua_isinteger(L, top + 1)) {
            lua_settop(L, top);
            return -1;
        } else {
            total -= 1; /* an array-like plain table: no key, no colon */
        }
        count++;
    }
    return total;
}

/* json.size(v [, limit]) --> the length of json.encode(v) without making the
 * text; once the count passes limit it stops and returns a number > limit.
 * nil when v cannot be encoded (by type or depth; shapes encode rejects,
 * such as sparse arrays, are counted anyway). */
static int l_json_size(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_Integer limit = luaL_optinteger(L, 2, LUA_MAXINTEGER / 2);
    lua_settop(L, 1);
    lua_Integer n = s_size(L, 1, limit, 0, DEFAULT_DEPTH);
    if (n < 0)
        luaL_pushfail(L);
    else
        lua_pushinteger(L, n);
    return 1;
}

lua_Integer ef_l_json_size(lua_State *L, int idx, lua_Integer limit)
{
    return s_size(L, lua_absindex(L, idx), limit, 0, DEFAULT_DEPTH);
}

int ef_l_json_is_object(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    int ours = 0;
    if (lua_getmetatable(L, -1)) {
        ours = lua_rawequal(L, -1, UV_OBJ_MARK);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ours;
}

static void s_copy(lua_State *L, int idx, int depth)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    if (depth > MAX_DEPTH_LIMIT)
        luaL_error(L, "emrflow.json: copy: nesting deeper than %d (a cycle?)", MAX_DEPTH_LIMIT);
    luaL_checkstack(L, 10, "emrflow.json: copy");
    int top = lua_gettop(L);
    int kind = s_kind(L, idx, NULL);
    if (kind == KIND_OBJECT) {
        if (s_push_object_keys(L, idx, top + 1))
            luaL_error(L, "emrflow.json: copy: object has a non-string key");
        int keys = top + 2;
        lua_Integer n = (lua_Integer)lua_rawlen(L, keys);
        lua_createtable(L, 0, (int)n); /* top + 3 */
        s_new_order(L, (int)n);        /* top + 4 */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, keys, i);
            lua_pushvalue(L, -1);
            lua_rawseti(L, top + 4, i);
            lua_pushvalue(L, -1);
            lua_rawget(L, idx);
            s_copy(L, lua_gettop(L), depth + 1);
            lua_remove(L, -2);
            lua_rawset(L, top + 3);
        }
        lua_setmetatable(L, top + 3);
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return;
    }
    lua_createtable(L, kind == KIND_ARRAY ? (int)lua_rawlen(L, idx) : 0, 0);
    int t = top + 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        s_copy(L, lua_gettop(L), depth + 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, t);
    }
    if (kind == KIND_ARRAY) {
        lua_pushvalue(L, UV_ARRAY_MT);
        lua_setmetatable(L, t);
    }
}

void ef_l_json_copy(lua_State *L, int idx)
{
    s_copy(L, lua_absindex(L, idx), 0);
}

static int l_json_copy(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    s_copy(L, 1, 0);
    return 1;
}

int ef_l_open_json(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"decode", l_json_decode},     {"array", l_json_array}, {"object", l_json_object},
        {"is_array", l_json_is_array}, {"is_object", l_json_is_object},
        {"keys", l_json_keys},         {"set", l_json_set},     {"copy", l_json_copy},
        {"copy_shallow", l_json_copy_shallow}, {"object_of", l_json_object_of},
        {"size", l_json_size},         {"keyset", l_json_keyset}, {"object_from", l_json_object_from},
        {NULL, NULL},
    };
    luaL_checkstack(L, 8, "emrflow.json");
    lua_createtable(L, 0, 16); /* core json */
    lua_createtable(L, 0, 2);  /* ARRAY_MT */
    lua_pushliteral(L, "emrflow.json.array");
    lua_setfield(L, -2, "__name");
    lua_createtable(L, 0, 1); /* OBJ_MARK */
    lua_pushliteral(L, "emrflow.json.object");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -2);
    lua_setfield(L, -4, "array_mt");
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "object_mark");
    /* encode: the marks plus a slot for its spare buffer thread */
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushnil(L);
    lua_pushcclosure(L, l_json_encode, 3);
    lua_setfield(L, -4, "encode");
    luaL_setfuncs(L, fns, 2); /* pops the marks */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");
    return 0;
}
