/* ef_emr: model checks, marshalling, reply checks, errors, retries, tokens (pure C).
 * See ef_emr.h. Messages follow the Lua layer's wording, which the specs pin down. */
#include "ef_emr.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ef_json.h"
#include "ef_regex.h"

#define SHAPE(i) (&ef_emr_shapes[(i)])

cJSON *ef_emr_string(const char *s, size_t n)
{
    if (!memchr(s, 0, n)) {
        char *t = malloc(n + 1);
        if (!t)
            return NULL;
        memcpy(t, s, n);
        t[n] = '\0';
        cJSON *v = cJSON_CreateString("");
        if (!v) {
            free(t);
            return NULL;
        }
        cJSON_free(v->valuestring);
        v->valuestring = t;
        return v;
    }
    cJSON *v = cJSON_CreateString("");
    char *t = malloc(n + 1);
    if (!v || !t || n > 0x7fffffff) {
        cJSON_Delete(v);
        free(t);
        return NULL;
    }
    memcpy(t, s, n);
    t[n] = '\0';
    cJSON_free(v->valuestring);
    v->valuestring = t;
    v->valueint = (int)n;
    return v;
}

size_t ef_emr_strlen(const cJSON *v)
{
    if (!v->valuestring)
        return 0;
    return v->valueint > 0 ? (size_t)v->valueint : strlen(v->valuestring);
}

/* ===================================================================================
 * Problems
 * =================================================================================== */

void ef_emr_problems_free(struct ef_emr_problems *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].path);
        free(p->items[i].message);
    }
    free(p->items);
    memset(p, 0, sizeof *p);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Appends (path, message) where message is given as an ef_buf's text. */
static void problem_add(struct ef_emr_problems *p, const struct ef_buf *path, const char *msg)
{
    if (p->oom)
        return;
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        struct ef_emr_problem *ni = realloc(p->items, ncap * sizeof *ni);
        if (!ni) {
            p->oom = 1;
            return;
        }
        p->items = ni;
        p->cap = ncap;
    }
    char *pa = dup_n(path->len ? path->p : "", path->len);
    char *me = dup_n(msg, strlen(msg));
    if (!pa || !me) {
        free(pa);
        free(me);
        p->oom = 1;
        return;
    }
    p->items[p->n].path = pa;
    p->items[p->n].message = me;
    p->n++;
}

static void problem_addf(struct ef_emr_problems *p, const struct ef_buf *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    problem_add(p, path, msg);
}

/* ===================================================================================
 * Patterns: compiled once (the model's patterns are static strings: keyed by address)
 * =================================================================================== */

/* Most of the model's patterns are one ASCII character class repeated ("[0-9a-z]+") or
 * "some non-space character" (".*\\S.*"). A value is checked on every call (a .sync poll
 * checks its job's Id each time), so those are answered with a byte table instead of the
 * regex engine, with exactly its answer: a value with a byte outside ASCII goes to the
 * engine (Unicode spaces), except against an ASCII class, which no such character is in. */
enum { MATCH_REGEX, MATCH_CLASS_PLUS, MATCH_NONSPACE };

struct compiled {
    const char *pattern;
    struct ef_regex *re;    /* NULL: the pattern does not compile (never checked) */
    int kind;
    unsigned char in_class[256];
    /* the last value the engine answered for, and its answer: the same role ARN or
     * release label comes again for every job a Map starts */
    char last[128];
    size_t last_n;          /* SIZE_MAX: none */
    int last_r;
};

static int class_item(const char **pp, unsigned char *c)
{
    const char *p = *pp;
    if (*p == '\\') {
        p++;
        /* only escaped punctuation is a literal: \d, \w, \u0020 ... are not handled here */
        if (!*p || (unsigned char)*p >= 0x80 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
            (*p >= 'A' && *p <= 'Z'))
            return 0;
    } else if (!*p || *p == '[' || *p == ']' || (unsigned char)*p >= 0x80) {
        return 0;
    }
    *c = (unsigned char)*p;
    *pp = p + 1;
    return 1;
}

/* "[items]+" or "^[items]+$" of literal ASCII characters, escaped punctuation and ranges. */
static int parse_class_plus(const char *pat, unsigned char *in_class)
{
    const char *p = pat;
    int anchored = *p == '^';
    if (anchored)
        p++;
    if (*p++ != '[' || *p == '^')
        return 0;
    memset(in_class, 0, 256);
    while (*p != ']') {
        unsigned char lo, hi;
        if (!class_item(&p, &lo))
            return 0;
        hi = lo;
        if (p[0] == '-' && p[1] != ']') {
            p++;
            if (*p == '\\' || !class_item(&p, &hi) || hi < lo)
                return 0;
        }
        for (unsigned c = lo; c <= hi; c++)
            in_class[c] = 1;
    }
    p++;
    if (*p++ != '+')
        return 0;
    if (anchored && *p++ != '$')
        return 0;
    return *p == '\0';
}

static int is_ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* 1/0 when the table answers, -1 when the regex engine must. */
static int match_fast(const struct compiled *c, const char *s, size_t n)
{
    if (c->kind == MATCH_CLASS_PLUS) {
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!c->in_class[(unsigned char)s[i]])
                return 0;
        return 1;
    }
    if (c->kind == MATCH_NONSPACE) {
        int ascii = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)s[i];
            if (b >= 0x80)
                ascii = 0;
            else if (!is_ascii_space(b))
                return 1;
        }
        return ascii ? 0 : -1;
    }
    return -1;
}

static struct compiled *s_compiled;
static size_t s_ncompiled, s_capcompiled;

