/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* STS AssumeRole over the Query API: the request form, kube2iam's RoleSessionName, the reply
 * (success or error) parsed into Credentials or a classified StsError. The reply parser
 * (sts-reply.c) is the only file that includes libxml2. The asynchronous client is sts-client.h. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"

/* AssumeRole API limits (botocore data/sts/2011-06-15/service-2.json). */
#define STS_ROLE_ARN_MIN 20
#define STS_ROLE_ARN_MAX 2048
#define STS_SESSION_NAME_MAX 64
#define STS_EXTERNAL_ID_MIN 2
#define STS_EXTERNAL_ID_MAX 1224
/* A real reply is a few KB (the session token is the only large part, "size not fixed"); a
 * megabyte leaves room for any token while bounding what a broken peer can make us hold. */
#define STS_REPLY_MAX_BYTES (1024 * 1024)
/* Error codes and messages are echoed to logs and metric labels: keep them short. */
#define STS_ERROR_CODE_MAX 128
#define STS_ERROR_MESSAGE_MAX 1024
/* AssumedRoleId: the role's unique id (up to 128) ':' the session name (up to 64). */
#define STS_ASSUMED_ROLE_ID_MAX 193

typedef enum StsErrorClass {
        STS_ERROR_THROTTLED, /* a throttling code: retry later, and slow the token bucket down */
        STS_ERROR_TRANSIENT, /* 5xx, timeouts, transport failures, garbage: retry with backoff */
        STS_ERROR_DENIED, /* AccessDenied and other client errors: never retried, cached for the error TTL */
} StsErrorClass;

typedef struct StsError {
        StsErrorClass class;
        int error;        /* negative errno (transport failure, -EACCES for a denial, ...) */
        long http_status; /* 0 when no reply was received */
        char *code;       /* AWS error code, "Throttling"; never NULL */
        char *message;    /* may be NULL */
        char *request_id; /* may be NULL */
        char *type;       /* "Sender" | "Receiver" | NULL */
} StsError;

/* Why sts_assume_role() refused a call before sending anything. The caller turns it into an
 * StsError with sts_refusal_error(); the negative errno beside it is only for the log. */
typedef enum StsRefusal {
        STS_REFUSAL_INVALID_PARAMETER,   /* ARN, session name, duration or external id outside AssumeRole's
                                          * limits: permanent */
        STS_REFUSAL_PARTITION_MISMATCH,  /* the role ARN's partition differs from the region's: permanent */
        STS_REFUSAL_NO_REGION,           /* no AWS region known yet: transient */
        STS_REFUSAL_NO_NODE_CREDENTIALS, /* the node's own credentials are not there yet: transient */
        STS_REFUSAL_BUSY,                /* STS_CLIENT_MAX_CALLS calls run: transient */
        STS_REFUSAL_INTERNAL,            /* out of memory, signing failed: transient */
        _STS_REFUSAL_MAX,
} StsRefusal;

/* The StsError a refusal stands for (class, AWS-style code and message); error is the call's
 * negative errno. */
int sts_refusal_error(StsRefusal refusal, int error, StsError **ret);

/* code and message are copied (NULL message allowed). */
int sts_error_new(StsErrorClass class, int error, long http_status, const char *code, const char *message,
                  StsError **ret);
StsError *sts_error_free(StsError *e);
int sts_error_dup(const StsError *e, StsError **ret);
DEFINE_TRIVIAL_CLEANUP_FUNC(StsError *, sts_error_free);
const char *sts_error_class_to_string(StsErrorClass c);
/* The error as kube2iam's AWS SDK worded it, in its 500 body and its "Error assuming role" line:
 * "operation error STS: AssumeRole, https response error StatusCode: 403, RequestID: <id>, api error
 * <Code>: <message>"; without a reply "operation error STS: AssumeRole, <Code>: <message>". The
 * fields people search for (status, request id, code) keep the SDK's order. */
int sts_error_describe(const StsError *e, char **ret);

/* botocore's standard-mode throttling codes. */
bool sts_error_code_is_throttle(const char *code);
/* Classifies an AWS error code with the HTTP status it came with. */
StsErrorClass sts_error_classify(const char *code, long http_status);

/* Session tags (AssumeRole's Tags): at most 50, keys 1..128 and values 0..256 characters of letters,
 * digits, spaces and _.:/=+-@ (docs/sessions.md). */
