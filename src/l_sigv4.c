/* Placeholder until the sigv4 concern lands. */
#include "l_util.h"

int ef_l_open_sigv4(lua_State *L)
{
    (void)L;
    return 0;
}
