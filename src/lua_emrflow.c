/* luaopen_emrflow_core: one shared object, one opener per concern. */
#include "l_util.h"

int luaopen_emrflow_core(lua_State *L);
int ef_l_open_regex(lua_State *L);  /* l_regex.c */
int ef_l_open_digest(lua_State *L); /* l_digest.c */
int ef_l_open_store(lua_State *L);  /* l_store.c */
int ef_l_open_emr(lua_State *L);    /* l_emr.c */
int ef_l_open_asl(lua_State *L);    /* l_asl.c */
int ef_l_open_hdesc(lua_State *L);  /* l_hdesc.c */

static const lua_CFunction s_openers[] = {
    ef_l_open_util, ef_l_open_json, ef_l_open_sigv4, ef_l_open_http, ef_l_open_signal,
    ef_l_open_regex, ef_l_open_digest, ef_l_open_store, ef_l_open_emr, ef_l_open_asl,
    ef_l_open_hdesc,
    NULL,
};

int luaopen_emrflow_core(lua_State *L)
{
    luaL_checkversion(L);
    lua_newtable(L);                                    /* core */
    for (int i = 0; s_openers[i]; i++)
        s_openers[i](L);
    return 1;
}
