/* core.json's helpers for other binding files (src/l_asl.c).
 *
 * They read the JSON marks from the CALLING C function's upvalues: call them
 * only from a C closure whose upvalue 1 is core.json.array_mt and upvalue 2
 * core.json.object_mark (as core.json's own functions have). */
#ifndef EF_L_JSON_H
#define EF_L_JSON_H

#include <lua.h>

/* Is the value at idx a JSON object (a table with an order of ours)? */
int ef_l_json_is_object(lua_State *L, int idx);

/* json.copy_shallow(obj, key, value) for an object obj: pushes the copy and
 * returns 1; returns 0 and pushes nothing when obj is not a JSON object.
 * key is a string; value nil deletes. */
int ef_l_json_set_copy(lua_State *L, int obj, int key, int value);

/* json.object_from(ks, v1..vn): ks a keyset (json.keyset, not checked),
 * the values at first .. first + n - 1, n at most the keyset's length. */
void ef_l_json_object_from(lua_State *L, int ks, int first, int n);

/* json.size(v, limit): < 0 when v cannot be encoded. */
lua_Integer ef_l_json_size(lua_State *L, int idx, lua_Integer limit);

/* json.copy(v): pushes the deep copy. */
void ef_l_json_copy(lua_State *L, int idx);

#endif
