/* The execution store over SQLite (see ef_store.h). */
#include "ef_store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>

/* The schema of version 1. executions.seq orders listings (newest first).
 * definitions holds each distinct definition text once, however many
 * executions run it, keyed by digest: "k1:" its length and ef_store_hash64
 * (a key whose texts are compared: lua/emrflow/store.lua), or the hex of its
 * SHA-256 (for a text whose key another text holds; also earlier versions').
 * events holds the history in groups: one row per group of consecutive
 * events written in one transaction (first_id..last_id, data in the form
 * lua/emrflow/store/events.lua defines), so that a long run of states costs
 * a few rows. Events and effects are keyed by (execution seq, first id | key) so
 * that a resumed execution finds its own. Dates are epoch seconds (REAL). */
static const char s_schema_v1[] =
    "CREATE TABLE executions ("
    " seq INTEGER PRIMARY KEY,"
    " arn TEXT NOT NULL UNIQUE,"
    " uid TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " machine_name TEXT NOT NULL,"
    " machine_arn TEXT NOT NULL,"
    " definition INTEGER NOT NULL,"
    " source_path TEXT,"
    " input TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " start_date REAL NOT NULL,"
    " stop_date REAL,"
    " output TEXT, error TEXT, cause TEXT,"
    " redrive_count INTEGER NOT NULL DEFAULT 0,"
    " redrive_date REAL,"
    " endpoint TEXT, region TEXT,"
    " options TEXT,"
    " UNIQUE (machine_arn, name));"
    "CREATE INDEX executions_name ON executions(name);"
    "CREATE TABLE definitions ("
    " id INTEGER PRIMARY KEY,"
    " digest TEXT NOT NULL UNIQUE,"
    " text TEXT NOT NULL);"
    "CREATE TABLE events ("
    " execution INTEGER NOT NULL,"
    " first_id INTEGER NOT NULL,"
    " last_id INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " PRIMARY KEY (execution, first_id)) WITHOUT ROWID;"
    "CREATE TABLE effects ("
    " execution INTEGER NOT NULL,"
    " key TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " result TEXT,"
    " created REAL NOT NULL,"
    " UNIQUE (execution, key));"
    "PRAGMA user_version = 1;";

#define EXECUTION_COLUMNS                                                     \
    "seq, arn, uid, name, machine_name, machine_arn, d.text AS definition, "   \
    "source_path, input, status, start_date, stop_date, output, error, cause, " \
    "redrive_count, redrive_date, endpoint, region, options"
#define EXECUTION_FROM " FROM executions JOIN definitions d ON d.id = definition"
/* the same columns but the definition's text (NULL): what its writer already holds */
#define EXECUTION_COLUMNS_NO_TEXT                                             \
    "seq, arn, uid, name, machine_name, machine_arn, NULL AS definition, "     \
    "source_path, input, status, start_date, stop_date, output, error, cause, " \
    "redrive_count, redrive_date, endpoint, region, options"

struct stmt_def {
    const char *name;
    const char *sql;
};

