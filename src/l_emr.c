/* core.emr: the thin Lua binding of ef_emr (the emr-containers calls in C).
 *
 *   core.emr.check(op, params [, match])  --> true | false, problems, message
 *       problems: { { path =, message = }, ... }; match(pattern, s) --> boolean checks
 *       the model's patterns (omitted: the C core's own, through ef_regex)
 *   core.emr.build(op, params)   --> method, target ("/path?query"), body | nil
 *   core.emr.decode(op, status, body) --> result (PascalCase) | nil, code, message
 *   core.emr.parse_error(status, headers, body) --> aws_code, message, request_id, retryable
 *   core.emr.classify(code, aws_code, status) --> "throttling" | "transient" | "timeout" | nil
 *   core.emr.retry_decide(policy, kind, attempt, random_u) ... see lua/emrflow/emr/retry.lua
 *   core.emr.uuid4() --> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
 *   core.emr.sync_plan{ initial =, factor =, max =, rate =, page_size = } --> plan (ef_emr_sync):
 *     plan:watch(vc, job, now) --> handle; plan:unwatch(h); plan:redescribe(h)
 *     plan:next(now) --> "idle", wake_at | "describe", handle, vc, job, final
 *                      | "list", vc, created_after, next_token | nil, page_size
 *     plan:described(h, now, state, created_at); plan:listed(vc, now, { {id, state}... }, token)
 *     plan:list_failed(vc, now); plan:stats() --> { lists =, describes =, watched =, clusters = }
 *   core.emr.client{ endpoint =, region =, timeout_ms =, connect_timeout_ms =, user_agent =,
 *                    ca_bundle =, max_connections = } --> c (ef_emr_client: its own poller)
 *     c:send(op, params, access_key_id, secret_access_key, session_token [, check])
 *       --> result, request_id | nil, err_fields, kind    one blocking attempt
 *       | nil, false, problems, message                   check: the model checks failed
 *     c:close()
 *   core.emr.operations --> { StartJobRun = true, ... }, core.emr.model_source
 *
 * Parameters travel to C as cJSON trees; every C resource of a call hangs off one
 * userdata box created first, so a Lua error anywhere frees it (its __gc). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ef_emr.h"
#include "ef_emr_sync.h"
#include "ef_emr_client.h"
#include "l_util.h"

#define BOX_MT "emrflow.emr.box"
#define MAX_DEPTH 100

/* upvalues of every function */
#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_OBJ_MARK lua_upvalueindex(2)

struct box {
    cJSON *params;
    cJSON *doc;
    struct ef_emr_problems problems;
    struct ef_emr_wire wire;
    struct ef_buf text;
};

static void box_clear(struct box *b)
{
    cJSON_Delete(b->params);
    cJSON_Delete(b->doc);
    b->params = b->doc = NULL;
    ef_emr_problems_free(&b->problems);
    ef_emr_wire_free(&b->wire);
    ef_buf_clean_up(&b->text);
}

static int box_gc(lua_State *L)
{
    box_clear(luaL_checkudata(L, 1, BOX_MT));
    return 0;
}

static struct box *new_box(lua_State *L)
{
    struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    ef_emr_wire_init(&b->wire);
    luaL_setmetatable(L, BOX_MT);
    return b;
}

static const struct ef_emr_operation *check_op(lua_State *L, int idx)
{
    size_t n;
    const char *name = luaL_checklstring(L, idx, &n);
    const struct ef_emr_operation *op = ef_emr_operation_find(name, n);
    if (!op)
        luaL_error(L, "emrflow.emr: unknown emr-containers operation '%s'", name);
    return op;
}

/* ---- Lua -> cJSON ------------------------------------------------------------------ */

static cJSON *raw(const char *what)
{
    return cJSON_CreateRaw(what);
}

/* Is the table at idx marked by emrflow.json as an array (1) or an object (2); 0 when plain,
 * -1 when it has some other metatable. */
