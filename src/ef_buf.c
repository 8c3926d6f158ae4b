/* A growable byte buffer; see ef_buf.h. */
#include "ef_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void ef_buf_init(struct ef_buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->secret = 0;
}

void ef_buf_init_secret(struct ef_buf *b)
{
    ef_buf_init(b);
    b->secret = 1;
}

void ef_buf_clean_up(struct ef_buf *b)
{
    int secret = b->secret;
    if (b->p && secret)
        OPENSSL_cleanse(b->p, b->cap);
    free(b->p);
    ef_buf_init(b);
    b->secret = secret;
}

void ef_buf_reset(struct ef_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

int ef_buf_reserve(struct ef_buf *b, size_t n)
{
    if (n > SIZE_MAX - 1 - b->len)
        return -1;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p;
    if (b->secret) {
        /* no realloc: it could leave a copy of the old bytes behind */
        p = malloc(cap);
        if (!p)
            return -1;
        if (b->p) {
            memcpy(p, b->p, b->len + 1);
            OPENSSL_cleanse(b->p, b->cap);
            free(b->p);
        }
    } else {
        p = realloc(b->p, cap);
        if (!p)
            return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int ef_buf_append(struct ef_buf *b, const void *p, size_t n)
{
    if (ef_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int ef_buf_append_str(struct ef_buf *b, const char *s)
{
    return ef_buf_append(b, s, strlen(s));
}

int ef_buf_putc(struct ef_buf *b, char c)
{
    if (ef_buf_reserve(b, 1) != 0)
        return -1;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
    return 0;
}
