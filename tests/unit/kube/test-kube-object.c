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

static int pod_from(const char *json, StorePod **ret) {
        _cleanup_(json_deletep) cJSON *j = cJSON_Parse(json);
        if (!j)
                return -EINVAL;
        return kube_pod_from_json(j, &keys, ret);
}

TEST(pod_json_keeps_only_what_decisions_need_with_every_pod_ip) {
        _cleanup_(store_pod_freep) StorePod *p = NULL;

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
        _cleanup_(store_pod_freep) StorePod *a = NULL, *b = NULL;

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
                StorePod *p = NULL;
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
        const char *name, *annotation;

        ASSERT_OK(kube_namespace_from_json(j, &keys, &name, &annotation));
        ASSERT_STREQ(name, "payments");
        ASSERT_STREQ(annotation, "[\"a\"]");
        ASSERT_ERROR(kube_namespace_from_json(bad, &keys, &name, &annotation), -EBADMSG);
}
