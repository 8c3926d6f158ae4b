/* emrflow-host: a minimal C program that embeds Lua 5.4 and drives emrflow executions from
 * its own poll(2) loop, next to work of its own (a periodic tick), never blocking in emrflow.
 *
 *   emrflow-host SCRIPT [ARG...]
 *
 * SCRIPT (run with ARG... as `...` and in the global `arg`) starts executions and returns
 *   { scheduler = s,                   -- an emrflow scheduler (required)
 *     interval_ms = 100,               -- the host's own timer (default 100)
 *     tick = function(now) ... end,    -- the host's own periodic work; false ends the loop
 *     finish = function() ... end }    -- called at the end; an integer return is the exit code
 * Without tick the loop ends when the scheduler has nothing left to wait for.
 *
 * Each turn: ask the scheduler what to wait for (s:sockets(), s:timeout()), poll those
 * sockets together with the host's own timer, run the host's tick when it is due, and call
 * s:step(0) when a socket is ready or the scheduler's timeout has passed. Every call into
 * Lua is protected: an error is reported with its traceback and ends the program (exit 1),
 * it never unwinds through the loop. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct host {
    lua_State *L;
    int app;                    /* registry ref of the script's table */
    int sched;                  /* registry ref of the scheduler */
    struct pollfd *pfds;
    size_t npfds, cap;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function below nargs arguments on the stack; leaves nres results. On error
 * prints it with what was being done and returns 0 (the stack is balanced either way). */
static int call(lua_State *L, int nargs, int nres, const char *what)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        fprintf(stderr, "emrflow-host: %s: %s\n", what, lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* Pushes s[method] and s: ready for call(L, 1 + extra args, ...). */
static void push_method(struct host *h, const char *method)
{
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->sched);
    lua_getfield(h->L, -1, method);
    lua_insert(h->L, -2);
}

/* s:timeout() in milliseconds, -1 for nil (nothing to wait for); -2 on error. */
static long long sched_timeout(struct host *h)
{
    push_method(h, "timeout");
    if (!call(h->L, 1, 1, "scheduler:timeout()"))
        return -2;
    long long ms = -1;
    if (lua_isnumber(h->L, -1)) {
        double t = lua_tonumber(h->L, -1) * 1000.0;
        ms = t <= 0 ? 0 : (long long)t + ((double)(long long)t < t);   /* round up */
    }
    lua_pop(h->L, 1);
    return ms;
}

/* s:sockets() into h->pfds; 0 on error. */
static int sched_sockets(struct host *h)
{
    lua_State *L = h->L;
    push_method(h, "sockets");
    if (!call(L, 1, 1, "scheduler:sockets()"))
        return 0;
    size_t n = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
    if (n > h->cap) {
        struct pollfd *p = realloc(h->pfds, n * sizeof *p);
        if (!p) {
            fprintf(stderr, "emrflow-host: out of memory\n");
            lua_pop(L, 1);
            return 0;
        }
        h->pfds = p;
        h->cap = n;
    }
    h->npfds = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        lua_getfield(L, -1, "fd");
        lua_getfield(L, -2, "read");
        lua_getfield(L, -3, "write");
        struct pollfd *p = &h->pfds[h->npfds++];
        p->fd = (int)lua_tointeger(L, -3);
        p->events = (short)((lua_toboolean(L, -2) ? POLLIN : 0) |
                            (lua_toboolean(L, -1) ? POLLOUT : 0));
        p->revents = 0;
        lua_pop(L, 4);
    }
    lua_pop(L, 1);
    return 1;
}

/* The host's own periodic work: app.tick(now_seconds). 1 = go on, 0 = stop, -1 = error. */
static int host_tick(struct host *h)
{
    lua_State *L = h->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->app);
    lua_getfield(L, -1, "tick");
    lua_remove(L, -2);
    lua_pushnumber(L, (double)now_ms() / 1000.0);
    if (!call(L, 1, 1, "tick"))
        return -1;
    int go_on = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
    lua_pop(L, 1);
    return go_on;
}