static int mark_of(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    int kind = -1;
    if (lua_rawequal(L, -1, UV_ARRAY_MT)) {
        kind = 1;
    } else if (lua_getmetatable(L, -1)) {
        if (lua_rawequal(L, -1, UV_OBJ_MARK))
            kind = 2;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return kind;
}

static cJSON *to_cjson(lua_State *L, int idx, int depth);

static cJSON *table_to_cjson(lua_State *L, int idx, int depth)
{
    if (depth > MAX_DEPTH)
        return raw("table nested too deeply");
    luaL_checkstack(L, 4, "emrflow.emr");
    int mark = mark_of(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    /* count keys and see whether they are all strings or all 1..n */
    lua_Integer count = 0, strings = 0, seq = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (lua_type(L, -2) == LUA_TSTRING)
            strings++;
        else if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k >= 1 && k <= n)
                seq++;
        }
        lua_pop(L, 1);
    }
    int as_array = mark == 1 || (mark == 0 && count > 0 && seq == count);
    if (mark == 1 && seq != count)
        return raw("table");
    if (as_array) {
        cJSON *a = cJSON_CreateArray();
        for (lua_Integer i = 1; a && i <= n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *item = to_cjson(L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (!item) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, item);
        }
        return a;
    }
    if (strings != count || mark < 0)
        return raw("table");
    cJSON *o = cJSON_CreateObject();
    lua_pushnil(L);
    while (o && lua_next(L, idx)) {
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);
        cJSON *item = memchr(k, 0, kn) ? raw("table") : to_cjson(L, lua_gettop(L), depth + 1);
        if (!item) {
            lua_pop(L, 2);
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, k, item);
        lua_pop(L, 1);
    }
    return o;
}

/* NULL only when memory ran out. */
static cJSON *to_cjson(lua_State *L, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return ef_emr_string(s, n);
    }
    case LUA_TNUMBER:
        return cJSON_CreateNumber(lua_isinteger(L, idx) ? (double)lua_tointeger(L, idx)
                                                        : (double)lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return cJSON_CreateNull();
        return raw("userdata");
    case LUA_TTABLE:
        return table_to_cjson(L, idx, depth);
    default:
        return raw(luaL_typename(L, idx));
    }
}

/* The parameters at idx (nil = none) into b->params. */
static void params_of(lua_State *L, int idx, struct box *b)
{
    if (lua_isnoneornil(L, idx))
        return;
    b->params = to_cjson(L, idx, 0);
    if (!b->params)
        luaL_error(L, "emrflow.emr: out of memory");
}

/* ---- cJSON -> Lua ------------------------------------------------------------------ */

static void push_plain(lua_State *L, const cJSON *v, int depth);

static void push_number(lua_State *L, double d)
{
    if (d == (double)(lua_Integer)d && d > -9007199254740992.0 && d < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, (lua_Number)d);
}

/* A JSON object as emrflow.json.decode makes it: marked, key order recorded. */
static void push_object(lua_State *L, const cJSON *v, int depth, unsigned value_shape, int by_shape);
static void push_shaped(lua_State *L, unsigned shape, const cJSON *v, int depth);

static void push_array(lua_State *L, const cJSON *v, int depth, unsigned member, int by_shape)
{
    int n = cJSON_GetArraySize(v);
    lua_createtable(L, n, 0);
    int i = 1;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (by_shape)
            push_shaped(L, member, e, depth + 1);
        else
            push_plain(L, e, depth + 1);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, -2);
}

static void push_object(lua_State *L, const cJSON *v, int depth, unsigned value_shape, int by_shape)
{
    int n = cJSON_GetArraySize(v);
    lua_createtable(L, 0, n);
    lua_createtable(L, n, 0);               /* the order table m */
    lua_pushvalue(L, UV_OBJ_MARK);
    lua_setmetatable(L, -2);
    int i = 1;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!e->string)
            continue;
        lua_pushstring(L, e->string);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, i++);            /* m[i] = key */
        if (by_shape)
            push_shaped(L, value_shape, e, depth + 1);
        else
            push_plain(L, e, depth + 1);
        lua_rawset(L, -4);
    }
    lua_setmetatable(L, -2);
}

