/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "config.h"
#include "http/http-client.h"
#include "kube-client.h"
#include "kube-exec.h"
#include "kube-object.h"
#include "kubeconfig.h"
#include "log.h"
#include "string-util.h"
#include "watch-parser.h"

typedef enum WatcherState {
        WATCHER_IDLE,
        WATCHER_WAIT_CREDENTIALS, /* an exec plugin runs */
        WATCHER_LISTING,
        WATCHER_WATCHING,
        WATCHER_BACKOFF,
        WATCHER_FORBIDDEN, /* 403: asked again after KUBE_FORBIDDEN_RETRY_USEC */
} WatcherState;

typedef struct NamespaceItem {
        char *name;
        char *annotation;
} NamespaceItem;

/* The request-scoped pieces a running transfer points into (curl keeps pointers to the
 * NOCOPY blobs and the header list until the transfer ends). */
typedef struct Request {
        CURL *easy;
        struct curl_slist *headers;
        struct curl_slist *connect_to;
        KubeCredentials *creds;
        StrBuf body;
} Request;

typedef struct Watcher {
        KubeClient *client;
        const char *what; /* "pods" or "namespaces" */
        bool is_pods;
        Request req;
        WatchParser *parser;
        StrBuf incoming;                  /* watch bytes not yet parsed */
        sd_event_source *incoming_source; /* parses them outside libcurl's callbacks */
        WatcherState state;
        bool listing;        /* the running transfer is a list page */
        char *rv;            /* NULL: the next request is a (re-)list */
        unsigned page_limit; /* limit= of the next list page, from KUBE_LIST_PAGE_LIMIT down */
        char *cont;          /* continue token of the list in progress */
        StorePod **pods;     /* pages of the list in progress */
        size_t n_pods, cap_pods;
        NamespaceItem *ns;
        size_t n_ns, cap_ns;
        sd_event_source *timer;
        usec_t backoff;
        bool synced;
        bool forbidden;
        KubeFreshness fresh; /* pods only: since when refreshing fails while the server answers */
        bool stale;          /* pods only: the store vouches for no pod (store_set_pods_unconfirmed) */
        bool accepted;       /* the running watch was answered 200, not yet recorded */
        int abort_reason;    /* why the write callback stopped the transfer */
        unsigned events_this_stream;
        unsigned auth_failures;
        usec_t retry_after; /* from a 429/503 Retry-After header */
        char *last_error;
} Watcher;

typedef struct Resolve {
        KubeClient *client;
        Request req;
        kube_client_resolve_t cb;
        void *userdata;
        char *ip;
        struct Resolve *prev, *next;
} Resolve;

struct KubeClient {
        sd_event *event;
        HttpClient *http;
        const Config *config;
        Store *store;
        KubeObjectKeys keys;
        KubeConfig *kubeconfig;
        char *waiting_for; /* the kubeconfig path being waited for */
        bool kubeconfig_invalid;
        sd_event_source *poll_timer;
        usec_t poll_backoff;
        KubeCredentials *exec_creds; /* cached exec plugin result */
        KubeExec *exec;
        Watcher pods, namespaces;
        sd_event_source *stale_timer; /* when the pod store turns stale, if nothing confirms it first */
        Resolve *resolves;
        usec_t idle_timeout;
        unsigned long long events_applied;
        char *status;
        kube_client_state_t state_cb;
        void *state_userdata;
        bool started;
};

static void watcher_next(Watcher *w);
static void client_kick(KubeClient *k);

static uint64_t random_u64(void) {
        uint64_t v;
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
                v = now_monotonic() * 6364136223846793005ULL;
        return v;
}

/* ---- requests ---- */

static void request_release(Request *r) {
        /* the header list holds the bearer token: wipe it */
        for (struct curl_slist *h = r->headers; h; h = h->next)
                if (h->data)
                        explicit_bzero(h->data, strlen(h->data));
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        curl_slist_free_all(r->connect_to);
        r->connect_to = NULL;
        r->creds = kube_credentials_free(r->creds);
        strbuf_done(&r->body);
}

static void request_done(Request *r) {
        request_release(r);
        if (r->easy) {
                curl_easy_cleanup(r->easy);
                r->easy = NULL;
        }
}

/* The credentials a new connection uses: the files read now (rotation), with the exec
 * plugin's token or certificate on top. */
static int client_credentials(KubeClient *k, KubeCredentials **ret) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        KubeCredentials *x = k->exec_creds;
        int r;

        r = kubeconfig_read_credentials(k->kubeconfig, &c);
        if (r < 0)
                return r;
        if (x && x->token) {
                secret_free(c->token);
                r = secret_dup(x->token, &c->token);
                if (r < 0)
                        return r;
        }
        if (x && x->cert_pem) {
                free(c->cert_pem);
                c->cert_pem = strdup(x->cert_pem);
                c->cert_size = x->cert_size;
                secret_free(c->key_pem);
                c->key_pem = NULL;
                if (!c->cert_pem || secret_dup(x->key_pem, &c->key_pem) < 0)
                        return -ENOMEM;
        }
        if (x)
                c->expires = x->expires;
        *ret = TAKE_PTR(c);
        return 0;
}

#define SETOPT(easy, opt, val) \
        do { \
                if (curl_easy_setopt(easy, opt, val) != CURLE_OK) \
                        return -EIO; \
        } while (0)

