/* SPDX-License-Identifier: BSD-3-Clause */
/* The list+watch state machine without HTTP: a fake driver records what the machine asks for,
 * the test feeds it the responses an API server would give, and a fake sink records what it
 * delivers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube-watch.h"
#include "string-util.h"
#include "tap.h"

typedef struct Fake {
        /* driver */
        unsigned starts;
        char *path;
        KubeTransfer kind;
        int start_result;
        unsigned cancels, unauthorized;
        /* sink */
        unsigned upserts, deletes, replaces, unavailable, changed;
        size_t replaced;
        char *last_uid;
        bool vouched;
        unsigned vouch_calls;
        unsigned sa_upserts, sa_deletes, sa_unavailable;
        char *sa_last; /* "namespace/name=role" of the last upsert or delete */
} Fake;

static int fake_start(KubeWatch *w, const char *path, KubeTransfer kind, void *userdata) {
        Fake *f = userdata;

        f->starts++;
        free(f->path);
        f->path = strdup(path);
        f->kind = kind;
        return f->start_result;
}

static void fake_cancel(KubeWatch *w, void *userdata) {
        ((Fake *) userdata)->cancels++;
}

static void fake_unauthorized(KubeWatch *w, void *userdata) {
        ((Fake *) userdata)->unauthorized++;
}

static int sink_pod_upsert(KubePod *pod, void *userdata) {
        Fake *f = userdata;

        f->upserts++;
        free(f->last_uid);
        f->last_uid = strdup(pod->uid);
        kube_pod_free(pod);
        return 0;
}

static int sink_pod_delete(const char *uid, void *userdata) {
        Fake *f = userdata;

        f->deletes++;
        free(f->last_uid);
        f->last_uid = strdup(uid);
        return 0;
}

static int sink_pods_replace(KubePod **pods, size_t n, void *userdata) {
        Fake *f = userdata;

        f->replaces++;
        f->replaced = n;
        for (size_t i = 0; i < n; i++)
                kube_pod_free(pods[i]);
        free(pods);
        return 0;
}

static void sink_pods_vouched(bool vouched, void *userdata) {
        Fake *f = userdata;
        f->vouched = vouched;
        f->vouch_calls++;
}

static int sink_namespace_upsert(const KubeNamespace *ns, void *userdata) {
        ((Fake *) userdata)->upserts++;
        return 0;
}

static int sink_namespace_delete(const char *name, void *userdata) {
        ((Fake *) userdata)->deletes++;
        return 0;
}

static int sink_namespaces_replace(const KubeNamespace *ns, size_t n, void *userdata) {
        Fake *f = userdata;
        f->replaces++;
        f->replaced = n;
        return 0;
}

static void sink_namespaces_unavailable(void *userdata) {
        ((Fake *) userdata)->unavailable++;
}

static void sa_remember(Fake *f, const char *ns, const char *name, const char *role) {
        free(f->sa_last);
        ASSERT_TRUE(asprintf(&f->sa_last, "%s/%s=%s", ns, name, strna(role)) > 0);
}

static int sink_service_account_upsert(const KubeServiceAccount *sa, void *userdata) {
        Fake *f = userdata;
        f->sa_upserts++;
        sa_remember(f, sa->namespace, sa->name, sa->role_arn);
        return 0;
}

static int sink_service_account_delete(const char *ns, const char *name, void *userdata) {
        Fake *f = userdata;
        f->sa_deletes++;
        sa_remember(f, ns, name, NULL);
        return 0;
}

static int sink_service_accounts_replace(const KubeServiceAccount *sa, size_t n, void *userdata) {
        Fake *f = userdata;
        f->replaces++;
        f->replaced = n;
        if (n > 0)
                sa_remember(f, sa[0].namespace, sa[0].name, sa[0].role_arn);
        return 0;
}

static void sink_service_accounts_unavailable(void *userdata) {
        ((Fake *) userdata)->sa_unavailable++;
}

