/* core.regex_*: the Lua binding of ef_regex (thin: check, call, push).
 *
 *   core.regex_compile(pattern, flags) --> emrflow.Regex | nil, message, position
 *   re:exec(subject [, init])          --> start, stop, caps | nil  (see lua/emrflow/regex.lua)
 *   re:test(subject)                   --> boolean
 *   re:full_match(subject)             --> boolean (anchored at both ends)
 *   re.groups                          --> number of capture groups
 */
#include <stdlib.h>
#include <string.h>

#include "ef_regex.h"
#include "l_util.h"

#define EF_REGEX_MT "emrflow.Regex"

struct l_regex {
    struct ef_regex *re;
};

static struct ef_regex *s_check(lua_State *L)
{
    struct l_regex *u = luaL_checkudata(L, 1, EF_REGEX_MT);
    return u->re;
}

static int l_regex_compile(lua_State *L)
{
    size_t len;
    const char *pat = luaL_checklstring(L, 1, &len);
    const char *fl = luaL_optstring(L, 2, "");
    unsigned flags = 0;
    for (const char *f = fl; *f; f++) {
        switch (*f) {
        case 'i': flags |= EF_REGEX_ICASE; break;
        case 'm': flags |= EF_REGEX_MULTILINE; break;
        case 's': flags |= EF_REGEX_DOTALL; break;
        case 'j': flags |= EF_REGEX_JAVA; break;
        default:
            lua_pushnil(L);
            lua_pushfstring(L, "unknown flag '%c' (expected i, m, s or j)", *f);
            lua_pushinteger(L, 0);
            return 3;
        }
    }
    struct l_regex *u = lua_newuserdatauv(L, sizeof *u, 0); /* the owner first */
    u->re = NULL;
    luaL_setmetatable(L, EF_REGEX_MT);
    struct ef_regex_err err;
    u->re = ef_regex_compile(pat, len, flags, &err);
    if (!u->re) {
        lua_pushnil(L);
        lua_pushstring(L, err.message);
        lua_pushinteger(L, (lua_Integer)err.position);
        return 3;
    }
    return 1;
}

static int l_regex_gc(lua_State *L)
{
    struct l_regex *u = luaL_checkudata(L, 1, EF_REGEX_MT);
    ef_regex_free(u->re);
    u->re = NULL;
    return 0;
}

/* Runs the VM; pushes nothing. Returns 1 match, 0 none; raises on no memory. */
static int s_exec(lua_State *L, struct ef_regex *re, size_t init, int full, ptrdiff_t *caps)
{
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int r = ef_regex_exec(re, s, n, init, full, caps);
    if (r < 0)
        return luaL_error(L, "regex: out of memory matching a %d-byte subject", (int)n);
    return r;
}

static int l_regex_exec(lua_State *L)
{
    struct ef_regex *re = s_check(L);
    size_t n;
    luaL_checklstring(L, 2, &n);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, init >= 1, 3, "init must be 1 or more");
    if ((lua_Unsigned)init > (lua_Unsigned)n + 1) {
        lua_pushnil(L);
        return 1;
    }
    int groups = ef_regex_groups(re);
    size_t ncap = 2 * ((size_t)groups + 1);
    ptrdiff_t local[32];
    ptrdiff_t *caps = ncap <= 32 ? local : lua_newuserdatauv(L, ncap * sizeof *caps, 0);
    if (!s_exec(L, re, (size_t)init - 1, 0, caps)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)caps[0] + 1);
    lua_pushinteger(L, (lua_Integer)caps[1]);
    lua_createtable(L, 2 * groups, 0);
    for (int g = 1; g <= groups; g++) {
        ptrdiff_t s = caps[2 * g], e = caps[2 * g + 1];
        if (s < 0 || e < 0) {
            lua_pushboolean(L, 0);
            lua_rawseti(L, -2, 2 * g - 1);
            lua_pushboolean(L, 0);
        } else {
            lua_pushinteger(L, (lua_Integer)s + 1);
            lua_rawseti(L, -2, 2 * g - 1);
            lua_pushinteger(L, (lua_Integer)e);
        }
        lua_rawseti(L, -2, 2 * g);
    }
    return 3;
}

static int l_regex_test(lua_State *L)
{
    struct ef_regex *re = s_check(L);
    lua_pushboolean(L, s_exec(L, re, 0, 0, NULL));
    return 1;
}

static int l_regex_full_match(lua_State *L)
{
    struct ef_regex *re = s_check(L);
    lua_pushboolean(L, s_exec(L, re, 0, 1, NULL));
    return 1;
}

static int l_regex_index(lua_State *L)
{
    struct ef_regex *re = s_check(L);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "groups") == 0) {
        lua_pushinteger(L, ef_regex_groups(re));
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
    return 1;
}

static int l_regex_tostring(lua_State *L)
{
    struct ef_regex *re = s_check(L);
    lua_pushfstring(L, "emrflow.Regex (%d groups)", ef_regex_groups(re));
    return 1;
}

int ef_l_open_regex(lua_State *L); /* called by lua_emrflow.c */

int ef_l_open_regex(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "exec", l_regex_exec },
        { "test", l_regex_test },
        { "full_match", l_regex_full_match },
        { NULL, NULL },
    };
    if (luaL_newmetatable(L, EF_REGEX_MT)) {
        lua_pushcfunction(L, l_regex_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_regex_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_regex_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_regex_compile);
    lua_setfield(L, -2, "regex_compile");
    return 0;
}