int ef_emr_model_match(void *ud, const char *pattern, const char *s, size_t n)
{
    (void)ud;
    struct compiled *c = NULL;
    for (size_t i = 0; i < s_ncompiled; i++)
        if (s_compiled[i].pattern == pattern) {
            c = &s_compiled[i];
            break;
        }
    if (!c) {
        if (s_ncompiled == s_capcompiled) {
            size_t cap = s_capcompiled ? s_capcompiled * 2 : 32;
            struct compiled *nc = realloc(s_compiled, cap * sizeof *nc);
            if (!nc)
                return -1;
            s_compiled = nc;
            s_capcompiled = cap;
        }
        struct ef_regex_err err;
        c = &s_compiled[s_ncompiled++];
        c->pattern = pattern;
        c->re = ef_regex_compile(pattern, strlen(pattern), EF_REGEX_DOTALL, &err);
        c->kind = MATCH_REGEX;
        c->last_n = SIZE_MAX;
        if (!strcmp(pattern, ".*\\S.*") || !strcmp(pattern, "^.*\\S.*$"))
            c->kind = MATCH_NONSPACE;
        else if (parse_class_plus(pattern, c->in_class))
            c->kind = MATCH_CLASS_PLUS;
    }
    if (!c->re)
        return -1;
    int r = match_fast(c, s, n);
    if (r >= 0)
        return r;
    if (n == c->last_n && memcmp(s, c->last, n) == 0)
        return c->last_r;
    r = ef_regex_exec(c->re, s, n, 0, 1, NULL);
    if (r < 0)
        return -1;
    if (n <= sizeof c->last) {
        memcpy(c->last, s, n);
        c->last_n = n;
        c->last_r = r;
    }
    return r;
}

void ef_emr_model_match_reset(void)
{
    for (size_t i = 0; i < s_ncompiled; i++)
        ef_regex_free(s_compiled[i].re);
    free(s_compiled);
    s_compiled = NULL;
    s_ncompiled = s_capcompiled = 0;
}

/* ===================================================================================
 * Values: type names and quoting as the Lua layer shows them
 * =================================================================================== */

static int is_integral(double d)
{
    return isfinite(d) && d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
}

static int is_empty_container(const cJSON *v)
{
    return (cJSON_IsObject(v) || cJSON_IsArray(v)) && v->child == NULL;
}

/* An object, or an empty table (a Lua {} is both an object and a list). */
static int is_object_like(const cJSON *v)
{
    return cJSON_IsObject(v) || is_empty_container(v);
}

static int is_list_like(const cJSON *v)
{
    return cJSON_IsArray(v) || is_empty_container(v);
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsNumber(v))
        return is_integral(v->valuedouble) ? "integer" : "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsArray(v))
        return v->child ? "list" : "table";
    if (cJSON_IsObject(v))
        return "table";
    if (cJSON_IsRaw(v) && v->valuestring)
        return v->valuestring;
    return "value";
}

/* Lua's %q quoting of s[0..n). */
static int quote(const char *s, size_t n, struct ef_buf *out)
{
    if (ef_buf_putc(out, '"'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        if (c == '"' || c == '\\' || c == '\n') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tmp[2] = '\0';
        } else if (c < 0x20 || c == 0x7f) {
            int next_digit = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
            snprintf(tmp, sizeof tmp, next_digit ? "\\%03d" : "\\%d", c);
        } else {
            tmp[0] = (char)c;
            tmp[1] = '\0';
        }
        if (ef_buf_append_str(out, tmp))
            return -1;
    }
    return ef_buf_putc(out, '"');
}

