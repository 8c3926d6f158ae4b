/* Pure-C JSON helpers: UTF-8 checking, number formatting, cJSON lookups. */
#include "ef_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ef_json_utf8_check(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t k = ef_json_utf8_seq(p, end);
        if (k == 0)
            return (size_t)(p - (const unsigned char *)s);
        p += k;
    }
    return n;
}

size_t ef_json_format_integer(long long v, char *buf)
{
    char tmp[24];
    size_t n = 0, len = 0;
    /* Work in unsigned so that LLONG_MIN negates without overflow. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* snprintf/strtod follow LC_NUMERIC; JSON wants '.'.  The only byte %g can
 * produce besides digits, sign and exponent is the locale's decimal point. */
static void s_fix_decimal_point(char *buf, int n)
{
    for (int i = 0; i < n; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == '.'))
            buf[i] = '.';
    }
}

int ef_json_format_double(double d, char *buf)
{
    if (!isfinite(d))
        return -1;
    /* Integral and below 1e15: %.15g would print the integer digits anyway,
     * so write them directly and add ".0" (fast path for counts, sizes). */
    double a = d < 0 ? -d : d;
    /* (No libm calls here: the C unit tests link without -lm.) */
    if (a < 1e15 && (double)(long long)d == d) {
        size_t n;
        if (d == 0 && signbit(d)) {
            memcpy(buf, "-0.0", 5);
            return 4;
        }
        n = ef_json_format_integer((long long)d, buf);
        memcpy(buf + n, ".0", 3);
        return (int)n + 2;
    }
    /* Short decimals (312.5625, 0.1): find the fewest fraction digits k with
     * m / 10^k == d for an integer m below 10^15.  m and 10^k are exact
     * doubles, so the division is correctly rounded like strtod of the text,
     * and with at most 15 digits (DBL_DIG) the text is the one %.15g gives.
     * Restricted to where %g would not use an exponent. */
    if (a >= 1e-4 && a < 1e15) {
        static const double p10[] = {1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                     1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
        for (int k = 1; k <= 15; k++) {
            double x = a * p10[k - 1];
            if (x >= 1e15)
                break;
            double m = (double)(long long)(x + 0.5); /* rounded; below 2^53, exact */
            if (m / p10[k - 1] == a) {
                char digits[24];
                long long mi = (long long)m;
                while (k > 1 && mi % 10 == 0) {
                    mi /= 10;
                    k--;
                }
                size_t nd = ef_json_format_integer(mi, digits), len = 0;
                if (d < 0)
                    buf[len++] = '-';
                if (nd <= (size_t)k) { /* 0.000ddd */
                    buf[len++] = '0';
                    buf[len++] = '.';
                    for (size_t z = nd; z < (size_t)k; z++)
                        buf[len++] = '0';
                    memcpy(buf + len, digits, nd);
                    len += nd;
                } else {
                    memcpy(buf + len, digits, nd - (size_t)k);
                    len += nd - (size_t)k;
                    buf[len++] = '.';
                    memcpy(buf + len, digits + nd - k, (size_t)k);
                    len += (size_t)k;
                }
                buf[len] = '\0';
                return (int)len;
            }
        }
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, EF_JSON_NUMBUF, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    s_fix_decimal_point(buf, n);
    if (!memchr(buf, '.', (size_t)n) && !memchr(buf, 'e', (size_t)n)) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    return n;
}

int ef_json_get_string(const char *body, size_t len, const char *key, char *out,
                       size_t out_size, size_t *out_len)
{
    int rc = EF_JSON_OK;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (out_size)
        out[0] = '\0';
    if (out_len)
        *out_len = 0;
    if (!root)
        return EF_JSON_EPARSE;
    if (!cJSON_IsObject(root)) {
        rc = EF_JSON_ENOTOBJECT;
    } else {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!item) {
            rc = EF_JSON_ENOKEY;
        } else if (!cJSON_IsString(item) || !item->valuestring) {
            rc = EF_JSON_ENOTSTRING;
        } else {
            size_t n = strlen(item->valuestring);
            size_t k = n;
            if (out_len)
                *out_len = n;
            if (out_size == 0 || n >= out_size) {
                rc = EF_JSON_ETRUNC;
                k = out_size ? out_size - 1 : 0;
            }
            if (out_size) {
                memcpy(out, item->valuestring, k);
                out[k] = '\0';
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

char *ef_json_put_escape(char *o, unsigned char c)
{
    static const char hexd[] = "0123456789abcdef";
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = hexd[c >> 4];
        *o++ = hexd[c & 15];
    }
    return o;
}
