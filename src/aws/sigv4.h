/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* SigV4: AWS Signature Version 4 header signing on OpenSSL (EVP HMAC-SHA256 and SHA-256).
 * Owns the canonical request, the string to sign, the signing-key derivation (the derived key is
 * cached per date/region/service and secret key, so a node signing many AssumeRole calls a day
 * derives it once), and the URI-encoding rules for the path and the query string.
 * It reproduces the official test suite (tests/vectors/sigv4) byte for byte and agrees with
 * botocore's SigV4Auth. It never logs; the canonical request holds the session token and is wiped
 * when freed. */

#include <stdbool.h>
#include <stddef.h>

#include "secret.h"
#include "string-util.h"
#include "time-util.h"

/* A request carries a handful of headers; more is a caller bug or hostile input. */
#define SIGV4_MAX_HEADERS 64
/* "20150830T123600Z" and its NUL. */
#define SIGV4_AMZ_DATE_MAX 17
#define SIGV4_HEX_SHA256_MAX 65

typedef struct SigV4Header {
        const char *name;
        const char *value;
} SigV4Header;

typedef struct SigV4Request {
        const char *method;         /* "POST" */
        const char *path;           /* as sent, not yet encoded ("/", "/example space/") */
        const char *query;          /* without '?'; NULL or "" for none */
        const SigV4Header *headers; /* must include Host; x-amz-date etc. are added by the signer */
        size_t n_headers;
        const void *body;
        size_t body_size;
        bool normalize_path;     /* remove dot segments and empty segments (every service but S3) */
        bool sign_body;          /* add and sign x-amz-content-sha256 */
        bool omit_session_token; /* sign without x-amz-security-token, send it anyway (old STS style) */
} SigV4Request;

typedef struct SigV4Credentials {
        const char *access_key_id;
        const Secret *secret_access_key;
        const Secret *session_token; /* NULL without one */
} SigV4Credentials;

/* The result: the headers the caller must send besides its own, and the intermediate strings
 * (for tests). */
typedef struct SigV4Signature {
        char amz_date[SIGV4_AMZ_DATE_MAX];       /* X-Amz-Date */
        char payload_hash[SIGV4_HEX_SHA256_MAX]; /* X-Amz-Content-Sha256 when sign_body */
        char signature[SIGV4_HEX_SHA256_MAX];
        char *canonical_request; /* holds the session token: wiped on done */
        char *string_to_sign;
        char *authorization; /* Authorization header value */
} SigV4Signature;

void sigv4_signature_done(SigV4Signature *s);
#define _cleanup_sigv4_signature_ _cleanup_(sigv4_signature_done)

typedef struct SigV4Signer SigV4Signer;

int sigv4_signer_new(const char *region, const char *service, SigV4Signer **ret);
SigV4Signer *sigv4_signer_free(SigV4Signer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SigV4Signer *, sigv4_signer_free);
const char *sigv4_signer_region(const SigV4Signer *s);
/* How many times a signing key was derived (tests prove the cache works). */
unsigned sigv4_signer_derivations(const SigV4Signer *s);

/* Signs req at realtime (usec since the epoch) with c. On success fills *ret (release it with
 * sigv4_signature_done()). -EINVAL on a malformed request, -E2BIG on too many headers. */
int sigv4_sign(SigV4Signer *s, const SigV4Request *req, const SigV4Credentials *c, usec_t realtime,
               SigV4Signature *ret);

/* Percent-encodes n bytes of s with the unreserved set A-Z a-z 0-9 - . _ ~ (uppercase hex);
 * keep_slash leaves '/' alone (paths). Also used for the STS form body. */
void sigv4_uri_encode(StrBuf *out, const char *s, size_t n, bool keep_slash);

/* Lowercase hex SHA-256 of n bytes into out (SIGV4_HEX_SHA256_MAX bytes). */
int sigv4_sha256_hex(const void *data, size_t n, char out[static SIGV4_HEX_SHA256_MAX]);
