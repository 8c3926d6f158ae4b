/* History descriptors as C data (src/l_hdesc.c).
 *
 * A descriptor is emrflow.asl.history's { etype, key, name, field } table, shared by every
 * event of one state and type and never changed. core.history.descriptor(etype, key, name,
 * field) makes one and files its fields in a cache kept by address, in the order made: a
 * machine compiles its states in the order a run meets them (emrflow.asl.engine), so that
 * the event sink of the store (src/l_store.c) finds a run's descriptors one after another
 * in C memory, without reading their tables (seldom still in the CPU's caches once the
 * machine has loaded). */
#ifndef EF_L_HDESC_H
#define EF_L_HDESC_H

#include <stdint.h>

#include "l_util.h"

#define EF_HDESC_NAME_INLINE 22
#define EF_HDESC_NAME_LONG 255      /* name_len of a name to read from the descriptor */

/* What a descriptor's events carry in their details member. */
enum ef_hdesc_field {
    EF_HDESC_DETAILS,               /* a details table of their own (field false) */
    EF_HDESC_NONE,                  /* no details member */
    EF_HDESC_INPUT,                 /* { name, input = payload } */
    EF_HDESC_OUTPUT,                /* { name, output = payload } */
    EF_HDESC_INDEX,                 /* { name, index = payload } */
    EF_HDESC_OTHER,                 /* anything else: for Lua to handle */
};

struct ef_hdesc {
    const void *desc;
    const void *etype, *key;        /* its strings (kept alive by the descriptor) */
    uint8_t field;                  /* enum ef_hdesc_field */
    uint8_t name_len;               /* EF_HDESC_NAME_LONG: read it from the table */
    char name[EF_HDESC_NAME_INLINE];
};

struct ef_hdescs;

/* Pushes the cache of L (made on first use) and returns it. */
struct ef_hdescs *ef_l_hdescs(lua_State *L);

/* The entry of the descriptor at index d (filed first when new); ci: the cache's index. */
const struct ef_hdesc *ef_l_hdesc(lua_State *L, struct ef_hdescs *c, int ci, int d);

int ef_l_open_hdesc(lua_State *L);

#endif
