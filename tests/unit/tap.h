/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* A tiny TAP harness for the C unit tests (meson test, protocol: 'tap').
 *
 *   TEST(parse_duration_accepts_go_syntax) { ASSERT_EQ(x, 3); ... }
 *
 * Each TEST is one TAP line. A failed ASSERT_* prints a diagnostic and ends that test only.
 * tap_skip("why") ends the current test as "ok N # SKIP why". A test program whose whole
 * premise is missing calls tap_skip_all("why") from a test: exit 77, which meson reports as
 * skipped. main() comes from tap.c. */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (*tap_test_fn)(void);

void tap_register(const char *name, tap_test_fn fn);
void tap_fail(const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4), noreturn));
void tap_skip(const char *reason) __attribute__((noreturn));
void tap_skip_all(const char *reason) __attribute__((noreturn));
/* The source root of the repository (for test data). */
const char *tap_source_dir(void);

#define TEST(name) \
        static void test_##name(void); \
        __attribute__((constructor)) static void tap_register_##name(void) { \
                tap_register(#name, test_##name); \
        } \
        static void test_##name(void)

#define ASSERT_TRUE(x) \
        do { \
                if (!(x)) \
                        tap_fail(__FILE__, __LINE__, "expected true: %s", #x); \
        } while (0)
#define ASSERT_FALSE(x) \
        do { \
                if (x) \
                        tap_fail(__FILE__, __LINE__, "expected false: %s", #x); \
        } while (0)
#define ASSERT_EQ(a, b) \
        do { \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b); \
                if (_a != _b) \
                        tap_fail(__FILE__, __LINE__, "%s == %s: %jd != %jd", #a, #b, _a, _b); \
        } while (0)
#define ASSERT_NE(a, b) \
        do { \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b); \
                if (_a == _b) \
                        tap_fail(__FILE__, __LINE__, "%s != %s: both %jd", #a, #b, _a); \
        } while (0)
#define ASSERT_UEQ(a, b) \
        do { \
                uintmax_t _a = (uintmax_t) (a), _b = (uintmax_t) (b); \
                if (_a != _b) \
                        tap_fail(__FILE__, __LINE__, "%s == %s: %ju != %ju", #a, #b, _a, _b); \
        } while (0)
#define ASSERT_STREQ(a, b) \
        do { \
                const char *_a = (a), *_b = (b); \
                if (!_a || !_b || strcmp(_a, _b) != 0) \
                        tap_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, \
                                 _a ? _a : "(null)", _b ? _b : "(null)"); \
        } while (0)
#define ASSERT_NULL(x) ASSERT_TRUE((x) == NULL)
#define ASSERT_NOT_NULL(x) ASSERT_TRUE((x) != NULL)
/* r >= 0 */
#define ASSERT_OK(expr) \
        do { \
                intmax_t _r = (intmax_t) (expr); \
                if (_r < 0) \
                        tap_fail(__FILE__, __LINE__, "%s failed: %jd (%s)", #expr, _r, \
                                 strerror((int) -_r)); \
        } while (0)
/* r == err (a negative errno) */
#define ASSERT_ERROR(expr, err) \
        do { \
                intmax_t _r = (intmax_t) (expr), _e = (intmax_t) (err); \
                if (_r != _e) \
                        tap_fail(__FILE__, __LINE__, "%s: expected %jd (%s), got %jd", #expr, _e, \
                                 strerror((int) -_e), _r); \
        } while (0)
