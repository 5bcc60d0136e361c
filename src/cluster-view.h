/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* ClusterView: the daemon's end of the kube client. Owns the KubeSink that puts what the kube
 * client delivers into the Store (store.h's update functions), and the status line the daemon
 * shows (STATUS=, /debug): the kube client's sync states (KubeSyncState) and the store's counts
 * in words, e.g. "Waiting for kubeconfig /var/lib/kubelet/kubeconfig ..." or "Synced 12 pods, 40
 * namespaces". changed() is called when that line changed. Also turns the daemon's flags into
 * the kube client's options (what it watches, which annotations it reads). */

#include "kube/kube-client.h"
#include "store.h"

typedef struct Config Config;
typedef struct ClusterView ClusterView;
typedef void (*cluster_view_changed_t)(ClusterView *v, void *userdata);

struct ClusterView {
        Store *store;
        const Config *config;
        KubeClient *kube; /* set after kube_client_new(), before kube_client_start() */
        KubeSink sink;    /* hand &sink to kube_client_new() */
        char *status;
        cluster_view_changed_t changed;
        void (*progress)(void *userdata); /* a bookmark (KubeSink.progress); may be NULL */
        void *userdata;
};

/* store and c must outlive v. */
void cluster_view_init(ClusterView *v, Store *store, const Config *c, cluster_view_changed_t changed,
                       void *userdata);
void cluster_view_done(ClusterView *v);
/* The kube client's options under v's flags (strings borrowed from them); returns ret. */
const KubeClientOptions *cluster_view_kube_options(const ClusterView *v, KubeClientOptions *ret);
/* The status line, "Starting" before the kube client reported anything. */
const char *cluster_view_status(const ClusterView *v);
/* Renders the line again; calls changed() when it differs. */
void cluster_view_update(ClusterView *v);