/* show(): a value as messages print it ("value" when sensitive). */
static void show(const cJSON *v, int sensitive, char *out, size_t size)
{
    if (sensitive) {
        snprintf(out, size, "value");
        return;
    }
    if (cJSON_IsString(v)) {
        struct ef_buf b;
        ef_buf_init(&b);
        size_t n = ef_emr_strlen(v);
        int rc;
        if (n > 64) {
            struct ef_buf t;
            ef_buf_init(&t);
            rc = ef_buf_append(&t, v->valuestring, 61) || ef_buf_append_str(&t, "...") ||
                 quote(t.p, t.len, &b);
            ef_buf_clean_up(&t);
        } else {
            rc = quote(v->valuestring, n, &b);
        }
        snprintf(out, size, "%s", rc || !b.p ? "value" : b.p);
        ef_buf_clean_up(&b);
        return;
    }
    if (cJSON_IsNumber(v)) {
        if (is_integral(v->valuedouble))
            snprintf(out, size, "%lld", (long long)v->valuedouble);
        else
            snprintf(out, size, "%.14g", v->valuedouble);
        return;
    }
    if (cJSON_IsBool(v)) {
        snprintf(out, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return;
    }
    snprintf(out, size, "%s", type_name(v));
}

/* ===================================================================================
 * Checks
 * =================================================================================== */

struct checker {
    ef_emr_match_fn match;
    void *ud;
    struct ef_emr_problems *out;
    struct ef_buf path;
};

static void check_value(struct checker *c, const struct ef_emr_shape *s, const cJSON *v, int sensitive);

static int is_identifier(const char *k)
{
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || *k == '_'))
        return 0;
    for (const char *p = k + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

/* Extends the path with a member name (".Name" or "Name" at the top). */
static int path_member(struct ef_buf *path, const char *name)
{
    if (path->len && ef_buf_putc(path, '.'))
        return -1;
    return ef_buf_append_str(path, name);
}

/* Extends the path with a map key: ".key", or ["key"] when not an identifier. */
static int path_key(struct ef_buf *path, const char *k)
{
    if (is_identifier(k))
        return path_member(path, k);
    return ef_buf_putc(path, '[') || quote(k, strlen(k), path) || ef_buf_putc(path, ']');
}

static void path_truncate(struct ef_buf *path, size_t len)
{
    path->len = len;
    if (path->p)
        path->p[len] = '\0';
}

static int length_ok(struct checker *c, const struct ef_emr_shape *s, long long count, const char *what)
{
    if (s->has_min && count < s->min) {
        problem_addf(c->out, &c->path, "%s must be at least %lld, got %lld", what, s->min, count);
        return 0;
    }
    if (s->has_max && count > s->max) {
        problem_addf(c->out, &c->path, "%s must be at most %lld, got %lld", what, s->max, count);
        return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_structure(struct checker *c, const struct ef_emr_shape *s, const cJSON *v, int sensitive)
{
    if (!is_object_like(v)) {
        problem_addf(c->out, &c->path, "expected an object (table with member names), got %s",
                     type_name(v));
        return;
    }
    size_t base = c->path.len;
    int set = 0;
    for (size_t i = 0; i < s->nmembers; i++) {
        const struct ef_emr_member *m = &s->members[i];
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(v, m->pascal);
        if (!val || cJSON_IsNull(val))
            continue;
        set++;
        if (path_member(&c->path, m->pascal)) {
            c->out->oom = 1;
            return;
        }
        check_value(c, SHAPE(m->shape), val, sensitive);
        path_truncate(&c->path, base);
    }
    /* unknown names, sorted */
    size_t nunknown = 0;
    for (const cJSON *e = v->child; e; e = e->next)
        if (e->string && !ef_emr_member_find(s, e->string, strlen(e->string), 1))
            nunknown++;
    if (nunknown) {
        const char **names = malloc(nunknown * sizeof *names);
        if (!names) {
            c->out->oom = 1;
            return;
        }
        size_t k = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            if (e->string && !ef_emr_member_find(s, e->string, strlen(e->string), 1))
                names[k++] = e->string;
        qsort(names, nunknown, sizeof *names, cmp_str);
        for (k = 0; k < nunknown; k++) {
            const struct ef_emr_member *w = ef_emr_member_find(s, names[k], strlen(names[k]), 0);
            if (path_member(&c->path, names[k])) {
                c->out->oom = 1;
                break;
            }
            if (w)
                problem_addf(c->out, &c->path, "unknown parameter (did you mean %s?)", w->pascal);
            else
                problem_add(c->out, &c->path, "unknown parameter");
            path_truncate(&c->path, base);
        }
        free(names);
    }
    for (size_t i = 0; i < s->nmembers; i++) {
        const struct ef_emr_member *m = &s->members[i];
        if (!m->required)
            continue;
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(v, m->pascal);
        if (val && !cJSON_IsNull(val))
            continue;
        if (path_member(&c->path, m->pascal)) {
            c->out->oom = 1;
            return;
        }
        problem_add(c->out, &c->path, "missing required parameter");
        path_truncate(&c->path, base);
    }
    if (s->is_union && set != 1) {
        struct ef_buf names;
        ef_buf_init(&names);
        for (size_t i = 0; i < s->nmembers; i++)
            if ((i && ef_buf_append_str(&names, ", ")) || ef_buf_append_str(&names, s->members[i].pascal))
                c->out->oom = 1;
        problem_addf(c->out, &c->path, "exactly one of %s must be set, got %d", names.p ? names.p : "",
                     set);
        ef_buf_clean_up(&names);
    }
}

/* Code points in s (Lua's utf8.len), or -1 when not well-formed UTF-8. */
static long long utf8_length(const char *s, size_t n)
{
    if (ef_json_utf8_check(s, n) != n)
        return -1;
    long long count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

static int digits(const char **p, int n)
{
    for (int i = 0; i < n; i++, (*p)++)
        if (**p < '0' || **p > '9')
            return 0;
    return 1;
}

/* YYYY-MM-DDThh:mm:ss[.fff]Z or ...[+-]hh[:]mm (the forms the Lua layer accepts). */
static int is_iso8601(const char *s)
{
    const char *p = s;
    if (!digits(&p, 4) || *p++ != '-' || !digits(&p, 2) || *p++ != '-' || !digits(&p, 2) ||
        *p++ != 'T' || !digits(&p, 2) || *p++ != ':' || !digits(&p, 2) || *p++ != ':' ||
        !digits(&p, 2))
        return 0;
    if (*p == '.')
        p++;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p[0] == 'Z' && p[1] == '\0')
        return 1;
    if (*p != '+' && *p != '-')
        return 0;
    p++;
    if (!digits(&p, 2))
        return 0;
    if (*p == ':')
        p++;
    return digits(&p, 2) && *p == '\0';
}

static void check_string(struct checker *c, const struct ef_emr_shape *s, const cJSON *v, int sensitive)
{
    char shown[160];
    if (!cJSON_IsString(v)) {
        problem_addf(c->out, &c->path, "expected a string, got %s", type_name(v));
        return;
    }
    const char *str = v->valuestring;
    size_t n = ef_emr_strlen(v);
    if (s->enums) {
        for (size_t i = 0; i < s->nenums; i++)
            if (strlen(s->enums[i]) == n && memcmp(s->enums[i], str, n) == 0)
                return;
        struct ef_buf list;
        ef_buf_init(&list);
        for (size_t i = 0; i < s->nenums; i++)
            if ((i && ef_buf_append_str(&list, ", ")) || ef_buf_append_str(&list, s->enums[i]))
                c->out->oom = 1;
        show(v, sensitive, shown, sizeof shown);
        problem_addf(c->out, &c->path, "%s is not one of %s", shown, list.p ? list.p : "");
        ef_buf_clean_up(&list);
        return;
    }
    long long len = utf8_length(str, n);
    if (len < 0) {
        problem_add(c->out, &c->path, "not valid UTF-8");
        return;
    }
    if (!length_ok(c, s, len, "length"))
        return;
    if (s->pattern && c->match && c->match(c->ud, s->pattern, str, n) == 0) {
        show(v, sensitive, shown, sizeof shown);
        problem_addf(c->out, &c->path, "%s does not match the pattern %s", shown, s->pattern);
    }
}

static void check_map(struct checker *c, const struct ef_emr_shape *s, const cJSON *v, int sensitive)
{
    if (!is_object_like(v)) {
        problem_addf(c->out, &c->path, "expected a map with string keys, got %s", type_name(v));
        return;
    }
    long long count = 0;
    for (const cJSON *e = v->child; e; e = e->next)
        count++;
    length_ok(c, s, count, "number of entries");
    if (!count)
        return;
    const cJSON **items = malloc((size_t)count * sizeof *items);
    if (!items) {
        c->out->oom = 1;
        return;
    }
    size_t k = 0;
    for (const cJSON *e = v->child; e; e = e->next)
        items[k++] = e;
    /* sort by key: the cJSON item's `string` is its first... compare the keys */
    for (size_t i = 1; i < k; i++) {           /* insertion sort: maps are small */
        const cJSON *x = items[i];
        size_t j = i;
        while (j > 0 && strcmp(items[j - 1]->string, x->string) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = x;
    }
    size_t base = c->path.len;
    for (size_t i = 0; i < k; i++) {
        const cJSON *e = items[i];
        if (path_key(&c->path, e->string)) {
            c->out->oom = 1;
            break;
        }
        /* the key's own problems, prefixed "key: " */
        struct ef_emr_problems sub;
        memset(&sub, 0, sizeof sub);
        struct ef_emr_problems *saved = c->out;
        cJSON key;
        memset(&key, 0, sizeof key);
        key.type = cJSON_String;
        key.valuestring = e->string;
        c->out = &sub;
        check_value(c, SHAPE(s->key), &key, sensitive);
        c->out = saved;
        for (size_t j = 0; j < sub.n; j++) {
            struct ef_buf p;
            ef_buf_init(&p);
            if (ef_buf_append_str(&p, sub.items[j].path))
                saved->oom = 1;
            problem_addf(saved, &p, "key: %s", sub.items[j].message);
            ef_buf_clean_up(&p);
        }
        if (sub.oom)
            saved->oom = 1;
        ef_emr_problems_free(&sub);
        check_value(c, SHAPE(s->value), e, sensitive);
        path_truncate(&c->path, base);
    }
    free(items);
}

static void check_value(struct checker *c, const struct ef_emr_shape *s, const cJSON *v, int sensitive)
{
    char shown[160];
    sensitive = sensitive || s->sensitive;
    switch (s->type) {
    case EF_EMR_T_STRUCTURE:
        check_structure(c, s, v, sensitive);
        break;
    case EF_EMR_T_STRING:
        check_string(c, s, v, sensitive);
        break;
    case EF_EMR_T_INTEGER:
    case EF_EMR_T_LONG: {
        if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble)) {
            problem_addf(c->out, &c->path, "expected an integer, got %s", type_name(v));
            break;
        }
        long long n = (long long)v->valuedouble;
        if (s->has_min && n < s->min)
            problem_addf(c->out, &c->path, "must be at least %lld, got %lld", s->min, n);
        else if (s->has_max && n > s->max)
            problem_addf(c->out, &c->path, "must be at most %lld, got %lld", s->max, n);
        break;
    }
    case EF_EMR_T_DOUBLE:
        if (!cJSON_IsNumber(v))
            problem_addf(c->out, &c->path, "expected a number, got %s", type_name(v));
        break;
    case EF_EMR_T_BOOLEAN:
        if (!cJSON_IsBool(v))
            problem_addf(c->out, &c->path, "expected a boolean, got %s", type_name(v));
        break;
    case EF_EMR_T_TIMESTAMP:
        if (cJSON_IsNumber(v))
            break;
        if (!cJSON_IsString(v) || ef_emr_strlen(v) != strlen(v->valuestring) ||
            !is_iso8601(v->valuestring)) {
            if (cJSON_IsString(v))
                show(v, sensitive, shown, sizeof shown);
            problem_addf(c->out, &c->path,
                         "expected a timestamp (Unix seconds or ISO 8601 text), got %s",
                         cJSON_IsString(v) ? shown : type_name(v));
        }
        break;
    case EF_EMR_T_LIST: {
        if (!is_list_like(v)) {
            problem_addf(c->out, &c->path, "expected a list, got %s", type_name(v));
            break;
        }
        long long count = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            count++;
        length_ok(c, s, count, "number of items");
        size_t base = c->path.len;
        long long i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char idx[32];
            snprintf(idx, sizeof idx, "[%lld]", i);
            if (ef_buf_append_str(&c->path, idx)) {
                c->out->oom = 1;
                break;
            }
            check_value(c, SHAPE(s->member), e, sensitive);
            path_truncate(&c->path, base);
        }
        break;
    }
    case EF_EMR_T_MAP:
        check_map(c, s, v, sensitive);
        break;
    default:
        problem_addf(c->out, &c->path, "BUG: unsupported shape type %d", s->type);
    }
}

size_t ef_emr_check(const struct ef_emr_operation *op, const cJSON *params, ef_emr_match_fn match,
                    void *ud, struct ef_emr_problems *out)
{
    struct checker c = { match, ud, out, { NULL, 0, 0, 0 } };
    size_t before = out->n;
    if (op->input == EF_EMR_NONE) {
        if (params && !is_empty_container(params))
            problem_addf(out, &c.path, "%s takes no parameters", op->name);
    } else if (params) {
        check_structure(&c, SHAPE(op->input), params, 0);
    } else {
        cJSON empty;
        memset(&empty, 0, sizeof empty);
        empty.type = cJSON_Object;
        check_structure(&c, SHAPE(op->input), &empty, 0);
    }
    ef_buf_clean_up(&c.path);
    return out->n - before;
}

#define MAX_LISTED 5

int ef_emr_problems_message(const struct ef_emr_operation *op, const struct ef_emr_problems *p,
                            struct ef_buf *out)
{
    int rc = ef_buf_append_str(out, "invalid ") || ef_buf_append_str(out, op->name) ||
             ef_buf_append_str(out, " parameters: ");
    for (size_t i = 0; i < p->n && i < MAX_LISTED && !rc; i++) {
        if (i)
            rc = ef_buf_append_str(out, "; ");
        if (!rc && p->items[i].path[0])
            rc = ef_buf_append_str(out, p->items[i].path) || ef_buf_append_str(out, ": ");
        if (!rc)
            rc = ef_buf_append_str(out, p->items[i].message);
    }
    if (!rc && p->n > MAX_LISTED) {
        char more[48];
        snprintf(more, sizeof more, "; (%zu more)", p->n - MAX_LISTED);
        rc = ef_buf_append_str(out, more);
    }
    return rc ? -1 : 0;
}

/* ===================================================================================
 * Requests
 * =================================================================================== */

void ef_emr_wire_init(struct ef_emr_wire *w)
{
    memset(w, 0, sizeof *w);
}

void ef_emr_wire_free(struct ef_emr_wire *w)
{
    ef_buf_clean_up(&w->target);
    ef_buf_clean_up(&w->body);
    memset(w, 0, sizeof *w);
}

static int unreserved(unsigned char c, int greedy)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || (greedy && c == '/');
}