#define STS_TAGS_MAX 50
#define STS_TAG_KEY_MAX 128
#define STS_TAG_VALUE_MAX 256

typedef struct StsTag {
        const char *key;
        const char *value;
} StsTag;

/* Whether STS accepts this key, or this value (ASCII letters and digits only: anything else is
 * refused here, never sent). */
bool sts_tag_key_valid(const char *key);
bool sts_tag_value_valid(const char *value);
/* "&Tags.member.1.Key=..&Tags.member.1.Value=..[...]&TransitiveTagKeys.member.1=..[...]": the
 * session parameters of a tagged AssumeRole, every tag transitive (as EKS Pod Identity's are), in
 * the order given. -EINVAL for a key or value STS would refuse, or more than STS_TAGS_MAX tags;
 * n == 0 gives "". */
int sts_session_tags_params(const StsTag *tags, size_t n, char **ret);

/* The tags of session parameters (from sts_session_tags_params()) for an audit entry:
 * "key=value,key=value" in the order sent; "" when there are none. Keys and values never hold ','
 * (STS's charset). Tags past max bytes are left out, and ",..." says so. -ENOMEM, -EINVAL for
 * parameters not made by sts_session_tags_params(). */
int sts_session_tags_describe(const char *params, size_t max, char **ret);

/* AssumeRole's PolicyArns: at most 10 managed policy ARNs of 20..2048 characters. */
#define STS_POLICY_ARNS_MAX 10
/* Whether STS accepts this as one of PolicyArns (printable ASCII, "arn:", 20..2048). */
bool sts_policy_arn_valid(const char *arn);
/* Appends "&PolicyArns.member.N.arn=.." for each ARN of the NULL-terminated arns to *params
 * (a string from sts_session_tags_params(), replaced). -EINVAL past STS's limits. */
int sts_session_add_policy_arns(char **params, char *const *arns);

/* "Action=AssumeRole&Version=2011-06-15&RoleArn=..&RoleSessionName=..&DurationSeconds=..[&ExternalId=..]"
 * followed by session_params (from sts_session_tags_params(); NULL or "" for none), values
 * percent-encoded with the unreserved set -._~. Validates every input against the API limits:
 * -EINVAL for anything AWS would reject. external_id may be NULL or "". */
int sts_assume_role_form(const char *role_arn, const char *session_name, unsigned duration_sec,
                         const char *external_id, const char *session_params, char **ret);

/* AssumeRoleWithWebIdentity's WebIdentityToken (botocore service-2.json): an OIDC token from a file
 * (EKS pod identity webhook, IRSA). */
#define STS_WEB_IDENTITY_TOKEN_MIN 4
#define STS_WEB_IDENTITY_TOKEN_MAX 20000

/* "Action=AssumeRoleWithWebIdentity&...&WebIdentityToken=...": the node's own identity from a web
 * identity token file. The call is unsigned (the token is the proof). The result holds the token:
 * wipe it (explicit_bzero) before freeing. */
int sts_web_identity_form(const char *role_arn, const char *session_name, unsigned duration_sec,
                          const Secret *token, char **ret);

/* kube2iam's RoleSessionName: lowercase hex fnv32a of the caller address string (not zero-padded),
 * '-', the part of the role ARN after its last '/'; characters outside [\w+=,.@-] dropped, cut to 64. */
int sts_role_session_name(const char *caller_ip, const char *role_arn, char **ret);
uint32_t sts_fnv32a(const char *s);
/* --session-name=pod: "<namespace>.<name>" when it fits STS's 64 characters; else its first 51
 * characters, '=' and the first 12 hex digits of the SHA-256 of "<namespace>/<name>". Kubernetes
 * names never hold '=', so a shortened name never equals a whole one, and two shortened names
 * collide only when 48 bits of SHA-256 do. -EINVAL for a name STS would refuse. */
int sts_pod_session_name(const char *namespace, const char *name, char **ret);

/* Parses an AssumeRole (or AssumeRoleWithWebIdentity) reply body with its HTTP status. On return exactly one of *ret_creds and
 * *ret_error is set: success gives Credentials (Expiration with or without fractional seconds;
 * elements in any order; surrounding whitespace trimmed); anything else an StsError, classified.
 * Returns <0 only when out of memory. now_realtime becomes Credentials.last_updated. */
int sts_reply_parse(const char *body, size_t size, long http_status, usec_t now_realtime,
                    Credentials **ret_creds, StsError **ret_error);