static void push_plain(lua_State *L, const cJSON *v, int depth)
{
    luaL_checkstack(L, 8, "emrflow.emr");
    if (depth > 1000)
        luaL_error(L, "emrflow.emr: reply nested too deeply");
    if (cJSON_IsString(v))
        lua_pushstring(L, v->valuestring);
    else if (cJSON_IsNumber(v))
        push_number(L, v->valuedouble);
    else if (cJSON_IsBool(v))
        lua_pushboolean(L, cJSON_IsTrue(v));
    else if (cJSON_IsArray(v))
        push_array(L, v, depth, EF_EMR_NONE, 0);
    else if (cJSON_IsObject(v))
        push_object(L, v, depth, EF_EMR_NONE, 0);
    else
        lua_pushlightuserdata(L, NULL);     /* json.null */
}

/* A wire value already renamed to PascalCase (ef_emr_pascalize), as the Lua layer's
 * from_wire made it: structures plain tables (an empty one marked as an object),
 * lists and maps marked. */
static void push_shaped(lua_State *L, unsigned shape, const cJSON *v, int depth)
{
    luaL_checkstack(L, 8, "emrflow.emr");
    if (depth > 1000)
        luaL_error(L, "emrflow.emr: reply nested too deeply");
    if (shape == EF_EMR_NONE) {
        push_plain(L, v, depth);
        return;
    }
    const struct ef_emr_shape *s = &ef_emr_shapes[shape];
    if (s->type == EF_EMR_T_STRUCTURE && cJSON_IsObject(v)) {
        lua_createtable(L, 0, (int)s->nmembers);
        int n = 0;
        for (const cJSON *e = v->child; e; e = e->next) {
            if (!e->string)
                continue;
            const struct ef_emr_member *m = ef_emr_member_find(s, e->string, strlen(e->string), 1);
            lua_pushstring(L, e->string);
            if (m)
                push_shaped(L, m->shape, e, depth + 1);
            else
                push_plain(L, e, depth + 1);
            lua_rawset(L, -3);
            n++;
        }
        if (n == 0) {
            lua_createtable(L, 0, 0);
            lua_pushvalue(L, UV_OBJ_MARK);
            lua_setmetatable(L, -2);
            lua_setmetatable(L, -2);
        }
    } else if (s->type == EF_EMR_T_LIST && cJSON_IsArray(v)) {
        push_array(L, v, depth, s->member, 1);
    } else if (s->type == EF_EMR_T_MAP && cJSON_IsObject(v)) {
        push_object(L, v, depth, s->value, 1);
    } else {
        push_plain(L, v, depth);
    }
}

/* ---- functions --------------------------------------------------------------------- */

struct lmatch {
    lua_State *L;
    int fn;        /* stack index of the Lua matcher */
};

static int call_match(lua_State *L)
{
    /* fn, pattern, subject */
    lua_call(L, 2, 1);
    return 1;
}

static int match_lua(void *ud, const char *pattern, const char *s, size_t n)
{
    struct lmatch *m = ud;
    lua_State *L = m->L;
    luaL_checkstack(L, 5, "emrflow.emr");
    lua_pushcfunction(L, call_match);
    lua_pushvalue(L, m->fn);
    lua_pushstring(L, pattern);
    lua_pushlstring(L, s, n);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return -1;
    }
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Pushes the problems list and the message; clears the box. */
static void push_problems(lua_State *L, const struct ef_emr_operation *op, struct box *b)
{
    lua_createtable(L, (int)b->problems.n, 0);
    for (size_t i = 0; i < b->problems.n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, b->problems.items[i].path);
        lua_setfield(L, -2, "path");
        lua_pushstring(L, b->problems.items[i].message);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (ef_emr_problems_message(op, &b->problems, &b->text))
        luaL_error(L, "emrflow.emr: out of memory");
    lua_pushlstring(L, b->text.p, b->text.len);
    box_clear(b);
}

