/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

/* imds-service.h uses StrBuf and Credentials without including their headers */
#include "aws/credentials.h"
#include "string-util.h"
#include "imds-service.h"
#include "tap.h"

#define T0 ((usec_t) 1780000000 * USEC_PER_SEC)

static Credentials *make(const char *secret, const char *token) {
        Secret *s = NULL, *t = NULL;
        Credentials *c = NULL;

        ASSERT_OK(secret_new(secret, strlen(secret), &s));
        ASSERT_OK(secret_new(token, strlen(token), &t));
        ASSERT_OK(credentials_new("ASIAEXAMPLE123456", s, t, T0 + USEC_PER_HOUR, T0, &c));
        return c;
}

TEST(credential_document_has_imds_shape_and_order) {
        _cleanup_(credentials_unrefp) Credentials *c =
                make("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                     "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJH");
        _cleanup_(strbuf_done_erase) StrBuf b = {};

        ASSERT_OK(imds_credentials_json(c, NULL, &b));
        ASSERT_STREQ(strbuf_str(&b),
                     "{\n"
                     "  \"Code\" : \"Success\",\n"
                     "  \"LastUpdated\" : \"2026-05-28T20:26:40Z\",\n"
                     "  \"Type\" : \"AWS-HMAC\",\n"
                     "  \"AccessKeyId\" : \"ASIAEXAMPLE123456\",\n"
                     "  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\",\n"
                     "  \"Token\" : \"IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJH\",\n"
                     "  \"Expiration\" : \"2026-05-28T21:26:40Z\"\n"
                     "}");
}

TEST(credential_document_escapes_quotes_backslashes_and_control_bytes_anywhere) {
        /* escapes at the start, in the middle and at the end of a run */
        _cleanup_(credentials_unrefp) Credentials *c = make("\"a\\b\"", "x\ny\x01z\\");
        _cleanup_(strbuf_done_erase) StrBuf b = {};

        ASSERT_OK(imds_credentials_json(c, NULL, &b));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "\"SecretAccessKey\" : \"\\\"a\\\\b\\\"\",\n"));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "\"Token\" : \"x\\u000ay\\u0001z\\\\\",\n"));
}

TEST(credential_document_escapes_inside_long_runs_of_plain_bytes) {
        /* the plain-text check reads eight bytes at a time: an escape in the middle of a word, in
         * the tail after the last whole word, and bytes >= 0x80 that need none */
        _cleanup_(credentials_unrefp) Credentials *c =
                make("0123456789abc\"defghij", "ABCDEFGHIJKLMNOPQ\x1f");
        _cleanup_(credentials_unrefp) Credentials *u = make("s", "ABCDEFGH\xc3\xa9IJKLMNOP\x7f~!");
        _cleanup_(strbuf_done_erase) StrBuf b = {}, v = {};

        ASSERT_OK(imds_credentials_json(c, NULL, &b));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "\"SecretAccessKey\" : \"0123456789abc\\\"defghij\",\n"));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "\"Token\" : \"ABCDEFGHIJKLMNOPQ\\u001f\",\n"));
        ASSERT_OK(imds_credentials_json(u, NULL, &v));
        ASSERT_NOT_NULL(strstr(strbuf_str(&v), "\"Token\" : \"ABCDEFGH\xc3\xa9IJKLMNOP\x7f~!\",\n"));
}

TEST(empty_token_is_an_empty_string) {
        _cleanup_(credentials_unrefp) Credentials *c = make("s", "");
        _cleanup_(strbuf_done_erase) StrBuf b = {};

        ASSERT_OK(imds_credentials_json(c, NULL, &b));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "\"Token\" : \"\",\n"));
}

TEST(extended_document_adds_the_account_last) {
        _cleanup_(credentials_unrefp) Credentials *c = make("s", "t");
        _cleanup_(strbuf_done_erase) StrBuf b = {};
        char account[IMDS_ACCOUNT_ID_MAX];

        ASSERT_OK(imds_account_from_arn("arn:aws:iam::123456789012:role/path/app", account));
        ASSERT_STREQ(account, "123456789012");
        ASSERT_OK(imds_credentials_json(c, account, &b));
        ASSERT_NOT_NULL(strstr(strbuf_str(&b), "  \"Expiration\" : \"2026-05-28T21:26:40Z\",\n"
                                               "  \"AccountId\" : \"123456789012\"\n}"));
}

TEST(account_of_an_arn_is_digits_or_nothing) {
        char account[IMDS_ACCOUNT_ID_MAX];

        ASSERT_OK(imds_account_from_arn("arn:aws-cn:iam::000000000001:role/x", account));
        ASSERT_STREQ(account, "000000000001");
        ASSERT_EQ(imds_account_from_arn("arn:aws:iam:::role/x", account), -EINVAL);
        ASSERT_EQ(imds_account_from_arn("arn:aws:iam::12ab:role/x", account), -EINVAL);
        ASSERT_EQ(imds_account_from_arn("my-role", account), -EINVAL);
        ASSERT_EQ(imds_account_from_arn("arn:aws:iam::123456789012", account), -EINVAL);
}