/* The statement catalogue: every SQL statement the store runs. */
static const struct stmt_def s_stmts[] = {
    { "begin", "BEGIN IMMEDIATE" },
    { "commit", "COMMIT" },
    { "rollback", "ROLLBACK" },
    { "definition_by_digest", "SELECT id, text = ?2 AS same FROM definitions WHERE digest = ?1" },
    { "insert_definition", "INSERT INTO definitions (digest, text) VALUES (?1, ?2)" },
    { "insert_execution",
      "INSERT INTO executions (arn, uid, name, machine_name, machine_arn, definition,"
      " source_path, input, status, start_date, endpoint, region, options)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)" },
    { "execution_by_seq", "SELECT " EXECUTION_COLUMNS EXECUTION_FROM " WHERE seq = ?1" },
    { "execution_by_arn", "SELECT " EXECUTION_COLUMNS EXECUTION_FROM " WHERE arn = ?1" },
    { "execution_by_arn_no_text",
      "SELECT " EXECUTION_COLUMNS_NO_TEXT " FROM executions WHERE arn = ?1" },
    { "execution_by_uid", "SELECT " EXECUTION_COLUMNS EXECUTION_FROM " WHERE uid = ?1" },
    { "executions_by_name",
      "SELECT " EXECUTION_COLUMNS EXECUTION_FROM " WHERE name = ?1 ORDER BY seq DESC" },
    { "list_executions",
      "SELECT seq, arn, machine_arn, machine_name, name, status, start_date, stop_date,"
      " redrive_count, redrive_date FROM executions"
      " WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR machine_name = ?2)"
      " ORDER BY seq DESC LIMIT coalesce(?3, -1)" },
    { "set_status",
      "UPDATE executions SET status = ?2, stop_date = ?3, output = ?4, error = ?5,"
      " cause = ?6 WHERE seq = ?1" },
    { "set_redriven",
      "UPDATE executions SET status = 'RUNNING', stop_date = NULL, output = NULL,"
      " error = NULL, cause = NULL, redrive_count = redrive_count + 1,"
      " redrive_date = ?2 WHERE seq = ?1" },
    { "set_options", "UPDATE executions SET options = ?2 WHERE seq = ?1" },
    { "insert_events",
      "INSERT INTO events (execution, first_id, last_id, data)"
      " VALUES (?1, ?2, ?3, CAST(?4 AS BLOB))" },
    { "events",
      "SELECT first_id, last_id, data FROM events"
      " WHERE execution = ?1 AND last_id > ?2 ORDER BY first_id" },
    /* groups hold consecutive ids: the last one is the group with the greatest first id
     * (found through the primary key, without reading every group of the execution) */
    { "last_event",
      "SELECT (SELECT last_id FROM events WHERE execution = ?1"
      " ORDER BY first_id DESC LIMIT 1) AS id" },
    { "put_effect",
      "INSERT INTO effects (execution, key, kind, data, created) VALUES (?1, ?2, ?3, ?4, ?5)"
      " ON CONFLICT (execution, key) DO UPDATE SET kind = excluded.kind,"
      " data = excluded.data, result = NULL" },
    { "complete_effect", "UPDATE effects SET result = ?3 WHERE execution = ?1 AND key = ?2" },
    { "effects",
      "SELECT key, kind, data, result, created FROM effects WHERE execution = ?1"
      " ORDER BY rowid" },
    { "effect",
      "SELECT key, kind, data, result, created FROM effects WHERE execution = ?1 AND key = ?2" },
};

#define STMT_COUNT ((int)(sizeof s_stmts / sizeof s_stmts[0]))

struct ef_store_stmt {
    sqlite3_stmt *st;
    struct ef_store *owner;
};

struct ef_store {
    sqlite3 *db;
    int schema;
    struct ef_store_stmt stmts[STMT_COUNT];
};

