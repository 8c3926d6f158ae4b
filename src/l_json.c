/* Placeholder until the json concern lands. */
#include "l_util.h"

int ef_l_open_json(lua_State *L)
{
    (void)L;
    return 0;
}
