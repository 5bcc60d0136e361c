/* SPDX-License-Identifier: BSD-3-Clause */
/* pod-roles over the real Store and credential cache, with STS faked at the cache's boundary: what
 * one loop turn's pass does when pods and namespaces change, and what it does not do before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "creds.h"
#include "fake-sts.h"
#include "pod-roles.h"
#include "roles.h"
#include "store.h"
#include "tap.h"

#define BASE "arn:aws:iam::123456789012:role/"

static const CredsSettings settings = {
        .session_ttl = 30 * USEC_PER_MINUTE,
        .error_ttl = 0,
        .sts_rate = 100,
        .sts_burst = 100,
};

typedef struct World {
        FakeSts fake;
        Store *store;
        Roles *roles;
        Creds *creds;
        PodRoles *pod_roles;
        StrBuf woken; /* the IPs the last pass woke, in order */
} World;

static void world_init_full(World *w, bool restrictions, unsigned tags, bool pod_names) {
        *w = (World){};
        w->creds = new_cache(&w->fake, &settings, NULL);
        ASSERT_OK(store_new(&w->store));
        ASSERT_OK(roles_new(BASE, NULL, restrictions, NAMESPACE_RESTRICTION_GLOB, &w->roles));
        ASSERT_OK(
                pod_roles_new(&(const PodRolesDeps){ .store = w->store,
                                                     .roles = w->roles,
                                                     .creds = w->creds,
                                                     .prefetch = true,
                                                     .session_tags = { .tags = tags, .cluster_name = "c1" },
                                                     .pod_session_names = pod_names },
                              &w->pod_roles));
}

static void world_init_tags(World *w, bool restrictions, unsigned tags) {
        world_init_full(w, restrictions, tags, false);
}

static void world_init(World *w, bool restrictions) {
        world_init_tags(w, restrictions, 0);
}

static void world_done(World *w) {
        w->pod_roles = pod_roles_free(w->pod_roles);
        w->creds = creds_free(w->creds);
        w->store = store_free(w->store);
        w->roles = roles_free(w->roles);
        strbuf_done(&w->woken);
}

static StorePod *pod(const char *uid, const char *ns, const char *ip, const char *role) {
        StorePod *p = NULL;

        ASSERT_OK(store_pod_new(uid, ns, uid, &p));
        free(p->phase);
        p->phase = strdup("Running");
        if (role)
                p->role = strdup(role);
        ASSERT_OK(store_pod_add_ip(p, ip));
        return p;
}

/* A request waiting for its pod, as imds-service keeps one: woken for its IP, it looks the pod up,
 * takes pod-roles' decision and asks the cache. */
typedef struct Waiting {
        World *world;
        const char *ip;
        bool asked;       /* it found its pod and asked the cache */
        unsigned answers; /* credentials handed to it */
        char role[128];   /* the role it asked for */
} Waiting;

static void on_creds(Credentials *creds, const StsError *error, void *userdata) {
        Waiting *q = userdata;

        ASSERT_NOT_NULL(creds);
        q->answers++;
}

static void waiting_look(Waiting *q) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        Credentials *creds = NULL;
        StsError *error = NULL;
        StoreLookup l;

        ASSERT_OK(store_lookup_ip(q->world->store, q->ip, &l));
        if (l.status != STORE_LOOKUP_FOUND) {
                store_lookup_done(&l);
                return; /* keeps waiting */
        }
        ASSERT_OK(pod_roles_decide(q->world->pod_roles, l.pod, &d));
        ASSERT_EQ(d.verdict, POD_ROLE_ALLOWED);
        snprintf(q->role, sizeof q->role, "%s", d.role_arn);
        q->asked = true;
        CredsRequest req = { .role_arn = d.role_arn,
                             .external_id = d.external_id,
                             .caller_ip = q->ip,
                             .deadline = q->world->fake.now + 5 * USEC_PER_SEC,
                             .done = on_creds,
                             .userdata = q };
        int r = creds_get(q->world->creds, &req, &creds, &error, NULL);
        if (r == 0) {
                q->answers++;
                credentials_unref(creds);
        } else
                ASSERT_EQ(r, CREDS_WAIT);
        store_lookup_done(&l);
}

typedef struct Wake {
        World *world;
        Waiting *waiting; /* may be NULL */
} Wake;

static void on_wake(const char *ip, void *userdata) {
        Wake *k = userdata;

        strbuf_appendf(&k->world->woken, "%s ", strna(ip));
        if (k->waiting && (!ip || streq(ip, k->waiting->ip)))
                waiting_look(k->waiting);
}

