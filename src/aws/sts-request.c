/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sigv4.h"
#include "string-util.h"
#include "sts.h"

#define STS_DURATION_MIN 900
#define STS_DURATION_MAX 43200

static bool word_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool session_name_char(char c) {
        return word_char(c) || strchr("+=,.@-", c);
}

static bool chars_valid(const char *s, const char *extra, size_t min, size_t max) {
        size_t n = strlen(s);

        if (n < min || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!word_char(s[i]) && !strchr(extra, s[i]))
                        return false;
        return true;
}

static bool role_arn_valid(const char *arn) {
        size_t n = strlen(arn);

        if (n < STS_ROLE_ARN_MIN || n > STS_ROLE_ARN_MAX || !startswith(arn, "arn:"))
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) arn[i] < 0x21 || (unsigned char) arn[i] > 0x7e)
                        return false;
        return true;
}

bool sts_tag_key_valid(const char *key) {
        return key && chars_valid(key, " .:/=+-@", 1, STS_TAG_KEY_MAX);
}

bool sts_tag_value_valid(const char *value) {
        return value && chars_valid(value, " .:/=+-@", 0, STS_TAG_VALUE_MAX);
}

int sts_session_tags_params(const StsTag *tags, size_t n, char **ret) {
        _cleanup_strbuf_ StrBuf b = {};
        int r;

        if (!ret || n > STS_TAGS_MAX || (n > 0 && !tags))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!sts_tag_key_valid(tags[i].key) || !sts_tag_value_valid(tags[i].value))
                        return -EINVAL;
                strbuf_appendf(&b, "&Tags.member.%zu.Key=", i + 1);
                sigv4_uri_encode(&b, tags[i].key, strlen(tags[i].key), false);
                strbuf_appendf(&b, "&Tags.member.%zu.Value=", i + 1);
                sigv4_uri_encode(&b, tags[i].value, strlen(tags[i].value), false);
        }
        for (size_t i = 0; i < n; i++) {
                strbuf_appendf(&b, "&TransitiveTagKeys.member.%zu=", i + 1);
                sigv4_uri_encode(&b, tags[i].key, strlen(tags[i].key), false);
        }
        strbuf_append(&b, "");
        r = strbuf_error(&b);
        if (r < 0)
                return r;
        *ret = strbuf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

/* Appends the percent-decoded [s, s + n) to b; -EINVAL for a broken escape. */
static int uri_decode_append(StrBuf *b, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int hi, lo;
                if (s[i] != '%') {
                        strbuf_append_n(b, &s[i], 1);
                        continue;
                }
                if (i + 2 >= n)
                        return -EINVAL;
                hi = unhexchar(s[i + 1]);
                lo = unhexchar(s[i + 2]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                char c = (char) (hi << 4 | lo);
                strbuf_append_n(b, &c, 1);
                i += 2;
        }
        return 0;
}

