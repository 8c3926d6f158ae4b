/* C unit tests of src/ef_store.c: schema creation, the statement catalogue,
 * constraints, transactions, and the refusal of files that are not stores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "ef_store.h"
#include "ef_test.h"

static char s_dir[64];

static void s_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", s_dir, name);
}

/* The whole file, for "nothing was changed" checks; *n gets its size. */
static char *s_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)size + 1);
    *n = p ? fread(p, 1, (size_t)size, f) : 0;
    fclose(f);
    return p;
}

static void s_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* The id of the one definition the tests' executions run (added on first use). */
static int64_t s_definition(struct ef_store *s, struct ef_store_error *err)
{
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("definition_by_digest"));
    ef_store_bind_text(st, 1, "d1", 2);
    if (ef_store_step(st, err) == EF_STORE_ROW)
        return ef_store_column_int(st, 0);
    st = ef_store_stmt(s, ef_store_stmt_find("insert_definition"));
    ef_store_bind_text(st, 1, "d1", 2);
    ef_store_bind_text(st, 2, "{}", 2);
    if (ef_store_step(st, err) != EF_STORE_DONE)
        return -1;
    return ef_store_last_rowid(s);
}

static int s_insert_execution(struct ef_store *s, const char *arn, const char *uid,
                              const char *name, struct ef_store_error *err)
{
    int64_t def = s_definition(s, err);
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("insert_execution"));
    ef_store_bind_text(st, 1, arn, strlen(arn));
    ef_store_bind_text(st, 2, uid, strlen(uid));
    ef_store_bind_text(st, 3, name, strlen(name));
    ef_store_bind_text(st, 4, "m", 1);
    ef_store_bind_text(st, 5, "arn:m", 5);
    ef_store_bind_int(st, 6, def);
    ef_store_bind_text(st, 8, "{}", 2);
    ef_store_bind_text(st, 9, "RUNNING", 7);
    ef_store_bind_double(st, 10, 1700000000.5);
    return ef_store_step(st, err);
}

static int64_t s_count_events(struct ef_store *s, int64_t seq)
{
    struct ef_store_error err;
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("events"));
    ef_store_bind_int(st, 1, seq);
    ef_store_bind_int(st, 2, 0);
    int64_t n = 0;
    while (ef_store_step(st, &err) == EF_STORE_ROW)
        n++;
    return n;
}

static void test_create_and_reopen(void)
{
    char path[128];
    s_path(path, sizeof path, "sub/dir/a.db");
    struct ef_store_error err;
    struct ef_store *s = NULL;
    EF_CHECK(ef_store_make_parent_dirs(path, &err) == 0);
    EF_CHECK(ef_store_open(&s, path, 1000, &err) == 0);
    EF_CHECK(s != NULL);
    if (!s)
        return;
    EF_CHECK(ef_store_schema_version(s) == EF_STORE_SCHEMA_VERSION);
    EF_CHECK(s_insert_execution(s, "arn:x:1", "u1", "one", &err) == EF_STORE_DONE);
    EF_CHECK(ef_store_last_rowid(s) == 1);
    EF_CHECK(ef_store_changes(s) == 1);
    /* the same name for the same state machine: a constraint error */
    EF_CHECK(s_insert_execution(s, "arn:x:2", "u2", "one", &err) == EF_STORE_FAIL);
    EF_CHECK(err.kind == EF_STORE_ECONSTRAINT);
    ef_store_close(s);

    s = NULL;
    EF_CHECK(ef_store_open(&s, path, 1000, &err) == 0);
    if (!s)
        return;
    struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("execution_by_arn"));
    ef_store_bind_text(st, 1, "arn:x:1", 7);
    EF_CHECK(ef_store_step(st, &err) == EF_STORE_ROW);
    size_t n = 0;
    int name_col = -1;
    for (int i = 0; i < ef_store_column_count(st); i++)
        if (strcmp(ef_store_column_name(st, i), "name") == 0)
            name_col = i;
    EF_CHECK(name_col >= 0);
    if (name_col >= 0) {
        const char *name = ef_store_column_text(st, name_col, &n);
        EF_CHECK(n == 3 && memcmp(name, "one", 3) == 0);
    }
    EF_CHECK(ef_store_integrity_check(s, &err) == 0);
    ef_store_close(s);
}