/* One loop turn's pass. */
static void turn(World *w, Waiting *q) {
        Wake k = { w, q };

        strbuf_reset(&w->woken);
        (void) pod_roles_dispatch(w->pod_roles, on_wake, &k);
}

/* The cache's in-use count of a role (from its /debug document), -1 when it has no entry. */
static int in_use(World *w, const char *role) {
        _cleanup_strbuf_ StrBuf b = {};
        cJSON *doc, *e;
        int n = -1;

        ASSERT_OK(creds_debug_json(w->creds, &b));
        doc = cJSON_Parse(strbuf_str(&b));
        ASSERT_NOT_NULL(doc);
        cJSON_ArrayForEach(e, doc) if (streq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "roleArn")), role))
                n = (int) cJSON_GetNumberValue(cJSON_GetObjectItem(e, "inUse"));
        cJSON_Delete(doc);
        return n;
}

TEST(pod_moves_from_role_a_to_b_a_released_b_prefetched_waiting_request_answered) {
        World w;

        world_init(&w, false);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        /* the store only recorded it: no decision, no STS call until the pass */
        ASSERT_EQ(pod_roles_size(w.pod_roles), 0);
        ASSERT_EQ(w.fake.calls, 0);
        turn(&w, NULL);
        ASSERT_TRUE(pod_roles_in_use(w.pod_roles, "u1"));
        ASSERT_EQ(in_use(&w, BASE "a"), 1);
        ASSERT_EQ(w.fake.calls, 1); /* a prefetched */
        ASSERT_STREQ(strbuf_str(&w.woken), "10.0.0.1 ");
        fake_succeed_all(&w.fake, w.creds);

        /* the annotation moves to b; a request from the pod waits for the pass (as one that
         * arrived while the store could not answer would) */
        Waiting q = { .world = &w, .ip = "10.0.0.1" };
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "b")));
        ASSERT_EQ(in_use(&w, BASE "a"), 1);
        ASSERT_EQ(w.fake.calls, 1);
        turn(&w, &q);
        ASSERT_EQ(in_use(&w, BASE "a"), 0);
        ASSERT_EQ(in_use(&w, BASE "b"), 1);
        ASSERT_EQ(w.fake.calls, 2);
        ASSERT_STREQ(w.fake.last_session + strlen(w.fake.last_session) - 2, "-b");
        /* woken after the decision moved: it asks for b and joins the prefetch (one STS call) */
        ASSERT_TRUE(q.asked);
        ASSERT_STREQ(q.role, BASE "b");
        ASSERT_EQ(q.answers, 0);
        fake_succeed_all(&w.fake, w.creds);
        ASSERT_EQ(q.answers, 1);
        ASSERT_EQ(w.fake.calls, 2);

        /* the pod goes: its use goes with it, and nothing waits on an IP nobody holds */
        ASSERT_OK(store_pod_remove(w.store, "u1"));
        turn(&w, NULL);
        ASSERT_EQ(in_use(&w, BASE "b"), 0);
        ASSERT_EQ(pod_roles_size(w.pod_roles), 0);
        ASSERT_STREQ(strbuf_str(&w.woken), "");
        world_done(&w);
}

TEST(annotation_churn_within_one_turn_costs_one_decision_and_one_prefetch) {
        World w;

        world_init(&w, false);
        for (int i = 0; i < 100; i++)
                ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", i % 2 ? "b" : "a")));
        turn(&w, NULL);
        ASSERT_EQ(w.fake.calls, 1);
        ASSERT_EQ(in_use(&w, BASE "b"), 1);
        ASSERT_EQ(in_use(&w, BASE "a"), -1); /* never told: no entry */
        ASSERT_STREQ(strbuf_str(&w.woken), "10.0.0.1 ");
        world_done(&w);
}

TEST(only_the_requests_on_changed_ips_are_woken) {
        World w;
        Waiting q = { .world = &w, .ip = "10.0.0.9" };

        world_init(&w, false);
        turn(&w, &q);
        ASSERT_STREQ(strbuf_str(&w.woken), ""); /* nothing changed, nobody woken */
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        ASSERT_OK(store_pod_update(w.store, pod("u2", "web", "10.0.0.2", "a")));
        turn(&w, &q);
        ASSERT_STREQ(strbuf_str(&w.woken), "10.0.0.1 10.0.0.2 ");
        ASSERT_FALSE(q.asked);
        ASSERT_EQ(w.fake.calls, 1); /* one role, one prefetch */
        ASSERT_EQ(in_use(&w, BASE "a"), 2);
        ASSERT_OK(store_pod_update(w.store, pod("u9", "web", "10.0.0.9", "a")));
        turn(&w, &q);
        ASSERT_STREQ(strbuf_str(&w.woken), "10.0.0.9 ");
        ASSERT_TRUE(q.asked);
        fake_succeed_all(&w.fake, w.creds);
        ASSERT_EQ(q.answers, 1);
        /* a stale store changes every answer: every waiting request looks again */
        store_set_pods_unconfirmed(w.store, true);
        turn(&w, NULL);
        ASSERT_STREQ(strbuf_str(&w.woken), "n/a ");
        world_done(&w);
}