int sts_session_tags_describe(const char *params, size_t max, char **ret) {
        _cleanup_strbuf_ StrBuf b = {};
        const char *p = params;
        size_t whole = 0; /* the length up to the last tag that fit */
        bool cut = false;
        int r;

        if (!ret)
                return -EINVAL;
        strbuf_append(&b, "");
        while (p && *p) {
                const char *part = *p == '&' ? p + 1 : p, *end = strchrnul(part, '&');
                const char *eq = memchr(part, '=', end - part);
                bool tag = eq && startswith(part, "Tags.member.");
                bool key = tag && eq - part > 4 && !memcmp(eq - 4, ".Key", 4);
                bool value = tag && eq - part > 6 && !memcmp(eq - 6, ".Value", 6);

                p = end;
                if (!key && !value)
                        continue;
                if (key && b.len > 0)
                        strbuf_append(&b, ",");
                if (value)
                        strbuf_append(&b, "=");
                r = uri_decode_append(&b, eq + 1, end - eq - 1);
                if (r < 0)
                        return r;
                if (value) {
                        if (b.len > max) {
                                cut = true;
                                break;
                        }
                        whole = b.len;
                }
        }
        r = strbuf_error(&b);
        if (r < 0)
                return r;
        if (cut) {
                b.s[whole] = 0;
                b.len = whole;
                strbuf_append(&b, ",...");
        }
        *ret = strbuf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

bool sts_policy_arn_valid(const char *arn) {
        return arn && role_arn_valid(arn);
}

int sts_session_add_policy_arns(char **params, char *const *arns) {
        _cleanup_strbuf_ StrBuf b = {};
        size_t n = 0;
        int r;

        if (!params || !*params)
                return -EINVAL;
        strbuf_append(&b, *params);
        for (; arns && arns[n]; n++) {
                if (n >= STS_POLICY_ARNS_MAX || !sts_policy_arn_valid(arns[n]))
                        return -EINVAL;
                strbuf_appendf(&b, "&PolicyArns.member.%zu.arn=", n + 1);
                sigv4_uri_encode(&b, arns[n], strlen(arns[n]), false);
        }
        r = strbuf_error(&b);
        if (r < 0)
                return r;
        free(*params);
        *params = strbuf_steal(&b);
        return *params ? 0 : -ENOMEM;
}

int sts_assume_role_form(const char *role_arn, const char *session_name, unsigned duration_sec,
                         const char *external_id, const char *session_params, char **ret) {
        _cleanup_strbuf_ StrBuf b = {};
        int r;

        if (!role_arn || !session_name || !ret)
                return -EINVAL;
        if (!role_arn_valid(role_arn) || !chars_valid(session_name, "+=,.@-", 2, STS_SESSION_NAME_MAX) ||
            duration_sec < STS_DURATION_MIN || duration_sec > STS_DURATION_MAX)
                return -EINVAL;
        if (!isempty(external_id) &&
            !chars_valid(external_id, "+=,.@:/-", STS_EXTERNAL_ID_MIN, STS_EXTERNAL_ID_MAX))
                return -EINVAL;

        strbuf_append(&b, "Action=AssumeRole&Version=2011-06-15&RoleArn=");
        sigv4_uri_encode(&b, role_arn, strlen(role_arn), false);
        strbuf_append(&b, "&RoleSessionName=");
        sigv4_uri_encode(&b, session_name, strlen(session_name), false);
        strbuf_appendf(&b, "&DurationSeconds=%u", duration_sec);
        if (!isempty(external_id)) {
                strbuf_append(&b, "&ExternalId=");
                sigv4_uri_encode(&b, external_id, strlen(external_id), false);
        }
        if (!isempty(session_params))
                strbuf_append(&b, session_params);
        r = strbuf_error(&b);
        if (r < 0)
                return r;
        *ret = strbuf_steal(&b);
        return 0;
}

int sts_web_identity_form(const char *role_arn, const char *session_name, unsigned duration_sec,
                          const Secret *token, char **ret) {
        _cleanup_(strbuf_done_erase) StrBuf b = { .erase = true };
        size_t n;
        int r;

        if (!role_arn || !session_name || !token || !ret)
                return -EINVAL;
        n = secret_size(token);
        if (!role_arn_valid(role_arn) || !chars_valid(session_name, "+=,.@-", 2, STS_SESSION_NAME_MAX) ||
            duration_sec < STS_DURATION_MIN || duration_sec > STS_DURATION_MAX ||
            n < STS_WEB_IDENTITY_TOKEN_MIN || n > STS_WEB_IDENTITY_TOKEN_MAX)
                return -EINVAL;
        strbuf_append(&b, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=");
        sigv4_uri_encode(&b, role_arn, strlen(role_arn), false);
        strbuf_append(&b, "&RoleSessionName=");
        sigv4_uri_encode(&b, session_name, strlen(session_name), false);
        strbuf_appendf(&b, "&DurationSeconds=%u&WebIdentityToken=", duration_sec);
        sigv4_uri_encode(&b, secret_reveal(token), n, false);
        r = strbuf_error(&b);
        if (r < 0)
                return r;
        *ret = strbuf_steal(&b);
        return 0;
}

/* The part of a shortened pod session name kept from "<namespace>.<name>", then '=' and 12 hex. */
#define STS_POD_SESSION_PREFIX (STS_SESSION_NAME_MAX - 1 - 12)

int sts_pod_session_name(const char *namespace, const char *name, char **ret) {
        _cleanup_free_ char *full = NULL, *path = NULL;
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned n_digest = 0;

        if (isempty(namespace) || isempty(name) || !ret)
                return -EINVAL;
        if (asprintf(&full, "%s.%s", namespace, name) < 0 || asprintf(&path, "%s/%s", namespace, name) < 0)
                return -ENOMEM;
        if (!chars_valid(full, "+,.@-", 2, SIZE_MAX))
                return -EINVAL; /* '=' is ours, and Kubernetes names never hold it */
        if (strlen(full) <= STS_SESSION_NAME_MAX) {
                *ret = TAKE_PTR(full);
                return 0;
        }
        if (EVP_Digest(path, strlen(path), digest, &n_digest, EVP_sha256(), NULL) != 1 || n_digest < 6)
                return -ENOMEM;
        full[STS_POD_SESSION_PREFIX] = '\0';
        if (asprintf(ret, "%s=%02x%02x%02x%02x%02x%02x", full, digest[0], digest[1], digest[2], digest[3],
                     digest[4], digest[5]) < 0)
                return -ENOMEM;
        return 0;
}

uint32_t sts_fnv32a(const char *s) {
        uint32_t h = 2166136261u;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                h ^= *p;
                h *= 16777619u;
        }
        return h;
}

int sts_role_session_name(const char *caller_ip, const char *role_arn, char **ret) {
        const char *name;
        char buf[STS_SESSION_NAME_MAX + 1];
        size_t n;

        if (!caller_ip || !role_arn || !ret)
                return -EINVAL;
        name = strrchr(role_arn, '/');
        name = name ? name + 1 : role_arn;
        n = (size_t) snprintf(buf, sizeof buf, "%x-", sts_fnv32a(caller_ip));
        for (const char *p = name; *p && n < STS_SESSION_NAME_MAX; p++)
                if (session_name_char(*p))
                        buf[n++] = *p;
        buf[n] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

static const char *const throttle_codes[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
};

/* botocore standard retry's transient codes (retries/standard.py), plus AWS's generic 5xx codes. */
static const char *const transient_codes[] = {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "IDPCommunicationError",
        /* about the node's own credentials or clock, not the role: they heal when those are renewed */
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
};

bool sts_error_code_is_throttle(const char *code) {
        for (size_t i = 0; code && i < ELEMENTSOF(throttle_codes); i++)
                if (streq(code, throttle_codes[i]))
                        return true;
        return false;
}

StsErrorClass sts_error_classify(const char *code, long http_status) {
        if (sts_error_code_is_throttle(code) || http_status == 429)
                return STS_ERROR_THROTTLED;
        for (size_t i = 0; code && i < ELEMENTSOF(transient_codes); i++)
                if (streq(code, transient_codes[i]))
                        return STS_ERROR_TRANSIENT;
        if (http_status >= 500 || http_status == 0)
                return STS_ERROR_TRANSIENT;
        return STS_ERROR_DENIED;
}

const char *sts_error_class_to_string(StsErrorClass c) {
        switch (c) {
        case STS_ERROR_THROTTLED:
                return "throttled";
        case STS_ERROR_TRANSIENT:
                return "transient";
        case STS_ERROR_DENIED:
                return "denied";
        }
        return "unknown";
}

int sts_error_new(StsErrorClass class, int error, long http_status, const char *code, const char *message,
                  StsError **ret) {
        StsError *e;

        if (!ret || isempty(code))
                return -EINVAL;
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->class = class;
        e->error = error < 0 ? error : -EIO;
        e->http_status = http_status;
        e->code = strndup(code, STS_ERROR_CODE_MAX);
        e->message = message ? strndup(message, STS_ERROR_MESSAGE_MAX) : NULL;
        if (!e->code || (message && !e->message)) {
                sts_error_free(e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

StsError *sts_error_free(StsError *e) {
        if (!e)
                return NULL;
        free(e->code);
        free(e->message);
        free(e->request_id);
        free(e->type);
        free(e);
        return NULL;
}

int sts_error_dup(const StsError *e, StsError **ret) {
        _cleanup_(sts_error_freep) StsError *d = NULL;
        int r;

        if (!e || !ret)
                return -EINVAL;
        r = sts_error_new(e->class, e->error, e->http_status, e->code, e->message, &d);
        if (r < 0)
                return r;
        if ((e->request_id && !(d->request_id = strdup(e->request_id))) ||
            (e->type && !(d->type = strdup(e->type))))
                return -ENOMEM;
        *ret = TAKE_PTR(d);
        return 0;
}

int sts_error_describe(const StsError *e, char **ret) {
        int r;

        if (!e || !ret)
                return -EINVAL;
        if (e->http_status > 0)
                r = asprintf(
                        ret,
                        "operation error STS: AssumeRole, https response error StatusCode: %ld, RequestID: "
                        "%s, api error %s%s%s",
                        e->http_status, strempty(e->request_id), e->code, e->message ? ": " : "",
                        strempty(e->message));
        else
                r = asprintf(ret, "operation error STS: AssumeRole, %s%s%s", e->code, e->message ? ": " : "",
                             strempty(e->message));
        return r < 0 ? -ENOMEM : 0;
}

int sts_refusal_error(StsRefusal refusal, int error, StsError **ret) {
        switch (refusal) {
        case STS_REFUSAL_PARTITION_MISMATCH:
                return sts_error_new(STS_ERROR_DENIED, error, 0, "PartitionMismatch",
                                     "the role ARN's partition differs from the region's", ret);
        case STS_REFUSAL_INVALID_PARAMETER:
                return sts_error_new(STS_ERROR_DENIED, error, 0, "InvalidParameter",
                                     "role ARN, session name or external id rejected by AssumeRole's limits",
                                     ret);
        case STS_REFUSAL_NO_REGION:
                return sts_error_new(STS_ERROR_TRANSIENT, error, 0, "NoRegion",
                                     "no AWS region known yet (AWS_REGION or IMDS placement/region)", ret);
        case STS_REFUSAL_NO_NODE_CREDENTIALS:
                return sts_error_new(STS_ERROR_TRANSIENT, error, 0, "NoNodeCredentials",
                                     "the node's own credentials are not available yet", ret);
        default: /* busy, internal: retried like any transient failure */
                return sts_error_new(STS_ERROR_TRANSIENT, error, 0, "InternalError", NULL, ret);
        }
}
