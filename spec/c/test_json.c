/* C unit tests of src/ef_json.c: UTF-8 checks, number formatting, cJSON lookups. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_json.h"
#include "ef_test.h"

/* The definition ef_json_format_double must match: the shortest of %.15g,
 * %.16g, %.17g that reads back exactly, plus ".0" when it has neither a '.'
 * nor an exponent. */
static void s_reference(double d, char *buf)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, EF_JSON_NUMBUF, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strchr(buf, '.') && !strchr(buf, 'e'))
        memcpy(buf + n, ".0", 3);
}

static const double s_pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11};

static uint64_t s_seed = 88172645463325252ULL;
static uint64_t s_next(void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return s_seed;
}

static void test_format_double_fixed(void)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {2.0, "2.0"},        {-0.0, "-0.0"},       {0.0, "0.0"},
        {0.1, "0.1"},        {-2.5, "-2.5"},       {1e300, "1e+300"},
        {1e15, "1e+15"},     {1e-7, "1e-07"},      {0.0001, "0.0001"},
        {123456789.0, "123456789.0"},              {0.30000000000000004, "0.30000000000000004"},
        {312.5625, "312.5625"}, {-0.00125, "-0.00125"}, {9007199254740992.0, "9007199254740992.0"},
        {1.0 / 3, "0.3333333333333333"},           {5e-324, "4.94065645841247e-324"},
    };
    char buf[EF_JSON_NUMBUF];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = ef_json_format_double(cases[i].d, buf);
        EF_CHECK(n == (int)strlen(cases[i].text));
        if (strcmp(buf, cases[i].text) != 0)
            fprintf(stderr, "format %.17g: got %s, want %s\n", cases[i].d, buf, cases[i].text);
        EF_CHECK_STR(buf, cases[i].text);
    }
    EF_CHECK(ef_json_format_double(NAN, buf) == -1);
    EF_CHECK(ef_json_format_double(INFINITY, buf) == -1);
    EF_CHECK(ef_json_format_double(-INFINITY, buf) == -1);
}

/* The fast paths must give exactly the reference text, for short decimals,
 * integral values and arbitrary bit patterns alike. */
static void test_format_double_matches_reference(void)
{
    char got[EF_JSON_NUMBUF], want[EF_JSON_NUMBUF];
    int bad = 0;
    for (int i = 0; i < 300000 && bad < 5; i++) {
        double d;
        uint64_t r = s_next();
        switch (i % 4) {
        case 0: { /* m / 10^k: the shape of prices, ratios, sizes */
            double p = s_pow10[r % 12];
            d = (double)((int64_t)(s_next() % 100000000000ULL) - 50000000000LL) / p;
            break;
        }
        case 1: /* integral */
            d = (double)((int64_t)(r >> (r % 60)) * ((r & 1) ? 1 : -1));
            break;
        case 2: /* small magnitudes */
            d = (double)(r % 1000000) / s_pow10[s_next() % 9];
            break;
        default: /* any bit pattern */
            memcpy(&d, &r, sizeof d);
            if (!isfinite(d))
                continue;
        }
        if (ef_json_format_double(d, got) < 0) {
            bad++;
            continue;
        }
        s_reference(d, want);
        if (strcmp(got, want) != 0 || strtod(got, NULL) != d) {
            fprintf(stderr, "format %.17g: got %s, want %s\n", d, got, want);
            bad++;
        }
    }
    EF_CHECK(bad == 0);
}

static void test_format_integer(void)
{
    static const long long values[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    char got[EF_JSON_NUMBUF], want[EF_JSON_NUMBUF];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        size_t n = ef_json_format_integer(values[i], got);
        snprintf(want, sizeof want, "%lld", values[i]);
        EF_CHECK(n == strlen(want));
        EF_CHECK_STR(got, want);
    }
}