int ef_emr_uri_escape(const char *s, size_t n, int greedy, struct ef_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    if (ef_buf_reserve(out, n * 3))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c, greedy)) {
            out->p[out->len++] = (char)c;
        } else {
            out->p[out->len++] = '%';
            out->p[out->len++] = hex[c >> 4];
            out->p[out->len++] = hex[c & 15];
        }
    }
    out->p[out->len] = '\0';
    return 0;
}

int ef_emr_iso8601(double t, struct ef_buf *out)
{
    double secs = floor(t);
    double frac = t - secs;
    time_t tt = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return -1;
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac > 0) {
        long us = (long)floor(frac * 1e6 + 0.5);
        if (us >= 1000000)
            us = 999999;
        snprintf(buf + n, sizeof buf - n, ".%06ldZ", us);
    } else {
        snprintf(buf + n, sizeof buf - n, "Z");
    }
    return ef_buf_append_str(out, buf);
}

/* A scalar as URI or query text. */
static int scalar_text(const struct ef_emr_shape *s, const cJSON *v, struct ef_buf *out)
{
    if (s->type == EF_EMR_T_TIMESTAMP && cJSON_IsNumber(v))
        return ef_emr_iso8601(v->valuedouble, out);
    if (cJSON_IsString(v))
        return ef_buf_append(out, v->valuestring, ef_emr_strlen(v));
    if (cJSON_IsBool(v))
        return ef_buf_append_str(out, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        char num[EF_JSON_NUMBUF];
        if (is_integral(v->valuedouble))
            ef_json_format_integer((long long)v->valuedouble, num);
        else
            snprintf(num, sizeof num, "%.14g", v->valuedouble);
        return ef_buf_append_str(out, num);
    }
    return 0;
}