static int l_check(lua_State *L)
{
    const struct ef_emr_operation *op = check_op(L, 1);
    int has_match = !lua_isnoneornil(L, 3);
    if (has_match)
        luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    struct box *b = new_box(L);
    params_of(L, 2, b);
    struct lmatch m = { L, 3 };
    ef_emr_check(op, b->params, has_match ? match_lua : ef_emr_model_match, &m, &b->problems);
    if (b->problems.oom)
        return luaL_error(L, "emrflow.emr: out of memory");
    if (b->problems.n == 0) {
        box_clear(b);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    push_problems(L, op, b);
    return 3;
}

/* Marshals b->params for op and pushes method, target, body (nil when the operation has none). */
static void push_wire(lua_State *L, const struct ef_emr_operation *op, struct box *b)
{
    if (ef_emr_build(op, b->params, &b->wire))
        luaL_error(L, "emrflow.emr: out of memory");
    lua_pushstring(L, op->method);
    lua_pushlstring(L, b->wire.target.p, b->wire.target.len);
    if (b->wire.has_body)
        lua_pushlstring(L, b->wire.body.p ? b->wire.body.p : "{}", b->wire.body.len);
    else
        lua_pushnil(L);
    box_clear(b);
}

static int l_build(lua_State *L)
{
    const struct ef_emr_operation *op = check_op(L, 1);
    lua_settop(L, 2);
    struct box *b = new_box(L);
    params_of(L, 2, b);
    push_wire(L, op, b);
    return 3;
}

/* check_build(op, params) --> true, method, target, body | false, problems, message:
 * the model checks and the marshalling of one request from one conversion of params. */
static int l_check_build(lua_State *L)
{
    const struct ef_emr_operation *op = check_op(L, 1);
    lua_settop(L, 2);
    struct box *b = new_box(L);
    params_of(L, 2, b);
    struct lmatch m = { L, 0 };
    ef_emr_check(op, b->params, ef_emr_model_match, &m, &b->problems);
    if (b->problems.oom)
        return luaL_error(L, "emrflow.emr: out of memory");
    if (b->problems.n > 0) {
        lua_pushboolean(L, 0);
        push_problems(L, op, b);
        return 3;
    }
    lua_pushboolean(L, 1);
    push_wire(L, op, b);
    return 4;
}

static int l_decode(lua_State *L)
{
    const struct ef_emr_operation *op = check_op(L, 1);
    lua_Integer status = luaL_checkinteger(L, 2);
    size_t len;
    const char *body = luaL_optlstring(L, 3, "", &len);
    lua_settop(L, 3);
    struct box *b = new_box(L);
    struct ef_emr_error err;
    b->doc = ef_emr_reply(op, (long)status, body, len, &err);
    if (!b->doc) {
        lua_pushnil(L);
        lua_pushstring(L, err.code);
        lua_pushstring(L, err.message);
        return 3;
    }
    ef_emr_pascalize(op->output, b->doc);
    if (op->output == EF_EMR_NONE || !b->doc->child) {
        lua_createtable(L, 0, 0);
        lua_createtable(L, 0, 0);
        lua_pushvalue(L, UV_OBJ_MARK);
        lua_setmetatable(L, -2);
        lua_setmetatable(L, -2);
    } else {
        push_shaped(L, op->output, b->doc, 0);
    }
    box_clear(b);
    return 1;
}

/* headers: a list of { name, value } pairs (nil = none) */
static int l_parse_error(lua_State *L)
{
    lua_Integer status = luaL_checkinteger(L, 1);
    size_t len;
    const char *body = luaL_optlstring(L, 3, "", &len);
    struct ef_emr_header hs[64];
    size_t n = 0;
    if (lua_istable(L, 2)) {
        lua_Integer count = (lua_Integer)lua_rawlen(L, 2);
        for (lua_Integer i = 1; i <= count && n < 64; i++) {
            lua_rawgeti(L, 2, i);
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2);
                if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                    hs[n].name = lua_tolstring(L, -2, &hs[n].name_len);
                    hs[n].value = lua_tolstring(L, -1, &hs[n].value_len);
                    n++;
                }
                lua_pop(L, 2);      /* strings stay alive: the header table holds them */
            }
            lua_pop(L, 1);
        }
    }
    struct ef_emr_error e;
    ef_emr_parse_error((long)status, hs, n, body, len, &e);
    lua_pushstring(L, e.aws_code);
    lua_pushstring(L, e.message);
    if (e.request_id[0])
        lua_pushstring(L, e.request_id);
    else
        lua_pushnil(L);
    lua_pushboolean(L, e.retryable);
    return 4;
}

