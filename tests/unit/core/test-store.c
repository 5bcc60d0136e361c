/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store.h"
#include "string-util.h"
#include "tap.h"

static StorePod *pod(const char *uid, const char *name, const char *ip, const char *role) {
        StorePod *p = NULL;

        if (store_pod_new(uid, "default", name, &p) < 0)
                return NULL;
        free(p->phase);
        p->phase = strdup("Running");
        if (ip && store_pod_add_ip(p, ip) < 0)
                return store_pod_free(p);
        p->role = role ? strdup(role) : NULL;
        return p;
}

/* The role a request from ip would get, or "<none>". */
static const char *role_for(Store *s, const char *ip) {
        static char buf[256];
        StoreLookup l;

        if (store_lookup_ip(s, ip, &l) < 0)
                return "<oom>";
        snprintf(buf, sizeof buf, "%s", l.status == STORE_LOOKUP_FOUND ? strna(l.pod->role) : "<none>");
        store_lookup_done(&l);
        return buf;
}

typedef struct Trace {
        StrBuf b;
} Trace;

static void on_pod(Store *s, StorePodEvent ev, const StorePod *p, void *userdata) {
        static const char *const names[] = { "added", "changed", "removed" };
        Trace *t = userdata;
        /* the store has applied the change before telling: a removed pod is not served any more */
        if (ev == STORE_POD_REMOVED)
                for (char **ip = p->ips; ip && *ip; ip++) {
                        StoreLookup l;
                        ASSERT_OK(store_lookup_ip(s, *ip, &l));
                        ASSERT_TRUE(l.status != STORE_LOOKUP_FOUND || l.pod != p);
                        store_lookup_done(&l);
                }
        strbuf_appendf(&t->b, "%s:%s ", names[ev], p->name);
}

static void on_ip(Store *s, const char *ip, void *userdata) {
        Trace *t = userdata;
        strbuf_appendf(&t->b, "ip:%s ", strna(ip));
}

/* What the store recorded since the last call, as the loop's once-per-turn pass plays it. */
static const char *played(Store *s, Trace *t) {
        const StoreChangeHandler h = { .pod = on_pod, .ip = on_ip, .userdata = t };

        strbuf_reset(&t->b);
        store_dispatch_changes(s, &h);
        return strbuf_str(&t->b);
}

static void count_hook(Store *s, void *userdata) {
        (*(unsigned *) userdata)++;
}

TEST(store_lookup_by_every_pod_ip_and_kube2iam_not_found_text) {
        _cleanup_(store_freep) Store *s = NULL;
        StorePod *p = pod("u1", "web", "10.0.0.5", "role-a");
        StoreLookup l;

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_pod_add_ip(p, "fd00::5"));
        ASSERT_OK(store_pod_update(s, p));
        ASSERT_STREQ(role_for(s, "10.0.0.5"), "role-a");
        ASSERT_STREQ(role_for(s, "fd00::5"), "role-a");
        ASSERT_OK(store_lookup_ip(s, "10.0.0.6", &l));
        ASSERT_EQ(l.status, STORE_LOOKUP_NOT_FOUND);
        ASSERT_STREQ(l.error, "pod with specificed IP \"10.0.0.6\" not found");
        store_lookup_done(&l);
        ASSERT_EQ(store_n_pods(s), 1);
}

TEST(store_terminal_phase_and_host_network_pods_are_not_indexed) {
        _cleanup_(store_freep) Store *s = NULL;
        StorePod *done = pod("u1", "job", "10.0.0.7", "job-role");
        StorePod *hostnet = pod("u2", "ds", "10.0.0.1", "node-role");
        StorePod *pending = pod("u3", "starting", "10.0.0.8", "p-role");

        ASSERT_OK(store_new(&s));
        free(done->phase);
        done->phase = strdup("Succeeded");
        hostnet->host_network = true;
        free(pending->phase);
        pending->phase = strdup("Pending");
        ASSERT_OK(store_pod_update(s, done));
        ASSERT_OK(store_pod_update(s, hostnet));
        ASSERT_OK(store_pod_update(s, pending));
        ASSERT_STREQ(role_for(s, "10.0.0.7"), "<none>");
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "<none>");
        ASSERT_STREQ(role_for(s, "10.0.0.8"),
                     "p-role"); /* Pending pods with an IP are served, as in kube2iam */
        ASSERT_EQ(store_n_pods(s), 3);

        /* a pod that finishes leaves the index */
        StorePod *p = pod("u3", "starting", "10.0.0.8", "p-role");
        free(p->phase);
        p->phase = strdup("Failed");
        ASSERT_OK(store_pod_update(s, p));
        ASSERT_STREQ(role_for(s, "10.0.0.8"), "<none>");
}

