/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "kube-watch.h"
#include "log.h"
#include "string-util.h"

/* ---- the resource table ---- */

typedef struct KubeResource {
        const char *what;            /* "pods": log lines and errors */
        const char *kind;            /* "pod" */
        const char *path;            /* the collection */
        const char *selector_prefix; /* fieldSelector: this, then the node name; NULL for none */
        bool tracks_freshness;       /* the sink is told when it stops vouching (docs/pod-store.md) */
        bool may_be_forbidden;       /* 403 is a degraded state, retried rarely, not an outage */
        /* may_be_forbidden: what a 403 costs, for the log line, and how the sink is told */
        const char *forbidden_effect;
        void (*unavailable)(const KubeSink *s);
        /* An object of an event or list to the item the sink takes; -EBADMSG when malformed. */
        int (*parse)(const cJSON *o, const KubeObjectKeys *keys, void **ret);
        void (*free_item)(void *item);
        int (*upsert)(const KubeSink *s, void *item); /* takes item */
        int (*delete)(const KubeSink *s, const cJSON *o, const KubeObjectKeys *keys);
        int (*replace)(const KubeSink *s, void **items, size_t n); /* takes the items */
} KubeResource;

static int pod_parse(const cJSON *o, const KubeObjectKeys *keys, void **ret) {
        return kube_pod_from_json(o, keys, (KubePod **) ret);
}

static void pod_free(void *item) {
        kube_pod_free(item);
}

static int pod_upsert(const KubeSink *s, void *item) {
        return s->pod_upsert(item, s->userdata);
}

static int pod_delete(const KubeSink *s, const cJSON *o, const KubeObjectKeys *keys) {
        const char *uid = kube_object_uid(o);
        return uid ? s->pod_delete(uid, s->userdata) : -EBADMSG;
}

static int pod_replace(const KubeSink *s, void **items, size_t n) {
        return s->pods_replace((KubePod **) items, n, s->userdata);
}

static void namespace_free(void *item) {
        free(item); /* one allocation: namespace_parse() */
}

static size_t string_size(const char *s) {
        return s ? strlen(s) + 1 : 0;
}

/* Copies s to *at and advances it; NULL stays NULL. */
static char *pack_string(char **at, const char *s) {
        char *copy = *at;

        if (!s)
                return NULL;
        *at = stpcpy(copy, s) + 1;
        return copy;
}

static int namespace_parse(const cJSON *o, const KubeObjectKeys *keys, void **ret) {
        KubeNamespaceFields f;
        KubeNamespace *ns;
        char *at;

        if (kube_namespace_from_json(o, keys, &f) < 0)
                return -EBADMSG;
        /* one allocation: a list holds every namespace of the cluster until it is complete */
        ns = malloc(sizeof(KubeNamespace) + string_size(f.name) + string_size(f.annotation) +
                    string_size(f.session_tags) + string_size(f.session_policies) +
                    string_size(f.default_role));
        if (!ns)
                return -ENOMEM;
        at = (char *) (ns + 1);
        ns->name = pack_string(&at, f.name);
        ns->annotation = pack_string(&at, f.annotation);
        ns->session_tags = pack_string(&at, f.session_tags);
        ns->session_policies = pack_string(&at, f.session_policies);
        ns->default_role = pack_string(&at, f.default_role);
        *ret = ns;
        return 0;
}

static int namespace_upsert(const KubeSink *s, void *item) {
        int r = s->namespace_upsert(item, s->userdata);
        namespace_free(item);
        return r;
}

static int namespace_delete(const KubeSink *s, const cJSON *o, const KubeObjectKeys *keys) {
        KubeNamespaceFields f;

        if (kube_namespace_from_json(o, keys, &f) < 0)
                return -EBADMSG;
        return s->namespace_delete(f.name, s->userdata);
}

static int namespace_replace(const KubeSink *s, void **items, size_t n) {
        _cleanup_free_ KubeNamespace *ns = calloc(n + 1, sizeof(KubeNamespace));
        int r = -ENOMEM;

        if (ns) {
                for (size_t i = 0; i < n; i++)
                        ns[i] = *(KubeNamespace *) items[i];
                r = s->namespaces_replace(ns, n, s->userdata);
        }
        for (size_t i = 0; i < n; i++)
                namespace_free(items[i]);
        free(items);
        return r;
}

static void namespaces_unavailable(const KubeSink *s) {
        if (s->namespaces_unavailable)
                s->namespaces_unavailable(s->userdata);
}

static void service_account_free(void *item) {
        free(item); /* one allocation: service_account_parse() */
}

static int service_account_parse(const cJSON *o, const KubeObjectKeys *keys, void **ret) {
        KubeServiceAccountFields f;
        KubeServiceAccount *sa;
        char *at;

        if (kube_service_account_from_json(o, &f) < 0)
                return -EBADMSG;
        /* one allocation: a list holds every ServiceAccount of the cluster until it is complete */
        sa = malloc(sizeof(KubeServiceAccount) + string_size(f.namespace) + string_size(f.name) +
                    string_size(f.role_arn));
        if (!sa)
                return -ENOMEM;
        at = (char *) (sa + 1);
        sa->namespace = pack_string(&at, f.namespace);
        sa->name = pack_string(&at, f.name);
        sa->role_arn = pack_string(&at, f.role_arn);
        *ret = sa;
        return 0;
}

