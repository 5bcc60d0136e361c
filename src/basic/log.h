/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The log: one place every module writes to. Chooses journald (native protocol, with
 * structured fields) when stderr is connected to the journal ($JOURNAL_STREAM matches fd 2),
 * else one line per entry on stderr in logrus-like text or JSON (--log-format).
 * Levels are syslog's (LOG_ERR ... LOG_DEBUG). Functions that take an error return it as
 * a negative errno, so callers can `return log_error_errno(r, "...: %m");`.
 * Secrets never go here: Secret (secret.h) has no formatting path. */

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogFormat {
        LOG_FORMAT_TEXT,
        LOG_FORMAT_JSON,
} LogFormat;

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* journal if stderr is the journal, else stderr */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
} LogTarget;

/* One structured field. key is a journal field name (upper case, digits, '_'), e.g. POD_NAMESPACE. */
typedef struct LogField {
        const char *key;
        const char *value;
} LogField;

/* Fixed MESSAGE_IDs for the events an operator searches for (journalctl MESSAGE_ID=...), each
 * from `systemd-id128 new`. packaging/kube2iam.catalog explains each one (journalctl -x); a test
 * checks that every id here has its catalog entry. Never reuse an id for another event. */
#define LOG_MESSAGE_ID_STARTED "5ee9ef4a70e34edaa600da036d666f1d"
#define LOG_MESSAGE_ID_REDIRECT "65ccb87ac3be453494c123332b2a5997"
#define LOG_MESSAGE_ID_ROLE_DENIED "466ab932d03d488db650b0f9a8cf6887"
#define LOG_MESSAGE_ID_STS_FAILURE "81f270f3022845b3adef3ddb356701b6"
#define LOG_MESSAGE_ID_CREDS_ISSUED "36aeb0c194cc45e3a4f48830c91337fa"
#define LOG_MESSAGE_ID_STOPPING "ec8b2fd69a524c5b8cbac0782510604c"

void log_set_target(LogTarget t);
void log_set_format(LogFormat f);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses logrus level names (panic, fatal, error, warn, warning, info, debug, trace),
 * case-insensitively, to a syslog level. Returns -EINVAL for anything else. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
/* True when entries go to the journal (after LOG_TARGET_AUTO is resolved). */
bool log_to_journal(void);

int log_internal(int level, int error, const char *file, int line, const char *func, const LogField *fields,
                 size_t n_fields, const char *format, ...) _printf_(8, 9);

#define log_full_errno(level, error, ...) \
        ({ \
                int _l = (level), _e = (error); \
                (log_get_max_level() >= _l) \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __func__, NULL, 0, __VA_ARGS__) \
                        : -abs(_e); \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* With structured fields: log_fields(LOG_INFO, 0, ((LogField[]) { {"POD_NAME", n}, ... }), n_fields, fmt, ...).
 * A field whose value is NULL is left out. */
#define log_fields_errno(level, error, fields, n_fields, ...) \
        ({ \
                int _l = (level), _e = (error); \
                (log_get_max_level() >= _l) \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __func__, fields, n_fields, __VA_ARGS__) \
                        : -abs(_e); \
        })
#define log_fields(level, fields, n_fields, ...) \
        (void) log_fields_errno(level, 0, fields, n_fields, __VA_ARGS__)

/* A token bucket for log lines a remote party can trigger (per-request lines, audit entries).
 * Allows `burst` entries per `interval_usec`; log_ratelimit_test() says whether one more may go. */
typedef struct LogRatelimit {
        unsigned long long interval_usec;
        unsigned burst;
        unsigned long long begin;
        unsigned count;
        unsigned suppressed;
} LogRatelimit;
bool log_ratelimit_test(LogRatelimit *r);