static double fixed_random(void *ud)
{
    return *(const double *)ud;
}

static const char *const KIND_NAMES[] = { NULL, "throttling", "transient", "timeout" };

static int l_classify(lua_State *L)
{
    const char *code = luaL_optstring(L, 1, NULL);
    const char *aws = luaL_optstring(L, 2, NULL);
    long status = (long)luaL_optinteger(L, 3, 0);
    int kind = ef_emr_classify(code, aws, status);
    if (kind == EF_EMR_NO_RETRY)
        lua_pushnil(L);
    else
        lua_pushstring(L, KIND_NAMES[kind]);
    return 1;
}

/* retry_decide(kind, attempt, capacity, max_attempts, u, max_backoff_s)
 *   --> delay_s, cost, capacity_left | nil, why */
static int l_retry_decide(lua_State *L)
{
    static const char *const kinds[] = { "none", "throttling", "transient", "timeout", NULL };
    int kind = lua_isnoneornil(L, 1) ? EF_EMR_NO_RETRY : luaL_checkoption(L, 1, NULL, kinds);
    struct ef_emr_retry r;
    ef_emr_retry_init(&r, (int)luaL_checkinteger(L, 4), 0);
    r.capacity = (int)luaL_checkinteger(L, 3);
    double u = luaL_checknumber(L, 5);
    r.max_backoff_s = luaL_optnumber(L, 6, EF_EMR_MAX_BACKOFF_S);
    r.random = fixed_random;
    r.random_ud = &u;
    double delay;
    int cost;
    int verdict = ef_emr_retry_decide(&r, kind, (int)luaL_checkinteger(L, 2), &delay, &cost);
    if (verdict != EF_EMR_RETRY) {
        lua_pushnil(L);
        lua_pushstring(L, ef_emr_retry_verdict_name(verdict));
        return 2;
    }
    lua_pushnumber(L, delay);
    lua_pushinteger(L, cost);
    lua_pushinteger(L, r.capacity);
    return 3;
}

static int l_uuid4(lua_State *L)
{
    char id[37];
    if (ef_emr_uuid4(id))
        return luaL_error(L, "emrflow.emr: cannot read random bytes from /dev/urandom");
    lua_pushstring(L, id);
    return 1;
}

static int l_random(lua_State *L)
{
    lua_pushnumber(L, ef_emr_random(NULL));
    return 1;
}


/* ---- the .sync plan ------------------------------------------------------------------ */

#define PLAN_MT "emrflow.emr.sync_plan"

static struct ef_emr_sync **plan_box(lua_State *L)
{
    struct ef_emr_sync **p = luaL_checkudata(L, 1, PLAN_MT);
    if (!*p)
        luaL_error(L, "emrflow.emr: sync plan is closed");
    return p;
}

static int plan_gc(lua_State *L)
{
    struct ef_emr_sync **p = luaL_checkudata(L, 1, PLAN_MT);
    ef_emr_sync_free(*p);
    *p = NULL;
    return 0;
}

