/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "time-util.h"

/* One log entry's formatted message; longer messages are cut (they come from our own format strings
 * plus bounded values, so this only guards against surprises). */
#define LOG_MESSAGE_MAX 4096
#define LOG_FIELDS_MAX 32

static int max_level = LOG_INFO;
static LogFormat format = LOG_FORMAT_TEXT;
static LogTarget target = LOG_TARGET_AUTO;
static int journal_resolved = -1; /* -1: not yet decided */

void log_set_target(LogTarget t) {
        target = t;
        journal_resolved = -1;
}

void log_set_format(LogFormat f) {
        format = f;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const struct {
                const char *name;
                int level;
        } table[] = {
                { "panic", LOG_CRIT },   { "fatal", LOG_CRIT },      { "error", LOG_ERR },
                { "warn", LOG_WARNING }, { "warning", LOG_WARNING }, { "info", LOG_INFO },
                { "debug", LOG_DEBUG },  { "trace", LOG_DEBUG },
        };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcasecmp(s, table[i].name) == 0)
                        return table[i].level;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        switch (level) {
        case LOG_EMERG:
        case LOG_ALERT:
        case LOG_CRIT:
                return "fatal";
        case LOG_ERR:
                return "error";
        case LOG_WARNING:
                return "warning";
        case LOG_NOTICE:
        case LOG_INFO:
                return "info";
        default:
                return "debug";
        }
}

static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

bool log_to_journal(void) {
        if (journal_resolved < 0)
                journal_resolved =
                        target == LOG_TARGET_JOURNAL || (target == LOG_TARGET_AUTO && stderr_is_journal());
        return journal_resolved > 0;
}

static void write_journal(int level, const char *file, int line, const char *func, const LogField *fields,
                          size_t n_fields, const char *msg) {
        char prio[32], code_file[512], code_line[32], code_func[256];
        _cleanup_free_ char *message = NULL;
        struct iovec iov[6 + LOG_FIELDS_MAX];
        char *bufs[LOG_FIELDS_MAX] = {};
        size_t n = 0, nb = 0;

        if (asprintf(&message, "MESSAGE=%s", msg) < 0)
                return;
        snprintf(prio, sizeof prio, "PRIORITY=%i", level);
        snprintf(code_file, sizeof code_file, "CODE_FILE=%s", file);
        snprintf(code_line, sizeof code_line, "CODE_LINE=%i", line);
        snprintf(code_func, sizeof code_func, "CODE_FUNC=%s", func);
        iov[n++] = (struct iovec){ message, strlen(message) };
        iov[n++] = (struct iovec){ prio, strlen(prio) };
        iov[n++] = (struct iovec){ code_file, strlen(code_file) };
        iov[n++] = (struct iovec){ code_line, strlen(code_line) };
        iov[n++] = (struct iovec){ code_func, strlen(code_func) };
        for (size_t i = 0; i < n_fields && nb < LOG_FIELDS_MAX; i++) {
                if (!fields[i].key || !fields[i].value)
                        continue;
                if (asprintf(&bufs[nb], "%s=%s", fields[i].key, fields[i].value) < 0)
                        break;
                iov[n++] = (struct iovec){ bufs[nb], strlen(bufs[nb]) };
                nb++;
        }
        (void) sd_journal_sendv(iov, (int) n);
        for (size_t i = 0; i < nb; i++)
                free(bufs[i]);
}

/* logrus quotes a value when it has anything but [A-Za-z0-9-._/@^+]. */
static bool needs_quoting(const char *s) {
        if (!*s)
                return true;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-._/@^+", *s))
                        return true;
        return false;
}

static void fput_value(FILE *f, const char *s) {
        if (!needs_quoting(s)) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c == '\n')
                        fputs("\\n", f);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

/* Text and JSON lines carry kube2iam's field names, which log pipelines parse: the journal's
 * REQ_METHOD is req.method, POD_IAM_ROLE pod.iam.role, NS_NAME ns.name. MESSAGE_ID is the
 * journal's own and stays there. */
#define LOG_FIELD_NAME_MAX 64

static bool field_name_stderr(const char *key, char *buf, size_t size) {
        size_t i = 0;

        if (!key || streq(key, "MESSAGE_ID"))
                return false;
        for (; key[i] && i < size - 1; i++)
                buf[i] = key[i] == '_' ? '.' : (char) tolower((unsigned char) key[i]);
        buf[i] = '\0';
        return true;
}

typedef struct StderrField {
        char name[LOG_FIELD_NAME_MAX];
        const char *value;
} StderrField;

static int stderr_field_cmp(const void *a, const void *b) {
        return strcmp(((const StderrField *) a)->name, ((const StderrField *) b)->name);
}

/* logrus sorts the fields by name: so do we, in both formats. */
static size_t stderr_fields(const LogField *fields, size_t n_fields,
                            StderrField out[static LOG_FIELDS_MAX]) {
        size_t n = 0;

        for (size_t i = 0; i < n_fields && n < LOG_FIELDS_MAX; i++)
                if (fields[i].value && field_name_stderr(fields[i].key, out[n].name, sizeof out[n].name))
                        out[n++].value = fields[i].value;
        qsort(out, n, sizeof *out, stderr_field_cmp);
        return n;
}

