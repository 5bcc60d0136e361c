/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sts.h"
#include "string-util.h"
#include "tap.h"

TEST(sts_form_has_every_parameter_percent_encoded) {
        _cleanup_free_ char *f = NULL;

        ASSERT_OK(sts_assume_role_form("arn:aws:iam::123456789012:role/path/my-role", "debebe8d-my-role",
                                       3600, "ext:id/x=y", NULL, &f));
        ASSERT_STREQ(
                f,
                "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2F"
                "path%2Fmy-role&RoleSessionName=debebe8d-my-role&DurationSeconds=3600&ExternalId=ext%3Aid%2F"
                "x%3Dy");
        f = mfree(f);
        ASSERT_OK(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 900, "", NULL, &f));
        ASSERT_STREQ(
                f,
                "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr"
                "&RoleSessionName=ab&DurationSeconds=900");
}

TEST(sts_form_rejects_what_aws_would_reject) {
        char *f = NULL;
        char big[STS_EXTERNAL_ID_MAX + 2];

        ASSERT_ERROR(sts_assume_role_form("not-an-arn-but-long-enough", "ab", 900, NULL, NULL, &f), -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::1:role/x y z w", "ab", 900, NULL, NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "a", 900, NULL, NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "a b", 900, NULL, NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 899, NULL, NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 43201, NULL, NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 900, "x", NULL, &f),
                     -EINVAL);
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 900, "a&b", NULL, &f),
                     -EINVAL);
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        ASSERT_ERROR(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 900, big, NULL, &f),
                     -EINVAL);
        ASSERT_NULL(f);
}

TEST(session_tags_are_encoded_and_all_transitive) {
        _cleanup_free_ char *p = NULL, *f = NULL;
        StsTag tags[] = { { "kubernetes-namespace", "web" },
                          { "eks-cluster-arn", "arn:aws:eks:x:1:cluster/a b" } };

        ASSERT_OK(sts_session_tags_params(tags, 2, &p));
        ASSERT_STREQ(p, "&Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=web"
                        "&Tags.member.2.Key=eks-cluster-arn&Tags.member.2.Value=arn%3Aaws%3Aeks%3Ax%3A1%"
                        "3Acluster%2Fa%20b"
                        "&TransitiveTagKeys.member.1=kubernetes-namespace&TransitiveTagKeys.member.2=eks-"
                        "cluster-arn");
        ASSERT_OK(sts_assume_role_form("arn:aws:iam::123456789012:role/r", "ab", 900, NULL, p, &f));
        ASSERT_TRUE(endswith(
                f, "&DurationSeconds=900&Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=web"
                   "&Tags.member.2.Key=eks-cluster-arn&Tags.member.2.Value=arn%3Aaws%3Aeks%3Ax%3A1%3A"
                   "cluster%2Fa%20b&TransitiveTagKeys.member.1=kubernetes-namespace"
                   "&TransitiveTagKeys.member.2=eks-cluster-arn"));
        p = mfree(p);
        ASSERT_OK(sts_session_tags_params(NULL, 0, &p));
        ASSERT_STREQ(p, "");
}

TEST(session_tags_described_for_the_audit_decoded_in_order_and_bounded) {
        _cleanup_free_ char *p = NULL, *d = NULL;
        char *arns[] = { "arn:aws:iam::aws:policy/ReadOnlyAccess", NULL };
        StsTag tags[] = { { "kubernetes-namespace", "web" },
                          { "eks-cluster-arn", "arn:aws:eks:x:1:cluster/a b" },
                          { "team", "pay=ments" } };

        ASSERT_OK(sts_session_tags_params(tags, 3, &p));
        ASSERT_OK(sts_session_add_policy_arns(&p, arns));
        ASSERT_OK(sts_session_tags_describe(p, 4096, &d));
        ASSERT_STREQ(d,
                     "kubernetes-namespace=web,eks-cluster-arn=arn:aws:eks:x:1:cluster/a b,team=pay=ments");
        d = mfree(d);
        /* past the bound: whole tags only, and the cut is said */
        ASSERT_OK(sts_session_tags_describe(p, 30, &d));
        ASSERT_STREQ(d, "kubernetes-namespace=web,...");
        d = mfree(d);
        ASSERT_OK(sts_session_tags_describe("&PolicyArns.member.1.arn=x", 4096, &d));
        ASSERT_STREQ(d, "");
        d = mfree(d);
        ASSERT_ERROR(sts_session_tags_describe("&Tags.member.1.Key=a%2", 4096, &d), -EINVAL);
}

