/* C unit tests of the SigV4 core (src/ef_sigv4.c, src/ef_buf.c). */
#include <stdio.h>
#include <string.h>

#include "ef_buf.h"
#include "ef_sigv4.h"
#include "ef_test.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T2015 1440938160 /* 2015-08-30T12:36:00Z */

#define STR(s) s, sizeof(s) - 1

static struct ef_sigv4_request s_base(void)
{
    struct ef_sigv4_request r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.method_len = 3;
    r.url = "https://example.amazonaws.com/";
    r.url_len = strlen(r.url);
    r.region = "us-east-1";
    r.region_len = 9;
    r.service = "service";
    r.service_len = 7;
    r.access_key_id = AKID;
    r.access_key_id_len = strlen(AKID);
    r.secret_access_key = SECRET;
    r.secret_access_key_len = strlen(SECRET);
    r.time_s = T2015;
    return r;
}

/* AWS suite case get-header-key-duplicate (aws-c-auth v4 suite). */
static void test_suite_get_header_key_duplicate(void)
{
    struct ef_sigv4_signer *s = ef_sigv4_signer_new();
    EF_CHECK(s != NULL);
    if (!s)
        return;
    struct ef_sigv4_header h[] = {
        { STR("Host"), STR("example.amazonaws.com") },
        { STR("My-Header1"), STR("value2") },
        { STR("My-Header1"), STR("value2") },
        { STR("My-Header1"), STR("value1") },
    };
    struct ef_sigv4_request r = s_base();
    r.headers = h;
    r.n_headers = 4;
    struct ef_sigv4_result res;
    struct ef_sigv4_err err;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_OK);
    EF_CHECK_STR(res.canonical_request,
                 "GET\n/\n\n"
                 "host:example.amazonaws.com\n"
                 "my-header1:value2,value2,value1\n"
                 "x-amz-date:20150830T123600Z\n\n"
                 "host;my-header1;x-amz-date\n" EF_SIGV4_EMPTY_SHA256);
    EF_CHECK_STR(res.string_to_sign,
                 "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                 "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c");
    /* the suite's files: */
    EF_CHECK_STR(res.signature,
                 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
    EF_CHECK_STR(res.authorization,
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                 "aws4_request, SignedHeaders=host;my-header1;x-amz-date, "
                 "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
    EF_CHECK(res.n_added == 2);
    EF_CHECK_STR(res.added[0].name, "X-Amz-Date");
    EF_CHECK_STR(res.added[1].name, "Authorization");
    ef_sigv4_signer_free(s);
}

/* AWS suite case post-sts-header-before: session token signed. */
static void test_suite_session_token(void)
{
    struct ef_sigv4_signer *s = ef_sigv4_signer_new();
    EF_CHECK(s != NULL);
    if (!s)
        return;
    static const char token[] =
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRX"
        "mxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburE"
        "Dy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL"
        "64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
    struct ef_sigv4_header h[] = { { STR("Host"), STR("example.amazonaws.com") } };
    struct ef_sigv4_request r = s_base();
    r.method = "POST";
    r.method_len = 4;
    r.headers = h;
    r.n_headers = 1;
    r.session_token = token;
    r.session_token_len = strlen(token);
    struct ef_sigv4_result res;
    struct ef_sigv4_err err;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_OK);
    EF_CHECK_STR(res.signature,
                 "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
    EF_CHECK(res.n_added == 3);
    EF_CHECK_STR(res.added[1].name, "X-Amz-Security-Token");

    /* omitted token: not signed, added last */
    r.flags = EF_SIGV4_OMIT_SESSION_TOKEN;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_OK);
    EF_CHECK_STR(res.signature,
                 "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    EF_CHECK(strstr(res.canonical_request, "x-amz-security-token") == NULL);
    EF_CHECK(res.n_added == 3);
    EF_CHECK_STR(res.added[2].name, "X-Amz-Security-Token");

    struct ef_sigv4_stats st;
    ef_sigv4_signer_stats(s, &st);
    EF_CHECK(st.key_misses == 1 && st.key_hits == 1);
    ef_sigv4_signer_free(s);
}

static void test_path_normalisation(void)
{
    static const struct {
        const char *in;
        unsigned flags;
        const char *want;
    } cases[] = {
        { "", 0, "/" },
        { "/", 0, "/" },
        { "//", 0, "/" },
        { "//", EF_SIGV4_NO_NORMALIZE_PATH, "//" },
        { "//example//", 0, "/example/" },
        { "/./", 0, "/" },
        { "/./", EF_SIGV4_NO_NORMALIZE_PATH, "/./" },
        { "/./example", 0, "/example" },
        { "/example/..", 0, "/" },
        { "/example1/example2/../..", 0, "/" },
        { "/a/b/../c/./d//", 0, "/a/c/d/" },
        { "/../a", 0, "/a" },
        { "/a/.", 0, "/a" },
        { "/example space/", 0, "/example%20space/" },
        { "/-._~0-9A-Za-z", 0, "/-._~0-9A-Za-z" },
        { "/\xe1\x88\xb4", 0, "/%E1%88%B4" },
        { "/example/$delete", 0, "/example/%24delete" },
        { "/a%3Ab", 0, "/a%253Ab" },
        { "/a%3Ab", EF_SIGV4_NO_DOUBLE_ENCODE, "/a%3Ab" },
        { "/a%2fb%7e", EF_SIGV4_NO_DOUBLE_ENCODE, "/a%2Fb~" },
        { "/%zz%", EF_SIGV4_NO_DOUBLE_ENCODE, "/%25zz%25" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ef_buf b;
        ef_buf_init(&b);
        EF_CHECK(ef_sigv4_canonical_path(cases[i].in, strlen(cases[i].in), cases[i].flags, &b) ==
                 EF_SIGV4_OK);
        if (!b.p || strcmp(b.p, cases[i].want) != 0) {
            fprintf(stderr, "path %s: got %s, want %s\n", cases[i].in, b.p ? b.p : "(null)",
                    cases[i].want);
            EF_CHECK(0);
        }
        ef_buf_clean_up(&b);
    }
}

static void test_query_sorting(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "", "" },
        { "Param2=value2&Param1=value1", "Param1=value1&Param2=value2" },
        { "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
          "%E1%88%B4=Value1&Param=Value2&Param-3=Value3" },
        { "Param1=value2&Param1=Value1", "Param1=Value1&Param1=value2" },
        { "a-b=1&a=z", "a=z&a-b=1" }, /* by key, not by "k=v" */
        { "k=b&k=a&k=A", "k=A&k=a&k=b" },
        { "\xe1\x88\xb4=bar", "%E1%88%B4=bar" },
        { "k&=v&&x=a b+c", "=v&k=&x=a%20b%2Bc" },
        { "t=2015-08-01T00%3A00%3A00Z&n=a%20b%2F%C3%A7", "n=a%20b%2F%C3%A7&t=2015-08-01T00%3A00%3A00Z" },
        { "s=%7e%2f%zz", "s=~%2F%25zz" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ef_buf b;
        ef_buf_init(&b);
        EF_CHECK(ef_sigv4_canonical_query(cases[i].in, strlen(cases[i].in), &b) == EF_SIGV4_OK);
        const char *got = b.p ? b.p : "";
        if (strcmp(got, cases[i].want) != 0) {
            fprintf(stderr, "query %s: got %s, want %s\n", cases[i].in, got, cases[i].want);
            EF_CHECK(0);
        }
        ef_buf_clean_up(&b);
    }
}

static void test_amz_date(void)
{
    char d[17];
    EF_CHECK(ef_sigv4_amz_date(T2015, d) == 0);
    EF_CHECK_STR(d, "20150830T123600Z");
    EF_CHECK(ef_sigv4_amz_date(0, d) == 0);
    EF_CHECK_STR(d, "19700101T000000Z");
    EF_CHECK(ef_sigv4_amz_date(951868799, d) == 0);
    EF_CHECK_STR(d, "20000229T235959Z");
    EF_CHECK(ef_sigv4_amz_date(253402300799LL, d) == 0);
    EF_CHECK_STR(d, "99991231T235959Z");
    EF_CHECK(ef_sigv4_amz_date(-1, d) != 0);
    EF_CHECK(ef_sigv4_amz_date(253402300800LL, d) != 0);
}

static void test_bad_input_keeps_secrets_out(void)
{
    struct ef_sigv4_signer *s = ef_sigv4_signer_new();
    EF_CHECK(s != NULL);
    if (!s)
        return;
    struct ef_sigv4_result res;
    struct ef_sigv4_err err;
    struct ef_sigv4_request r = s_base();
    r.session_token = "tok\r\nen";
    r.session_token_len = 7;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_EINVAL);
    EF_CHECK_STR(err.message, "credentials.session_token: invalid character at byte 4");

    r = s_base();
    r.secret_access_key_len = 0;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_EINVAL);
    EF_CHECK_STR(err.message, "credentials.secret_access_key: missing or empty");

    r = s_base();
    struct ef_sigv4_header h[] = { { STR("X-Secret"), STR(SECRET "\nX: y") } };
    r.headers = h;
    r.n_headers = 1;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_EINVAL);
    EF_CHECK(strstr(err.message, "headers[1] (X-Secret): control character") == err.message);
    EF_CHECK(strstr(err.message, "EXAMPLEKEY") == NULL);

    r = s_base();
    r.method = "FETCH";
    r.method_len = 5;
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_EINVAL);
    r = s_base();
    r.url = "example.com/";
    r.url_len = strlen(r.url);
    EF_CHECK(ef_sigv4_sign(s, &r, &res, &err) == EF_SIGV4_EINVAL);
    EF_CHECK_STR(err.message, "url: not an absolute http:// or https:// URL");
    ef_sigv4_signer_free(s);
}

