/* core.store: the thin binding of the execution store (src/ef_store.c).
 *
 *   local db, err = core.store.open(path [, busy_ms])   -- nil, err on a bad store
 *   local rows, changes, rowid = db:query(name, ...)   -- a named statement of the catalogue;
 *                                                       -- nil, err on failure
 *   db:insert_group(seq, first, last, strings, values, fields, n) --> true | nil, err: a group's
 *       row (the insert_events statement), its bytes packed as pack_group packs them
 *   db:integrity_check() --> true | nil, err;  db:in_transaction() --> boolean
 *   db:schema_version(); db:close() (also __gc and __close)
 *   core.store.make_parent_dirs(path) --> true | nil, err
 *   core.store.pack_group(strings, values, fields, n) --> a group's bytes: the two JSON texts
 *       (each after its u32 little-endian length), then n event records (ef_store_pack_record)
 *       taken from fields, a flat array of 9 values per record; built in one buffer
 *
 * Parameters: nil -> NULL, integer, float, boolean (0/1), string. Rows are tables keyed by
 * column name; NULL columns are absent. Errors are emrflow.Error tables whose code names
 * the kind ("locked", "not_a_database", "truncated", "newer_schema", "constraint", ...). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_util.h"
#include "ef_store.h"
#include "l_hdesc.h"
#include "l_sink.h"

#define STORE_MT "emrflow.Store"

struct l_store {
    struct ef_store *s;   /* NULL once closed */
};

static const char *s_kind_name(enum ef_store_kind k)
{
    switch (k) {
    case EF_STORE_ECANTOPEN: return "cannot_open";
    case EF_STORE_ENOTDB: return "not_a_database";
    case EF_STORE_ETRUNCATED: return "truncated";
    case EF_STORE_ECORRUPT: return "corrupt";
    case EF_STORE_EFOREIGN: return "not_a_store";
    case EF_STORE_ENEWER: return "newer_schema";
    case EF_STORE_EBUSY: return "locked";
    case EF_STORE_EREADONLY: return "read_only";
    case EF_STORE_ECONSTRAINT: return "constraint";
    case EF_STORE_EFULL: return "disk_full";
    case EF_STORE_EMISUSE: return "misuse";
    default: return "store";
    }
}

static int s_fail(lua_State *L, const struct ef_store_error *err)
{
    struct ef_l_error e = { 0 };
    e.code = s_kind_name(err->kind);
    e.message = err->message;
    return ef_l_pushfail(L, &e);
}

static struct ef_store *s_check_open(lua_State *L)
{
    struct l_store *u = luaL_checkudata(L, 1, STORE_MT);
    if (!u->s)
        luaL_error(L, "attempt to use a closed store");
    return u->s;
}

static int l_store_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer busy = luaL_optinteger(L, 2, 5000);
    luaL_argcheck(L, busy >= 0 && busy <= 3600000, 2, "busy timeout out of range");
    struct l_store *u = lua_newuserdatauv(L, sizeof *u, 0);   /* the owner first */
    u->s = NULL;
    luaL_setmetatable(L, STORE_MT);
    struct ef_store_error err;
    if (ef_store_open(&u->s, path, (int)busy, &err) != 0)
        return s_fail(L, &err);
    return 1;
}

static int l_store_make_parent_dirs(lua_State *L)
{
    struct ef_store_error err;
    if (ef_store_make_parent_dirs(luaL_checkstring(L, 1), &err) != 0)
        return s_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static void s_bind(lua_State *L, struct ef_store_stmt *st, int arg, int i)
{
    int rc;
    switch (lua_type(L, arg)) {
    case LUA_TNIL: rc = ef_store_bind_null(st, i); break;
    case LUA_TBOOLEAN: rc = ef_store_bind_int(st, i, lua_toboolean(L, arg)); break;
    case LUA_TNUMBER:
        rc = lua_isinteger(L, arg) ? ef_store_bind_int(st, i, lua_tointeger(L, arg))
                                   : ef_store_bind_double(st, i, lua_tonumber(L, arg));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *p = lua_tolstring(L, arg, &n);
        /* the string stays on the stack while the statement runs to completion */
        rc = ef_store_bind_text_static(st, i, p, n);
        break;
    }
    default:
        luaL_argerror(L, arg, "a store parameter is nil, a boolean, a number or a string");
        return;
    }
    if (rc != 0)
        luaL_error(L, "cannot bind parameter %d", i);
}

static void s_push_column(lua_State *L, struct ef_store_stmt *st, int i)
{
    switch (ef_store_column_type(st, i)) {
    case EF_STORE_INT: lua_pushinteger(L, (lua_Integer)ef_store_column_int(st, i)); break;
    case EF_STORE_DOUBLE: lua_pushnumber(L, ef_store_column_double(st, i)); break;
    case EF_STORE_TEXT: {
        size_t n;
        const char *p = ef_store_column_text(st, i, &n);
        lua_pushlstring(L, p ? p : "", n);
        break;
    }
    default: lua_pushnil(L);
    }
}

/* db:query(name, ...): runs a catalogue statement; returns its rows, the rows
 * changed and the last rowid. */
static int l_store_query(lua_State *L)
{
    struct ef_store *s = s_check_open(L);
    const char *name = luaL_checkstring(L, 2);
    int id = ef_store_stmt_find(name);
    if (id < 0)
        return luaL_argerror(L, 2, lua_pushfstring(L, "no store statement '%s'", name));
    struct ef_store_stmt *st = ef_store_stmt(s, id);
    int nparams = lua_gettop(L) - 2;
    if (nparams > ef_store_param_count(st))
        return luaL_error(L, "store statement '%s' takes %d parameters, got %d", name,
                          ef_store_param_count(st), nparams);
    for (int i = 1; i <= nparams; i++)
        s_bind(L, st, i + 2, i);
    lua_newtable(L);                                    /* rows */
    int ncols = ef_store_column_count(st), rc;
    struct ef_store_error err;
    lua_Integer n = 0;
    while ((rc = ef_store_step(st, &err)) == EF_STORE_ROW) {
        lua_createtable(L, 0, ncols);                   /* rows row */
        for (int c = 0; c < ncols; c++) {
            s_push_column(L, st, c);
            lua_setfield(L, -2, ef_store_column_name(st, c));
        }
        lua_rawseti(L, -2, ++n);                        /* rows */
    }
    if (rc == EF_STORE_FAIL)
        return s_fail(L, &err);
    lua_pushinteger(L, (lua_Integer)ef_store_changes(s));
    lua_pushinteger(L, (lua_Integer)ef_store_last_rowid(s));
    return 3;
}

