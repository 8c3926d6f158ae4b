/* core.store: the thin binding of the execution store (src/ef_store.c).
 *
 *   local db, err = core.store.open(path [, busy_ms])   -- nil, err on a bad store
 *   local rows, changes, rowid = db:query(name, ...)   -- a named statement of the catalogue;
 *                                                       -- nil, err on failure
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
#include <string.h>

#include "l_util.h"
#include "ef_store.h"

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
        rc = ef_store_bind_text(st, i, p, n);
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

/* An integer field of a record, in [0, max]. */
static int64_t s_field_int(lua_State *L, lua_Integer at, int64_t min, int64_t max)
{
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > max)
        luaL_error(L, "event record field %I is not an integer in range", at);
    lua_pop(L, 1);
    return (int64_t)v;
}

#define RECORD_FIELDS 9

/* Writes the length-prefixed (u32 little-endian) text at p; returns the end. */
static unsigned char *s_put_text(unsigned char *p, const char *text, size_t n)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((uint32_t)n >> (8 * i));
    memcpy(p + 4, text, n);
    return p + 4 + n;
}

/* core.store.pack_group(strings, values, fields, n): a group's bytes, in one string. */
static int l_store_pack_group(lua_State *L)
{
    size_t ns, nv;
    const char *strings = luaL_checklstring(L, 1, &ns);
    const char *values = luaL_checklstring(L, 2, &nv);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_checkinteger(L, 4);
    luaL_argcheck(L, ns <= UINT32_MAX && nv <= UINT32_MAX, 2, "text too long for a group");
    luaL_argcheck(L, n >= 0 && n <= (lua_Integer)(0x7fffffff / EF_STORE_RECORD_SIZE), 4,
                  "record count out of range");
    size_t size = 8 + ns + nv + (size_t)n * EF_STORE_RECORD_SIZE;
    luaL_Buffer b;
    unsigned char *start = (unsigned char *)luaL_buffinitsize(L, &b, size);
    unsigned char *out = s_put_text(s_put_text(start, strings, ns), values, nv);
    for (lua_Integer i = 0; i < n; i++) {
        lua_Integer at = i * RECORD_FIELDS;
        struct ef_store_record r;
        lua_rawgeti(L, 3, at + 1);
        r.id = s_field_int(L, at + 1, INT64_MIN, INT64_MAX);
        lua_rawgeti(L, 3, at + 2);
        r.prev = s_field_int(L, at + 2, INT64_MIN, INT64_MAX);
        lua_rawgeti(L, 3, at + 3);
        int isnum;
        r.timestamp = (double)lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            return luaL_error(L, "event record field %I is not a number", at + 3);
        lua_pop(L, 1);
        lua_rawgeti(L, 3, at + 4);
        r.type = (uint32_t)s_field_int(L, at + 4, 0, UINT32_MAX);
        lua_rawgeti(L, 3, at + 5);
        r.key = (uint32_t)s_field_int(L, at + 5, 0, UINT32_MAX);
        lua_rawgeti(L, 3, at + 6);
        r.name = (uint32_t)s_field_int(L, at + 6, 0, UINT32_MAX);
        lua_rawgeti(L, 3, at + 7);
        r.kind = (uint8_t)s_field_int(L, at + 7, 0, UINT8_MAX);
        lua_rawgeti(L, 3, at + 8);
        r.value = (uint32_t)s_field_int(L, at + 8, 0, UINT32_MAX);
        lua_rawgeti(L, 3, at + 9);
        r.assigned = (uint32_t)s_field_int(L, at + 9, 0, UINT32_MAX);
        ef_store_pack_record(out + (size_t)i * EF_STORE_RECORD_SIZE, &r);
    }
    luaL_pushresultsize(&b, size);
    return 1;
}

static const luaL_Reg s_methods[] = {
    { "query", l_store_query },
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
    if (luaL_newmetatable(L, STORE_MT)) {               /* core mt */
        luaL_setfuncs(L, s_meta, 0);
        luaL_newlib(L, s_methods);                      /* core mt methods */
        lua_setfield(L, -2, "__index");                 /* core mt */
    }
    lua_pop(L, 1);                                      /* core */
    lua_createtable(L, 0, 4);                           /* core store */
    lua_pushcfunction(L, l_store_pack_group);
    lua_setfield(L, -2, "pack_group");
    lua_pushcfunction(L, l_store_open);
    lua_setfield(L, -2, "open");
    lua_pushcfunction(L, l_store_make_parent_dirs);
    lua_setfield(L, -2, "make_parent_dirs");
    lua_pushinteger(L, EF_STORE_SCHEMA_VERSION);
    lua_setfield(L, -2, "schema_version");
    lua_setfield(L, -2, "store");                       /* core */
    return 0;
}
