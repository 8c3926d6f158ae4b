/* Pure-C tests of the emr-containers core (ef_emr, ef_emr_client): model checks,
 * marshalling, replies, errors, retries; then create -> start -> poll -> complete ->
 * delete and fault cases against the loopback fake (spec/support/fake_emr.py, started
 * here on 127.0.0.1 port 0; skipped with a notice when Python/botocore are missing). */
#include "ef_test.h"
#include "ef_emr.h"
#include "ef_emr_client.h"
#include "ef_emr_sync.h"
#include "ef_regex.h"

#include <math.h>

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static cJSON *parse(const char *text)
{
    cJSON *v = cJSON_Parse(text);
    EF_CHECK(v != NULL);
    return v;
}

static const struct ef_emr_operation *op_named(const char *name)
{
    const struct ef_emr_operation *op = ef_emr_operation_find(name, strlen(name));
    EF_CHECK(op != NULL);
    return op;
}

/* ---- offline --------------------------------------------------------------------- */

static void test_model_lookup(void)
{
    const struct ef_emr_operation *op = op_named("StartJobRun");
    EF_CHECK_STR(op->method, "POST");
    EF_CHECK_STR(op->uri, "/virtualclusters/{virtualClusterId}/jobruns");
    EF_CHECK(ef_emr_operation_find("StartJobRu", 10) == NULL);
    EF_CHECK(ef_emr_operation_find("Nope", 4) == NULL);
    EF_CHECK(ef_emr_operation_find("StartJobRunX", 12) == NULL);
    const struct ef_emr_shape *in = &ef_emr_shapes[op->input];
    const struct ef_emr_member *m = ef_emr_member_find(in, "ClientToken", 11, 1);
    EF_CHECK(m != NULL && m->idempotency_token && m->required);
    m = ef_emr_member_find(in, "virtualClusterId", 16, 0);
    EF_CHECK(m != NULL && m->location == EF_EMR_L_URI);
    EF_CHECK_STR(ef_emr_operations[0].name, "CancelJobRun");   /* sorted */
}

static void test_checks_with_paths(void)
{
    const struct ef_emr_operation *op = op_named("StartJobRun");
    cJSON *p = parse("{\"VirtualClusterId\":\"abc\",\"ClientToken\":\"t\",\"Name\":\"n\","
                     "\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/r\",\"ReleaseLabel\":\"emr-6.2.0\","
                     "\"JobDriver\":{\"SparkSubmitJobDriver\":{\"EntryPointArguments\":[\"a\",7]}},"
                     "\"ConfigurationOverrides\":{\"MonitoringConfiguration\":{\"PersistentAppUI\":\"ON\"}},"
                     "\"Bogus\":1,\"name\":\"x\"}");
    struct ef_emr_problems pr;
    memset(&pr, 0, sizeof pr);
    size_t n = ef_emr_check(op, p, NULL, NULL, &pr);
    EF_CHECK(n == 5);
    if (n == 5) {
        EF_CHECK_STR(pr.items[0].path, "JobDriver.SparkSubmitJobDriver.EntryPointArguments[1]");
        EF_CHECK_STR(pr.items[0].message, "expected a string, got integer");
        EF_CHECK_STR(pr.items[1].path, "JobDriver.SparkSubmitJobDriver.EntryPoint");
        EF_CHECK_STR(pr.items[1].message, "missing required parameter");
        EF_CHECK_STR(pr.items[2].path, "ConfigurationOverrides.MonitoringConfiguration.PersistentAppUI");
        EF_CHECK_STR(pr.items[2].message, "\"ON\" is not one of ENABLED, DISABLED");
        EF_CHECK_STR(pr.items[3].path, "Bogus");
        EF_CHECK_STR(pr.items[4].message, "unknown parameter (did you mean Name?)");
    }
    struct ef_buf msg;
    ef_buf_init(&msg);
    EF_CHECK(ef_emr_problems_message(op, &pr, &msg) == 0);
    EF_CHECK(msg.p && strncmp(msg.p, "invalid StartJobRun parameters: JobDriver.", 42) == 0);
    ef_buf_clean_up(&msg);
    ef_emr_problems_free(&pr);
    cJSON_Delete(p);

    /* lengths and ranges */
    p = parse("{\"VirtualClusterId\":\"\",\"MaxResults\":\"10\"}");
    n = ef_emr_check(op_named("ListJobRuns"), p, NULL, NULL, &pr);
    EF_CHECK(n == 2);
    if (n == 2) {
        EF_CHECK_STR(pr.items[0].message, "length must be at least 1, got 0");
        EF_CHECK_STR(pr.items[1].path, "MaxResults");
    }
    ef_emr_problems_free(&pr);
    cJSON_Delete(p);
}