TEST(namespace_list_decides_restricted_pods_and_starts_their_use) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        const StoreNamespaceSpec allow[] = { { "web", "[\"a\"]" } };
        const StoreNamespaceSpec deny[] = { { "web", "[\"other\"]" } };
        World w;

        world_init(&w, true);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        turn(&w, NULL);
        /* restrictions and no namespace list yet: denied, not in use, not prefetched */
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u1"), &d));
        ASSERT_EQ(d.verdict, POD_ROLE_NAMESPACE_UNKNOWN);
        pod_role_decision_done(&d);
        ASSERT_FALSE(pod_roles_in_use(w.pod_roles, "u1"));
        ASSERT_EQ(w.fake.calls, 0);

        ASSERT_OK(store_namespaces_replace(w.store, allow, 1));
        turn(&w, NULL);
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u1"), &d));
        ASSERT_EQ(d.verdict, POD_ROLE_ALLOWED);
        pod_role_decision_done(&d);
        ASSERT_TRUE(pod_roles_in_use(w.pod_roles, "u1"));
        ASSERT_EQ(w.fake.calls, 1);

        /* the namespace stops allowing it: the use is given back */
        ASSERT_OK(store_namespaces_replace(w.store, deny, 1));
        turn(&w, NULL);
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u1"), &d));
        ASSERT_EQ(d.verdict, POD_ROLE_DENIED);
        ASSERT_STREQ(d.role_arn, BASE "a");
        ASSERT_EQ(in_use(&w, BASE "a"), 0);
        world_done(&w);
}

TEST(terminating_pod_keeps_its_role_but_gives_back_its_use) {
        World w;
        StorePod *p;

        world_init(&w, false);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        turn(&w, NULL);
        ASSERT_EQ(in_use(&w, BASE "a"), 1);
        p = pod("u1", "web", "10.0.0.1", "a");
        p->terminating = true;
        ASSERT_OK(store_pod_update(w.store, p));
        turn(&w, NULL);
        ASSERT_EQ(in_use(&w, BASE "a"), 0);
        ASSERT_EQ(pod_roles_size(w.pod_roles), 1);
        world_done(&w);
}

TEST(audit_repeats_are_held_back_per_pod_and_changes_pass) {
        LogRatelimit shared = { .interval_usec = 10 * USEC_PER_SEC, .burst = 1000 };
        World w;

        world_init(&w, false);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        turn(&w, NULL);
        ASSERT_TRUE(pod_roles_audit_allow(w.pod_roles, "u1", "issued a", 1000, &shared));
        ASSERT_FALSE(pod_roles_audit_allow(w.pod_roles, "u1", "issued a", 2000, &shared));
        ASSERT_TRUE(pod_roles_audit_allow(w.pod_roles, "u1", "denied a", 3000, &shared));
        ASSERT_TRUE(pod_roles_audit_allow(w.pod_roles, "u1", "denied a", 3000 + POD_ROLES_AUDIT_REPEAT_USEC,
                                          &shared));
        /* a pod the store does not hold has no state of its own: only the shared budget */
        ASSERT_TRUE(pod_roles_audit_allow(w.pod_roles, "nobody", "issued a", 1000, &shared));
        ASSERT_TRUE(pod_roles_audit_allow(w.pod_roles, "nobody", "issued a", 1000, &shared));
        ASSERT_NULL(pod_roles_log_ratelimit(w.pod_roles, "nobody"));
        ASSERT_NOT_NULL(pod_roles_log_ratelimit(w.pod_roles, "u1"));
        world_done(&w);
}

/* namespaces without annotations: with --session-tags pods wait for theirs to be known */
static const StoreNamespaceSpec namespaces[] = { { "web", NULL, NULL }, { "batch", NULL, NULL } };