/* Prepares r->easy for GET server + path (path includes the query). */
static int request_setup(KubeClient *k, Request *r, const char *path, curl_write_callback write_cb,
                         void *write_data) {
        const KubeConfig *kc = k->kubeconfig;
        _cleanup_free_ char *url = NULL;
        int q;

        request_release(r);
        q = client_credentials(k, &r->creds);
        if (q < 0)
                return q;
        if (!r->easy) {
                r->easy = curl_easy_init();
                if (!r->easy)
                        return -ENOMEM;
        } else
                curl_easy_reset(r->easy); /* keeps the connection cache and TLS sessions */

        if (asprintf(&url, "%s%s", kc->server, path) < 0)
                return -ENOMEM;
        if (kc->tls_server_name) {
                /* verify and send SNI for tls-server-name while connecting to the server's address */
                _cleanup_free_ char *host = NULL, *port = NULL, *connect_to = NULL, *newurl = NULL;
                CURLU *u = curl_url();
                bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                          curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                          curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
                          curl_url_set(u, CURLUPART_HOST, kc->tls_server_name, 0) == CURLUE_OK &&
                          curl_url_get(u, CURLUPART_URL, &newurl, 0) == CURLUE_OK;
                curl_url_cleanup(u);
                if (!ok)
                        return log_error_errno(-EINVAL,
                                               "Invalid server URL %s with tls-server-name %s in %s",
                                               kc->server, kc->tls_server_name, strna(kc->path));
                if (asprintf(&connect_to, "%s:%s:%s:%s", kc->tls_server_name, port, host, port) < 0)
                        return -ENOMEM;
                /* libcurl keeps the CONNECT_TO list by pointer until the transfer ends */
                r->connect_to = curl_slist_append(NULL, connect_to);
                if (!r->connect_to)
                        return -ENOMEM;
                free(url);
                url = strdup(newurl);
                if (!url)
                        return -ENOMEM;
                curl_free(host);
                curl_free(port);
                curl_free(newurl);
                host = port = newurl = NULL;
        }
        q = http_client_prepare(r->easy,
                                &(const HttpRequestOptions){ .url = url,
                                                             .protocols = HTTP_PROTOCOLS_HTTP_HTTPS,
                                                             .connect_timeout = KUBE_CONNECT_TIMEOUT_USEC });
        if (q < 0)
                return q;
        if (r->connect_to)
                SETOPT(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
        SETOPT(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(r->easy, CURLOPT_TCP_KEEPIDLE, 30L);
        SETOPT(r->easy, CURLOPT_TCP_KEEPINTVL, 10L);
        SETOPT(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(r->easy, CURLOPT_WRITEDATA, write_data);
        SETOPT(r->easy, CURLOPT_ACCEPT_ENCODING, ""); /* gzip lists of 10,000 namespaces */

        if (kc->insecure_skip_tls_verify) {
                SETOPT(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
                SETOPT(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
        } else if (r->creds->ca_pem) {
                struct curl_blob b = { .data = r->creds->ca_pem,
                                       .len = r->creds->ca_size,
                                       .flags = CURL_BLOB_NOCOPY };
                SETOPT(r->easy, CURLOPT_CAINFO_BLOB, &b);
        }
        if (r->creds->cert_pem && r->creds->key_pem) {
                struct curl_blob cert = { .data = r->creds->cert_pem,
                                          .len = r->creds->cert_size,
                                          .flags = CURL_BLOB_NOCOPY };
                struct curl_blob key = { .data = (void *) secret_reveal(r->creds->key_pem),
                                         .len = secret_size(r->creds->key_pem),
                                         .flags = CURL_BLOB_NOCOPY };
                SETOPT(r->easy, CURLOPT_SSLCERT_BLOB, &cert);
                SETOPT(r->easy, CURLOPT_SSLCERTTYPE, "PEM");
                SETOPT(r->easy, CURLOPT_SSLKEY_BLOB, &key);
                SETOPT(r->easy, CURLOPT_SSLKEYTYPE, "PEM");
        }
        {
                struct curl_slist *h = curl_slist_append(r->headers, "Accept: application/json");
                if (!h)
                        return -ENOMEM;
                r->headers = h;
        }
        if (r->creds->token) {
                _cleanup_erase_ char *auth = NULL;
                struct curl_slist *h;
                if (asprintf(&auth, "Authorization: Bearer %s", secret_reveal(r->creds->token)) < 0)
                        return -ENOMEM;
                h = curl_slist_append(r->headers, auth);
                if (!h)
                        return -ENOMEM;
                r->headers = h;
        }
        SETOPT(r->easy, CURLOPT_HTTPHEADER, r->headers);
        return 0;
}

static long response_code(CURL *easy) {
        long code = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        return code;
}

/* The message of a Kubernetes Status body, else the first bytes of the body. */
static char *status_message(const StrBuf *b) {
        _cleanup_(json_deletep) cJSON *j = cJSON_ParseWithLength(strbuf_str(b), b->len);
        const char *m = json_get_string_path(j, (const char *const[]){ "message" }, 1);
        if (m)
                return strdup(m);
        return strndup_safe(strbuf_str(b), MIN(b->len, (size_t) 200));
}

/* ---- state ---- */

static usec_t client_max_stale(const KubeClient *k) {
        return k->config->pod_store_max_stale ?: KUBE_POD_STORE_MAX_STALE_USEC;
}

static void client_state_changed(KubeClient *k) {
        _cleanup_strbuf_ StrBuf b = {};
        const char *server = k->kubeconfig ? k->kubeconfig->server : NULL;
        char dur[DURATION_MAX];

        if (!k->kubeconfig) {
                if (k->kubeconfig_invalid)
                        strbuf_appendf(&b,
                                       "Kubeconfig %s is invalid (see the log), retrying; no pod is served",
                                       strna(k->waiting_for));
                else
                        strbuf_appendf(&b,
                                       "Waiting for kubeconfig %s (kubelet writes it after TLS bootstrap); "
                                       "no pod is served",
                                       strna(k->waiting_for));
        } else if (!k->pods.synced) {
                strbuf_appendf(&b, "Listing pods on node %s from %s", k->config->node, server);
                if (k->pods.last_error)
                        strbuf_appendf(&b, " (retrying: %s)", k->pods.last_error);
        } else if (k->pods.stale) {
                strbuf_appendf(&b,
                               "Pod list of node %s not refreshed for over %s while the API server answers "
                               "(%s): no pod is answered for",
                               k->config->node, format_duration(client_max_stale(k), dur, sizeof dur),
                               strna(k->pods.last_error));
        } else {
                strbuf_appendf(&b, "Synced %zu pods", store_n_pods(k->store));
                if (k->namespaces.forbidden)
                        strbuf_append(&b,
                                      "; namespaces forbidden (RBAC missing), namespace restrictions deny");
                else if (k->namespaces.synced)
                        strbuf_appendf(&b, ", %zu namespaces", store_n_namespaces(k->store));
                else
                        strbuf_append(&b, ", namespaces not listed yet");
                if (k->pods.last_error)
                        strbuf_appendf(&b, "; API server: %s, serving from memory", k->pods.last_error);
        }
        if (strbuf_error(&b) < 0)
                return;
        if (k->status && streq(k->status, strbuf_str(&b)))
                return;
        free(k->status);
        k->status = strbuf_steal(&b);
        if (k->state_cb)
                k->state_cb(k, k->state_userdata);
}

static void watcher_set_error(Watcher *w, const char *fmt, ...) _printf_(2, 3);
static void watcher_set_error(Watcher *w, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(w->last_error);
        w->last_error = s;
}

static void watcher_clear_error(Watcher *w) {
        w->last_error = mfree(w->last_error);
}

static void watcher_drop_pending(Watcher *w) {
        for (size_t i = 0; i < w->n_pods; i++)
                store_pod_free(w->pods[i]);
        w->pods = mfree(w->pods);
        w->n_pods = w->cap_pods = 0;
        for (size_t i = 0; i < w->n_ns; i++) {
                free(w->ns[i].name);
                free(w->ns[i].annotation);
        }
        w->ns = mfree(w->ns);
        w->n_ns = w->cap_ns = 0;
        w->cont = mfree(w->cont);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watcher *w = userdata;
        if (w->state == WATCHER_FORBIDDEN)
                w->rv = mfree(w->rv);
        w->state = WATCHER_IDLE;
        watcher_next(w);
        return 0;
}

static void watcher_schedule(Watcher *w, usec_t delay, WatcherState state) {
        int r;

        w->state = state;
        if (w->timer) {
                r = sd_event_source_set_time_relative(w->timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(w->client->event, &w->timer, CLOCK_MONOTONIC, delay, 1,
                                               on_timer, w);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the %s watch: %m", w->what);
}

/* Waits before the next attempt: doubling, jittered to 50-100 % so that nodes spread out. */
static void watcher_backoff(Watcher *w) {
        usec_t d;

        w->backoff = w->backoff == 0 ? KUBE_BACKOFF_FIRST_USEC : MIN(w->backoff * 2, KUBE_BACKOFF_MAX_USEC);
        d = w->backoff / 2 + random_u64() % (w->backoff / 2 + 1);
        /* 429 and 503 say when to come back (API priority and fairness, a restarting server) */
        d = MAX(d, MIN(w->retry_after, KUBE_RETRY_AFTER_MAX_USEC));
        w->retry_after = 0;
        watcher_schedule(w, d, WATCHER_BACKOFF);
        client_state_changed(w->client);
}

static void watcher_relist(Watcher *w) {
        w->rv = mfree(w->rv);
        watcher_drop_pending(w);
}

/* ---- freshness of the pod store ---- */

static void client_update_staleness(KubeClient *k);

static int on_stale_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        client_update_staleness(userdata);
        return 0;
}

static void client_arm_stale_timer(KubeClient *k, usec_t deadline) {
        int r;

        if (deadline == USEC_INFINITY) {
                if (k->stale_timer)
                        (void) sd_event_source_set_enabled(k->stale_timer, SD_EVENT_OFF);
                return;
        }
        if (k->stale_timer) {
                r = sd_event_source_set_time(k->stale_timer, deadline);
                if (r >= 0)
                        r = sd_event_source_set_enabled(k->stale_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(k->event, &k->stale_timer, CLOCK_MONOTONIC, deadline, 0,
                                      on_stale_timer, k);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the pod store staleness check: %m");
}

/* Applies the staleness rule (kube-freshness.h) to the store: a stale store answers for no pod. */
static void client_update_staleness(KubeClient *k) {
        Watcher *w = &k->pods;
        usec_t deadline = kube_freshness_deadline(&w->fresh, client_max_stale(k));
        bool stale = w->synced && now_monotonic() >= deadline;
        char dur[DURATION_MAX];

        client_arm_stale_timer(k, stale ? USEC_INFINITY : deadline);
        if (stale == w->stale)
                return;
        w->stale = stale;
        store_set_pods_unconfirmed(k->store, stale);
        if (stale)
                log_error(
                        "The pod list of node %s could not be refreshed for %s while the API server answers "
                        "(%s): no pod is answered for until a complete list arrives",
                        k->config->node, format_duration(client_max_stale(k), dur, sizeof dur),
                        strna(w->last_error));
        else
                log_notice("The pod list of node %s is current again: answering for its pods",
                           k->config->node);
        client_state_changed(k);
}

static void watcher_record(Watcher *w, KubeRefresh outcome) {
        if (!w->is_pods)
                return;
        /* the common case, every watch event of a healthy stream: nothing to do */
        if (outcome == KUBE_REFRESH_CONFIRMED && w->fresh.failing_since == 0 && !w->stale)
                return;
        kube_freshness_record(&w->fresh, outcome, now_monotonic());
        client_update_staleness(w->client);
}

/* ---- events ---- */

static int apply_event(const WatchEvent *ev, void *userdata) {
        Watcher *w = userdata;
        KubeClient *k = w->client;
        int r = 0;

        switch (ev->type) {
        case WATCH_EVENT_ERROR:
                if (ev->code == 410) {
                        log_info("The %s watch history expired (%s): re-listing", w->what,
                                 strna(ev->message));
                        return -ESTALE;
                }
                log_warning("The %s watch ended with an error event %d: %s", w->what, ev->code,
                            strna(ev->message));
                return -EPROTO;
        case WATCH_EVENT_BOOKMARK:
                break;
        case WATCH_EVENT_ADDED:
        case WATCH_EVENT_MODIFIED:
                if (w->is_pods) {
                        StorePod *p = NULL;
                        r = kube_pod_from_json(ev->object, &k->keys, &p);
                        if (r >= 0)
                                r = store_pod_update(k->store, p);
                } else {
                        const char *name, *annotation;
                        r = kube_namespace_from_json(ev->object, &k->keys, &name, &annotation);
                        if (r >= 0)
                                r = store_namespace_update(k->store, name, annotation);
                }
                break;
        case WATCH_EVENT_DELETED:
                if (w->is_pods) {
                        const char *uid = kube_object_uid(ev->object);
                        r = uid ? store_pod_remove(k->store, uid) : -EBADMSG;
                } else {
                        const char *name, *annotation;
                        r = kube_namespace_from_json(ev->object, &k->keys, &name, &annotation);
                        if (r >= 0)
                                r = store_namespace_remove(k->store, name);
                }
                if (r == -ENOENT)
                        r = 0; /* deleted before we saw it */
                break;
        }
        if (r == -EBADMSG) {
                log_error("Malformed %s object in a %s watch event: re-listing", w->what,
                          watch_event_type_to_string(ev->type));
                return r;
        }
        if (r < 0)
                return r;
        if (ev->resource_version) {
                char *rv = strdup(ev->resource_version);
                if (!rv)
                        return -ENOMEM;
                free_and_replace(w->rv, rv);
        }
        w->events_this_stream++;
        k->events_applied++;
        watcher_record(w, KUBE_REFRESH_CONFIRMED);
        /* the counts in the status text changed */
        if (ev->type == WATCH_EVENT_ADDED || ev->type == WATCH_EVENT_DELETED)
                client_state_changed(k);
        return 0;
}

/* Feeds the watch bytes received so far to the parser, which applies the events to the store.
 * Never called from inside a libcurl callback: store observers start transfers of their own
 * (credential prefetch), and libcurl refuses curl_multi_add_handle() from its callbacks. */
static int watcher_drain(Watcher *w) {
        int r;

        if (w->incoming.len == 0)
                return 0;
        r = watch_parser_feed(w->parser, w->incoming.s, w->incoming.len, apply_event, w);
        strbuf_reset(&w->incoming);
        if (r >= 0 && w->events_this_stream > 0)
                w->backoff = 0;
        return r;
}

static void watcher_finished(Watcher *w, CURL *easy, int error, CURLcode result, int abort_reason);

static int on_incoming(sd_event_source *s, void *userdata) {
        Watcher *w = userdata;
        int r;

        if (w->state != WATCHER_WATCHING)
                return 0;
        if (w->accepted) {
                /* the server took our resourceVersion: every change since is on this stream */
                w->accepted = false;
                watcher_record(w, KUBE_REFRESH_CONFIRMED);
        }
        r = watcher_drain(w);
        if (r < 0) {
                /* a 410 ERROR event, a malformed event: this stream is over */
                CURL *easy = w->req.easy;
                http_client_cancel(w->client->http, easy);
                watcher_finished(w, easy, -ECANCELED, CURLE_WRITE_ERROR, r);
        }
        return 0;
}

/* The end of a watch response's headers: a 200 means the watch was accepted. Noted here and
 * acted upon in on_incoming(), outside libcurl's callbacks. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        Watcher *w = userdata;
        size_t n = size * nmemb;

        if (!w->listing && n <= 2 && response_code(w->req.easy) == 200) {
                w->accepted = true;
                (void) sd_event_source_set_enabled(w->incoming_source, SD_EVENT_ONESHOT);
        }
        return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Watcher *w = userdata;
        size_t n = size * nmemb;
        long code = response_code(w->req.easy);
        int r;

        if (w->listing || code != 200) {
                size_t max = code == 200 ? KUBE_LIST_PAGE_MAX_BYTES : KUBE_ERROR_BODY_MAX_BYTES;
                if (w->req.body.len + n > max) {
                        if (code != 200)
                                return n; /* only the start of an error body matters */
                        w->abort_reason = -EFBIG;
                        return 0;
                }
                strbuf_append_n(&w->req.body, data, n);
                return n;
        }
        /* libcurl hands over at most a few hundred KiB per socket event before the loop runs
         * on_incoming; the bound only stops a runaway */
        if (w->incoming.len + n > KUBE_WATCH_BACKLOG_MAX_BYTES) {
                w->abort_reason = -E2BIG;
                return 0;
        }
        strbuf_append_n(&w->incoming, data, n);
        if (strbuf_error(&w->incoming) < 0) {
                w->abort_reason = -ENOMEM;
                return 0;
        }
        r = sd_event_source_set_enabled(w->incoming_source, SD_EVENT_ONESHOT);
        if (r < 0) {
                w->abort_reason = r;
                return 0;
        }
        return n;
}

/* ---- list ---- */

static int list_add_pod(Watcher *w, const cJSON *item) {
        StorePod *p = NULL;
        int r = kube_pod_from_json(item, &w->client->keys, &p);

        if (r < 0)
                return r;
        if (w->n_pods >= w->cap_pods) {
                size_t cap = MAX(w->cap_pods * 2, (size_t) 64);
                StorePod **a = realloc(w->pods, cap * sizeof(StorePod *));
                if (!a) {
                        store_pod_free(p);
                        return -ENOMEM;
                }
                w->pods = a;
                w->cap_pods = cap;
        }
        w->pods[w->n_pods++] = p;
        return 0;
}

static int list_add_namespace(Watcher *w, const cJSON *item) {
        const char *name, *annotation;

        if (kube_namespace_from_json(item, &w->client->keys, &name, &annotation) < 0)
                return -EBADMSG;
        if (w->n_ns >= w->cap_ns) {
                size_t cap = MAX(w->cap_ns * 2, (size_t) 64);
                NamespaceItem *a = realloc(w->ns, cap * sizeof(NamespaceItem));
                if (!a)
                        return -ENOMEM;
                w->ns = a;
                w->cap_ns = cap;
        }
        NamespaceItem *it = &w->ns[w->n_ns];
        it->name = strdup(name);
        it->annotation = annotation ? strdup(annotation) : NULL;
        if (!it->name || (annotation && !it->annotation)) {
                free(it->name);
                free(it->annotation);
                return -ENOMEM;
        }
        w->n_ns++;
        return 0;
}

/* One item of a list page. An object over our per-object limit (or cut off with the page) or one
 * we cannot read (malformed, nested past cJSON's limit) is left out of the list, named in the
 * log: the store then holds no version of it, so it is not answered for, while every other
 * object is refreshed. */
static int list_item_apply(const char *item, size_t len, bool complete, void *userdata) {
        Watcher *w = userdata;
        _cleanup_(json_deletep) cJSON *j = NULL;
        _cleanup_free_ char *who = NULL;
        bool too_large = !complete || len > KUBE_OBJECT_MAX_BYTES;
        int r;

        if (!too_large) {
                j = cJSON_ParseWithLength(item, len);
                r = !cJSON_IsObject(j) ? -EBADMSG
                    : w->is_pods       ? list_add_pod(w, j)
                                       : list_add_namespace(w, j);
                if (r != -EBADMSG)
                        return r;
        }
        r = kube_object_identity(item, len, &who);
        if (r < 0)
                return r;
        if (too_large)
                log_error("Leaving %s %s out of the %s list: the object is larger than %d bytes; it is not "
                          "answered for until it shrinks",
                          w->is_pods ? "pod" : "namespace", who, w->what, KUBE_OBJECT_MAX_BYTES);
        else
                log_error(
                        "Leaving %s %s out of the %s list: the object is malformed; it is not answered for",
                        w->is_pods ? "pod" : "namespace", who, w->what);
        return 0;
}

/* Applies the page in w->req.body; cut_off: the transfer was stopped at KUBE_LIST_PAGE_MAX_BYTES
 * (a page of one object). 1: more pages follow; 0: the list is complete and applied. */
static int list_page_apply(Watcher *w, bool cut_off) {
        KubeClient *k = w->client;
        _cleanup_(json_deletep) cJSON *j = NULL;
        const char *cont, *rv;
        int r;

        r = kube_list_scan(strbuf_str(&w->req.body), w->req.body.len, list_item_apply, w, &j);
        if (r < 0)
                return r;
        if ((r > 0) != cut_off)
                return -EBADMSG; /* a complete transfer ends inside an item, or a cut one does not */

        cont = json_get_string_path(j, (const char *const[]){ "continue" }, 1);
        rv = json_get_string_path(j, (const char *const[]){ "resourceVersion" }, 1);
        free(w->cont);
        w->cont = NULL;
        if (!isempty(cont)) {
                w->cont = strdup(cont);
                return w->cont ? 1 : -ENOMEM;
        }
        if (isempty(rv))
                return -EBADMSG;
        free(w->rv);
        w->rv = strdup(rv);
        if (!w->rv)
                return -ENOMEM;

        /* the complete list: one atomic replacement */
        if (w->is_pods) {
                r = store_pods_replace(k->store, TAKE_PTR(w->pods), w->n_pods);
                w->n_pods = w->cap_pods = 0;
                if (r < 0)
                        return r;
        } else {
                _cleanup_free_ StoreNamespaceSpec *specs = calloc(w->n_ns + 1, sizeof(StoreNamespaceSpec));
                if (!specs)
                        return -ENOMEM;
                for (size_t x = 0; x < w->n_ns; x++)
                        specs[x] = (StoreNamespaceSpec){ w->ns[x].name, w->ns[x].annotation };
                r = store_namespaces_replace(k->store, specs, w->n_ns);
                if (r < 0)
                        return r;
        }
        watcher_drop_pending(w);
        return 0;
}

/* The page in progress was too large for us: the same page (same continue token, pages already
 * received kept) with half as many items. */
static void watcher_smaller_pages(Watcher *w) {
        unsigned limit = MAX(w->page_limit / 2, (unsigned) KUBE_LIST_PAGE_LIMIT_MIN);

        log_notice("A %s list page of up to %u items exceeded %d bytes: asking for pages of %u", w->what,
                   w->page_limit, KUBE_LIST_PAGE_MAX_BYTES, limit);
        watcher_set_error(w, "a %s list page of %u items exceeded %d bytes", w->what, w->page_limit,
                          KUBE_LIST_PAGE_MAX_BYTES);
        w->page_limit = limit;
        request_release(&w->req);
        w->state = WATCHER_IDLE;
        watcher_next(w);
}

static void watcher_unauthorized(Watcher *w) {
        KubeClient *k = w->client;

        w->auth_failures++;
        log_error("The API server rejected the credentials of kubeconfig %s (401) for %s; refreshing them",
                  strna(k->kubeconfig->path), w->what);
        watcher_set_error(w, "credentials rejected (401)");
        /* re-run the exec plugin, re-read the files and the kubeconfig itself */
        k->exec_creds = kube_credentials_free(k->exec_creds);
        if (k->kubeconfig->path) {
                KubeConfig *n = NULL;
                if (kubeconfig_load(k->kubeconfig->path, &n) >= 0) {
                        kubeconfig_free(k->kubeconfig);
                        k->kubeconfig = n;
                }
        }
        if (w->auth_failures == 1) {
                w->state = WATCHER_IDLE;
                watcher_next(w);
        } else
                watcher_backoff(w);
}

static void watcher_forbidden(Watcher *w, const char *message) {
        KubeClient *k = w->client;

        watcher_set_error(w, "forbidden (403)");
        if (!w->is_pods) {
                if (!w->forbidden)
                        log_error("The credentials of kubeconfig %s may not list and watch namespaces (403: "
                                  "%s). "
                                  "Namespace restrictions deny every role until a ClusterRole allowing get, "
                                  "list "
                                  "and watch on namespaces is bound to this user (contrib/ ships one); pods "
                                  "are "
                                  "still served",
                                  strna(k->kubeconfig->path), strna(message));
                w->forbidden = true;
                w->synced = false;
                store_namespaces_unavailable(k->store);
                watcher_relist(w);
                watcher_schedule(w, KUBE_FORBIDDEN_RETRY_USEC, WATCHER_FORBIDDEN);
                client_state_changed(k);
                return;
        }
        log_error("The credentials of kubeconfig %s may not list pods of node %s (403: %s); with kubelet "
                  "credentials --node must be this node's name",
                  strna(k->kubeconfig->path), k->config->node, strna(message));
        watcher_backoff(w);
}

static void on_done(HttpClient *h, CURL *easy, int error, CURLcode result, void *userdata) {
        Watcher *w = userdata;
        int abort_reason = w->abort_reason;

        w->abort_reason = 0;
        if (!w->listing && abort_reason == 0 && response_code(easy) == 200) {
                /* what arrived before the end still counts */
                int r = watcher_drain(w);
                if (r < 0)
                        abort_reason = r;
        }
        strbuf_reset(&w->incoming);
        watcher_finished(w, easy, error, result, abort_reason);
}

/* A list page ended: the next page, the list applied, smaller pages, or a new list after a wait. */
static void watcher_list_finished(Watcher *w, long code, const char *message, int error, CURLcode result,
                                  int abort_reason) {
        KubeClient *k = w->client;
        int r;

        /* a page of a single object cut off at our limit: that object is left out */
        bool cut_off = abort_reason == -EFBIG && w->page_limit <= KUBE_LIST_PAGE_LIMIT_MIN && code == 200;
        if (code != 200 || error < 0 || abort_reason < 0)
                watcher_record(w, kube_refresh_classify(code, error < 0, abort_reason < 0));
        if (code == 410) {
                /* the continue token expired: start the list again */
                log_info("The %s list's continue token expired: listing again", w->what);
                watcher_relist(w);
                request_release(&w->req);
                watcher_schedule(w, 0, WATCHER_BACKOFF);
                return;
        }
        if (abort_reason == -EFBIG && w->page_limit > KUBE_LIST_PAGE_LIMIT_MIN) {
                watcher_smaller_pages(w);
                return;
        }
        if ((error < 0 || code != 200) && !cut_off) {
                if (abort_reason == -EFBIG)
                        watcher_set_error(w, "a %s list page exceeded %d bytes", w->what,
                                          KUBE_LIST_PAGE_MAX_BYTES);
                else if (code != 200 && code != 0)
                        watcher_set_error(w, "listing %s: HTTP %ld: %s", w->what, code, strna(message));
                else
                        watcher_set_error(w, "listing %s: %s", w->what, curl_easy_strerror(result));
                log_warning("Failed to list %s from %s: %s", w->what, k->kubeconfig->server, w->last_error);
                watcher_relist(w);
                request_release(&w->req);
                watcher_backoff(w);
                return;
        }
        r = list_page_apply(w, cut_off);
        request_release(&w->req);
        if (r < 0) {
                watcher_record(w, KUBE_REFRESH_FAILED);
                watcher_set_error(w, "listing %s: %s", w->what,
                                  r == -EBADMSG ? "malformed list" : strerror(-r));
                log_error("Failed to apply the %s list from %s: %s", w->what, k->kubeconfig->server,
                          w->last_error);
                watcher_relist(w);
                watcher_backoff(w);
                return;
        }
        if (r == 0) {
                bool first = !w->synced;
                w->synced = true;
                w->forbidden = false;
                w->backoff = 0;
                /* the next list tries pages twice this size: the big pods may be gone */
                w->page_limit = MIN(w->page_limit * 2, (unsigned) KUBE_LIST_PAGE_LIMIT);
                watcher_clear_error(w);
                watcher_record(w, KUBE_REFRESH_CONFIRMED);
                if (first)
                        log_info("Listed %zu %s",
                                 w->is_pods ? store_n_pods(k->store) : store_n_namespaces(k->store),
                                 w->what);
                client_state_changed(k);
        }
        w->state = WATCHER_IDLE;
        watcher_next(w);
}

static void watcher_finished(Watcher *w, CURL *easy, int error, CURLcode result, int abort_reason) {
        KubeClient *k = w->client;
        long code = response_code(easy);
        _cleanup_free_ char *message = NULL;
        int r;

        (void) sd_event_source_set_enabled(w->incoming_source, SD_EVENT_OFF);
        strbuf_reset(&w->incoming);
        if (code != 200 && code != 0)
                message = status_message(&w->req.body);

        if (code == 401 || code == 403)
                watcher_record(w, KUBE_REFRESH_FAILED);
        if (code == 401) {
                request_release(&w->req);
                watcher_unauthorized(w);
                return;
        }
        if (code == 403) {
                request_release(&w->req);
                watcher_forbidden(w, message);
                return;
        }
        if (code >= 200 && code < 300)
                w->auth_failures = 0;
        if (code == 429 || code == 503) {
                curl_off_t after = 0;
                if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
                        w->retry_after = (usec_t) after * USEC_PER_SEC;
        }

        if (w->listing) {
                watcher_list_finished(w, code, message, error, result, abort_reason);
                return;
        }

        /* the watch ended */
        if (code == 200 && abort_reason == 0 && error == 0)
                (void) (r = watch_parser_finish(w->parser, apply_event, w)), abort_reason = r < 0 ? r : 0;
        watch_parser_reset(w->parser);
        request_release(&w->req);
        watcher_record(w, kube_refresh_classify(code, error < 0, abort_reason < 0));

        if (abort_reason == -ESTALE || code == 410) {
                if (code == 410)
                        log_info("The %s watch's resourceVersion is too old (410 Gone): re-listing",
                                 w->what);
                watcher_relist(w);
                w->state = WATCHER_IDLE;
                watcher_next(w);
                return;
        }
        if (abort_reason == -EBADMSG || abort_reason == -E2BIG) {
                log_error("Malformed %s watch stream from %s (%s): re-listing", w->what,
                          k->kubeconfig->server,
                          abort_reason == -E2BIG ? "an event over the size limit" : "not a watch event");
                watcher_relist(w);
                watcher_backoff(w);
                return;
        }
        if (abort_reason == -EPROTO) {
                watcher_backoff(w);
                return;
        }
        if (abort_reason < 0) {
                log_error_errno(abort_reason, "Failed to apply a %s watch event: %m", w->what);
                watcher_relist(w);
                watcher_backoff(w);
                return;
        }
        if (code == 200 && error == 0) {
                /* timeoutSeconds elapsed: the normal end of a watch */
                watcher_clear_error(w);
                w->backoff = 0;
                w->state = WATCHER_IDLE;
                watcher_next(w);
                client_state_changed(k);
                return;
        }
        if (code == 200) {
                if (result == CURLE_OPERATION_TIMEDOUT)
                        watcher_set_error(w, "%s watch silent for too long", w->what);
                else
                        watcher_set_error(w, "%s watch dropped: %s", w->what, curl_easy_strerror(result));
                log_warning("The %s watch from %s ended: %s; reconnecting", w->what, k->kubeconfig->server,
                            w->last_error);
                if (w->events_this_stream > 0)
                        w->backoff = 0;
        } else if (code != 0) {
                watcher_set_error(w, "watching %s: HTTP %ld: %s", w->what, code, strna(message));
                log_warning("Failed to watch %s from %s: %s", w->what, k->kubeconfig->server, w->last_error);
        } else {
                watcher_set_error(w, "watching %s: %s", w->what, curl_easy_strerror(result));
                log_warning("Failed to watch %s from %s: %s", w->what, k->kubeconfig->server, w->last_error);
        }
        watcher_backoff(w);
}

static int watcher_start_request(Watcher *w) {
        KubeClient *k = w->client;
        _cleanup_strbuf_ StrBuf path = {};
        _cleanup_free_ char *selector = NULL;
        int r;

        if (w->is_pods) {
                _cleanup_free_ char *sel = NULL;
                char *e;
                if (asprintf(&sel, "spec.nodeName=%s", k->config->node) < 0)
                        return -ENOMEM;
                e = curl_easy_escape(NULL, sel, 0);
                if (!e)
                        return -ENOMEM;
                selector = strdup(e);
                curl_free(e);
                if (!selector)
                        return -ENOMEM;
                strbuf_appendf(&path, "/api/v1/pods?fieldSelector=%s&", selector);
        } else
                strbuf_append(&path, "/api/v1/namespaces?");

        w->listing = !w->rv;
        if (w->listing) {
                strbuf_appendf(&path, "limit=%u", w->page_limit);
                if (w->cont) {
                        char *e = curl_easy_escape(NULL, w->cont, 0);
                        if (!e)
                                return -ENOMEM;
                        strbuf_appendf(&path, "&continue=%s", e);
                        curl_free(e);
                }
        } else {
                char *e = curl_easy_escape(NULL, w->rv, 0);
                unsigned timeout = KUBE_WATCH_TIMEOUT_MIN_SEC +
                                   (unsigned) (random_u64() %
                                               (KUBE_WATCH_TIMEOUT_MAX_SEC - KUBE_WATCH_TIMEOUT_MIN_SEC));
                if (!e)
                        return -ENOMEM;
                strbuf_appendf(&path,
                               "watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u", e,
                               timeout);
                curl_free(e);
        }
        if (strbuf_error(&path) < 0)
                return -ENOMEM;

        r = request_setup(k, &w->req, strbuf_str(&path), on_write, w);
        if (r < 0)
                return r;
        if (!w->listing) {
                /* silence beyond the idle limit (no event, no bookmark): a stalled stream */
                long idle = (long) MAX((usec_t) 1, k->idle_timeout / USEC_PER_SEC);
                if (curl_easy_setopt(w->req.easy, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
                    curl_easy_setopt(w->req.easy, CURLOPT_LOW_SPEED_TIME, idle) != CURLE_OK ||
                    curl_easy_setopt(w->req.easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
                    curl_easy_setopt(w->req.easy, CURLOPT_HEADERDATA, w) != CURLE_OK)
                        return -EIO;
                watch_parser_reset(w->parser);
        } else if (curl_easy_setopt(w->req.easy, CURLOPT_TIMEOUT, 120L) != CURLE_OK)
                return -EIO;
        w->events_this_stream = 0;
        w->abort_reason = 0;
        w->accepted = false;
        r = http_client_start(k->http, w->req.easy, on_done, w);
        if (r < 0)
                return r;
        w->state = w->listing ? WATCHER_LISTING : WATCHER_WATCHING;
        return 0;
}

/* ---- credentials ---- */

static void on_exec_done(KubeExec *x, int error, KubeCredentials **creds, void *userdata) {
        KubeClient *k = userdata;

        k->exec = kube_exec_free(k->exec);
        if (error >= 0) {
                kube_credentials_free(k->exec_creds);
                k->exec_creds = TAKE_PTR(*creds);
        }
        Watcher *ws[] = { &k->pods, &k->namespaces };
        for (size_t i = 0; i < ELEMENTSOF(ws); i++) {
                if (ws[i]->state != WATCHER_WAIT_CREDENTIALS)
                        continue;
                if (error < 0) {
                        watcher_set_error(ws[i], "the exec credential plugin failed");
                        watcher_backoff(ws[i]);
                } else {
                        ws[i]->state = WATCHER_IDLE;
                        watcher_next(ws[i]);
                }
        }
}

/* 1: credentials ready; 0: an exec plugin runs, waiters resume when it ends; <0 error. */
static int client_exec_ready(KubeClient *k) {
        int r;

        if (!k->kubeconfig->exec)
                return 1;
        if (k->exec_creds &&
            (k->exec_creds->expires == USEC_INFINITY ||
             usec_add(now_realtime(), KUBE_CREDENTIAL_REFRESH_MARGIN_USEC) < k->exec_creds->expires))
                return 1;
        if (k->exec)
                return 0;
        r = kube_exec_start(k->event, k->kubeconfig, on_exec_done, k, &k->exec);
        return r < 0 ? r : 0;
}

static void watcher_next(Watcher *w) {
        KubeClient *k = w->client;
        int r;

        if (w->state == WATCHER_LISTING || w->state == WATCHER_WATCHING || w->state == WATCHER_BACKOFF ||
            w->state == WATCHER_FORBIDDEN || !k->kubeconfig)
                return;
        r = client_exec_ready(k);
        if (r == 0) {
                w->state = WATCHER_WAIT_CREDENTIALS;
                return;
        }
        if (r > 0)
                r = watcher_start_request(w);
        if (r < 0) {
                watcher_set_error(w, "cannot connect: %s", strerror(-r));
                request_release(&w->req);
                watcher_backoff(w);
        }
}

/* ---- kubeconfig ---- */

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        client_kick(userdata);
        return 0;
}

static void client_kick(KubeClient *k) {
        KubeConfig *kc = NULL;
        char *waiting = NULL;
        usec_t delay;
        int r;

        r = kubeconfig_from_config(k->config, &kc, &waiting);
        if (r >= 0) {
                k->kubeconfig = kc;
                k->kubeconfig_invalid = false;
                k->poll_timer = sd_event_source_disable_unref(k->poll_timer);
                log_info("Using kubeconfig %s (context %s, server %s)", strna(kc->path), strna(kc->context),
                         kc->server);
                client_state_changed(k);
                watcher_next(&k->pods);
                watcher_next(&k->namespaces);
                return;
        }
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
                        k->waiting_for = strdup(k->config->kubeconfig ?: "(kubeconfig)");
                k->kubeconfig_invalid = true;
                k->poll_backoff = k->poll_backoff == 0 ? KUBECONFIG_POLL_USEC
                                                       : MIN(k->poll_backoff * 2, KUBE_BACKOFF_MAX_USEC);
                delay = k->poll_backoff;
        }
        client_state_changed(k);
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

/* ---- public ---- */

static int watcher_init(KubeClient *k, Watcher *w, const char *what, bool is_pods) {
        int r;

        *w = (Watcher){ .client = k, .what = what, .is_pods = is_pods, .page_limit = KUBE_LIST_PAGE_LIMIT };
        r = sd_event_add_defer(k->event, &w->incoming_source, on_incoming, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->incoming_source, SD_EVENT_OFF);
        return watch_parser_new(MAX_WATCH_EVENT_BYTES, &w->parser);
}

static void watcher_done(Watcher *w) {
        if (w->req.easy && w->client)
                http_client_cancel(w->client->http, w->req.easy);
        request_done(&w->req);
        watch_parser_free(w->parser);
        strbuf_done(&w->incoming);
        sd_event_source_disable_unref(w->incoming_source);
        watcher_drop_pending(w);
        free(w->rv);
        free(w->last_error);
        sd_event_source_disable_unref(w->timer);
}

int kube_client_new(sd_event *event, HttpClient *http, const Config *c, Store *store, KubeClient **ret) {
        _cleanup_(kube_client_freep) KubeClient *k = NULL;
        int r;

        if (!event || !http || !c || !store || !ret || isempty(c->node))
                return -EINVAL;
        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->event = sd_event_ref(event);
        k->http = http;
        k->config = c;
        k->store = store;
        k->keys = (KubeObjectKeys){ c->iam_role_key, c->iam_external_id, c->namespace_key };
        k->idle_timeout = KUBE_WATCH_IDLE_USEC;
        r = watcher_init(k, &k->pods, "pods", true);
        if (r < 0)
                return r;
        r = watcher_init(k, &k->namespaces, "namespaces", false);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

static void resolve_free(Resolve *x) {
        KubeClient *k = x->client;

        if (x->prev)
                x->prev->next = x->next;
        else
                k->resolves = x->next;
        if (x->next)
                x->next->prev = x->prev;
        if (x->req.easy)
                http_client_cancel(k->http, x->req.easy);
        request_done(&x->req);
        free(x->ip);
        free(x);
}

KubeClient *kube_client_free(KubeClient *k) {
        if (!k)
                return NULL;
        while (k->resolves)
                resolve_free(k->resolves);
        watcher_done(&k->pods);
        watcher_done(&k->namespaces);
        kube_exec_free(k->exec);
        kube_credentials_free(k->exec_creds);
        kubeconfig_free(k->kubeconfig);
        sd_event_source_disable_unref(k->poll_timer);
        sd_event_source_disable_unref(k->stale_timer);
        free(k->waiting_for);
        free(k->status);
        sd_event_unref(k->event);
        free(k);
        return NULL;
}

void kube_client_set_state_callback(KubeClient *k, kube_client_state_t cb, void *userdata) {
        k->state_cb = cb;
        k->state_userdata = userdata;
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

bool kube_client_pods_synced(const KubeClient *k) {
        return k && k->pods.synced;
}

bool kube_client_pods_current(const KubeClient *k) {
        return k && k->pods.synced && !k->pods.stale;
}

bool kube_client_namespaces_synced(const KubeClient *k) {
        return k && k->namespaces.synced;
}

bool kube_client_namespaces_forbidden(const KubeClient *k) {
        return k && k->namespaces.forbidden;
}

const char *kube_client_status(const KubeClient *k) {
        return k && k->status ? k->status : "Starting";
}

unsigned long long kube_client_events_applied(const KubeClient *k) {
        return k ? k->events_applied : 0;
}

/* ---- live lookup by IP ---- */

static size_t on_resolve_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Resolve *x = userdata;
        size_t n = size * nmemb;

        if (x->req.body.len + n > KUBE_LIST_PAGE_MAX_BYTES)
                return 0;
        strbuf_append_n(&x->req.body, data, n);
        return n;
}

static void on_resolve_done(HttpClient *h, CURL *easy, int error, CURLcode result, void *userdata) {
        Resolve *x = userdata;
        KubeClient *k = x->client;
        _cleanup_(store_pod_freep) StorePod *found = NULL;
        long code = response_code(easy);
        int r = -ENOENT;

        if (error < 0 || code != 200) {
                log_warning("resolveDuplicatedIP: Error retriving the pod with IP %s: %s", x->ip,
                            error < 0 ? curl_easy_strerror(result) : "unexpected HTTP status");
                r = error < 0 ? error : -EIO;
        } else {
                _cleanup_(json_deletep) cJSON *j =
                        cJSON_ParseWithLength(strbuf_str(&x->req.body), x->req.body.len);
                const cJSON *i, *items = cJSON_GetObjectItemCaseSensitive(j, "items");

                if (!cJSON_IsObject(j))
                        r = -EBADMSG;
                cJSON_ArrayForEach(i, items) {
                        StorePod *p = NULL;
                        if (kube_pod_from_json(i, &k->keys, &p) < 0)
                                continue;
                        if (!p->host_network && streq(p->phase, "Running")) {
                                found = p;
                                r = 0;
                                break;
                        }
                        store_pod_free(p);
                }
        }
        kube_client_resolve_t cb = x->cb;
        void *userdata2 = x->userdata;
        x->req.easy = NULL; /* the done callback owns nothing more in curl; free below */
        curl_easy_cleanup(easy);
        resolve_free(x);
        cb(k, r, found, userdata2);
}

int kube_client_resolve_ip(KubeClient *k, const char *ip, kube_client_resolve_t cb, void *userdata) {
        _cleanup_free_ char *path = NULL, *sel = NULL;
        Resolve *x;
        char *e;
        int r;

        if (!k || isempty(ip) || !cb)
                return -EINVAL;
        if (!k->kubeconfig)
                return -ENOTCONN;
        r = client_exec_ready(k);
        if (r <= 0)
                return r < 0 ? r : -EAGAIN;
        if (asprintf(&sel, "status.podIP=%s", ip) < 0)
                return -ENOMEM;
        e = curl_easy_escape(NULL, sel, 0);
        if (!e)
                return -ENOMEM;
        r = asprintf(&path, "/api/v1/pods?fieldSelector=%s", e);
        curl_free(e);
        if (r < 0)
                return -ENOMEM;
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = (Resolve){ .client = k, .cb = cb, .userdata = userdata, .ip = strdup(ip), .next = k->resolves };
        if (k->resolves)
                k->resolves->prev = x;
        k->resolves = x;
        if (!x->ip) {
                resolve_free(x);
                return -ENOMEM;
        }
        r = request_setup(k, &x->req, path, on_resolve_write, x);
        if (r >= 0 && curl_easy_setopt(x->req.easy, CURLOPT_TIMEOUT_MS,
                                       (long) (KUBE_RESOLVE_TIMEOUT_USEC / USEC_PER_MSEC)) != CURLE_OK)
                r = -EIO;
        if (r >= 0)
                r = http_client_start(k->http, x->req.easy, on_resolve_done, x);
        if (r < 0) {
                resolve_free(x);
                return r;
        }
        return 0;
}