TEST(session_tags_outside_sts_limits_are_refused) {
        char key[STS_TAG_KEY_MAX + 2], value[STS_TAG_VALUE_MAX + 2];
        StsTag many[STS_TAGS_MAX + 1];
        char *p = NULL;

        ASSERT_ERROR(sts_session_tags_params(&(StsTag){ "", "v" }, 1, &p), -EINVAL);
        ASSERT_ERROR(sts_session_tags_params(&(StsTag){ "k&x", "v" }, 1, &p), -EINVAL);
        ASSERT_ERROR(sts_session_tags_params(&(StsTag){ "k", "v\n" }, 1, &p), -EINVAL);
        memset(key, 'k', sizeof key - 1);
        key[sizeof key - 1] = '\0';
        ASSERT_ERROR(sts_session_tags_params(&(StsTag){ key, "v" }, 1, &p), -EINVAL);
        key[STS_TAG_KEY_MAX] = '\0';
        ASSERT_TRUE(sts_tag_key_valid(key));
        memset(value, 'v', sizeof value - 1);
        value[sizeof value - 1] = '\0';
        ASSERT_FALSE(sts_tag_value_valid(value));
        value[STS_TAG_VALUE_MAX] = '\0';
        ASSERT_TRUE(sts_tag_value_valid(value));
        ASSERT_TRUE(sts_tag_value_valid(""));
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = (StsTag){ "k", "v" };
        ASSERT_ERROR(sts_session_tags_params(many, ELEMENTSOF(many), &p), -EINVAL);
        ASSERT_NULL(p);
}

TEST(sts_session_name_matches_kube2iam) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        char want[65];

        ASSERT_OK(sts_role_session_name("10.0.0.1", "arn:aws:iam::123456789012:role/path/my-role", &a));
        ASSERT_STREQ(a, "debebe8d-my-role");
        /* hex not zero-padded */
        ASSERT_OK(sts_role_session_name("10.1.4.151", "arn:aws:iam::123456789012:role/r", &b));
        ASSERT_STREQ(b, "40d690-r");
        /* cut to 64 */
        ASSERT_OK(sts_role_session_name(
                "10.0.0.1",
                "arn:aws:iam::123456789012:role/"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                &c));
        snprintf(want, sizeof want, "debebe8d-%.*s", 55,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        ASSERT_STREQ(c, want);
        ASSERT_EQ(strlen(c), 64);
        /* only [\w+=,.@-] */
        ASSERT_OK(sts_role_session_name("10.0.0.1", "arn:aws:iam::123456789012:role/we ird$name+=,.@_", &d));
        ASSERT_STREQ(d, "debebe8d-weirdname+=,.@_");
}

static const char success_xml[] =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <AssumeRoleResult>\n"
        "    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/Bob</Arn>\n"
        "      <AssumedRoleId>ARO123EXAMPLE123:Bob</AssumedRoleId></AssumedRoleUser>\n"
        "    <Credentials>\n"
        "      <SessionToken>\n   AQoDYXdzEPT//////////wEXAMPLE==\n   </SessionToken>\n"
        "      <Expiration>2011-07-15T23:28:33.359Z</Expiration>\n"
        "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
        "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
        "    </Credentials>\n"
        "    <PackedPolicySize>6</PackedPolicySize>\n"
        "  </AssumeRoleResult>\n"
        "  "
        "<ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\n"
        "</AssumeRoleResponse>\n";