static int service_account_upsert(const KubeSink *s, void *item) {
        int r = s->service_account_upsert(item, s->userdata);
        service_account_free(item);
        return r;
}

static int service_account_delete(const KubeSink *s, const cJSON *o, const KubeObjectKeys *keys) {
        KubeServiceAccountFields f;

        if (kube_service_account_from_json(o, &f) < 0)
                return -EBADMSG;
        return s->service_account_delete(f.namespace, f.name, s->userdata);
}

static int service_account_replace(const KubeSink *s, void **items, size_t n) {
        _cleanup_free_ KubeServiceAccount *sa = calloc(n + 1, sizeof(KubeServiceAccount));
        int r = -ENOMEM;

        if (sa) {
                for (size_t i = 0; i < n; i++)
                        sa[i] = *(KubeServiceAccount *) items[i];
                r = s->service_accounts_replace(sa, n, s->userdata);
        }
        for (size_t i = 0; i < n; i++)
                service_account_free(items[i]);
        free(items);
        return r;
}

static void service_accounts_unavailable(const KubeSink *s) {
        if (s->service_accounts_unavailable)
                s->service_accounts_unavailable(s->userdata);
}

static const KubeResource kube_resources[_KUBE_RESOURCE_MAX] = {
        [KUBE_RESOURCE_PODS] = {
                .what = "pods",
                .kind = "pod",
                .path = "/api/v1/pods",
                .selector_prefix = "spec.nodeName=",
                .tracks_freshness = true,
                .parse = pod_parse,
                .free_item = pod_free,
                .upsert = pod_upsert,
                .delete = pod_delete,
                .replace = pod_replace,
        },
        [KUBE_RESOURCE_NAMESPACES] = {
                .what = "namespaces",
                .kind = "namespace",
                .path = "/api/v1/namespaces",
                .may_be_forbidden = true,
                .forbidden_effect = "Namespace restrictions deny every role",
                .unavailable = namespaces_unavailable,
                .parse = namespace_parse,
                .free_item = namespace_free,
                .upsert = namespace_upsert,
                .delete = namespace_delete,
                .replace = namespace_replace,
        },
        /* --service-account-roles. The Node authorizer lets a kubelet create tokens for the
         * ServiceAccounts of its pods, never read them: docs/sessions.md */
        [KUBE_RESOURCE_SERVICE_ACCOUNTS] = {
                .what = "serviceaccounts",
                .kind = "serviceaccount",
                .path = "/api/v1/serviceaccounts",
                .may_be_forbidden = true,
                .forbidden_effect = "Pods without a role annotation get no role (not even the default "
                                    "role: their ServiceAccount's may be meant)",
                .unavailable = service_accounts_unavailable,
                .parse = service_account_parse,
                .free_item = service_account_free,
                .upsert = service_account_upsert,
                .delete = service_account_delete,
                .replace = service_account_replace,
        },
};

/* ---- the machine ---- */

struct KubeWatch {
        sd_event *event;
        const KubeResource *res;
        KubeObjectKeys keys;
        const KubeSink *sink;
        KubeWatchDriver driver;
        char *node;     /* spec.nodeName of the pods watched, NULL for cluster-wide resources */
        char *selector; /* escaped fieldSelector value, NULL for none */
        char *server;
        usec_t max_stale;

        KubeWatchState state;
        KubeSyncState sync;
        KubeTransfer transfer; /* of the running transfer */
        char *rv;              /* resourceVersion to watch from; NULL: the next request is a (re-)list */
        char *cont;            /* continue token of the list in progress */
        unsigned page_limit;   /* limit= of the next list page, from KUBE_LIST_PAGE_LIMIT down */
        void **items;          /* pages of the list in progress */
        size_t n_items, cap_items;
        usec_t backoff;
        usec_t retry_after;
        unsigned auth_failures;
        char *last_error;

        StrBuf body; /* a list page or an error body */
        WatchParser *parser;
        sd_event_source *timer;
        sd_event_source *stale_timer;
        KubeFreshness fresh;
        long code;        /* HTTP status of the running transfer, as fed */
        int abort_reason; /* why receive() stopped the transfer */
        unsigned events_this_stream;
        unsigned long long events_applied;
        unsigned long long lists;
};

static void watch_next(KubeWatch *w);

static bool watch_running(const KubeWatch *w) {
        return w->state == KUBE_WATCH_LISTING || w->state == KUBE_WATCH_WATCHING;
}

/* Query values percent-encoded as libcurl does (no I/O: a pure conversion). */
static char *url_escape(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0), *copy;

        if (!e)
                return NULL;
        copy = strdup(e);
        curl_free(e);
        return copy;
}

static uint64_t random_u64(void) {
        uint64_t v;
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
                v = now_monotonic() * 6364136223846793005ULL;
        return v;
}

static void watch_changed(KubeWatch *w) {
        if (w->sink->state_changed)
                w->sink->state_changed(w->sink->userdata);
}

static void watch_set_sync(KubeWatch *w, KubeSyncState s) {
        if (w->sync == s)
                return;
        w->sync = s;
        watch_changed(w);
}

static void watch_set_error(KubeWatch *w, const char *fmt, ...) _printf_(2, 3);
static void watch_set_error(KubeWatch *w, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s && w->last_error && streq(s, w->last_error)) {
                free(s);
                return;
        }
        free_and_replace(w->last_error, s);
        watch_changed(w);
}