static int match_digits(void *ud, const char *pattern, const char *s, size_t n)
{
    (void)pattern;
    ++*(int *)ud;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static void test_patterns_through_the_matcher(void)
{
    int calls = 0;
    struct ef_emr_problems pr;
    memset(&pr, 0, sizeof pr);
    cJSON *p = parse("{\"VirtualClusterId\":\"12a\",\"Id\":\"77\"}");
    EF_CHECK(ef_emr_check(op_named("DescribeJobRun"), p, match_digits, &calls, &pr) == 1);
    EF_CHECK(calls == 2);
    if (pr.n == 1)
        EF_CHECK(strstr(pr.items[0].message, "\"12a\" does not match the pattern") != NULL);
    ef_emr_problems_free(&pr);
    cJSON_Delete(p);
}

static void test_model_patterns(void)
{
    /* through ef_regex: whole values, "." across line breaks */
    const struct ef_emr_operation *op = op_named("StartJobRun");
    cJSON *p = parse("{\"VirtualClusterId\":\"abc\",\"ClientToken\":\"t\",\"Name\":\"n\","
                     "\"ExecutionRoleArn\":\"arn:aws:iam::<accountId>:role/r\",\"ReleaseLabel\":\"emr-6.2.0\","
                     "\"JobDriver\":{\"SparkSubmitJobDriver\":{\"EntryPoint\":\"s3://b/m.py\","
                     "\"SparkSubmitParameters\":\"--conf a=1\\n--conf b=2\"}}}");
    struct ef_emr_problems pr;
    memset(&pr, 0, sizeof pr);
    EF_CHECK(ef_emr_check(op, p, ef_emr_model_match, NULL, &pr) == 1);
    if (pr.n == 1) {
        EF_CHECK_STR(pr.items[0].path, "ExecutionRoleArn");
        EF_CHECK(strstr(pr.items[0].message, "does not match the pattern ^arn:") != NULL);
    }
    ef_emr_problems_free(&pr);
    cJSON_Delete(p);
    const char *vc_pattern = ef_emr_shapes[ef_emr_member_find(&ef_emr_shapes[op->input], "VirtualClusterId",
                                                              16, 1)->shape].pattern;
    EF_CHECK(vc_pattern != NULL);
    EF_CHECK(ef_emr_model_match(NULL, vc_pattern, "abc123", 6) == 1);
    EF_CHECK(ef_emr_model_match(NULL, vc_pattern, "abc-123", 7) == 0);   /* the whole value */
    EF_CHECK(ef_emr_model_match(NULL, "a(b", "a(b", 3) == -1);            /* refused: skipped */
}

/* The byte-table shortcuts for simple patterns answer exactly as the regex engine does. */
static void test_pattern_shortcuts_agree_with_the_engine(void)
{
    static const char *const samples[] = {
        "", " ", "\t\n", "abc", "ABC", "abc123", "a b", " x ", "job-1", "s3://bucket/main.py",
        "emr-6.2.0-latest", "a.b_c/d#e", "${x}", "caf\xc3\xa9", "\xc2\xa0", "\xe2\x80\xa8",
        "a\xff", "\xff", "x\ny", "--conf a=1", "Z", "_", "-", "#", "/", "9", "\v", "\f",
    };
    size_t nsamples = sizeof samples / sizeof samples[0];
    int checked = 0, fast = 0;
    for (size_t i = 0; i < ef_emr_nshapes; i++) {
        const char *pat = ef_emr_shapes[i].pattern;
        if (!pat)
            continue;
        struct ef_regex_err err;
        struct ef_regex *re = ef_regex_compile(pat, strlen(pat), EF_REGEX_DOTALL, &err);
        if (!re)
            continue;
        char one[2] = { 0, 0 };
        for (int b = 0; b < 256 + (int)nsamples; b++) {
            const char *v = one;
            size_t n = 1;
            if (b < 256) {
                one[0] = (char)b;
            } else {
                v = samples[b - 256];
                n = strlen(v);
            }
            int want = ef_regex_exec(re, v, n, 0, 1, NULL);
            int got = ef_emr_model_match(NULL, pat, v, n);
            if (got != want)
                fprintf(stderr, "pattern %s, value %d (%zu bytes): %d, engine %d\n", pat, b, n, got, want);
            EF_CHECK(got == want);
            EF_CHECK(ef_emr_model_match(NULL, pat, v, n) == want);   /* asked again */
            checked++;
        }
        ef_regex_free(re);
        if (!strcmp(pat, ".*\\S.*") || !strcmp(pat, "[0-9a-z]+"))
            fast++;
    }
    EF_CHECK(fast >= 2);
    EF_CHECK(checked > 1000);
}

static void test_marshalling(void)
{
    cJSON *p = parse("{\"VirtualClusterId\":\"vc 1/2\",\"States\":[\"RUNNING\",\"PENDING\"],"
                     "\"MaxResults\":10,\"CreatedAfter\":1440938160}");
    struct ef_emr_wire w;
    ef_emr_wire_init(&w);
    EF_CHECK(ef_emr_build(op_named("ListJobRuns"), p, &w) == 0);
    EF_CHECK_STR(w.method, "GET");
    EF_CHECK_STR(w.target.p, "/virtualclusters/vc%201%2F2/jobruns?createdAfter=2015-08-30T12%3A36%3A00Z"
                             "&states=RUNNING&states=PENDING&maxResults=10");
    EF_CHECK(!w.has_body);
    ef_emr_wire_free(&w);
    cJSON_Delete(p);

    p = parse("{\"Name\":\"vc\",\"ContainerProvider\":{\"Type\":\"EKS\",\"Id\":\"eks\","
              "\"Info\":{\"EksInfo\":{\"Namespace\":\"ns\"}}},\"Tags\":{\"b\":\"2\",\"a\":\"1\"},"
              "\"ClientToken\":\"tok\"}");
    ef_emr_wire_init(&w);
    EF_CHECK(ef_emr_build(op_named("CreateVirtualCluster"), p, &w) == 0);
    EF_CHECK_STR(w.target.p, "/virtualclusters");
    EF_CHECK_STR(w.body.p, "{\"clientToken\":\"tok\",\"containerProvider\":{\"id\":\"eks\","
                           "\"info\":{\"eksInfo\":{\"namespace\":\"ns\"}},\"type\":\"EKS\"},"
                           "\"name\":\"vc\",\"tags\":{\"a\":\"1\",\"b\":\"2\"}}");
    ef_emr_wire_free(&w);
    cJSON_Delete(p);

    struct ef_buf b;
    ef_buf_init(&b);
    EF_CHECK(ef_emr_uri_escape("a b/\xc3\xa9~", 7, 0, &b) == 0);
    EF_CHECK_STR(b.p, "a%20b%2F%C3%A9~");
    ef_buf_clean_up(&b);
}

static void test_replies(void)
{
    struct ef_emr_error e;
    const struct ef_emr_operation *start = op_named("StartJobRun");
    EF_CHECK(ef_emr_reply(start, 200, "", 0, &e) == NULL);
    EF_CHECK_STR(e.code, "json");
    EF_CHECK(strstr(e.message, "empty body") != NULL);
    EF_CHECK(ef_emr_reply(start, 200, "[1]", 3, &e) == NULL);
    EF_CHECK(strstr(e.message, "an array") != NULL);
    EF_CHECK(ef_emr_reply(start, 200, "{\"name\":\"x\"}", 12, &e) == NULL);
    EF_CHECK(strstr(e.message, "no 'id' string") != NULL);
    EF_CHECK(ef_emr_reply(op_named("DescribeJobRun"), 200, "{}", 2, &e) == NULL);
    cJSON *doc = ef_emr_reply(op_named("TagResource"), 200, "", 0, &e);
    EF_CHECK(doc != NULL && doc->child == NULL);
    cJSON_Delete(doc);
    const char *body = "{\"jobRun\":{\"id\":\"j\",\"tags\":{\"k\":\"v\"},\"jobDriver\":"
                       "{\"sparkSubmitJobDriver\":{\"entryPoint\":\"s3://x\"}}}}";
    doc = ef_emr_reply(op_named("DescribeJobRun"), 200, body, strlen(body), &e);
    EF_CHECK(doc != NULL);
    ef_emr_pascalize(op_named("DescribeJobRun")->output, doc);
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(doc, "JobRun");
    EF_CHECK(cJSON_GetObjectItemCaseSensitive(jr, "Id") != NULL);
    EF_CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(jr, "Tags"), "k") != NULL);
    EF_CHECK(cJSON_GetObjectItemCaseSensitive(
                 cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(jr, "JobDriver"),
                                                  "SparkSubmitJobDriver"), "EntryPoint") != NULL);
    cJSON_Delete(doc);
}

