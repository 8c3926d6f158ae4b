/* Shared helpers of the Lua binding files (l_*.c). */
#ifndef EF_L_UTIL_H
#define EF_L_UTIL_H

#include <lua.h>
#include <lauxlib.h>

#define EF_ERROR_MT "emrflow.Error"

/* Each concern adds its functions to the core module table at the top of
 * the stack and leaves the stack as it found it. */
int ef_l_open_util(lua_State *L);
int ef_l_open_json(lua_State *L);
int ef_l_open_sigv4(lua_State *L);
int ef_l_open_http(lua_State *L);
int ef_l_open_signal(lua_State *L);

/* An error object (a table with the shared "emrflow.Error" metatable).
 * Fields left NULL / 0 / -1 are omitted. Pushes the table. */
struct ef_l_error {
    const char *code;       /* "http", "timeout", "credentials", "aws", "json", ... */
    const char *message;
    int status;             /* HTTP status, 0 when none */
    const char *aws_code;
    const char *request_id;
    int retryable;          /* 0 or 1 */
};
void ef_l_pusherror(lua_State *L, const struct ef_l_error *e);
/* Pushes nil and the error object: the "fail" shape. Returns 2. */
int ef_l_pushfail(lua_State *L, const struct ef_l_error *e);

#endif