static void watch_clear_error(KubeWatch *w) {
        if (!w->last_error)
                return;
        w->last_error = mfree(w->last_error);
        watch_changed(w);
}

static void watch_drop_pending(KubeWatch *w) {
        for (size_t i = 0; i < w->n_items; i++)
                w->res->free_item(w->items[i]);
        w->items = mfree(w->items);
        w->n_items = w->cap_items = 0;
        w->cont = mfree(w->cont);
}

static void watch_relist(KubeWatch *w) {
        w->rv = mfree(w->rv);
        watch_drop_pending(w);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        KubeWatch *w = userdata;

        if (w->state == KUBE_WATCH_FORBIDDEN)
                w->rv = mfree(w->rv);
        w->state = KUBE_WATCH_IDLE;
        watch_next(w);
        return 0;
}

static void watch_schedule(KubeWatch *w, usec_t delay, KubeWatchState state) {
        int r;

        w->state = state;
        if (w->timer) {
                r = sd_event_source_set_time_relative(w->timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(w->event, &w->timer, CLOCK_MONOTONIC, delay, 1, on_timer, w);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the %s watch: %m", w->res->what);
}

/* Waits before the next attempt: doubling, jittered to 50-100 % so that nodes spread out. */
static void watch_backoff(KubeWatch *w) {
        usec_t d;

        w->backoff = w->backoff == 0 ? KUBE_BACKOFF_FIRST_USEC : MIN(w->backoff * 2, KUBE_BACKOFF_MAX_USEC);
        d = w->backoff / 2 + random_u64() % (w->backoff / 2 + 1);
        /* 429 and 503 say when to come back (API priority and fairness, a restarting server) */
        d = MAX(d, MIN(w->retry_after, KUBE_RETRY_AFTER_MAX_USEC));
        w->retry_after = 0;
        watch_schedule(w, d, KUBE_WATCH_BACKOFF);
}

/* Right away, on the next step (the next page, a new list, a new watch). */
static void watch_continue(KubeWatch *w) {
        w->state = KUBE_WATCH_IDLE;
        watch_next(w);
}

/* ---- freshness (pods) ---- */

static void watch_update_staleness(KubeWatch *w);

static int on_stale_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        watch_update_staleness(userdata);
        return 0;
}

static void watch_arm_stale_timer(KubeWatch *w, usec_t deadline) {
        int r;

        if (deadline == USEC_INFINITY) {
                if (w->stale_timer)
                        (void) sd_event_source_set_enabled(w->stale_timer, SD_EVENT_OFF);
                return;
        }
        if (w->stale_timer) {
                r = sd_event_source_set_time(w->stale_timer, deadline);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->stale_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(w->event, &w->stale_timer, CLOCK_MONOTONIC, deadline, 0,
                                      on_stale_timer, w);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the %s staleness check: %m", w->res->what);
}

/* Applies the staleness rule (kube-freshness.h): a stale copy is vouched for by nobody. */
static void watch_update_staleness(KubeWatch *w) {
        usec_t deadline = kube_freshness_deadline(&w->fresh, w->max_stale);
        bool synced = w->sync == KUBE_SYNC_SYNCED || w->sync == KUBE_SYNC_STALE;
        bool stale = synced && now_monotonic() >= deadline;
        char dur[DURATION_MAX];

        watch_arm_stale_timer(w, stale ? USEC_INFINITY : deadline);
        if (!synced || stale == (w->sync == KUBE_SYNC_STALE))
                return;
        if (w->sink->pods_vouched)
                w->sink->pods_vouched(!stale, w->sink->userdata);
        if (stale)
                log_error("The %s list of node %s could not be refreshed for %s while the API server "
                          "answers (%s): no %s is answered for until a complete list arrives",
                          w->res->kind, strna(w->node), format_duration(w->max_stale, dur, sizeof dur),
                          strna(w->last_error), w->res->kind);
        else
                log_notice("The %s list of node %s is current again: answering for its %s", w->res->kind,
                           strna(w->node), w->res->what);
        watch_set_sync(w, stale ? KUBE_SYNC_STALE : KUBE_SYNC_SYNCED);
}

static void watch_record(KubeWatch *w, KubeRefresh outcome) {
        if (!w->res->tracks_freshness)
                return;
        /* the common case, every watch event of a healthy stream: nothing to do */
        if (outcome == KUBE_REFRESH_CONFIRMED && w->fresh.failing_since == 0 && w->sync != KUBE_SYNC_STALE)
                return;
        kube_freshness_record(&w->fresh, outcome, now_monotonic());
        watch_update_staleness(w);
}

/* ---- watch events ---- */

static int watch_apply_object(KubeWatch *w, const WatchEvent *ev) {
        void *item = NULL;
        int r;

        if (ev->type == WATCH_EVENT_DELETED) {
                r = w->res->delete (w->sink, ev->object, &w->keys);
                return r == -ENOENT ? 0 : r; /* deleted before we saw it */
        }
        r = w->res->parse(ev->object, &w->keys, &item);
        if (r < 0)
                return r;
        return w->res->upsert(w->sink, item);
}

static int apply_event(const WatchEvent *ev, void *userdata) {
        KubeWatch *w = userdata;
        int r = 0;

        switch (ev->type) {
        case WATCH_EVENT_ERROR:
                if (ev->code == 410) {
                        log_info("The %s watch history expired (%s): re-listing", w->res->what,
                                 strna(ev->message));
                        return -ESTALE;
                }
                log_warning("The %s watch ended with an error event %d: %s", w->res->what, ev->code,
                            strna(ev->message));
                return -EPROTO;
        case WATCH_EVENT_BOOKMARK:
                if (w->sink->progress)
                        w->sink->progress(w->sink->userdata);
                break;
        case WATCH_EVENT_ADDED:
        case WATCH_EVENT_MODIFIED:
        case WATCH_EVENT_DELETED:
                r = watch_apply_object(w, ev);
                break;
        }
        if (r == -EBADMSG) {
                log_error("Malformed %s object in a %s watch event: re-listing", w->res->what,
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
        w->events_applied++;
        watch_record(w, KUBE_REFRESH_CONFIRMED);
        return 0;
}

/* Hands the watch bytes to the parser, which hands each whole event to the sink, right inside the
 * driver's write callback: the sink's owner only records what changed and acts on it a loop turn
 * later (the store's record, played by pod-roles), so nothing here starts or ends a transfer. An
 * event that ends the stream (a 410 ERROR event, a malformed one) stops the transfer through
 * abort_reason, and kube_watch_finished() transitions. */
static int watch_feed(KubeWatch *w, const char *data, size_t n) {
        int r = watch_parser_feed(w->parser, data, n, apply_event, w);

        if (r >= 0 && w->events_this_stream > 0)
                w->backoff = 0;
        return r;
}

void kube_watch_headers_done(KubeWatch *w, long code) {
        w->code = code;
        if (w->transfer == KUBE_TRANSFER_WATCH && code == 200)
                /* the server took our resourceVersion: every change since is on this stream */
                watch_record(w, KUBE_REFRESH_CONFIRMED);
}

size_t kube_watch_receive(KubeWatch *w, long code, const char *data, size_t n) {
        int r;

        w->code = code;
        if (w->transfer == KUBE_TRANSFER_LIST || code != 200) {
                size_t max = code == 200 ? KUBE_LIST_PAGE_MAX_BYTES : KUBE_ERROR_BODY_MAX_BYTES;
                if (w->body.len + n > max) {
                        if (code != 200)
                                return n; /* only the start of an error body matters */
                        w->abort_reason = -EFBIG;
                        return 0;
                }
                strbuf_append_n(&w->body, data, n);
                return n;
        }
        /* one event is bounded by the parser (MAX_WATCH_EVENT_BYTES: -E2BIG) */
        r = watch_feed(w, data, n);
        if (r < 0) {
                w->abort_reason = r;
                return 0;
        }
        return n;
}

/* ---- list pages ---- */

static int list_add(KubeWatch *w, const cJSON *o) {
        void *item = NULL;
        int r = w->res->parse(o, &w->keys, &item);

        if (r < 0)
                return r;
        if (w->n_items >= w->cap_items) {
                size_t cap = MAX(w->cap_items * 2, (size_t) 64);
                void **a = realloc(w->items, cap * sizeof(void *));
                if (!a) {
                        w->res->free_item(item);
                        return -ENOMEM;
                }
                w->items = a;
                w->cap_items = cap;
        }
        w->items[w->n_items++] = item;
        return 0;
}

/* One item of a list page. An object over our per-object limit (or cut off with the page) or one
 * we cannot read (malformed, nested past cJSON's limit) is left out of the list, named in the
 * log: the sink then holds no version of it, so it is not answered for, while every other
 * object is refreshed. */
static int list_item(const char *item, size_t len, bool complete, void *userdata) {
        KubeWatch *w = userdata;
        _cleanup_(json_deletep) cJSON *j = NULL;
        _cleanup_free_ char *who = NULL;
        bool too_large = !complete || len > KUBE_OBJECT_MAX_BYTES;
        int r;

        if (!too_large) {
                j = cJSON_ParseWithLength(item, len);
                r = cJSON_IsObject(j) ? list_add(w, j) : -EBADMSG;
                if (r != -EBADMSG)
                        return r;
        }
        r = kube_object_identity(item, len, &who);
        if (r < 0)
                return r;
        if (too_large)
                log_error("Leaving %s %s out of the %s list: the object is larger than %d bytes; it is not "
                          "answered for until it shrinks",
                          w->res->kind, who, w->res->what, KUBE_OBJECT_MAX_BYTES);
        else
                log_error(
                        "Leaving %s %s out of the %s list: the object is malformed; it is not answered for",
                        w->res->kind, who, w->res->what);
        return 0;
}

/* Applies the page in w->body; cut_off: the transfer was stopped at KUBE_LIST_PAGE_MAX_BYTES (a
 * page of one object). 1: more pages follow; 0: the list is complete and delivered. */
static int list_page_apply(KubeWatch *w, bool cut_off) {
        _cleanup_(json_deletep) cJSON *j = NULL;
        const char *cont, *rv;
        size_t n;
        int r;

        r = kube_list_scan(strbuf_str(&w->body), w->body.len, list_item, w, &j);
        if (r < 0)
                return r;
        if ((r > 0) != cut_off)
                return -EBADMSG; /* a complete transfer ends inside an item, or a cut one does not */

        cont = json_get_string_path(j, (const char *const[]){ "continue" }, 1);
        rv = json_get_string_path(j, (const char *const[]){ "resourceVersion" }, 1);
        w->cont = mfree(w->cont);
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
        n = w->n_items;
        r = w->res->replace(w->sink, TAKE_PTR(w->items), n);
        w->n_items = w->cap_items = 0;
        if (r < 0)
                return r;
        if (w->sync != KUBE_SYNC_SYNCED && w->sync != KUBE_SYNC_STALE)
                log_info("Listed %zu %s", n, w->res->what);
        return 0;
}

/* ---- how a transfer ended: outcomes, then one transition per outcome ---- */

typedef enum KubeOutcome {
        KUBE_OUTCOME_UNAUTHORIZED,       /* 401 */
        KUBE_OUTCOME_FORBIDDEN,          /* 403 */
        KUBE_OUTCOME_LIST_PAGE,          /* a page arrived (or one object cut off at our limit) */
        KUBE_OUTCOME_LIST_EXPIRED,       /* 410: the continue token expired */
        KUBE_OUTCOME_LIST_TOO_LARGE,     /* a page over our limit: ask for smaller ones */
        KUBE_OUTCOME_LIST_FAILED,        /* any other failure of a page */
        KUBE_OUTCOME_WATCH_EXPIRED,      /* 410, or an ERROR event 410: the history is gone */
        KUBE_OUTCOME_WATCH_MALFORMED,    /* not a watch event, or an event over the limit */
        KUBE_OUTCOME_WATCH_ERROR_EVENT,  /* another ERROR event */
        KUBE_OUTCOME_WATCH_APPLY_FAILED, /* the sink (or memory) failed */
        KUBE_OUTCOME_WATCH_ENDED,        /* timeoutSeconds elapsed: the normal end */
        KUBE_OUTCOME_WATCH_DROPPED,      /* a 200 stream broke or went silent */
        KUBE_OUTCOME_WATCH_FAILED,       /* an HTTP error or no connection */
        _KUBE_OUTCOME_MAX,
} KubeOutcome;

static KubeOutcome list_outcome(const KubeWatch *w, const KubeResponse *r, int abort_reason, bool cut_off) {
        if (r->code == 410)
                return KUBE_OUTCOME_LIST_EXPIRED;
        if (abort_reason == -EFBIG && w->page_limit > KUBE_LIST_PAGE_LIMIT_MIN)
                return KUBE_OUTCOME_LIST_TOO_LARGE;
        if ((r->error < 0 || r->code != 200) && !cut_off)
                return KUBE_OUTCOME_LIST_FAILED;
        return KUBE_OUTCOME_LIST_PAGE;
}

static KubeOutcome watch_outcome(const KubeResponse *r, int abort_reason) {
        if (abort_reason == -ESTALE || r->code == 410)
                return KUBE_OUTCOME_WATCH_EXPIRED;
        if (abort_reason == -EBADMSG || abort_reason == -E2BIG)
                return KUBE_OUTCOME_WATCH_MALFORMED;
        if (abort_reason == -EPROTO)
                return KUBE_OUTCOME_WATCH_ERROR_EVENT;
        if (abort_reason < 0)
                return KUBE_OUTCOME_WATCH_APPLY_FAILED;
        if (r->code == 200)
                return r->error == 0 ? KUBE_OUTCOME_WATCH_ENDED : KUBE_OUTCOME_WATCH_DROPPED;
        return KUBE_OUTCOME_WATCH_FAILED;
}

static const char *transport_error(const KubeResponse *r) {
        return r->transport_error ?: strerror(-r->error);
}

static void watch_unauthorized(KubeWatch *w) {
        w->auth_failures++;
        watch_set_error(w, "credentials rejected (401)");
        w->driver.unauthorized(w, w->driver.userdata);
        /* once right away with fresh credentials, then with backoff */
        if (w->auth_failures == 1)
                watch_continue(w);
        else
                watch_backoff(w);
}

static void watch_forbidden(KubeWatch *w, const char *message) {
        watch_set_error(w, "forbidden (403)");
        if (!w->res->may_be_forbidden) {
                log_error("The credentials may not list %s of node %s (403: %s); with kubelet credentials "
                          "--node must be this node's name",
                          w->res->what, strna(w->node), strna(message));
                watch_backoff(w);
                return;
        }
        if (w->sync != KUBE_SYNC_FORBIDDEN)
                log_error("The credentials may not list and watch %s (403: %s). %s until a ClusterRole "
                          "allowing get, list and watch on %s is bound to this user (contrib/rbac ships "
                          "one); pods are still served",
                          w->res->what, strna(message), w->res->forbidden_effect, w->res->what);
        w->res->unavailable(w->sink);
        watch_relist(w);
        watch_schedule(w, KUBE_FORBIDDEN_RETRY_USEC, KUBE_WATCH_FORBIDDEN);
        watch_set_sync(w, KUBE_SYNC_FORBIDDEN);
}

/* The page in progress was too large for us: the same page (same continue token, pages already
 * received kept) with half as many items. */
static void watch_smaller_pages(KubeWatch *w) {
        unsigned limit = MAX(w->page_limit / 2, (unsigned) KUBE_LIST_PAGE_LIMIT_MIN);

        log_notice("A %s list page of up to %u items exceeded %d bytes: asking for pages of %u",
                   w->res->what, w->page_limit, KUBE_LIST_PAGE_MAX_BYTES, limit);
        watch_set_error(w, "a %s list page of %u items exceeded %d bytes", w->res->what, w->page_limit,
                        KUBE_LIST_PAGE_MAX_BYTES);
        w->page_limit = limit;
        watch_continue(w);
}

static void watch_list_failed(KubeWatch *w, const KubeResponse *r, const char *message, int abort_reason) {
        if (abort_reason == -EFBIG)
                watch_set_error(w, "a %s list page exceeded %d bytes", w->res->what,
                                KUBE_LIST_PAGE_MAX_BYTES);
        else if (r->code != 200 && r->code != 0)
                watch_set_error(w, "listing %s: HTTP %ld: %s", w->res->what, r->code, strna(message));
        else
                watch_set_error(w, "listing %s: %s", w->res->what, transport_error(r));
        log_warning("Failed to list %s from %s: %s", w->res->what, strna(w->server), w->last_error);
        watch_relist(w);
        watch_backoff(w);
}

static void watch_list_page(KubeWatch *w, bool cut_off) {
        int r = list_page_apply(w, cut_off);

        if (r < 0) {
                watch_record(w, KUBE_REFRESH_FAILED);
                watch_set_error(w, "listing %s: %s", w->res->what,
                                r == -EBADMSG ? "malformed list" : strerror(-r));
                log_error("Failed to apply the %s list from %s: %s", w->res->what, strna(w->server),
                          w->last_error);
                watch_relist(w);
                watch_backoff(w);
                return;
        }
        if (r == 0) {
                w->backoff = 0;
                /* the next list tries pages twice this size: the big objects may be gone */
                w->page_limit = MIN(w->page_limit * 2, (unsigned) KUBE_LIST_PAGE_LIMIT);
                watch_clear_error(w);
                /* synced before the record: a stale copy turns current through the freshness rule */
                if (w->sync != KUBE_SYNC_STALE)
                        watch_set_sync(w, KUBE_SYNC_SYNCED);
                watch_record(w, KUBE_REFRESH_CONFIRMED);
        }
        watch_continue(w);
}

static void watch_stream_failed(KubeWatch *w, KubeOutcome o, const KubeResponse *r, const char *message) {
        if (o == KUBE_OUTCOME_WATCH_DROPPED) {
                if (r->timed_out)
                        watch_set_error(w, "%s watch silent for too long", w->res->what);
                else
                        watch_set_error(w, "%s watch dropped: %s", w->res->what, transport_error(r));
                log_warning("The %s watch from %s ended: %s; reconnecting", w->res->what, strna(w->server),
                            w->last_error);
                if (w->events_this_stream > 0)
                        w->backoff = 0;
        } else {
                if (r->code != 0)
                        watch_set_error(w, "watching %s: HTTP %ld: %s", w->res->what, r->code,
                                        strna(message));
                else
                        watch_set_error(w, "watching %s: %s", w->res->what, transport_error(r));
                log_warning("Failed to watch %s from %s: %s", w->res->what, strna(w->server), w->last_error);
        }
        watch_backoff(w);
}

/* The one transition function: from the outcome of the transfer that ran, to the next state. */
static void watch_transition(KubeWatch *w, KubeOutcome o, const KubeResponse *r, const char *message,
                             int abort_reason) {
        switch (o) {
        case KUBE_OUTCOME_UNAUTHORIZED:
                return watch_unauthorized(w);
        case KUBE_OUTCOME_FORBIDDEN:
                return watch_forbidden(w, message);
        case KUBE_OUTCOME_LIST_EXPIRED:
                log_info("The %s list's continue token expired: listing again", w->res->what);
                watch_relist(w);
                return watch_schedule(w, 0, KUBE_WATCH_BACKOFF);
        case KUBE_OUTCOME_LIST_TOO_LARGE:
                return watch_smaller_pages(w);
        case KUBE_OUTCOME_LIST_FAILED:
                return watch_list_failed(w, r, message, abort_reason);
        case KUBE_OUTCOME_LIST_PAGE:
                return watch_list_page(w, abort_reason == -EFBIG);
        case KUBE_OUTCOME_WATCH_EXPIRED:
                if (r->code == 410)
                        log_info("The %s watch's resourceVersion is too old (410 Gone): re-listing",
                                 w->res->what);
                watch_relist(w);
                return watch_continue(w);
        case KUBE_OUTCOME_WATCH_MALFORMED:
                log_error("Malformed %s watch stream from %s (%s): re-listing", w->res->what,
                          strna(w->server),
                          abort_reason == -E2BIG ? "an event over the size limit" : "not a watch event");
                watch_relist(w);
                return watch_backoff(w);
        case KUBE_OUTCOME_WATCH_ERROR_EVENT:
                return watch_backoff(w);
        case KUBE_OUTCOME_WATCH_APPLY_FAILED:
                log_error_errno(abort_reason, "Failed to apply a %s watch event: %m", w->res->what);
                watch_relist(w);
                return watch_backoff(w);
        case KUBE_OUTCOME_WATCH_ENDED:
                watch_clear_error(w);
                w->backoff = 0;
                return watch_continue(w);
        case KUBE_OUTCOME_WATCH_DROPPED:
        case KUBE_OUTCOME_WATCH_FAILED:
                return watch_stream_failed(w, o, r, message);
        case _KUBE_OUTCOME_MAX:
                break;
        }
        abort(); /* every outcome is handled above */
}

/* The message of a Kubernetes Status body, else the first bytes of the body. */
static char *status_message(const StrBuf *b) {
        _cleanup_(json_deletep) cJSON *j = cJSON_ParseWithLength(strbuf_str(b), b->len);
        const char *m = json_get_string_path(j, (const char *const[]){ "message" }, 1);
        if (m)
                return strdup(m);
        return strndup_safe(strbuf_str(b), MIN(b->len, (size_t) 200));
}

/* Classifies the end of a transfer, records what it says about freshness, and transitions. */
static void watch_end(KubeWatch *w, const KubeResponse *r, int abort_reason) {
        _cleanup_free_ char *message = NULL;
        KubeOutcome o;

        if (r->code != 200 && r->code != 0)
                message = status_message(&w->body);
        if (r->retry_after > 0)
                w->retry_after = r->retry_after;
        if (r->code >= 200 && r->code < 300)
                w->auth_failures = 0;

        if (r->code == 401 || r->code == 403) {
                watch_record(w, KUBE_REFRESH_FAILED);
                o = r->code == 401 ? KUBE_OUTCOME_UNAUTHORIZED : KUBE_OUTCOME_FORBIDDEN;
        } else if (w->transfer == KUBE_TRANSFER_LIST) {
                /* a page of a single object cut off at our limit: that object is left out */
                bool cut_off = abort_reason == -EFBIG && w->page_limit <= KUBE_LIST_PAGE_LIMIT_MIN &&
                               r->code == 200;
                if (r->code != 200 || r->error < 0 || abort_reason < 0)
                        watch_record(w, kube_refresh_classify(r->code, r->error < 0, abort_reason < 0));
                o = list_outcome(w, r, abort_reason, cut_off);
        } else {
                if (r->code == 200 && abort_reason == 0 && r->error == 0) {
                        int q = watch_parser_finish(w->parser, apply_event, w);
                        abort_reason = q < 0 ? q : 0;
                }
                watch_parser_reset(w->parser);
                watch_record(w, kube_refresh_classify(r->code, r->error < 0, abort_reason < 0));
                o = watch_outcome(r, abort_reason);
        }
        /* the state that ran is over: the transition picks the next */
        w->state = KUBE_WATCH_IDLE;
        watch_transition(w, o, r, message, abort_reason);
        if (!watch_running(w))
                strbuf_done(&w->body); /* a page can be 64 MiB: not kept while watching */
}

void kube_watch_finished(KubeWatch *w, const KubeResponse *r) {
        int abort_reason = w->abort_reason;

        if (!watch_running(w))
                return;
        w->abort_reason = 0;
        watch_end(w, r, abort_reason);
}

/* ---- starting transfers ---- */

static int watch_path(KubeWatch *w, StrBuf *path) {
        strbuf_appendf(path, "%s?", w->res->path);
        if (w->selector)
                strbuf_appendf(path, "fieldSelector=%s&", w->selector);
        if (!w->rv) {
                strbuf_appendf(path, "limit=%u", w->page_limit);
                if (w->cont) {
                        _cleanup_free_ char *e = url_escape(w->cont);
                        if (!e)
                                return -ENOMEM;
                        strbuf_appendf(path, "&continue=%s", e);
                }
        } else {
                _cleanup_free_ char *e = url_escape(w->rv);
                unsigned timeout = KUBE_WATCH_TIMEOUT_MIN_SEC +
                                   (unsigned) (random_u64() %
                                               (KUBE_WATCH_TIMEOUT_MAX_SEC - KUBE_WATCH_TIMEOUT_MIN_SEC));
                if (!e)
                        return -ENOMEM;
                strbuf_appendf(path, "watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u",
                               e, timeout);
        }
        return strbuf_error(path);
}

static void watch_next(KubeWatch *w) {
        _cleanup_strbuf_ StrBuf path = {};
        int r;

        if (w->state != KUBE_WATCH_IDLE || !w->server)
                return;
        w->transfer = w->rv ? KUBE_TRANSFER_WATCH : KUBE_TRANSFER_LIST;
        if (w->transfer == KUBE_TRANSFER_WATCH)
                watch_parser_reset(w->parser);
        else if (!w->cont)
                w->lists++;
        w->events_this_stream = 0;
        w->abort_reason = 0;
        w->code = 0;
        strbuf_done(&w->body);
        r = watch_path(w, &path);
        if (r >= 0)
                r = w->driver.start(w, strbuf_str(&path), w->transfer, w->driver.userdata);
        if (r == 0) {
                w->state = KUBE_WATCH_WAIT_CREDENTIALS;
                return;
        }
        if (r < 0) {
                watch_set_error(w, "cannot connect: %s", strerror(-r));
                watch_backoff(w);
                return;
        }
        w->state = w->transfer == KUBE_TRANSFER_LIST ? KUBE_WATCH_LISTING : KUBE_WATCH_WATCHING;
}

void kube_watch_start(KubeWatch *w) {
        if (w)
                watch_next(w);
}

void kube_watch_credentials_ready(KubeWatch *w, int error) {
        if (!w || w->state != KUBE_WATCH_WAIT_CREDENTIALS)
                return;
        if (error < 0) {
                watch_set_error(w, "the exec credential plugin failed");
                watch_backoff(w);
                return;
        }
        watch_continue(w);
}

int kube_watch_set_server(KubeWatch *w, const char *server) {
        char *s = NULL;

        if (server && !(s = strdup(server)))
                return -ENOMEM;
        free_and_replace(w->server, s);
        return 0;
}

static int watch_select_node(KubeWatch *w, const char *node) {
        _cleanup_free_ char *n = NULL, *sel = NULL, *esc = NULL;

        if (!w->res->selector_prefix)
                return 0;
        if (isempty(node))
                return -EINVAL;
        n = strdup(node);
        if (!n || asprintf(&sel, "%s%s", w->res->selector_prefix, node) < 0)
                return -ENOMEM;
        esc = url_escape(sel);
        if (!esc)
                return -ENOMEM;
        free_and_replace(w->node, n);
        free_and_replace(w->selector, esc);
        return 0;
}

int kube_watch_set_node(KubeWatch *w, const char *node) {
        if (w->node && node && streq(w->node, node))
                return 0;
        return watch_select_node(w, node);
}

/* ---- life ---- */

int kube_watch_new(sd_event *event, const KubeWatchOptions *o, KubeWatch **ret) {
        _cleanup_(kube_watch_freep) KubeWatch *w = NULL;
        const KubeResource *res;
        int r;

        if (!event || !o || o->type < 0 || o->type >= _KUBE_RESOURCE_MAX || !o->sink || !o->driver.start ||
            !o->driver.cancel || !o->driver.unauthorized || !ret)
                return -EINVAL;
        res = &kube_resources[o->type];
        if (res->selector_prefix && isempty(o->node))
                return -EINVAL;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (KubeWatch){ .event = sd_event_ref(event),
                          .res = res,
                          .keys = o->keys,
                          .sink = o->sink,
                          .driver = o->driver,
                          .max_stale = o->max_stale ?: KUBE_POD_STORE_MAX_STALE_USEC,
                          .sync = KUBE_SYNC_LISTING,
                          .page_limit = KUBE_LIST_PAGE_LIMIT };
        r = watch_select_node(w, o->node);
        if (r < 0)
                return r;
        r = watch_parser_new(MAX_WATCH_EVENT_BYTES, &w->parser);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

KubeWatch *kube_watch_free(KubeWatch *w) {
        if (!w)
                return NULL;
        if (watch_running(w))
                w->driver.cancel(w, w->driver.userdata);
        watch_drop_pending(w);
        watch_parser_free(w->parser);
        strbuf_done(&w->body);
        sd_event_source_disable_unref(w->timer);
        sd_event_source_disable_unref(w->stale_timer);
        free(w->rv);
        free(w->selector);
        free(w->node);
        free(w->server);
        free(w->last_error);
        sd_event_unref(w->event);
        free(w);
        return NULL;
}

int kube_watch_resume(KubeWatch *w, const char *rv) {
        char *copy;

        if (!w || isempty(rv) || w->state != KUBE_WATCH_IDLE || w->rv)
                return -EINVAL;
        copy = strdup(rv);
        if (!copy)
                return -ENOMEM;
        w->rv = copy;
        watch_set_sync(w, KUBE_SYNC_SYNCED);
        watch_record(w, KUBE_REFRESH_CONFIRMED);
        return 0;
}

const char *kube_watch_resource_version(const KubeWatch *w) {
        return w ? w->rv : NULL;
}

unsigned long long kube_watch_lists(const KubeWatch *w) {
        return w ? w->lists : 0;
}

KubeWatchState kube_watch_state(const KubeWatch *w) {
        return w->state;
}

KubeSyncState kube_watch_sync_state(const KubeWatch *w) {
        return w->sync;
}

const char *kube_watch_last_error(const KubeWatch *w) {
        return w->last_error;
}

const char *kube_watch_what(const KubeWatch *w) {
        return w->res->what;
}

unsigned long long kube_watch_events_applied(const KubeWatch *w) {
        return w->events_applied;
}

static const char *const sync_state_names[_KUBE_SYNC_STATE_MAX] = {
        [KUBE_SYNC_STARTING] = "starting",
        [KUBE_SYNC_WAITING_KUBECONFIG] = "waiting-kubeconfig",
        [KUBE_SYNC_KUBECONFIG_INVALID] = "kubeconfig-invalid",
        [KUBE_SYNC_LISTING] = "listing",
        [KUBE_SYNC_SYNCED] = "synced",
        [KUBE_SYNC_STALE] = "stale",
        [KUBE_SYNC_FORBIDDEN] = "forbidden",
};

const char *kube_sync_state_to_string(KubeSyncState s) {
        return s >= 0 && s < _KUBE_SYNC_STATE_MAX ? sync_state_names[s] : NULL;
}

static const char *const watch_state_names[_KUBE_WATCH_STATE_MAX] = {
        [KUBE_WATCH_IDLE] = "idle",       [KUBE_WATCH_WAIT_CREDENTIALS] = "wait-credentials",
        [KUBE_WATCH_LISTING] = "listing", [KUBE_WATCH_WATCHING] = "watching",
        [KUBE_WATCH_BACKOFF] = "backoff", [KUBE_WATCH_FORBIDDEN] = "forbidden",
};

const char *kube_watch_state_to_string(KubeWatchState s) {
        return s >= 0 && s < _KUBE_WATCH_STATE_MAX ? watch_state_names[s] : NULL;
}