static void test_error_parsing(void)
{
    struct ef_emr_error e;
    struct ef_emr_header hs[2] = { { "X-Amzn-ErrorType", 16, "ThrottlingException:http://x", 28 },
                                   { "x-amzn-RequestId", 16, "rid-1", 5 } };
    ef_emr_parse_error(400, hs, 2, "{\"message\":\"Rate exceeded\"}", 27, &e);
    EF_CHECK_STR(e.aws_code, "ThrottlingException");
    EF_CHECK_STR(e.message, "Rate exceeded");
    EF_CHECK_STR(e.request_id, "rid-1");
    EF_CHECK(e.retryable);
    const char *typed = "{\"__type\":\"com.amazon.x#ValidationException\",\"Message\":\"bad\"}";
    ef_emr_parse_error(400, NULL, 0, typed, strlen(typed), &e);
    EF_CHECK_STR(e.aws_code, "ValidationException");
    EF_CHECK_STR(e.message, "bad");
    EF_CHECK(!e.retryable);
    ef_emr_parse_error(503, NULL, 0, "<html>\n  down\n</html>", 22, &e);
    EF_CHECK_STR(e.aws_code, "503");
    EF_CHECK_STR(e.message, "<html> down </html>");
    EF_CHECK(e.retryable);
    ef_emr_parse_error(404, NULL, 0, "", 0, &e);
    EF_CHECK_STR(e.message, "HTTP 404");
    EF_CHECK(ef_emr_classify("timeout", NULL, 0) == EF_EMR_TIMEOUT);
    EF_CHECK(ef_emr_classify("tls", NULL, 0) == EF_EMR_NO_RETRY);
    EF_CHECK(ef_emr_classify("aws", "ResourceNotFoundException", 503) == EF_EMR_NO_RETRY);
    EF_CHECK(ef_emr_classify("aws", "EKSRequestThrottledException", 400) == EF_EMR_THROTTLING);
}

static double fixed(void *ud)
{
    return *(double *)ud;
}

