/* The store's event sink (core.store.sink, src/l_store.c) as C code calls it: the ASL
 * interpreter's Pass loop (src/l_asl.c) hands it each event without a Lua call.
 *
 *   struct ef_l_sink k;
 *   if (ef_l_sink_load(L, fn, &k))      -- fn: the sink; pushes EF_L_SINK_SLOTS values
 *       ... ef_l_sink_push(L, &k, desc, id, prev, payload, t) ... (those values kept)
 *
 * ef_l_sink_push does what calling the sink with (desc, id, prev, payload, nil, t) does,
 * or nothing and returns 0 when the event needs the sink's Lua side: the caller then calls
 * the sink as a function, which handles it as ever. */
#ifndef EF_L_STORE_H
#define EF_L_STORE_H

#include "l_util.h"

#define EF_L_SINK_SLOTS 8

struct ef_l_sink {
    int base;            /* stack index of the first of the sink's values */
    void *group, *cache; /* its group and the history descriptors (l_hdesc.h) */
    lua_Integer limit;   /* events of a group before it is written */
};

/* When the value at fn is a sink of core.store.sink: pushes the EF_L_SINK_SLOTS values it
 * works with (they must stay where they are while k is used), fills k and returns 1.
 * Else returns 0, nothing pushed. */
int ef_l_sink_load(lua_State *L, int fn, struct ef_l_sink *k);

/* The event (desc, payload and t: stack indexes; no assigned variables) into the sink's
 * group: 1 when handled (recorded, or the sink is off), 0 when the caller must call the
 * sink itself (nothing done that calling it would not do again). May raise and run Lua
 * (a full group is written) as the sink does. from, from_key: stack indexes when the
 * payload is json.copy_shallow(from, from_key, value) (a ResultPath "$.key"; the payload
 * is then stored as that member, once the sink has seen it is so), else 0. */
int ef_l_sink_push(lua_State *L, const struct ef_l_sink *k, int desc, lua_Integer id,
                   lua_Integer prev, int payload, int t, int from, int from_key);

#endif
