/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* StsClient: asynchronous AssumeRole on the loop (HttpClient, libcurl multi). Owns the endpoint
 * choice (--sts-endpoint, else regional by partition), the SigV4 signer with its cached key, a pool
 * of reused curl easy handles and the hard timeout of every call. The node's own credentials sign
 * the calls (node-credentials.h). A call ends in exactly one callback with Credentials or a
 * classified StsError (sts.h); a call can be cancelled, and then nothing is called. */

#include "credentials.h"
#include "sts.h"

typedef struct HttpClient HttpClient;
typedef struct UpstreamClient UpstreamClient;
typedef struct NodeCredentials NodeCredentials;
typedef struct StsClient StsClient;
typedef struct StsCall StsCall;

/* STS answers in tens of milliseconds; five seconds means it will not answer. Callers waiting on a
 * cold cache have their own (shorter) deadline; the call goes on to warm the cache. */
#define STS_CLIENT_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* Region discovery retries: IMDS may not answer in the first seconds of boot. */
#define STS_REGION_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define STS_REGION_RETRY_MAX_USEC (60 * USEC_PER_SEC)
/* Calls at once; more wait in the cache's token bucket anyway. */
#define STS_CLIENT_MAX_CALLS 64

/* creds is borrowed (credentials_ref() to keep it), error likewise; exactly one is non-NULL.
 * The call is finished and freed when this runs. */
typedef void (*sts_done_t)(StsClient *c, Credentials *creds, const StsError *error, void *userdata);

/* endpoint_override: --sts-endpoint or NULL. node: whose credentials sign (not owned; must outlive c). */
int sts_client_new(HttpClient *http, NodeCredentials *node, const char *endpoint_override, StsClient **ret);
StsClient *sts_client_free(StsClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(StsClient *, sts_client_free);

/* The region whose regional endpoint to use and to sign for (AWS_REGION/AWS_DEFAULT_REGION, else the
 * upstream IMDS placement/region). Until it is set, calls fail with a transient "NoRegion" error,
 * unless an endpoint override is given (then signed as us-east-1). */
int sts_client_set_region(StsClient *c, const char *region);
const char *sts_client_get_region(const StsClient *c);
/* Sets the region from AWS_REGION / AWS_DEFAULT_REGION now (-EINVAL if set but malformed), else
 * asks imds for placement/region on the loop, retrying with backoff until it answers (calls fail
 * with "NoRegion" meanwhile). imds may be NULL only when the environment names the region.
 * Returns 0 when the region is already set, 1 when it is being fetched. */
int sts_client_discover_region(StsClient *c, UpstreamClient *imds);
void sts_client_set_timeout(StsClient *c, usec_t timeout);

/* Starts AssumeRole. A negative errno returned here, with nothing called, is a refusal: *ret_refusal
 * (optional) says which (sts.h: permanent or transient). Everything later ends in done().
 * *ret_call (optional) identifies the call for sts_call_cancel(). */
int sts_assume_role(StsClient *c, const char *role_arn, const char *session_name, unsigned duration_sec,
                    const char *external_id, const char *session_params, sts_done_t done, void *userdata,
                    StsCall **ret_call, StsRefusal *ret_refusal);
/* AssumeRoleWithWebIdentity, unsigned: the node's own identity from a web identity token
 * (AWS_WEB_IDENTITY_TOKEN_FILE). Same endpoint, errors and callback as sts_assume_role(), but needs
 * no node credentials. */
int sts_assume_role_with_web_identity(StsClient *c, const char *role_arn, const char *session_name,
                                      unsigned duration_sec, const Secret *token, sts_done_t done,
                                      void *userdata, StsCall **ret_call);
void sts_call_cancel(StsCall *call);

/* What a signed STS request is made of, shared with `kube2iam doctor`'s GetCallerIdentity. */
struct curl_slist;
/* "host" or "host:port" exactly as curl will send it in Host:, which is what is signed, and the
 * URL's path. */
int sts_url_host_header(const char *url, char **ret_host, char **ret_path);
/* Appends "name: value" to *l; value NULL: "name:" (tells curl not to send that header). */
int sts_header_append(struct curl_slist **l, const char *name, const char *value);
/* Wipes (they carry the signature and the session token) and frees the headers. */
void sts_headers_free_erase(struct curl_slist *l);
unsigned sts_client_calls_running(const StsClient *c);
