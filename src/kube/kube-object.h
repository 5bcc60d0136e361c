/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Kubernetes objects (v1 Pod, v1 Namespace as JSON) reduced to what the store keeps. Owns no
 * state: pure conversions, so that garbage from the API server is rejected in one place. */

#include <cjson/cJSON.h>

#include "store.h"

typedef struct KubeObjectKeys {
        const char *role_key;        /* --iam-role-key */
        const char *external_id_key; /* --iam-external-id */
        const char *namespace_key;   /* --namespace-key */
} KubeObjectKeys;

/* A v1 Pod to a StorePod. -EBADMSG when uid, namespace or name is missing or a field has the
 * wrong type. */
int kube_pod_from_json(const cJSON *pod, const KubeObjectKeys *keys, StorePod **ret);
/* metadata.uid of any object (DELETED events need nothing else). */
const char *kube_object_uid(const cJSON *o);
/* A v1 Namespace: its name and the allowed-roles annotation (NULL when absent); both point into o. */
int kube_namespace_from_json(const cJSON *ns, const KubeObjectKeys *keys, const char **ret_name,
                             const char **ret_annotation);
