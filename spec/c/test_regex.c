/* C unit tests of the regex core (src/ef_regex.c) and the digests (src/ef_digest.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_digest.h"
#include "ef_regex.h"
#include "ef_test.h"

/* Compiles pat, runs it over s from byte 0; returns 1/0 and fills caps. */
static int s_find(const char *pat, unsigned flags, const char *s, ptrdiff_t *caps)
{
    struct ef_regex_err err;
    struct ef_regex *re = ef_regex_compile(pat, strlen(pat), flags, &err);
    if (!re) {
        fprintf(stderr, "compile %s: %s at %zu\n", pat, err.message, err.position);
        return -2;
    }
    int r = ef_regex_exec(re, s, strlen(s), 0, 0, caps);
    ef_regex_free(re);
    return r;
}

static int s_full(const char *pat, const char *s)
{
    struct ef_regex_err err;
    struct ef_regex *re = ef_regex_compile(pat, strlen(pat), 0, &err);
    if (!re)
        return -2;
    int r = ef_regex_exec(re, s, strlen(s), 0, 1, NULL);
    ef_regex_free(re);
    return r;
}

static size_t s_error_at(const char *pat, const char *want)
{
    struct ef_regex_err err;
    struct ef_regex *re = ef_regex_compile(pat, strlen(pat), 0, &err);
    if (re) {
        ef_regex_free(re);
        return 0;
    }
    if (strstr(err.message, want) == NULL) {
        fprintf(stderr, "%s: got \"%s\", wanted \"%s\"\n", pat, err.message, want);
        return 0;
    }
    return err.position;
}

static void test_leftmost_first_captures(void)
{
    ptrdiff_t c[8];
    EF_CHECK(s_find("(a|ab)(c|bcd)(d*)", 0, "abcd", c) == 1);
    EF_CHECK(c[0] == 0 && c[1] == 4);
    EF_CHECK(c[2] == 0 && c[3] == 1);  /* "a" wins over "ab": leftmost-first, not longest */
    EF_CHECK(c[4] == 1 && c[5] == 4);
    EF_CHECK(c[6] == 4 && c[7] == 4);
    EF_CHECK(s_find("x(y)?", 0, "ax", c) == 1);
    EF_CHECK(c[0] == 1 && c[1] == 2 && c[2] == -1 && c[3] == -1);
    EF_CHECK(s_find("b", 0, "aaa", c) == 0);
}

static void test_quantifier_groups_reset(void)
{
    ptrdiff_t c[4];
    /* ECMAScript: a group inside a repetition forgets earlier iterations */
    EF_CHECK(s_find("(?:(a)|b)+", 0, "ab", c) == 1);
    EF_CHECK(c[0] == 0 && c[1] == 2 && c[2] == -1);
    EF_CHECK(s_find("(a*)*", 0, "b", c) == 1);
    EF_CHECK(c[1] == 0 && c[2] == -1);
}

static void test_flags(void)
{
    EF_CHECK(s_find("ABC", EF_REGEX_ICASE, "xabc", NULL) == 1);
    EF_CHECK(s_find("^b", 0, "a\nb", NULL) == 0);
    EF_CHECK(s_find("^b", EF_REGEX_MULTILINE, "a\nb", NULL) == 1);
    EF_CHECK(s_find("a.b", 0, "a\nb", NULL) == 0);
    EF_CHECK(s_find("a.b", EF_REGEX_DOTALL, "a\nb", NULL) == 1);
    EF_CHECK(s_find("\xc3\xa9", EF_REGEX_ICASE, "\xc3\x89", NULL) == 1); /* é / É */
}

static void test_full_match_tries_all(void)
{
    EF_CHECK(s_full("a|ab", "ab") == 1);
    EF_CHECK(s_full("a|ab", "abc") == 0);
    EF_CHECK(s_full("[a-z]+", "") == 0);
    EF_CHECK(s_full("^((?!.*-s3alias)(?!xn--.*)[a-z0-9][-a-z0-9.]*)?[a-z0-9]$", "my.bucket") == 1);
    EF_CHECK(s_full("^((?!.*-s3alias)(?!xn--.*)[a-z0-9][-a-z0-9.]*)?[a-z0-9]$", "xn--bucket") == 0);
}

