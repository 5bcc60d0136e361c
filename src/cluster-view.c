/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>

#include "cluster-view.h"
#include "config.h"
#include "kube/kube-freshness.h"
#include "string-util.h"

static void render_synced(const ClusterView *v, StrBuf *b) {
        const char *error = kube_client_pods_error(v->kube);

        strbuf_appendf(b, "Synced %zu pods", store_n_pods(v->store));
        switch (kube_client_namespaces_state(v->kube)) {
        case KUBE_SYNC_FORBIDDEN:
                strbuf_append(b, "; namespaces forbidden (RBAC missing), namespace restrictions deny");
                break;
        case KUBE_SYNC_SYNCED:
        case KUBE_SYNC_STALE:
                strbuf_appendf(b, ", %zu namespaces", store_n_namespaces(v->store));
                break;
        default:
                strbuf_append(b, ", namespaces not listed yet");
        }
        if (v->config->service_account_roles)
                switch (kube_client_service_accounts_state(v->kube)) {
                case KUBE_SYNC_FORBIDDEN:
                        strbuf_append(b, "; serviceaccounts forbidden (RBAC missing), pods without a role "
                                         "annotation get no role");
                        break;
                case KUBE_SYNC_SYNCED:
                case KUBE_SYNC_STALE:
                        strbuf_appendf(b, ", %zu ServiceAccounts with a role",
                                       store_n_service_accounts(v->store));
                        break;
                default:
                        strbuf_append(b, ", serviceaccounts not listed yet");
                }
        if (error)
                strbuf_appendf(b, "; API server: %s, serving from memory", error);
}

static void render(const ClusterView *v, StrBuf *b) {
        const char *node = kube_client_node(v->kube), *error = kube_client_pods_error(v->kube);
        char dur[DURATION_MAX];

        switch (kube_client_state(v->kube)) {
        case KUBE_SYNC_STARTING:
                strbuf_append(b, "Starting");
                break;
        case KUBE_SYNC_WAITING_KUBECONFIG:
                strbuf_appendf(
                        b,
                        "Waiting for kubeconfig %s (kubelet writes it after TLS bootstrap); no pod is "
                        "served",
                        strna(kube_client_kubeconfig(v->kube)));
                break;
        case KUBE_SYNC_KUBECONFIG_INVALID:
                strbuf_appendf(b, "Kubeconfig %s is invalid (see the log), retrying; no pod is served",
                               strna(kube_client_kubeconfig(v->kube)));
                break;
        case KUBE_SYNC_STALE:
                strbuf_appendf(
                        b,
                        "Pod list of node %s not refreshed for over %s while the API server answers "
                        "(%s): no pod is answered for",
                        node,
                        format_duration(v->config->pod_store_max_stale ?: KUBE_POD_STORE_MAX_STALE_USEC, dur,
                                        sizeof dur),
                        strna(error));
                break;
        case KUBE_SYNC_SYNCED:
                render_synced(v, b);
                break;
        default: /* listing: not synced yet */
                strbuf_appendf(b, "Listing pods on node %s from %s", node,
                               strna(kube_client_server(v->kube)));
                if (error)
                        strbuf_appendf(b, " (retrying: %s)", error);
        }
}

void cluster_view_update(ClusterView *v) {
        _cleanup_strbuf_ StrBuf b = {};

        render(v, &b);
        if (strbuf_error(&b) < 0)
                return;
        if (v->status && streq(v->status, strbuf_str(&b)))
                return;
        free(v->status);
        v->status = strbuf_steal(&b);
        if (v->changed)
                v->changed(v, v->userdata);
}

const char *cluster_view_status(const ClusterView *v) {
        return v->status ?: "Starting";
}

/* ---- the sink: kube client -> store ---- */

static int sink_pod_upsert(KubePod *pod, void *userdata) {
        ClusterView *v = userdata;
        int r = store_pod_update(v->store, pod);
        cluster_view_update(v); /* the count in the line */
        return r;
}

static int sink_pod_delete(const char *uid, void *userdata) {
        ClusterView *v = userdata;
        int r = store_pod_remove(v->store, uid);
        cluster_view_update(v);
        return r;
}

static int sink_pod_forget(const char *uid, void *userdata) {
        ClusterView *v = userdata;
        int r = store_pod_forget(v->store, uid);
        cluster_view_update(v);
        return r;
}

static int sink_namespace_forget(const char *name, void *userdata) {
        ClusterView *v = userdata;
        int r = store_namespace_forget(v->store, name);
        cluster_view_update(v);
        return r;
}

static int sink_pods_replace(KubePod **pods, size_t n, void *userdata) {
        ClusterView *v = userdata;
        int r = store_pods_replace(v->store, pods, n);
        cluster_view_update(v);
        return r;
}

static void sink_pods_vouched(bool vouched, void *userdata) {
        ClusterView *v = userdata;
        store_set_pods_unconfirmed(v->store, !vouched);
}

