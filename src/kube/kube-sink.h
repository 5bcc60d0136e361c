/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeSink: where the kube client delivers what the API server says, and the only way it talks
 * to the rest of the daemon. The kube client owns this interface; whoever keeps the objects (the
 * daemon wires it to its Store) fills in the callbacks. Every callback is called from the event
 * loop, outside libcurl's callbacks, with the object valid for the call unless it says it takes
 * ownership. */

#include <stdbool.h>
#include <stddef.h>

#include "kube-pod.h"

/* A v1 Namespace reduced to its name and the annotations the daemon reads (NULL when absent):
 * allowed roles, session tags, session policy ARNs, default role. */
typedef struct KubeNamespace {
        char *name;
        char *annotation;
        char *session_tags;
        char *session_policies;
        char *default_role;
} KubeNamespace;

/* A v1 ServiceAccount reduced to its identity and its IRSA role annotation (NULL when absent). */
typedef struct KubeServiceAccount {
        char *namespace;
        char *name;
        char *role_arn;
} KubeServiceAccount;

typedef struct KubeSink {
        /* ADDED or MODIFIED: takes ownership of pod (also on failure). */
        int (*pod_upsert)(KubePod *pod, void *userdata);
        /* DELETED: -ENOENT when unknown (not an error for the client). */
        int (*pod_delete)(const char *uid, void *userdata);
        /* A live GET said a pod restored from a snapshot is gone (404, or another uid has its name). */
        int (*pod_forget)(const char *uid, void *userdata);
        /* A complete list: afterwards exactly these pods are known. Takes the pods and the array. */
        int (*pods_replace)(KubePod **pods, size_t n, void *userdata);
        /* Whether the pods may be answered for (false while the list cannot be refreshed past
         * --pod-store-max-stale, docs/pod-store.md). */
        void (*pods_vouched)(bool vouched, void *userdata);

        int (*namespace_upsert)(const KubeNamespace *ns, void *userdata);
        int (*namespace_delete)(const char *name, void *userdata);
        /* A live GET said a namespace restored from a snapshot is gone (404). */
        int (*namespace_forget)(const char *name, void *userdata);
        int (*namespaces_replace)(const KubeNamespace *ns, size_t n, void *userdata);
        /* The credentials may not read namespaces (403): every namespace restriction denies. */
        void (*namespaces_unavailable)(void *userdata);

        /* --service-account-roles: ServiceAccounts cluster-wide, as namespaces above. */
        int (*service_account_upsert)(const KubeServiceAccount *sa, void *userdata);
        int (*service_account_delete)(const char *namespace, const char *name, void *userdata);
        int (*service_accounts_replace)(const KubeServiceAccount *sa, size_t n, void *userdata);
        /* The credentials may not read ServiceAccounts (403): no pod takes a role from one. */
        void (*service_accounts_unavailable)(void *userdata);

        /* A bookmark moved a watch's resourceVersion on without a change (may be NULL): what a warm
         * restart resumes from can be newer. */
        void (*progress)(void *userdata);

        /* The sync state (kube_client_state()), or the error it reports, changed. */
        void (*state_changed)(void *userdata);
        void *userdata;
} KubeSink;