TEST(namespace_tag_gives_two_namespaces_two_sessions_of_one_role) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        World w;

        world_init_tags(&w, false, (1U << SESSION_TAG_NAMESPACE) | (1U << SESSION_TAG_CLUSTER_NAME));
        ASSERT_OK(store_namespaces_replace(w.store, namespaces, ELEMENTSOF(namespaces)));
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        ASSERT_OK(store_pod_update(w.store, pod("u2", "web", "10.0.0.2", "a")));
        ASSERT_OK(store_pod_update(w.store, pod("u3", "batch", "10.0.0.3", "a")));
        turn(&w, NULL);
        /* one session per (role, namespace): u1 and u2 share theirs */
        ASSERT_EQ(creds_size(w.creds), 2);
        ASSERT_EQ(w.fake.calls, 2);
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u3"), &d));
        ASSERT_STREQ(d.session, "&Tags.member.1.Key=eks-cluster-name&Tags.member.1.Value=c1"
                                "&Tags.member.2.Key=kubernetes-namespace&Tags.member.2.Value=batch"
                                "&TransitiveTagKeys.member.1=eks-cluster-name"
                                "&TransitiveTagKeys.member.2=kubernetes-namespace");
        ASSERT_OK(store_pod_remove(w.store, "u3"));
        turn(&w, NULL);
        ASSERT_EQ(pod_roles_size(w.pod_roles), 2);
        world_done(&w);
}

TEST(pod_tags_give_every_pod_its_own_session) {
        World w;

        world_init_tags(&w, false, SESSION_TAGS_ALL);
        ASSERT_OK(store_namespaces_replace(w.store, namespaces, ELEMENTSOF(namespaces)));
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        ASSERT_OK(store_pod_update(w.store, pod("u2", "web", "10.0.0.2", "a")));
        turn(&w, NULL);
        ASSERT_EQ(creds_size(w.creds), 2);
        ASSERT_NOT_NULL(strstr(w.fake.last_params, "kubernetes-pod-uid&Tags.member.4.Value=u"));
        world_done(&w);
}

TEST(pod_session_names_give_each_pod_its_session_named_after_it) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        World w;

        world_init_full(&w, false, 0, true);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        turn(&w, NULL);
        ASSERT_STREQ(w.fake.last_session, "web.u1");
        ASSERT_OK(store_pod_update(w.store, pod("u2", "web", "10.0.0.2", "a")));
        turn(&w, NULL);
        ASSERT_STREQ(w.fake.last_session, "web.u2");
        ASSERT_EQ(creds_size(w.creds), 2);
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u2"), &d));
        ASSERT_STREQ(d.session_name, "web.u2");
        world_done(&w);
}

TEST(with_session_tags_an_unknown_namespace_waits_for_its_tags) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        const StoreNamespaceSpec known[] = { { "web", NULL, "{\"team\": \"blue\"}" } };
        World w;

        world_init_tags(&w, false, 1U << SESSION_TAG_NAMESPACE);
        ASSERT_OK(store_pod_update(w.store, pod("u1", "web", "10.0.0.1", "a")));
        turn(&w, NULL);
        ASSERT_EQ(w.fake.calls, 0);
        ASSERT_OK(pod_roles_decide(w.pod_roles, store_get_pod(w.store, "u1"), &d));
        ASSERT_EQ(d.verdict, POD_ROLE_NAMESPACE_UNKNOWN);
        pod_role_decision_done(&d);
        ASSERT_OK(store_namespaces_replace(w.store, known, 1));
        turn(&w, NULL);
        ASSERT_EQ(w.fake.calls, 1);
        ASSERT_NOT_NULL(strstr(w.fake.last_params, "Key=team&Tags.member.2.Value=blue"));
        world_done(&w);
}

/* --service-account-roles and --namespace-default-roles with restrictions and --default-role. */
static void world_init_sources(World *w) {
        *w = (World){};
        w->creds = new_cache(&w->fake, &settings, NULL);
        ASSERT_OK(store_new(&w->store));
        ASSERT_OK(roles_new(BASE, "fallback", true, NAMESPACE_RESTRICTION_GLOB, &w->roles));
        ASSERT_OK(pod_roles_new(&(const PodRolesDeps){ .store = w->store,
                                                       .roles = w->roles,
                                                       .creds = w->creds,
                                                       .prefetch = true,
                                                       .service_account_roles = true,
                                                       .namespace_default_roles = true },
                                &w->pod_roles));
}

static StorePod *pod_of(const char *uid, const char *ip, const char *role, const char *sa) {
        StorePod *p = pod(uid, "web", ip, role);
        if (sa)
                ASSERT_NOT_NULL(p->service_account = strdup(sa));
        return p;
}

static void assert_decision(World *w, const char *uid, PodRoleVerdict verdict, const char *role,
                            RoleSource source) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};

        ASSERT_OK(pod_roles_decide(w->pod_roles, store_get_pod(w->store, uid), &d));
        ASSERT_EQ(d.verdict, verdict);
        if (role) {
                ASSERT_STREQ(d.role_arn, role);
                ASSERT_EQ(d.source, source);
        }
}

