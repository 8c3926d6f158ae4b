/* core.asl: the ASL interpreter's hot loop for chains of common Pass states.
 *
 * A chain of Pass states (Parameters or Result, ResultPath "$", null or
 * "$.key", nothing else) is the interpreter's most frequent work.  In Lua
 * each such state costs some 300 VM instructions; here one C loop runs
 * consecutive ones, doing exactly what lua/emrflow/asl/states/pass.lua's
 * fast_pass_exec does for each (it stays the reference: read them side by
 * side), and goes back to Lua for everything else:
 *
 *   run(frame, input, P) --> count, next_state, output
 *
 * runs P and the common Pass states after it; count is how many it ran (0:
 * none, Lua runs P itself).  It stops before a state that is not a common
 * Pass, before the entry at which the host must run (scheduler.yield cannot
 * cross this C call), before an event would reach the history limit (Lua
 * raises that error), and before a "$.key" ResultPath on an input that is
 * not a JSON object (Lua raises that error).  An error raised inside (a path
 * not found, an intrinsic failing, the 256 KiB check) leaves the frame, the
 * execution and the recorder as the Lua path leaves them, and is raised
 * again as it is.  Executions with an on_event callback never come here.
 *
 * The loop reads the states from the array FLAT that pass.lua's flatten
 * lays out per scope, one record per common Pass along its chain (see
 * there); a compiled state P gives its FLAT and its record's base b: */
#include "l_json.h"
#include "l_sink.h"
#include "l_util.h"

enum { P_FLAT = 15, P_BASE = 16 };
enum { /* a record: FLAT[b + F_*]; a template's values at b + F_FIELDS + k (keyset: k = 1) */
    F_P = 1, F_NAME, F_ENTERED, F_EXITED, F_SHAPE, F_R, F_KEY, F_MODE, F_KEYLEN, F_SIZES,
    F_SIG, F_NEXT, F_NEXTB, F_FIELDS = F_NEXTB
};
enum { MODE_KEY = 1, MODE_DISCARD = 2, MODE_WHOLE = 3 };

/* the runner's upvalues (1 and 2: the JSON marks, for l_json.h) */
#define UV_SIZE_CHECK lua_upvalueindex(3) /* common.size_check(name, out) */
#define UV_YIELD_EVERY lua_upvalueindex(4)
#define UV_LIMIT lua_upvalueindex(5)      /* the payload limit (256 KiB) */
#define UV_INNER lua_upvalueindex(6)      /* the loop, called protected */

/* What the loop has changed and not yet written back, for an error. */
struct progress {
    int ran;                /* states begun */
    lua_Integer entries;    /* x.entries */
    lua_Integer n;          /* rec.n */
    lua_Integer prev;       /* frame.prev */
    lua_Integer entered_id; /* frame.entered_id */
};

/* Stack slots of the loop (arguments 1..4 first). */
enum {
    A_FRAME = 1, A_INPUT, A_P, A_PROGRESS,
    S_X, S_REC, S_ENV, S_CONSTS, S_NOW, S_DESCS, S_PAYLOADS, S_PREVS, S_TIDS, S_TVALS,
    S_TLAST, S_SINK, S_SO, S_RO, S_KO, S_T, S_R, S_OUT, S_FLAT,
    S_TOP = S_FLAT
};

struct loop {
    lua_State *L;
    struct progress *pg;
    int quiet, enabled, sink;
    const struct ef_l_sink_ops *direct; /* the sink's C side (l_sink.h), or NULL */
    struct ef_l_sink sk;
    lua_Integer limit; /* history limit, 0: none */
    lua_Integer t_count;
    lua_Integer payload_limit;
    int env_set; /* env.input is the current state's input */
};