TEST(store_pod_ip_reuse_never_serves_old_role) {
        _cleanup_(store_freep) Store *s = NULL;
        StoreLookup l;

        ASSERT_OK(store_new(&s));
        /* order 1: the new pod arrives while the old one is terminating: the live one wins */
        StorePod *old = pod("old", "old", "10.0.0.9", "old-role");
        old->terminating = true;
        ASSERT_OK(store_pod_update(s, old));
        ASSERT_STREQ(role_for(s, "10.0.0.9"), "old-role"); /* still alive: it may still ask */
        ASSERT_OK(store_pod_update(s, pod("new", "new", "10.0.0.9", "new-role")));
        ASSERT_STREQ(role_for(s, "10.0.0.9"), "new-role");
        ASSERT_OK(store_pod_remove(s, "old"));
        ASSERT_STREQ(role_for(s, "10.0.0.9"), "new-role");
        ASSERT_OK(store_pod_remove(s, "new"));

        /* order 2: the new pod arrives before the old one's deletionTimestamp: ambiguous, no answer */
        ASSERT_OK(store_pod_update(s, pod("old2", "a", "10.0.0.10", "old-role")));
        ASSERT_OK(store_pod_update(s, pod("new2", "b", "10.0.0.10", "new-role")));
        ASSERT_OK(store_lookup_ip(s, "10.0.0.10", &l));
        ASSERT_EQ(l.status, STORE_LOOKUP_AMBIGUOUS);
        ASSERT_NULL(l.pod);
        ASSERT_TRUE(streq(l.error, "2 pods ([a b]) with the ip 10.0.0.10 indexed") ||
                    streq(l.error, "2 pods ([b a]) with the ip 10.0.0.10 indexed"));
        store_lookup_done(&l);
        /* then the old one's DELETED: only the new one remains */
        ASSERT_OK(store_pod_remove(s, "old2"));
        ASSERT_STREQ(role_for(s, "10.0.0.10"), "new-role");

        /* order 3: the old pod's DELETED is missed and a re-list without it is applied */
        ASSERT_OK(store_pod_update(s, pod("old3", "c", "10.0.0.11", "old-role")));
        StorePod **list = calloc(2, sizeof(StorePod *));
        list[0] = pod("new2", "b", "10.0.0.10", "new-role");
        list[1] = pod("new3", "d", "10.0.0.11", "new-role");
        ASSERT_OK(store_pods_replace(s, list, 2));
        ASSERT_STREQ(role_for(s, "10.0.0.11"), "new-role");
        ASSERT_NULL(store_get_pod(s, "old3"));

        /* two terminating pods on one IP and no live one: ambiguous */
        StorePod *t1 = pod("t1", "t1", "10.0.0.12", "x"), *t2 = pod("t2", "t2", "10.0.0.12", "y");
        t1->terminating = t2->terminating = true;
        ASSERT_OK(store_pod_update(s, t1));
        ASSERT_OK(store_pod_update(s, t2));
        ASSERT_STREQ(role_for(s, "10.0.0.12"), "<none>");
}

