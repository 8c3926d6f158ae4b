/* A linear-time regular-expression engine (pure C, no lua.h).
 *
 * Syntax: ECMAScript (with the Annex B leniencies of the non-unicode mode)
 * minus backreferences and lookbehind, which are refused; plus Java's
 * \p{Alnum}-style POSIX classes and the Unicode general categories \p{L},
 * \p{Lu}, \p{Ll}, \p{M}, \p{N}, \p{Nd}, \p{P}, \p{S}, \p{Z}, \p{Zs} (and \P{..}).
 *
 * Matching: a Pike VM over Unicode code points, leftmost-first (ECMAScript
 * priorities), O(program * subject). Lookahead (?= ) (?! ) is supported and
 * stays linear: a few forward runs answer it first; past a budget of about
 * twice the subject's length, where it holds is worked out for every position
 * at once, by one backward pass with its body compiled backwards. (A positive
 * lookahead with capture groups also runs forward where a match needs them.) Subjects are
 * UTF-8; a byte that does not start a valid UTF-8 sequence counts as one
 * character, its Latin-1 code point.
 *
 *   struct ef_regex_err err;
 *   struct ef_regex *re = ef_regex_compile(pat, len, EF_REGEX_ICASE, &err);
 *   if (!re) ... err.message, err.position (1-based byte offset in pat) ...
 *   ptrdiff_t *caps = malloc(2 * (ef_regex_groups(re) + 1) * sizeof *caps);
 *   int r = ef_regex_exec(re, s, n, 0, 0, caps);  1 match, 0 none, -1 no memory
 *   ef_regex_free(re);
 */
#ifndef EF_REGEX_H
#define EF_REGEX_H

#include <stddef.h>

#define EF_REGEX_ICASE     1u /* "i": case-insensitive as ECMAScript's /i (simple upper case, BMP) */
#define EF_REGEX_MULTILINE 2u /* "m": ^ and $ also match at line breaks */
#define EF_REGEX_DOTALL    4u /* "s": . also matches line breaks */
#define EF_REGEX_JAVA      8u /* "j": java.util.regex's meaning where it differs from ECMAScript:
                               * \s and \S are ASCII ([ \t\n\x0B\f\r]), . also stops at U+0085 */

/* For tests: lookaheads always use the backward tables (no forward runs first). */
#define EF_REGEX_LOOK_TABLES 0x100u

/* Programs larger than this many instructions are refused (counted repetition). */
#define EF_REGEX_MAX_PROGRAM 10000

struct ef_regex;

struct ef_regex_err {
    char message[128];
    size_t position; /* 1-based byte offset in the pattern; 0 when not about one place */
};

/* NULL on a bad or unsupported pattern (err filled in; "out of memory" when
 * allocation failed). */
struct ef_regex *ef_regex_compile(const char *pattern, size_t len, unsigned flags,
                                  struct ef_regex_err *err);
void ef_regex_free(struct ef_regex *re);

/* Number of capture groups (named groups count). */
int ef_regex_groups(const struct ef_regex *re);

/* Searches s[0..n) for the leftmost match starting at or after byte `start`.
 * full != 0: the match must start at `start` and end at n (a whole-string
 * match; all alternatives are tried). caps (may be NULL) receives
 * 2 * (groups + 1) byte offsets: caps[0], caps[1] the match [start, end),
 * then one pair per group; -1 for a group that did not participate.
 * Returns 1 on a match, 0 when there is none, -1 when memory ran out. */
int ef_regex_exec(const struct ef_regex *re, const char *s, size_t n, size_t start, int full,
                  ptrdiff_t *caps);

#endif