static void sink_state_changed(void *userdata) {
        ((Fake *) userdata)->changed++;
}

typedef struct Harness {
        sd_event *event;
        Fake fake;
        KubeSink sink;
        KubeWatch *w;
} Harness;

static void harness_init(Harness *h, KubeResourceType type, usec_t max_stale) {
        *h = (Harness){ .fake.start_result = 1, .fake.vouched = true };
        h->sink = (KubeSink){ .pod_upsert = sink_pod_upsert,
                              .pod_delete = sink_pod_delete,
                              .pods_replace = sink_pods_replace,
                              .pods_vouched = sink_pods_vouched,
                              .namespace_upsert = sink_namespace_upsert,
                              .namespace_delete = sink_namespace_delete,
                              .namespaces_replace = sink_namespaces_replace,
                              .namespaces_unavailable = sink_namespaces_unavailable,
                              .service_account_upsert = sink_service_account_upsert,
                              .service_account_delete = sink_service_account_delete,
                              .service_accounts_replace = sink_service_accounts_replace,
                              .service_accounts_unavailable = sink_service_accounts_unavailable,
                              .state_changed = sink_state_changed,
                              .userdata = &h->fake };
        ASSERT_OK(sd_event_new(&h->event));
        ASSERT_OK(kube_watch_new(h->event,
                                 &(const KubeWatchOptions){ .type = type,
                                                            .node = "node-a",
                                                            .keys = { .role_key = "iam.amazonaws.com/role" },
                                                            .max_stale = max_stale,
                                                            .sink = &h->sink,
                                                            .driver = { .start = fake_start,
                                                                        .cancel = fake_cancel,
                                                                        .unauthorized = fake_unauthorized,
                                                                        .userdata = &h->fake } },
                                 &h->w));
        ASSERT_OK(kube_watch_set_server(h->w, "https://api.test"));
}

static void harness_done(Harness *h) {
        h->w = kube_watch_free(h->w);
        h->event = sd_event_unref(h->event);
        free(h->fake.path);
        free(h->fake.last_uid);
        free(h->fake.sa_last);
}

/* A complete response: the body, then the end. */
static void respond(Harness *h, long code, const char *body) {
        if (body)
                ASSERT_UEQ(kube_watch_receive(h->w, code, body, strlen(body)), strlen(body));
        kube_watch_finished(h->w, &(const KubeResponse){ .code = code });
}

/* Runs the loop until the machine started n transfers (backoff timers are at most a second here). */
static void run_until_starts(Harness *h, unsigned n) {
        for (unsigned i = 0; i < 50 && h->fake.starts < n; i++)
                ASSERT_TRUE(sd_event_run(h->event, 100 * USEC_PER_MSEC) >= 0);
        ASSERT_UEQ(h->fake.starts, n);
}

static void run_pending(Harness *h) {
        while (sd_event_run(h->event, 0) > 0)
                ;
}

#define POD(uid, ip) \
        "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"default\",\"name\":\"" uid "\"}," \
        "\"spec\":{},\"status\":{\"phase\":\"Running\",\"podIP\":\"" ip "\"}}"
#define EVENT(type, uid, rv) \
        "{\"type\":\"" type "\",\"object\":{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"default\"," \
        "\"name\":\"" uid "\",\"resourceVersion\":\"" rv "\"},\"status\":{\"phase\":\"Running\"}}}\n"

/* Lists the pods in one page at resourceVersion 100 and checks the watch that follows. */
static void sync_pods(Harness *h) {
        unsigned starts = h->fake.starts;

        respond(h, 200,
                "{\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[" POD("u1", "10.0.0.1") "]}");
        ASSERT_EQ(kube_watch_sync_state(h->w), KUBE_SYNC_SYNCED);
        ASSERT_UEQ(h->fake.starts, starts + 1);
        ASSERT_EQ(h->fake.kind, KUBE_TRANSFER_WATCH);
        ASSERT_EQ(kube_watch_state(h->w), KUBE_WATCH_WATCHING);
}