/* Deterministic pseudo-random requests (interesting bytes in URL, headers,
 * query): every call returns OK or EINVAL, never crashes (run under ASan). */
static unsigned long s_rng = 12345;

static unsigned s_rand(unsigned n)
{
    s_rng = s_rng * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)((s_rng >> 33) % n);
}

static void s_random_text(char *out, size_t max, size_t *len, int clean)
{
    static const char nasty[] = "aZ09-_.~/%%2fF?#&=:@[]  \t\r\n+$\x7f\x01\xe1\x88\xb4..//";
    static const char tame[] = "aZ09-_.~/%2fF?#&=:@ +$\xe1\x88\xb4..//";
    const char *alphabet = clean ? tame : nasty;
    size_t size = clean ? sizeof tame - 1 : sizeof nasty - 1;
    size_t n = s_rand((unsigned)max);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[s_rand((unsigned)size)];
    *len = n;
}

static void test_random_inputs_never_crash(void)
{
    struct ef_sigv4_signer *s = ef_sigv4_signer_new();
    EF_CHECK(s != NULL);
    if (!s)
        return;
    int ok = 0, bad = 0;
    for (int round = 0; round < 3000; round++) {
        char url[160], tail[120], hname[16], hvalue[40];
        size_t tail_len, hname_len, hvalue_len;
        int clean = round % 2;
        s_random_text(tail, sizeof tail, &tail_len, clean);
        static const char *const prefixes[] = { "https://h.example.com", "http://h:8080",
                                                "https://[::1]", "https://u@h", "h" };
        const char *pre = prefixes[s_rand(5)];
        size_t pre_len = strlen(pre);
        memcpy(url, pre, pre_len);
        memcpy(url + pre_len, tail, tail_len);
        s_random_text(hname, sizeof hname, &hname_len, clean);
        s_random_text(hvalue, sizeof hvalue, &hvalue_len, clean);
        if (clean)
            hname_len = 0; /* a valid name instead */
        struct ef_sigv4_header h[] = { { hname_len ? hname : "X-R", hname_len ? hname_len : 3,
                                         hvalue, hvalue_len },
                                       { "X-A", 3, hvalue, hvalue_len } };
        struct ef_sigv4_request r = s_base();
        r.url = url;
        r.url_len = pre_len + tail_len;
        r.headers = h;
        r.n_headers = 2;
        r.flags = s_rand(32);
        r.body = tail;
        r.body_len = tail_len;
        struct ef_sigv4_result res;
        struct ef_sigv4_err err;
        int rc = ef_sigv4_sign(s, &r, &res, &err);
        EF_CHECK(rc == EF_SIGV4_OK || rc == EF_SIGV4_EINVAL);
        if (rc == EF_SIGV4_OK) {
            ok++;
            EF_CHECK(strlen(res.signature) == 64);
            EF_CHECK(strlen(res.canonical_request) == res.canonical_request_len);
        } else {
            bad++;
            EF_CHECK(err.message[0] != '\0');
        }
    }
    if (!(ok > 100 && bad > 100))
        fprintf(stderr, "random inputs: %d signed, %d rejected\n", ok, bad);
    EF_CHECK(ok > 100 && bad > 100);
    ef_sigv4_signer_free(s);
}

int main(void)
{
    EF_RUN(test_suite_get_header_key_duplicate);
    EF_RUN(test_suite_session_token);
    EF_RUN(test_path_normalisation);
    EF_RUN(test_query_sorting);
    EF_RUN(test_amz_date);
    EF_RUN(test_bad_input_keeps_secrets_out);
    EF_RUN(test_random_inputs_never_crash);
    return EF_DONE();
}
