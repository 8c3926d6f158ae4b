/* core.signal: catch SIGINT / SIGTERM as a flag the caller polls.
 *
 *   core.signal.watch()      -- install handlers for SIGINT and SIGTERM (again: keeps a pending one)
 *   core.signal.pending()    --> "SIGINT" | "SIGTERM" | nil   (and clears it)
 *   core.signal.unwatch()    -- restore the default dispositions
 *
 * The handler only stores the signal number (async-signal-safe); the Lua side
 * checks it between scheduler steps, so no Lua code ever runs in a handler. */
#include "l_util.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t s_caught;
static int s_watching; /* our handlers are installed */

static void s_on_signal(int sig)
{
    s_caught = sig;
}

static void s_install(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Watching again while already watching keeps a signal caught meanwhile: one that arrived
 * between two watch() calls (say, between starting an execution and driving it) is not lost. */
static int l_signal_watch(lua_State *L)
{
    (void)L;
    if (!s_watching)
        s_caught = 0;
    s_install(s_on_signal);
    s_watching = 1;
    return 0;
}

static int l_signal_unwatch(lua_State *L)
{
    (void)L;
    s_install(SIG_DFL);
    s_watching = 0;
    return 0;
}

static int l_signal_pending(lua_State *L)
{
    int sig = (int)s_caught;
    s_caught = 0;
    if (sig == SIGINT)
        lua_pushliteral(L, "SIGINT");
    else if (sig == SIGTERM)
        lua_pushliteral(L, "SIGTERM");
    else
        lua_pushnil(L);
    return 1;
}

int ef_l_open_signal(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"watch", l_signal_watch},
        {"unwatch", l_signal_unwatch},
        {"pending", l_signal_pending},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "signal");
    return 0;
}
