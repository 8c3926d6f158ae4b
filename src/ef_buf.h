/* A growable byte buffer (pure C, no lua.h).
 *
 *   struct ef_buf b;  ef_buf_init(&b);
 *   if (ef_buf_append(&b, p, n) != 0) ... out of memory ...
 *   use b.p / b.len (b.p is always NUL-terminated once anything was added)
 *   ef_buf_clean_up(&b);            or ef_buf_wipe_clean_up(&b) for secrets
 *
 * Append functions return 0, or -1 when memory ran out (the buffer is then
 * unchanged). A zero-initialised struct is a valid empty buffer. */
#ifndef EF_BUF_H
#define EF_BUF_H

#include <stddef.h>

struct ef_buf {
    char *p;      /* NULL until the first allocation */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
    int secret;   /* non-zero: growing and freeing overwrite the old bytes */
};

void ef_buf_init(struct ef_buf *b);
/* ef_buf_init, and marks the buffer as holding secrets. */
void ef_buf_init_secret(struct ef_buf *b);
/* Frees the allocation (overwriting it first for a secret buffer). */
void ef_buf_clean_up(struct ef_buf *b);
/* Empties the buffer, keeping its allocation. */
void ef_buf_reset(struct ef_buf *b);
/* Makes room for n more bytes (plus the NUL). */
int ef_buf_reserve(struct ef_buf *b, size_t n);
int ef_buf_append(struct ef_buf *b, const void *p, size_t n);
int ef_buf_append_str(struct ef_buf *b, const char *s);
int ef_buf_putc(struct ef_buf *b, char c);

#endif
