/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* PodRoles: the one owner of per-pod decisions, by pod uid: the pod's role ARN (kube2iam's rules,
 * roles.h; then, when asked for, the ServiceAccount's role and the namespace's default role: pod
 * annotation > ServiceAccount > namespace default-role > --default-role) and external id, its namespace's verdict on that role, whether the credential cache is
 * told that a live pod uses the role (creds_set_in_use), and the pod's audit state (the last
 * audit entry and the log budget of its requests).
 *
 * Driven once per loop turn (docs/pod-store.md, "One pass per loop turn"): pod_roles_dispatch() plays what the store recorded
 * since the last turn, recomputes the pods that changed (or whose namespace did), moves the
 * in-use counts and prefetches in the cache, then hands every IP whose answer may have changed to
 * the wake callback, so that only the requests waiting there look again. Nothing here is called
 * from inside another module's update, and nothing here calls back into the store. */

#include <stdbool.h>

#include "log.h"
#include "macro.h"
#include "roles.h"
#include "session-tags.h"
#include "time-util.h"

typedef struct Creds Creds;
typedef struct Store Store;
typedef struct KubePod StorePod; /* store.h */
typedef struct PodRoles PodRoles;

/* Audit entries per pod: a change of result is always written, a repeat once a minute at most. */
#define POD_ROLES_AUDIT_REPEAT_USEC (60 * USEC_PER_SEC)
/* Log lines one pod's requests may cause (audit entries, refused roles) per interval: a pod that
 * alternates results or floods refusals writes this many, and the other pods' entries still fit
 * in the shared budgets and in journald's per-unit limit (10,000 per 30 s by default). */
#define POD_ROLES_LOG_BURST 20U
#define POD_ROLES_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

/* The requests kept per pod for `kube2iam explain`: enough to see a pattern (404, 404, 200),
 * small enough for ~250 pods (POD_ROLES_REQUEST_RING x ~56 bytes each). */
#define POD_ROLES_REQUEST_RING 8U

typedef struct PodRoleRequest {
        const char *route; /* the route's handler name: static text (route_handler_name(), router.h) */
        unsigned status;
        usec_t when; /* realtime */
} PodRoleRequest;

typedef enum PodRoleVerdict {
        POD_ROLE_ALLOWED, /* the role may be served (no restrictions, or the namespace allows it) */
        POD_ROLE_DENIED,  /* the namespace's allowed roles exclude it */
        POD_ROLE_NAMESPACE_UNKNOWN, /* restrictions apply and the namespace is not known: deny */
        POD_ROLE_NO_ROLE,           /* no annotation and no default role */
        POD_ROLE_SESSION_REFUSED,   /* its session tags break STS's rules (the namespace's annotation) */
        /* --service-account-roles, a pod without a role annotation: its ServiceAccount may name its
         * role, and the ServiceAccounts are not known. Never the default role in their place. */
        POD_ROLE_SERVICE_ACCOUNTS_LISTING,   /* not listed yet: a request may wait for the list */
        POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN, /* the credentials may not read them (RBAC): deny */
} PodRoleVerdict;

/* A decision about one pod. Strings are owned by the decision. */
typedef struct PodRoleDecision {
        PodRoleVerdict verdict;
        char *role_arn; /* NULL for POD_ROLE_NO_ROLE */
        RoleSource source;
        const char *external_id; /* the pod's annotation (borrowed from the pod); NULL when absent */
        char *session_name;      /* --session-name=pod: the pod's RoleSessionName; NULL: kube2iam's */
        char *session;           /* the session parameters of its credentials (session-tags.h); "" for none,
                        * NULL for POD_ROLE_NO_ROLE. With role_arn, external_id and session_name: the cache key. */
} PodRoleDecision;

typedef struct PodRolesDeps {
        Store *store;
        const Roles *roles;
        Creds *creds;                     /* NULL: decisions only, nothing counted or prefetched */
        bool prefetch;                    /* --prefetch: warm the cache when a pod starts using a role */
        SessionTagsSettings session_tags; /* --session-tags, --cluster-name, --cluster-arn */
        bool pod_session_names;           /* --session-name=pod */
        bool session_policies;            /* --session-policies: the namespace's PolicyArns */
        bool service_account_roles;       /* --service-account-roles: the ServiceAccount's IRSA role */
        bool namespace_default_roles;     /* --namespace-default-roles: the namespace's default-role */
} PodRolesDeps;

int pod_roles_new(const PodRolesDeps *deps, PodRoles **ret);
/* Gives back every in-use count it holds (the cache must still exist). */
PodRoles *pod_roles_free(PodRoles *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(PodRoles *, pod_roles_free);

/* Called for each IP whose answer may have changed; NULL: every IP. */
typedef void (*pod_roles_wake_t)(const char *ip, void *userdata);
/* Plays the store's recorded changes (store_dispatch_changes): pods first, then namespaces, then
 * wake(). Returns whether there was anything to do. */
bool pod_roles_dispatch(PodRoles *p, pod_roles_wake_t wake, void *userdata);

/* The decision for a pod of the store, as recomputed at the last dispatch; a pod not seen yet
 * (a live API lookup's, or one the last dispatch could not record) is decided now. Free with
 * pod_role_decision_done(). -ENOMEM only. */
int pod_roles_decide(PodRoles *p, const StorePod *pod, PodRoleDecision *ret);
void pod_role_decision_done(PodRoleDecision *d);

/* The audit gate: false when this pod's last entry had the same key less than
 * POD_ROLES_AUDIT_REPEAT_USEC ago, or when the pod's budget (then `shared`) is spent; else the key
 * is remembered and true. uid NULL or unknown: only `shared` applies. */
bool pod_roles_audit_allow(PodRoles *p, const char *uid, const char *key, usec_t now, LogRatelimit *shared);
/* The log budget of a pod's requests, NULL for a pod not in the store. */
LogRatelimit *pod_roles_log_ratelimit(PodRoles *p, const char *uid);
/* Pods with a decision (the pods of the store after the last dispatch). */
size_t pod_roles_size(const PodRoles *p);
/* Remembers an answered request of the pod (nothing for a pod not in the store). route is kept as
 * it is, so it must be static text (the handler names of router.h). */
void pod_roles_record_request(PodRoles *p, const char *uid, const char *route, unsigned status, usec_t when);
/* The pod's last requests, newest first, at most max (borrowed until the next record). */
size_t pod_roles_requests(const PodRoles *p, const char *uid, const PodRoleRequest **ret, size_t max);
/* Whether the pod's role is counted as in use in the cache (tests, /debug). */
bool pod_roles_in_use(const PodRoles *p, const char *uid);