static void test_retry_policy(void)
{
    struct ef_emr_retry r;
    double u = 1.0;
    ef_emr_retry_init(&r, 10, 12);
    r.random = fixed;
    r.random_ud = &u;
    double d;
    int cost;
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_NO_RETRY, 1, &d, &cost) == EF_EMR_NOT_RETRYABLE);
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_TRANSIENT, 1, &d, &cost) == EF_EMR_RETRY);
    EF_CHECK(d == 1.0 && cost == 5 && r.capacity == 7);
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_THROTTLING, 4, &d, &cost) == EF_EMR_RETRY);
    EF_CHECK(d == 8.0 && r.capacity == 2);
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_TRANSIENT, 2, &d, &cost) == EF_EMR_QUOTA_EXHAUSTED);
    ef_emr_retry_success(&r, 5);
    EF_CHECK(r.capacity == 7);
    ef_emr_retry_success(&r, 0);
    EF_CHECK(r.capacity == 8);
    ef_emr_retry_init(&r, 3, 500);
    r.random = fixed;
    r.random_ud = &u;
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_TRANSIENT, 3, &d, &cost) == EF_EMR_MAX_ATTEMPTS);
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_TIMEOUT, 9, &d, &cost) == EF_EMR_MAX_ATTEMPTS);
    ef_emr_retry_init(&r, 30, 500);
    r.random = fixed;
    r.random_ud = &u;
    EF_CHECK(ef_emr_retry_decide(&r, EF_EMR_TIMEOUT, 12, &d, &cost) == EF_EMR_RETRY);
    EF_CHECK(d == 20.0 && cost == 10);           /* capped at 20 s */
}

static void test_tokens(void)
{
    char a[37], b[37];
    EF_CHECK(ef_emr_uuid4(a) == 0 && ef_emr_uuid4(b) == 0);
    EF_CHECK(strlen(a) == 36 && a[14] == '4' && strchr("89ab", a[19]) != NULL);
    EF_CHECK(strcmp(a, b) != 0);
    for (int i = 0; i < 100; i++) {
        double u = ef_emr_random(NULL);
        EF_CHECK(u >= 0 && u < 1);
    }
}


static int near(double a, double b)
{
    return fabs(a - b) < 1e-6;
}

static void test_sync_plan(void)
{
    struct ef_emr_sync_options o = { 2, 1.5, 30, 1e6, 50 };
    struct ef_emr_sync *s = ef_emr_sync_new(&o);
    EF_CHECK(s != NULL);
    if (!s)
        return;
    double t = 1000;
    uint64_t h1 = ef_emr_sync_watch(s, "vc1", "j1", t);
    uint64_t h2 = ef_emr_sync_watch(s, "vc1", "j2", t);
    uint64_t h3 = ef_emr_sync_watch(s, "vc2", "j3", t);
    uint64_t h4 = ef_emr_sync_watch(s, "vc2", "j4", t);
    uint64_t h5 = ef_emr_sync_watch(s, "vc1", "j5", t);
    EF_CHECK(h1 && h2 && h3 && h4 && h5 && h1 != h2);
    struct ef_emr_sync_action a;
    /* each new job is described once */
    uint64_t seen[5];
    for (int i = 0; i < 5; i++) {
        EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE);
        EF_CHECK(!a.final);
        seen[i] = a.handle;
    }
    EF_CHECK(seen[0] == h1 && seen[1] == h2 && seen[2] == h3 && seen[3] == h4 && seen[4] == h5);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_IDLE && a.wake_at == HUGE_VAL);
    ef_emr_sync_described(s, h1, t, "RUNNING", 990.5);
    ef_emr_sync_described(s, h2, t, "PENDING", 995);
    ef_emr_sync_described(s, h3, t, "SUBMITTED", 999);
    ef_emr_sync_described(s, h4, t, "SUBMITTED", 999);
    ef_emr_sync_described(s, h5, t, "PENDING", 997);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 2 - 0.001));
    /* one listing per cluster, not one describe per job */
    t += 2;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);
    EF_CHECK_STR(a.vc_id, "vc1");
    EF_CHECK(a.created_after == 989 && a.next_token == NULL && a.page_size == 50);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);
    EF_CHECK_STR(a.vc_id, "vc2");
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_IDLE);
    struct ef_emr_sync_item page[2] = { { "j1", "COMPLETED" }, { "other", "FAILED" } };
    ef_emr_sync_listed(s, "vc1", t, page, 2, "tok");
    /* the final job is described, then the next page follows at once */
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE);
    EF_CHECK(a.handle == h1 && a.final);
    EF_CHECK_STR(a.job_id, "j1");
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);
    EF_CHECK(a.next_token && strcmp(a.next_token, "tok") == 0);
    EF_CHECK(a.created_after == 989);
    ef_emr_sync_described(s, h1, t, "COMPLETED", 990.5);
    ef_emr_sync_unwatch(s, h1);
    ef_emr_sync_listed(s, "vc1", t, NULL, 0, NULL);
    ef_emr_sync_listed(s, "vc2", t, NULL, 0, "");
    /* back-off: the interval grows by the factor */
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 2 - 0.001));
    t += 2;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);
    EF_CHECK(a.created_after == 994);               /* j1 is gone: j2 is the oldest */
    ef_emr_sync_listed(s, "vc1", t, NULL, 0, NULL);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);   /* vc2 */
    ef_emr_sync_list_failed(s, "vc2", t);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 3 - 0.002)); /* vc1, listed first */
    struct ef_emr_sync_stats st;
    ef_emr_sync_get_stats(s, &st);
    EF_CHECK(st.watched == 4 && st.clusters == 2 && st.describes == 6 && st.lists == 5);
    ef_emr_sync_unwatch(s, h2);
    ef_emr_sync_unwatch(s, h2);                     /* twice: ignored */
    ef_emr_sync_free(s);
}

/* One job left to watch on a cluster: it is described in place of the listing (the same one
 * request an interval, with every state it goes through); a second job brings listings back. */
