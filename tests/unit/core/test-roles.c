/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "roles.h"
#include "tap.h"

#define BASE "arn:aws:iam::123456789012:role/"

static Roles *mk(const char *base, const char *def, bool restrictions, NamespaceRestrictionFormat f) {
        Roles *r;
        ASSERT_OK(roles_new(base, def, restrictions, f, &r));
        return r;
}

TEST(role_arn_joins_base_unless_already_an_arn) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        _cleanup_(roles_freep) Roles *nob = mk(NULL, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        char *a;

        a = roles_arn(r, "my-role");
        ASSERT_STREQ(a, BASE "my-role");
        free(a);
        a = roles_arn(r, "path/my-role");
        ASSERT_STREQ(a, BASE "path/my-role");
        free(a);
        a = roles_arn(r, "arn:aws:iam::999:role/x");
        ASSERT_STREQ(a, "arn:aws:iam::999:role/x");
        free(a);
        a = roles_arn(r, "ARN:aws:iam::999:role/x"); /* the prefix test ignores case */
        ASSERT_STREQ(a, "ARN:aws:iam::999:role/x");
        free(a);
        a = roles_arn(r, " my-role"); /* plain concatenation, no trimming */
        ASSERT_STREQ(a, BASE " my-role");
        free(a);
        a = roles_arn(nob, "bare");
        ASSERT_STREQ(a, "bare");
        free(a);
}

TEST(pod_role_from_annotation_default_or_none) {
        _cleanup_(roles_freep) Roles *nodef = mk(NULL, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        _cleanup_(roles_freep) Roles *def = mk(BASE, "fallback", false, NAMESPACE_RESTRICTION_GLOB);
        _cleanup_(roles_freep) Roles *quirk = mk(BASE, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        RoleSource src;
        char *a = NULL;

        ASSERT_ERROR(roles_for_pod(nodef, NULL, &a, &src), -ENOENT);
        ASSERT_NULL(a);
        ASSERT_OK(roles_for_pod(nodef, "arn:aws:iam::1:role/x", &a, &src));
        ASSERT_STREQ(a, "arn:aws:iam::1:role/x");
        ASSERT_EQ(src, ROLE_SOURCE_ANNOTATION);
        free(a);

        ASSERT_OK(roles_for_pod(def, NULL, &a, &src));
        ASSERT_STREQ(a, BASE "fallback");
        ASSERT_EQ(src, ROLE_SOURCE_DEFAULT);
        free(a);

        /* an empty annotation counts as present: RoleARN("") = base ARN */
        ASSERT_OK(roles_for_pod(def, "", &a, &src));
        ASSERT_STREQ(a, BASE);
        ASSERT_EQ(src, ROLE_SOURCE_ANNOTATION);
        free(a);

        /* kube2iam's quirk (base ARN, no default role: the bare base ARN as a fallback, an empty 200)
         * is changed on purpose: no default role means no role */
        ASSERT_NULL(roles_default_arn(quirk));
        ASSERT_ERROR(roles_for_pod(quirk, NULL, &a, &src), -ENOENT);
}

TEST(pod_role_sources_in_order_annotation_service_account_namespace_default) {
        _cleanup_(roles_freep) Roles *def = NULL;
        _cleanup_free_ char *a = NULL;
        RoleSource src;

        ASSERT_OK(roles_new(BASE, "fallback", false, NAMESPACE_RESTRICTION_GLOB, &def));
        ASSERT_OK(roles_choose(def, &(const RoleCandidates){ "pod", "arn:aws:iam::1:role/sa", "ns" }, &a,
                               &src));
        ASSERT_STREQ(a, BASE "pod");
        ASSERT_EQ(src, ROLE_SOURCE_ANNOTATION);
        a = mfree(a);
        ASSERT_OK(roles_choose(def, &(const RoleCandidates){ NULL, "arn:aws:iam::1:role/sa", "ns" }, &a,
                               &src));
        ASSERT_STREQ(a, "arn:aws:iam::1:role/sa");
        ASSERT_EQ(src, ROLE_SOURCE_SERVICE_ACCOUNT);
        a = mfree(a);
        /* an empty ServiceAccount annotation is none (IRSA's webhook ignores it too) */
        ASSERT_OK(roles_choose(def, &(const RoleCandidates){ NULL, "", "ns" }, &a, &src));
        ASSERT_STREQ(a, BASE "ns");
        ASSERT_EQ(src, ROLE_SOURCE_NAMESPACE_DEFAULT);
        a = mfree(a);
        ASSERT_OK(roles_choose(def, &(const RoleCandidates){ NULL, NULL, "" }, &a, &src));
        ASSERT_STREQ(a, BASE "fallback");
        ASSERT_EQ(src, ROLE_SOURCE_DEFAULT);
        a = mfree(a);
        /* an empty pod annotation still counts as present, as in kube2iam */
        ASSERT_OK(
                roles_choose(def, &(const RoleCandidates){ "", "arn:aws:iam::1:role/sa", NULL }, &a, &src));
        ASSERT_EQ(src, ROLE_SOURCE_ANNOTATION);
}

TEST(role_list_strips_the_base_arn) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        ASSERT_STREQ(roles_list_name(r, BASE "my-role"), "my-role");
        ASSERT_STREQ(roles_list_name(r, BASE "path/my-role"), "path/my-role");
        ASSERT_STREQ(roles_list_name(r, "arn:aws:iam::999:role/x"), "arn:aws:iam::999:role/x");
}

TEST(url_role_compared_after_normalisation) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        ASSERT_TRUE(roles_url_matches(r, "foo", BASE "foo"));
        ASSERT_TRUE(roles_url_matches(r, BASE "foo", BASE "foo"));
        ASSERT_FALSE(roles_url_matches(r, "Foo", BASE "foo"));
        ASSERT_FALSE(roles_url_matches(r, "foo/", BASE "foo"));
        ASSERT_TRUE(roles_url_matches(r, "arn:aws:iam::999:role/x", "arn:aws:iam::999:role/x"));
}