static lua_Integer s_int_field(lua_State *L, int t, const char *k, lua_Integer dflt)
{
    lua_Integer v = dflt;
    if (lua_getfield(L, t, k) == LUA_TNUMBER && lua_isinteger(L, -1))
        v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void s_field_to(lua_State *L, int t, const char *k, int slot)
{
    lua_getfield(L, t, k);
    lua_replace(L, slot);
}

/* rec:add_event(desc, prev, payload, nil, t) for the recorder as loaded in
 * the loop's slots (history.lua Recorder.add_event, without on_event, below
 * the limit).  desc and payload are absolute indices; from and key too when
 * payload is json.copy_shallow(from, key, r), else 0 (for the store's sink).
 * Returns the id. */
static lua_Integer s_add_event(struct loop *lp, int desc, lua_Integer prev, int payload,
                               int from, int key)
{
    lua_State *L = lp->L;
    lua_Integer id = lp->pg->n + 1;
    lp->pg->n = id;
    if (!lp->enabled)
        return id;
    lua_pushvalue(L, desc);
    lua_rawseti(L, S_DESCS, id);
    lua_pushvalue(L, payload);
    lua_rawseti(L, S_PAYLOADS, id);
    if (prev != id - 1) {
        lua_pushinteger(L, prev);
        lua_rawseti(L, S_PREVS, id);
    }
    if (!lua_rawequal(L, S_T, S_TLAST)) {
        lp->t_count++;
        lua_pushinteger(L, id);
        lua_rawseti(L, S_TIDS, lp->t_count);
        lua_pushvalue(L, S_T);
        lua_rawseti(L, S_TVALS, lp->t_count);
        lua_pushvalue(L, S_T);
        lua_replace(L, S_TLAST);
        lua_pushvalue(L, S_T);
        lua_setfield(L, S_REC, "t_last");
    }
    if (lp->sink && !(lp->direct && lp->direct->push(L, &lp->sk, desc, id, prev, payload, S_T, from, key))) {
        lua_pushvalue(L, S_SINK);
        lua_pushvalue(L, desc);
        lua_pushinteger(L, id);
        lua_pushinteger(L, prev);
        lua_pushvalue(L, payload);
        lua_pushnil(L);
        lua_pushvalue(L, S_T);
        lua_call(L, 6, 0);
    }
    return id;
}

/* Sets env.input = input once per state, before the first Lua callback. */
static void s_env_input(struct loop *lp, int input)
{
    if (lp->env_set)
        return;
    lua_pushvalue(lp->L, input);
    lua_setfield(lp->L, S_ENV, "input");
    lua_pushnil(lp->L);
    lua_setfield(lp->L, S_ENV, "context");
    lp->env_set = 1;
}

/* Calls the function on top with env; leaves its result there. */
static void s_call_env(struct loop *lp, int input)
{
    s_env_input(lp, input);
    lua_pushvalue(lp->L, S_ENV);
    lua_call(lp->L, 1, 1);
}

/* Pushes the value of a template generated by payload.lua (its member kinds
 * in sig, its values at FLAT[tb + 1 ...]), as the generated shape(env, P)
 * makes it. */
static void s_eval_template(struct loop *lp, lua_Integer tb, int input, const char *sig, size_t n)
{
    lua_State *L = lp->L;
    const int P = S_FLAT;
    luaL_checkstack(L, (int)n + 8, "emrflow.asl: template");
    lua_rawgeti(L, P, tb + 1); /* the keyset */
    int ks = lua_gettop(L);
    lua_Integer slot = tb + 2;
    for (size_t i = 0; i < n; i++) {
        switch (sig[i]) {
        case 'c': /* a constant */
            lua_rawgeti(L, P, slot++);
            break;
        case 't': /* a table constant, copied */
            lua_rawgeti(L, P, slot++);
            ef_l_json_copy(L, -1);
            lua_remove(L, -2);
            break;
        case 'k': /* a constant object made once per execution (env.consts) */
            lua_rawgeti(L, P, slot++);
            if (lua_istable(L, S_CONSTS)) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, S_CONSTS) != LUA_TNIL) {
                    lua_remove(L, -2);
                    break;
                }
                lua_pop(L, 1);
            }
            s_call_env(lp, input);
            break;
        case 'i': /* "$.name", read here; else its function, which raises */
            if (lua_istable(L, input)) {
                lua_rawgeti(L, P, slot);
                lua_gettable(L, input);
                if (lua_toboolean(L, -1)) {
                    slot += 2;
                    break;
                }
                lua_pop(L, 1);
            }
            lua_rawgeti(L, P, slot + 1);
            s_call_env(lp, input);
            slot += 2;
            break;
        case 'n':
            lua_pushnil(L);
            break;
        default: /* 'f': a function */
            lua_rawgeti(L, P, slot++);
            s_call_env(lp, input);
            break;
        }
    }
    ef_l_json_object_from(L, ks, ks + 1, (int)n);
    lua_replace(L, ks);
    lua_settop(L, ks);
}

