/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* ImdsService: the instance-metadata service as pods see it. Owns every answer the daemon gives
 * itself (docs/compatibility.md: "Routes" and "What changes"):
 * - the role list and the credentials of the pod's role, found by the TCP peer's address in
 *   the store and the pod's role as pod-roles decided it; a request from an address the store
 *   does not know yet waits (suspended) until the pod appears or the kube2iam backoff budget runs
 *   out, woken for its own IP (imds_service_wake(), once per loop turn), not by polling;
 * - IMDSv2 tokens (minted here, bound to the pod's address) and their check on every request,
 *   required with --imdsv2-required;
 * - the same for the SDKs' extended credentials API (iam/security-credentials-extended), whose
 *   document adds the role's AccountId;
 * - iam/info for the pod's role, never the node's profile; the node's identity credentials are
 *   never served;
 * - the rest of the metadata tree as the table in imds-surface.h says (forwarded with the daemon's
 *   own upstream token in place of the pod's, listings filtered, everything else IMDS's 404),
 *   and only to pods of this node: any other address waits like a credential request, then 404;
 * - explicit HTTP proxy use (absolute-form targets for the metadata address only);
 * - one audit entry per issuance and per denial, rate-limited per pod (pod-roles keeps the state).
 * A request's life is an explicit state (PodRequestState in imds-service.c), changed in one place. */

#include <systemd/sd-event.h>

#include "macro.h"
#include "router.h"
#include "server.h"
#include "string-util.h"
#include "time-util.h"

typedef struct Config Config;
typedef struct Creds Creds;
typedef struct UpstreamClient UpstreamClient;
typedef struct Proxy Proxy;
typedef struct TokenIssuer TokenIssuer;
typedef struct KubeClient KubeClient;
typedef struct Metrics Metrics;
typedef struct PodRoles PodRoles;
typedef struct Roles Roles;
typedef struct Store Store;
typedef struct ImdsService ImdsService;

/* A cold STS call takes a few hundred milliseconds; past this the pod's SDK gave up long ago. */
#define IMDS_SERVICE_CREDS_WAIT (5 * USEC_PER_SEC)
/* A pod's own budget and the repeat of its audit entries: POD_ROLES_* in pod-roles.h. */
/* Audit entries of all pods together per interval: a node's pods starting at once fit. */
#define IMDS_SERVICE_AUDIT_BURST 200U
#define IMDS_SERVICE_AUDIT_INTERVAL (10 * USEC_PER_SEC)
/* Other per-request lines of all pods together (a role refused, an internal failure). */
#define IMDS_SERVICE_REQUEST_LOG_BURST 50U
#define IMDS_SERVICE_REQUEST_LOG_INTERVAL (10 * USEC_PER_SEC)
/* Requests waiting for a pod at once: a node's pods with a few requests each. Beyond it, 503. */
#define IMDS_SERVICE_MAX_WAITING 4096U

typedef struct ImdsServiceDeps {
        sd_event *event;
        const Config *config;
        Store *store;
        PodRoles *pod_roles;
        KubeClient *kube; /* NULL: no Kubernetes (no pod is ever known) */
        Roles *roles;
        Creds *creds;
        TokenIssuer *tokens;
        Proxy *proxy;
        UpstreamClient *imds; /* NULL: proxied requests carry no upstream token */
        Metrics *metrics;     /* NULL: no metrics */
} ImdsServiceDeps;

int imds_service_new(const ImdsServiceDeps *deps, ImdsService **ret);
/* Answers (503) and frees every waiting request first. */
ImdsService *imds_service_free(ImdsService *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ImdsService *, imds_service_free);

/* Answers a routed request: ROUTE_ROLE_LIST, ROUTE_ROLE_CREDENTIALS, ROUTE_IAM_INFO,
 * ROUTE_API_TOKEN, ROUTE_IDENTITY and ROUTE_PROXY (after the token check and the table). */
void imds_service_handle(ImdsService *s, HttpRequest *req, const RouteMatch *m);
/* The answer for ip may have changed (NULL: for every IP): the requests waiting for it look again.
 * Called by pod-roles' dispatch, never from inside another module's update. */
void imds_service_wake(ImdsService *s, const char *ip);
unsigned imds_service_waiting(const ImdsService *s);

/* The IMDS credential document, as IMDS writes it (field order, two-space indent, " : "); with
 * account_id, the extended API's document ("AccountId" last, as IMDS and the SDKs' tests have it).
 * Exposed for tests; the bytes hold secrets: free with strbuf_done_erase(). */
typedef struct Credentials Credentials;
int imds_credentials_json(const Credentials *c, const char *account_id, StrBuf *out);
/* An AWS account id is 12 digits; room for a longer one a partition might use, and the NUL. */
#define IMDS_ACCOUNT_ID_MAX 32
/* The account field of an ARN (arn:partition:service:region:ACCOUNT:resource), digits only. */
int imds_account_from_arn(const char *arn, char ret[static IMDS_ACCOUNT_ID_MAX]);
/* iam/info for a role: a role-backed instance profile's shape. */
int imds_iam_info_json(const char *role_arn, usec_t last_updated, StrBuf *out);
/* An absolute-form target's host (host, host:port, [v6], [v6]:port) names the metadata service. */
bool imds_service_host_is_metadata(const char *host, const char *metadata_host);
