/* core.digest(alg, data) --> raw digest bytes | nil, message (thin binding of ef_digest). */
#include "ef_digest.h"
#include "l_util.h"

static int l_digest(lua_State *L)
{
    const char *alg = luaL_checkstring(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    unsigned char out[EF_DIGEST_MAX];
    int len = ef_digest(alg, data, n, out);
    if (len < 0) {
        lua_pushnil(L);
        if (len == EF_DIGEST_UNKNOWN)
            lua_pushfstring(L, "unknown digest algorithm '%s' (expected MD5, SHA-1, SHA-256, "
                               "SHA-384 or SHA-512)", alg);
        else
            lua_pushfstring(L, "OpenSSL could not compute %s", alg);
        return 2;
    }
    lua_pushlstring(L, (const char *)out, (size_t)len);
    return 1;
}

int ef_l_open_digest(lua_State *L); /* called by lua_emrflow.c */

int ef_l_open_digest(lua_State *L)
{
    lua_pushcfunction(L, l_digest);
    lua_setfield(L, -2, "digest");
    return 0;
}
