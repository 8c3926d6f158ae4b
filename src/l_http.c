/* Placeholder until the http concern lands. */
#include "l_util.h"

int ef_l_open_http(lua_State *L)
{
    (void)L;
    return 0;
}