/* core.store.content_key(text): "k1:<length>:<hash64 in hex>", the key of a definition
 * text (ef_store_hash64: texts whose keys match are compared). */
static int l_store_content_key(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    lua_pushfstring(L, "k1:%I:%s", (lua_Integer)n, "");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ef_store_hash64(p, n));
    lua_pushstring(L, hex);
    lua_concat(L, 2);
    return 1;
}

static int l_store_integrity_check(lua_State *L)
{
    struct ef_store *s = s_check_open(L);
    struct ef_store_error err;
    if (ef_store_integrity_check(s, &err) != 0)
        return s_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_store_in_transaction(lua_State *L)
{
    lua_pushboolean(L, ef_store_in_transaction(s_check_open(L)));
    return 1;
}

static int l_store_schema_version(lua_State *L)
{
    lua_pushinteger(L, ef_store_schema_version(s_check_open(L)));
    return 1;
}

/* __gc, __close and close: idempotent. */
static int l_store_close(lua_State *L)
{
    struct l_store *u = luaL_checkudata(L, 1, STORE_MT);
    ef_store_close(u->s);
    u->s = NULL;
    return 0;
}

static int l_store_tostring(lua_State *L)
{
    struct l_store *u = luaL_checkudata(L, 1, STORE_MT);
    lua_pushfstring(L, "emrflow.Store (%s)", u->s ? "open" : "closed");
    return 1;
}

/* ------------------------------------------------------------------ */
/* A group of events in the compact format (ef_store.h), built as the events come: the
 * records in C memory, the values they refer to (payloads, details, variables) in a Lua
 * list encoded once when the group is written. */

#define GROUP_MT "emrflow.StoreGroup"
/* the group's user values */
#define UV_VALUES 1   /* json.array of the values, in record order */
#define UV_STRINGS 2  /* json.array of the strings (event types, details keys) */
#define UV_LAST 3     /* the last value given in full or as a delta */
#define UV_ENCODE 4   /* json.encode */
#define GROUP_UVS 4
#define DELTA_KEYS 64 /* objects of more keys are written in full */
#define DELTA_DEPTH 4 /* members of members... compared this deep */
#define DELTA_SHAPE 1024 /* bytes of a delta shape at most */
#define DELTA_COUNTED 8 /* objects remembered as counted, per value */

struct group_string {
    const void *p;     /* the Lua string (anchored in UV_STRINGS) */
    const char *s;
    size_t len;
    int notable;       /* for a sink: -1 not known yet, 0, 1 */
};

struct l_group {
    struct ef_store_packer packer;
    unsigned char *buf;          /* the records */
    size_t len, cap;
    struct group_string *strs;
    int nstrs, strs_cap;
    lua_Integer slots;           /* entries of UV_VALUES */
    int has_last;                /* UV_LAST holds a value */
    unsigned char shape[DELTA_SHAPE]; /* the delta shape of the event being added */
    size_t shape_len;
    /* objects whose members s_delta counted (all in their key order table), for the value
     * being added and for the last one: what is compared with them next */
    struct { const void *t; lua_Integer n; } counted[DELTA_COUNTED], counted_last[DELTA_COUNTED];
    int ncounted, ncounted_last;
};

static struct l_group *s_check_group(lua_State *L, int i)
{
    return luaL_checkudata(L, i, GROUP_MT);
}

/* The index of the string at idx among the group's strings (added when new), its entry
 * in *entry; 0 (and NULL) for nil. gi: the group (any index). */
static uint32_t s_intern(lua_State *L, struct l_group *g, int gi, int idx,
                         struct group_string **entry)
{
    *entry = NULL;
    int t = lua_type(L, idx);
    if (t == LUA_TNIL)
        return 0;
    if (t != LUA_TSTRING)
        luaL_error(L, "an event's type, details key and state name are strings (got a %s)",
                   lua_typename(L, t));
    const void *p = lua_topointer(L, idx);
    for (int i = 0; i < g->nstrs; i++)
        if (g->strs[i].p == p) {
            *entry = &g->strs[i];
            return (uint32_t)i + 1;
        }
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    for (int i = 0; i < g->nstrs; i++)   /* an equal long string (not interned by Lua) */
        if (g->strs[i].len == len && memcmp(g->strs[i].s, s, len) == 0) {
            *entry = &g->strs[i];
            return (uint32_t)i + 1;
        }
    if (g->nstrs == g->strs_cap) {
        int cap = g->strs_cap ? 2 * g->strs_cap : 16;
        struct group_string *strs = realloc(g->strs, sizeof *strs * (size_t)cap);
        if (!strs)
            luaL_error(L, "not enough memory for a group of events");
        g->strs = strs;
        g->strs_cap = cap;
    }
    lua_getiuservalue(L, gi, UV_STRINGS);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, g->nstrs + 1);
    lua_pop(L, 1);
    struct group_string *e = &g->strs[g->nstrs++];
    e->p = p;
    e->s = s;
    e->len = len;
    e->notable = -1;
    *entry = e;
    return (uint32_t)g->nstrs;
}

/* Appends the value at v (absolute) to the values list at list (absolute). */
static void s_append(lua_State *L, struct l_group *g, int list, int v)
{
    lua_pushvalue(L, v);
    lua_rawseti(L, list, ++g->slots);
}

