/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Creds: the credential cache, keyed by CredsKey (role ARN, external id, session name, session
 * parameters) as pod-roles decides it (docs/sessions.md).
 * - One STS call in flight per key (single flight): callers register a completion callback and a
 *   deadline; any number of them wait for the same fetch.
 * - STS DurationSeconds = 2 x --iam-role-session-ttl. Entries are refreshed in the background once
 *   60%..50% of their life remains (jittered per fetch), and no caller is handed credentials with
 *   less than --iam-role-session-ttl left (30 min at the defaults) while STS works; when STS fails,
 *   cached credentials are served for as long as they are valid.
 * - Entries no live pod uses (creds_set_in_use) and nobody asked for since their last fetch are not
 *   refreshed, and are dropped once they could no longer be served.
 * - AssumeRole calls pass a token bucket (--sts-rate, --sts-burst) that slows down on Throttling;
 *   throttling, 5xx and timeouts are retried with jittered backoff; denials (AccessDenied and other
 *   client errors) are not retried, and are cached for --iam-role-error-ttl.
 * - Metrics: kube2iam_iam_request_duration_seconds{code,role_arn} (every STS call) and
 *   kube2iam_iam_cache_hits_total{role_arn} as kube2iam has them, plus our misses, prefetches,
 *   refreshes, errors and entries.
 * Secrets stay inside Credentials; nothing here logs them. The clock is CLOCK_REALTIME (expiry is
 * wall-clock time) and can be injected for tests, as can the STS side (CredsFetcher). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "aws/credentials.h"
#include "aws/sts.h"
#include "string-util.h"
#include "time-util.h"

typedef struct Config Config;
typedef struct Metrics Metrics;
typedef struct StsClient StsClient;
typedef struct Creds Creds;
typedef struct CredsWaiter CredsWaiter;

/* kube2iam's ccache held 5000 items; one node never has that many distinct roles. */
#define CREDS_MAX_ENTRIES 5000
/* Session parameters of one key: STS_TAGS_MAX tags with keys and values at their limits, each
 * character percent-encoded, stay below this. */
#define CREDS_SESSION_PARAMS_MAX (64 * 1024)
/* Waiters per entry: every pod request in flight for one role; beyond this the node is under attack. */
#define CREDS_MAX_WAITERS_PER_ENTRY 4096
/* Jittered exponential backoff after a retryable STS failure. */
#define CREDS_RETRY_MIN_USEC (500 * USEC_PER_MSEC)
#define CREDS_RETRY_MAX_USEC (60 * USEC_PER_SEC)
/* After a denial, an entry a live pod uses is tried again at most this often (or after the error TTL,
 * if longer), so a fixed trust policy is picked up without hammering STS. */
#define CREDS_DENIED_RETRY_USEC (5 * USEC_PER_MINUTE)
/* Refresh when this fraction of the life remains (uniform between the two, per fetch). */
#define CREDS_REFRESH_REMAINING_MAX 0.60
#define CREDS_REFRESH_REMAINING_MIN 0.50
/* On Throttling the bucket's rate is divided by up to this factor; it recovers after a quiet minute. */
#define CREDS_THROTTLE_MAX_FACTOR 16
#define CREDS_THROTTLE_RECOVER_USEC (60 * USEC_PER_SEC)

/* An entry's life. At rest (EMPTY, CACHED, FAILED) its contents decide: nothing yet, the
 * credentials of the last call, or the last call's error (with older credentials, if valid, still
 * served). QUEUED waits for an STS token (the rate limit); FETCHING has a call running. */
typedef enum CredsEntryState {
        CREDS_ENTRY_EMPTY,
        CREDS_ENTRY_QUEUED,
        CREDS_ENTRY_FETCHING,
        CREDS_ENTRY_CACHED,
        CREDS_ENTRY_FAILED,
} CredsEntryState;

const char *creds_entry_state_to_string(CredsEntryState s);

typedef struct CredsSettings {
        usec_t session_ttl; /* --iam-role-session-ttl: STS DurationSeconds = 2 x this */
        usec_t error_ttl;   /* --iam-role-error-ttl: how long a denial is answered from the cache */
        double sts_rate;    /* --sts-rate: AssumeRole calls per second */
        unsigned sts_burst; /* --sts-burst */
} CredsSettings;

void creds_settings_from_config(const Config *config, CredsSettings *ret);

/* The STS side. start() begins AssumeRole and returns a handle; later, exactly once unless cancelled,
 * the fetcher calls creds_fetch_complete(c, token, creds, error). A failure known at once is returned
 * as <0 with *ret_error set (classified). */
typedef struct CredsFetcher {
        int (*start)(void *userdata, Creds *c, void *token, const char *role_arn, const char *session_name,
                     unsigned duration_sec, const char *external_id, const char *session, void **ret_handle,
                     StsError **ret_error);
        void (*cancel)(void *userdata, void *handle);
        void *userdata;
} CredsFetcher;
/* creds and error are borrowed; exactly one is non-NULL. */
void creds_fetch_complete(Creds *c, void *token, Credentials *creds, const StsError *error);