/* payload.size(r, sd, limit): r's encoded size from the size data sd (the
 * static part, then the keys of the evaluated members); -1 when unknown. */
static lua_Integer s_template_size(struct loop *lp, int r, int sd)
{
    lua_State *L = lp->L;
    lua_rawgeti(L, sd, 1);
    lua_Integer total = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_Integer cnt = (lua_Integer)lua_rawlen(L, sd);
    if (cnt > 1 && !lua_istable(L, r))
        return -1;
    for (lua_Integer i = 2; i <= cnt; i++) {
        lua_rawgeti(L, sd, i);
        lua_gettable(L, r);
        lua_Integer k = lua_isnil(L, -1) ? -1 : ef_l_json_size(L, -1, lp->payload_limit);
        lua_pop(L, 1);
        if (k < 0)
            return -1;
        total += k;
    }
    return total;
}

static lua_Integer s_p_int(lua_State *L, int P, lua_Integer k)
{
    lua_rawgeti(L, P, k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The size of the result r (at S_R) by its size data when there are some
 * (P[P_SIZES] pushed by the caller at sd, or nil), else -1. */
static lua_Integer s_sized(struct loop *lp, int sd)
{
    return lua_toboolean(lp->L, sd) ? s_template_size(lp, S_R, sd) : -1;
}

/* One common Pass state: its record at FLAT[b + ...], its input at in;
 * leaves its output at S_OUT.  Mirrors fast_pass_exec after its entry
 * checks (mode: the record's). */
static void s_pass(struct loop *lp, lua_Integer b, lua_Integer mode, int in, lua_Integer *sn,
                   lua_Integer *rn)
{
    const int P = S_FLAT;
    lua_State *L = lp->L;
    struct progress *pg = lp->pg;
    lua_Integer limit = lp->payload_limit;
    lp->env_set = 0;
    pg->ran++;
    pg->entries++;
    lua_Integer id = 0;
    if (!lp->quiet) {
        lua_pushvalue(L, S_NOW);
        lua_call(L, 0, 1);
        lua_replace(L, S_T);
        lua_rawgeti(L, P, b + F_ENTERED);
        id = s_add_event(lp, lua_gettop(L), pg->prev, in, 0, 0);
        lua_pop(L, 1);
        pg->prev = id;
    }
    lua_rawgeti(L, P, b + F_NAME);
    lua_setfield(L, A_FRAME, "state_name");
    pg->entered_id = id;

    /* the result r */
    size_t siglen = 0;
    lua_rawgeti(L, P, b + F_SIG);
    const char *sig = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &siglen) : NULL;
    if (!sig) {
        lua_pushvalue(L, in);
    } else if (siglen == 1 && sig[0] == 'R') { /* Result */
        lua_rawgeti(L, P, b + F_R);
    } else if (siglen == 1 && sig[0] == 'L') { /* a template evaluated in Lua */
        s_env_input(lp, in);
        lua_rawgeti(L, P, b + F_SHAPE);
        lua_pushvalue(L, S_ENV);
        lua_rawgeti(L, P, b + F_P);
        lua_call(L, 2, 1);
    } else {
        s_eval_template(lp, b + F_FIELDS, in, sig, siglen);
    }
    lua_replace(L, S_R);
    lua_pop(L, 1); /* sig */
    lua_rawgeti(L, P, b + F_SIZES); /* false without a template */
    int sd = lua_gettop(L);

    /* the output and its encoded size (see fast_pass_exec) */
    int have = 0;
    lua_Integer size = 0;
    if (mode == MODE_KEY) {
        lua_rawgeti(L, P, b + F_KEY);
        int key = lua_gettop(L);
        if (!ef_l_json_set_copy(L, in, key, S_R))
            luaL_error(L, "emrflow.asl: common Pass on a non-object"); /* checked before */
        lua_pushvalue(L, -1);
        lua_replace(L, S_KO);
        lua_replace(L, S_OUT);
        if (lua_rawequal(L, in, S_SO)) {
            lua_Integer r_n = s_sized(lp, sd);
            if (r_n < 0)
                r_n = ef_l_json_size(L, S_R, limit);
            if (r_n >= 0) {
                lua_pushvalue(L, key);
                lua_gettable(L, in); /* old */
                if (lua_isnil(L, -1)) {
                    size = *sn + (*sn > 2 ? 1 : 0) + s_p_int(L, P, b + F_KEYLEN) + 1 + r_n;
                    have = 1;
                } else {
                    lua_Integer on = lua_rawequal(L, -1, S_RO) ? *rn : ef_l_json_size(L, -1, limit);
                    if (on >= 0) {
                        size = *sn - on + r_n;
                        have = 1;
                    }
                }
                lua_pop(L, 1);
                lua_pushvalue(L, S_R);
                lua_replace(L, S_RO);
                *rn = r_n;
            }
        }
        lua_pop(L, 1); /* key */
    } else if (mode == MODE_DISCARD) {
        lua_pushvalue(L, in);
        lua_replace(L, S_OUT);
        if (lua_rawequal(L, in, S_SO)) {
            size = *sn;
            have = 1;
        }
    } else {
        lua_pushvalue(L, S_R);
        lua_replace(L, S_OUT);
        if (lua_toboolean(L, sd)) {
            size = s_template_size(lp, S_R, sd);
            have = size >= 0;
        }
    }
    lua_pop(L, 1); /* sd */
    if (!have) {
        size = ef_l_json_size(L, S_OUT, limit);
        have = size >= 0;
    }
    if (have && size > limit) {
        lua_pushvalue(L, UV_SIZE_CHECK);
        lua_rawgeti(L, P, b + F_NAME);
        lua_pushvalue(L, S_OUT);
        lua_call(L, 2, 0);
    }
    if (have) {
        lua_pushvalue(L, S_OUT);
        *sn = size;
    } else {
        lua_pushboolean(L, 0);
        *sn = 0;
    }
    lua_replace(L, S_SO);
    if (!lp->quiet) {
        int from = 0, key = 0;
        if (mode == MODE_KEY && lp->direct) { /* the output: the input, r at key */
            lua_rawgeti(L, P, b + F_KEY);
            from = in;
            key = lua_gettop(L);
        }
        lua_rawgeti(L, P, b + F_EXITED);
        pg->prev = s_add_event(lp, lua_gettop(L), pg->prev, S_OUT, from, key);
        lua_settop(L, lua_gettop(L) - 1 - (key != 0));
    }
}

/* May the loop run the state of mode `mode` on the input at in now? */
static int s_admits(struct loop *lp, lua_Integer mode, int in, lua_Integer yield_every)
{
    lua_State *L = lp->L;
    if ((lp->pg->entries + 1) % yield_every == 0)
        return 0; /* Lua runs it: scheduler.yield first */
    if (!lp->quiet && lp->limit && lp->pg->n + 2 >= lp->limit)
        return 0; /* Lua raises the history limit's error */
    if (mode == MODE_KEY && !lua_rawequal(L, in, S_KO) && !ef_l_json_is_object(L, in))
        return 0; /* Lua raises the ResultPath's error */
    return 1;
}

/* Loads the frame's, the execution's and the recorder's fields into the
 * loop's slots.  Returns 0 when the loop must not run (an on_event). */
static int s_load(struct loop *lp)
{
    lua_State *L = lp->L;
    struct progress *pg = lp->pg;
    lua_settop(L, S_TOP);
    lua_getfield(L, A_FRAME, "quiet");
    lp->quiet = lua_toboolean(L, -1);
    lua_pop(L, 1);
    s_field_to(L, A_FRAME, "x", S_X);
    s_field_to(L, S_X, "rec", S_REC);
    if (!lp->quiet) {
        if (lua_getfield(L, S_REC, "on_event") != LUA_TNIL)
            return 0;
        lua_pop(L, 1);
        lua_getfield(L, S_REC, "enabled");
        lp->enabled = lua_toboolean(L, -1);
        lua_pop(L, 1);
        pg->n = s_int_field(L, S_REC, "n", 0);
        lp->limit = s_int_field(L, S_REC, "limit", 0);
        s_field_to(L, S_REC, "now", S_NOW);
        if (lp->enabled) {
            s_field_to(L, S_REC, "descs", S_DESCS);
            s_field_to(L, S_REC, "payloads", S_PAYLOADS);
            s_field_to(L, S_REC, "prevs", S_PREVS);
            s_field_to(L, S_REC, "t_ids", S_TIDS);
            s_field_to(L, S_REC, "t_vals", S_TVALS);
            s_field_to(L, S_REC, "t_last", S_TLAST);
            s_field_to(L, S_REC, "sink", S_SINK);
            lp->sink = !lua_isnil(L, S_SINK);
            for (int s = S_DESCS; s <= S_TVALS; s++)
                luaL_checktype(L, s, LUA_TTABLE);
            lp->t_count = (lua_Integer)lua_rawlen(L, S_TIDS);
            /* a sink with a C side (the store's): its values pushed once, above the slots */
            const struct ef_l_sink_ops *ops = lp->sink ? ef_l_sink_ops(L) : NULL;
            lp->direct = ops && ops->load(L, S_SINK, &lp->sk) ? ops : NULL;
        }
    }
    s_field_to(L, A_FRAME, "env", S_ENV);
    s_field_to(L, S_ENV, "consts", S_CONSTS);
    pg->entries = s_int_field(L, S_X, "entries", 0);
    pg->prev = s_int_field(L, A_FRAME, "prev", 0);
    s_field_to(L, A_FRAME, "so", S_SO);
    s_field_to(L, A_FRAME, "ro", S_RO);
    s_field_to(L, A_FRAME, "ko", S_KO);
    return 1;
}

static void s_set_int(lua_State *L, int t, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, t, k);
}

