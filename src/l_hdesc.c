/* core.history: history descriptors filed as C data (see l_hdesc.h).
 *
 *   core.history.descriptor(etype, key, name, field) --> { etype =, key =, name =, field = }
 *
 * The cache keeps each entry by the descriptor's address, in the order filed, and tries
 * the entry after the last one found first: a run meets its descriptors in the order its
 * machine made them, so that the cache is read sequentially. It holds each descriptor (so
 * that its address is not reused while filed) until it is full; then it starts over, and
 * a descriptor met again is read from its table and filed again. One per Lua state, in the
 * registry. */
#include <stdlib.h>
#include <string.h>

#include "l_hdesc.h"

#define HDESC_MT "emrflow.HistoryDescriptors"
#define HDESC_KEY "emrflow.history.descriptors"   /* the registry's field holding it */
#define HDESC_MAX 49152             /* descriptors at most (48 bytes each) */

struct ef_hdescs {
    struct ef_hdesc *entries;       /* in the order filed */
    size_t count, entries_cap, last;
    uint32_t *slots;                /* hash of the addresses: entry index + 1, 0: free */
    size_t cap;                     /* a power of 2, at least twice count */
};

static int l_hdescs_gc(lua_State *L)
{
    struct ef_hdescs *c = luaL_checkudata(L, 1, HDESC_MT);
    free(c->entries);
    free(c->slots);
    memset(c, 0, sizeof *c);
    return 0;
}

struct ef_hdescs *ef_l_hdescs(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, HDESC_KEY) == LUA_TUSERDATA)
        return lua_touserdata(L, -1);
    lua_pop(L, 1);
    struct ef_hdescs *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, HDESC_MT)) {
        lua_pushcfunction(L, l_hdescs_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_newtable(L);                             /* the descriptors, kept alive */
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HDESC_KEY);
    return c;
}