static void test_errors(void)
{
    EF_CHECK(s_error_at("ab(cd", "missing )") == 3);
    EF_CHECK(s_error_at("abc)", "unmatched )") == 4);
    EF_CHECK(s_error_at("a**", "nothing to repeat") == 3);
    EF_CHECK(s_error_at("(a)\\1", "backreferences") == 4);
    EF_CHECK(s_error_at("(?<=a)", "lookbehind") == 1);
    EF_CHECK(s_error_at("[b-a]", "range out of order") == 2);
    EF_CHECK(s_error_at("(a{100}){200}", "too large") == 9);
    EF_CHECK(s_error_at("[abc", "missing ]") == 1);
    EF_CHECK(s_error_at("\\p{Bogus}", "unknown character property") == 1);
}

static void test_linear_time(void)
{
    size_t n = 100000;
    char *s = malloc(n + 2);
    EF_CHECK(s != NULL);
    if (!s)
        return;
    memset(s, 'a', n);
    s[n] = '\0';
    /* exponential for a backtracking engine; must simply finish here */
    EF_CHECK(s_find("(a|aa)*b", 0, s, NULL) == 0);
    EF_CHECK(s_find("^(a+)+$", 0, s, NULL) == 1);
    s[n] = '!';
    s[n + 1] = '\0';
    EF_CHECK(s_find("^(a+)+$", 0, s, NULL) == 0);
    free(s);
}

static void test_utf8_and_latin1(void)
{
    ptrdiff_t c[2];
    EF_CHECK(s_find("\\u00e9", 0, "caf\xc3\xa9", c) == 1 && c[0] == 3 && c[1] == 5);
    EF_CHECK(s_find("\\xff", 0, "a\xff", c) == 1 && c[0] == 1 && c[1] == 2); /* invalid byte = Latin-1 */
    EF_CHECK(s_full("..", "\xf0\x9f\x98\x80z") == 1);                        /* U+1F600 is one character */
    EF_CHECK(s_full("\\p{L}+", "\xe4\xb8\xad\xce\xa9") == 1);
}

static void test_search_skips_ahead_safely(void)
{
    ptrdiff_t c[2];
    /* the first-byte skip must land only where a character starts */
    EF_CHECK(s_find("\\xa9", 0, "\xc3\xa9 \xa9", c) == 1 && c[0] == 3 && c[1] == 4);
    EF_CHECK(s_find("[\\x80-\\xff]", 0, "ab\xe9", c) == 1 && c[0] == 2);
    EF_CHECK(s_find("\xc3\xa9t\xc3\xa9", 0, "ete \xc3\xa9t\xc3\xa9", c) == 1 && c[0] == 4 && c[1] == 9);
    EF_CHECK(s_find("B+", EF_REGEX_ICASE, "aaabbB", c) == 1 && c[0] == 3 && c[1] == 6);
    EF_CHECK(s_find("(?=b)\\w", 0, "aab", c) == 1 && c[0] == 2);
    EF_CHECK(s_find("x*y", 0, "aaaay", c) == 1 && c[0] == 4);
    EF_CHECK(s_find("needle", 0, "haystack without it", c) == 0);
}

static void test_empty_optional_iteration(void)
{
    ptrdiff_t c[4];
    /* ECMAScript: an optional iteration that matches nothing is rejected, so the
     * iteration's other alternative is used */
    EF_CHECK(s_find("(?:|a)?", 0, "a", c) == 1 && c[0] == 0 && c[1] == 1);
    EF_CHECK(s_find("(a?\?)?b", 0, "ab", c) == 1 && c[2] == 0 && c[3] == 1);
}