TEST(store_relist_replaces_state_and_records_like_events) {
        _cleanup_(store_freep) Store *s = NULL;
        Trace t = {};
        unsigned hooked = 0;

        ASSERT_OK(store_new(&s));
        store_set_change_hook(s, count_hook, &hooked);
        ASSERT_OK(store_pod_update(s, pod("u1", "a", "10.1.0.1", "r1")));
        ASSERT_OK(store_pod_update(s, pod("u2", "b", "10.1.0.2", "r2")));
        /* a MODIFIED that changes nothing a decision uses records nothing */
        ASSERT_OK(store_pod_update(s, pod("u2", "b", "10.1.0.2", "r2")));
        /* the hook hears of the first change only; nothing was played yet */
        ASSERT_EQ(hooked, 1);
        ASSERT_TRUE(store_has_changes(s));
        ASSERT_STREQ(played(s, &t), "added:a added:b ip:10.1.0.1 ip:10.1.0.2 ");
        ASSERT_FALSE(store_has_changes(s));
        ASSERT_STREQ(played(s, &t), "");

        StorePod **list = calloc(2, sizeof(StorePod *));
        list[0] = pod("u2", "b", "10.1.0.2", "r2-changed");
        list[1] = pod("u3", "c", "10.1.0.1", "r3"); /* takes over a's IP */
        ASSERT_OK(store_pods_replace(s, list, 2));
        ASSERT_EQ(hooked, 2);
        ASSERT_STREQ(played(s, &t), "removed:a changed:b added:c ip:10.1.0.2 ip:10.1.0.1 ");
        ASSERT_STREQ(role_for(s, "10.1.0.1"), "r3");
        ASSERT_STREQ(role_for(s, "10.1.0.2"), "r2-changed");
        ASSERT_EQ(store_n_pods(s), 2);

        /* an ambiguous IP settles when one of its pods goes: the waiting request hears of it */
        ASSERT_OK(store_pod_update(s, pod("u4", "d", "10.1.0.1", "r4")));
        ASSERT_STREQ(role_for(s, "10.1.0.1"), "<none>");
        (void) played(s, &t);
        ASSERT_OK(store_pod_remove(s, "u3"));
        ASSERT_STREQ(played(s, &t), "removed:c ip:10.1.0.1 ");
        ASSERT_STREQ(role_for(s, "10.1.0.1"), "r4");

        /* a pod replaced and removed within one turn: every step is played, the pods still valid */
        ASSERT_OK(store_pod_update(s, pod("u5", "e", "10.1.0.5", "r5")));
        ASSERT_OK(store_pod_update(s, pod("u5", "e2", "10.1.0.5", "r5")));
        ASSERT_OK(store_pod_remove(s, "u5"));
        ASSERT_STREQ(played(s, &t), "added:e changed:e2 removed:e2 ip:10.1.0.5 ");

        /* pods no longer confirmed: every IP's answer changes */
        store_set_pods_unconfirmed(s, true);
        ASSERT_STREQ(played(s, &t), "ip:n/a ");
        store_set_pods_unconfirmed(s, false);

        ASSERT_OK(store_pods_replace(s, NULL, 0));
        ASSERT_EQ(store_n_pods(s), 0);
        ASSERT_STREQ(role_for(s, "10.1.0.1"), "<none>");
        strbuf_done(&t.b);
}

TEST(store_namespace_allowed_roles_parsed_and_garbage_allows_nothing) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char **roles = NULL;
        const StoreNamespace *n;
        int saved = log_get_max_level();

        ASSERT_OK(store_new(&s));
        ASSERT_FALSE(store_namespaces_known(s));
        ASSERT_OK(store_namespace_update(
                s, &(const StoreNamespaceSpec){ "a", "[\"role-1\",\"arn:aws:iam::1:role/x*\"]" }));
        ASSERT_NULL(store_get_namespace(s, "a")); /* not before a full list */
        StoreNamespaceSpec specs[] = {
                { "a", "[\"role-1\",\"arn:aws:iam::1:role/x*\"]" },
                { "b", NULL },
                { "c", "role-1" },
                { "d", "[\"ok\", 5]" },
        };
        log_set_max_level(LOG_EMERG);
        ASSERT_OK(store_namespaces_replace(s, specs, ELEMENTSOF(specs)));
        log_set_max_level(saved);
        ASSERT_TRUE(store_namespaces_known(s));
        n = store_get_namespace(s, "a");
        ASSERT_NOT_NULL(n);
        ASSERT_STREQ(store_namespace_name(n), "a");
        ASSERT_OK(store_namespace_list(n, STORE_NAMESPACE_ALLOWED_ROLES, &roles));
        ASSERT_EQ(strv_length(roles), 2);
        ASSERT_STREQ(roles[1], "arn:aws:iam::1:role/x*");
        roles = mfree(roles);
        ASSERT_EQ(store_namespace_count(store_get_namespace(s, "b"), STORE_NAMESPACE_ALLOWED_ROLES), 0);
        ASSERT_FALSE(store_namespace_roles_declared(store_get_namespace(s, "b")));
        ASSERT_EQ(store_namespace_count(store_get_namespace(s, "c"), STORE_NAMESPACE_ALLOWED_ROLES), 0);
        ASSERT_TRUE(store_namespace_invalid(store_get_namespace(s, "c"), STORE_NAMESPACE_ALLOWED_ROLES));
        ASSERT_EQ(store_namespace_count(store_get_namespace(s, "d"), STORE_NAMESPACE_ALLOWED_ROLES), 0);
        ASSERT_OK(store_namespace_update(s, &(const StoreNamespaceSpec){ "b", "[\"new\"]" }));
        ASSERT_OK(store_namespace_list(store_get_namespace(s, "b"), STORE_NAMESPACE_ALLOWED_ROLES, &roles));
        ASSERT_STREQ(roles[0], "new");
        ASSERT_OK(store_namespace_remove(s, "b"));
        ASSERT_NULL(store_get_namespace(s, "b"));
        ASSERT_EQ(store_n_namespaces(s), 3);

        /* credentials lost the right to read namespaces: nothing is known, restrictions deny */
        store_namespaces_unavailable(s);
        ASSERT_FALSE(store_namespaces_known(s));
        ASSERT_NULL(store_get_namespace(s, "a"));
}