static void s_set(struct ef_store_error *err, enum ef_store_kind kind, int code,
                  const char *fmt, ...)
{
    if (!err)
        return;
    err->kind = kind;
    err->sqlite_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static enum ef_store_kind s_kind_of(int code)
{
    switch (code & 0xff) {
    case SQLITE_CANTOPEN: return EF_STORE_ECANTOPEN;
    case SQLITE_NOTADB: return EF_STORE_ENOTDB;
    case SQLITE_CORRUPT: return EF_STORE_ECORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return EF_STORE_EBUSY;
    case SQLITE_READONLY: return EF_STORE_EREADONLY;
    case SQLITE_CONSTRAINT: return EF_STORE_ECONSTRAINT;
    case SQLITE_FULL: return EF_STORE_EFULL;
    case SQLITE_MISUSE:
    case SQLITE_RANGE: return EF_STORE_EMISUSE;
    default: return EF_STORE_EOTHER;
    }
}

/* Fills err from the connection's last error, with a reading of it. */
static void s_set_sqlite(struct ef_store_error *err, sqlite3 *db, int code)
{
    enum ef_store_kind kind = s_kind_of(code);
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    switch (kind) {
    case EF_STORE_EBUSY:
        s_set(err, kind, code, "is locked by another process (%s)", msg);
        break;
    case EF_STORE_ECORRUPT:
        s_set(err, kind, code, "is damaged (%s)", msg);
        break;
    case EF_STORE_ECANTOPEN:
        s_set(err, kind, code, "cannot be opened (%s): check that its directory exists "
              "and is writable", msg);
        break;
    case EF_STORE_EREADONLY:
        s_set(err, kind, code, "is read-only (%s): emrflow writes to the file and to "
              "its directory (the -wal and -shm files)", msg);
        break;
    case EF_STORE_ENOTDB:
        s_set(err, kind, code, "is not an SQLite database (%s)", msg);
        break;
    default:
        s_set(err, kind, code, "failed: %s", msg);
    }
}

static uint32_t s_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static long long s_file_size(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -1;
    return (long long)sb.st_size;
}

/* Looks at the file before SQLite may write to it: missing or empty is fine
 * (a new store); anything else must be an SQLite file as long as its header
 * says. A non-empty -wal file means a crash left commits to replay, during
 * which the main file may be shorter: SQLite checks that case itself. */
static int s_precheck(const char *path, struct ef_store_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        s_set(err, EF_STORE_ECANTOPEN, 0, "cannot be opened (%s)", strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        s_set(err, EF_STORE_ECANTOPEN, 0, "is a directory");
        return -1;
    }
    if (sb.st_size == 0)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_set(err, EF_STORE_ECANTOPEN, 0, "cannot be opened (%s)", strerror(errno));
        return -1;
    }
    unsigned char h[100];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    static const char magic[16] = "SQLite format 3";  /* with its NUL */
    size_t m = n < sizeof magic ? n : sizeof magic;
    if (memcmp(h, magic, m) != 0) {
        s_set(err, EF_STORE_ENOTDB, 0, "is not an SQLite database (its first bytes are not "
              "an SQLite header); nothing was changed");
        return -1;
    }
    if (n < sizeof h) {
        s_set(err, EF_STORE_ETRUNCATED, 0, "is truncated: %zu bytes, shorter than an SQLite "
              "header; nothing was changed", n);
        return -1;
    }
    long page_size = (long)h[16] << 8 | h[17];
    if (page_size == 1)
        page_size = 65536;
    uint32_t pages = s_be32(h + 28), change = s_be32(h + 24), valid_for = s_be32(h + 92);
    if (pages == 0 || change != valid_for)
        return 0;                     /* size not recorded: SQLite uses the file's */
    char wal[4096];
    if (snprintf(wal, sizeof wal, "%s-wal", path) < (int)sizeof wal && s_file_size(wal) > 0)
        return 0;
    long long want = (long long)pages * page_size;
    if ((long long)sb.st_size < want) {
        s_set(err, EF_STORE_ETRUNCATED, 0, "is truncated: %lld bytes, its header says %lld; "
              "nothing was changed",
              (long long)sb.st_size, want);
        return -1;
    }
    return 0;
}

static int s_exec(struct ef_store *s, const char *sql, struct ef_store_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        s_set_sqlite(err, s->db, rc);
        return -1;
    }
    return 0;
}

