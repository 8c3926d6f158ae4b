/* Pure-C JSON helpers (no lua.h): UTF-8 checking, number formatting, and a
 * small cJSON-based field lookup for wire bodies (AWS error responses). */
#ifndef EF_JSON_H
#define EF_JSON_H

#include <stddef.h>

#define EF_JSON_OK 0
#define EF_JSON_EPARSE (-1)     /* body is not JSON */
#define EF_JSON_ENOTOBJECT (-2) /* body is JSON but not an object */
#define EF_JSON_ENOKEY (-3)     /* no such key */
#define EF_JSON_ENOTSTRING (-4) /* the key's value is not a string */
#define EF_JSON_ETRUNC (-5)     /* the value did not fit: out holds a truncated copy */

/* Room ef_json_format_double / ef_json_format_integer need. */
#define EF_JSON_NUMBUF 32

/* Length (2..4) of the well-formed UTF-8 sequence starting at p, where
 * p < end and *p >= 0x80; 0 if it is not well formed (RFC 3629: no overlong
 * forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF, not cut short
 * by end).  Inline: the decoder calls it once per non-ASCII character. */
static inline size_t ef_json_utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned c = p[0];
    if (c < 0xC2)
        return 0; /* ASCII is not a sequence; 0x80..0xC1 never start one */
    if (c < 0xE0)
        return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Offset of the first byte of s[0..n) that is not well-formed UTF-8, or n. */
size_t ef_json_utf8_check(const char *s, size_t n);

/* Writes the shortest decimal text (at most 17 significant digits) that reads
 * back as exactly d, always with '.' as the decimal point; an integral value
 * keeps a fraction ("2.0", "-0.0") unless it is written with an exponent
 * ("1e+300").  buf has EF_JSON_NUMBUF bytes.  Returns the length, or -1 when
 * d is NaN or infinite (JSON cannot hold them). */
int ef_json_format_double(double d, char *buf);

/* Writes v in decimal (the text LUA_INTEGER_FMT gives) into buf
 * (EF_JSON_NUMBUF bytes); returns the length. */
size_t ef_json_format_integer(long long v, char *buf);

/* Parses body[0..len) with cJSON and copies the string member `key`
 * (case-sensitive, top level) into out (NUL-terminated, at most out_size - 1
 * bytes).  *out_len (may be NULL) gets the value's full length.  Returns
 * EF_JSON_OK or a negative EF_JSON_E* code; used to pull "__type", "message"
 * or "code" out of an AWS error response. */
/* Writes the JSON escape of c (a quote, a backslash or a control character: one that may not
 * stand in a JSON string as it is) at o, at most 6 bytes; returns the position after it. */
char *ef_json_put_escape(char *o, unsigned char c);

int ef_json_get_string(const char *body, size_t len, const char *key, char *out,
                       size_t out_size, size_t *out_len);

#endif