static void on_namespace(Store *s, const char *name, void *userdata) {
        Trace *t = userdata;
        strbuf_appendf(&t->b, "ns:%s ", strna(name));
}

static const char *played_namespaces(Store *s, Trace *t) {
        const StoreChangeHandler h = { .namespace = on_namespace, .ip = on_ip, .userdata = t };

        strbuf_reset(&t->b);
        store_dispatch_changes(s, &h);
        return strbuf_str(&t->b);
}

TEST(store_namespace_record_changes_only_when_what_the_annotations_say_changes) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char **roles = NULL, **tags = NULL, **policies = NULL;
        StoreNamespaceSpec specs[] = { { "a", "[\"r1\", \"\", \"r2\"]", "{\"team\": \"x\", \"cost\": \"\"}",
                                         "[\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]" },
                                       { "b", "[]" } };
        const StoreNamespace *a;
        Trace t = {};

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_namespaces_replace(s, specs, ELEMENTSOF(specs)));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:n/a "); /* the list became known: all */
        a = store_get_namespace(s, "a");
        /* the lists keep their order and their empty strings; tags sorted by key */
        ASSERT_OK(store_namespace_list(a, STORE_NAMESPACE_ALLOWED_ROLES, &roles));
        ASSERT_EQ(strv_length(roles), 3);
        ASSERT_STREQ(roles[1], "");
        ASSERT_STREQ(roles[2], "r2");
        ASSERT_OK(store_namespace_list(a, STORE_NAMESPACE_SESSION_TAGS, &tags));
        ASSERT_EQ(strv_length(tags), 4);
        ASSERT_STREQ(tags[0], "cost");
        ASSERT_STREQ(tags[1], "");
        ASSERT_OK(store_namespace_list(a, STORE_NAMESPACE_SESSION_POLICIES, &policies));
        ASSERT_STREQ(policies[0], "arn:aws:iam::aws:policy/ReadOnlyAccess");
        ASSERT_NULL(policies[1]);
        ASSERT_TRUE(store_namespace_roles_declared(store_get_namespace(s, "b")));
        ASSERT_EQ(store_namespace_count(store_get_namespace(s, "b"), STORE_NAMESPACE_ALLOWED_ROLES), 0);

        /* the same lists written differently: the record stays, nothing is recorded */
        ASSERT_OK(store_namespace_update(
                s,
                &(const StoreNamespaceSpec){ "a", "[ \"r1\",\"\",\"r2\" ]", "{\"cost\":\"\",\"team\":\"x\"}",
                                             "[\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]" }));
        ASSERT_TRUE(store_get_namespace(s, "a") == a);
        ASSERT_FALSE(store_has_changes(s));
        /* a tag changes: a new record, the namespace's pods are looked at again */
        ASSERT_OK(store_namespace_update(
                s,
                &(const StoreNamespaceSpec){ "a", "[\"r1\",\"\",\"r2\"]", "{\"cost\":\"1\",\"team\":\"x\"}",
                                             "[\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]" }));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:a ");
        ASSERT_FALSE(store_namespace_invalid(store_get_namespace(s, "a"), STORE_NAMESPACE_SESSION_TAGS));
        /* "[]" and an absent annotation both allow nothing, but are not the same record */
        ASSERT_OK(store_namespace_update(s, &(const StoreNamespaceSpec){ "b" }));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:b ");
        ASSERT_FALSE(store_namespace_roles_declared(store_get_namespace(s, "b")));
        strbuf_done(&t.b);
}