TEST(pod_session_name_is_namespace_and_name_shortened_collision_safe) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *again = NULL;
        char name[80];

        ASSERT_OK(sts_pod_session_name("payments", "api-7d9f-x2x", &a));
        ASSERT_STREQ(a, "payments.api-7d9f-x2x");
        memset(name, 'n', 70);
        name[70] = '\0';
        ASSERT_OK(sts_pod_session_name("payments", name, &b));
        ASSERT_EQ(strlen(b), (size_t) STS_SESSION_NAME_MAX);
        ASSERT_TRUE(startswith(b, "payments.nnnn"));
        ASSERT_EQ(b[STS_SESSION_NAME_MAX - 13], '=');
        ASSERT_OK(sts_pod_session_name("payments", name, &again));
        ASSERT_STREQ(again, b); /* stable: the same pod always gets the same name */
        name[69] = 'm';         /* same first 51 characters, another pod */
        ASSERT_OK(sts_pod_session_name("payments", name, &c));
        ASSERT_FALSE(streq(b, c));
        ASSERT_TRUE(strneq(b, c, STS_SESSION_NAME_MAX - 12));
        char *f = NULL;
        ASSERT_ERROR(sts_pod_session_name("ns", "a=b", &f), -EINVAL);
        ASSERT_ERROR(sts_pod_session_name("", "a", &f), -EINVAL);
        ASSERT_NULL(f);
}