static lua_Integer s_count_members(lua_State *L, int t)
{
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* Writes v as a varint to the group's delta shape; -1 when it has no room left. */
static int s_shape_put(struct l_group *g, uint64_t v)
{
    do {
        if (g->shape_len == DELTA_SHAPE)
            return -1;
        g->shape[g->shape_len++] = (unsigned char)(v < 0x80 ? v : (v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    return 0;
}

/* The new value of a member at v (absolute) into the delta shape: an integer or a boolean
 * in the shape itself, anything else appended to the values list at list (encoded when the
 * group is written). -1 when the shape has no room left. */
static int s_member_value(lua_State *L, struct l_group *g, int list, int v)
{
    int t = lua_type(L, v);
    if (t == LUA_TBOOLEAN)
        return s_shape_put(g, lua_toboolean(L, v) ? EF_STORE_MEMBER_TRUE : EF_STORE_MEMBER_FALSE);
    if (t == LUA_TNUMBER && lua_isinteger(L, v)) {
        int64_t i = (int64_t)lua_tointeger(L, v);
        return s_shape_put(g, EF_STORE_MEMBER_INT) ||
               s_shape_put(g, ((uint64_t)i << 1) ^ (i < 0 ? UINT64_MAX : 0));
    }
    if (s_shape_put(g, EF_STORE_MEMBER_VALUE))
        return -1;
    s_append(L, g, list, v);
    return 0;
}

/* The number of members of the object at t (absolute), remembered from the last value's. */
static lua_Integer s_members(lua_State *L, const struct l_group *g, int t)
{
    const void *p = lua_topointer(L, t);
    for (int i = 0; i < g->ncounted_last; i++)
        if (g->counted_last[i].t == p)
            return g->counted_last[i].n;
    return s_count_members(L, t);
}

static int s_delta(lua_State *L, struct l_group *g, int gi, int list, int p, int b, int depth);

/* s_delta's second half: the nchanged members of p (members in all) that differ from b's
 * are on the stack above top, each as p[key], b[key], key: writes their shape and values
 * (see s_delta) and returns 0, or undoes what it wrote, pops them and returns -1. */
static int s_delta_write(lua_State *L, struct l_group *g, int gi, int list, int p, int b,
                         int depth, int top, int nchanged, lua_Integer members)
{
    lua_Integer slots0 = g->slots;
    size_t shape0 = g->shape_len;
    /* with as many members, b has no key p has not */
    if (nchanged >= members || s_members(L, g, b) != members ||
        s_shape_put(g, (uint64_t)nchanged + (depth > 0 ? EF_STORE_MEMBER_NESTED : 0)))
        goto none;
    if (g->ncounted < DELTA_COUNTED) {
        g->counted[g->ncounted].t = lua_topointer(L, p);
        g->counted[g->ncounted++].n = members;
    }
    for (int j = 0; j < nchanged; j++) {
        int pv = top + 3 * j + 1, bv = pv + 1, key = pv + 2;
        struct group_string *entry;
        if (s_shape_put(g, s_intern(L, g, gi, key, &entry)))
            goto none;
        if ((depth + 1 >= DELTA_DEPTH || lua_type(L, pv) != LUA_TTABLE ||
             s_delta(L, g, gi, list, pv, bv, depth + 1) != 0) &&
            s_member_value(L, g, list, pv))
            goto none;
    }
    lua_settop(L, top);
    return 0;
none:
    lua_settop(L, top);
    for (lua_Integer i = g->slots; i > slots0; i--) {
        lua_pushnil(L);
        lua_rawseti(L, list, i);
    }
    g->slots = slots0;
    g->shape_len = shape0;
    return -1;
}

/* When p and b (absolute indexes; b: what p replaces) are tables of one metatable
 * (json.copy_shallow's copy and its original share their key order table) with the same
 * string keys, and some members are the very same values: writes the shape of the
 * members of p that differ (ef_store.h; the count plus one when nested; their keys among
 * the group's strings), appends their values to the values list at list (in full, or as
 * a delta over b's member when that holds too, depth permitting) and returns 0. Else -1,
 * nothing appended. Reading back, b's copy with those members set is p: json.encode
 * orders the keys of a table by its metatable (a key order table, then sorted), so the
 * same keys come in the same order, with the same values. */
static int s_delta(lua_State *L, struct l_group *g, int gi, int list, int p, int b, int depth)
{
    int top = lua_gettop(L), nchanged = 0;
    lua_Integer members = 0;
    if (lua_type(L, p) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE ||
        !lua_checkstack(L, 3 * DELTA_KEYS + 8) || !lua_getmetatable(L, p))
        goto none;
    if (!lua_getmetatable(L, b) || !lua_rawequal(L, top + 1, top + 2))
        goto none;
    lua_settop(L, top);
    /* p's members: each one b has too; those that differ kept on the stack, each as
     * p[key], b[key], key */
    lua_pushnil(L);
    while (lua_next(L, p)) {                            /* changed... key value */
        members++;
        lua_pushvalue(L, -2);
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawget(L, b) == LUA_TNIL)
            goto none;
        if (lua_rawequal(L, -1, -2)) {
            lua_pop(L, 2);
            continue;
        }
        if (nchanged == DELTA_KEYS)
            goto none;
        lua_pushvalue(L, -3);
        lua_rotate(L, -4, -1);                          /* changed... value b[key] key' key */
        nchanged++;
    }
    return s_delta_write(L, g, gi, list, p, b, depth, top, nchanged, members);
none:
    lua_settop(L, top);
    return -1;
}

/* One event's parts, as stack indexes (0: none) and numbers. */
struct event_parts {
    uint32_t type, key;          /* group string indexes, 0: none */
    const char *name;            /* NULL: none */
    size_t name_len;
    int value, assigned;         /* stack indexes, 0: none */
    int from, from_key;          /* stack indexes, 0: none: value is json.copy_shallow(from,
                                  * from_key, v), a member of from replaced (a ResultPath) */
    int kind;
    lua_Integer id, prev;
    double t;
};

/* s_delta(L, g, gi, list, p, b, 0) when p is known to be b's json.copy_shallow with the
 * member at key (a string) replaced (the interpreter's ResultPath "$.key", ev->from): the
 * same shape and values, without comparing b's members one by one. -1 (nothing written)
 * when that is not so, or when s_delta's own walk must decide. */
static int s_delta_copy(lua_State *L, struct l_group *g, int gi, int list, int p, int b, int key)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8) || !lua_getmetatable(L, p))
        return -1;
    if (!lua_getmetatable(L, b) || !lua_rawequal(L, top + 1, top + 2))
        goto none;
    lua_settop(L, top);
    lua_pushvalue(L, key);
    lua_rawget(L, p);                                   /* p[key] */
    lua_pushvalue(L, key);
    lua_rawget(L, b);                                   /* p[key] b[key] */
    lua_pushvalue(L, key);                              /* p[key] b[key] key */
    /* one member changed, of b's, which are p's (their count, and at least two: s_delta_write) */
    if (lua_isnil(L, top + 1) || lua_isnil(L, top + 2) || lua_rawequal(L, top + 1, top + 2))
        goto none;
    return s_delta_write(L, g, gi, list, p, b, 0, top, 1, s_members(L, g, b));
none:
    lua_settop(L, top);
    return -1;
}