/* metrics may be NULL. */
int creds_new(const CredsSettings *settings, const CredsFetcher *fetcher, Metrics *metrics, Creds **ret);
/* The production cache: fetches through sts (not owned; must outlive the cache). */
int creds_new_sts(const CredsSettings *settings, StsClient *sts, Metrics *metrics, Creds **ret);
/* Cancels running fetches and calls every waiter with -ECANCELED (shutdown answers them). */
Creds *creds_free(Creds *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Creds *, creds_free);

/* Production: a CLOCK_REALTIME timer on the loop runs creds_run() whenever something is due. */
int creds_attach_event(Creds *c, sd_event *event);
/* Tests: the clock (realtime usec) and the seed of the jitter. */
void creds_set_clock(Creds *c, usec_t (*now)(void *userdata), void *userdata);
void creds_set_seed(Creds *c, uint64_t seed);

/* What one cache entry holds credentials for. NULL and "" mean the same. */
typedef struct CredsKey {
        const char *role_arn;
        const char *external_id;  /* NULL for none */
        const char *session_name; /* RoleSessionName; NULL: kube2iam's, from the caller's IP */
        const char *session;      /* session parameters (sts_session_tags_params()); NULL for none */
} CredsKey;

typedef struct CredsRequest {
        const char *role_arn;
        const char *external_id;  /* NULL or "" for none */
        const char *session_name; /* NULL or "": kube2iam's name, from caller_ip */
        const char *session;      /* session parameters (sts_session_tags_params()), NULL or "" for none */
        const char *caller_ip;    /* names the STS session as kube2iam does */
        usec_t deadline;          /* realtime usec: when a waiting caller gives up */
        /* Called once for a waiting caller: creds (borrowed) or error (borrowed; error->error is the
         * errno: -ETIMEDOUT at the deadline, -ECANCELED on shutdown, -EACCES for a denial). */
        void (*done)(Credentials *creds, const StsError *error, void *userdata);
        void *userdata;
} CredsRequest;

#define CREDS_WAIT 1
/* Answers a credential request.
 *   0           *ret_creds is a new reference to credentials to serve now.
 *   CREDS_WAIT  a fetch is under way; req->done will be called exactly once, never from inside this
 *               call. *ret_waiter (optional) lets the caller withdraw (creds_waiter_cancel).
 *   <0          *ret_error (owned) says why: a cached or immediate denial (-EACCES, -EINVAL, -EXDEV),
 *               or -ENOSPC (too many roles). */
int creds_get(Creds *c, const CredsRequest *req, Credentials **ret_creds, StsError **ret_error,
              CredsWaiter **ret_waiter);
/* Withdraws a waiting caller; its done is not called. */
void creds_waiter_cancel(CredsWaiter *w);

/* Warms an entry through the same single-flight path (a pod appeared). Never waits. */
int creds_prefetch(Creds *c, const CredsKey *key, const char *caller_ip);
/* A live pod on this node uses (role, external id), as pod-roles decides. Counted: every true
 * needs its false. */
int creds_set_in_use(Creds *c, const CredsKey *key, bool in_use);

/* Does what is due now (refreshes, retries, deadlines, drops, queued fetches). */
void creds_run(Creds *c);
/* When creds_run() next has something to do (realtime usec), USEC_INFINITY for never. */
usec_t creds_next_wakeup(Creds *c);
size_t creds_size(const Creds *c);
/* One entry as `kube2iam explain` shows it; pointers borrowed until the loop next runs. No secret. */
typedef struct CredsEntryInfo {
        const char *state; /* as creds_debug_json() names it */
        usec_t expiration; /* realtime; 0: no credentials */
        usec_t refresh_at; /* realtime; 0: none planned */
        usec_t retry_at;   /* realtime; 0: none planned */
        unsigned in_use;
        unsigned waiters;
        const StsError *error; /* the last failure (code, request id), NULL for none */
} CredsEntryInfo;
/* -ENOENT when the cache holds no entry for the key (the pod's: pod_roles_decide()). */
int creds_describe(Creds *c, const CredsKey *key, CredsEntryInfo *ret);

/* Warm restarts (src/snapshot.h). on_change runs after new credentials were cached (worth keeping
 * in a snapshot); the caller coalesces. */
void creds_set_on_change(Creds *c, void (*on_change)(void *userdata), void *userdata);
/* Puts credentials an earlier run obtained for key back into the cache, served at once while fresh
 * and refreshed on the schedule they had. -ESTALE: no longer valid; -EEXIST: this run already has
 * the entry; -EINVAL: a key part over its limit. */
int creds_restore(Creds *c, const CredsKey *key, Credentials *creds);
/* Calls f for each entry holding valid credentials, whatever its key (every part "" when absent);
 * stops at f's error. */
int creds_foreach_valid(Creds *c, int (*f)(const CredsKey *key, Credentials *creds, void *userdata),
                        void *userdata);

/* Appends a JSON array describing the entries for /debug: role, external id presence, expiry,
 * in-use count, state (creds_entry_state_to_string(); an entry at rest with credentials says
 * "fresh", "stale" or, once they are no longer valid, "error"). No secret and no access key id. */
int creds_debug_json(Creds *c, StrBuf *out);