TEST(store_keeps_service_accounts_naming_a_role_and_records_their_namespace) {
        _cleanup_(store_freep) Store *s = NULL;
        Trace t = {};
        const StoreServiceAccountSpec list[] = { { "web", "app", "arn:aws:iam::1:role/app" },
                                                 { "web", "default", NULL },
                                                 { "db", "pg", "" } };
        const StoreServiceAccountSpec relist[] = { { "web", "default", NULL } };

        ASSERT_OK(store_new(&s));
        ASSERT_EQ(store_service_accounts_state(s), STORE_SERVICE_ACCOUNTS_LISTING);
        ASSERT_OK(store_service_accounts_replace(s, list, ELEMENTSOF(list)));
        ASSERT_EQ(store_service_accounts_state(s), STORE_SERVICE_ACCOUNTS_KNOWN);
        /* the first list: every pod is decided again and every waiting request looks again */
        ASSERT_STREQ(played_namespaces(s, &t), "ns:n/a ip:n/a ");
        ASSERT_EQ(store_n_service_accounts(s), 1U);
        ASSERT_STREQ(store_service_account_role(s, "web", "app"), "arn:aws:iam::1:role/app");
        ASSERT_NULL(store_service_account_role(s, "web", "default"));
        ASSERT_NULL(store_service_account_role(s, "db", "pg"));

        /* a new role, a role added elsewhere, one unchanged: only what changed is recorded */
        ASSERT_OK(store_service_account_update(
                s, &(const StoreServiceAccountSpec){ "web", "app", "arn:aws:iam::1:role/v2" }));
        ASSERT_OK(store_service_account_update(
                s, &(const StoreServiceAccountSpec){ "db", "pg", "arn:aws:iam::1:role/pg" }));
        ASSERT_OK(store_service_account_update(
                s, &(const StoreServiceAccountSpec){ "db", "pg", "arn:aws:iam::1:role/pg" }));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:web ns:db ");
        ASSERT_STREQ(store_service_account_role(s, "web", "app"), "arn:aws:iam::1:role/v2");

        /* the annotation removed, then a re-list without db/pg: both forgotten */
        ASSERT_OK(store_service_account_update(s, &(const StoreServiceAccountSpec){ "web", "app", NULL }));
        ASSERT_OK(store_service_accounts_replace(s, relist, ELEMENTSOF(relist)));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:web ns:db ");
        ASSERT_EQ(store_n_service_accounts(s), 0U);
        ASSERT_ERROR(store_service_account_remove(s, "", "x"), -EINVAL);
        ASSERT_OK(store_service_account_remove(s, "web", "gone"));

        /* the credentials lose the right to read them: nothing is known, every pod looks again */
        ASSERT_OK(store_service_account_update(s, &(const StoreServiceAccountSpec){ "web", "app", "r" }));
        store_service_accounts_unavailable(s);
        ASSERT_EQ(store_service_accounts_state(s), STORE_SERVICE_ACCOUNTS_FORBIDDEN);
        ASSERT_NULL(store_service_account_role(s, "web", "app"));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:n/a ip:n/a ");
        strbuf_done(&t.b);
}