/* The value at v (absolute) as a record refers to it: the last value again, a delta
 * over it (delta_ok: a state's input or output; its shape in g->shape), or in full; it
 * becomes the last. ev: the event (its from and from_key). */
static uint8_t s_add_value(lua_State *L, struct l_group *g, int gi, int list, int v,
                           int delta_ok, const struct event_parts *ev)
{
    uint8_t mode = EF_STORE_EV_VALUE_FULL;
    g->shape_len = 0;
    g->ncounted = 0;
    if (g->has_last) {
        lua_getiuservalue(L, gi, UV_LAST);
        int last = lua_gettop(L);
        int same = lua_rawequal(L, last, v);
        int copied = !same && delta_ok && ev->from && lua_rawequal(L, ev->from, last) &&
                     s_delta_copy(L, g, gi, list, v, last, ev->from_key) == 0;
        int delta = copied || (!same && delta_ok && s_delta(L, g, gi, list, v, last, 0) == 0);
        lua_pop(L, 1);
        if (same)
            return EF_STORE_EV_VALUE_SAME;
        if (delta)
            mode = EF_STORE_EV_VALUE_DELTA;
    }
    if (mode == EF_STORE_EV_VALUE_FULL) {
        s_append(L, g, list, v);
        g->ncounted = 0;
    }
    /* the objects counted are v's and its members' (v, now the last value, holds them) */
    memcpy(g->counted_last, g->counted, sizeof g->counted);
    g->ncounted_last = g->ncounted;
    lua_pushvalue(L, v);
    lua_setiuservalue(L, gi, UV_LAST);
    g->has_last = 1;
    return mode;
}


/* Adds the event to the group (gi: its index); returns the group's event count. */
static lua_Integer s_push(lua_State *L, struct l_group *g, int gi, const struct event_parts *ev)
{
    struct ef_store_packer *pk = &g->packer;
    if (pk->n > 0 && ev->id != pk->last + 1)
        luaL_error(L, "emrflow.store: events must come with consecutive ids (%I after %I)",
                   (LUAI_UACINT)ev->id, (LUAI_UACINT)pk->last);
    luaL_checkstack(L, 8, "adding an event");
    struct ef_store_event e = { 0 };
    e.id = ev->id;
    e.prev = ev->prev;
    e.timestamp = ev->t;
    e.kind = (uint8_t)ev->kind;
    e.type = ev->type;
    e.key = ev->key;
    e.name = ev->name;
    e.name_len = ev->name_len;
    int has_value = ev->value && lua_type(L, ev->value) != LUA_TNIL;
    if (e.kind == EF_STORE_KIND_ITERATION) {
        int isint;
        e.index = (int64_t)lua_tointegerx(L, ev->value, &isint);
        if (!isint)
            luaL_error(L, "emrflow.store: a map iteration's index is an integer");
    } else if (e.kind == EF_STORE_KIND_DETAILS && !has_value) {
        e.kind = EF_STORE_KIND_NONE;   /* details without a value: none */
    } else if (e.kind != EF_STORE_KIND_NONE) {
        lua_getiuservalue(L, gi, UV_VALUES);
        int list = lua_gettop(L);
        if (has_value)
            e.value = s_add_value(L, g, gi, list, ev->value, e.kind != EF_STORE_KIND_DETAILS, ev);
        if (e.value == EF_STORE_EV_VALUE_DELTA) {
            e.delta = g->shape;
            e.delta_len = g->shape_len;
        }
        if (ev->assigned && lua_type(L, ev->assigned) != LUA_TNIL &&
            e.kind != EF_STORE_KIND_DETAILS) {
            s_append(L, g, list, ev->assigned);
            e.assigned = 1;
        }
        lua_pop(L, 1);
    }
    size_t need = ef_store_event_size(&e);
    if (g->cap - g->len < need) {
        /* from small: a Map's child execution holds a few events */
        size_t cap = g->cap ? 2 * g->cap : 512;
        while (cap - g->len < need)
            cap *= 2;
        unsigned char *buf = realloc(g->buf, cap);
        if (!buf)
            luaL_error(L, "not enough memory for a group of events");
        g->buf = buf;
        g->cap = cap;
    }
    size_t n = ef_store_pack_event(pk, g->buf + g->len, &e);
    if (n == 0)
        luaL_error(L, "not enough memory for a group of events");
    g->len += n;
    return (lua_Integer)pk->n;
}

/* core.store.group(encode, array_mt): an empty group. */
static int l_group_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct l_group *g = lua_newuserdatauv(L, sizeof *g, GROUP_UVS);
    memset(g, 0, sizeof *g);
    luaL_setmetatable(L, GROUP_MT);
    for (int uv = UV_VALUES; uv <= UV_STRINGS; uv++) {
        lua_newtable(L);
        lua_pushvalue(L, 2);
        lua_setmetatable(L, -2);
        lua_setiuservalue(L, -2, uv);
    }
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, UV_ENCODE);
    return 1;
}