/* One integer from a one-row query (PRAGMA user_version, counts). */
static int s_query_int(struct ef_store *s, const char *sql, int *out, struct ef_store_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        s_set_sqlite(err, s->db, rc);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Creates the schema in an empty database. Another process may be doing the
 * same: the version is read again under the write lock. */
static int s_create_schema(struct ef_store *s, struct ef_store_error *err)
{
    if (s_exec(s, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    int version = 0, tables = 0;
    if (s_query_int(s, "PRAGMA user_version", &version, err) != 0 ||
        s_query_int(s, "SELECT count(*) FROM sqlite_master", &tables, err) != 0)
        goto fail;
    if (version == 0 && tables == 0 && s_exec(s, s_schema_v1, err) != 0)
        goto fail;
    if (s_exec(s, "COMMIT", err) != 0)
        goto fail;
    return s_query_int(s, "PRAGMA user_version", &s->schema, err);
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* WAL: readers never block the writer, and a commit is one append.
 * NORMAL: a commit is in the OS's hands when it returns, so it survives the
 * process being killed (syncs happen at checkpoints). */
static int s_set_journal(struct ef_store *s, struct ef_store_error *err)
{
    if (s_exec(s, "PRAGMA journal_mode = WAL", err) != 0 ||
        s_exec(s, "PRAGMA synchronous = NORMAL", err) != 0)
        return -1;
    return 0;
}

/* Checks the schema version, creating the schema in a new file (an existing
 * one is switched to WAL by the caller, once its tables proved usable). Nothing is
 * written to a file that is not an emrflow store of a known version. */
static int s_check_schema(struct ef_store *s, struct ef_store_error *err)
{
    int version = 0, tables = 0;
    if (s_query_int(s, "PRAGMA user_version", &version, err) != 0)
        return -1;
    if (version > EF_STORE_SCHEMA_VERSION) {
        s_set(err, EF_STORE_ENEWER, 0, "has schema version %d, newer than this emrflow knows "
              "(%d): use a newer emrflow; nothing was changed", version,
              EF_STORE_SCHEMA_VERSION);
        return -1;
    }
    if (version == 0) {
        if (s_query_int(s, "SELECT count(*) FROM sqlite_master", &tables, err) != 0)
            return -1;
        if (tables > 0) {
            s_set(err, EF_STORE_EFOREIGN, 0, "is not an emrflow store (an SQLite database "
                  "holding other tables); nothing was changed");
            return -1;
        }
    }
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        s_set(err, EF_STORE_EREADONLY, SQLITE_READONLY, "is read-only: emrflow needs to "
              "write to the file and its directory");
        return -1;
    }
    if (version == 0)
        return s_set_journal(s, err) != 0 ? -1 : s_create_schema(s, err);
    s->schema = version;
    return 0;
}

static int s_prepare_all(struct ef_store *s, struct ef_store_error *err)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, s_stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmts[i].st, NULL);
        if (rc != SQLITE_OK) {
            /* a plain SQL error here means the tables are not those of its version */
            if ((rc & 0xff) == SQLITE_ERROR)
                s_set(err, EF_STORE_EFOREIGN, rc, "is not a usable emrflow store (schema "
                      "version %d, but %s); nothing was changed", s->schema, sqlite3_errmsg(s->db));
            else
                s_set_sqlite(err, s->db, rc);
            return -1;
        }
        s->stmts[i].owner = s;
    }
    return 0;
}

