/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http/http-client.h"
#include "kube-auth.h"
#include "kube-client.h"
#include "kube-transport.h"
#include "kubeconfig.h"
#include "log.h"
#include "node-identity.h"
#include "string-util.h"
#include "strmap.h"

/* One resource's machine and the transfer that drives it. */
typedef struct ClientWatch {
        KubeClient *client;
        KubeWatch *watch;
        KubeRequest req;
} ClientWatch;

struct KubeClient {
        sd_event *event;
        HttpClient *http;
        KubeClientOptions options;
        const KubeSink *sink;
        KubeObjectKeys keys;
        KubeConfig *kubeconfig;
        char *node;        /* whose pods are watched: see client_choose_node() */
        char *waiting_for; /* the kubeconfig path being waited for */
        bool kubeconfig_invalid;
        sd_event_source *poll_timer;
        usec_t poll_backoff;
        KubeAuth *auth;
        ClientWatch watches[_KUBE_RESOURCE_MAX];
        KubeLookups *lookups;
        KubeEvents *events; /* --pod-events, else NULL */
        StrMap confirming;  /* "pod/<uid>" or "namespace/<name>" -> Confirm: one GET each at a time */
        usec_t idle_timeout;
        bool started;
};

static void client_changed(KubeClient *k) {
        if (k->sink->state_changed)
                k->sink->state_changed(k->sink->userdata);
}

/* ---- the watches' driver: their transfers over libcurl ---- */

static size_t on_watch_header(char *data, size_t size, size_t nmemb, void *userdata) {
        ClientWatch *cw = userdata;
        size_t n = size * nmemb;

        if (n <= 2) /* the blank line: the headers are complete */
                kube_watch_headers_done(cw->watch, kube_response_code(cw->req.easy));
        return n;
}

static size_t on_watch_write(char *data, size_t size, size_t nmemb, void *userdata) {
        ClientWatch *cw = userdata;
        return kube_watch_receive(cw->watch, kube_response_code(cw->req.easy), data, size * nmemb);
}

static void on_watch_done(HttpClient *h, CURL *easy, int error, CURLcode result, void *userdata) {
        ClientWatch *cw = userdata;
        KubeResponse r = { .code = kube_response_code(easy),
                           .error = error,
                           .timed_out = result == CURLE_OPERATION_TIMEDOUT,
                           .transport_error = error < 0 ? curl_easy_strerror(result) : NULL };

        if (r.code == 429 || r.code == 503) {
                curl_off_t after = 0;
                if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
                        r.retry_after = (usec_t) after * USEC_PER_SEC;
        }
        kube_request_release(&cw->req);
        kube_watch_finished(cw->watch, &r);
}

static int watch_transfer_options(ClientWatch *cw, KubeTransfer kind) {
        KubeClient *k = cw->client;
        CURL *e = cw->req.easy;

        if (curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_watch_write) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, cw) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_watch_header) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERDATA, cw) != CURLE_OK)
                return -EIO;
        if (kind == KUBE_TRANSFER_WATCH) {
                /* silence beyond the idle limit (no event, no bookmark): a stalled stream */
                long idle = (long) MAX((usec_t) 1, k->idle_timeout / USEC_PER_SEC);
                if (curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
                    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, idle) != CURLE_OK)
                        return -EIO;
        }
        return 0;
}

static int watch_start(KubeWatch *w, const char *path, KubeTransfer kind, void *userdata) {
        ClientWatch *cw = userdata;
        KubeClient *k = cw->client;
        KubeCredentials *creds = NULL;
        int r;

        r = kube_auth_ready(k->auth, k->kubeconfig);
        if (r <= 0)
                return r;
        r = kube_auth_credentials(k->auth, k->kubeconfig, &creds);
        if (r >= 0)
                r = kube_request_prepare(&cw->req, k->kubeconfig, creds, path,
                                         kind == KUBE_TRANSFER_LIST ? KUBE_LIST_TIMEOUT_USEC : 0);
        if (r >= 0)
                r = watch_transfer_options(cw, kind);
        if (r >= 0)
                r = http_client_start(k->http, cw->req.easy, on_watch_done, cw);
        if (r < 0) {
                kube_request_release(&cw->req);
                return r;
        }
        return 1;
}

static void watch_cancel(KubeWatch *w, void *userdata) {
        ClientWatch *cw = userdata;

        if (cw->req.easy)
                http_client_cancel(cw->client->http, cw->req.easy);
        kube_request_release(&cw->req);
}

