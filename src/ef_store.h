/* The execution store: one SQLite database holding executions, their history
 * events and the external effects they started (pure C, no lua.h).
 *
 *   struct ef_store *s;  struct ef_store_error err;
 *   if (ef_store_open(&s, path, 5000, &err) != 0) ... err.kind, err.message ...
 *   struct ef_store_stmt *st = ef_store_stmt(s, ef_store_stmt_find("insert_event"));
 *   ef_store_bind_int(st, 1, 42); ...
 *   while ((rc = ef_store_step(st, &err)) == EF_STORE_ROW) ... ef_store_column_* ...
 *   ef_store_close(s);
 *
 * The SQL is fixed here: callers pick a named statement of the catalogue
 * (prepared once at open), bind parameters and step. Opening checks the file
 * before SQLite writes anything to it: a file that is not SQLite, a truncated
 * one, another application's database or a newer schema is refused and left
 * as it was. The journal is WAL with synchronous=NORMAL: a commit that
 * returned survives a crash of the process (kill -9); power loss may lose the
 * last commits but never corrupts the file. */
#ifndef EF_STORE_H
#define EF_STORE_H

#include <stddef.h>
#include <stdint.h>

#define EF_STORE_SCHEMA_VERSION 1

struct ef_store;
struct ef_store_stmt;

/* What went wrong, for callers that branch on it. */
enum ef_store_kind {
    EF_STORE_OK = 0,
    EF_STORE_ECANTOPEN,   /* cannot open or create the file (directory, permissions) */
    EF_STORE_ENOTDB,      /* not an SQLite database */
    EF_STORE_ETRUNCATED,  /* shorter than its header says */
    EF_STORE_ECORRUPT,    /* SQLite reports damage */
    EF_STORE_EFOREIGN,    /* an SQLite database, but not an emrflow store */
    EF_STORE_ENEWER,      /* schema newer than this build knows */
    EF_STORE_EBUSY,       /* locked by another connection past the busy timeout */
    EF_STORE_EREADONLY,   /* read-only file or directory */
    EF_STORE_ECONSTRAINT, /* a UNIQUE / PRIMARY KEY constraint */
    EF_STORE_EFULL,       /* disk full */
    EF_STORE_EMISUSE,     /* bad statement id, parameter index, closed store */
    EF_STORE_EOTHER
};

struct ef_store_error {
    enum ef_store_kind kind;
    int sqlite_code;      /* extended result code, 0 when none */
    char message[512];
};

/* Step results (errors are negative). */
#define EF_STORE_ROW 1
#define EF_STORE_DONE 0
#define EF_STORE_FAIL (-1)

/* Opens the store at path, creating the file and its schema when the file is
 * missing or empty. busy_ms: how long to wait for another process's lock.
 * Returns 0, or -1 with err filled (and *out NULL). */
int ef_store_open(struct ef_store **out, const char *path, int busy_ms,
                  struct ef_store_error *err);
/* Finalises the statements and closes the database; NULL is accepted. */
void ef_store_close(struct ef_store *s);

/* Creates every missing directory of path's parent (mkdir -p, mode 0700). */
int ef_store_make_parent_dirs(const char *path, struct ef_store_error *err);

/* The schema version recorded in the open store. */
int ef_store_schema_version(const struct ef_store *s);

/* Statement catalogue: id of a name (-1 when unknown), name of an id. */
int ef_store_stmt_find(const char *name);
const char *ef_store_stmt_name(int id);
int ef_store_stmt_count(void);

/* The prepared statement id, reset and with its bindings cleared; NULL for a
 * bad id. Valid until the next ef_store_stmt of the same id or close. */
struct ef_store_stmt *ef_store_stmt(struct ef_store *s, int id);
int ef_store_param_count(struct ef_store_stmt *st);
int ef_store_bind_null(struct ef_store_stmt *st, int i);
int ef_store_bind_int(struct ef_store_stmt *st, int i, int64_t v);
int ef_store_bind_double(struct ef_store_stmt *st, int i, double v);
int ef_store_bind_text(struct ef_store_stmt *st, int i, const char *p, size_t n);
/* Binds the malloc'ed p as a blob and hands it over: it is freed (free) by the store,
 * whether the call succeeds or not. */
int ef_store_bind_blob_owned(struct ef_store_stmt *st, int i, void *p, size_t n);
/* EF_STORE_ROW, EF_STORE_DONE, or EF_STORE_FAIL with err filled (the
 * statement is reset then). */
int ef_store_step(struct ef_store_stmt *st, struct ef_store_error *err);

enum ef_store_type { EF_STORE_NULL, EF_STORE_INT, EF_STORE_DOUBLE, EF_STORE_TEXT };
int ef_store_column_count(struct ef_store_stmt *st);
const char *ef_store_column_name(struct ef_store_stmt *st, int i);
enum ef_store_type ef_store_column_type(struct ef_store_stmt *st, int i);
int64_t ef_store_column_int(struct ef_store_stmt *st, int i);
double ef_store_column_double(struct ef_store_stmt *st, int i);
/* Text of column i and its length; valid until the next step or reset. */
const char *ef_store_column_text(struct ef_store_stmt *st, int i, size_t *n);

/* Rows changed by the last INSERT/UPDATE/DELETE, and the last rowid. */
int64_t ef_store_changes(struct ef_store *s);
int64_t ef_store_last_rowid(struct ef_store *s);
/* 1 inside an explicit transaction (after the "begin" statement). */
int ef_store_in_transaction(struct ef_store *s);

/* One history event record of a group (lua/emrflow/store/events.lua's RECORD,
 * "<i8i8dI4I4I4BI4I4": little-endian, no padding), EF_STORE_RECORD_SIZE bytes
 * written to out. Packing in C keeps a group of thousands of events cheap. */
#define EF_STORE_RECORD_SIZE 45
struct ef_store_record {
    int64_t id, prev;
    double timestamp;
    uint32_t type, key, name; /* string indexes, 0 = none */
    uint8_t kind;
    uint32_t value, assigned; /* value indexes, 0 = none */
};
void ef_store_pack_record(unsigned char *out, const struct ef_store_record *r);

/* PRAGMA integrity_check: 0 when "ok", else -1 with the first problem in err. */
int ef_store_integrity_check(struct ef_store *s, struct ef_store_error *err);

#endif