static int has_field(struct host *h, const char *name, int type)
{
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->app);
    int t = lua_getfield(h->L, -1, name);
    lua_pop(h->L, 2);
    return t == type;
}

static long interval_of(struct host *h)
{
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->app);
    lua_getfield(h->L, -1, "interval_ms");
    long v = lua_isinteger(h->L, -1) ? (long)lua_tointeger(h->L, -1) : 100;
    lua_pop(h->L, 2);
    return v > 0 ? v : 100;
}

/* The loop. Returns 0, or 1 after an error. */
static int run(struct host *h)
{
    int with_tick = has_field(h, "tick", LUA_TFUNCTION);
    long interval = interval_of(h);
    long long next_tick = now_ms() + interval;
    for (;;) {
        long long t = sched_timeout(h);
        if (t == -2 || !sched_sockets(h))
            return 1;
        if (!with_tick && t < 0 && h->npfds == 0)
            return 0;                           /* nothing left */
        long long start = now_ms(), wait = t;
        if (with_tick) {
            long long to_tick = next_tick > start ? next_tick - start : 0;
            if (wait < 0 || to_tick < wait)
                wait = to_tick;
        }
        if (wait > 86400000)
            wait = 86400000;
        int ready = poll(h->npfds ? h->pfds : NULL, (nfds_t)h->npfds, (int)wait);
        if (ready < 0 && errno != EINTR) {
            perror("emrflow-host: poll");
            return 1;
        }
        long long now = now_ms();
        if (with_tick && now >= next_tick) {
            next_tick += interval;
            if (next_tick <= now)
                next_tick = now + interval;     /* fell behind: keep the rhythm from now */
            int go_on = host_tick(h);
            if (go_on < 0)
                return 1;
            if (!go_on)
                return 0;
        }
        /* emrflow's turn when it is due; step(0) never blocks. */
        if (ready > 0 || (t >= 0 && now - start >= t)) {
            push_method(h, "step");
            lua_pushinteger(h->L, 0);
            if (!call(h->L, 2, 0, "scheduler:step(0)"))
                return 1;
        }
    }
}

/* Runs the script; on success the registry holds its table and scheduler. */
static int load_app(struct host *h, int argc, char **argv)
{
    lua_State *L = h->L;
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);              /* arg[0] = script, arg[1..] = ARGs */
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "emrflow-host: %s\n", lua_tostring(L, -1));
        return 0;
    }
    for (int i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (!call(L, argc - 2, 1, argv[1]))
        return 0;
    if (!lua_istable(L, -1)) {
        fprintf(stderr, "emrflow-host: %s must return a table { scheduler = ... }\n", argv[1]);
        return 0;
    }
    lua_getfield(L, -1, "scheduler");
    if (!lua_istable(L, -1)) {
        fprintf(stderr, "emrflow-host: %s: the returned table has no scheduler\n", argv[1]);
        return 0;
    }
    h->sched = luaL_ref(L, LUA_REGISTRYINDEX);
    h->app = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* app.finish(): an integer result is the exit code. */
static int finish(struct host *h, int code)
{
    lua_State *L = h->L;
    if (!has_field(h, "finish", LUA_TFUNCTION))
        return code;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->app);
    lua_getfield(L, -1, "finish");
    lua_remove(L, -2);
    if (!call(L, 0, 1, "finish"))
        return 1;
    if (code == 0 && lua_isinteger(L, -1))
        code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: emrflow-host SCRIPT [ARG...]\n");
        return 2;
    }
    struct host h;
    memset(&h, 0, sizeof h);
    h.L = luaL_newstate();
    if (!h.L) {
        fprintf(stderr, "emrflow-host: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(h.L);
    int code = 1;
    if (load_app(&h, argc, argv))
        code = finish(&h, run(&h));
    lua_close(h.L);
    free(h.pfds);
    return code;
}