int ef_store_open(struct ef_store **out, const char *path, int busy_ms,
                  struct ef_store_error *err)
{
    *out = NULL;
    if (err) {
        err->kind = EF_STORE_OK;
        err->sqlite_code = 0;
        err->message[0] = '\0';
    }
    if (s_precheck(path, err) != 0)
        return -1;
    struct ef_store *s = calloc(1, sizeof *s);
    if (!s) {
        s_set(err, EF_STORE_EOTHER, SQLITE_NOMEM, "out of memory");
        return -1;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        s_set_sqlite(err, s->db, rc);
        ef_store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, busy_ms);
    if (s_check_schema(s, err) != 0 || s_prepare_all(s, err) != 0 ||
        s_set_journal(s, err) != 0) {
        ef_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void ef_store_close(struct ef_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(s->stmts[i].st);
    sqlite3_close_v2(s->db);
    free(s);
}

int ef_store_make_parent_dirs(const char *path, struct ef_store_error *err)
{
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) {
        s_set(err, EF_STORE_EOTHER, 0, "out of memory");
        return -1;
    }
    memcpy(p, path, n + 1);
    char *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) {
        *slash = '\0';
        for (char *q = p + 1; rc == 0; q++) {
            char c = *q;
            if (c != '/' && c != '\0')
                continue;
            *q = '\0';
            struct stat sb;
            if (stat(p, &sb) != 0 && mkdir(p, 0700) != 0 && errno != EEXIST) {
                s_set(err, EF_STORE_ECANTOPEN, 0, "cannot be created: cannot create the directory %s (%s)", p,
                      strerror(errno));
                rc = -1;
            }
            *q = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return rc;
}

int ef_store_schema_version(const struct ef_store *s)
{
    return s->schema;
}

int ef_store_stmt_find(const char *name)
{
    for (int i = 0; i < STMT_COUNT; i++)
        if (strcmp(s_stmts[i].name, name) == 0)
            return i;
    return -1;
}

const char *ef_store_stmt_name(int id)
{
    return id >= 0 && id < STMT_COUNT ? s_stmts[id].name : NULL;
}

int ef_store_stmt_count(void)
{
    return STMT_COUNT;
}

struct ef_store_stmt *ef_store_stmt(struct ef_store *s, int id)
{
    if (!s || id < 0 || id >= STMT_COUNT)
        return NULL;
    struct ef_store_stmt *st = &s->stmts[id];
    sqlite3_reset(st->st);
    sqlite3_clear_bindings(st->st);
    return st;
}

int ef_store_param_count(struct ef_store_stmt *st)
{
    return sqlite3_bind_parameter_count(st->st);
}

int ef_store_bind_null(struct ef_store_stmt *st, int i)
{
    return sqlite3_bind_null(st->st, i) == SQLITE_OK ? 0 : -1;
}

int ef_store_bind_int(struct ef_store_stmt *st, int i, int64_t v)
{
    return sqlite3_bind_int64(st->st, i, (sqlite3_int64)v) == SQLITE_OK ? 0 : -1;
}

int ef_store_bind_double(struct ef_store_stmt *st, int i, double v)
{
    return sqlite3_bind_double(st->st, i, v) == SQLITE_OK ? 0 : -1;
}

int ef_store_bind_text(struct ef_store_stmt *st, int i, const char *p, size_t n)
{
    return sqlite3_bind_text64(st->st, i, p, (sqlite3_uint64)n, SQLITE_TRANSIENT,
                               SQLITE_UTF8) == SQLITE_OK ? 0 : -1;
}

int ef_store_bind_text_static(struct ef_store_stmt *st, int i, const char *p, size_t n)
{
    return sqlite3_bind_text64(st->st, i, p, (sqlite3_uint64)n, SQLITE_STATIC,
                               SQLITE_UTF8) == SQLITE_OK ? 0 : -1;
}

int ef_store_bind_blob_owned(struct ef_store_stmt *st, int i, void *p, size_t n)
{
    /* SQLite calls the destructor even when the bind fails */
    return sqlite3_bind_blob64(st->st, i, p, (sqlite3_uint64)n, free) == SQLITE_OK ? 0 : -1;
}

int ef_store_step(struct ef_store_stmt *st, struct ef_store_error *err)
{
    int rc = sqlite3_step(st->st);
    if (rc == SQLITE_ROW)
        return EF_STORE_ROW;
    if (rc == SQLITE_DONE)
        return EF_STORE_DONE;
    s_set_sqlite(err, st->owner->db, rc);
    sqlite3_reset(st->st);
    return EF_STORE_FAIL;
}

int ef_store_column_count(struct ef_store_stmt *st)
{
    return sqlite3_column_count(st->st);
}

const char *ef_store_column_name(struct ef_store_stmt *st, int i)
{
    return sqlite3_column_name(st->st, i);
}

enum ef_store_type ef_store_column_type(struct ef_store_stmt *st, int i)
{
    switch (sqlite3_column_type(st->st, i)) {
    case SQLITE_INTEGER: return EF_STORE_INT;
    case SQLITE_FLOAT: return EF_STORE_DOUBLE;
    case SQLITE_NULL: return EF_STORE_NULL;
    default: return EF_STORE_TEXT;
    }
}

int64_t ef_store_column_int(struct ef_store_stmt *st, int i)
{
    return (int64_t)sqlite3_column_int64(st->st, i);
}

double ef_store_column_double(struct ef_store_stmt *st, int i)
{
    return sqlite3_column_double(st->st, i);
}

const char *ef_store_column_text(struct ef_store_stmt *st, int i, size_t *n)
{
    const char *p = (const char *)sqlite3_column_text(st->st, i);
    *n = p ? (size_t)sqlite3_column_bytes(st->st, i) : 0;
    return p;
}

int64_t ef_store_changes(struct ef_store *s)
{
    return (int64_t)sqlite3_changes64(s->db);
}

int64_t ef_store_last_rowid(struct ef_store *s)
{
    return (int64_t)sqlite3_last_insert_rowid(s->db);
}

int ef_store_in_transaction(struct ef_store *s)
{
    return !sqlite3_get_autocommit(s->db);
}

int ef_store_integrity_check(struct ef_store *s, struct ef_store_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
    int ok = -1;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(st, 0);
            if (r && strcmp(r, "ok") == 0)
                ok = 0;
            else
                s_set(err, EF_STORE_ECORRUPT, SQLITE_CORRUPT, "fails its integrity check: %s",
                      r ? r : "(no answer)");
        } else {
            s_set_sqlite(err, s->db, rc);
        }
    } else {
        s_set_sqlite(err, s->db, rc);
    }
    sqlite3_finalize(st);
    return ok;
}