static int escaped_scalar(const struct ef_emr_shape *s, const cJSON *v, int greedy, struct ef_buf *out)
{
    struct ef_buf t;
    ef_buf_init(&t);
    int rc = scalar_text(s, v, &t) || ef_emr_uri_escape(t.p ? t.p : "", t.len, greedy, out);
    ef_buf_clean_up(&t);
    return rc ? -1 : 0;
}

static int json_string(const char *s, size_t n, struct ef_buf *out)
{
    if (ef_buf_reserve(out, n * 6 + 2))
        return -1;
    char *o = out->p + out->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        o = ef_json_put_escape(o, c);
    }
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return 0;
}

static int json_number(double d, struct ef_buf *out)
{
    char num[EF_JSON_NUMBUF];
    if (is_integral(d) && fabs(d) < 9007199254740992.0) {
        ef_json_format_integer((long long)d, num);
    } else if (ef_json_format_double(d, num) < 0) {
        return ef_buf_append_str(out, "null");
    }
    return ef_buf_append_str(out, num);
}

/* Any JSON value as it is (values of unknown or scalar shapes). */
static int json_plain(const cJSON *v, struct ef_buf *out);

struct keyed {
    const char *key;       /* the wire key */
    const cJSON *value;
    unsigned short shape;  /* EF_EMR_NONE: write the value as it is */
};

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

static int wire_value(unsigned shape, const cJSON *v, struct ef_buf *out);

/* Writes {"k":v,...} sorted by key. */
static int write_sorted(struct keyed *items, size_t n, struct ef_buf *out)
{
    qsort(items, n, sizeof *items, cmp_keyed);
    if (ef_buf_putc(out, '{'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i && ef_buf_putc(out, ',')) || json_string(items[i].key, strlen(items[i].key), out) ||
            ef_buf_putc(out, ':'))
            return -1;
        int rc = items[i].shape == EF_EMR_NONE ? json_plain(items[i].value, out)
                                               : wire_value(items[i].shape, items[i].value, out);
        if (rc)
            return -1;
    }
    return ef_buf_putc(out, '}');
}

static int json_plain(const cJSON *v, struct ef_buf *out)
{
    if (cJSON_IsString(v))
        return json_string(v->valuestring, ef_emr_strlen(v), out);
    if (cJSON_IsNumber(v))
        return json_number(v->valuedouble, out);
    if (cJSON_IsBool(v))
        return ef_buf_append_str(out, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsArray(v)) {
        if (ef_buf_putc(out, '['))
            return -1;
        for (const cJSON *e = v->child; e; e = e->next)
            if ((e != v->child && ef_buf_putc(out, ',')) || json_plain(e, out))
                return -1;
        return ef_buf_putc(out, ']');
    }
    if (cJSON_IsObject(v)) {
        size_t n = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            n++;
        struct keyed *items = n ? malloc(n * sizeof *items) : NULL;
        if (n && !items)
            return -1;
        size_t k = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            items[k++] = (struct keyed){ e->string, e, EF_EMR_NONE };
        int rc = write_sorted(items, n, out);
        free(items);
        return rc;
    }
    return ef_buf_append_str(out, "null");
}

static int wire_structure(const struct ef_emr_shape *s, const cJSON *v, struct ef_buf *out)
{
    struct keyed items[64] = { { NULL, NULL, 0 } }; /* structures have fewer members */
    size_t n = 0;
    for (const cJSON *e = v->child; e && n < 64; e = e->next) {
        const struct ef_emr_member *m = e->string ? ef_emr_member_find(s, e->string, strlen(e->string), 1)
                                                  : NULL;
        if (m && !cJSON_IsNull(e) && m->location == EF_EMR_L_BODY)
            items[n++] = (struct keyed){ m->name, e, m->shape };
    }
    return write_sorted(items, n, out);
}