static int l_group_gc(lua_State *L)
{
    struct l_group *g = s_check_group(L, 1);
    free(g->buf);
    free(g->strs);
    ef_store_packer_free(&g->packer);
    g->buf = NULL;
    g->strs = NULL;
    g->len = g->cap = 0;
    g->nstrs = g->strs_cap = 0;
    return 0;
}

/* g:push(etype, key, kind, name, id, prev, t, value, assigned) --> the number of events:
 * kind as ef_store.h's EF_STORE_KIND_*; value: the payload, the details table or a map
 * iteration's index; assigned: a state's assigned variables. */
static int l_group_push(lua_State *L)
{
    struct l_group *g = s_check_group(L, 1);
    lua_settop(L, 10);
    struct event_parts ev = { .value = 9, .assigned = 10 };
    struct group_string *entry;
    ev.type = s_intern(L, g, 1, 2, &entry);
    ev.key = s_intern(L, g, 1, 3, &entry);
    if (!lua_isnil(L, 5)) {
        luaL_argcheck(L, lua_type(L, 5) == LUA_TSTRING, 5, "a state name is a string");
        ev.name = lua_tolstring(L, 5, &ev.name_len);
    }
    ev.kind = (int)luaL_checkinteger(L, 4);
    luaL_argcheck(L, ev.kind >= EF_STORE_KIND_NONE && ev.kind <= EF_STORE_KIND_ITERATION, 4,
                  "not an event kind");
    ev.id = luaL_checkinteger(L, 6);
    ev.prev = luaL_checkinteger(L, 7);
    ev.t = (double)luaL_checknumber(L, 8);
    lua_pushinteger(L, s_push(L, g, 1, &ev));
    return 1;
}

/* g:count() --> n, first, last (first and last nil when empty). */
static int l_group_count(lua_State *L)
{
    struct l_group *g = s_check_group(L, 1);
    lua_pushinteger(L, (lua_Integer)g->packer.n);
    if (g->packer.n == 0)
        return 1;
    lua_pushinteger(L, (lua_Integer)g->packer.first);
    lua_pushinteger(L, (lua_Integer)g->packer.last);
    return 3;
}

/* g:texts() --> the JSON texts of its strings and of its values (raises when a value
 * cannot be held in JSON). */
static int l_group_texts(lua_State *L)
{
    s_check_group(L, 1);
    for (int uv = UV_STRINGS; uv >= UV_VALUES; uv--) {
        lua_getiuservalue(L, 1, UV_ENCODE);
        lua_getiuservalue(L, 1, uv);
        lua_call(L, 1, 1);
    }
    return 2;
}

/* g:reset(): empty again (its memory kept for the next events). */
static int l_group_reset(lua_State *L)
{
    struct l_group *g = s_check_group(L, 1);
    lua_getiuservalue(L, 1, UV_VALUES);
    for (lua_Integer i = g->slots; i >= 1; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    lua_getiuservalue(L, 1, UV_STRINGS);
    for (int i = g->nstrs; i >= 1; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    lua_pushnil(L);
    lua_setiuservalue(L, 1, UV_LAST);
    g->slots = 0;
    g->nstrs = 0;
    g->has_last = 0;
    g->ncounted = g->ncounted_last = 0;
    g->len = 0;
    ef_store_packer_reset(&g->packer);
    return 0;
}

/* The size of a compact group of g with texts of those lengths (0 when too large). */
static size_t s_group_size(const struct l_group *g, size_t ns, size_t nv)
{
    if (ns > UINT32_MAX || nv > UINT32_MAX || ns + nv > SIZE_MAX / 2 - g->len)
        return 0;
    return EF_STORE_GROUP_HEADER + ns + nv + g->len;
}

static void s_pack_compact(const struct l_group *g, unsigned char *out, const char *strings,
                           size_t ns, const char *values, size_t nv)
{
    ef_store_pack_group_header(out, g->packer.first, (uint32_t)ns, (uint32_t)nv);
    unsigned char *p = out + EF_STORE_GROUP_HEADER;
    memcpy(p, strings, ns);
    memcpy(p + ns, values, nv);
    if (g->len)
        memcpy(p + ns + nv, g->buf, g->len);
}

/* g:bytes(strings, values) --> the group in the compact format, with its texts. */
static int l_group_bytes(lua_State *L)
{
    struct l_group *g = s_check_group(L, 1);
    size_t ns, nv;
    const char *strings = luaL_checklstring(L, 2, &ns);
    const char *values = luaL_checklstring(L, 3, &nv);
    size_t size = s_group_size(g, ns, nv);
    luaL_argcheck(L, size > 0, 2, "text too long for a group");
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, size);
    s_pack_compact(g, out, strings, ns, values, nv);
    luaL_pushresultsize(&b, size);
    return 1;
}

/* The store's record kind of a descriptor's events (by enum ef_hdesc_field); DESC_SLOW:
 * the sink hands them to Lua. */
#define DESC_SLOW 255
static const uint8_t s_kind_of_field[] = {
    [EF_HDESC_DETAILS] = EF_STORE_KIND_DETAILS, [EF_HDESC_NONE] = EF_STORE_KIND_NONE,
    [EF_HDESC_INPUT] = EF_STORE_KIND_INPUT, [EF_HDESC_OUTPUT] = EF_STORE_KIND_OUTPUT,
    [EF_HDESC_INDEX] = EF_STORE_KIND_ITERATION, [EF_HDESC_OTHER] = DESC_SLOW,
};

/* The group index of the string at address p, a field of the descriptor at d (read
 * from it only when new to the group). */
static uint32_t s_desc_string(lua_State *L, struct l_group *g, int gi, const void *p, int d,
                              const char *field, struct group_string **entry)
{
    for (int i = 0; i < g->nstrs; i++)
        if (g->strs[i].p == p) {
            *entry = &g->strs[i];
            return (uint32_t)i + 1;
        }
    lua_getfield(L, d, field);
    uint32_t index = s_intern(L, g, gi, lua_gettop(L), entry);
    lua_pop(L, 1);
    return index;
}

/* The sink's upvalues, in this order (struct ef_l_sink's base: where they are). */
enum {
    SINK_GROUP,
    SINK_OWNER,    /* its raw field `enabled` turns the sink on and off */
    SINK_NOTABLE,  /* event type -> true: handled by SINK_SLOW */
    SINK_SLOW,
    SINK_FULL,     /* called once the group holds SINK_LIMIT events */
    SINK_LIMIT,
    SINK_CACHE,    /* the history descriptors (l_hdesc.h) */
    SINK_ENABLED,  /* the string "enabled" */
    SINK_UVS
};
/* The index of the sink's value v: an upvalue of the sink itself (base 0), or on the stack
 * from base on (s_sink_load). */
#define SINK_AT(k, v) ((k)->base ? (k)->base + (v) : lua_upvalueindex((v) + 1))

/* Hands the event (the sink's arguments) to the Lua function SINK_SLOW. */
static int s_sink_slow(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(SINK_SLOW + 1));
    for (int i = 1; i <= 6; i++)
        lua_pushvalue(L, i);
    lua_call(L, 6, 0);
    return 0;
}

