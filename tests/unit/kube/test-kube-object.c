/* SPDX-License-Identifier: BSD-3-Clause */
#include "kube/kube-object.h"
#include "kube/watch-parser.h"
#include "string-util.h"
#include "tap.h"

static const KubeObjectKeys keys = {
        .role_key = "iam.amazonaws.com/role",
        .external_id_key = "iam.amazonaws.com/external-id",
        .namespace_key = "iam.amazonaws.com/allowed-roles",
};

static int pod_from(const char *json, KubePod **ret) {
        _cleanup_(json_deletep) cJSON *j = cJSON_Parse(json);
        if (!j)
                return -EINVAL;
        return kube_pod_from_json(j, &keys, ret);
}

TEST(pod_json_keeps_only_what_decisions_need_with_every_pod_ip) {
        _cleanup_(kube_pod_freep) KubePod *p = NULL;

        ASSERT_OK(pod_from("{\"metadata\":{\"uid\":\"u1\",\"namespace\":\"payments\",\"name\":\"api-0\","
                           "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\",\"annotations\":{"
                           "\"iam.amazonaws.com/role\":\"reader\",\"iam.amazonaws.com/external-id\":\"ext\","
                           "\"other\":\"x\"}},\"spec\":{\"hostNetwork\":false,\"nodeName\":\"n\"},"
                           "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\",\"podIPs\":["
                           "{\"ip\":\"10.0.0.5\"},{\"ip\":\"fd00::5\"}]}}",
                           &p));
        ASSERT_STREQ(p->uid, "u1");
        ASSERT_STREQ(p->namespace, "payments");
        ASSERT_STREQ(p->name, "api-0");
        ASSERT_STREQ(p->phase, "Running");
        ASSERT_STREQ(p->role, "reader");
        ASSERT_STREQ(p->external_id, "ext");
        ASSERT_TRUE(p->terminating);
        ASSERT_FALSE(p->host_network);
        ASSERT_EQ(strv_length(p->ips), 2);
        ASSERT_STREQ(p->ips[0], "10.0.0.5");
        ASSERT_STREQ(p->ips[1], "fd00::5");
}

TEST(pod_json_empty_role_annotation_is_present_and_missing_is_null) {
        _cleanup_(kube_pod_freep) KubePod *a = NULL, *b = NULL;

        ASSERT_OK(pod_from("{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\",\"annotations\":"
                           "{\"iam.amazonaws.com/role\":\"\"}},\"status\":{}}",
                           &a));
        ASSERT_STREQ(a->role, "");
        ASSERT_OK(pod_from(
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"b\",\"annotations\":null,"
                "\"deletionTimestamp\":null},\"spec\":{\"hostNetwork\":true}}",
                &b));
        ASSERT_NULL(b->role);
        ASSERT_NULL(b->ips);
        ASSERT_TRUE(b->host_network);
        ASSERT_FALSE(b->terminating);
        ASSERT_STREQ(b->phase, "");
}

TEST(pod_json_garbage_is_rejected) {
        static const char *const bad[] = {
                "{}",
                "{\"metadata\":{\"namespace\":\"n\",\"name\":\"a\"}}",
                "{\"metadata\":{\"uid\":5,\"namespace\":\"n\",\"name\":\"a\"}}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\",\"annotations\":[1]}}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\",\"annotations\":"
                "{\"iam.amazonaws.com/role\":7}}}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\"},\"spec\":{\"hostNetwork\":"
                "\"yes\"}}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\"},\"status\":{\"podIP\":1}}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\"},\"status\":{\"podIPs\":{}}"
                "}",
                "{\"metadata\":{\"uid\":\"u\",\"namespace\":\"n\",\"name\":\"a\"},\"status\":{\"podIPs\":["
                "{\"ip\":\"1\"},{\"ip\":\"2\"},{\"ip\":\"3\"},{\"ip\":\"4\"},{\"ip\":\"5\"},{\"ip\":\"6\"},"
                "{\"ip\":\"7\"},{\"ip\":\"8\"},{\"ip\":\"9\"}]}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                KubePod *p = NULL;
                int r = pod_from(bad[i], &p);
                if (r != -EBADMSG)
                        tap_fail(__FILE__, __LINE__, "case %zu: expected -EBADMSG, got %d", i, r);
                ASSERT_NULL(p);
        }
}