static double opt_field(lua_State *L, int idx, const char *k, double dflt)
{
    lua_getfield(L, idx, k);
    double v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static int l_sync_plan(lua_State *L)
{
    struct ef_emr_sync_options o = { 2, 1.5, 30, 10, 50 };
    if (lua_istable(L, 1)) {
        o.initial = opt_field(L, 1, "initial", o.initial);
        o.factor = opt_field(L, 1, "factor", o.factor);
        o.max = opt_field(L, 1, "max", o.max);
        o.rate = opt_field(L, 1, "rate", o.rate);
        o.page_size = (int)opt_field(L, 1, "page_size", o.page_size);
    }
    struct ef_emr_sync **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = NULL;
    luaL_setmetatable(L, PLAN_MT);
    *p = ef_emr_sync_new(&o);
    if (!*p)
        return luaL_error(L, "emrflow.emr: out of memory");
    return 1;
}

static int plan_watch(lua_State *L)
{
    struct ef_emr_sync **p = plan_box(L);
    uint64_t h = ef_emr_sync_watch(*p, luaL_checkstring(L, 2), luaL_checkstring(L, 3),
                                   (double)luaL_checknumber(L, 4));
    if (!h)
        return luaL_error(L, "emrflow.emr: out of memory");
    lua_pushinteger(L, (lua_Integer)h);
    return 1;
}

static int plan_unwatch(lua_State *L)
{
    ef_emr_sync_unwatch(*plan_box(L), (uint64_t)luaL_checkinteger(L, 2));
    return 0;
}

static int plan_redescribe(lua_State *L)
{
    ef_emr_sync_redescribe(*plan_box(L), (uint64_t)luaL_checkinteger(L, 2));
    return 0;
}

static int plan_next(lua_State *L)
{
    struct ef_emr_sync **p = plan_box(L);
    struct ef_emr_sync_action a;
    switch (ef_emr_sync_next(*p, (double)luaL_checknumber(L, 2), &a)) {
    case EF_EMR_SYNC_DESCRIBE:
        lua_pushliteral(L, "describe");
        lua_pushinteger(L, (lua_Integer)a.handle);
        lua_pushstring(L, a.vc_id);
        lua_pushstring(L, a.job_id);
        lua_pushboolean(L, a.final);
        return 5;
    case EF_EMR_SYNC_LIST:
        lua_pushliteral(L, "list");
        lua_pushstring(L, a.vc_id);
        lua_pushnumber(L, a.created_after);
        if (a.next_token)
            lua_pushstring(L, a.next_token);
        else
            lua_pushnil(L);
        lua_pushinteger(L, a.page_size);
        return 5;
    default:
        lua_pushliteral(L, "idle");
        lua_pushnumber(L, a.wake_at);
        return 2;
    }
}

static int plan_described(lua_State *L)
{
    struct ef_emr_sync **p = plan_box(L);
    ef_emr_sync_described(*p, (uint64_t)luaL_checkinteger(L, 2), (double)luaL_checknumber(L, 3),
                          luaL_optstring(L, 4, ""), (double)luaL_optnumber(L, 5, (lua_Number)HUGE_VAL));
    return 0;
}

static int plan_listed(lua_State *L)
{
    struct ef_emr_sync **p = plan_box(L);
    const char *vc = luaL_checkstring(L, 2);
    double now = (double)luaL_checknumber(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    const char *token = luaL_optstring(L, 5, NULL);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 4);
    struct ef_emr_sync_item items[64];
    /* in chunks: the strings stay referenced by the item tables meanwhile */
    lua_Integer i = 1;
    do {
        size_t k = 0;
        for (; i <= n && k < 64; i++) {
            lua_rawgeti(L, 4, i);
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2);
                if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                    items[k].id = lua_tostring(L, -2);
                    items[k].state = lua_tostring(L, -1);
                    k++;
                }
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        ef_emr_sync_listed(*p, vc, now, items, k, i > n ? token : "more");
    } while (i <= n);
    return 0;
}

