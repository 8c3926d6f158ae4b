/* An event sink's C side.
 *
 * emrflow.asl.history hands each event to a sink, a Lua function (rec.sink). A sink made
 * in C may also offer C entry points, so that the interpreter's Pass loop (src/l_asl.c)
 * hands it events without a Lua call. The interpreter knows no sink: the module that
 * makes such sinks (the store, src/l_store.c) offers its entry points in the Lua registry
 * when core is opened, and the loop looks them up there:
 *
 *   const struct ef_l_sink_ops *ops = ef_l_sink_ops(L);   -- NULL: none offered
 *   struct ef_l_sink k;
 *   if (ops && ops->load(L, fn, &k))      -- fn: the sink; pushes EF_L_SINK_SLOTS values
 *       ... ops->push(L, &k, desc, id, prev, payload, t, from, from_key) ... (values kept)
 *
 * push does what calling the sink with (desc, id, prev, payload, nil, t) does, or nothing
 * and returns 0 when the event needs the sink's Lua side: the caller then calls the sink as
 * a function, which handles it as ever. It may raise and run Lua, as the sink does. from,
 * from_key: stack indexes when the payload is json.copy_shallow(from, from_key, value) (a
 * ResultPath "$.key"), else 0. */
#ifndef EF_L_SINK_H
#define EF_L_SINK_H

#include "l_util.h"

#define EF_L_SINK_SLOTS 8
#define EF_L_SINK_OPS_KEY "emrflow.sink_ops"   /* the registry's field: a light userdata */

struct ef_l_sink {
    int base;            /* stack index of the first of the sink's values */
    void *state[2];      /* the implementation's */
    lua_Integer limit;   /* the implementation's */
};

struct ef_l_sink_ops {
    /* When the value at fn is one of its sinks: pushes the EF_L_SINK_SLOTS values it works
     * with (they must stay where they are while k is used), fills k and returns 1. Else
     * returns 0, nothing pushed. */
    int (*load)(lua_State *L, int fn, struct ef_l_sink *k);
    /* The event (desc, payload, t, from, from_key: stack indexes): 1 when handled (recorded,
     * or the sink is off), 0 when the caller must call the sink itself. */
    int (*push)(lua_State *L, const struct ef_l_sink *k, int desc, lua_Integer id,
                lua_Integer prev, int payload, int t, int from, int from_key);
};

/* Offers ops (static storage, never changed) to the interpreter of L. */
static inline void ef_l_sink_offer(lua_State *L, struct ef_l_sink_ops *ops)
{
    lua_pushlightuserdata(L, ops);
    lua_setfield(L, LUA_REGISTRYINDEX, EF_L_SINK_OPS_KEY);
}

/* The ops offered in L, or NULL. */
static inline const struct ef_l_sink_ops *ef_l_sink_ops(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, EF_L_SINK_OPS_KEY);
    const struct ef_l_sink_ops *ops = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ops;
}

#endif
