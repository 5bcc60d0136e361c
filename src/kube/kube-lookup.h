/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeLookups: live requests that answer a waiting pod request. kube2iam's
 * --resolve-duplicate-cache-ips, a live LIST of the pods with status.podIP=ip in all namespaces (the
 * first running pod without hostNetwork wins), and the GET of one object that confirms what a warm
 * restart restored (docs/warm-restart.md). Owns the lookups in flight (each its own request) until
 * their callback ran or the set is freed. */

#include "http/http-client.h"
#include "kube-object.h"
#include "kube-transport.h"
#include "macro.h"

/* A live lookup answers a waiting request: keep it short. */
#define KUBE_RESOLVE_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* The answer lists the pods that have the IP: a handful at most, bounded like a list page. */
#define KUBE_RESOLVE_MAX_BYTES (64 * 1024 * 1024)

typedef struct KubeLookups KubeLookups;
typedef struct KubeClient KubeClient;

/* The live pod (valid during the call) or a negative errno (-ENOENT: no running non-hostNetwork
 * pod has the IP); owner is the set's. */
typedef void (*kube_lookup_done_t)(KubeClient *owner, int error, const KubePod *pod, void *userdata);

/* The object (valid during the call) or a negative errno: -ENOENT for 404. */
typedef void (*kube_get_done_t)(KubeClient *owner, int error, const cJSON *object, void *userdata);

/* keys must outlive the set; owner is handed to every callback. */
int kube_lookups_new(HttpClient *http, const KubeObjectKeys *keys, KubeClient *owner, KubeLookups **ret);
/* Cancels what runs, without callbacks. */
KubeLookups *kube_lookups_free(KubeLookups *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeLookups *, kube_lookups_free);

/* Starts one on kc's server with creds (taken, also on failure). done is called exactly once,
 * never from within this call, unless this returns an error. */
int kube_lookup_start(KubeLookups *l, const KubeConfig *kc, KubeCredentials *creds, const char *ip,
                      kube_lookup_done_t done, void *userdata);
/* GET path (an object, such as /api/v1/namespaces/NS/pods/NAME), bounded like a lookup. done is
 * called exactly once, never from within this call, unless this returns an error. */
int kube_lookup_get(KubeLookups *l, const KubeConfig *kc, KubeCredentials *creds, const char *path,
                    kube_get_done_t done, void *userdata);
