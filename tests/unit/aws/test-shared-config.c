/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "aws/shared-config.h"
#include "aws/sts.h"
#include "tap.h"

static const char credentials[] = "# comment\n"
                                  "[default]\n"
                                  "aws_access_key_id = AKIADEFAULT000000000\n"
                                  "aws_secret_access_key = default-secret\n"
                                  "\n"
                                  "[ops]\n"
                                  "aws_access_key_id=AKIAOPS0000000000000\n"
                                  "AWS_SECRET_ACCESS_KEY  =  ops/secret+key  \n"
                                  "aws_session_token = tok\n";

static const char config[] = "[default]\n"
                             "region = eu-west-1\n"
                             "[profile ops]\n"
                             "aws_access_key_id = AKIACONFIGLOSES00000\n"
                             "s3 =\n"
                             "  role_arn = arn:aws:iam::1:role/nested-not-ours\n"
                             "[profile web]\n"
                             "role_arn = arn:aws:iam::1:role/node\n"
                             "web_identity_token_file = /var/run/token\n"
                             "[ops]\n"
                             "role_arn = arn:aws:iam::1:role/config-needs-the-profile-word\n"
                             "[profile proc]\n"
                             "credential_process = /usr/bin/get-creds\n";

TEST(profile_keys_come_from_credentials_first_and_config_sections_need_profile) {
        _cleanup_(aws_profile_freep) AwsProfile *p = NULL;

        ASSERT_OK(aws_profile_parse(credentials, config, "ops", &p));
        ASSERT_TRUE(p->found);
        ASSERT_STREQ(p->access_key_id, "AKIAOPS0000000000000");
        ASSERT_STREQ(secret_reveal(p->secret_access_key), "ops/secret+key");
        ASSERT_STREQ(secret_reveal(p->session_token), "tok");
        ASSERT_NULL(p->role_arn); /* neither the nested s3 key nor the "[ops]" section of config */
        ASSERT_TRUE(aws_profile_has_credentials(p));
}

TEST(profile_web_identity_and_unsupported_sources_are_recognised) {
        _cleanup_(aws_profile_freep) AwsProfile *web = NULL, *proc = NULL, *dflt = NULL, *none = NULL;

        ASSERT_OK(aws_profile_parse(credentials, config, "web", &web));
        ASSERT_STREQ(web->role_arn, "arn:aws:iam::1:role/node");
        ASSERT_STREQ(web->web_identity_token_file, "/var/run/token");
        ASSERT_OK(aws_profile_parse(NULL, config, "proc", &proc));
        ASSERT_STREQ(proc->unsupported, "credential_process");
        ASSERT_OK(aws_profile_parse(NULL, config, "default", &dflt));
        ASSERT_TRUE(dflt->found);
        ASSERT_FALSE(aws_profile_has_credentials(dflt)); /* a region only */
        ASSERT_OK(aws_profile_parse(credentials, config, "nope", &none));
        ASSERT_FALSE(none->found);
}

TEST(profile_files_with_garbage_lines_are_refused) {
        AwsProfile *p = NULL;

        ASSERT_ERROR(aws_profile_parse("[ops\naws_access_key_id = x\n", NULL, "ops", &p), -EINVAL);
        ASSERT_ERROR(aws_profile_parse("[ops]\njust words\n", NULL, "ops", &p), -EINVAL);
        ASSERT_NULL(p);
}

TEST(web_identity_form_is_unsigned_query_with_the_token_encoded) {
        _cleanup_(secret_freep) Secret *token = NULL, *tiny = NULL;
        _cleanup_free_ char *form = NULL;
        char *bad = NULL;

        ASSERT_OK(secret_new("eyJ.a+b/c=", 10, &token));
        ASSERT_OK(sts_web_identity_form("arn:aws:iam::123456789012:role/node", "kube2iam-node", 3600, token,
                                        &form));
        ASSERT_STREQ(form,
                     "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A"
                     "123456789012%3Arole%2Fnode&RoleSessionName=kube2iam-node&DurationSeconds=3600&"
                     "WebIdentityToken=eyJ.a%2Bb%2Fc%3D");
        ASSERT_OK(secret_new("abc", 3, &tiny));
        ASSERT_ERROR(sts_web_identity_form("arn:aws:iam::123456789012:role/node", "s1", 3600, tiny, &bad),
                     -EINVAL);
        ASSERT_NULL(bad);
}

TEST(web_identity_reply_parses_like_assume_role) {
        static const char reply[] =
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                "<AssumeRoleWithWebIdentityResult><Credentials><SessionToken>tok</SessionToken>"
                "<SecretAccessKey>sec</SecretAccessKey><Expiration>2030-01-01T00:00:00Z</Expiration>"
                "<AccessKeyId>ASIAWEBIDENTITY00000</AccessKeyId></Credentials>"
                "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        _cleanup_credentials_ Credentials *c = NULL;
        StsError *e = NULL;

        ASSERT_OK(sts_reply_parse(reply, sizeof reply - 1, 200, 0, &c, &e));
        ASSERT_NULL(e);
        ASSERT_STREQ(c->access_key_id, "ASIAWEBIDENTITY00000");
}