TEST(sts_reply_parses_reordered_whitespaced_fractional_success) {
        _cleanup_credentials_ Credentials *c = NULL;
        StsError *e = NULL;
        usec_t want;

        ASSERT_OK(sts_reply_parse(success_xml, strlen(success_xml), 200, 42, &c, &e));
        ASSERT_NULL(e);
        ASSERT_NOT_NULL(c);
        ASSERT_STREQ(c->access_key_id, "ASIAIOSFODNN7EXAMPLE");
        ASSERT_STREQ(secret_reveal(c->secret_access_key), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
        ASSERT_STREQ(secret_reveal(c->session_token), "AQoDYXdzEPT//////////wEXAMPLE==");
        ASSERT_OK(parse_timestamp_rfc3339("2011-07-15T23:28:33.359Z", &want));
        ASSERT_UEQ(c->expiration, want);
        ASSERT_UEQ(c->last_updated, 42);
        ASSERT_STREQ(c->assumed_role_id, "ARO123EXAMPLE123:Bob");
}

TEST(sts_reply_parses_expiration_without_fraction_and_huge_token) {
        _cleanup_credentials_ Credentials *c = NULL;
        _cleanup_free_ char *xml = NULL, *token = NULL;
        StsError *e = NULL;
        size_t n = 200 * 1024;
        usec_t want;

        token = malloc(n + 1);
        ASSERT_NOT_NULL(token);
        for (size_t i = 0; i < n; i++)
                token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[i % 38];
        token[n] = '\0';
        ASSERT_TRUE(
                asprintf(
                        &xml,
                        "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>"
                        "<SecretAccessKey>s</SecretAccessKey><SessionToken>%s</SessionToken>"
                        "<Expiration>2030-01-02T03:04:05Z</Expiration></Credentials></AssumeRoleResult>"
                        "</AssumeRoleResponse>",
                        token) > 0);
        ASSERT_OK(sts_reply_parse(xml, strlen(xml), 200, 0, &c, &e));
        ASSERT_NULL(e);
        ASSERT_UEQ(secret_size(c->session_token), n);
        ASSERT_OK(parse_timestamp_rfc3339("2030-01-02T03:04:05Z", &want));
        ASSERT_UEQ(c->expiration, want);
}

static StsError *parse_error(const char *xml, long status) {
        Credentials *c = NULL;
        StsError *e = NULL;

        ASSERT_OK(sts_reply_parse(xml, xml ? strlen(xml) : 0, status, 0, &c, &e));
        ASSERT_NULL(c);
        ASSERT_NOT_NULL(e);
        return e;
}

TEST(sts_reply_classifies_errors) {
        _cleanup_(sts_error_freep) StsError *denied = NULL, *throttled = NULL, *internal = NULL,
                                            *validation = NULL;

        denied = parse_error(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::1:x is not "
                "authorized to perform: sts:AssumeRole</Message></Error>"
                "<RequestId>abc-123</RequestId></ErrorResponse>",
                403);
        ASSERT_EQ(denied->class, STS_ERROR_DENIED);
        ASSERT_STREQ(denied->code, "AccessDenied");
        ASSERT_STREQ(denied->type, "Sender");
        ASSERT_STREQ(denied->request_id, "abc-123");
        ASSERT_TRUE(strstr(denied->message, "not authorized") != NULL);
        ASSERT_EQ(denied->error, -EACCES);

        throttled = parse_error("<ErrorResponse><Error><Code>\n Throttling \n</Code><Type>Sender</Type>"
                                "<Message>Rate exceeded</Message></Error></ErrorResponse>",
                                400);
        ASSERT_EQ(throttled->class, STS_ERROR_THROTTLED);
        ASSERT_STREQ(throttled->code, "Throttling");

        internal = parse_error("<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>",
                               500);
        ASSERT_EQ(internal->class, STS_ERROR_TRANSIENT);
        ASSERT_NULL(internal->message);

        validation = parse_error(
                "<ErrorResponse><Error><Code>ValidationError</Code></Error></ErrorResponse>", 400);
        ASSERT_EQ(validation->class, STS_ERROR_DENIED);
}

TEST(sts_error_reads_as_kube2iams_sdk_error) {
        _cleanup_(sts_error_freep) StsError *denied = NULL, *internal = NULL, *transport = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        denied = parse_error(
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                "<Message>User: arn:aws:sts::1:assumed-role/node/i-1 is not authorized to perform: "
                "sts:AssumeRole</Message></Error><RequestId>abc-123</RequestId></ErrorResponse>",
                403);
        ASSERT_OK(sts_error_describe(denied, &a));
        ASSERT_STREQ(a, "operation error STS: AssumeRole, https response error StatusCode: 403, RequestID: "
                        "abc-123, api error AccessDenied: User: arn:aws:sts::1:assumed-role/node/i-1 is not "
                        "authorized to perform: sts:AssumeRole");
        internal = parse_error("<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>",
                               500);
        ASSERT_OK(sts_error_describe(internal, &b));
        ASSERT_STREQ(b,
                     "operation error STS: AssumeRole, https response error StatusCode: 500, RequestID: , "
                     "api error InternalFailure");
        ASSERT_OK(sts_error_new(STS_ERROR_TRANSIENT, -ETIMEDOUT, 0, "RequestTimeout", "no answer in 5 s",
                                &transport));
        ASSERT_OK(sts_error_describe(transport, &c));
        ASSERT_STREQ(c, "operation error STS: AssumeRole, RequestTimeout: no answer in 5 s");
}

TEST(sts_reply_survives_garbage) {
        static const struct {
                const char *body;
                long status;
                StsErrorClass want;
        } cases[] = {
                { "not xml at all", 200, STS_ERROR_TRANSIENT },
                { "<html><body>Bad Gateway</body></html>", 502, STS_ERROR_TRANSIENT },
                { "", 503, STS_ERROR_TRANSIENT },
                { "<ErrorResponse/>", 403, STS_ERROR_DENIED },
                { "<ErrorResponse><Error><Code>a b</Code></Error></ErrorResponse>", 400, STS_ERROR_DENIED },
                { "<AssumeRoleResponse><Credentials><AccessKeyId>ASIA</AccessKeyId></Credentials>"
                  "</AssumeRoleResponse>",
                  200, STS_ERROR_TRANSIENT },
                { "<AssumeRoleResponse><Credentials><AccessKeyId>ASIA</AccessKeyId><SecretAccessKey>s"
                  "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>tomorrow</Expiration>"
                  "</Credentials></AssumeRoleResponse>",
                  200, STS_ERROR_TRANSIENT },
                { "<AssumeRoleResponse><Credentials><AccessKeyId>AS IA</AccessKeyId><SecretAccessKey>s"
                  "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z</"
                  "Expiration>"
                  "</Credentials></AssumeRoleResponse>",
                  200, STS_ERROR_TRANSIENT },
                { "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><AssumeRoleResponse>&a;</AssumeRoleResponse>", 200,
                  STS_ERROR_TRANSIENT },
                { "<a><b><c>unterminated", 200, STS_ERROR_TRANSIENT },
                { "{\"json\": true}", 429, STS_ERROR_THROTTLED },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(sts_error_freep) StsError *e = parse_error(cases[i].body, cases[i].status);
                if (e->class != cases[i].want)
                        printf("# case %zu: class %d\n", i, e->class);
                ASSERT_EQ(e->class, cases[i].want);
                ASSERT_NOT_NULL(e->code);
        }
}

TEST(sts_reply_rejects_oversized_body) {
        _cleanup_free_ char *big = calloc(1, STS_REPLY_MAX_BYTES + 2);
        _cleanup_(sts_error_freep) StsError *e = NULL;

        ASSERT_NOT_NULL(big);
        memset(big, ' ', STS_REPLY_MAX_BYTES + 1);
        e = parse_error(big, 200);
        ASSERT_STREQ(e->code, "MalformedReply");
}

TEST(sts_throttle_codes_are_botocores) {
        ASSERT_TRUE(sts_error_code_is_throttle("Throttling"));
        ASSERT_TRUE(sts_error_code_is_throttle("RequestLimitExceeded"));
        ASSERT_TRUE(sts_error_code_is_throttle("EC2ThrottledException"));
        ASSERT_FALSE(sts_error_code_is_throttle("AccessDenied"));
        ASSERT_EQ(sts_error_classify("RegionDisabledException", 403), STS_ERROR_DENIED);
        ASSERT_EQ(sts_error_classify("Whatever", 503), STS_ERROR_TRANSIENT);
        ASSERT_EQ(sts_error_classify(NULL, 0), STS_ERROR_TRANSIENT);
        /* the node's token expired: not the role's fault, retried once the node's credentials renew */
        ASSERT_EQ(sts_error_classify("ExpiredToken", 400), STS_ERROR_TRANSIENT);
        ASSERT_EQ(sts_error_classify("InvalidClientTokenId", 403), STS_ERROR_DENIED);
}

TEST(sts_refusals_become_errors_permanent_or_transient) {
        static const struct {
                StsRefusal refusal;
                StsErrorClass class;
                const char *code;
        } cases[] = {
                { STS_REFUSAL_INVALID_PARAMETER, STS_ERROR_DENIED, "InvalidParameter" },
                { STS_REFUSAL_PARTITION_MISMATCH, STS_ERROR_DENIED, "PartitionMismatch" },
                { STS_REFUSAL_NO_REGION, STS_ERROR_TRANSIENT, "NoRegion" },
                { STS_REFUSAL_NO_NODE_CREDENTIALS, STS_ERROR_TRANSIENT, "NoNodeCredentials" },
                { STS_REFUSAL_BUSY, STS_ERROR_TRANSIENT, "InternalError" },
                { STS_REFUSAL_INTERNAL, STS_ERROR_TRANSIENT, "InternalError" },
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                StsError *e = NULL;
                ASSERT_OK(sts_refusal_error(cases[i].refusal, -EIO, &e));
                ASSERT_EQ(e->class, cases[i].class);
                ASSERT_STREQ(e->code, cases[i].code);
                ASSERT_EQ(e->error, -EIO);
                ASSERT_EQ(e->http_status, 0);
                sts_error_free(e);
        }
}
