/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Router: which handler answers a request target, exactly as kube2iam's gorilla/mux does
 * (docs/compatibility.md, "Routes"): the path is percent-decoded, cleaned like
 * Go's path.Clean (a target whose cleaned form differs is answered 301 with the cleaned
 * Location), routes are tried in kube2iam's order, any `{version}` segment matches, every method
 * reaches its handler. Ours on top (docs/compatibility.md, "What changes"): the IMDSv2 token path, iam/info, the
 * SDKs' extended credentials API (iam/security-credentials-extended, same handlers) and the
 * node's identity credentials are the daemon's, never proxied; what is left (ROUTE_PROXY) is
 * judged by the metadata table (imds-surface.h). Absolute-form targets (explicit HTTP proxy use)
 * are routed by their path, with the host kept for the caller to judge. Pure: no I/O, no state. */

#include <stdbool.h>

typedef enum RouteId {
        ROUTE_BAD_REQUEST,      /* the target cannot be decoded: 400 */
        ROUTE_REDIRECT,         /* 301 to location */
        ROUTE_DEBUG_STORE,      /* /debug/store, with --debug */
        ROUTE_ROLE_LIST,        /* /{version}/meta-data/iam/security-credentials[-extended][/] */
        ROUTE_ROLE_CREDENTIALS, /* /{version}/meta-data/iam/security-credentials[-extended]/{role} */
        ROUTE_HEALTHZ,          /* /healthz */
        ROUTE_METRICS,          /* /metrics, when metrics share the app port */
        ROUTE_API_TOKEN,        /* /{version}/api/token: IMDSv2 tokens, minted by the daemon */
        ROUTE_IAM_INFO,         /* /{version}/meta-data/iam/info: answered for the pod's role */
        ROUTE_IDENTITY, /* /{version}/meta-data/identity-credentials[/...]: the node's, never proxied */
        ROUTE_PROXY,    /* everything else: the metadata table decides (forwarded or refused) */
        _ROUTE_MAX,
} RouteId;

typedef struct RouterOptions {
        bool debug;
        bool metrics;
} RouterOptions;

typedef struct RouteMatch {
        RouteId id;
        char *path;     /* decoded and (when not redirected) clean path */
        char *version;  /* {version}, for the credential routes */
        char *role;     /* {role}, decoded, may contain '/' */
        char *location; /* ROUTE_REDIRECT: the Location header value */
        char *host;     /* host[:port] of an absolute-form target, else NULL */
        bool extended;  /* the credential routes under iam/security-credentials-extended */
} RouteMatch;

/* Matches a raw request target (path part, as received) and its raw query (NULL if none). */
int router_match(const RouterOptions *o, const char *raw_path, const char *raw_query, RouteMatch *ret);
void route_match_done(RouteMatch *m);

/* kube2iam's handler names, the `handler` label of kube2iam_http_request_duration_seconds. */
const char *route_handler_name(RouteId id);

/* Go's path.Clean plus mux's trailing-slash rule. Returns a new string. */
char *router_clean_path(const char *p);
/* Percent-decodes p as Go's url.PathUnescape does; -EINVAL on a malformed escape or a NUL byte. */
int router_unescape_path(const char *p, char **ret);
/* Percent-encodes a path as Go's URL.EscapedPath() does. */
char *router_escape_path(const char *p);