TEST(roles_from_annotation_then_service_account_then_namespace_default_then_default_role) {
        const StoreNamespaceSpec ns[] = {
                { .name = "web", .annotation = "[\"a\",\"sa-*\",\"ns-def\"]", .default_role = "ns-def" }
        };
        const StoreNamespaceSpec narrow[] = {
                { .name = "web", .annotation = "[\"a\"]", .default_role = "ns-def" }
        };
        const StoreServiceAccountSpec sas[] = { { "web", "app", BASE "sa-1" }, { "web", "default", NULL } };
        World w;

        world_init_sources(&w);
        ASSERT_OK(store_pod_update(w.store, pod_of("u1", "10.0.0.1", NULL, "app")));
        ASSERT_OK(store_pod_update(w.store, pod_of("u2", "10.0.0.2", "a", "app")));
        ASSERT_OK(store_pod_update(w.store, pod_of("u3", "10.0.0.3", NULL, NULL)));
        ASSERT_OK(store_namespaces_replace(w.store, ns, 1));
        turn(&w, NULL);
        /* ServiceAccounts not listed: unannotated pods get nothing, not even --default-role */
        assert_decision(&w, "u1", POD_ROLE_SERVICE_ACCOUNTS_LISTING, NULL, 0);
        assert_decision(&w, "u3", POD_ROLE_SERVICE_ACCOUNTS_LISTING, NULL, 0);
        assert_decision(&w, "u2", POD_ROLE_ALLOWED, BASE "a", ROLE_SOURCE_ANNOTATION);
        ASSERT_FALSE(pod_roles_in_use(w.pod_roles, "u1"));

        ASSERT_OK(store_service_accounts_replace(w.store, sas, ELEMENTSOF(sas)));
        turn(&w, NULL);
        assert_decision(&w, "u1", POD_ROLE_ALLOWED, BASE "sa-1", ROLE_SOURCE_SERVICE_ACCOUNT);
        assert_decision(&w, "u2", POD_ROLE_ALLOWED, BASE "a", ROLE_SOURCE_ANNOTATION);
        assert_decision(&w, "u3", POD_ROLE_ALLOWED, BASE "ns-def", ROLE_SOURCE_NAMESPACE_DEFAULT);
        ASSERT_TRUE(pod_roles_in_use(w.pod_roles, "u1"));

        /* the ServiceAccount names another role: the pod's key follows at the next turn */
        ASSERT_OK(store_service_account_update(
                w.store, &(const StoreServiceAccountSpec){ "web", "app", BASE "sa-2" }));
        turn(&w, NULL);
        assert_decision(&w, "u1", POD_ROLE_ALLOWED, BASE "sa-2", ROLE_SOURCE_SERVICE_ACCOUNT);
        ASSERT_EQ(in_use(&w, BASE "sa-1"), 0);
        ASSERT_EQ(in_use(&w, BASE "sa-2"), 1);

        /* restrictions hold for both sources */
        ASSERT_OK(store_namespaces_replace(w.store, narrow, 1));
        turn(&w, NULL);
        assert_decision(&w, "u1", POD_ROLE_DENIED, BASE "sa-2", ROLE_SOURCE_SERVICE_ACCOUNT);
        assert_decision(&w, "u3", POD_ROLE_DENIED, BASE "ns-def", ROLE_SOURCE_NAMESPACE_DEFAULT);

        /* no namespace default: --default-role, which restrictions let through as kube2iam does */
        ASSERT_OK(store_namespace_update(
                w.store, &(const StoreNamespaceSpec){ .name = "web", .annotation = "[\"a\"]" }));
        turn(&w, NULL);
        assert_decision(&w, "u3", POD_ROLE_ALLOWED, BASE "fallback", ROLE_SOURCE_DEFAULT);

        /* the namespace is gone: its default may be meant, so no role rather than --default-role */
        ASSERT_OK(store_namespace_remove(w.store, "web"));
        turn(&w, NULL);
        assert_decision(&w, "u3", POD_ROLE_NAMESPACE_UNKNOWN, NULL, 0);

        /* the ServiceAccounts may no longer be read: unannotated pods get nothing */
        store_service_accounts_unavailable(w.store);
        turn(&w, NULL);
        assert_decision(&w, "u1", POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN, NULL, 0);
        ASSERT_FALSE(pod_roles_in_use(w.pod_roles, "u1"));
        world_done(&w);
}
