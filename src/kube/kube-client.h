/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeClient: keeps a KubeSink in step with the API server. Owns the kubeconfig in use (waiting
 * for it when kubelet's TLS bootstrap has not written it yet, polling), one list+watch state
 * machine per resource (kube-watch.h: pods of this node, namespaces cluster-wide, ServiceAccounts
 * cluster-wide with --service-account-roles) and the
 * transfers that drive them over the HttpClient (kube-transport.h), the credentials
 * (kube-auth.h: files re-read on every connection, exec plugin results cached; a 401 refreshes
 * them and re-reads the kubeconfig) and the live lookups by IP (kube-lookup.h). It reports its
 * sync state as a KubeSyncState; the daemon turns that into words. Everything runs on the
 * sd-event loop.
 * Reference: kubernetes.io/docs/reference/using-api/api-concepts (watches, bookmarks, 410 Gone);
 * kube2iam's pod indexing and duplicate-IP rules: docs/compatibility.md. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "kube-events.h"
#include "kube-lookup.h"
#include "kube-sink.h"
#include "kube-watch.h"
#include "macro.h"
#include "time-util.h"

typedef struct HttpClient HttpClient;
typedef struct KubeClient KubeClient;

/* kubelet writes its kubeconfig within seconds of bootstrap; polling once a second is cheap
 * (one stat) and READY must not wait long for it. */
#define KUBECONFIG_POLL_USEC (1 * USEC_PER_SEC)
/* The API server sends a bookmark about once a minute on a watch with allowWatchBookmarks;
 * three minutes of silence means a stalled stream (or a server without bookmarks, which then
 * just costs a cheap reconnect from the same resourceVersion). */
#define KUBE_WATCH_IDLE_USEC (3 * USEC_PER_MINUTE)
/* A list page of 500 objects arrives in seconds; two minutes bounds a server that stalls one. */
#define KUBE_LIST_TIMEOUT_USEC (120 * USEC_PER_SEC)

/* Result of kube_client_resolve_ip(): the live pod (valid during the call) or a negative errno
 * (-ENOENT: no running non-hostNetwork pod has the IP). */
typedef kube_lookup_done_t kube_client_resolve_t;

/* What the client watches and how: from the daemon's flags (main.c). */
typedef struct KubeClientOptions {
        KubeconfigSource source;
        const char *node; /* --node, or the host name */
        bool node_given;  /* --node was given: never the client certificate's node name */
        KubeObjectKeys keys;
        bool pod_events;            /* --pod-events */
        bool service_account_roles; /* --service-account-roles: list and watch ServiceAccounts */
        usec_t max_stale;           /* --pod-store-max-stale */
} KubeClientOptions;

/* o's strings and sink must outlive the client. Nothing starts before kube_client_start(). */
int kube_client_new(sd_event *event, HttpClient *http, const KubeClientOptions *o, const KubeSink *sink,
                    KubeClient **ret);
KubeClient *kube_client_free(KubeClient *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeClient *, kube_client_free);

/* Overrides KUBE_WATCH_IDLE_USEC (tests stall streams on purpose). */
void kube_client_set_idle_timeout(KubeClient *k, usec_t usec);
/* Loads the kubeconfig (or starts waiting for it) and starts both list+watch loops. */
int kube_client_start(KubeClient *k);

/* The pods' state: STARTING, WAITING_KUBECONFIG, KUBECONFIG_INVALID, LISTING, SYNCED or STALE. */
KubeSyncState kube_client_state(const KubeClient *k);
/* The namespaces' state: as above, or FORBIDDEN (403: namespace restrictions deny). */
KubeSyncState kube_client_namespaces_state(const KubeClient *k);
/* The ServiceAccounts' state (--service-account-roles; STARTING without it): as namespaces. */
KubeSyncState kube_client_service_accounts_state(const KubeClient *k);
/* A complete pod list has been delivered (it may have turned stale since). */
bool kube_client_pods_synced(const KubeClient *k);
/* Synced, and not stale: the pods delivered may be answered for (kube-freshness.h). */
bool kube_client_pods_current(const KubeClient *k);
/* Why the pod list or watch last failed, NULL when it works. */
const char *kube_client_pods_error(const KubeClient *k);
/* The node whose pods are watched: --node, else the kubeconfig's client certificate's, else the
 * host name. */
const char *kube_client_node(const KubeClient *k);
/* The kubeconfig in use, or waited for. */
const char *kube_client_kubeconfig(const KubeClient *k);
/* The API server, NULL without a kubeconfig. */
const char *kube_client_server(const KubeClient *k);
/* Number of watch events applied (pods and namespaces), for benchmarks and metrics. */
unsigned long long kube_client_events_applied(const KubeClient *k);

/* kube2iam's --resolve-duplicate-cache-ips (kube-lookup.h). cb is called exactly once, never from
 * within this call, unless this returns an error. */
int kube_client_resolve_ip(KubeClient *k, const char *ip, kube_client_resolve_t cb, void *userdata);

/* Warm restarts (docs/warm-restart.md). Before kube_client_start(): the watches start from these
 * resourceVersions (a snapshot's; NULL: that resource lists as usual) instead of listing. */
int kube_client_resume(KubeClient *k, const char *pods_rv, const char *namespaces_rv);
/* The resourceVersion the delivered copy of type is current at, NULL while listing. */
const char *kube_client_resource_version(const KubeClient *k, KubeResourceType type);
/* Lists started since the client was made (pods and namespaces). */
unsigned long long kube_client_lists(const KubeClient *k);
/* A live GET of a restored pod (the Node authorizer lets a node get the pods bound to it): the
 * same uid is delivered to the sink's pod_upsert (confirmed); 404 or another uid to pod_forget;
 * any other failure leaves it unconfirmed. One GET per uid at a time: 1 started, 0 already under
 * way, <0 not possible now (no kubeconfig or credentials yet). Never waits. */
int kube_client_confirm_pod(KubeClient *k, const char *uid, const char *namespace, const char *name);
/* The same for a restored namespace (needs get on namespaces, which the ClusterRole that lets the
 * daemon list and watch them grants): namespace_upsert, or namespace_forget on 404. */
int kube_client_confirm_namespace(KubeClient *k, const char *name);

/* --pod-events: posts ev as an Event on its pod with the kubeconfig's identity, unless one was
 * posted for the same pod and reason within KUBE_EVENTS_WINDOW_USEC (kube-events.h). Returns 1
 * when a POST started, 0 when the flag is off or the Event was de-duplicated or dropped, <0 on
 * error. Never waits: the POST runs on the loop. */
int kube_client_pod_event(KubeClient *k, const KubeEventInfo *ev);
unsigned long long kube_client_events_posted(const KubeClient *k);
unsigned long long kube_client_events_dropped(const KubeClient *k);