static void test_transactions(void)
{
    char path[128];
    s_path(path, sizeof path, "tx.db");
    struct ef_store_error err;
    struct ef_store *s = NULL;
    EF_CHECK(ef_store_open(&s, path, 1000, &err) == 0);
    if (!s)
        return;
    EF_CHECK(s_insert_execution(s, "arn:t", "ut", "t", &err) == EF_STORE_DONE);
    int begin = ef_store_stmt_find("begin"), insert = ef_store_stmt_find("insert_events");
    for (int round = 0; round < 2; round++) {
        EF_CHECK(ef_store_step(ef_store_stmt(s, begin), &err) == EF_STORE_DONE);
        EF_CHECK(ef_store_in_transaction(s));
        for (int id = 1; id <= 3; id++) {
            struct ef_store_stmt *st = ef_store_stmt(s, insert);
            ef_store_bind_int(st, 1, 1);
            ef_store_bind_int(st, 2, id + round * 10);
            ef_store_bind_int(st, 3, id + round * 10);
            ef_store_bind_text(st, 4, "[]", 2);
            EF_CHECK(ef_store_step(st, &err) == EF_STORE_DONE);
        }
        /* round 0 is rolled back, round 1 committed */
        const char *end = round == 0 ? "rollback" : "commit";
        EF_CHECK(ef_store_step(ef_store_stmt(s, ef_store_stmt_find(end)), &err) == EF_STORE_DONE);
        EF_CHECK(!ef_store_in_transaction(s));
    }
    EF_CHECK(s_count_events(s, 1) == 3);
    ef_store_close(s);
}

static void test_catalogue(void)
{
    EF_CHECK(ef_store_stmt_count() > 10);
    EF_CHECK(ef_store_stmt_find("no such statement") == -1);
    for (int i = 0; i < ef_store_stmt_count(); i++)
        EF_CHECK(ef_store_stmt_find(ef_store_stmt_name(i)) == i);
    EF_CHECK(ef_store_stmt_name(-1) == NULL);
    EF_CHECK(ef_store_stmt(NULL, 0) == NULL);
}

/* A file that is refused must come out byte for byte as it went in. */
static void s_check_refused(const char *name, const void *content, size_t n,
                            enum ef_store_kind want)
{
    char path[128];
    s_path(path, sizeof path, name);
    s_write(path, content, n);
    struct ef_store_error err;
    struct ef_store *s = NULL;
    EF_CHECK(ef_store_open(&s, path, 200, &err) == -1);
    EF_CHECK(s == NULL);
    if (err.kind != want)
        fprintf(stderr, "%s: kind %d, want %d (%s)\n", name, err.kind, want, err.message);
    EF_CHECK(err.kind == want);
    EF_CHECK(strstr(err.message, "nothing was changed") != NULL);
    size_t m = 0;
    char *after = s_slurp(path, &m);
    EF_CHECK(after && m == n && memcmp(after, content, n) == 0);
    free(after);
    ef_store_close(s);
}

static void test_not_a_database(void)
{
    static const char text[] = "{\"this is\": \"a JSON file, not a database\"}\n";
    s_check_refused("text.db", text, sizeof text - 1, EF_STORE_ENOTDB);
}