TEST(store_namespace_default_role_change_is_recorded) {
        _cleanup_(store_freep) Store *s = NULL;
        Trace t = {};

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_namespaces_replace(s, NULL, 0));
        (void) played_namespaces(s, &t);
        ASSERT_OK(store_namespace_update(
                s, &(const StoreNamespaceSpec){ .name = "web", .default_role = "r1" }));
        ASSERT_STREQ(store_namespace_default_role(store_get_namespace(s, "web")), "r1");
        ASSERT_STREQ(played_namespaces(s, &t), "ns:web ");
        ASSERT_OK(store_namespace_update(
                s, &(const StoreNamespaceSpec){ .name = "web", .default_role = "r1" }));
        ASSERT_STREQ(played_namespaces(s, &t), "");
        /* "" is no default role */
        ASSERT_OK(
                store_namespace_update(s, &(const StoreNamespaceSpec){ .name = "web", .default_role = "" }));
        ASSERT_NULL(store_namespace_default_role(store_get_namespace(s, "web")));
        ASSERT_STREQ(played_namespaces(s, &t), "ns:web ");
        strbuf_done(&t.b);
}

TEST(store_debug_json_has_kube2iam_shape_with_sorted_keys) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char *j = NULL;
        StoreNamespaceSpec specs[] = { { "zeta", "[\"r\"]" }, { "alpha", NULL } };

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_pod_update(s, pod("u1", "a", "10.0.0.2", "role-a")));
        ASSERT_OK(store_pod_update(s, pod("u2", "b", "10.0.0.1", NULL)));
        ASSERT_OK(store_pod_update(s, pod("u3", "c", "10.0.0.3", "x")));
        ASSERT_OK(store_pod_update(s, pod("u4", "d", "10.0.0.3", "y"))); /* ambiguous: left out */
        ASSERT_OK(store_namespaces_replace(s, specs, 2));
        ASSERT_OK(store_debug_json(s, &j));
        ASSERT_STREQ(j, "{\"namespaceByIP\":{\"10.0.0.1\":\"default\",\"10.0.0.2\":\"default\"},"
                        "\"rolesByIP\":{\"10.0.0.1\":\"\",\"10.0.0.2\":\"role-a\"},"
                        "\"rolesByNamespace\":{\"alpha\":null,\"zeta\":[\"r\"]}}");
}

TEST(store_debug_json_shows_an_empty_allowed_list_as_empty_not_null) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char *j = NULL;
        StoreNamespaceSpec specs[] = {
                { "empty", "[]" }, { "garbage", "{" }, { "none", NULL }, { "blank", "" }
        };

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_namespaces_replace(s, specs, ELEMENTSOF(specs)));
        ASSERT_OK(store_debug_json(s, &j));
        ASSERT_NOT_NULL(strstr(j, "\"rolesByNamespace\":{\"blank\":null,\"empty\":[],\"garbage\":null,"
                                  "\"none\":null}"));
}

TEST(store_many_pods_and_namespaces_grow_the_tables) {
        _cleanup_(store_freep) Store *s = NULL;
        char uid[32], ip[32];

        ASSERT_OK(store_new(&s));
        for (int i = 0; i < 5000; i++) {
                snprintf(uid, sizeof uid, "uid-%d", i);
                snprintf(ip, sizeof ip, "10.2.%d.%d", i / 250, i % 250);
                ASSERT_OK(store_pod_update(s, pod(uid, uid, ip, uid)));
        }
        for (int i = 0; i < 5000; i += 2) {
                snprintf(uid, sizeof uid, "uid-%d", i);
                ASSERT_OK(store_pod_remove(s, uid));
        }
        ASSERT_EQ(store_n_pods(s), 2500);
        ASSERT_STREQ(role_for(s, "10.2.3.1"), "uid-751");
        ASSERT_STREQ(role_for(s, "10.2.3.2"), "<none>");
        ASSERT_ERROR(store_pod_remove(s, "uid-0"), -ENOENT);
}

static StorePod *pod_at(const char *uid, const char *ip, const char *role, const char *rv) {
        StorePod *p = pod(uid, uid, ip, role);
        if (p && rv)
                p->resource_version = strdup(rv);
        return p;
}

