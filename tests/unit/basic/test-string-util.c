/* SPDX-License-Identifier: BSD-3-Clause */
#include "string-util.h"
#include "tap.h"

TEST(split_args_handles_quotes_and_escapes) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_OK(split_args("  --a=1 --b 'x y' \"q\\\"z\" e\\ f  ", &l));
        ASSERT_EQ(strv_length(l), 5);
        ASSERT_STREQ(l[0], "--a=1");
        ASSERT_STREQ(l[1], "--b");
        ASSERT_STREQ(l[2], "x y");
        ASSERT_STREQ(l[3], "q\"z");
        ASSERT_STREQ(l[4], "e f");
}

TEST(split_args_rejects_unterminated_quote) {
        char **l = NULL;
        ASSERT_ERROR(split_args("--a 'oops", &l), -EINVAL);
        ASSERT_NULL(l);
}

TEST(split_args_empty_gives_empty_vector) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_OK(split_args("   ", &l));
        ASSERT_EQ(strv_length(l), 0);
}

TEST(strv_split_drops_empty_pieces) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_OK(strv_split(",cali+,,eni*,", ",", &l));
        ASSERT_EQ(strv_length(l), 2);
        ASSERT_STREQ(l[0], "cali+");
        ASSERT_STREQ(l[1], "eni*");
}

TEST(strbuf_appends_and_steals) {
        _cleanup_strbuf_ StrBuf b = {};
        _cleanup_free_ char *s = NULL;
        for (int i = 0; i < 1000; i++)
                strbuf_appendf(&b, "%d,", i % 10);
        ASSERT_EQ(b.len, 2000);
        strbuf_append(&b, "end");
        s = strbuf_steal(&b);
        ASSERT_TRUE(endswith(s, "9,end"));
        ASSERT_EQ(b.len, 0);
}

TEST(prefixes) {
        ASSERT_STREQ(startswith("arn:aws:iam", "arn:"), "aws:iam");
        ASSERT_NULL(startswith("ARN:aws", "arn:"));
        ASSERT_STREQ(startswith_no_case("ARN:aws", "arn:"), "aws");
        ASSERT_TRUE(endswith("role/", "/"));
        ASSERT_FALSE(endswith("", "/"));
}

TEST(strbuf_holding_secrets_keeps_its_bytes_while_growing) {
        _cleanup_(strbuf_done_erase) StrBuf b = { .erase = true };
        for (int i = 0; i < 5000; i++)
                strbuf_append_char(&b, (char) ('a' + i % 26));
        ASSERT_EQ(b.len, 5000);
        for (int i = 0; i < 5000; i++)
                if (b.s[i] != (char) ('a' + i % 26))
                        tap_fail(__FILE__, __LINE__, "byte %d changed", i);
        ASSERT_EQ(strbuf_error(&b), 0);
}