static int plan_list_failed(lua_State *L)
{
    struct ef_emr_sync **p = plan_box(L);
    ef_emr_sync_list_failed(*p, luaL_checkstring(L, 2), (double)luaL_checknumber(L, 3));
    return 0;
}

static int plan_stats(lua_State *L)
{
    struct ef_emr_sync_stats st;
    ef_emr_sync_get_stats(*plan_box(L), &st);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st.lists);
    lua_setfield(L, -2, "lists");
    lua_pushinteger(L, (lua_Integer)st.describes);
    lua_setfield(L, -2, "describes");
    lua_pushinteger(L, (lua_Integer)st.watched);
    lua_setfield(L, -2, "watched");
    lua_pushinteger(L, (lua_Integer)st.clusters);
    lua_setfield(L, -2, "clusters");
    return 1;
}


/* ---- the C client: one blocking attempt per call ------------------------------------ */

#define CLIENT_MT "emrflow.emr.client"

static int client_gc(lua_State *L)
{
    struct ef_emr_client **p = luaL_checkudata(L, 1, CLIENT_MT);
    ef_emr_client_free(*p);
    *p = NULL;
    return 0;
}

static const char *opt_string(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);      /* the options table keeps the string alive */
    return v;
}

static int l_client(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct ef_emr_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.endpoint = opt_string(L, 1, "endpoint");
    cfg.region = opt_string(L, 1, "region");
    cfg.user_agent = opt_string(L, 1, "user_agent");
    cfg.ca_bundle = opt_string(L, 1, "ca_bundle");
    cfg.timeout_ms = (long)opt_field(L, 1, "timeout_ms", 0);
    cfg.connect_timeout_ms = (long)opt_field(L, 1, "connect_timeout_ms", 0);
    cfg.max_connections = (long)opt_field(L, 1, "max_connections", 0);
    cfg.max_attempts = 1;
    cfg.access_key_id = "-";          /* set per call */
    cfg.secret_access_key = "-";
    if (!cfg.endpoint || !cfg.region)
        return luaL_error(L, "emrflow.emr: client needs endpoint and region");
    struct ef_emr_client **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = NULL;
    luaL_setmetatable(L, CLIENT_MT);
    *p = ef_emr_client_new(&cfg);
    if (!*p)
        return luaL_error(L, "emrflow.emr: cannot make a client (out of memory or libcurl failed)");
    return 1;
}

static const char *const KIND_NAMES2[] = { NULL, "throttling", "transient", "timeout" };