static void write_stderr(int level, const LogField *log_fields, size_t n_log_fields, const char *msg) {
        StderrField fields[LOG_FIELDS_MAX];
        size_t n_fields = stderr_fields(log_fields, n_log_fields, fields);
        char ts[64];

        format_timestamp_rfc3339(now_realtime(), ts, sizeof ts);

        if (format == LOG_FORMAT_JSON) {
                cJSON *o = cJSON_CreateObject();
                char *s;

                if (!o)
                        return;
                cJSON_AddStringToObject(o, "level", log_level_to_string(level));
                cJSON_AddStringToObject(o, "msg", msg);
                cJSON_AddStringToObject(o, "time", ts);
                for (size_t i = 0; i < n_fields; i++) {
                        char *end;
                        double v = strtod(fields[i].value, &end);
                        /* logrus wrote these two as numbers: pipelines compare them as such */
                        if ((streq(fields[i].name, "res.status") || streq(fields[i].name, "res.duration")) &&
                            end != fields[i].value && *end == '\0')
                                cJSON_AddNumberToObject(o, fields[i].name, v);
                        else
                                cJSON_AddStringToObject(o, fields[i].name, fields[i].value);
                }
                s = cJSON_PrintUnformatted(o);
                if (s) {
                        fprintf(stderr, "%s\n", s);
                        cJSON_free(s);
                }
                cJSON_Delete(o);
        } else {
                flockfile(stderr);
                fprintf(stderr, "time=\"%s\" level=%s msg=", ts, log_level_to_string(level));
                fput_value(stderr, msg);
                for (size_t i = 0; i < n_fields; i++) {
                        fprintf(stderr, " %s=", fields[i].name);
                        fput_value(stderr, fields[i].value);
                }
                fputc('\n', stderr);
                funlockfile(stderr);
        }
        fflush(stderr);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), 0 when there is none. */
static size_t utf8_sequence(const unsigned char *s) {
        size_t n;
        unsigned cp;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0; /* also stops at the terminating NUL */
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return n;
}

static bool utf8_valid(const char *s) {
        for (size_t n; *s; s += n)
                if ((n = utf8_sequence((const unsigned char *) s)) == 0)
                        return false;
        return true;
}

/* Pods choose bytes that reach the log (the role in a request path): a byte that is not part of
 * well-formed UTF-8 becomes the text \xNN, so every entry stays valid UTF-8 for the journal (which
 * shows anything else as a blob), JSON consumers and terminals. NULL when out of memory. */
static char *utf8_escape(const char *s) {
        char *out = malloc(strlen(s) * 4 + 1), *p = out;

        if (!out)
                return NULL;
        for (size_t n; *s; s += n) {
                n = utf8_sequence((const unsigned char *) s);
                if (n == 0) {
                        p += sprintf(p, "\\x%02x", (unsigned char) *s);
                        n = 1;
                } else {
                        memcpy(p, s, n);
                        p += n;
                }
        }
        *p = '\0';
        return out;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const LogField *fields,
                 size_t n_fields, const char *fmt, ...) {
        char msg[LOG_MESSAGE_MAX], *safe_msg = NULL, *owned[LOG_FIELDS_MAX] = {};
        LogField safe_fields[LOG_FIELDS_MAX];
        int saved = errno;
        va_list ap;

        if (error != 0)
                errno = abs(error);
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);

        if (!utf8_valid(msg))
                safe_msg = utf8_escape(msg);
        for (size_t i = 0; i < n_fields; i++)
                if (fields[i].value && !utf8_valid(fields[i].value)) {
                        /* rare: copy the fields (the journal keeps LOG_FIELDS_MAX of them anyway) */
                        n_fields = MIN(n_fields, (size_t) LOG_FIELDS_MAX);
                        for (size_t j = 0; j < n_fields; j++) {
                                safe_fields[j] = fields[j];
                                if (fields[j].value && !utf8_valid(fields[j].value))
                                        safe_fields[j].value = owned[j] = utf8_escape(fields[j].value);
                        }
                        fields = safe_fields;
                        break;
                }

        if (log_to_journal())
                write_journal(level, file, line, func, fields, n_fields, safe_msg ?: msg);
        else
                write_stderr(level, fields, n_fields, safe_msg ?: msg);

        free(safe_msg);
        for (size_t i = 0; i < LOG_FIELDS_MAX; i++)
                free(owned[i]);
        errno = saved;
        return -abs(error);
}

bool log_ratelimit_test(LogRatelimit *r) {
        usec_t t = now_monotonic();

        if (r->begin == 0 || t - r->begin > r->interval_usec) {
                if (r->suppressed > 0)
                        log_warning("%u log entries were suppressed by rate limiting", r->suppressed);
                r->begin = t;
                r->count = 0;
                r->suppressed = 0;
        }
        if (r->count < r->burst) {
                r->count++;
                return true;
        }
        r->suppressed++;
        return false;
}

bool log_ratelimit_allow(LogRatelimit *client, LogRatelimit *shared) {
        if (client && !log_ratelimit_test(client))
                return false;
        return !shared || log_ratelimit_test(shared);
}