static int wire_value(unsigned shape, const cJSON *v, struct ef_buf *out)
{
    const struct ef_emr_shape *s = SHAPE(shape);
    switch (s->type) {
    case EF_EMR_T_STRUCTURE:
        return wire_structure(s, v, out);
    case EF_EMR_T_LIST:
        if (ef_buf_putc(out, '['))
            return -1;
        for (const cJSON *e = v->child; e; e = e->next)
            if ((e != v->child && ef_buf_putc(out, ',')) || wire_value(s->member, e, out))
                return -1;
        return ef_buf_putc(out, ']');
    case EF_EMR_T_MAP: {
        size_t n = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            n++;
        struct keyed *items = n ? malloc(n * sizeof *items) : NULL;
        if (n && !items)
            return -1;
        size_t k = 0;
        for (const cJSON *e = v->child; e; e = e->next)
            items[k++] = (struct keyed){ e->string, e, (unsigned short)s->value };
        int rc = write_sorted(items, n, out);
        free(items);
        return rc;
    }
    case EF_EMR_T_TIMESTAMP:
        if (cJSON_IsNumber(v)) {
            struct ef_buf t;
            ef_buf_init(&t);
            int rc = ef_emr_iso8601(v->valuedouble, &t) || json_string(t.p, t.len, out);
            ef_buf_clean_up(&t);
            return rc ? -1 : 0;
        }
        return json_plain(v, out);
    default:
        return json_plain(v, out);
    }
}

/* The members of op's input at `location`, in model order. */
static const struct ef_emr_member *input_member_by_label(const struct ef_emr_shape *in, const char *label,
                                                         size_t n)
{
    for (size_t i = 0; in && i < in->nmembers; i++) {
        const struct ef_emr_member *m = &in->members[i];
        if (m->location == EF_EMR_L_URI && strncmp(m->location_name, label, n) == 0 &&
            m->location_name[n] == '\0')
            return m;
    }
    return NULL;
}

static const cJSON *param(const cJSON *params, const struct ef_emr_member *m)
{
    const cJSON *v = params ? cJSON_GetObjectItemCaseSensitive(params, m->pascal) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int build_path(const struct ef_emr_operation *op, const struct ef_emr_shape *in, const cJSON *params,
                      struct ef_buf *out, const char **fixed_query)
{
    const char *p = op->uri;
    *fixed_query = NULL;
    while (*p) {
        if (*p == '?') {
            *fixed_query = p + 1;
            break;
        }
        if (*p != '{') {
            if (ef_buf_putc(out, *p++))
                return -1;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end)
            return ef_buf_append_str(out, p);
        int greedy = end[-1] == '+';
        size_t n = (size_t)(end - p - 1) - (greedy ? 1 : 0);
        const struct ef_emr_member *m = input_member_by_label(in, p + 1, n);
        const cJSON *v = m ? param(params, m) : NULL;
        if (v && escaped_scalar(SHAPE(m->shape), v, greedy, out))
            return -1;
        p = end + 1;
    }
    return 0;
}

static int query_pair(struct ef_buf *out, int *first, const char *name, const struct ef_emr_shape *s,
                      const cJSON *v)
{
    if (!*first && ef_buf_putc(out, '&'))
        return -1;
    *first = 0;
    if (ef_emr_uri_escape(name, strlen(name), 0, out) || ef_buf_putc(out, '='))
        return -1;
    return escaped_scalar(s, v, 0, out);
}

static int build_query(const struct ef_emr_shape *in, const cJSON *params, const char *fixed,
                       struct ef_buf *out)
{
    size_t start = out->len;
    int first = 1;
    if (ef_buf_putc(out, '?'))
        return -1;
    if (fixed && *fixed) {
        if (ef_buf_append_str(out, fixed))
            return -1;
        first = 0;
    }
    for (size_t i = 0; in && i < in->nmembers; i++) {
        const struct ef_emr_member *m = &in->members[i];
        const cJSON *v;
        if (m->location != EF_EMR_L_QUERY || !(v = param(params, m)))
            continue;
        const struct ef_emr_shape *s = SHAPE(m->shape);
        if (s->type == EF_EMR_T_LIST) {
            for (const cJSON *e = v->child; e; e = e->next)
                if (query_pair(out, &first, m->location_name, SHAPE(s->member), e))
                    return -1;
        } else if (s->type == EF_EMR_T_MAP) {
            size_t n = 0;
            for (const cJSON *e = v->child; e; e = e->next)
                n++;
            const char **keys = n ? malloc(n * sizeof *keys) : NULL;
            if (n && !keys)
                return -1;
            size_t k = 0;
            for (const cJSON *e = v->child; e; e = e->next)
                keys[k++] = e->string;
            qsort(keys, n, sizeof *keys, cmp_str);
            int rc = 0;
            for (k = 0; k < n && !rc; k++)
                rc = query_pair(out, &first, keys[k], SHAPE(s->value),
                                cJSON_GetObjectItemCaseSensitive(v, keys[k]));
            free(keys);
            if (rc)
                return -1;
        } else if (query_pair(out, &first, m->location_name, s, v)) {
            return -1;
        }
    }
    if (first)
        path_truncate(out, start);   /* no query after all: drop the '?' */
    return 0;
}

static int build_body(const struct ef_emr_shape *in, const cJSON *params, struct ef_emr_wire *w)
{
    struct keyed items[64] = { { NULL, NULL, 0 } }; /* structures have fewer members */
    size_t n = 0;
    for (size_t i = 0; in && i < in->nmembers && n < 64; i++) {
        const struct ef_emr_member *m = &in->members[i];
        if (m->location != EF_EMR_L_BODY)
            continue;
        w->has_body = 1;
        const cJSON *v = param(params, m);
        if (v)
            items[n++] = (struct keyed){ m->name, v, m->shape };
    }
    if (!w->has_body)
        return 0;
    return write_sorted(items, n, &w->body);
}

int ef_emr_build(const struct ef_emr_operation *op, const cJSON *params, struct ef_emr_wire *out)
{
    const struct ef_emr_shape *in = op->input == EF_EMR_NONE ? NULL : SHAPE(op->input);
    const char *fixed;
    out->method = op->method;
    if (build_path(op, in, params, &out->target, &fixed) || build_query(in, params, fixed, &out->target) ||
        build_body(in, params, out))
        return -1;
    if (!out->target.p && ef_buf_append_str(&out->target, ""))
        return -1;
    return 0;
}

/* ===================================================================================
 * Replies and errors
 * =================================================================================== */

static int header_is(const struct ef_emr_header *h, const char *name)
{
    size_t n = strlen(name);
    if (h->name_len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h->name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != name[i])
            return 0;
    }
    return 1;
}

