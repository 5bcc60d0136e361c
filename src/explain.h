/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Explain: why a pod gets the role it gets, or none (docs/explain.md). Owns the answer of
 * `kube2iam explain POD|NAMESPACE/POD|IP` as one JSON document built from what the daemon holds
 * (the store, pod-roles' decisions and request rings, the credential cache), and its rendering
 * as text for operators. Reads only; changes nothing it looks at. */

#include <stdbool.h>

#include "string-util.h"

typedef struct Creds Creds;
typedef struct PodRoles PodRoles;
typedef struct Roles Roles;
typedef struct Store Store;

/* A query: a pod name, namespace/name or an address; longer is refused before any lookup
 * (a namespace and a name are each at most 253 bytes in Kubernetes). */
#define EXPLAIN_MAX_QUERY 512U
/* Pods listed when a bare name matches in several namespaces. */
#define EXPLAIN_MAX_CANDIDATES 16U

typedef struct ExplainDeps {
        Store *store;
        PodRoles *pod_roles;
        Creds *creds; /* NULL: no cache to show */
        const Roles *roles;
        const char *role_key;      /* --iam-role-key */
        const char *namespace_key; /* --namespace-key */
        const char *node;          /* the node's name, NULL when not known */
        bool pods_synced;          /* the pod list is current (the watch is synced) */
} ExplainDeps;

/* The answer to query as JSON (compact, one document). Its "credentials" member says whether the
 * pod would get credentials now. -EINVAL for an empty or over-long query, -ENOMEM. */
int explain_query(const ExplainDeps *d, const char *query, char **ret_json);

/* Renders an answer for operators. Returns whether the pod would get credentials now (true),
 * false otherwise; -EBADMSG when json is not an answer. */
int explain_render_text(const char *json, StrBuf *out);
