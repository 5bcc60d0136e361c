/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Credentials: one set of temporary AWS credentials (from STS, the upstream IMDS or the
 * environment). Reference counted, so the cache can replace an entry while a request still writes
 * the old one out. The secret key and the session token live in Secret objects (wiped on free,
 * never formatted for a log line); the access key id is not secret (CloudTrail shows it). */

#include "macro.h"
#include "secret.h"
#include "time-util.h"

/* AWS access key ids are 16..128 characters ([A-Z0-9]); one beyond that is garbage. */
#define CREDENTIALS_ACCESS_KEY_MAX 128

typedef struct Credentials {
        unsigned n_ref;
        char *access_key_id;
        Secret *secret_access_key;
        Secret *session_token; /* NULL for long-term keys from the environment */
        usec_t expiration;     /* CLOCK_REALTIME usec; USEC_INFINITY for long-term keys */
        usec_t last_updated;   /* CLOCK_REALTIME usec when we obtained them */
        char *assumed_role_id; /* STS's AssumedRoleId ("AROA...:<session name>"), NULL when unknown */
        /* What one consumer derives from these credentials and keeps for as long as they live (the
         * IMDS service's prepared answers, secrets included): memo_free(memo) runs on the last unref.
         * The fields above never change once the credentials are made, so neither does the memo. */
        void *memo;
        void (*memo_free)(void *memo);
} Credentials;

/* Takes ownership of secret and token (also on failure). access_key_id is copied and must be
 * [A-Za-z0-9]{1,128}. */
int credentials_new(const char *access_key_id, Secret *secret, Secret *token, usec_t expiration,
                    usec_t last_updated, Credentials **ret);
Credentials *credentials_ref(Credentials *c);
Credentials *credentials_unref(Credentials *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Credentials *, credentials_unref);
#define _cleanup_credentials_ _cleanup_(credentials_unrefp)

/* Realtime usec left before expiry at now (0 when expired). */
usec_t credentials_remaining(const Credentials *c, usec_t now_realtime);
bool credentials_access_key_valid(const char *s);