TEST(namespace_json_name_and_allowed_roles_annotation) {
        _cleanup_(json_deletep) cJSON *j = cJSON_Parse(
                "{\"metadata\":{\"name\":\"payments\",\"annotations\":{\"iam.amazonaws.com/allowed-roles\":"
                "\"[\\\"a\\\"]\"}}}");
        _cleanup_(json_deletep) cJSON *bad = cJSON_Parse("{\"metadata\":{\"annotations\":{}}}");
        KubeNamespaceFields f;

        ASSERT_OK(kube_namespace_from_json(j, &keys, &f));
        ASSERT_STREQ(f.name, "payments");
        ASSERT_STREQ(f.annotation, "[\"a\"]");
        ASSERT_NULL(f.default_role);
        ASSERT_ERROR(kube_namespace_from_json(bad, &keys, &f), -EBADMSG);
}

TEST(namespace_json_default_role_read_only_when_asked) {
        _cleanup_(json_deletep) cJSON *j = cJSON_Parse(
                "{\"metadata\":{\"name\":\"team\",\"annotations\":{\"iam.amazonaws.com/default-role\":"
                "\"team-role\"}}}");
        _cleanup_(json_deletep) cJSON *bad = cJSON_Parse(
                "{\"metadata\":{\"name\":\"team\",\"annotations\":{\"iam.amazonaws.com/default-role\":7}}}");
        KubeObjectKeys k = keys;
        KubeNamespaceFields f;

        ASSERT_OK(kube_namespace_from_json(j, &k, &f));
        ASSERT_NULL(f.default_role);
        k.default_role_key = KUBE_NAMESPACE_DEFAULT_ROLE_ANNOTATION;
        ASSERT_OK(kube_namespace_from_json(j, &k, &f));
        ASSERT_STREQ(f.default_role, "team-role");
        ASSERT_ERROR(kube_namespace_from_json(bad, &k, &f), -EBADMSG);
}

TEST(service_account_json_identity_and_irsa_annotation) {
        _cleanup_(json_deletep) cJSON *j =
                cJSON_Parse("{\"metadata\":{\"name\":\"app\",\"namespace\":\"team\",\"annotations\":{"
                            "\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::1:role/app\"}}}");
        _cleanup_(json_deletep) cJSON *plain =
                cJSON_Parse("{\"metadata\":{\"name\":\"default\",\"namespace\":\"team\"}}");
        _cleanup_(json_deletep) cJSON *no_ns = cJSON_Parse("{\"metadata\":{\"name\":\"app\"}}");
        _cleanup_(json_deletep) cJSON *bad =
                cJSON_Parse("{\"metadata\":{\"name\":\"app\",\"namespace\":\"team\",\"annotations\":{"
                            "\"eks.amazonaws.com/role-arn\":[\"x\"]}}}");
        KubeServiceAccountFields f;

        ASSERT_OK(kube_service_account_from_json(j, &f));
        ASSERT_STREQ(f.namespace, "team");
        ASSERT_STREQ(f.name, "app");
        ASSERT_STREQ(f.role_arn, "arn:aws:iam::1:role/app");
        ASSERT_OK(kube_service_account_from_json(plain, &f));
        ASSERT_NULL(f.role_arn);
        ASSERT_ERROR(kube_service_account_from_json(no_ns, &f), -EBADMSG);
        ASSERT_ERROR(kube_service_account_from_json(bad, &f), -EBADMSG);
}

typedef struct Items {
        char seen[8][64];
        bool complete[8];
        size_t n;
} Items;

static int collect(const char *item, size_t len, bool complete, void *userdata) {
        Items *it = userdata;
        if (it->n >= ELEMENTSOF(it->seen))
                return -E2BIG;
        snprintf(it->seen[it->n], sizeof it->seen[0], "%.*s", (int) MIN(len, (size_t) 63), item);
        it->complete[it->n++] = complete;
        return 0;
}

static int scan(const char *body, Items *it, cJSON **meta) {
        *it = (Items){};
        return kube_list_scan(body, strlen(body), collect, it, meta);
}