static void client_set_server(KubeClient *k) {
        const char *server = k->kubeconfig ? k->kubeconfig->server : NULL;

        for (size_t i = 0; i < _KUBE_RESOURCE_MAX; i++)
                if (k->watches[i].watch && kube_watch_set_server(k->watches[i].watch, server) < 0)
                        log_error("Out of memory naming the API server in log lines");
}

/* A 401: re-run the exec plugin, re-read the files and the kubeconfig itself. */
static void watch_unauthorized(KubeWatch *w, void *userdata) {
        ClientWatch *cw = userdata;
        KubeClient *k = cw->client;
        KubeConfig *n = NULL;

        log_error("The API server rejected the credentials of kubeconfig %s (401) for %s; refreshing them",
                  strna(k->kubeconfig->path), kube_watch_what(w));
        kube_auth_forget(k->auth);
        if (k->kubeconfig->path && kubeconfig_load(k->kubeconfig->path, &n) >= 0) {
                kubeconfig_free(k->kubeconfig);
                k->kubeconfig = n;
                client_set_server(k);
        }
}

static void on_auth_ready(KubeAuth *a, int error, void *userdata) {
        KubeClient *k = userdata;

        for (size_t i = 0; i < _KUBE_RESOURCE_MAX; i++)
                kube_watch_credentials_ready(k->watches[i].watch, error);
}

/* ---- kubeconfig ---- */

static void client_kick(KubeClient *k);

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        client_kick(userdata);
        return 0;
}

/* Without --node, the name the API server knows this node by: the kubelet's client certificate
 * says it (system:node:<name>), and it differs from the host name under kubelet's
 * --hostname-override. Decided when the kubeconfig is loaded, which on a new node is after
 * kubelet's TLS bootstrap wrote it; the host name when it authenticates otherwise (token, exec
 * plugin) or the certificate is not a node's. */
static void client_choose_node(KubeClient *k) {
        _cleanup_(kube_credentials_freep) KubeCredentials *creds = NULL;
        _cleanup_free_ char *name = NULL;
        const KubeConfig *kc = k->kubeconfig;
        int r;

        if (k->options.node_given || (!kc->client_cert_file && !kc->client_cert_data))
                return;
        r = kubeconfig_read_credentials(kc, &creds);
        if (r >= 0 && creds->cert_pem)
                r = node_identity_from_certificate(creds->cert_pem, creds->cert_size, &name);
        else if (r >= 0)
                r = -ENOENT;
        if (r < 0) {
                log_warning_errno(
                        r,
                        "No node name in the client certificate of kubeconfig %s (%m); using the host "
                        "name %s: give --node if the API server knows this node by another name",
                        strna(kc->path), k->options.node);
                return;
        }
        if (!streq(name, k->node))
                log_info("Node name %s from the client certificate of kubeconfig %s (host name: %s)", name,
                         strna(kc->path), k->options.node);
        free_and_replace(k->node, name);
        r = kube_watch_set_node(k->watches[KUBE_RESOURCE_PODS].watch, k->node);
        if (r < 0)
                log_error_errno(r, "Failed to watch the pods of node %s: %m", k->node);
}

static void client_use(KubeClient *k, KubeConfig *kc) {
        k->kubeconfig = kc;
        k->kubeconfig_invalid = false;
        k->poll_timer = sd_event_source_disable_unref(k->poll_timer);
        log_info("Using kubeconfig %s (context %s, server %s)", strna(kc->path), strna(kc->context),
                 kc->server);
        client_choose_node(k);
        client_set_server(k);
        client_changed(k);
        for (size_t i = 0; i < _KUBE_RESOURCE_MAX; i++)
                kube_watch_start(k->watches[i].watch);
}

