/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "aws/upstream-client.h"
#include "aws/node-credentials.h"
#include "tap.h"

TEST(imds_credentials_document_parses) {
        static const char doc[] =
                "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2012-04-26T16:39:16Z\",\n"
                "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIOSFODNN7EXAMPLE\",\n"
                "  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n"
                "  \"Token\" : \"token\",\n  \"Expiration\" : \"2017-05-17T15:09:54Z\"\n}";
        _cleanup_credentials_ Credentials *c = NULL;
        usec_t want;

        ASSERT_OK(upstream_parse_credentials(doc, strlen(doc), 7, &c));
        ASSERT_STREQ(c->access_key_id, "ASIAIOSFODNN7EXAMPLE");
        ASSERT_STREQ(secret_reveal(c->secret_access_key), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        ASSERT_STREQ(secret_reveal(c->session_token), "token");
        ASSERT_OK(parse_timestamp_rfc3339("2017-05-17T15:09:54Z", &want));
        ASSERT_UEQ(c->expiration, want);
}

TEST(imds_credentials_garbage_is_rejected) {
        static const char *const bad[] = {
                "",
                "not json",
                "{\"Code\":\"Failure\",\"Message\":\"x\"}",
                "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\"}",
                "{\"Code\":\"Success\",\"AccessKeyId\":\"A B\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
                "\"Expiration\":\"2017-05-17T15:09:54Z\"}",
                "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":1,\"Token\":\"t\","
                "\"Expiration\":\"2017-05-17T15:09:54Z\"}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                Credentials *c = NULL;
                ASSERT_TRUE(upstream_parse_credentials(bad[i], strlen(bad[i]), 0, &c) < 0);
                ASSERT_NULL(c);
        }
}

TEST(node_credentials_prefer_environment) {
        NodeCredentials *n = NULL;
        Credentials *c;

        setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
        setenv("AWS_SESSION_TOKEN", "envtoken", 1);
        ASSERT_OK(node_credentials_new(NULL, NULL, &n));
        ASSERT_STREQ(node_credentials_source(n), "env");
        ASSERT_OK(node_credentials_start(n));
        c = node_credentials_get(n);
        ASSERT_NOT_NULL(c);
        ASSERT_STREQ(c->access_key_id, "AKIDENV");
        ASSERT_STREQ(secret_reveal(c->session_token), "envtoken");
        node_credentials_free(n);

        unsetenv("AWS_SECRET_ACCESS_KEY");
        n = NULL;
        ASSERT_ERROR(node_credentials_new(NULL, NULL, &n), -EINVAL);
        ASSERT_NULL(n);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SESSION_TOKEN");
        ASSERT_OK(node_credentials_new(NULL, NULL, &n));
        ASSERT_NULL(node_credentials_get(n));
        ASSERT_ERROR(node_credentials_start(n), -ENOKEY);
        node_credentials_free(n);
}
