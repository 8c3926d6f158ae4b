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
/* Binds p without a copy: p must stay valid until the statement has completed (its
 * bindings are cleared when it is next taken by ef_store_stmt). */
int ef_store_bind_text_static(struct ef_store_stmt *st, int i, const char *p, size_t n);
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

/* The compact group format (version 3, written; lua/emrflow/store/events.lua reads it and
 * version 2, which differs only in its delta shapes, see below):
 *   u32 0 (a group of the first format starts with its strings' length, never 0),
 *   u8 3, i8 the first event's id, u32 the length of the strings' JSON text, u32 the
 *   length of the values' JSON text, the strings' text (event types, details keys), the
 *   values' text (payloads, details, variables and delta members, in the order the
 *   records take them), then one record per event:
 *     flags u8 (EF_STORE_EV_*), kind u8 (EF_STORE_KIND_*), varint type, varint key,
 *     [varint zigzag(id - 1 - prev)] [f8 timestamp] [varint length + name bytes]
 *     [delta shape] [varint zigzag(iteration index)]
 *   (varint: unsigned LEB128; all little-endian). Ids are consecutive from the first;
 *   what is as in the previous record (the clock, the state's name) is not repeated.
 *   A delta shape: varint n, the number of members replaced, then for each member its
 *   key (varint, a string index) and a varint code (EF_STORE_MEMBER_*): 0, its new value
 *   is the next value; 1, it is the integer i, varint zigzag(i) follows; 2, true; 3,
 *   false; m + 4, it is a delta of m members over the member's old value, whose shapes
 *   follow. (Version 2: 0, the next value; m + 1, a delta of m members.) */
#define EF_STORE_GROUP_VERSION 3
#define EF_STORE_GROUP_HEADER 21   /* u32 0, u8 version, i8 first id, u32 + u32 lengths */
enum {
    EF_STORE_EV_VALUE_MASK = 0x03, /* the event's value: */
    EF_STORE_EV_VALUE_NONE = 0,    /*   none */
    EF_STORE_EV_VALUE_FULL = 1,    /*   the next value */
    EF_STORE_EV_VALUE_SAME = 2,    /*   the last value given in full or as a delta */
    EF_STORE_EV_VALUE_DELTA = 3,   /*   that last value with members replaced, as the
                                    *   record's delta shape says */
    EF_STORE_EV_PREV = 0x04,       /* previousEventId is not id - 1 */
    EF_STORE_EV_TIME = 0x08,       /* the timestamp differs from the previous record's */
    EF_STORE_EV_NAME = 0x10,       /* a state name follows */
    EF_STORE_EV_SAME_NAME = 0x20,  /* the previous record's name */
    EF_STORE_EV_ASSIGNED = 0x40    /* assigned variables: the next value */
};
enum {                             /* a delta shape's member codes (version 3) */
    EF_STORE_MEMBER_VALUE = 0,     /*   the next value */
    EF_STORE_MEMBER_INT = 1,       /*   an integer, varint zigzag(i) follows */
    EF_STORE_MEMBER_TRUE = 2,
    EF_STORE_MEMBER_FALSE = 3,
    EF_STORE_MEMBER_NESTED = 4     /*   + m: a delta of m members of the old value */
};
enum {
    EF_STORE_KIND_NONE = 0,        /* no details */
    EF_STORE_KIND_INPUT = 1,       /* { name, input = value, assignedVariables } */
    EF_STORE_KIND_OUTPUT = 2,      /* { name, output = value, assignedVariables } */
    EF_STORE_KIND_DETAILS = 3,     /* the value is the details table */
    EF_STORE_KIND_ITERATION = 4    /* { name, index } */
};

/* One event of a compact group. name: NULL when none. */
struct ef_store_event {
    int64_t id, prev, index;       /* index: a map iteration's */
    double timestamp;
    uint32_t type, key;            /* string indexes (0 = none) */
    const unsigned char *delta;    /* the delta shape (EF_STORE_EV_VALUE_DELTA) */
    size_t delta_len;
    uint8_t kind, value;           /* EF_STORE_KIND_*, EF_STORE_EV_VALUE_* */
    int assigned;                  /* 1: assigned variables follow as a value */
    const char *name;
    size_t name_len;
};

/* What a record leaves out because the previous record of the group has it. */
struct ef_store_packer {
    int64_t n, first, last;        /* events packed so far, first and last ids */
    double timestamp;
    char *name;                    /* malloc'ed copy of the last name */
    size_t name_len, name_cap;
    int has_name;                  /* 0: no name in the group yet */
};
/* The most bytes ef_store_pack_event writes for e. */
size_t ef_store_event_size(const struct ef_store_event *e);
/* Appends e's record at out (room: ef_store_event_size(e)); returns the bytes written,
 * or 0 when e's id does not follow the last one or memory runs out (nothing packed). */
size_t ef_store_pack_event(struct ef_store_packer *p, unsigned char *out,
                           const struct ef_store_event *e);
/* Forgets the previous records (a new group); keeps the name buffer. */
void ef_store_packer_reset(struct ef_store_packer *p);
/* Frees the packer's memory (not p itself). */
void ef_store_packer_free(struct ef_store_packer *p);
/* Writes a compact group's header at out (EF_STORE_GROUP_HEADER bytes). */
void ef_store_pack_group_header(unsigned char *out, int64_t first, uint32_t strings_len,
                                uint32_t values_len);

/* PRAGMA integrity_check: 0 when "ok", else -1 with the first problem in err. */
int ef_store_integrity_check(struct ef_store *s, struct ef_store_error *err);

/* A 64-bit hash of the n bytes at p (not cryptographic: a content key whose matches are
 * confirmed by comparing the contents; the same on machines of one byte order). */
uint64_t ef_store_hash64(const void *p, size_t n);

#endif