static int sink_namespace_upsert(const KubeNamespace *ns, void *userdata) {
        ClusterView *v = userdata;
        int r = store_namespace_update(
                v->store, &(const StoreNamespaceSpec){ ns->name, ns->annotation, ns->session_tags,
                                                       ns->session_policies, ns->default_role });
        cluster_view_update(v);
        return r;
}

static int sink_namespace_delete(const char *name, void *userdata) {
        ClusterView *v = userdata;
        int r = store_namespace_remove(v->store, name);
        cluster_view_update(v);
        return r;
}

static int sink_namespaces_replace(const KubeNamespace *ns, size_t n, void *userdata) {
        ClusterView *v = userdata;
        _cleanup_free_ StoreNamespaceSpec *specs = calloc(n + 1, sizeof(StoreNamespaceSpec));
        int r;

        if (!specs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                specs[i] = (StoreNamespaceSpec){ ns[i].name, ns[i].annotation, ns[i].session_tags,
                                                 ns[i].session_policies, ns[i].default_role };
        r = store_namespaces_replace(v->store, specs, n);
        cluster_view_update(v);
        return r;
}

static void sink_namespaces_unavailable(void *userdata) {
        ClusterView *v = userdata;
        store_namespaces_unavailable(v->store);
}

static void sink_progress(void *userdata) {
        ClusterView *v = userdata;
        if (v->progress)
                v->progress(v->userdata);
}

static int sink_service_account_upsert(const KubeServiceAccount *sa, void *userdata) {
        ClusterView *v = userdata;
        return store_service_account_update(
                v->store, &(const StoreServiceAccountSpec){ sa->namespace, sa->name, sa->role_arn });
}

static int sink_service_account_delete(const char *namespace, const char *name, void *userdata) {
        ClusterView *v = userdata;
        return store_service_account_remove(v->store, namespace, name);
}

static int sink_service_accounts_replace(const KubeServiceAccount *sa, size_t n, void *userdata) {
        ClusterView *v = userdata;
        _cleanup_free_ StoreServiceAccountSpec *specs = calloc(n + 1, sizeof(StoreServiceAccountSpec));
        int r;

        if (!specs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                specs[i] = (StoreServiceAccountSpec){ sa[i].namespace, sa[i].name, sa[i].role_arn };
        r = store_service_accounts_replace(v->store, specs, n);
        cluster_view_update(v);
        return r;
}

static void sink_service_accounts_unavailable(void *userdata) {
        ClusterView *v = userdata;
        store_service_accounts_unavailable(v->store);
}

static void sink_state_changed(void *userdata) {
        cluster_view_update(userdata);
}

void cluster_view_init(ClusterView *v, Store *store, const Config *c, cluster_view_changed_t changed,
                       void *userdata) {
        *v = (ClusterView){ .store = store,
                            .config = c,
                            .changed = changed,
                            .userdata = userdata,
                            .sink = { .pod_upsert = sink_pod_upsert,
                                      .pod_delete = sink_pod_delete,
                                      .pod_forget = sink_pod_forget,
                                      .pods_replace = sink_pods_replace,
                                      .pods_vouched = sink_pods_vouched,
                                      .namespace_upsert = sink_namespace_upsert,
                                      .namespace_delete = sink_namespace_delete,
                                      .namespace_forget = sink_namespace_forget,
                                      .namespaces_replace = sink_namespaces_replace,
                                      .namespaces_unavailable = sink_namespaces_unavailable,
                                      .progress = sink_progress,
                                      .service_account_upsert = sink_service_account_upsert,
                                      .service_account_delete = sink_service_account_delete,
                                      .service_accounts_replace = sink_service_accounts_replace,
                                      .service_accounts_unavailable = sink_service_accounts_unavailable,
                                      .state_changed = sink_state_changed,
                                      .userdata = v } };
}

void cluster_view_done(ClusterView *v) {
        v->status = mfree(v->status);
}

const KubeClientOptions *cluster_view_kube_options(const ClusterView *v, KubeClientOptions *ret) {
        const Config *c = v->config;

        *ret = (KubeClientOptions){
                .node = c->node,
                .node_given = c->node_given,
                .keys = { c->iam_role_key, c->iam_external_id, c->namespace_key,
                          c->session_tags ? KUBE_SESSION_TAGS_ANNOTATION : NULL,
                          c->session_policies ? KUBE_SESSION_POLICIES_ANNOTATION : NULL,
                          c->namespace_default_roles ? KUBE_NAMESPACE_DEFAULT_ROLE_ANNOTATION : NULL },
                .pod_events = c->pod_events,
                .service_account_roles = c->service_account_roles,
                .max_stale = c->pod_store_max_stale,
        };
        config_kubeconfig_source(c, &ret->source);
        return ret;
}