static unsigned char *s_put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + bytes;
}

void ef_store_pack_record(unsigned char *out, const struct ef_store_record *r)
{
    uint64_t t;
    memcpy(&t, &r->timestamp, sizeof t);   /* IEEE 754 double, written little-endian */
    unsigned char *p = s_put_le(out, (uint64_t)r->id, 8);
    p = s_put_le(p, (uint64_t)r->prev, 8);
    p = s_put_le(p, t, 8);
    p = s_put_le(p, r->type, 4);
    p = s_put_le(p, r->key, 4);
    p = s_put_le(p, r->name, 4);
    *p++ = r->kind;
    p = s_put_le(p, r->value, 4);
    s_put_le(p, r->assigned, 4);
}

/* ------------------------------------------------------------------ */
/* The compact group format (ef_store.h)                               */

#define VARINT_MAX 10

static unsigned char *s_put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Small negative numbers as small varints. */
static uint64_t s_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

size_t ef_store_event_size(const struct ef_store_event *e)
{
    return 2 + 5 * VARINT_MAX + 8 + e->name_len + e->delta_len;
}

/* 1 when the name of e is the packer's last name. */
static int s_same_name(const struct ef_store_packer *p, const struct ef_store_event *e)
{
    return p->has_name && p->name_len == e->name_len &&
           memcmp(p->name, e->name, e->name_len) == 0;
}

static int s_keep_name(struct ef_store_packer *p, const struct ef_store_event *e)
{
    if (e->name_len + 1 > p->name_cap) {
        size_t cap = e->name_len + 1 < 64 ? 64 : e->name_len + 1;
        char *name = realloc(p->name, cap);
        if (!name)
            return -1;
        p->name = name;
        p->name_cap = cap;
    }
    memcpy(p->name, e->name, e->name_len);
    p->name_len = e->name_len;
    p->has_name = 1;
    return 0;
}

