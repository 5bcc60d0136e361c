/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Roles: kube2iam's rules from annotations to role ARNs (docs/compatibility.md,
 * "Annotations and role rules"), kept exactly, quirks included: RoleARN() base-ARN joining, the default role and the
 * (not kube2iam's bare-base-ARN fallback: docs/compatibility.md drops it on purpose), namespace restrictions (glob anchored with '*' only; regexp unanchored
 * and prefixed with the base ARN, as kube2iam #341 describes), the default role's bypass, and the
 * URL role versus pod role comparison. Pure: the caller passes the pod's annotation and the
 * namespace's allowed roles. */

#include <stdbool.h>

#include "config.h"
#include "macro.h"

typedef struct Roles Roles;

/* base_arn: the validated, '/'-terminated base ARN (after auto-discovery), or NULL.
 * default_role: --default-role (after auto-discovery), or NULL. */
int roles_new(const char *base_arn, const char *default_role, bool restrictions,
              NamespaceRestrictionFormat format, Roles **ret);
Roles *roles_free(Roles *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Roles *, roles_free);

/* kube2iam's RoleARN(x): x when it starts with "arn:" (any case), else base ARN + x. */
char *roles_arn(const Roles *r, const char *name);
const char *roles_base_arn(const Roles *r);
/* RoleARN(--default-role), or NULL without --default-role (kube2iam: the bare base ARN). */
const char *roles_default_arn(const Roles *r);

typedef enum RoleSource {
        ROLE_SOURCE_ANNOTATION,
        ROLE_SOURCE_DEFAULT,
        ROLE_SOURCE_SERVICE_ACCOUNT,   /* --service-account-roles: IRSA's ServiceAccount annotation */
        ROLE_SOURCE_NAMESPACE_DEFAULT, /* --namespace-default-roles: the namespace's default-role */
} RoleSource;

/* What a pod's role may come from, first to last (docs/sessions.md). */
typedef struct RoleCandidates {
        const char *annotation;        /* --iam-role-key's value; NULL: none ("" counts as present) */
        const char *service_account;   /* its ServiceAccount's role annotation; NULL or "": none */
        const char *namespace_default; /* its namespace's default-role; NULL or "": none */
} RoleCandidates;

/* The pod's role: the first candidate present, through RoleARN(), else the default role. -ENOENT
 * when there is none. */
int roles_choose(const Roles *r, const RoleCandidates *c, char **ret_arn, RoleSource *ret_source);
/* The same with the annotation alone (kube2iam's rule). */
int roles_for_pod(const Roles *r, const char *annotation, char **ret_arn, RoleSource *ret_source);

/* Namespace restrictions. namespace_known: the namespace is in the watch cache. allowed: its
 * allowed-roles annotation parsed as a JSON array of strings (NULL or empty: nothing allowed). */
bool roles_namespace_allows(const Roles *r, const char *role_arn, bool namespace_known,
                            char *const *allowed);

/* The same decision, and in *ret_pattern the allowed-roles entry that matched (borrowed from
 * allowed); NULL when none did or none was needed (no restrictions, the default role). */
bool roles_namespace_match(const Roles *r, const char *role_arn, bool namespace_known, char *const *allowed,
                           const char **ret_pattern);
/* --namespace-restrictions */
bool roles_restrictions(const Roles *r);

/* What the role list answers: the ARN without the base ARN when it starts with it. */
const char *roles_list_name(const Roles *r, const char *arn);

/* kube2iam's check of /security-credentials/{role}: RoleARN(url_role) == the pod's ARN, byte for byte. */
bool roles_url_matches(const Roles *r, const char *url_role, const char *pod_arn);

/* '*' matches any run of characters, '/' included; anchored at both ends; case-sensitive. */
bool roles_glob_match(const char *pattern, const char *s);
/* Go-RE2-like search (PCRE2), unanchored. An invalid pattern matches nothing (-EINVAL). */
int roles_regexp_search(const char *pattern, const char *s);