static void test_utf8_check(void)
{
    static const struct {
        const char *s;
        size_t bad_at; /* (size_t)-1: valid */
    } cases[] = {
        {"", (size_t)-1},
        {"plain ascii", (size_t)-1},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", (size_t)-1},
        {"\xef\xbf\xbf", (size_t)-1},
        {"a\x80", 1},             /* lone continuation byte */
        {"\xc0\xaf", 0},          /* overlong '/' */
        {"\xc1\xbf", 0},          /* overlong */
        {"\xe0\x80\xaf", 0},      /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", 0},  /* overlong, 4 bytes */
        {"ab\xed\xa0\x80", 2},    /* encoded surrogate U+D800 */
        {"\xed\xbf\xbf", 0},      /* encoded surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 0},  /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0},  /* never a lead byte */
        {"\xff", 0},
        {"abc\xe2\x82", 3},       /* cut short */
        {"\xc3(", 0},             /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        size_t want = cases[i].bad_at == (size_t)-1 ? n : cases[i].bad_at;
        size_t got = ef_json_utf8_check(cases[i].s, n);
        if (got != want)
            fprintf(stderr, "utf8 case %zu: got %zu, want %zu\n", i, got, want);
        EF_CHECK(got == want);
    }
    /* An embedded NUL is a valid (ASCII) byte. */
    EF_CHECK(ef_json_utf8_check("a\0b", 3) == 3);
}

static void test_get_string(void)
{
    static const char body[] =
        "{\"__type\":\"com.amazon.coral#ValidationException\",\"message\":\"Bad \\\"id\\\"\","
        "\"Message\":\"upper\",\"code\":42,\"nested\":{\"message\":\"inner\"}}";
    char out[64];
    size_t len = 99;
    EF_CHECK(ef_json_get_string(body, strlen(body), "__type", out, sizeof out, &len) == EF_JSON_OK);
    EF_CHECK_STR(out, "com.amazon.coral#ValidationException");
    EF_CHECK(len == strlen("com.amazon.coral#ValidationException"));
    EF_CHECK(ef_json_get_string(body, strlen(body), "message", out, sizeof out, &len) == EF_JSON_OK);
    EF_CHECK_STR(out, "Bad \"id\"");
    /* case-sensitive: "Message" is its own key */
    EF_CHECK(ef_json_get_string(body, strlen(body), "Message", out, sizeof out, NULL) == EF_JSON_OK);
    EF_CHECK_STR(out, "upper");
    EF_CHECK(ef_json_get_string(body, strlen(body), "MESSAGE", out, sizeof out, NULL) == EF_JSON_ENOKEY);
    EF_CHECK_STR(out, "");
    EF_CHECK(ef_json_get_string(body, strlen(body), "code", out, sizeof out, NULL) == EF_JSON_ENOTSTRING);
    EF_CHECK(ef_json_get_string(body, strlen(body), "nested", out, sizeof out, NULL) == EF_JSON_ENOTSTRING);

    char small[4];
    EF_CHECK(ef_json_get_string(body, strlen(body), "__type", small, sizeof small, &len) == EF_JSON_ETRUNC);
    EF_CHECK_STR(small, "com");
    EF_CHECK(len == strlen("com.amazon.coral#ValidationException"));

    EF_CHECK(ef_json_get_string("[1,2]", 5, "message", out, sizeof out, NULL) == EF_JSON_ENOTOBJECT);
    EF_CHECK(ef_json_get_string("{\"message\":", 11, "message", out, sizeof out, NULL) == EF_JSON_EPARSE);
    EF_CHECK(ef_json_get_string("<html>", 6, "message", out, sizeof out, NULL) == EF_JSON_EPARSE);
    EF_CHECK(ef_json_get_string("", 0, "message", out, sizeof out, NULL) == EF_JSON_EPARSE);
    /* The length bounds the parse: the text after it is not read. */
    static const char cut[] = "{\"message\":\"x\"}garbage";
    EF_CHECK(ef_json_get_string(cut, 15, "message", out, sizeof out, NULL) == EF_JSON_OK);
    EF_CHECK_STR(out, "x");
}

int main(void)
{
    EF_RUN(test_format_double_fixed);
    EF_RUN(test_format_double_matches_reference);
    EF_RUN(test_format_integer);
    EF_RUN(test_utf8_check);
    EF_RUN(test_get_string);
    return EF_DONE();
}