size_t ef_store_pack_event(struct ef_store_packer *p, unsigned char *out,
                           const struct ef_store_event *e)
{
    if (p->n > 0 && e->id != p->last + 1)
        return 0;
    unsigned flags = e->value & EF_STORE_EV_VALUE_MASK;
    if (e->prev != e->id - 1)
        flags |= EF_STORE_EV_PREV;
    /* compared bit for bit: the clock read back is the one written */
    if (p->n == 0 || memcmp(&p->timestamp, &e->timestamp, sizeof e->timestamp) != 0)
        flags |= EF_STORE_EV_TIME;
    if (e->name) {
        if (s_same_name(p, e))
            flags |= EF_STORE_EV_SAME_NAME;
        else if (s_keep_name(p, e) == 0)
            flags |= EF_STORE_EV_NAME;
        else
            return 0;
    }
    if (e->assigned)
        flags |= EF_STORE_EV_ASSIGNED;
    unsigned char *o = out;
    *o++ = (unsigned char)flags;
    *o++ = e->kind;
    o = s_put_varint(o, e->type);
    o = s_put_varint(o, e->key);
    if (flags & EF_STORE_EV_PREV)
        o = s_put_varint(o, s_zigzag((int64_t)((uint64_t)e->id - 1 - (uint64_t)e->prev)));
    if (flags & EF_STORE_EV_TIME) {
        uint64_t t;
        memcpy(&t, &e->timestamp, sizeof t);
        o = s_put_le(o, t, 8);
    }
    if (flags & EF_STORE_EV_NAME) {
        o = s_put_varint(o, e->name_len);
        memcpy(o, e->name, e->name_len);
        o += e->name_len;
    }
    if ((flags & EF_STORE_EV_VALUE_MASK) == EF_STORE_EV_VALUE_DELTA) {
        memcpy(o, e->delta, e->delta_len);
        o += e->delta_len;
    }
    if (e->kind == EF_STORE_KIND_ITERATION)
        o = s_put_varint(o, s_zigzag(e->index));
    if (p->n++ == 0)
        p->first = e->id;
    p->last = e->id;
    p->timestamp = e->timestamp;
    return (size_t)(o - out);
}

void ef_store_packer_reset(struct ef_store_packer *p)
{
    p->n = p->first = p->last = 0;
    p->has_name = 0;
}

void ef_store_packer_free(struct ef_store_packer *p)
{
    free(p->name);
    p->name = NULL;
    p->name_len = p->name_cap = 0;
    p->has_name = 0;
}

void ef_store_pack_group_header(unsigned char *out, int64_t first, uint32_t strings_len,
                                uint32_t values_len)
{
    unsigned char *p = s_put_le(out, 0, 4);
    *p++ = EF_STORE_GROUP_VERSION;
    p = s_put_le(p, (uint64_t)first, 8);
    p = s_put_le(p, strings_len, 4);
    s_put_le(p, values_len, 4);
}

/* Four lanes of multiply-rotate rounds over 32-byte blocks (independent, so that they
 * overlap in the CPU), folded with the tail and the length, then mixed. */
static uint64_t s_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t s_round(uint64_t lane, uint64_t word)
{
    return s_rotl(lane + word * 0xC2B2AE3D27D4EB4Full, 31) * 0x9E3779B97F4A7C15ull;
}

/* 8 bytes as a number, in the machine's byte order */
static uint64_t s_word(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

uint64_t ef_store_hash64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t lane[4] = { 0x243F6A8885A308D3ull, 0x13198A2E03707344ull,
                         0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull };
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            lane[k] = s_round(lane[k], s_word(p + i + 8 * k));
    uint64_t h = (uint64_t)n;
    for (int k = 0; k < 4; k++)
        h = s_round(h ^ lane[k], s_rotl(lane[k], 17));
    for (; i + 8 <= n; i += 8)
        h = s_round(h, s_word(p + i));
    for (; i < n; i++)
        h = s_round(h, p[i]);
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 32);
}
