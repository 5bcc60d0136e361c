/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Kubernetes objects (v1 Pod, v1 Namespace as JSON) reduced to what the store keeps, and the
 * list bodies they arrive in, cut into one object at a time. Owns no state: pure conversions,
 * so that garbage from the API server is rejected in one place. */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "kube-pod.h"
#include "watch-parser.h"

/* One object of a list is held to the limit of one watch event: the same object arrives both
 * ways, and etcd refuses objects over 1.5 MiB by default. */
#define KUBE_OBJECT_MAX_BYTES MAX_WATCH_EVENT_BYTES
/* Longest name, namespace or uid printed for an object we refuse (DNS subdomain names). */
#define KUBE_IDENTITY_MAX 253

/* Called for each element of a list's "items", as raw JSON bytes; complete is false for the
 * last element of a body that ends inside it. A negative return stops the scan. */
typedef int (*kube_list_item_t)(const char *item, size_t len, bool complete, void *userdata);
/* Cuts a list body ({"metadata": {...}, "items": [...]}, other members skipped) into its items
 * without parsing them, and parses "metadata" into *ret_metadata (NULL when absent or when it
 * comes after the point where the body ends). Returns 0 for a complete body, 1 when the body
 * ends inside an item (a page cut off at our size limit: that item was passed with complete
 * false), -EBADMSG for anything else. */
int kube_list_scan(const char *body, size_t len, kube_list_item_t cb, void *userdata, cJSON **ret_metadata);
/* "namespace/name uid" of an object from the first bytes of its JSON, for naming an object we
 * refuse; any part not found, or not made of name characters, reads "?". */
int kube_object_identity(const char *obj, size_t len, char **ret);

/* The namespace annotation of extra session tags (a JSON object), read with --session-tags. */
#define KUBE_SESSION_TAGS_ANNOTATION "iam.amazonaws.com/session-tags"
/* The namespace annotation of managed policy ARNs (a JSON list), read with --session-policies. */
#define KUBE_SESSION_POLICIES_ANNOTATION "iam.amazonaws.com/session-policy-arns"
/* The namespace annotation naming the role of its pods without one, read with
 * --namespace-default-roles (docs/sessions.md). */
#define KUBE_NAMESPACE_DEFAULT_ROLE_ANNOTATION "iam.amazonaws.com/default-role"
/* The ServiceAccount annotation of IRSA (EKS's pod identity webhook), read with
 * --service-account-roles. */
#define KUBE_SERVICE_ACCOUNT_ROLE_ANNOTATION "eks.amazonaws.com/role-arn"

typedef struct KubeObjectKeys {
        const char *role_key;             /* --iam-role-key */
        const char *external_id_key;      /* --iam-external-id */
        const char *namespace_key;        /* --namespace-key */
        const char *session_tags_key;     /* the namespace's extra session tags; NULL: not read */
        const char *session_policies_key; /* the namespace's session policy ARNs; NULL: not read */
        const char *default_role_key;     /* the namespace's default role; NULL: not read */
} KubeObjectKeys;

/* A v1 Pod to a KubePod. -EBADMSG when uid, namespace or name is missing or a field has the
 * wrong type. */
int kube_pod_from_json(const cJSON *pod, const KubeObjectKeys *keys, KubePod **ret);
/* metadata.uid of any object (DELETED events need nothing else). */
const char *kube_object_uid(const cJSON *o);
/* What a v1 Namespace says, as kube_namespace_from_json() reads it: pointers into the object. */
typedef struct KubeNamespaceFields {
        const char *name;
        const char *annotation;       /* allowed roles (--namespace-key), NULL when absent */
        const char *session_tags;     /* NULL when absent or not read */
        const char *session_policies; /* NULL when absent or not read */
        const char *default_role;     /* NULL when absent or not read */
} KubeNamespaceFields;

/* A v1 Namespace: its name and the annotations keys names (each NULL when absent); all point
 * into o. -EBADMSG when the name is missing or an annotation is not a string. */
int kube_namespace_from_json(const cJSON *ns, const KubeObjectKeys *keys, KubeNamespaceFields *ret);

/* What a v1 ServiceAccount says: pointers into the object. */
typedef struct KubeServiceAccountFields {
        const char *namespace;
        const char *name;
        const char *role_arn; /* KUBE_SERVICE_ACCOUNT_ROLE_ANNOTATION, NULL when absent */
} KubeServiceAccountFields;

/* A v1 ServiceAccount: -EBADMSG when namespace or name is missing or the annotation is not a
 * string. */
int kube_service_account_from_json(const cJSON *sa, KubeServiceAccountFields *ret);
