/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "time-util.h"

usec_t now_clock(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Go's unit table, in nanoseconds. */
static const struct {
        const char *suffix;
        uint64_t nsec;
} duration_units[] = {
        { "ns", 1ULL },
        { "us", 1000ULL },
        { "\xc2\xb5s", 1000ULL }, /* U+00B5 micro sign */
        { "\xce\xbcs", 1000ULL }, /* U+03BC Greek mu */
        { "ms", 1000000ULL },
        { "s", 1000000000ULL },
        { "m", 60ULL * 1000000000ULL },
        { "h", 3600ULL * 1000000000ULL },
};

int parse_duration(const char *s, usec_t *ret) {
        const char *p = s;
        uint64_t total = 0; /* nanoseconds */

        if (!s || !*s)
                return -EINVAL;
        if (*p == '+')
                p++;
        else if (*p == '-') {
                /* "-0" is still zero in Go; any other negative value is out of range for us */
                if (streq(p, "-0")) {
                        *ret = 0;
                        return 0;
                }
                return strchr("0123456789.", p[1] ?: 'x') ? -ERANGE : -EINVAL;
        }
        if (streq(p, "0")) {
                *ret = 0;
                return 0;
        }
        if (!*p)
                return -EINVAL;

        while (*p) {
                uint64_t whole = 0, frac = 0, scale = 1, unit = 0;
                bool digits = false;
                size_t best = 0;

                while (isdigit((unsigned char) *p)) {
                        if (whole > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        whole = whole * 10 + (uint64_t) (*p - '0');
                        p++;
                        digits = true;
                }
                if (*p == '.') {
                        p++;
                        while (isdigit((unsigned char) *p)) {
                                /* keep up to 18 fractional digits, ignore the rest as Go does */
                                if (scale < 1000000000000000000ULL) {
                                        frac = frac * 10 + (uint64_t) (*p - '0');
                                        scale *= 10;
                                }
                                p++;
                                digits = true;
                        }
                }
                if (!digits)
                        return -EINVAL;

                for (size_t i = 0; i < ELEMENTSOF(duration_units); i++) {
                        size_t l = strlen(duration_units[i].suffix);
                        if (strncmp(p, duration_units[i].suffix, l) == 0 && l > best) {
                                /* "m" must not swallow the "m" of "ms" */
                                best = l;
                                unit = duration_units[i].nsec;
                        }
                }
                if (best == 0)
                        return -EINVAL; /* Go: "missing unit in duration" */
                p += best;

                if (whole > UINT64_MAX / unit)
                        return -ERANGE;
                uint64_t v = whole * unit;
                /* fraction: frac/scale * unit, computed without overflow for scale <= 1e18 */
                long double f = (long double) frac * (long double) unit / (long double) scale;
                if ((long double) (UINT64_MAX - v) < f)
                        return -ERANGE;
                v += (uint64_t) f;
                if (v > UINT64_MAX - total || v + total > (uint64_t) INT64_MAX)
                        return -ERANGE; /* Go's limit: about 292 years */
                total += v;
        }

        *ret = total / NSEC_PER_USEC;
        return 0;
}

char *format_duration(usec_t u, char *buf, size_t size) {
        if (u == 0) {
                snprintf(buf, size, "0s");
                return buf;
        }
        if (u < USEC_PER_SEC) {
                if (u % USEC_PER_MSEC == 0)
                        snprintf(buf, size, "%llums", (unsigned long long) (u / USEC_PER_MSEC));
                else if (u >= USEC_PER_MSEC)
                        snprintf(buf, size, "%llu.%03llums", (unsigned long long) (u / USEC_PER_MSEC),
                                 (unsigned long long) (u % USEC_PER_MSEC));
                else
                        snprintf(buf, size, "%lluµs", (unsigned long long) u);
                return buf;
        }

        unsigned long long h = u / USEC_PER_HOUR, m = (u % USEC_PER_HOUR) / USEC_PER_MINUTE,
                           s = (u % USEC_PER_MINUTE) / USEC_PER_SEC, us = u % USEC_PER_SEC;
        char secs[32];

        if (us == 0)
                snprintf(secs, sizeof secs, "%llus", s);
        else {
                /* Go prints the fraction without trailing zeros */
                char frac[8];
                snprintf(frac, sizeof frac, "%06llu", us);
                for (int i = 5; i > 0 && frac[i] == '0'; i--)
                        frac[i] = '\0';
                snprintf(secs, sizeof secs, "%llu.%ss", s, frac);
        }
        if (h > 0)
                snprintf(buf, size, "%lluh%llum%s", h, m, secs);
        else if (m > 0)
                snprintf(buf, size, "%llum%s", m, secs);
        else
                snprintf(buf, size, "%s", secs);
        return buf;
}

/* width decimal digits of v, zero-padded; returns the end */
static char *put_digits(char *p, unsigned v, unsigned width) {
        for (unsigned i = width; i > 0; i--) {
                p[i - 1] = (char) ('0' + v % 10);
                v /= 10;
        }
        return p + width;
}

char *format_timestamp_imds(usec_t realtime, char *buf, size_t size) {
        time_t t = (time_t) (realtime / USEC_PER_SEC);
        struct tm tm;

        /* digits by hand: strftime() was 4% of a cached credential request (bench/, callgrind) */
        if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999 ||
            size < sizeof "YYYY-MM-DDTHH:MM:SSZ") {
                if (size > 0)
                        buf[0] = '\0';
                return buf;
        }
        char *p = buf;
        p = put_digits(p, (unsigned) tm.tm_year + 1900, 4);
        *p++ = '-';
        p = put_digits(p, (unsigned) tm.tm_mon + 1, 2);
        *p++ = '-';
        p = put_digits(p, (unsigned) tm.tm_mday, 2);
        *p++ = 'T';
        p = put_digits(p, (unsigned) tm.tm_hour, 2);
        *p++ = ':';
        p = put_digits(p, (unsigned) tm.tm_min, 2);
        *p++ = ':';
        p = put_digits(p, (unsigned) tm.tm_sec, 2);
        *p++ = 'Z';
        *p = '\0';
        return buf;
}

char *format_timestamp_rfc3339(usec_t realtime, char *buf, size_t size) {
        time_t t = (time_t) (realtime / USEC_PER_SEC);
        char base[32];
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                base[0] = '\0';
        snprintf(buf, size, "%s.%06lluZ", base, (unsigned long long) (realtime % USEC_PER_SEC));
        return buf;
}

static int parse_digits(const char **p, int n, int *ret) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char) (*p)[i]))
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int parse_timestamp_rfc3339(const char *s, usec_t *ret) {
        int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
        usec_t frac = 0;
        const char *p = s;
        struct tm tm = {};
        time_t t;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &Y) < 0 || *p++ != '-' || parse_digits(&p, 2, &M) < 0 || *p++ != '-' ||
            parse_digits(&p, 2, &D) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
                return -EINVAL;
        p++;
        if (parse_digits(&p, 2, &h) < 0 || *p++ != ':' || parse_digits(&p, 2, &m) < 0 || *p++ != ':' ||
            parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                usec_t scale = USEC_PER_SEC;
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++)
                        if (scale > 1) {
                                scale /= 10;
                                frac += (usec_t) (*p - '0') * scale;
                        }
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                sign = *p == '+' ? 1 : -1;
                p++;
                if (parse_digits(&p, 2, &oh) < 0 || *p++ != ':' || parse_digits(&p, 2, &om) < 0)
                        return -EINVAL;
        } else
                return -EINVAL;
        if (*p != '\0')
                return -EINVAL;
        if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || oh > 23 || om > 59)
                return -EINVAL;

        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        t -= (time_t) sign * (oh * 3600 + om * 60);
        if (t < 0)
                return -ERANGE;
        *ret = (usec_t) t * USEC_PER_SEC + frac;
        return 0;
}