TEST(pods_are_listed_in_pages_then_watched_from_the_lists_resource_version) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_LISTING);
        kube_watch_start(h.w);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_LISTING);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        ASSERT_STREQ(h.fake.path, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500");

        respond(&h, 200,
                "{\"metadata\":{\"resourceVersion\":\"99\",\"continue\":\"c/1\"},\"items\":[" POD(
                        "u1", "10.0.0.1") "]}");
        /* nothing reaches the sink before the list is complete */
        ASSERT_UEQ(h.fake.replaces, 0);
        ASSERT_STREQ(h.fake.path,
                     "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500&continue=c%2F1");

        respond(&h, 200,
                "{\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[" POD("u2", "10.0.0.2") "]}");
        ASSERT_UEQ(h.fake.replaces, 1);
        ASSERT_UEQ(h.fake.replaced, 2);
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_SYNCED);
        ASSERT_TRUE(h.fake.changed > 0);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_WATCH);
        ASSERT_NOT_NULL(startswith(h.fake.path,
                                   "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=1&"
                                   "resourceVersion=100&allowWatchBookmarks=true&timeoutSeconds="));
        harness_done(&h);
}

TEST(watch_events_reach_the_sink_as_they_arrive_and_move_the_resource_version) {
        const char *events = EVENT("ADDED", "u5", "101") EVENT(
                "DELETED", "u1",
                "102") "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"150\"}}}\n";
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        sync_pods(&h);
        kube_watch_headers_done(h.w, 200);
        ASSERT_UEQ(kube_watch_receive(h.w, 200, events, strlen(events)), strlen(events));
        /* at once: the sink only records (the store's owner acts a loop turn later) */
        ASSERT_UEQ(h.fake.upserts, 1);
        ASSERT_UEQ(h.fake.deletes, 1);
        ASSERT_STREQ(h.fake.last_uid, "u1");
        ASSERT_UEQ(kube_watch_events_applied(h.w), 3);

        /* timeoutSeconds elapsed: a new watch from the bookmark's resourceVersion, no list */
        kube_watch_finished(h.w, &(const KubeResponse){ .code = 200 });
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_WATCH);
        ASSERT_NOT_NULL(strstr(h.fake.path, "resourceVersion=150&"));
        ASSERT_UEQ(h.fake.replaces, 1);
        harness_done(&h);
}

TEST(gone_410_relists_at_once_whether_http_or_in_the_stream) {
        const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":"
                           "\"too old\"}}\n";
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        sync_pods(&h);
        respond(&h, 410, "{\"kind\":\"Status\",\"message\":\"too old resource version\"}");
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_LISTING);

        sync_pods(&h);
        kube_watch_headers_done(h.w, 200);
        /* the machine stops the stream (0: libcurl ends the transfer with a write error) */
        ASSERT_UEQ(kube_watch_receive(h.w, 200, gone, strlen(gone)), 0);
        kube_watch_finished(h.w, &(const KubeResponse){ .code = 200, .error = -EIO });
        ASSERT_UEQ(h.fake.cancels, 0);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_LISTING);
        /* the copy stays synced while it is listed again */
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_SYNCED);
        harness_done(&h);
}

TEST(malformed_watch_event_relists_after_a_backoff) {
        const char *garbage = "{\"type\":\"ADDED\",\"object\":[]}\n";
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        sync_pods(&h);
        kube_watch_headers_done(h.w, 200);
        ASSERT_UEQ(kube_watch_receive(h.w, 200, garbage, strlen(garbage)), 0);
        kube_watch_finished(h.w, &(const KubeResponse){ .code = 200, .error = -EIO });
        ASSERT_UEQ(h.fake.cancels, 0);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_BACKOFF);
        run_until_starts(&h, 3);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        harness_done(&h);
}