/* The slot of address p: its entry's, or the free one where it goes. */
static uint32_t *s_slot(const struct ef_hdescs *c, const void *p)
{
    size_t i = (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (c->cap - 1);
    while (c->slots[i] && c->entries[c->slots[i] - 1].desc != p)
        i = (i + 1) & (c->cap - 1);
    return &c->slots[i];
}

/* The entry of the descriptor at address p, or NULL. */
static const struct ef_hdesc *s_find(struct ef_hdescs *c, const void *p)
{
    size_t next = c->last + 1;
    if (next < c->count && c->entries[next].desc == p) {
        c->last = next;
        return &c->entries[next];
    }
    if (!c->count)
        return NULL;
    uint32_t at = *s_slot(c, p);
    if (!at)
        return NULL;
    c->last = at - 1;
    return &c->entries[at - 1];
}

/* Makes room for one more entry (ci: the cache's index): larger arrays, or empty ones
 * once at HDESC_MAX (its descriptors let go). */
static void s_room(lua_State *L, struct ef_hdescs *c, int ci)
{
    if (c->count == HDESC_MAX) {
        c->count = 0;
        c->last = 0;
        memset(c->slots, 0, sizeof *c->slots * c->cap);
        lua_newtable(L);
        lua_setiuservalue(L, ci, 1);
    }
    if (c->count == c->entries_cap) {
        size_t cap = c->entries_cap ? 2 * c->entries_cap : 512;
        struct ef_hdesc *entries = realloc(c->entries, sizeof *entries * cap);
        if (!entries)
            luaL_error(L, "not enough memory for the history descriptors");
        c->entries = entries;
        c->entries_cap = cap;
    }
    if ((c->count + 1) * 2 > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            luaL_error(L, "not enough memory for the history descriptors");
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
        for (size_t i = 0; i < c->count; i++)
            *s_slot(c, c->entries[i].desc) = (uint32_t)i + 1;
    }
}

/* What the events of a descriptor carry, from its field and name (stack indices). */
static uint8_t s_field(lua_State *L, int field, int name, int has_key)
{
    if (lua_type(L, field) != LUA_TSTRING) {
        if (lua_toboolean(L, field))
            return EF_HDESC_OTHER;
        return has_key ? EF_HDESC_DETAILS : EF_HDESC_NONE;
    }
    if (lua_type(L, name) != LUA_TSTRING)
        return EF_HDESC_OTHER;
    size_t len;
    const char *f = lua_tolstring(L, field, &len);
    if (len == 5 && memcmp(f, "input", 5) == 0)
        return EF_HDESC_INPUT;
    if (len == 6 && memcmp(f, "output", 6) == 0)
        return EF_HDESC_OUTPUT;
    if (len == 5 && memcmp(f, "index", 5) == 0)
        return EF_HDESC_INDEX;
    return EF_HDESC_OTHER;
}

/* Files the descriptor at index d, whose etype, key, field and name are at the four stack
 * indices from f; ci: the cache's index. */
static const struct ef_hdesc *s_file(lua_State *L, struct ef_hdescs *c, int ci, int d, int f)
{
    const void *p = lua_topointer(L, d);
    s_room(L, c, ci);
    lua_getiuservalue(L, ci, 1);                /* kept alive while filed */
    lua_pushvalue(L, d);
    lua_rawseti(L, -2, (lua_Integer)c->count + 1);
    lua_pop(L, 1);
    int te = lua_type(L, f), tk = lua_type(L, f + 1);
    struct ef_hdesc e = { .desc = p };
    e.field = s_field(L, f + 2, f + 3, tk == LUA_TSTRING);
    if (te != LUA_TSTRING || (tk != LUA_TSTRING && tk != LUA_TNIL))
        e.field = EF_HDESC_OTHER;
    e.etype = lua_topointer(L, f);
    e.key = tk == LUA_TSTRING ? lua_topointer(L, f + 1) : NULL;
    if (lua_type(L, f + 3) == LUA_TSTRING) {
        size_t len;
        const char *name = lua_tolstring(L, f + 3, &len);
        if (len <= EF_HDESC_NAME_INLINE) {
            memcpy(e.name, name, len);
            e.name_len = (uint8_t)len;
        } else {
            e.name_len = EF_HDESC_NAME_LONG;
        }
    }
    *s_slot(c, p) = (uint32_t)c->count + 1;
    c->entries[c->count] = e;
    c->last = c->count++;
    return &c->entries[c->last];
}

#if defined(__GNUC__) || defined(__clang__)
#define HDESC_PREFETCH(p) __builtin_prefetch(p)
#else
#define HDESC_PREFETCH(p) ((void)(p))
#endif

const struct ef_hdesc *ef_l_hdesc(lua_State *L, struct ef_hdescs *c, int ci, int d)
{
    const void *p = lua_topointer(L, d);
    const struct ef_hdesc *found = s_find(c, p);
    if (found)
        return found;
    /* not filed (made by a Lua table, or let go when the cache was full): read it */
    for (int line = 0; line < 3; line++)        /* the table, then its members */
        HDESC_PREFETCH((const char *)p + 64 * line);
    int top = lua_gettop(L);
    lua_getfield(L, d, "etype");
    lua_getfield(L, d, "key");
    lua_getfield(L, d, "field");
    lua_getfield(L, d, "name");
    found = s_file(L, c, ci, d, top + 1);
    lua_settop(L, top);
    return found;
}

/* core.history.descriptor(etype, key, name, field): the descriptor, filed. */
static int l_descriptor(lua_State *L)
{
    lua_settop(L, 4);
    lua_createtable(L, 0, 4);                   /* 5 */
    lua_pushvalue(L, 1);
    lua_setfield(L, 5, "etype");
    lua_pushvalue(L, 2);
    lua_setfield(L, 5, "key");
    lua_pushvalue(L, 3);
    lua_setfield(L, 5, "name");
    lua_pushvalue(L, 4);
    lua_setfield(L, 5, "field");
    struct ef_hdescs *c = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);                        /* 6..9: etype, key, field, name */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 3);
    s_file(L, c, lua_upvalueindex(1), 5, 6);
    lua_settop(L, 5);
    return 1;
}

int ef_l_open_hdesc(lua_State *L)
{
    lua_createtable(L, 0, 1);                   /* core history */
    ef_l_hdescs(L);
    lua_pushcclosure(L, l_descriptor, 1);
    lua_setfield(L, -2, "descriptor");
    lua_setfield(L, -2, "history");
    return 0;
}