/* 1 when the group string (an event type) is a key of SINK_NOTABLE. */
static int s_notable(lua_State *L, const struct ef_l_sink *k, struct l_group *g,
                     struct group_string *type)
{
    if (type->notable < 0) {
        lua_getiuservalue(L, SINK_AT(k, SINK_GROUP), UV_STRINGS);
        lua_rawgeti(L, -1, (lua_Integer)(type - g->strs) + 1);
        type->notable = lua_rawget(L, SINK_AT(k, SINK_NOTABLE)) != LUA_TNIL &&
                        lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    return type->notable;
}

/* 1 while the sink's owner has it on. */
static int s_sink_enabled(lua_State *L, const struct ef_l_sink *k)
{
    lua_pushvalue(L, SINK_AT(k, SINK_ENABLED));
    lua_rawget(L, SINK_AT(k, SINK_OWNER));
    int on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

/* The parts of an event of the descriptor at desc (a table) with the value at payload, in
 * *ev (but its id, previous id and time); 0 when SINK_SLOW must take it. A long state name
 * is pushed (the caller pops it once the event is added). */
static int s_sink_parts(lua_State *L, const struct ef_l_sink *k, int desc, int payload,
                        struct event_parts *ev)
{
    struct l_group *g = k->state[0];
    int gi = SINK_AT(k, SINK_GROUP);
    const struct ef_hdesc *d = ef_l_hdesc(L, k->state[1], SINK_AT(k, SINK_CACHE), desc);
    uint8_t kind = s_kind_of_field[d->field];
    if (kind == DESC_SLOW)
        return 0;
    struct group_string *type;
    ev->kind = kind;
    ev->value = payload;
    ev->type = s_desc_string(L, g, gi, d->etype, desc, "etype", &type);
    if (s_notable(L, k, g, type))
        return 0;
    if (ev->kind == EF_STORE_KIND_ITERATION && !lua_isinteger(L, payload))
        return 0;
    if (ev->kind == EF_STORE_KIND_DETAILS &&
        (lua_isnil(L, payload) ||
         (lua_type(L, payload) == LUA_TBOOLEAN && !lua_toboolean(L, payload))))
        ev->kind = EF_STORE_KIND_NONE;
    if (ev->kind != EF_STORE_KIND_NONE) {
        struct group_string *key;
        ev->key = s_desc_string(L, g, gi, d->key, desc, "key", &key);
    }
    if (ev->kind != EF_STORE_KIND_NONE && ev->kind != EF_STORE_KIND_DETAILS) {
        if (d->name_len == EF_HDESC_NAME_LONG) {
            lua_getfield(L, desc, "name");
            ev->name = lua_tolstring(L, -1, &ev->name_len);
        } else {
            ev->name = d->name;
            ev->name_len = d->name_len;
        }
    }
    return 1;
}

/* Adds the event to the sink's group; writes the group (SINK_FULL) once it is full. */
static void s_sink_add(lua_State *L, const struct ef_l_sink *k, const struct event_parts *ev)
{
    if (s_push(L, k->state[0], SINK_AT(k, SINK_GROUP), ev) >= k->limit) {
        lua_pushvalue(L, SINK_AT(k, SINK_FULL));
        lua_call(L, 0, 0);
    }
}

/* The sink: (desc, id, prev, payload, assigned, t), as emrflow.asl.history gives each
 * event. Packs the event into the group without running Lua, but for notable types and
 * shapes it does not know (SINK_SLOW). */
static int l_group_sink(lua_State *L)
{
    struct ef_l_sink k = { 0 };
    lua_settop(L, 6);
    if (!s_sink_enabled(L, &k))
        return 0;
    k.state[0] = lua_touserdata(L, SINK_AT(&k, SINK_GROUP));
    k.state[1] = lua_touserdata(L, SINK_AT(&k, SINK_CACHE));
    k.limit = lua_tointeger(L, SINK_AT(&k, SINK_LIMIT));
    luaL_checktype(L, 1, LUA_TTABLE);
    struct event_parts ev = { .assigned = 5 };
    if (!s_sink_parts(L, &k, 1, 4, &ev))
        return s_sink_slow(L);
    int isint;
    ev.id = lua_tointegerx(L, 2, &isint);
    if (!isint)
        return luaL_argerror(L, 2, "an event id is an integer");
    ev.prev = lua_tointegerx(L, 3, &isint);
    if (!isint)
        return luaL_argerror(L, 3, "a previous event id is an integer");
    ev.t = (double)luaL_checknumber(L, 6);
    s_sink_add(L, &k, &ev);
    return 0;
}

static int s_sink_load(lua_State *L, int fn, struct ef_l_sink *k)
{
    if (lua_tocfunction(L, fn) != l_group_sink)
        return 0;
    fn = lua_absindex(L, fn);
    luaL_checkstack(L, SINK_UVS, "emrflow.store: the event sink");
    k->base = lua_gettop(L) + 1;
    for (int v = 0; v < SINK_UVS; v++)
        lua_getupvalue(L, fn, v + 1);
    k->state[0] = lua_touserdata(L, SINK_AT(k, SINK_GROUP));     /* the group */
    k->state[1] = lua_touserdata(L, SINK_AT(k, SINK_CACHE));     /* the descriptors */
    k->limit = lua_tointeger(L, SINK_AT(k, SINK_LIMIT));
    return 1;
}

static int s_sink_push(lua_State *L, const struct ef_l_sink *k, int desc, lua_Integer id,
                       lua_Integer prev, int payload, int t, int from, int from_key)
{
    if (!s_sink_enabled(L, k))
        return 1;
    if (lua_type(L, desc) != LUA_TTABLE || lua_type(L, t) != LUA_TNUMBER)
        return 0;
    int top = lua_gettop(L);
    struct event_parts ev = { .id = id, .prev = prev, .t = (double)lua_tonumber(L, t),
                              .from = from, .from_key = from_key };
    if (!s_sink_parts(L, k, desc, payload, &ev))
        return 0;
    s_sink_add(L, k, &ev);
    lua_settop(L, top);
    return 1;
}

/* The sink's C side, offered to the interpreter (l_sink.h). */
static struct ef_l_sink_ops s_sink_ops = { s_sink_load, s_sink_push };

/* core.store.sink(group, owner, notable, slow, full, limit): the event sink filling
 * group (see l_group_sink). */
static int l_group_new_sink(lua_State *L)
{
    s_check_group(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    luaL_checkinteger(L, 6);
    lua_settop(L, 6);
    ef_l_hdescs(L);
    lua_pushliteral(L, "enabled");
    lua_pushcclosure(L, l_group_sink, SINK_UVS);
    return 1;
}

static const luaL_Reg s_group_methods[] = {
    { "push", l_group_push },
    { "count", l_group_count },
    { "texts", l_group_texts },
    { "bytes", l_group_bytes },
    { "reset", l_group_reset },
    { NULL, NULL },
};

#define RECORD_FIELDS 9

/* The integer at the top of the stack (popped) in *v when it lies in [min, max]. */
static int s_pop_int(lua_State *L, int64_t min, int64_t max, int64_t *v)
{
    int isint;
    lua_Integer x = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    *v = (int64_t)x;
    return isint && x >= min && x <= max;
}

/* Packs the n records of the flat array at index t into out. Raises nothing (out may be
 * C memory): returns 0, or the 1-based index of the first bad field. */
static lua_Integer s_pack_records(lua_State *L, int t, lua_Integer n, unsigned char *out)
{
    static const int64_t max[RECORD_FIELDS] = { INT64_MAX, INT64_MAX, 0, UINT32_MAX,
        UINT32_MAX, UINT32_MAX, UINT8_MAX, UINT32_MAX, UINT32_MAX };
    for (lua_Integer i = 0; i < n; i++) {
        lua_Integer at = i * RECORD_FIELDS;
        int64_t v[RECORD_FIELDS];
        struct ef_store_record r;
        for (int k = 0; k < RECORD_FIELDS; k++) {
            lua_rawgeti(L, t, at + k + 1);
            if (k == 2) {                       /* the timestamp: any number */
                int isnum;
                r.timestamp = (double)lua_tonumberx(L, -1, &isnum);
                lua_pop(L, 1);
                if (!isnum)
                    return at + k + 1;
                continue;
            }
            if (!s_pop_int(L, k < 2 ? INT64_MIN : 0, max[k], &v[k]))
                return at + k + 1;
        }
        r.id = v[0];
        r.prev = v[1];
        r.type = (uint32_t)v[3];
        r.key = (uint32_t)v[4];
        r.name = (uint32_t)v[5];
        r.kind = (uint8_t)v[6];
        r.value = (uint32_t)v[7];
        r.assigned = (uint32_t)v[8];
        ef_store_pack_record(out + (size_t)i * EF_STORE_RECORD_SIZE, &r);
    }
    return 0;
}

/* Writes the length-prefixed (u32 little-endian) text at p; returns the end. */
static unsigned char *s_put_text(unsigned char *p, const char *text, size_t n)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((uint32_t)n >> (8 * i));
    memcpy(p + 4, text, n);
    return p + 4 + n;
}

/* The arguments of a group at index a: strings, values, fields, n; its size in bytes. */
static size_t s_group_args(lua_State *L, int a, const char **strings, size_t *ns,
                           const char **values, size_t *nv, lua_Integer *n)
{
    *strings = luaL_checklstring(L, a, ns);
    *values = luaL_checklstring(L, a + 1, nv);
    luaL_checktype(L, a + 2, LUA_TTABLE);
    *n = luaL_checkinteger(L, a + 3);
    luaL_argcheck(L, *ns <= UINT32_MAX && *nv <= UINT32_MAX, a, "text too long for a group");
    luaL_argcheck(L, *n >= 0 && *n <= (lua_Integer)(0x7fffffff / EF_STORE_RECORD_SIZE), a + 3,
                  "record count out of range");
    luaL_checkstack(L, 2, "packing a group");
    return 8 + *ns + *nv + (size_t)*n * EF_STORE_RECORD_SIZE;
}

/* core.store.pack_group(strings, values, fields, n): a group's bytes, in one string. */
static int l_store_pack_group(lua_State *L)
{
    const char *strings, *values;
    size_t ns, nv;
    lua_Integer n;
    size_t size = s_group_args(L, 1, &strings, &ns, &values, &nv, &n);
    luaL_Buffer b;
    unsigned char *start = (unsigned char *)luaL_buffinitsize(L, &b, size);
    unsigned char *out = s_put_text(s_put_text(start, strings, ns), values, nv);
    lua_Integer bad = s_pack_records(L, 3, n, out);
    if (bad)
        return luaL_error(L, "event record field %I is not a number in range", bad);
    luaL_pushresultsize(&b, size);
    return 1;
}

/* Steps the insert_events statement st, its bytes bound. true, or nil, err. */
static int s_step_insert(lua_State *L, struct ef_store_stmt *st)
{
    struct ef_store_error err;
    if (ef_store_step(st, &err) == EF_STORE_FAIL)
        return s_fail(L, &err);
    ef_store_bind_null(st, 4);     /* the statement lets go of the bytes now */
    lua_pushboolean(L, 1);
    return 1;
}

/* insert_group of a compact group (argument 7: its l_group; 5, 6: its texts). */
static int s_insert_compact(lua_State *L, struct ef_store *s, lua_Integer seq, lua_Integer first,
                            lua_Integer last)
{
    struct l_group *g = luaL_checkudata(L, 7, GROUP_MT);
    size_t ns, nv;
    const char *strings = luaL_checklstring(L, 5, &ns);
    const char *values = luaL_checklstring(L, 6, &nv);
    luaL_argcheck(L, g->packer.n > 0 && g->packer.first == first && g->packer.last == last, 3,
                  "the ids are not the group's");
    size_t size = s_group_size(g, ns, nv);
    luaL_argcheck(L, size > 0, 5, "text too long for a group");
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("insert_events"));
    if (ef_store_bind_int(st, 1, seq) != 0 || ef_store_bind_int(st, 2, first) != 0 ||
        ef_store_bind_int(st, 3, last) != 0)
        return luaL_error(L, "cannot bind the group's parameters");
    unsigned char *bytes = malloc(size);
    if (!bytes)
        return luaL_error(L, "not enough memory for a group of events");
    s_pack_compact(g, bytes, strings, ns, values, nv);
    if (ef_store_bind_blob_owned(st, 4, bytes, size) != 0)
        return luaL_error(L, "cannot bind the group's bytes");
    return s_step_insert(L, st);
}

/* db:insert_group(seq, first, last, strings, values, fields, n): inserts a group's row
 * (the "insert_events" statement), its bytes packed straight into memory handed to
 * SQLite: a group of thousands of events costs the Lua heap (and its collector) no
 * copy. true, or nil, err. */
static int l_store_insert_group(lua_State *L)
{
    struct ef_store *s = s_check_open(L);
    lua_Integer seq = luaL_checkinteger(L, 2);
    lua_Integer first = luaL_checkinteger(L, 3);
    lua_Integer last = luaL_checkinteger(L, 4);
    if (lua_type(L, 7) == LUA_TUSERDATA)
        return s_insert_compact(L, s, seq, first, last);
    const char *strings, *values;
    size_t ns, nv;
    lua_Integer n;
    size_t size = s_group_args(L, 5, &strings, &ns, &values, &nv, &n);
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("insert_events"));
    if (ef_store_bind_int(st, 1, seq) != 0 || ef_store_bind_int(st, 2, first) != 0 ||
        ef_store_bind_int(st, 3, last) != 0)
        return luaL_error(L, "cannot bind the group's parameters");
    unsigned char *start = malloc(size ? size : 1);
    if (!start)
        return luaL_error(L, "not enough memory for a group of %I events", n);
    /* from here to the bind, nothing raises: start is freed on every path */
    unsigned char *out = s_put_text(s_put_text(start, strings, ns), values, nv);
    lua_Integer bad = s_pack_records(L, 7, n, out);
    if (bad) {
        free(start);
        return luaL_error(L, "event record field %I is not a number in range", bad);
    }
    if (ef_store_bind_blob_owned(st, 4, start, size) != 0)
        return luaL_error(L, "cannot bind the group's bytes");
    return s_step_insert(L, st);
}