/* Writes the loop's counters back into frame (absolute), its execution and
 * its recorder. */
static void s_write_back(lua_State *L, int frame, const struct progress *pg, int quiet)
{
    lua_getfield(L, frame, "x");
    int x = lua_gettop(L);
    s_set_int(L, x, "entries", pg->entries);
    if (!quiet) {
        lua_getfield(L, x, "rec");
        s_set_int(L, lua_gettop(L), "n", pg->n);
        lua_pop(L, 1);
        s_set_int(L, frame, "prev", pg->prev);
    }
    s_set_int(L, frame, "entered_id", pg->entered_id);
    lua_pop(L, 1);
}

/* inner(frame, input, P, progress) --> count, next, output (see the top) */
static int l_pass_loop(lua_State *L)
{
    struct loop lp = {0};
    lp.L = L;
    lp.pg = lua_touserdata(L, A_PROGRESS);
    lp.payload_limit = lua_tointeger(L, UV_LIMIT);
    lua_Integer yield_every = lua_tointeger(L, UV_YIELD_EVERY);
    luaL_checkstack(L, S_TOP + 16 + EF_L_SINK_SLOTS, "emrflow.asl");
    if (!s_load(&lp)) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (lua_rawgeti(L, A_P, P_FLAT) != LUA_TTABLE) { /* not laid out (compiled alone) */
        lua_pushinteger(L, 0);
        return 1;
    }
    lua_replace(L, S_FLAT);
    lua_Integer b = s_p_int(L, A_P, P_BASE);
    lua_Integer sn = s_int_field(L, A_FRAME, "sn", 0), rn = s_int_field(L, A_FRAME, "rn", 0);
    int P = lua_gettop(L) + 1, in = P + 1; /* the state to run next, its input */
    lua_pushvalue(L, A_P);
    lua_pushvalue(L, A_INPUT);
    for (;;) {
        lua_Integer mode = s_p_int(L, S_FLAT, b + F_MODE);
        if (!s_admits(&lp, mode, in, yield_every)) {
            lua_rawgeti(L, S_FLAT, b + F_P);
            lua_replace(L, P);
            break;
        }
        s_pass(&lp, b, mode, in, &sn, &rn);
        lua_pushvalue(L, S_OUT);
        lua_replace(L, in);
        lua_Integer nb = s_p_int(L, S_FLAT, b + F_NEXTB);
        if (nb <= 0) { /* the next state is not a common Pass */
            lua_rawgeti(L, S_FLAT, b + F_NEXT);
            lua_replace(L, P);
            break;
        }
        b = nb;
    }
    if (lp.pg->ran > 0) {
        s_write_back(L, A_FRAME, lp.pg, lp.quiet);
        lua_pushvalue(L, S_SO);
        lua_setfield(L, A_FRAME, "so");
        s_set_int(L, A_FRAME, "sn", sn);
        lua_pushvalue(L, S_RO);
        lua_setfield(L, A_FRAME, "ro");
        s_set_int(L, A_FRAME, "rn", rn);
        lua_pushvalue(L, S_KO);
        lua_setfield(L, A_FRAME, "ko");
    }
    lua_pushinteger(L, lp.pg->ran);
    lua_pushvalue(L, P);
    lua_pushvalue(L, in);
    return 3;
}

