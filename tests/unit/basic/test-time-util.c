/* SPDX-License-Identifier: BSD-3-Clause */
#include "tap.h"
#include "time-util.h"

TEST(parse_duration_accepts_go_syntax) {
        usec_t u;
        ASSERT_OK(parse_duration("0", &u));
        ASSERT_UEQ(u, 0);
        ASSERT_OK(parse_duration("500ms", &u));
        ASSERT_UEQ(u, 500 * USEC_PER_MSEC);
        ASSERT_OK(parse_duration("15m", &u));
        ASSERT_UEQ(u, 15 * USEC_PER_MINUTE);
        ASSERT_OK(parse_duration("1h30m", &u));
        ASSERT_UEQ(u, 90 * USEC_PER_MINUTE);
        ASSERT_OK(parse_duration("1.5h", &u));
        ASSERT_UEQ(u, 90 * USEC_PER_MINUTE);
        ASSERT_OK(parse_duration("2h45m30.5s", &u));
        ASSERT_UEQ(u, 2 * USEC_PER_HOUR + 45 * USEC_PER_MINUTE + 30 * USEC_PER_SEC + 500 * USEC_PER_MSEC);
        ASSERT_OK(parse_duration("1500us", &u));
        ASSERT_UEQ(u, 1500);
        ASSERT_OK(parse_duration("3\xc2\xb5s", &u));
        ASSERT_UEQ(u, 3);
        ASSERT_OK(parse_duration("2000ns", &u));
        ASSERT_UEQ(u, 2);
        ASSERT_OK(parse_duration("+10s", &u));
        ASSERT_UEQ(u, 10 * USEC_PER_SEC);
        ASSERT_OK(parse_duration(".5s", &u));
        ASSERT_UEQ(u, 500 * USEC_PER_MSEC);
        ASSERT_OK(parse_duration("1m1m", &u));
        ASSERT_UEQ(u, 2 * USEC_PER_MINUTE);
}

TEST(parse_duration_rejects_malformed) {
        usec_t u = 42;
        ASSERT_ERROR(parse_duration("", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("15", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("m", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("1d", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("1h 30m", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("one", &u), -EINVAL);
        ASSERT_ERROR(parse_duration(".s", &u), -EINVAL);
        ASSERT_ERROR(parse_duration("-1s", &u), -ERANGE);
        ASSERT_ERROR(parse_duration("9999999999999h", &u), -ERANGE);
        ASSERT_ERROR(parse_duration("99999999999999999999999s", &u), -ERANGE);
        ASSERT_UEQ(u, 42);
}

TEST(format_duration_matches_go) {
        char b[DURATION_MAX];
        ASSERT_STREQ(format_duration(0, b, sizeof b), "0s");
        ASSERT_STREQ(format_duration(15 * USEC_PER_MINUTE, b, sizeof b), "15m0s");
        ASSERT_STREQ(format_duration(90 * USEC_PER_MINUTE, b, sizeof b), "1h30m0s");
        ASSERT_STREQ(format_duration(500 * USEC_PER_MSEC, b, sizeof b), "500ms");
        ASSERT_STREQ(format_duration(2 * USEC_PER_SEC, b, sizeof b), "2s");
        ASSERT_STREQ(format_duration(1500 * USEC_PER_MSEC, b, sizeof b), "1.5s");
}

TEST(timestamps_round_trip) {
        char b[TIMESTAMP_MAX];
        usec_t u;

        ASSERT_OK(parse_timestamp_rfc3339("2026-05-08T12:30:00Z", &u));
        ASSERT_STREQ(format_timestamp_imds(u, b, sizeof b), "2026-05-08T12:30:00Z");
        ASSERT_OK(parse_timestamp_rfc3339("2011-07-15T23:28:33.359Z", &u));
        ASSERT_UEQ(u % USEC_PER_SEC, 359000);
        ASSERT_STREQ(format_timestamp_imds(u, b, sizeof b), "2011-07-15T23:28:33Z");
        ASSERT_OK(parse_timestamp_rfc3339("2026-05-08T14:30:00+02:00", &u));
        ASSERT_STREQ(format_timestamp_imds(u, b, sizeof b), "2026-05-08T12:30:00Z");
        ASSERT_OK(parse_timestamp_rfc3339("2026-01-01T00:00:00.123456789Z", &u));
        ASSERT_UEQ(u % USEC_PER_SEC, 123456);
        ASSERT_ERROR(parse_timestamp_rfc3339("2026-13-01T00:00:00Z", &u), -EINVAL);
        ASSERT_ERROR(parse_timestamp_rfc3339("2026-01-01 00:00:00", &u), -EINVAL);
        ASSERT_ERROR(parse_timestamp_rfc3339("2026-01-01T00:00:00Zjunk", &u), -EINVAL);
        ASSERT_ERROR(parse_timestamp_rfc3339("garbage", &u), -EINVAL);
}