static const struct ef_emr_header *header_find(const struct ef_emr_header *hs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (header_is(&hs[i], name))
            return &hs[i];
    return NULL;
}

static void copy_n(char *dst, size_t size, const char *src, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int ef_emr_request_id(const struct ef_emr_header *hs, size_t n, char *out, size_t size)
{
    const struct ef_emr_header *h = header_find(hs, n, "x-amzn-requestid");
    if (!h)
        h = header_find(hs, n, "x-amz-request-id");
    if (!h) {
        out[0] = '\0';
        return 0;
    }
    copy_n(out, size, h->value, h->value_len);
    return 1;
}

static const char *const THROTTLING[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "EC2ThrottledException",
    "EKSRequestThrottledException", NULL,
};
static const char *const TRANSIENT[] = { "RequestTimeout", "RequestTimeoutException",
                                         "PriorRequestNotComplete", NULL };
static const char *const PERMANENT[] = { "ValidationException", "ResourceNotFoundException",
                                         "AccessDeniedException", "UnrecognizedClientException",
                                         "InvalidSignatureException", NULL };

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int status_class(long status)
{
    if (status == 429)
        return EF_EMR_THROTTLING;
    if (status == 500 || status == 502 || status == 503 || status == 504)
        return EF_EMR_TRANSIENT;
    return EF_EMR_NO_RETRY;
}

int ef_emr_classify(const char *code, const char *aws_code, long status)
{
    int aws = aws_code && aws_code[0];
    if (aws || (code && strcmp(code, "aws") == 0)) {
        if (aws) {
            if (in_list(PERMANENT, aws_code))
                return EF_EMR_NO_RETRY;
            if (in_list(THROTTLING, aws_code))
                return EF_EMR_THROTTLING;
            if (in_list(TRANSIENT, aws_code))
                return EF_EMR_TRANSIENT;
        }
        return status_class(status);
    }
    if (code) {
        static const char *const network[] = { "connect", "reset", "truncated", "dns", NULL };
        if (in_list(network, code))
            return EF_EMR_TRANSIENT;
        if (strcmp(code, "timeout") == 0)
            return EF_EMR_TIMEOUT;
    }
    return status_class(status);
}

/* The body's string member key, when the body is a JSON object holding one. */
static const char *body_string(const cJSON *doc, const char *key)
{
    const cJSON *v = doc ? cJSON_GetObjectItemCaseSensitive(doc, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The body with runs of white space made one space, clipped to 200 bytes plus "...". */
static void squash_clip(const char *body, size_t len, char *out, size_t size)
{
    size_t o = 0;
    int in_space = 0;
    for (size_t i = 0; i < len && o + 1 < size; i++) {
        char c = body[i];
        int sp = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (sp) {
            if (!in_space)
                out[o++] = ' ';
            in_space = 1;
        } else {
            out[o++] = c;
            in_space = 0;
        }
    }
    out[o] = '\0';
    if (o > 200)
        snprintf(out + 200, size - 200, "...");
}

void ef_emr_parse_error(long status, const struct ef_emr_header *hs, size_t n, const char *body,
                        size_t len, struct ef_emr_error *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->code, sizeof out->code, "aws");
    out->status = status;
    ef_emr_request_id(hs, n, out->request_id, sizeof out->request_id);
    cJSON *doc = len ? cJSON_ParseWithLength(body, len) : NULL;
    if (doc && !cJSON_IsObject(doc) && !cJSON_IsArray(doc)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    const struct ef_emr_header *h = header_find(hs, n, "x-amzn-errortype");
    if (h && h->value_len) {
        const char *colon = memchr(h->value, ':', h->value_len);
        copy_n(out->aws_code, sizeof out->aws_code, h->value,
               colon ? (size_t)(colon - h->value) : h->value_len);
    }
    if (!out->aws_code[0] && doc) {
        const char *c = body_string(doc, "code");
        if (!c || !c[0])
            c = body_string(doc, "Code");
        if (c && c[0]) {
            snprintf(out->aws_code, sizeof out->aws_code, "%s", c);
        } else if ((c = body_string(doc, "__type")) != NULL) {
            const char *hash = strrchr(c, '#');
            snprintf(out->aws_code, sizeof out->aws_code, "%s", hash ? hash + 1 : c);
        }
    }
    if (!out->aws_code[0])
        snprintf(out->aws_code, sizeof out->aws_code, "%ld", status);
    const char *m = body_string(doc, "message");
    if (!m)
        m = body_string(doc, "Message");
    if (m)
        snprintf(out->message, sizeof out->message, "%s", m);
    else if (len && !doc)
        squash_clip(body, len, out->message, sizeof out->message);
    else
        snprintf(out->message, sizeof out->message, "HTTP %ld", status);
    cJSON_Delete(doc);
    out->retryable = ef_emr_classify("aws", out->aws_code, status) != EF_EMR_NO_RETRY;
}

static int all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v'))
            return 0;
    return 1;
}

static void reply_error(struct ef_emr_error *err, const struct ef_emr_operation *op, long status,
                        const char *what)
{
    memset(err, 0, sizeof *err);
    snprintf(err->code, sizeof err->code, "json");
    err->status = status;
    snprintf(err->message, sizeof err->message, "%s: HTTP %ld reply %s", op->name, status, what);
}

cJSON *ef_emr_reply(const struct ef_emr_operation *op, long status, const char *body, size_t len,
                    struct ef_emr_error *err)
{
    const struct ef_emr_shape *out = op->output == EF_EMR_NONE ? NULL : SHAPE(op->output);
    size_t nmembers = out ? out->nmembers : 0;
    if (!body || all_space(body, len)) {
        if (nmembers) {
            reply_error(err, op, status, "has an empty body");
            return NULL;
        }
        cJSON *empty = cJSON_CreateObject();
        if (!empty)
            reply_error(err, op, status, "could not be read: out of memory");
        return empty;
    }
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc || !cJSON_IsObject(doc)) {
        char what[96];
        snprintf(what, sizeof what, "is not a JSON object: %s",
                 !doc ? "not JSON" : cJSON_IsArray(doc) ? "an array" : cJSON_IsString(doc) ? "string"
                 : cJSON_IsNumber(doc) ? "number" : cJSON_IsBool(doc) ? "boolean" : "null");
        cJSON_Delete(doc);
        reply_error(err, op, status, what);
        return NULL;
    }
    /* the key member: id (Start, Create, Cancel, Delete), or a Describe's one object */
    const char *key = NULL;
    int want_object = 0;
    if (out && ef_emr_member_find(out, "id", 2, 0)) {
        key = "id";
    } else if (out && nmembers == 1 && strncmp(op->name, "Describe", 8) == 0) {
        key = out->members[0].name;
        want_object = 1;
    }
    if (key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
        if (want_object ? !cJSON_IsObject(v) : !cJSON_IsString(v)) {
            char what[160];
            snprintf(what, sizeof what, "has no '%s' %s", key, want_object ? "object" : "string");
            cJSON_Delete(doc);
            reply_error(err, op, status, what);
            return NULL;
        }
    }
    return doc;
}

void ef_emr_pascalize(unsigned shape, cJSON *doc)
{
    if (shape == EF_EMR_NONE || !doc)
        return;
    const struct ef_emr_shape *s = SHAPE(shape);
    switch (s->type) {
    case EF_EMR_T_STRUCTURE:
        if (!cJSON_IsObject(doc))
            return;
        for (cJSON *e = doc->child; e; e = e->next) {
            if (!e->string)
                continue;
            const struct ef_emr_member *m = ef_emr_member_find(s, e->string, strlen(e->string), 0);
            if (m)
                ef_emr_pascalize(m->shape, e);
            if (e->string[0] >= 'a' && e->string[0] <= 'z')
                e->string[0] = (char)(e->string[0] - 'a' + 'A');
        }
        break;
    case EF_EMR_T_LIST:
        if (cJSON_IsArray(doc))
            for (cJSON *e = doc->child; e; e = e->next)
                ef_emr_pascalize(s->member, e);
        break;
    case EF_EMR_T_MAP:
        if (cJSON_IsObject(doc))
            for (cJSON *e = doc->child; e; e = e->next)
                ef_emr_pascalize(s->value, e);
        break;
    default:
        break;
    }
}

/* ===================================================================================
 * Standard retry mode
 * =================================================================================== */

void ef_emr_retry_init(struct ef_emr_retry *r, int max_attempts, int quota)
{
    memset(r, 0, sizeof *r);
    r->max_attempts = max_attempts > 0 ? max_attempts : 3;
    r->capacity = r->max_capacity = quota >= 0 ? quota : EF_EMR_RETRY_QUOTA;
    r->max_backoff_s = EF_EMR_MAX_BACKOFF_S;
}

int ef_emr_retry_decide(struct ef_emr_retry *r, int kind, int attempt, double *delay_s, int *cost)
{
    *delay_s = 0;
    *cost = 0;
    if (kind == EF_EMR_NO_RETRY)
        return EF_EMR_NOT_RETRYABLE;
    if (attempt >= r->max_attempts)
        return EF_EMR_MAX_ATTEMPTS;
    int c = kind == EF_EMR_TIMEOUT ? EF_EMR_TIMEOUT_RETRY_COST : EF_EMR_RETRY_COST;
    if (r->capacity < c)
        return EF_EMR_QUOTA_EXHAUSTED;
    r->capacity -= c;
    *cost = c;
    double cap = ldexp(1.0, attempt - 1 > 62 ? 62 : attempt - 1);
    if (cap > r->max_backoff_s)
        cap = r->max_backoff_s;
    double u = r->random ? r->random(r->random_ud) : ef_emr_random(NULL);
    *delay_s = u * cap;
    return EF_EMR_RETRY;
}

void ef_emr_retry_success(struct ef_emr_retry *r, int last_cost)
{
    int refund = last_cost > 0 ? last_cost : EF_EMR_NO_RETRY_INCREMENT;
    r->capacity = r->capacity + refund > r->max_capacity ? r->max_capacity : r->capacity + refund;
}

const char *ef_emr_retry_verdict_name(int verdict)
{
    switch (verdict) {
    case EF_EMR_RETRY: return "retry";
    case EF_EMR_NOT_RETRYABLE: return "not retryable";
    case EF_EMR_MAX_ATTEMPTS: return "max attempts";
    case EF_EMR_QUOTA_EXHAUSTED: return "retry quota exhausted";
    default: return "unknown";
    }
}

/* ===================================================================================
 * Tokens and randomness
 * =================================================================================== */

static int s_urandom = -1;

static int random_bytes(unsigned char *p, size_t n)
{
    if (s_urandom < 0) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        s_urandom = fd;
    }
    while (n) {
        ssize_t got = read(s_urandom, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int ef_emr_uuid4(char out[37])
{
    unsigned char b[16];
    if (random_bytes(b, sizeof b))
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);   /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

double ef_emr_random(void *ud)
{
    (void)ud;
    uint64_t v = 0;
    if (random_bytes((unsigned char *)&v, sizeof v))
        return 0.5;
    return (double)(v >> 11) * (1.0 / 9007199254740992.0);
}