/* Lookahead answered by forward runs and by the backward tables must agree. */
static void test_lookahead_tables_agree(void)
{
    static const char *const patterns[] = {
        "(?=a)\\w", "\\w(?!b)", "(?=.*x).", "(?!.*x)a+", "a(?=(a*))b?", "(?=(?:ab)+$)\\w+",
        "\\b(?=\\w{3}\\b)\\w+", "(?=(?=.*a)(?!.*c).)..", "(?:(?!ab).)+", "(?=\\xe9)", "^(?:(?!-s3).)*$",
        "(?=a|$)", "x*(?!x)", "(?=[^a]*$)",
    };
    char subject[600];
    size_t n = 0;
    const char *unit[] = { "ab", "a ", "abc", "x", "\xc3\xa9", "ba", "-s3" };
    for (unsigned k = 0; n + 4 < sizeof subject; k = k * 7 + 3) {
        const char *u = unit[k % 7];
        size_t ul = strlen(u);
        if (n + ul >= sizeof subject)
            break;
        memcpy(subject + n, u, ul);
        n += ul;
    }
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        struct ef_regex_err err;
        const char *p = patterns[i];
        struct ef_regex *fwd = ef_regex_compile(p, strlen(p), 0, &err);
        struct ef_regex *tab = ef_regex_compile(p, strlen(p), EF_REGEX_LOOK_TABLES, &err);
        EF_CHECK(fwd != NULL && tab != NULL);
        if (!fwd || !tab) {
            ef_regex_free(fwd);
            ef_regex_free(tab);
            continue;
        }
        ptrdiff_t a[8], b[8];
        for (size_t start = 0; start <= n; start += 37) {
            int ra = ef_regex_exec(fwd, subject, n, start, 0, a);
            int rb = ef_regex_exec(tab, subject, n, start, 0, b);
            EF_CHECK(ra == rb);
            if (ra == 1 && rb == 1) {
                for (int g = 0; g < 2 * (ef_regex_groups(fwd) + 1); g++)
                    EF_CHECK(a[g] == b[g]);
            }
            EF_CHECK(ef_regex_exec(fwd, subject, n, start, 1, NULL) ==
                     ef_regex_exec(tab, subject, n, start, 1, NULL));
        }
        ef_regex_free(fwd);
        ef_regex_free(tab);
    }
}

static void test_start_offset(void)
{
    struct ef_regex_err err;
    struct ef_regex *re = ef_regex_compile("\\bb", 3, 0, &err);
    EF_CHECK(re != NULL);
    if (!re)
        return;
    ptrdiff_t c[2];
    EF_CHECK(ef_regex_exec(re, "ab b", 4, 1, 0, c) == 1 && c[0] == 3); /* "ab" is one word */
    EF_CHECK(ef_regex_exec(re, "ab b", 4, 5, 0, c) == 0);              /* past the end */
    EF_CHECK(ef_regex_groups(re) == 0);
    ef_regex_free(re);
}

static void test_digest(void)
{
    unsigned char out[EF_DIGEST_MAX];
    EF_CHECK(ef_digest("sha-256", "abc", 3, out) == 32);
    EF_CHECK(out[0] == 0xba && out[31] == 0xad);
    EF_CHECK(ef_digest("MD5", "", 0, out) == 16 && out[0] == 0xd4);
    EF_CHECK(ef_digest("SHA-512", "abc", 3, out) == 64 && out[63] == 0x9f);
    EF_CHECK(ef_digest("SHA256", "abc", 3, out) == EF_DIGEST_UNKNOWN);
}

int main(void)
{
    EF_RUN(test_leftmost_first_captures);
    EF_RUN(test_quantifier_groups_reset);
    EF_RUN(test_flags);
    EF_RUN(test_full_match_tries_all);
    EF_RUN(test_errors);
    EF_RUN(test_linear_time);
    EF_RUN(test_utf8_and_latin1);
    EF_RUN(test_start_offset);
    EF_RUN(test_search_skips_ahead_safely);
    EF_RUN(test_empty_optional_iteration);
    EF_RUN(test_lookahead_tables_agree);
    EF_RUN(test_digest);
    return EF_DONE();
}
