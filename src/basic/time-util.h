/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Time: microsecond clocks, Go-syntax durations (as kube2iam's flags are written) and the
 * timestamp formats our peers use (IMDS "YYYY-MM-DDThh:mm:ssZ", STS and Kubernetes RFC 3339
 * with or without fractional seconds). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MINUTE)
#define USEC_PER_DAY (24ULL * USEC_PER_HOUR)

usec_t now_clock(clockid_t clock);
static inline usec_t now_monotonic(void) {
        return now_clock(CLOCK_MONOTONIC);
}
static inline usec_t now_realtime(void) {
        return now_clock(CLOCK_REALTIME);
}

/* Parses a Go time.Duration string ("300ms", "1h30m", "1.5h", "0") into microseconds.
 * Negative durations and overflow are rejected (-ERANGE); anything malformed gives -EINVAL.
 * Sub-microsecond parts are truncated. */
int parse_duration(const char *s, usec_t *ret);
/* Formats like Go's Duration.String() ("1h30m0s", "500ms", "0s"). */
char *format_duration(usec_t u, char *buf, size_t size);
#define DURATION_MAX 32

/* "2026-05-08T12:00:00Z" (IMDS, kube2iam); realtime usec in, UTC out. */
char *format_timestamp_imds(usec_t realtime, char *buf, size_t size);
/* "2026-05-08T12:00:00.123456Z" for log lines. */
char *format_timestamp_rfc3339(usec_t realtime, char *buf, size_t size);
#define TIMESTAMP_MAX 40
/* Parses RFC 3339 in UTC ("...Z") or with a numeric offset, with optional fractional seconds. */
int parse_timestamp_rfc3339(const char *s, usec_t *ret);

static inline usec_t usec_add(usec_t a, usec_t b) {
        return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}
static inline usec_t usec_sub(usec_t a, usec_t b) {
        return a < b ? 0 : a - b;
}