TEST(list_scan_cuts_items_without_being_fooled_by_strings) {
        _cleanup_(json_deletep) cJSON *meta = NULL;
        Items it;

        ASSERT_EQ(scan(" {\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"7\",\"continue\":\"c\"},"
                       "\"items\":[{\"a\":\"]}\\\"{\"} , {\"b\":[1,{\"c\":null}]},{}]}\n",
                       &it, &meta),
                  0);
        ASSERT_EQ(it.n, 3);
        ASSERT_STREQ(it.seen[0], "{\"a\":\"]}\\\"{\"}");
        ASSERT_STREQ(it.seen[1], "{\"b\":[1,{\"c\":null}]}");
        ASSERT_STREQ(it.seen[2], "{}");
        ASSERT_TRUE(it.complete[0] && it.complete[1] && it.complete[2]);
        ASSERT_STREQ(json_get_string_path(meta, (const char *const[]){ "continue" }, 1), "c");
}

TEST(list_scan_finds_metadata_after_items_and_empty_lists) {
        _cleanup_(json_deletep) cJSON *m1 = NULL, *m2 = NULL, *m3 = NULL;
        Items it;

        ASSERT_EQ(scan("{\"items\":[{\"x\":1}],\"metadata\":{\"resourceVersion\":\"9\"}}", &it, &m1), 0);
        ASSERT_EQ(it.n, 1);
        ASSERT_STREQ(json_get_string_path(m1, (const char *const[]){ "resourceVersion" }, 1), "9");
        ASSERT_EQ(scan("{\"metadata\":{},\"items\":null}", &it, &m2), 0);
        ASSERT_EQ(it.n, 0);
        ASSERT_EQ(scan("{\"metadata\":{},\"items\":[ ]}", &it, &m3), 0);
        ASSERT_EQ(it.n, 0);
}

TEST(list_scan_reports_a_page_cut_off_inside_an_item) {
        _cleanup_(json_deletep) cJSON *meta = NULL;
        Items it;

        ASSERT_EQ(scan("{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[{\"a\":1},{\"metadata\":{"
                       "\"name\":\"big",
                       &it, &meta),
                  1);
        ASSERT_EQ(it.n, 2);
        ASSERT_TRUE(it.complete[0]);
        ASSERT_FALSE(it.complete[1]);
        ASSERT_STREQ(json_get_string_path(meta, (const char *const[]){ "resourceVersion" }, 1), "7");
}

TEST(list_scan_rejects_what_is_not_a_list) {
        cJSON *meta = NULL;
        Items it;

        ASSERT_ERROR(scan("{\"metadata\":{\"resourceVersion\":\"7\"", &it, &meta),
                     -EBADMSG); /* cut in metadata */
        ASSERT_ERROR(scan("[]", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("{\"items\":{}}", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("{\"items\":[{}] \"x\":1}", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("{\"items\":[{}]} trailing", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("{\"metadata\":[1],\"items\":[]}", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("", &it, &meta), -EBADMSG);
        ASSERT_ERROR(scan("{\"items\":[,{}]}", &it, &meta), -EBADMSG); /* no value: not an empty item */
        ASSERT_ERROR(scan("{\"kind\":,\"items\":[]}", &it, &meta), -EBADMSG);
        ASSERT_NULL(meta);
}

TEST(object_identity_names_a_refused_object_from_its_first_bytes) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        const char *head =
                "{\"metadata\":{\"name\":\"padded-1\",\"labels\":{\"name\":\"no\"},\"namespace\":\"tenant\","
                "\"uid\":\"0f1e-22\",\"annotations\":{\"x\":\"yyyyyyyy";

        ASSERT_OK(kube_object_identity(head, strlen(head), &a));
        ASSERT_STREQ(a, "tenant/padded-1 uid 0f1e-22");
        /* nothing that could forge a log line or a field is printed */
        const char *evil = "{\"metadata\":{\"name\":\"a\\nMESSAGE=x\",\"namespace\":\"n s\"}}";
        ASSERT_OK(kube_object_identity(evil, strlen(evil), &b));
        ASSERT_STREQ(b, "?/? uid ?");
        ASSERT_OK(kube_object_identity("{\"spec\":", 8, &c));
        ASSERT_STREQ(c, "?/? uid ?");
}
