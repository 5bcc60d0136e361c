/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubePod: a v1 Pod reduced to what role decisions need, as the kube client delivers it (watch
 * events, lists, the live lookup by IP). Owns its strings; owns nothing else. The store keeps
 * these records as they are (store.h names them StorePod). */

#include <stdbool.h>

#include "macro.h"

/* Dual-stack pods have two IPs; the API allows a handful more. */
#define KUBE_POD_MAX_IPS 8

typedef struct KubePod {
        char *uid;
        char *namespace;
        char *name;
        char *phase; /* Pending, Running, Succeeded, Failed, Unknown ("" when absent) */
        bool host_network;
        bool terminating;       /* metadata.deletionTimestamp is set */
        char *role;             /* the role annotation; NULL when absent, "" when present but empty */
        char *external_id;      /* the external-id annotation; NULL when absent */
        char *service_account;  /* spec.serviceAccountName; NULL when absent */
        char **ips;             /* status.podIP and status.podIPs, no duplicates; NULL when none */
        char *resource_version; /* metadata.resourceVersion; NULL when absent */
        bool unconfirmed; /* restored from a snapshot: not vouched for until the API server confirms it */
        bool indexed;     /* the store's mark: it indexes the pod by IP (never set here) */
} KubePod;

/* A pod from its identity; phase "", no IPs. */
int kube_pod_new(const char *uid, const char *namespace, const char *name, KubePod **ret);
/* Adds ip unless present (at most KUBE_POD_MAX_IPS, -E2BIG beyond). */
int kube_pod_add_ip(KubePod *p, const char *ip);
KubePod *kube_pod_free(KubePod *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubePod *, kube_pod_free);