static const luaL_Reg s_methods[] = {
    { "query", l_store_query },
    { "insert_group", l_store_insert_group },
    { "integrity_check", l_store_integrity_check },
    { "in_transaction", l_store_in_transaction },
    { "schema_version", l_store_schema_version },
    { "close", l_store_close },
    { NULL, NULL },
};

static const luaL_Reg s_meta[] = {
    { "__gc", l_store_close },
    { "__close", l_store_close },
    { "__tostring", l_store_tostring },
    { NULL, NULL },
};

int ef_l_open_store(lua_State *L);   /* called by luaopen_emrflow_core */

int ef_l_open_store(lua_State *L)
{
    ef_l_sink_offer(L, &s_sink_ops);
    if (luaL_newmetatable(L, STORE_MT)) {               /* core mt */
        luaL_setfuncs(L, s_meta, 0);
        luaL_newlib(L, s_methods);                      /* core mt methods */
        lua_setfield(L, -2, "__index");                 /* core mt */
    }
    lua_pop(L, 1);                                      /* core */
    if (luaL_newmetatable(L, GROUP_MT)) {               /* core gmt */
        lua_pushcfunction(L, l_group_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, s_group_methods);                /* core gmt methods */
        lua_setfield(L, -2, "__index");                 /* core gmt */
    }
    lua_pop(L, 1);                                      /* core */
    lua_createtable(L, 0, 6);                           /* core store */
    lua_pushcfunction(L, l_group_new);
    lua_setfield(L, -2, "group");
    lua_pushcfunction(L, l_group_new_sink);
    lua_setfield(L, -2, "sink");
    lua_pushcfunction(L, l_store_pack_group);
    lua_setfield(L, -2, "pack_group");
    lua_pushcfunction(L, l_store_open);
    lua_setfield(L, -2, "open");
    lua_pushcfunction(L, l_store_make_parent_dirs);
    lua_setfield(L, -2, "make_parent_dirs");
    lua_pushcfunction(L, l_store_content_key);
    lua_setfield(L, -2, "content_key");
    lua_pushinteger(L, EF_STORE_SCHEMA_VERSION);
    lua_setfield(L, -2, "schema_version");
    lua_setfield(L, -2, "store");                       /* core */
    return 0;
}