TEST(a_page_too_large_is_asked_for_again_with_half_the_items) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        respond(&h, 200,
                "{\"metadata\":{\"resourceVersion\":\"9\",\"continue\":\"c1\"},\"items\":[" POD(
                        "u1", "10.0.0.1") "]}");
        /* the next chunk would take the page past KUBE_LIST_PAGE_MAX_BYTES: refused before it is read */
        ASSERT_UEQ(kube_watch_receive(h.w, 200, "x", (size_t) KUBE_LIST_PAGE_MAX_BYTES + 1), 0);
        kube_watch_finished(h.w, &(const KubeResponse){ .code = 200, .error = -ECANCELED });
        ASSERT_STREQ(h.fake.path, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=250&continue=c1");
        ASSERT_NOT_NULL(kube_watch_last_error(h.w));

        /* the pages already received are kept; the next list starts from the size that worked, doubled */
        respond(&h, 200,
                "{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" POD("u2", "10.0.0.2") "]}");
        ASSERT_UEQ(h.fake.replaced, 2);
        ASSERT_NULL(kube_watch_last_error(h.w));
        respond(&h, 410, NULL);
        ASSERT_STREQ(h.fake.path, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500");
        harness_done(&h);
}

TEST(forbidden_namespaces_degrade_and_are_asked_for_rarely) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_NAMESPACES, 0);
        kube_watch_start(h.w);
        ASSERT_STREQ(h.fake.path, "/api/v1/namespaces?limit=500");
        respond(&h, 403, "{\"kind\":\"Status\",\"message\":\"namespaces is forbidden\"}");
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_FORBIDDEN);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_FORBIDDEN);
        ASSERT_UEQ(h.fake.unavailable, 1);
        ASSERT_UEQ(h.fake.starts, 1);
        harness_done(&h);
}

#define SA(ns, name, annotations) \
        "{\"metadata\":{\"namespace\":\"" ns "\",\"name\":\"" name "\",\"resourceVersion\":\"7\"," \
        "\"annotations\":{" annotations "}}}"
#define IRSA(arn) "\"eks.amazonaws.com/role-arn\":\"" arn "\""

TEST(service_accounts_are_listed_watched_and_forbidden_like_namespaces) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_SERVICE_ACCOUNTS, 0);
        kube_watch_start(h.w);
        ASSERT_STREQ(h.fake.path, "/api/v1/serviceaccounts?limit=500");
        respond(&h, 200,
                "{\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[" SA(
                        "web", "app", IRSA("arn:aws:iam::1:role/a")) "," SA("web", "default", "") "]}");
        ASSERT_UEQ(h.fake.replaced, 2);
        ASSERT_STREQ(h.fake.sa_last, "web/app=arn:aws:iam::1:role/a");
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_SYNCED);
        const char *ev = "{\"type\":\"MODIFIED\",\"object\":" SA(
                "web", "app", IRSA("arn:aws:iam::1:role/b")) "}\n"
                                                             "{\"type\":\"DELETED\",\"object\":" SA(
                                                                     "web", "old", "") "}\n";
        ASSERT_UEQ(kube_watch_receive(h.w, 200, ev, strlen(ev)), strlen(ev));
        ASSERT_UEQ(h.fake.sa_upserts, 1);
        ASSERT_UEQ(h.fake.sa_deletes, 1);
        ASSERT_STREQ(h.fake.sa_last, "web/old=n/a");
        ASSERT_UEQ(h.fake.upserts, 0); /* nothing went to the namespace or pod callbacks */
        respond(&h, 403, "{\"kind\":\"Status\",\"message\":\"serviceaccounts is forbidden\"}");
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_FORBIDDEN);
        ASSERT_UEQ(h.fake.sa_unavailable, 1);
        ASSERT_UEQ(h.fake.unavailable, 0);
        harness_done(&h);
}

TEST(forbidden_pods_are_an_outage_retried_with_backoff) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        respond(&h, 403, "{\"kind\":\"Status\",\"message\":\"pods is forbidden\"}");
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_LISTING);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_BACKOFF);
        ASSERT_STREQ(kube_watch_last_error(h.w), "forbidden (403)");
        run_until_starts(&h, 2);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        harness_done(&h);
}