TEST(store_restored_pod_is_unconfirmed_until_an_update_and_loses_to_a_confirmed_one) {
        _cleanup_(store_freep) Store *s = NULL;
        Trace t = {};
        StorePod **restored = calloc(2, sizeof(StorePod *));
        StoreLookup l;

        ASSERT_OK(store_new(&s));
        ASSERT_NOT_NULL(restored);
        restored[0] = pod_at("a", "10.0.0.1", "old-role", "100");
        ASSERT_OK(store_pods_restore(s, restored, 1));
        ASSERT_OK(store_lookup_ip(s, "10.0.0.1", &l));
        ASSERT_EQ(l.status, STORE_LOOKUP_FOUND);
        ASSERT_TRUE(l.pod->unconfirmed);
        store_lookup_done(&l);
        (void) played(s, &t);
        /* the same state from the API server: confirmed, and the address is woken */
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "old-role", "105")));
        ASSERT_FALSE(store_get_pod(s, "a")->unconfirmed);
        ASSERT_STREQ(played(s, &t), "ip:10.0.0.1 ");
        ASSERT_STREQ(store_get_pod(s, "a")->resource_version, "105");

        /* another restored pod whose address a confirmed pod now holds: the confirmed one wins */
        restored = calloc(2, sizeof(StorePod *));
        ASSERT_NOT_NULL(restored);
        restored[0] = pod_at("b", "10.0.0.2", "old-role", "100");
        ASSERT_OK(store_pods_restore(s, restored, 1));
        ASSERT_OK(store_pod_update(s, pod_at("c", "10.0.0.2", "new-role", "110")));
        ASSERT_STREQ(role_for(s, "10.0.0.2"), "new-role");
        strbuf_done(&t.b);
}

TEST(store_older_update_is_ignored_when_both_versions_are_integers) {
        _cleanup_(store_freep) Store *s = NULL;

        ASSERT_OK(store_new(&s));
        /* a live GET answered at 120; the resumed watch then replays 110 */
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "new-role", "120")));
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "old-role", "110")));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "new-role");
        /* not integers: nothing can be compared, the update applies (the watch is in order) */
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "opaque-role", "x7")));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "opaque-role");
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "later-role", "007")));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "later-role");
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "newer-role", "130")));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "newer-role");
        /* no length limit: compared as numbers */
        ASSERT_OK(
                store_pod_update(s, pod_at("a", "10.0.0.1", "long-role", "123456789012345678901234567890")));
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "short-role", "999")));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "long-role");
}

TEST(store_forgotten_pod_is_not_brought_back_by_a_replayed_event) {
        _cleanup_(store_freep) Store *s = NULL;
        StorePod **restored = calloc(2, sizeof(StorePod *));

        ASSERT_OK(store_new(&s));
        ASSERT_NOT_NULL(restored);
        restored[0] = pod_at("a", "10.0.0.1", "old-role", "100");
        ASSERT_OK(store_pods_restore(s, restored, 1));
        ASSERT_OK(store_pod_forget(s, "a")); /* GET: 404 */
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "<none>");
        /* the watch replays a MODIFIED from before the deletion, without a comparable version */
        ASSERT_OK(store_pod_update(s, pod_at("a", "10.0.0.1", "old-role", NULL)));
        ASSERT_STREQ(role_for(s, "10.0.0.1"), "<none>");
        ASSERT_NULL(store_get_pod(s, "a"));
}

TEST(store_restored_namespace_is_unconfirmed_until_updated_or_forgotten) {
        _cleanup_(store_freep) Store *s = NULL;
        char *ns[] = { (char *) "a", (char *) "b", (char *) "c" };

        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_namespaces_restore(s, ns, 3));
        ASSERT_TRUE(store_namespaces_known(s));
        ASSERT_TRUE(store_namespace_unconfirmed(store_get_namespace(s, "a")));
        ASSERT_OK(store_namespace_update(
                s, &(const StoreNamespaceSpec){ .name = "a", .annotation = "[\"r\"]" }));
        ASSERT_FALSE(store_namespace_unconfirmed(store_get_namespace(s, "a")));
        ASSERT_OK(store_namespace_forget(s, "a")); /* confirmed since: a 404 that raced it is older */
        ASSERT_NOT_NULL(store_get_namespace(s, "a"));
        ASSERT_OK(store_namespace_forget(s, "b"));
        ASSERT_NULL(store_get_namespace(s, "b"));
        /* confirmed without annotations: the same packed record, still confirmed */
        ASSERT_OK(store_namespace_update(s, &(const StoreNamespaceSpec){ .name = "c" }));
        ASSERT_FALSE(store_namespace_unconfirmed(store_get_namespace(s, "c")));
}