static void test_sync_single_job(void)
{
    struct ef_emr_sync_options o = { 2, 1.5, 30, 1e6, 50 };
    struct ef_emr_sync *s = ef_emr_sync_new(&o);
    if (!s)
        return;
    double t = 1000;
    struct ef_emr_sync_action a;
    uint64_t h = ef_emr_sync_watch(s, "vc", "j", t);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h);
    ef_emr_sync_described(s, h, t, "PENDING", 999);
    EF_CHECK(ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 2));
    t += 2;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h && !a.final);
    EF_CHECK_STR(a.vc_id, "vc");
    EF_CHECK_STR(a.job_id, "j");
    EF_CHECK(ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE && a.wake_at == HUGE_VAL);
    ef_emr_sync_described(s, h, t, "RUNNING", 999);
    EF_CHECK(ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 2));
    t += 2;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h);
    ef_emr_sync_described(s, h, t, "RUNNING", 999);
    EF_CHECK(ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE && near(a.wake_at, t + 3));  /* backs off */
    /* a second job: described when watched, then the cluster is listed */
    uint64_t h2 = ef_emr_sync_watch(s, "vc", "k", t);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h2);
    ef_emr_sync_described(s, h2, t, "PENDING", 1003);
    t += 3;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_LIST);
    EF_CHECK(a.created_after == 998);
    struct ef_emr_sync_item page[1] = { { "k", "FAILED" } };
    ef_emr_sync_listed(s, "vc", t, page, 1, NULL);
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h2 && a.final);
    ef_emr_sync_described(s, h2, t, "FAILED", 1003);
    ef_emr_sync_unwatch(s, h2);
    /* alone again: the next poll describes it; a final state ends it */
    t += 10;
    EF_CHECK(ef_emr_sync_next(s, (t += 0.001), &a) == EF_EMR_SYNC_DESCRIBE && a.handle == h && !a.final);
    ef_emr_sync_described(s, h, t, "COMPLETED", 999);
    ef_emr_sync_unwatch(s, h);
    EF_CHECK(ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE && a.wake_at == HUGE_VAL);
    ef_emr_sync_free(s);
}

/* Clock values near 1.7e9 s are 2.4e-7 s apart: waking at the bucket's refill time must not
 * find it a rounding short for ever (the virtual clock jumps exactly to the wake time). */
static void test_sync_rate_rounding(void)
{
    struct ef_emr_sync_options o = { 0, 1, 1, 10, 0 };
    struct ef_emr_sync *s = ef_emr_sync_new(&o);
    if (!s)
        return;
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "j%d", i);
        EF_CHECK(ef_emr_sync_watch(s, "vc", id, 0) != 0);
    }
    struct ef_emr_sync_action a;
    double t = 1700000096.3438;
    int sent = 0, idles = 0;
    for (int n = 0; n < 1000 && sent < 20; n++) {
        if (ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE) {
            EF_CHECK(a.wake_at > t);
            t = a.wake_at;
            idles++;
            continue;
        }
        sent++;
    }
    EF_CHECK(sent == 20 && idles == 19);
    EF_CHECK(t >= 1700000096.3438 + 1.9 - 1e-6);    /* and still 10 a second */
    ef_emr_sync_free(s);
}

static void test_sync_rate(void)
{
    struct ef_emr_sync_options o = { 0, 1, 1, 2, 0 };   /* 2 requests a second */
    struct ef_emr_sync *s = ef_emr_sync_new(&o);
    if (!s)
        return;
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "j%d", i);
        EF_CHECK(ef_emr_sync_watch(s, "vc", id, 0) != 0);
    }
    struct ef_emr_sync_action a;
    double t = 10;
    int sent = 0;
    /* over 2 s of simulated time: one at once, then one every 0.5 s */
    while (t <= 12.0001) {
        if (ef_emr_sync_next(s, t, &a) == EF_EMR_SYNC_IDLE) {
            EF_CHECK(a.wake_at > t);
            t = a.wake_at;
            continue;
        }
        sent++;
    }
    EF_CHECK(sent == 5);
    ef_emr_sync_free(s);

    /* many jobs: the plan's work stays small per job */
    s = ef_emr_sync_new(NULL);
    if (!s)
        return;
    uint64_t *hs = malloc(20000 * sizeof *hs);
    for (int i = 0; hs && i < 20000; i++) {
        char id[16];
        snprintf(id, sizeof id, "job%05d", i);
        hs[i] = ef_emr_sync_watch(s, i % 2 ? "a" : "b", id, 0);
        EF_CHECK(hs[i] != 0);
    }
    /* interleaved: every other job goes, new ones come (hash rebuilds and tombstones) */
    for (int i = 0; hs && i < 20000; i += 2)
        ef_emr_sync_unwatch(s, hs[i]);
    for (int i = 0; hs && i < 20000; i += 2) {
        char id[16];
        snprintf(id, sizeof id, "new%05d", i);
        hs[i] = ef_emr_sync_watch(s, "c", id, 0);
    }
    for (int i = 0; hs && i < 20000; i++)
        ef_emr_sync_unwatch(s, hs[i]);
    struct ef_emr_sync_stats st;
    ef_emr_sync_get_stats(s, &st);
    EF_CHECK(st.watched == 0);
    free(hs);
    ef_emr_sync_free(s);
}