TEST(unauthorized_refreshes_credentials_retries_at_once_then_backs_off) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        kube_watch_start(h.w);
        respond(&h, 401, NULL);
        ASSERT_UEQ(h.fake.unauthorized, 1);
        ASSERT_UEQ(h.fake.starts, 2);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_LISTING);
        respond(&h, 401, NULL);
        ASSERT_UEQ(h.fake.unauthorized, 2);
        ASSERT_UEQ(h.fake.starts, 2);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_BACKOFF);
        harness_done(&h);
}

TEST(waits_for_credentials_and_resumes_when_they_come) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 0);
        h.fake.start_result = 0;
        kube_watch_start(h.w);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_WAIT_CREDENTIALS);
        h.fake.start_result = 1;
        kube_watch_credentials_ready(h.w, 0);
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_LISTING);
        ASSERT_UEQ(h.fake.starts, 2);

        kube_watch_finished(h.w, &(const KubeResponse){ .error = -ECONNREFUSED });
        ASSERT_EQ(kube_watch_state(h.w), KUBE_WATCH_BACKOFF);
        ASSERT_NOT_NULL(strstr(kube_watch_last_error(h.w), "listing pods"));
        harness_done(&h);
}

TEST(pods_not_refreshed_past_max_stale_are_not_vouched_for_until_a_complete_list) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 1); /* any failure while the server answers is too long */
        kube_watch_start(h.w);
        sync_pods(&h);
        ASSERT_UEQ(h.fake.vouch_calls, 0);
        /* the server answers, but not with the watch: the clock starts and runs out */
        respond(&h, 500, "{\"kind\":\"Status\",\"message\":\"etcd is sad\"}");
        run_pending(&h);
        for (unsigned i = 0; i < 20 && kube_watch_sync_state(h.w) != KUBE_SYNC_STALE; i++)
                ASSERT_TRUE(sd_event_run(h.event, 10 * USEC_PER_MSEC) >= 0);
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_STALE);
        ASSERT_FALSE(h.fake.vouched);

        /* the watch comes back after the backoff, but only a complete list vouches again */
        run_until_starts(&h, 3);
        respond(&h, 410, NULL);
        ASSERT_EQ(h.fake.kind, KUBE_TRANSFER_LIST);
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_STALE);
        respond(&h, 200, "{\"metadata\":{\"resourceVersion\":\"200\"},\"items\":[]}");
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_SYNCED);
        ASSERT_TRUE(h.fake.vouched);
        ASSERT_UEQ(h.fake.vouch_calls, 2);
        harness_done(&h);
}

TEST(unreachable_server_starts_no_staleness_clock) {
        Harness h;

        harness_init(&h, KUBE_RESOURCE_PODS, 1);
        kube_watch_start(h.w);
        sync_pods(&h);
        kube_watch_finished(h.w,
                            &(const KubeResponse){ .error = -ECONNREFUSED, .transport_error = "refused" });
        run_pending(&h);
        ASSERT_EQ(kube_watch_sync_state(h.w), KUBE_SYNC_SYNCED);
        ASSERT_STREQ(kube_watch_last_error(h.w), "watching pods: refused");
        ASSERT_UEQ(h.fake.vouch_calls, 0);
        harness_done(&h);
}

TEST(state_names_cover_every_state) {
        for (KubeSyncState s = 0; s < _KUBE_SYNC_STATE_MAX; s++)
                ASSERT_NOT_NULL(kube_sync_state_to_string(s));
        for (KubeWatchState s = 0; s < _KUBE_WATCH_STATE_MAX; s++)
                ASSERT_NOT_NULL(kube_watch_state_to_string(s));
        ASSERT_NULL(kube_sync_state_to_string(_KUBE_SYNC_STATE_MAX));
}
