/* The error object shared by C and Lua, and the module's common helpers. */
#include "l_util.h"

#include <time.h>

static int s_error_tostring(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "emrflow: ");
    lua_getfield(L, 1, "aws_code");                     /* e aws_code */
    if (lua_isstring(L, -1)) {
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 1);
        lua_getfield(L, 1, "code");
        luaL_addstring(&b, lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "status");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
        lua_pushfstring(L, " (HTTP %d)", (int)lua_tointeger(L, -1));
        lua_remove(L, -2);
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "message");
    if (lua_isstring(L, -1)) {
        luaL_addstring(&b, ": ");
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "request_id");
    if (lua_isstring(L, -1)) {
        luaL_addstring(&b, " [request ");
        luaL_addvalue(&b);
        luaL_addchar(&b, ']');
    } else {
        lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    return 1;
}

static void s_setstr(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void ef_l_pusherror(lua_State *L, const struct ef_l_error *e)
{
    lua_createtable(L, 0, 6);
    s_setstr(L, "code", e->code);
    s_setstr(L, "message", e->message);
    if (e->status > 0) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    s_setstr(L, "aws_code", e->aws_code);
    s_setstr(L, "request_id", e->request_id);
    lua_pushboolean(L, e->retryable);
    lua_setfield(L, -2, "retryable");
    luaL_setmetatable(L, EF_ERROR_MT);
}

int ef_l_pushfail(lua_State *L, const struct ef_l_error *e)
{
    luaL_pushfail(L);
    ef_l_pusherror(L, e);
    return 2;
}

/* core.now(): wall-clock seconds since the epoch, with sub-second part. */
static int l_util_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.monotonic(): seconds on a clock that never jumps. */
static int l_util_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.cpu(): process CPU seconds (user + system). */
static int l_util_cpu(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

int ef_l_open_util(lua_State *L)
{
    lua_pushcfunction(L, l_util_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, l_util_monotonic);
    lua_setfield(L, -2, "monotonic");
    lua_pushcfunction(L, l_util_cpu);
    lua_setfield(L, -2, "cpu");
    if (luaL_newmetatable(L, EF_ERROR_MT)) {            /* core mt */
        lua_pushcfunction(L, s_error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, EF_ERROR_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_setfield(L, -2, "error_mt");                    /* core */
    return 0;
}
