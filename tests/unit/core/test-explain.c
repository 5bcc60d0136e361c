/* SPDX-License-Identifier: BSD-3-Clause */
/* explain over the real Store, Roles and pod-roles (no credential cache): the verdict and the
 * facts behind it for each kind of pod, the request ring, and the text rendering. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "explain.h"
#include "pod-roles.h"
#include "roles.h"
#include "store.h"
#include "tap.h"

#define BASE "arn:aws:iam::123456789012:role/"

typedef struct World {
        Store *store;
        Roles *roles;
        PodRoles *pod_roles;
        ExplainDeps deps;
} World;

static void world_init(World *w, const char *default_role, bool restrictions) {
        *w = (World){};
        ASSERT_OK(store_new(&w->store));
        ASSERT_OK(roles_new(BASE, default_role, restrictions, NAMESPACE_RESTRICTION_GLOB, &w->roles));
        ASSERT_OK(
                pod_roles_new(&(const PodRolesDeps){ .store = w->store, .roles = w->roles }, &w->pod_roles));
        w->deps = (ExplainDeps){ .store = w->store,
                                 .pod_roles = w->pod_roles,
                                 .roles = w->roles,
                                 .role_key = "iam.amazonaws.com/role",
                                 .namespace_key = "iam.amazonaws.com/allowed-roles",
                                 .node = "node-1",
                                 .pods_synced = true };
}

static void world_done(World *w) {
        w->pod_roles = pod_roles_free(w->pod_roles);
        w->store = store_free(w->store);
        w->roles = roles_free(w->roles);
}

static void add_pod(World *w, const char *uid, const char *ns, const char *ip, const char *role,
                    const char *phase, bool host_network) {
        StorePod *p = NULL;

        ASSERT_OK(store_pod_new(uid, ns, uid, &p));
        free(p->phase);
        p->phase = strdup(phase);
        p->host_network = host_network;
        if (role)
                p->role = strdup(role);
        ASSERT_OK(store_pod_add_ip(p, ip));
        ASSERT_OK(store_pod_update(w->store, p));
        (void) pod_roles_dispatch(w->pod_roles, NULL, NULL);
}

/* The answer to query, parsed; the caller deletes it. */
static cJSON *ask(World *w, const char *query) {
        char *json = NULL;
        cJSON *a;

        ASSERT_OK(explain_query(&w->deps, query, &json));
        a = cJSON_Parse(json);
        free(json);
        ASSERT_NOT_NULL(a);
        return a;
}

static const char *str(const cJSON *o, const char *path1, const char *path2) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
        if (path2)
                v = cJSON_GetObjectItemCaseSensitive(v, path2);
        return cJSON_GetStringValue(v);
}

static bool served(const cJSON *a) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "credentials"));
}

TEST(annotated_pod_is_served_by_name_and_by_address) {
        World w;
        cJSON *a;

        world_init(&w, NULL, false);
        add_pod(&w, "u1", "team", "10.0.0.1", "app", "Running", false);
        a = ask(&w, "team/u1");
        ASSERT_TRUE(served(a));
        ASSERT_STREQ(str(a, "role", NULL), BASE "app");
        ASSERT_STREQ(str(a, "rule", "source"), "annotation");
        ASSERT_STREQ(str(a, "namespace", "result"), "not restricted");
        cJSON_Delete(a);
        a = ask(&w, "10.0.0.1");
        ASSERT_TRUE(served(a));
        ASSERT_STREQ(str(a, "pod", "uid"), "u1");
        cJSON_Delete(a);
        world_done(&w);
}

TEST(default_role_and_no_role) {
        World w;
        cJSON *a;

        world_init(&w, "fallback", false);
        add_pod(&w, "u1", "default", "10.0.0.1", NULL, "Running", false);
        a = ask(&w, "u1");
        ASSERT_TRUE(served(a));
        ASSERT_STREQ(str(a, "rule", "source"), "default-role");
        cJSON_Delete(a);
        world_done(&w);

        world_init(&w, NULL, false);
        add_pod(&w, "u1", "default", "10.0.0.1", NULL, "Running", false);
        a = ask(&w, "u1");
        ASSERT_FALSE(served(a));
        ASSERT_STREQ(str(a, "rule", "source"), "none");
        cJSON_Delete(a);
        world_done(&w);
}

TEST(restriction_names_the_matching_pattern_or_denies) {
        World w;
        cJSON *a;

        world_init(&w, NULL, true);
        ASSERT_OK(store_namespaces_replace(
                w.store,
                &(const StoreNamespaceSpec){ .name = "team", .annotation = "[\"other\",\"app-*\"]" }, 1));
        add_pod(&w, "u1", "team", "10.0.0.1", "app-reader", "Running", false);
        add_pod(&w, "u2", "team", "10.0.0.2", "admin", "Running", false);
        a = ask(&w, "team/u1");
        ASSERT_TRUE(served(a));
        ASSERT_STREQ(str(a, "namespace", "matched"), "app-*");
        ASSERT_STREQ(str(a, "namespace", "result"), "allowed by pattern");
        cJSON_Delete(a);
        a = ask(&w, "team/u2");
        ASSERT_FALSE(served(a));
        ASSERT_NULL(str(a, "namespace", "matched"));
        ASSERT_STREQ(str(a, "namespace", "result"), "denied: no pattern matches");
        cJSON_Delete(a);
        world_done(&w);
}