/* ---- against the fake ------------------------------------------------------------ */

struct fake {
    pid_t pid;
    int in_fd;          /* the fake's stdin: closing it stops the fake */
    char url[64];
};

static int fake_start(struct fake *f)
{
    if (access("/usr/bin/python3", X_OK) != 0 || access("spec/support/fake_emr.py", R_OK) != 0)
        return -1;
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    char watch[32];
    snprintf(watch, sizeof watch, "%ld", (long)getpid());
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl("/usr/bin/python3", "python3", "spec/support/fake_emr.py", "--job-seconds", "0.1",
              "--cancel-seconds", "0.1", "--terminate-seconds", "0.1", "--watch-pid", watch, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    f->pid = pid;
    f->in_fd = in[1];
    char line[64] = "";
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t got = read(out[0], line + n, 1);
        if (got <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    int port = 0;
    if (sscanf(line, "PORT %d", &port) != 1 || port <= 0) {
        close(f->in_fd);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", port);
    return 0;
}

static void fake_stop(struct fake *f)
{
    close(f->in_fd);
    int st;
    for (int i = 0; i < 100; i++) {
        if (waitpid(f->pid, &st, WNOHANG) == f->pid)
            return;
        struct timespec ts = { 0, 50000000 };
        nanosleep(&ts, NULL);
    }
    kill(f->pid, SIGTERM);
    waitpid(f->pid, &st, 0);
}

/* A control request to the fake: the reply body parsed (caller frees), or NULL. */
static cJSON *control(const struct fake *f, const char *method, const char *path, const char *body)
{
    struct ef_http *h = ef_http_new(NULL);
    if (!h)
        return NULL;
    char url[160];
    snprintf(url, sizeof url, "%s%s", f->url, path);
    struct ef_http_header ct = { "Content-Type", 12, "application/json", 16 };
    struct ef_http_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = method;
    rq.url = url;
    rq.headers = &ct;
    rq.nheaders = body ? 1 : 0;
    rq.body = body;
    rq.body_len = body ? strlen(body) : 0;
    uint64_t id;
    char err[256];
    cJSON *out = NULL;
    if (ef_http_add(h, &rq, &id, err, sizeof err) == EF_HTTP_ADD_OK) {
        for (int i = 0; i < 300 && !ef_http_done_peek(h); i++)
            ef_http_step(h, 50, err, sizeof err);
        const struct ef_http_xfer *x = ef_http_done_peek(h);
        if (x) {
            struct ef_http_result r;
            ef_http_result_of(x, &r);
            if (r.err == EF_HTTP_OK)
                out = cJSON_ParseWithLength(r.body, r.body_len);
        }
    }
    ef_http_free(h);
    return out;
}

/* Requests the fake saw (not counting control ones). */
static int requests_seen(const struct fake *f)
{
    cJSON *r = control(f, "GET", "/__fake/requests", NULL);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "requests"));
    cJSON_Delete(r);
    return n;
}

static void faults(const struct fake *f, const char *json)
{
    cJSON_Delete(control(f, "POST", "/__fake/reset", "{}"));
    cJSON_Delete(control(f, "POST", "/__fake/faults", json));
}

static struct ef_emr_client *new_client(const struct fake *f)
{
    struct ef_emr_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.endpoint = f->url;
    cfg.region = "us-east-1";
    cfg.access_key_id = "AKIDEXAMPLE";
    cfg.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    cfg.max_attempts = 3;
    cfg.timeout_ms = 5000;
    return ef_emr_client_new(&cfg);
}

static const char *str_at(const cJSON *v, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : "";
}

static void lifecycle(const struct fake *f)
{
    struct ef_emr_client *c = new_client(f);
    EF_CHECK(c != NULL);
    if (!c)
        return;
    struct ef_emr_error err;
    cJSON *p = parse("{\"Name\":\"vc1\",\"ContainerProvider\":{\"Type\":\"EKS\",\"Id\":\"eks\","
                     "\"Info\":{\"EksInfo\":{\"Namespace\":\"spark\"}}}}");
    cJSON *vc = ef_emr_call(c, "CreateVirtualCluster", p, &err);
    cJSON_Delete(p);
    EF_CHECK(vc != NULL);
    if (!vc) {
        fprintf(stderr, "CreateVirtualCluster: %s: %s\n", err.code, err.message);
        ef_emr_client_free(c);
        return;
    }
    char vc_id[64];
    snprintf(vc_id, sizeof vc_id, "%s", str_at(vc, "Id", NULL));
    cJSON_Delete(vc);

    p = parse("{\"Name\":\"nightly\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/job-role\","
              "\"ReleaseLabel\":\"emr-6.15.0-latest\",\"JobDriver\":{\"SparkSubmitJobDriver\":"
              "{\"EntryPoint\":\"s3://bucket/main.py\"}}}");
    cJSON_AddStringToObject(p, "VirtualClusterId", vc_id);
    cJSON *run = ef_emr_call(c, "StartJobRun", p, &err);
    cJSON_Delete(p);
    EF_CHECK(run != NULL);
    if (!run) {
        fprintf(stderr, "StartJobRun: %s: %s\n", err.code, err.message);
        ef_emr_client_free(c);
        return;
    }
    char job_id[64];
    snprintf(job_id, sizeof job_id, "%s", str_at(run, "Id", NULL));
    cJSON_Delete(run);

    /* poll until final */
    char state[32] = "";
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "VirtualClusterId", vc_id);
    cJSON_AddStringToObject(q, "Id", job_id);
    for (int i = 0; i < 100; i++) {
        cJSON *d = ef_emr_call(c, "DescribeJobRun", q, &err);
        EF_CHECK(d != NULL);
        if (!d)
            break;
        snprintf(state, sizeof state, "%s", str_at(d, "JobRun", "State"));
        cJSON_Delete(d);
        if (!strcmp(state, "COMPLETED") || !strcmp(state, "FAILED") || !strcmp(state, "CANCELLED"))
            break;
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
    }
    cJSON_Delete(q);
    EF_CHECK_STR(state, "COMPLETED");

    q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "Id", vc_id);
    cJSON *del = ef_emr_call(c, "DeleteVirtualCluster", q, &err);
    EF_CHECK(del != NULL);
    EF_CHECK_STR(str_at(del, "Id", NULL), vc_id);
    cJSON_Delete(del);
    cJSON *dv = ef_emr_call(c, "DescribeVirtualCluster", q, &err);
    const char *vs = str_at(dv, "VirtualCluster", "State");
    EF_CHECK(!strcmp(vs, "TERMINATING") || !strcmp(vs, "TERMINATED"));
    cJSON_Delete(dv);
    cJSON_Delete(q);
    ef_emr_client_free(c);
}