static int client_send(lua_State *L)
{
    struct ef_emr_client **p = luaL_checkudata(L, 1, CLIENT_MT);
    if (!*p)
        return luaL_error(L, "emrflow.emr: client is closed");
    const struct ef_emr_operation *op = check_op(L, 2);
    const char *akid = luaL_checkstring(L, 4), *secret = luaL_checkstring(L, 5);
    const char *token = luaL_optstring(L, 6, NULL);
    int check = lua_toboolean(L, 7);
    lua_settop(L, 7);
    if (ef_emr_client_set_credentials(*p, akid, secret, token))
        return luaL_error(L, "emrflow.emr: out of memory");
    struct box *b = new_box(L);
    params_of(L, 3, b);
    if (check) {            /* the model checks first: nothing is sent when they fail */
        ef_emr_check(op, b->params, ef_emr_model_match, NULL, &b->problems);
        if (b->problems.oom)
            return luaL_error(L, "emrflow.emr: out of memory");
        if (b->problems.n) {
            lua_pushnil(L);
            lua_pushboolean(L, 0);
            push_problems(L, op, b);
            return 4;       /* nil, false, problems, message */
        }
    }
    struct ef_emr_error err;
    int kind;
    char rid[128];
    b->doc = ef_emr_client_attempt(*p, op->name, b->params, &err, &kind, rid, sizeof rid);
    if (b->doc) {
        if (op->output == EF_EMR_NONE || !b->doc->child) {
            lua_createtable(L, 0, 0);
            lua_createtable(L, 0, 0);
            lua_pushvalue(L, UV_OBJ_MARK);
            lua_setmetatable(L, -2);
            lua_setmetatable(L, -2);
        } else {
            push_shaped(L, op->output, b->doc, 0);
        }
        box_clear(b);
        if (rid[0])
            lua_pushstring(L, rid);
        else
            lua_pushnil(L);
        return 2;
    }
    box_clear(b);
    lua_pushnil(L);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, err.code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, err.message);
    lua_setfield(L, -2, "message");
    if (err.status > 0) {
        lua_pushinteger(L, err.status);
        lua_setfield(L, -2, "status");
    }
    if (strcmp(err.code, "aws") == 0 && err.aws_code[0]) {
        lua_pushstring(L, err.aws_code);
        lua_setfield(L, -2, "aws_code");
    }
    if (err.request_id[0]) {
        lua_pushstring(L, err.request_id);
        lua_setfield(L, -2, "request_id");
    }
    lua_pushboolean(L, err.retryable);
    lua_setfield(L, -2, "retryable");
    if (kind != EF_EMR_NO_RETRY)
        lua_pushstring(L, KIND_NAMES2[kind]);
    else
        lua_pushnil(L);
    return 3;
}

/* The compiled-pattern cache goes when the state closes (before the library unloads). */
static const char s_patterns_key = 0;

static int patterns_gc(lua_State *L)
{
    (void)L;
    ef_emr_model_match_reset();
    return 0;
}

int ef_l_open_emr(lua_State *L); /* called from lua_emrflow.c */

int ef_l_open_emr(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"check", l_check}, {"build", l_build}, {"check_build", l_check_build}, {"decode", l_decode},
        {"parse_error", l_parse_error}, {"classify", l_classify}, {"uuid4", l_uuid4},
        {"random", l_random}, {"retry_decide", l_retry_decide}, {"sync_plan", l_sync_plan},
        {"client", l_client}, {NULL, NULL},
    };
    luaL_checkstack(L, 8, "emrflow.emr");
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg plan_methods[] = {
        {"watch", plan_watch}, {"unwatch", plan_unwatch}, {"redescribe", plan_redescribe},
        {"next", plan_next}, {"described", plan_described}, {"listed", plan_listed},
        {"list_failed", plan_list_failed}, {"stats", plan_stats}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, PLAN_MT)) {
        lua_pushcfunction(L, plan_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, plan_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 12);              /* core.emr */
    lua_getfield(L, -2, "json");            /* the marks of emrflow.json */
    lua_getfield(L, -1, "array_mt");
    lua_getfield(L, -2, "object_mark");
    lua_remove(L, -3);
    static const luaL_Reg client_methods[] = {
        {"send", client_send}, {"close", client_gc}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, CLIENT_MT)) {   /* methods share the marks as upvalues */
        lua_pushcfunction(L, client_gc);
        lua_setfield(L, -2, "__gc");
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, -4);
        lua_pushvalue(L, -4);
        luaL_setfuncs(L, client_methods, 2);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 2);
    lua_createtable(L, 0, (int)ef_emr_noperations);
    for (size_t i = 0; i < ef_emr_noperations; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, ef_emr_operations[i].name);
    }
    lua_setfield(L, -2, "operations");
    lua_pushstring(L, ef_emr_model_source);
    lua_setfield(L, -2, "model_source");
    /* keyed by this copy of the library's own address: a state that loads two copies
     * (an installed one and a build) frees each copy's cache */
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &s_patterns_key) == LUA_TNIL) {
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, patterns_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &s_patterns_key);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "emr");
    return 0;
}