TEST(unknown_host_network_terminal_and_unsynced_say_why) {
        World w;
        cJSON *a;

        world_init(&w, NULL, false);
        add_pod(&w, "host", "default", "10.0.0.9", "app", "Running", true);
        add_pod(&w, "done", "default", "10.0.0.8", "app", "Succeeded", false);
        a = ask(&w, "10.0.0.7");
        ASSERT_FALSE(served(a));
        ASSERT_TRUE(strstr(str(a, "reason", NULL), "unknown address") != NULL);
        cJSON_Delete(a);
        a = ask(&w, "default/host");
        ASSERT_TRUE(strncmp(str(a, "reason", NULL), "hostNetwork", 11) == 0);
        cJSON_Delete(a);
        /* hostNetwork pods share the node's address: by address, one is explained, no ambiguity */
        add_pod(&w, "host2", "default", "10.0.0.9", "app", "Running", true);
        a = ask(&w, "10.0.0.9");
        ASSERT_TRUE(strncmp(str(a, "reason", NULL), "hostNetwork", 11) == 0);
        ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(a, "candidates"));
        cJSON_Delete(a);
        a = ask(&w, "default/done");
        ASSERT_TRUE(strncmp(str(a, "reason", NULL), "terminal phase", 14) == 0);
        cJSON_Delete(a);
        w.deps.pods_synced = false;
        a = ask(&w, "nowhere");
        ASSERT_TRUE(strstr(str(a, "reason", NULL), "not synced") != NULL);
        cJSON_Delete(a);
        world_done(&w);
}

TEST(shared_address_is_ambiguous_and_lists_the_pods) {
        World w;
        cJSON *a;

        world_init(&w, NULL, false);
        add_pod(&w, "u1", "default", "10.0.0.1", "app", "Running", false);
        add_pod(&w, "u2", "default", "10.0.0.1", "app", "Running", false);
        a = ask(&w, "10.0.0.1");
        ASSERT_FALSE(served(a));
        ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a, "candidates")), 2);
        cJSON_Delete(a);
        a = ask(&w, "u1");
        ASSERT_FALSE(served(a));
        ASSERT_NOT_NULL(str(a, "ambiguity", NULL));
        cJSON_Delete(a);
        world_done(&w);
}

TEST(request_ring_keeps_the_newest_first_and_is_bounded) {
        const PodRoleRequest *q[POD_ROLES_REQUEST_RING];
        World w;

        world_init(&w, NULL, false);
        add_pod(&w, "u1", "default", "10.0.0.1", "app", "Running", false);
        for (unsigned i = 0; i < POD_ROLES_REQUEST_RING + 3; i++)
                pod_roles_record_request(w.pod_roles, "u1", "roleHandler", 200 + i, i + 1);
        ASSERT_UEQ(pod_roles_requests(w.pod_roles, "u1", q, POD_ROLES_REQUEST_RING), POD_ROLES_REQUEST_RING);
        ASSERT_UEQ(q[0]->status, 200 + POD_ROLES_REQUEST_RING + 2);
        ASSERT_UEQ(q[POD_ROLES_REQUEST_RING - 1]->status, 203);
        ASSERT_UEQ(pod_roles_requests(w.pod_roles, "nobody", q, POD_ROLES_REQUEST_RING), 0);
        world_done(&w);
}

TEST(query_is_bounded_and_text_says_the_verdict) {
        char long_query[EXPLAIN_MAX_QUERY + 2];
        _cleanup_strbuf_ StrBuf text = {};
        char *json = NULL;
        World w;

        world_init(&w, NULL, false);
        memset(long_query, 'a', sizeof long_query - 1);
        long_query[sizeof long_query - 1] = '\0';
        ASSERT_ERROR(explain_query(&w.deps, long_query, &json), -EINVAL);
        ASSERT_ERROR(explain_query(&w.deps, "", &json), -EINVAL);
        add_pod(&w, "u1", "default", "10.0.0.1", "app", "Running", false);
        ASSERT_OK(explain_query(&w.deps, "u1", &json));
        ASSERT_EQ(explain_render_text(json, &text), 1);
        ASSERT_TRUE(strstr(strbuf_str(&text), "verdict:     credentials:") != NULL);
        ASSERT_TRUE(strstr(strbuf_str(&text),
                           "rule:        annotation: pod annotation iam.amazonaws.com/role=app") != NULL);
        free(json);
        ASSERT_ERROR(explain_render_text("{\"x\":1}", &text), -EBADMSG);
        world_done(&w);
}
