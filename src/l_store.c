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
#include <stdlib.h>
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
    struct ef_store_error err;
    if (ef_store_step(st, &err) == EF_STORE_FAIL)
        return s_fail(L, &err);
    ef_store_bind_null(st, 4);     /* the statement lets go of the bytes now */
    lua_pushboolean(L, 1);
    return 1;
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