/* run(frame, input, P) --> count, next, output: the loop, protected, so
 * that after an error the frame and the recorder are left as Lua would
 * leave them (the frame's remembered sizes keep their last pair). */
static int l_pass_run(lua_State *L)
{
    struct progress pg = {0};
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_pushvalue(L, UV_INNER);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushlightuserdata(L, &pg);
    if (lua_pcall(L, 4, 3, 0) != LUA_OK) {
        if (pg.ran > 0) {
            lua_getfield(L, 1, "quiet");
            int quiet = lua_toboolean(L, -1);
            lua_pop(L, 1);
            s_write_back(L, 1, &pg, quiet);
        }
        return lua_error(L);
    }
    return 3;
}

/* core.asl.pass_runner(size_check, yield_every, payload_limit) --> run */
static int l_pass_runner(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Integer every = luaL_checkinteger(L, 2);
    luaL_argcheck(L, every > 0, 2, "must be positive");
    luaL_checkinteger(L, 3);
    lua_settop(L, 3);
    for (int inner = 1; inner >= 0; inner--) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, lua_upvalueindex(2));
        for (int i = 1; i <= 3; i++)
            lua_pushvalue(L, i);
        if (inner) {
            lua_pushcclosure(L, l_pass_loop, 5); /* 4 */
        } else {
            lua_pushvalue(L, 4); /* UV_INNER */
            lua_pushcclosure(L, l_pass_run, 6);
        }
    }
    return 1;
}

/* core.asl.array(n) --> a new table with room for n array items (filled
 * by the caller: pass.lua's flatten lays out records without a rehash). */
static int l_array(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 1, "out of range");
    lua_createtable(L, (int)n, 0);
    return 1;
}

int ef_l_open_asl(lua_State *L); /* called by lua_emrflow.c */

int ef_l_open_asl(lua_State *L)
{
    luaL_checkstack(L, 6, "emrflow.asl");
    lua_getfield(L, -1, "json");
    if (!lua_istable(L, -1))
        return luaL_error(L, "emrflow.asl: core.json must be opened first");
    lua_createtable(L, 0, 2); /* core.asl */
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    lua_getfield(L, -2, "array_mt");
    lua_getfield(L, -3, "object_mark");
    lua_pushcclosure(L, l_pass_runner, 2);
    lua_setfield(L, -2, "pass_runner");
    lua_setfield(L, -3, "asl");
    lua_pop(L, 1); /* json */
    return 0;
}