TEST(glob_is_anchored_star_only_and_case_sensitive) {
        ASSERT_TRUE(roles_glob_match(BASE "*", BASE "anything/at/all"));
        ASSERT_TRUE(roles_glob_match(BASE "team-*", BASE "team-a"));
        ASSERT_FALSE(roles_glob_match(BASE "team-*", BASE "other-team-a"));
        ASSERT_TRUE(roles_glob_match("*-reader", BASE "s3-reader"));
        ASSERT_FALSE(roles_glob_match("*-reader", BASE "s3-reader-x"));
        ASSERT_TRUE(roles_glob_match("a*b*c", "aXbYc"));
        ASSERT_TRUE(roles_glob_match("a*ab", "aab"));
        ASSERT_FALSE(roles_glob_match("a*ab", "ab"));
        ASSERT_FALSE(roles_glob_match(BASE "Team", BASE "team"));
        ASSERT_TRUE(roles_glob_match("*", ""));
        ASSERT_TRUE(roles_glob_match("", ""));
        ASSERT_FALSE(roles_glob_match("", "x"));
        ASSERT_FALSE(roles_glob_match(BASE "a?c", BASE "abc")); /* '?' is literal */
}

TEST(namespace_restrictions_glob) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, "default-role", true, NAMESPACE_RESTRICTION_GLOB);
        char *allowed[] = { (char *) "team-*", (char *) "arn:aws:iam::999:role/cross", NULL };
        char *none[] = { NULL };

        ASSERT_TRUE(roles_namespace_allows(r, BASE "team-a", true, allowed));
        ASSERT_TRUE(roles_namespace_allows(r, "arn:aws:iam::999:role/cross", true, allowed));
        ASSERT_FALSE(roles_namespace_allows(r, BASE "other", true, allowed));
        /* unknown namespace, missing or empty annotation: deny */
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-a", false, allowed));
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-a", true, NULL));
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-a", true, none));
        /* the default role bypasses restrictions, even in an unknown namespace */
        ASSERT_TRUE(roles_namespace_allows(r, BASE "default-role", false, NULL));
}

TEST(namespace_restrictions_off_allow_everything) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, NULL, false, NAMESPACE_RESTRICTION_GLOB);
        ASSERT_TRUE(roles_namespace_allows(r, BASE "x", false, NULL));
}

TEST(namespace_restrictions_regexp_is_kube2iams_rule) {
        _cleanup_(roles_freep) Roles *r = mk(BASE, NULL, true, NAMESPACE_RESTRICTION_REGEXP);
        /* the pattern is prefixed with the base ARN and matched unanchored (substring) */
        char *team[] = { (char *) "team-\\d+", NULL };
        char *anchored[] = { (char *) "^team-a$", NULL };
        char *full[] = { (char *) "arn:aws:iam::123456789012:role/team-a$", NULL };
        char *caret_full[] = { (char *) "^arn:aws:iam::123456789012:role/team-a$", NULL };
        char *bad[] = { (char *) "team-(", NULL };

        ASSERT_TRUE(roles_namespace_allows(r, BASE "team-12", true, team));
        ASSERT_TRUE(roles_namespace_allows(r, BASE "team-12-extra", true, team)); /* unanchored */
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-x", true, team));
        /* kube2iam #341: ^ after the base-ARN prefix never matches */
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-a", true, anchored));
        /* a pattern that is itself an ARN is not prefixed, so anchors work */
        ASSERT_TRUE(roles_namespace_allows(r, BASE "team-a", true, full));
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-ab", true, full));
        /* "^arn:..." does not start with "arn:", so it is prefixed too and never matches */
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-a", true, caret_full));
        /* an invalid regexp matches nothing */
        ASSERT_FALSE(roles_namespace_allows(r, BASE "team-(", true, bad));
        /* unescaped dots in the base ARN are regexp dots: kube2iam's behaviour */
        ASSERT_EQ(roles_regexp_search("a.c", "abc"), 1);
        ASSERT_ERROR(roles_regexp_search("(", "x"), -EINVAL);
}