static void faults_against_fake(const struct fake *f)
{
    struct ef_emr_client *c = new_client(f);
    if (!c)
        return;
    struct ef_emr_error err;
    cJSON *q = parse("{\"VirtualClusterId\":\"abc\",\"Id\":\"def\"}");

    /* an empty 200 is a protocol error, not a success without an Id */
    faults(f, "{\"faults\":[{\"kind\":\"status\",\"status\":200,\"body\":\"\"}]}");
    cJSON *out = ef_emr_call(c, "DescribeJobRun", q, &err);
    EF_CHECK(out == NULL);
    EF_CHECK_STR(err.code, "json");
    EF_CHECK(requests_seen(f) == 1);
    cJSON_Delete(out);

    /* max_attempts caps what the server sees */
    faults(f, "{\"faults\":[{\"kind\":\"status\",\"status\":503,\"count\":10}]}");
    ef_emr_client_retry(c)->max_backoff_s = 0.01;
    out = ef_emr_call(c, "DescribeJobRun", q, &err);
    EF_CHECK(out == NULL);
    EF_CHECK(err.status == 503 && err.retryable);
    EF_CHECK(requests_seen(f) == 3);

    /* headers over libcurl's limit: a clear error, asked once */
    static char big[200000];
    snprintf(big, sizeof big, "{\"faults\":[{\"kind\":\"status\",\"status\":200,\"count\":5,\"body\":\"{}\","
                              "\"headers\":[[\"X-Big\",\"%0120000d\"]]}]}", 0);
    faults(f, big);
    out = ef_emr_call(c, "DescribeJobRun", q, &err);
    EF_CHECK(out == NULL);
    EF_CHECK_STR(err.code, "http");
    EF_CHECK(strstr(err.message, "over the size limit") != NULL);
    EF_CHECK(requests_seen(f) == 1);
    cJSON_Delete(q);
    ef_emr_client_free(c);
}


static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Creation time (Unix seconds) of an ISO 8601 text the fake writes ("...T12:00:00Z" or
 * with fractions): NaN when unreadable. */
static double parse_iso(const char *t)
{
    int y, mo, d, h, mi, se;
    if (!t || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6)
        return NAN;
    /* days from the civil date (proleptic Gregorian) */
    y -= mo <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long days = era * 146097 + doe - 719468;
    return (double)days * 86400 + h * 3600 + mi * 60 + se;
}