static void test_truncated(void)
{
    char path[128];
    s_path(path, sizeof path, "full.db");
    struct ef_store_error err;
    struct ef_store *s = NULL;
    EF_CHECK(ef_store_open(&s, path, 1000, &err) == 0);
    if (!s)
        return;
    for (int i = 0; i < 200; i++) {
        char arn[32], uid[32];
        snprintf(arn, sizeof arn, "arn:t:%d", i);
        snprintf(uid, sizeof uid, "u%d", i);
        s_insert_execution(s, arn, uid, arn, &err);
    }
    ef_store_close(s);
    size_t n = 0;
    char *full = s_slurp(path, &n);
    EF_CHECK(full && n > 8192);
    if (!full)
        return;
    s_check_refused("half.db", full, n / 2, EF_STORE_ETRUNCATED);
    s_check_refused("header.db", full, 60, EF_STORE_ETRUNCATED);
    free(full);
}

/* Databases made directly with SQLite: another application's, and a newer emrflow's. */
static void s_make_db(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) == SQLITE_OK)
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
}

static void s_check_refused_db(const char *name, const char *sql, enum ef_store_kind want)
{
    char path[128];
    s_path(path, sizeof path, name);
    s_make_db(path, sql);
    size_t n = 0;
    char *before = s_slurp(path, &n);
    EF_CHECK(before != NULL);
    if (before)
        s_check_refused(name, before, n, want);
    free(before);
}

static void test_foreign_and_newer(void)
{
    s_check_refused_db("other.db", "CREATE TABLE t (x); INSERT INTO t VALUES (1);",
                       EF_STORE_EFOREIGN);
    s_check_refused_db("newer.db", "CREATE TABLE executions (x); PRAGMA user_version = 99;",
                       EF_STORE_ENEWER);
    /* the version of this build, but not its tables */
    s_check_refused_db("odd.db", "CREATE TABLE executions (x); PRAGMA user_version = 1;",
                       EF_STORE_EFOREIGN);
}

static void test_cannot_open(void)
{
    struct ef_store_error err;
    struct ef_store *s = NULL;
    EF_CHECK(ef_store_open(&s, s_dir, 200, &err) == -1);
    EF_CHECK(err.kind == EF_STORE_ECANTOPEN);
    char path[128];
    s_path(path, sizeof path, "missing/dir/x.db");
    EF_CHECK(ef_store_open(&s, path, 200, &err) == -1);
    EF_CHECK(err.kind == EF_STORE_ECANTOPEN);
    EF_CHECK(s == NULL);
}

static void s_remove_tree(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* A record is the stored little-endian layout, whatever the host's byte order. */
static void test_pack_record(void)
{
    struct ef_store_record r = { .id = 0x0102030405060708LL, .prev = -1, .timestamp = 1.5,
                                 .type = 0x11223344u, .key = 2, .name = 0, .kind = 3,
                                 .value = 0xA0B0C0D0u, .assigned = 7 };
    static const unsigned char want[EF_STORE_RECORD_SIZE] = {
        8, 7, 6, 5, 4, 3, 2, 1,                 /* id */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* prev */
        0, 0, 0, 0, 0, 0, 0xf8, 0x3f,           /* 1.5 as an IEEE 754 double */
        0x44, 0x33, 0x22, 0x11, 2, 0, 0, 0, 0, 0, 0, 0,
        3,
        0xD0, 0xC0, 0xB0, 0xA0, 7, 0, 0, 0,
    };
    unsigned char out[EF_STORE_RECORD_SIZE + 1];
    out[EF_STORE_RECORD_SIZE] = 0x5a;
    ef_store_pack_record(out, &r);
    EF_CHECK(memcmp(out, want, EF_STORE_RECORD_SIZE) == 0);
    EF_CHECK(out[EF_STORE_RECORD_SIZE] == 0x5a);   /* nothing written past the record */
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/ef_store_test.XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    EF_RUN(test_create_and_reopen);
    EF_RUN(test_transactions);
    EF_RUN(test_catalogue);
    EF_RUN(test_not_a_database);
    EF_RUN(test_truncated);
    EF_RUN(test_foreign_and_newer);
    EF_RUN(test_cannot_open);
    EF_RUN(test_pack_record);
    s_remove_tree(s_dir);
    return EF_DONE();
}
