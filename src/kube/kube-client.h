/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeClient: keeps the Store in step with the API server. Owns the kubeconfig in use (waiting
 * for it when kubelet's TLS bootstrap has not written it yet), the credentials (files re-read on
 * every connection and after a 401, so a rotated kubelet client certificate is picked up; exec
 * plugin results cached until their expiry), and two list+watch loops on the HttpClient: pods
 * of this node (fieldSelector=spec.nodeName=<node>) and namespaces (cluster-wide). Each lists
 * in pages (limit/continue), applies the complete list to the store at once, then watches from
 * the list's resourceVersion with bookmarks and a random timeoutSeconds of 5-10 minutes, as
 * client-go does. 410 Gone (HTTP or in-stream) and malformed events re-list; dropped streams,
 * 429/5xx and silence past the idle limit reconnect with jittered backoff; 401 refreshes the
 * credentials; 403 on namespaces is reported with the RBAC that is missing, pods are still
 * served and namespace restrictions deny. A page too large for us is asked for again in smaller
 * pages. While the API server answers but the pod list cannot be refreshed for longer than
 * --pod-store-max-stale, the store vouches for no pod (docs/pod-store.md). Everything runs on
 * the sd-event loop.
 * Reference: kubernetes.io/docs/reference/using-api/api-concepts (watches, bookmarks, 410 Gone);
 * kube2iam's pod indexing and duplicate-IP rules: docs/compatibility.md. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "kube-freshness.h"
#include "macro.h"
#include "store.h"
#include "time-util.h"

typedef struct Config Config;
typedef struct HttpClient HttpClient;
typedef struct KubeClient KubeClient;

/* kubelet writes its kubeconfig within seconds of bootstrap; polling once a second is cheap
 * (one stat) and READY must not wait long for it. */
#define KUBECONFIG_POLL_USEC (1 * USEC_PER_SEC)
/* A reachable API server accepts a connection in milliseconds; 10 s covers a loaded control plane
 * behind a load balancer without leaving a list waiting on a dead address. */
#define KUBE_CONNECT_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Reconnect backoff: doubles from the first to the last, each wait jittered to 50-100 %. */
#define KUBE_BACKOFF_FIRST_USEC (500 * USEC_PER_MSEC)
#define KUBE_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* A Retry-After beyond this is not believed: the watch must come back eventually. */
#define KUBE_RETRY_AFTER_MAX_USEC (5 * USEC_PER_MINUTE)
/* RBAC is fixed by a human: ask again for namespaces after 403 this rarely. */
#define KUBE_FORBIDDEN_RETRY_USEC (5 * USEC_PER_MINUTE)
/* client-go's watch timeout: random in [5, 10) minutes, so watches of many nodes spread out. */
#define KUBE_WATCH_TIMEOUT_MIN_SEC 300
#define KUBE_WATCH_TIMEOUT_MAX_SEC 600
/* The API server sends a bookmark about once a minute on a watch with allowWatchBookmarks;
 * three minutes of silence means a stalled stream (or a server without bookmarks, which then
 * just costs a cheap reconnect from the same resourceVersion). */
#define KUBE_WATCH_IDLE_USEC (3 * USEC_PER_MINUTE)
/* Items per list page, as kubectl and client-go's pager use. */
#define KUBE_LIST_PAGE_LIMIT 500
/* A page over KUBE_LIST_PAGE_MAX_BYTES is asked for again with half the items (same continue
 * token), down to one item: tenants can make pods of ~1.5 MiB each, and 46 of them fill a page
 * of 500. The next list starts from the size that worked, doubled. */
#define KUBE_LIST_PAGE_LIMIT_MIN 1
/* One page of 500 pods of ~20 KiB each is 10 MiB; 64 MiB bounds a broken server. */
#define KUBE_LIST_PAGE_MAX_BYTES (64 * 1024 * 1024)
/* Error bodies are only read for their message. */
#define KUBE_ERROR_BODY_MAX_BYTES (64 * 1024)
/* Watch bytes received but not yet applied (they are applied on the next loop iteration); far
 * above what libcurl delivers per socket event, so reaching it means something is wrong. */
#define KUBE_WATCH_BACKLOG_MAX_BYTES (4 * MAX_WATCH_EVENT_BYTES)
/* Refresh exec credentials this long before they expire, so no request carries an expired token. */
#define KUBE_CREDENTIAL_REFRESH_MARGIN_USEC (60 * USEC_PER_SEC)
/* A live pod lookup (--resolve-duplicate-cache-ips) answers a waiting request: keep it short. */
#define KUBE_RESOLVE_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* Called whenever the sync state or the status text changed. */
typedef void (*kube_client_state_t)(KubeClient *k, void *userdata);
/* Result of kube_client_resolve_ip(): the live pod (valid during the call) or a negative errno
 * (-ENOENT: no running non-hostNetwork pod has the IP). */
typedef void (*kube_client_resolve_t)(KubeClient *k, int error, const StorePod *pod, void *userdata);

/* c and store must outlive the client. Nothing starts before kube_client_start(). */
int kube_client_new(sd_event *event, HttpClient *http, const Config *c, Store *store, KubeClient **ret);
KubeClient *kube_client_free(KubeClient *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeClient *, kube_client_free);

void kube_client_set_state_callback(KubeClient *k, kube_client_state_t cb, void *userdata);
/* Overrides KUBE_WATCH_IDLE_USEC (tests stall streams on purpose). */
void kube_client_set_idle_timeout(KubeClient *k, usec_t usec);
/* Loads the kubeconfig (or starts waiting for it) and starts both list+watch loops. */
int kube_client_start(KubeClient *k);

/* True once the first complete pod list has been applied to the store (stays true). */
bool kube_client_pods_synced(const KubeClient *k);
/* Synced, and not stale: the store vouches for the pods it holds (kube-freshness.h). */
bool kube_client_pods_current(const KubeClient *k);
bool kube_client_namespaces_synced(const KubeClient *k);
/* True when the credentials may not read namespaces (403): restrictions deny. */
bool kube_client_namespaces_forbidden(const KubeClient *k);
/* A one-line state for STATUS=, e.g. "Waiting for kubeconfig /var/lib/kubelet/kubeconfig" or
 * "Synced 12 pods, 40 namespaces". Valid until the next loop iteration. */
const char *kube_client_status(const KubeClient *k);
/* Number of watch events applied (pods and namespaces), for benchmarks and metrics. */
unsigned long long kube_client_events_applied(const KubeClient *k);

/* kube2iam's --resolve-duplicate-cache-ips: a live LIST of pods with status.podIP=ip in all
 * namespaces; the first running pod without hostNetwork wins. cb is called exactly once, never
 * from within this call, unless this returns an error. */
int kube_client_resolve_ip(KubeClient *k, const char *ip, kube_client_resolve_t cb, void *userdata);