/* n jobs on one virtual cluster, polled through the plan with the C client. */
static void sync_many(const struct fake *f, int n)
{
    struct ef_emr_client *c = new_client(f);
    struct ef_emr_sync_options o = { 0.2, 1.5, 0.5, 1000, 50 };
    struct ef_emr_sync *s = ef_emr_sync_new(&o);
    if (!c || !s) {
        EF_CHECK(0);
        ef_emr_client_free(c);
        ef_emr_sync_free(s);
        return;
    }
    struct ef_emr_error err;
    cJSON_Delete(control(f, "POST", "/__fake/reset", "{}"));
    cJSON *p = parse("{\"Name\":\"vc-many\",\"ContainerProvider\":{\"Type\":\"EKS\",\"Id\":\"eks\","
                     "\"Info\":{\"EksInfo\":{\"Namespace\":\"spark\"}}}}");
    cJSON *vc = ef_emr_call(c, "CreateVirtualCluster", p, &err);
    cJSON_Delete(p);
    char vc_id[64];
    snprintf(vc_id, sizeof vc_id, "%s", str_at(vc, "Id", NULL));
    cJSON_Delete(vc);
    int done = 0, completed = 0;
    for (int i = 0; i < n; i++) {
        p = parse("{\"Name\":\"many\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/r\","
                  "\"ReleaseLabel\":\"emr-6.15.0-latest\",\"JobDriver\":{\"SparkSubmitJobDriver\":"
                  "{\"EntryPoint\":\"s3://bucket/main.py\"}}}");
        cJSON_AddStringToObject(p, "VirtualClusterId", vc_id);
        cJSON *run = ef_emr_call(c, "StartJobRun", p, &err);
        cJSON_Delete(p);
        EF_CHECK(run != NULL);
        if (run)
            EF_CHECK(ef_emr_sync_watch(s, vc_id, str_at(run, "Id", NULL), now_s()) != 0);
        cJSON_Delete(run);
    }
    double give_up = now_s() + 60;
    while (done < n && now_s() < give_up) {
        struct ef_emr_sync_action a;
        double t = now_s();
        int kind = ef_emr_sync_next(s, t, &a);
        if (kind == EF_EMR_SYNC_IDLE) {
            double w = a.wake_at - t;
            struct timespec ts = { 0, (long)((w > 0.05 ? 0.05 : w > 0 ? w : 0.001) * 1e9) };
            nanosleep(&ts, NULL);
            continue;
        }
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "VirtualClusterId", a.vc_id);
        if (kind == EF_EMR_SYNC_DESCRIBE) {
            cJSON_AddStringToObject(q, "Id", a.job_id);
            cJSON *d = ef_emr_call(c, "DescribeJobRun", q, &err);
            if (!d) {
                ef_emr_sync_redescribe(s, a.handle);
            } else {
                const char *st = str_at(d, "JobRun", "State");
                ef_emr_sync_described(s, a.handle, now_s(), st,
                                      parse_iso(str_at(d, "JobRun", "CreatedAt")));
                if (ef_emr_sync_is_final(st)) {
                    done++;
                    completed += strcmp(st, "COMPLETED") == 0;
                    ef_emr_sync_unwatch(s, a.handle);
                }
            }
            cJSON_Delete(d);
        } else {
            cJSON *states = cJSON_AddArrayToObject(q, "States");
            for (int i = 0; i < 3; i++)
                cJSON_AddItemToArray(states, cJSON_CreateString(i == 0 ? "COMPLETED" : i == 1 ? "FAILED"
                                                                                       : "CANCELLED"));
            cJSON_AddNumberToObject(q, "CreatedAfter", a.created_after);
            cJSON_AddNumberToObject(q, "MaxResults", a.page_size);
            if (a.next_token)
                cJSON_AddStringToObject(q, "NextToken", a.next_token);
            char vc_copy[64];
            snprintf(vc_copy, sizeof vc_copy, "%s", a.vc_id);
            cJSON *l = ef_emr_call(c, "ListJobRuns", q, &err);
            if (!l) {
                ef_emr_sync_list_failed(s, vc_copy, now_s());
            } else {
                const cJSON *runs = cJSON_GetObjectItemCaseSensitive(l, "JobRuns");
                int m = cJSON_GetArraySize(runs);
                struct ef_emr_sync_item *items = calloc((size_t)m + 1, sizeof *items);
                int k = 0;
                for (const cJSON *e = runs ? runs->child : NULL; e && items; e = e->next, k++) {
                    items[k].id = str_at(e, "Id", NULL);
                    items[k].state = str_at(e, "State", NULL);
                }
                ef_emr_sync_listed(s, vc_copy, now_s(), items, items ? (size_t)k : 0,
                                   str_at(l, "NextToken", NULL));
                free(items);
            }
            cJSON_Delete(l);
        }
        cJSON_Delete(q);
    }
    EF_CHECK(done == n && completed == n);
    struct ef_emr_sync_stats st;
    ef_emr_sync_get_stats(s, &st);
    EF_CHECK(st.describes == (uint64_t)(2 * n));
    /* listings: a handful per interval for the one cluster, not one request per job */
    EF_CHECK(st.lists < (uint64_t)(n / 2 + 12));
    fprintf(stderr, "test_emr: %d jobs on one virtual cluster: %llu ListJobRuns, %llu DescribeJobRun\n", n,
            (unsigned long long)st.lists, (unsigned long long)st.describes);
    ef_emr_sync_free(s);
    ef_emr_client_free(c);
}

static struct fake s_fake;
static int s_have_fake;

static void test_lifecycle_against_fake(void)
{
    if (s_have_fake)
        lifecycle(&s_fake);
}

static void test_sync_against_fake(void)
{
    if (s_have_fake)
        sync_many(&s_fake, 40);
}

static void test_faults_against_fake(void)
{
    if (s_have_fake)
        faults_against_fake(&s_fake);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    EF_RUN(test_model_lookup);
    EF_RUN(test_checks_with_paths);
    EF_RUN(test_patterns_through_the_matcher);
    EF_RUN(test_model_patterns);
    EF_RUN(test_pattern_shortcuts_agree_with_the_engine);
    EF_RUN(test_marshalling);
    EF_RUN(test_replies);
    EF_RUN(test_error_parsing);
    EF_RUN(test_retry_policy);
    EF_RUN(test_tokens);
    EF_RUN(test_sync_plan);
    EF_RUN(test_sync_rate);
    EF_RUN(test_sync_single_job);
    EF_RUN(test_sync_rate_rounding);
    s_have_fake = fake_start(&s_fake) == 0;
    if (!s_have_fake)
        fprintf(stderr, "test_emr: fake_emr.py not available: live tests skipped\n");
    EF_RUN(test_lifecycle_against_fake);
    EF_RUN(test_sync_against_fake);
    EF_RUN(test_faults_against_fake);
    if (s_have_fake)
        fake_stop(&s_fake);
    ef_emr_model_match_reset();
    return EF_DONE();
}
