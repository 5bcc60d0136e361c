/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"
#include "time-util.h"

/* Logs one entry with stderr redirected to a temporary file; returns what was written. */
static char *capture_fields(LogFormat f, const LogField *fields, size_t n_fields, const char *arg) {
        char path[] = "/tmp/test-log-XXXXXX", *out;
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        FILE *in;
        long n;

        ASSERT_TRUE(fd >= 0 && saved >= 0);
        unlink(path);
        fflush(stderr);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        log_set_target(LOG_TARGET_STDERR);
        log_set_format(f);
        log_fields(LOG_WARNING, fields, n_fields, "asked for %s", arg);
        fflush(stderr);
        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        in = fdopen(fd, "r");
        ASSERT_NOT_NULL(in);
        fseek(in, 0, SEEK_END);
        n = ftell(in);
        rewind(in);
        out = calloc(1, (size_t) n + 1);
        ASSERT_NOT_NULL(out);
        ASSERT_EQ(fread(out, 1, (size_t) n, in), (size_t) n);
        fclose(in);
        return out;
}

static char *capture(LogFormat f, const char *field_value, const char *arg) {
        return capture_fields(f, (const LogField[]){ { "ROLE", field_value } }, 1, arg);
}

TEST(log_escapes_invalid_utf8_from_pods_in_json_and_text) {
        for (LogFormat f = LOG_FORMAT_TEXT; f <= LOG_FORMAT_JSON; f++) {
                char *out = capture(f, "r\xff\xc3\x28\xed\xa0\x80", "x\xc0\xaf");
                ASSERT_NULL(strchr(out, '\xff'));
                ASSERT_NULL(strchr(out, '\xc0'));
                ASSERT_NULL(strchr(out, '\xed'));
                ASSERT_NOT_NULL(strstr(out, "xff"));
                ASSERT_NOT_NULL(strstr(out, "xc0"));
                free(out);
        }
}

TEST(log_keeps_valid_utf8_as_is) {
        char *out = capture(LOG_FORMAT_JSON, "r\xc3\xa9le-\xe2\x82\xac-\xf0\x9f\x94\x91", "caf\xc3\xa9");
        ASSERT_NOT_NULL(strstr(out, "r\xc3\xa9le-\xe2\x82\xac-\xf0\x9f\x94\x91"));
        ASSERT_NOT_NULL(strstr(out, "caf\xc3\xa9"));
        free(out);
}

TEST(text_and_json_use_kube2iams_field_names_sorted_and_leave_message_id_to_the_journal) {
        const LogField f[] = {
                { "RES_STATUS", "403" },     { "REQ_METHOD", "GET" },   { "MESSAGE_ID", "abc123" },
                { "POD_IAM_ROLE", "arn:x" }, { "NS_NAME", "payments" }, { "PARAMS_IAM_ROLE", "y" },
                { "REQ_PATH", "/latest/x" }, { "UNSET", NULL },
        };
        char *out = capture_fields(LOG_FORMAT_TEXT, f, ELEMENTSOF(f), "x");

        ASSERT_NOT_NULL(strstr(out,
                               " msg=\"asked for x\" ns.name=payments params.iam.role=y "
                               "pod.iam.role=\"arn:x\" req.method=GET req.path=/latest/x res.status=403\n"));
        ASSERT_NULL(strstr(out, "abc123"));
        ASSERT_NULL(strstr(out, "REQ_"));
        free(out);
        out = capture_fields(LOG_FORMAT_JSON, f, ELEMENTSOF(f), "x");
        ASSERT_NOT_NULL(
                strstr(out, "\"ns.name\":\"payments\",\"params.iam.role\":\"y\",\"pod.iam.role\":\"arn:x\","
                            "\"req.method\":\"GET\",\"req.path\":\"/latest/x\",\"res.status\":403}"));
        ASSERT_NULL(strstr(out, "abc123"));
        free(out);
}

TEST(one_client_spends_its_own_log_budget_not_the_shared_one) {
        LogRatelimit shared = { .interval_usec = 60 * USEC_PER_SEC, .burst = 30 };
        LogRatelimit flooder = { .interval_usec = 60 * USEC_PER_SEC, .burst = 20 };
        LogRatelimit other = { .interval_usec = 60 * USEC_PER_SEC, .burst = 20 };
        unsigned allowed = 0;

        for (int i = 0; i < 2000; i++)
                allowed += log_ratelimit_allow(&flooder, &shared);
        ASSERT_EQ(allowed, 20);
        ASSERT_EQ(flooder.suppressed, 1980);
        /* the shared budget was charged only for what the flooder's own let through */
        ASSERT_EQ(shared.count, 20);
        allowed = 0;
        for (int i = 0; i < 5; i++)
                allowed += log_ratelimit_allow(&other, &shared);
        ASSERT_EQ(allowed, 5);
        /* without a client budget, the shared one decides alone */
        allowed = 0;
        for (int i = 0; i < 10; i++)
                allowed += log_ratelimit_allow(NULL, &shared);
        ASSERT_EQ(allowed, 5);
}
