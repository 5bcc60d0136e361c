/* SPDX-License-Identifier: BSD-3-Clause */
/* session-tags: the --session-tags list, the namespace annotation's rules, and the session
 * parameters they make for a pod. */
#include <stdlib.h>

#include "aws/sts.h"
#include "kube/kube-pod.h"
#include "session-tags.h"
#include "string-util.h"
#include "tap.h"

TEST(list_names_pod_identity_keys_only) {
        unsigned set;

        ASSERT_OK(session_tags_parse("kubernetes-pod-uid,eks-cluster-arn", &set));
        ASSERT_EQ(set, (1U << SESSION_TAG_POD_UID) | (1U << SESSION_TAG_CLUSTER_ARN));
        ASSERT_ERROR(session_tags_parse("", &set), -EINVAL);
        ASSERT_ERROR(session_tags_parse("kubernetes-namespace,,kubernetes-pod-uid", &set), -EINVAL);
        ASSERT_ERROR(session_tags_parse("Kubernetes-Namespace", &set), -EINVAL);
}

TEST(namespace_annotation_is_sorted_by_key) {
        _cleanup_strv_free_ char **tags = NULL;
        _cleanup_free_ char *why = NULL;

        ASSERT_OK(session_tags_parse_annotation("{\"team\": \"payments\", \"cost-center\": \"42\"}", &tags,
                                                &why));
        ASSERT_STREQ(tags[0], "cost-center");
        ASSERT_STREQ(tags[1], "42");
        ASSERT_STREQ(tags[2], "team");
        ASSERT_STREQ(tags[3], "payments");
        ASSERT_NULL(tags[4]);
        tags = strv_free(tags);
        ASSERT_OK(session_tags_parse_annotation("", &tags, &why));
        ASSERT_NULL(tags);
}

TEST(namespace_annotation_breaking_a_rule_is_refused_whole) {
        static const char *const bad[] = {
                "[\"team\"]",
                "{\"team\": 1}",
                "{\"team\": \"a;b\"}",
                "{\"\": \"x\"}",
                "{\"kubernetes-namespace\": \"other\"}", /* reserved: the node sets it */
                "{\"EKS-Cluster-Name\": \"other\"}",     /* whatever the case */
                "{\"aws:username\": \"x\"}",
                "{\"team\": \"a\", \"TEAM\": \"b\"}",
                "not json",
        };
        char big[2048] = "{";

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *why = NULL;
                char **tags = NULL;

                ASSERT_ERROR(session_tags_parse_annotation(bad[i], &tags, &why), -EINVAL);
                ASSERT_NULL(tags);
                ASSERT_NOT_NULL(why);
        }
        for (int i = 0; i <= SESSION_TAGS_NAMESPACE_MAX; i++)
                snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%d\": \"v\"", i ? ", " : "", i);
        strcat(big, "}");
        _cleanup_free_ char *why = NULL;
        char **tags = NULL;
        ASSERT_ERROR(session_tags_parse_annotation(big, &tags, &why), -EINVAL);
}

TEST(pod_session_has_the_nodes_tags_then_the_namespaces) {
        _cleanup_(kube_pod_freep) KubePod *pod = NULL;
        _cleanup_free_ char *params = NULL, *off = NULL;
        char *ns_tags[] = { (char *) "team", (char *) "payments", NULL };
        SessionTagsSettings s = { .tags = 1U << SESSION_TAG_NAMESPACE };

        ASSERT_OK(kube_pod_new("uid-1", "pay", "api-0", &pod));
        ASSERT_OK(session_tags_for_pod(&s, pod, ns_tags, &params));
        ASSERT_STREQ(params,
                     "&Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=pay"
                     "&Tags.member.2.Key=team&Tags.member.2.Value=payments"
                     "&TransitiveTagKeys.member.1=kubernetes-namespace&TransitiveTagKeys.member.2=team");
        /* without --session-tags the namespace adds nothing: no call carries tags */
        s.tags = 0;
        ASSERT_OK(session_tags_for_pod(&s, pod, ns_tags, &off));
        ASSERT_STREQ(off, "");
}

TEST(policy_arns_annotation_is_a_sorted_list_within_sts_limits) {
        _cleanup_strv_free_ char **arns = NULL;
        _cleanup_free_ char *why = NULL, *params = strdup("&Tags.member.1.Key=k&Tags.member.1.Value=v");

        ASSERT_OK(session_policies_parse_annotation(
                "[\"arn:aws:iam::1:policy/z-read-only\", \"arn:aws:iam::aws:policy/ReadOnlyAccess\"]", &arns,
                &why));
        ASSERT_STREQ(arns[0], "arn:aws:iam::1:policy/z-read-only");
        ASSERT_STREQ(arns[1], "arn:aws:iam::aws:policy/ReadOnlyAccess");
        ASSERT_NULL(arns[2]);
        ASSERT_OK(sts_session_add_policy_arns(&params, arns));
        ASSERT_STREQ(params, "&Tags.member.1.Key=k&Tags.member.1.Value=v"
                             "&PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3A1%3Apolicy%2Fz-read-only"
                             "&PolicyArns.member.2.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess");
}

TEST(policy_arns_annotation_breaking_a_rule_is_refused) {
        static const char *const bad[] = {
                "{\"a\": \"arn:aws:iam::aws:policy/ReadOnlyAccess\"}",
                "[\"not-an-arn-but-long-enough\"]",
                "[\"arn:aws:iam::aws:policy/ReadOnlyAccess\", \"arn:aws:iam::aws:policy/ReadOnlyAccess\"]",
                "[1]",
                "[\"arn:aws:iam::1:policy/p0\", \"arn:aws:iam::1:policy/p1\", \"arn:aws:iam::1:policy/p2\", "
                "\"arn:aws:iam::1:policy/p3\", \"arn:aws:iam::1:policy/p4\", \"arn:aws:iam::1:policy/p5\", "
                "\"arn:aws:iam::1:policy/p6\", \"arn:aws:iam::1:policy/p7\", \"arn:aws:iam::1:policy/p8\", "
                "\"arn:aws:iam::1:policy/p9\", \"arn:aws:iam::1:policy/pa\"]",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *why = NULL;
                char **arns = NULL;

                ASSERT_ERROR(session_policies_parse_annotation(bad[i], &arns, &why), -EINVAL);
                ASSERT_NULL(arns);
                ASSERT_NOT_NULL(why);
        }
}