static void client_kick(KubeClient *k) {
        KubeConfig *kc = NULL;
        char *waiting = NULL;
        usec_t delay;
        int r;

        r = kubeconfig_from_source(&k->options.source, &kc, &waiting);
        if (r >= 0)
                return client_use(k, kc);
        if (r == -ENOENT) {
                if (waiting)
                        free_and_replace(k->waiting_for, waiting);
                if (!k->poll_timer)
                        log_notice("Waiting for kubeconfig %s (kubelet writes it after its TLS bootstrap); "
                                   "no pod is served meanwhile",
                                   strna(k->waiting_for));
                k->kubeconfig_invalid = false;
                k->poll_backoff = 0;
                delay = KUBECONFIG_POLL_USEC;
        } else {
                free(waiting);
                if (!k->waiting_for)
                        k->waiting_for = strdup(k->options.source.kubeconfig ?: "(kubeconfig)");
                k->kubeconfig_invalid = true;
                k->poll_backoff = k->poll_backoff == 0 ? KUBECONFIG_POLL_USEC
                                                       : MIN(k->poll_backoff * 2, KUBE_BACKOFF_MAX_USEC);
                delay = k->poll_backoff;
        }
        client_changed(k);
        if (k->poll_timer) {
                r = sd_event_source_set_time_relative(k->poll_timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(k->poll_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(k->event, &k->poll_timer, CLOCK_MONOTONIC, delay, 1, on_poll,
                                               k);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the kubeconfig check: %m");
}

/* ---- confirming what a warm restart restored (docs/warm-restart.md) ---- */

typedef struct Confirm {
        KubeClient *client;
        char *key;  /* in k->confirming */
        char *uid;  /* pods: the uid restored; NULL for a namespace */
        char *name; /* namespaces: its name */
} Confirm;

static void confirm_free_void(void *p) {
        Confirm *c = p;
        if (!c)
                return;
        free(c->key);
        free(c->uid);
        free(c->name);
        free(c);
}

static void confirm_pod(const KubeClient *k, const Confirm *c, int error, const cJSON *object) {
        _cleanup_(kube_pod_freep) KubePod *pod = NULL;

        if (error >= 0 && kube_pod_from_json(object, &k->keys, &pod) < 0)
                error = -EBADMSG;
        if (error >= 0 && streq(pod->uid, c->uid)) {
                log_debug("Pod %s confirmed by the API server", c->uid);
                (void) k->sink->pod_upsert(TAKE_PTR(pod), k->sink->userdata);
        } else if (error == -ENOENT || error >= 0) {
                /* deleted while we were down, or its name now belongs to another pod */
                log_info("Pod %s restored from the snapshot is gone: dropped", c->uid);
                if (k->sink->pod_forget)
                        (void) k->sink->pod_forget(c->uid, k->sink->userdata);
        }
        /* other errors: it stays unconfirmed; the next request asks again */
}

static void confirm_namespace(const KubeClient *k, const Confirm *c, int error, const cJSON *object) {
        KubeNamespaceFields f;

        if (error == -ENOENT) {
                if (k->sink->namespace_forget)
                        (void) k->sink->namespace_forget(c->name, k->sink->userdata);
                return;
        }
        if (error < 0 || kube_namespace_from_json(object, &k->keys, &f) < 0 || !streq(f.name, c->name))
                return;
        (void) k->sink->namespace_upsert(
                &(const KubeNamespace){ .name = (char *) f.name,
                                        .annotation = (char *) f.annotation,
                                        .session_tags = (char *) f.session_tags,
                                        .session_policies = (char *) f.session_policies,
                                        .default_role = (char *) f.default_role },
                k->sink->userdata);
}

static void on_confirmed(KubeClient *k, int error, const cJSON *object, void *userdata) {
        Confirm *c = userdata;

        (void) strmap_remove(&k->confirming, c->key);
        if (c->uid)
                confirm_pod(k, c, error, object);
        else
                confirm_namespace(k, c, error, object);
        confirm_free_void(c);
}

static int confirm_start(KubeClient *k, const char *key, const char *path, const char *uid,
                         const char *name) {
        KubeCredentials *creds = NULL;
        Confirm *c;
        int r;

        if (strmap_get(&k->confirming, key))
                return 0; /* under way */
        if (!k->kubeconfig)
                return -ENOTCONN;
        r = kube_auth_ready(k->auth, k->kubeconfig);
        if (r <= 0)
                return r < 0 ? r : -EAGAIN;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Confirm){ .client = k,
                        .key = strdup(key),
                        .uid = uid ? strdup(uid) : NULL,
                        .name = name ? strdup(name) : NULL };
        if (!c->key || (uid && !c->uid) || (name && !c->name) || strmap_put(&k->confirming, c->key, c) < 0) {
                confirm_free_void(c);
                return -ENOMEM;
        }
        r = kube_auth_credentials(k->auth, k->kubeconfig, &creds);
        if (r >= 0)
                r = kube_lookup_get(k->lookups, k->kubeconfig, creds, path, on_confirmed, c);
        if (r < 0) {
                (void) strmap_remove(&k->confirming, c->key);
                confirm_free_void(c);
                return r;
        }
        return 1;
}

/* a path segment: names and uids are DNS labels, escaped anyway */
static char *segment(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0), *copy = e ? strdup(e) : NULL;
        curl_free(e);
        return copy;
}

int kube_client_confirm_pod(KubeClient *k, const char *uid, const char *namespace, const char *name) {
        _cleanup_free_ char *key = NULL, *path = NULL, *ns = NULL, *n = NULL;

        if (!k || isempty(uid) || isempty(namespace) || isempty(name))
                return -EINVAL;
        ns = segment(namespace);
        n = segment(name);
        if (!ns || !n || asprintf(&key, "pod/%s", uid) < 0 ||
            asprintf(&path, "/api/v1/namespaces/%s/pods/%s", ns, n) < 0)
                return -ENOMEM;
        return confirm_start(k, key, path, uid, NULL);
}

int kube_client_confirm_namespace(KubeClient *k, const char *name) {
        _cleanup_free_ char *key = NULL, *path = NULL, *n = NULL;

        if (!k || isempty(name))
                return -EINVAL;
        n = segment(name);
        if (!n || asprintf(&key, "namespace/%s", name) < 0 ||
            asprintf(&path, "/api/v1/namespaces/%s", n) < 0)
                return -ENOMEM;
        return confirm_start(k, key, path, NULL, name);
}

int kube_client_resume(KubeClient *k, const char *pods_rv, const char *namespaces_rv) {
        int r = 0;

        if (!k || k->started)
                return -EINVAL;
        if (pods_rv)
                r = kube_watch_resume(k->watches[KUBE_RESOURCE_PODS].watch, pods_rv);
        if (r >= 0 && namespaces_rv)
                r = kube_watch_resume(k->watches[KUBE_RESOURCE_NAMESPACES].watch, namespaces_rv);
        return r;
}

const char *kube_client_resource_version(const KubeClient *k, KubeResourceType type) {
        return k && type >= 0 && type < _KUBE_RESOURCE_MAX
                       ? kube_watch_resource_version(k->watches[type].watch)
                       : NULL;
}

unsigned long long kube_client_lists(const KubeClient *k) {
        unsigned long long n = 0;

        for (size_t i = 0; k && i < _KUBE_RESOURCE_MAX; i++)
                n += kube_watch_lists(k->watches[i].watch);
        return n;
}

/* ---- public ---- */

int kube_client_new(sd_event *event, HttpClient *http, const KubeClientOptions *o, const KubeSink *sink,
                    KubeClient **ret) {
        _cleanup_(kube_client_freep) KubeClient *k = NULL;
        int r;

        if (!event || !http || !o || !sink || !ret || isempty(o->node))
                return -EINVAL;
        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->event = sd_event_ref(event);
        k->http = http;
        k->options = *o;
        k->sink = sink;
        k->node = strdup(o->node);
        if (!k->node)
                return -ENOMEM;
        k->keys = o->keys;
        k->idle_timeout = KUBE_WATCH_IDLE_USEC;
        r = kube_auth_new(event, on_auth_ready, k, &k->auth);
        if (r < 0)
                return r;
        r = kube_lookups_new(http, &k->keys, k, &k->lookups);
        if (r < 0)
                return r;
        r = strmap_init(&k->confirming);
        if (r < 0)
                return r;
        if (o->pod_events) {
                r = kube_events_new(http, &k->events);
                if (r < 0)
                        return r;
        }
        for (KubeResourceType t = 0; t < _KUBE_RESOURCE_MAX; t++) {
                ClientWatch *cw = &k->watches[t];
                cw->client = k;
                if (t == KUBE_RESOURCE_SERVICE_ACCOUNTS && !o->service_account_roles)
                        continue; /* read only for --service-account-roles */
                r = kube_watch_new(event,
                                   &(const KubeWatchOptions){ .type = t,
                                                              .node = o->node,
                                                              .keys = k->keys,
                                                              .max_stale = o->max_stale,
                                                              .sink = sink,
                                                              .driver = { .start = watch_start,
                                                                          .cancel = watch_cancel,
                                                                          .unauthorized = watch_unauthorized,
                                                                          .userdata = cw } },
                                   &cw->watch);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

KubeClient *kube_client_free(KubeClient *k) {
        if (!k)
                return NULL;
        k->lookups = kube_lookups_free(k->lookups); /* no callback runs after this */
        strmap_done(&k->confirming, confirm_free_void);
        k->events = kube_events_free(k->events);
        for (size_t i = 0; i < _KUBE_RESOURCE_MAX; i++) {
                k->watches[i].watch = kube_watch_free(k->watches[i].watch); /* cancels its transfer */
                kube_request_done(&k->watches[i].req);
        }
        kube_auth_free(k->auth);
        kubeconfig_free(k->kubeconfig);
        sd_event_source_disable_unref(k->poll_timer);
        free(k->waiting_for);
        free(k->node);
        sd_event_unref(k->event);
        free(k);
        return NULL;
}

void kube_client_set_idle_timeout(KubeClient *k, usec_t usec) {
        k->idle_timeout = MAX(usec, USEC_PER_SEC);
}

int kube_client_start(KubeClient *k) {
        if (!k)
                return -EINVAL;
        if (k->started)
                return -EALREADY;
        k->started = true;
        client_kick(k);
        return 0;
}

static KubeSyncState client_state(const KubeClient *k, KubeResourceType t) {
        if (!k || !k->started)
                return KUBE_SYNC_STARTING;
        if (!k->kubeconfig)
                return k->kubeconfig_invalid ? KUBE_SYNC_KUBECONFIG_INVALID : KUBE_SYNC_WAITING_KUBECONFIG;
        return kube_watch_sync_state(k->watches[t].watch);
}

KubeSyncState kube_client_state(const KubeClient *k) {
        return client_state(k, KUBE_RESOURCE_PODS);
}

KubeSyncState kube_client_namespaces_state(const KubeClient *k) {
        return client_state(k, KUBE_RESOURCE_NAMESPACES);
}

KubeSyncState kube_client_service_accounts_state(const KubeClient *k) {
        if (k && !k->watches[KUBE_RESOURCE_SERVICE_ACCOUNTS].watch)
                return KUBE_SYNC_STARTING;
        return client_state(k, KUBE_RESOURCE_SERVICE_ACCOUNTS);
}

bool kube_client_pods_synced(const KubeClient *k) {
        KubeSyncState s = kube_client_state(k);
        return s == KUBE_SYNC_SYNCED || s == KUBE_SYNC_STALE;
}

bool kube_client_pods_current(const KubeClient *k) {
        return kube_client_state(k) == KUBE_SYNC_SYNCED;
}

const char *kube_client_pods_error(const KubeClient *k) {
        return k ? kube_watch_last_error(k->watches[KUBE_RESOURCE_PODS].watch) : NULL;
}

const char *kube_client_node(const KubeClient *k) {
        return k ? k->node : NULL;
}

const char *kube_client_kubeconfig(const KubeClient *k) {
        if (!k)
                return NULL;
        return k->kubeconfig && k->kubeconfig->path ? k->kubeconfig->path : k->waiting_for;
}

const char *kube_client_server(const KubeClient *k) {
        return k && k->kubeconfig ? k->kubeconfig->server : NULL;
}

unsigned long long kube_client_events_applied(const KubeClient *k) {
        unsigned long long n = 0;

        for (size_t i = 0; k && i < _KUBE_RESOURCE_MAX; i++)
                if (k->watches[i].watch)
                        n += kube_watch_events_applied(k->watches[i].watch);
        return n;
}

/* ---- live lookup by IP ---- */

int kube_client_resolve_ip(KubeClient *k, const char *ip, kube_client_resolve_t cb, void *userdata) {
        KubeCredentials *creds = NULL;
        int r;

        if (!k || isempty(ip) || !cb)
                return -EINVAL;
        if (!k->kubeconfig)
                return -ENOTCONN;
        r = kube_auth_ready(k->auth, k->kubeconfig);
        if (r <= 0)
                return r < 0 ? r : -EAGAIN;
        r = kube_auth_credentials(k->auth, k->kubeconfig, &creds);
        if (r < 0)
                return r;
        return kube_lookup_start(k->lookups, k->kubeconfig, creds, ip, cb, userdata);
}

int kube_client_pod_event(KubeClient *k, const KubeEventInfo *ev) {
        KubeCredentials *creds = NULL;
        int r;

        if (!k || !ev)
                return -EINVAL;
        if (!k->events)
                return 0; /* --pod-events is off */
        if (!k->kubeconfig || kube_auth_ready(k->auth, k->kubeconfig) <= 0)
                return -ENOTCONN;
        if (!kube_events_admit(k->events, ev, now_monotonic()))
                return 0;
        r = kube_auth_credentials(k->auth, k->kubeconfig, &creds);
        if (r < 0)
                return r;
        r = kube_events_post(k->events, k->kubeconfig, creds, k->node, ev, now_realtime());
        return r < 0 ? r : 1;
}

unsigned long long kube_client_events_posted(const KubeClient *k) {
        return k ? kube_events_posted(k->events) : 0;
}

unsigned long long kube_client_events_dropped(const KubeClient *k) {
        return k ? kube_events_dropped(k->events) : 0;
}
