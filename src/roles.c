/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "log.h"
#include "roles.h"
#include "string-util.h"

/* Namespace patterns come from annotations anyone with namespace write access sets: bound the
 * work a pattern may cost (PCRE2's backtracking limit) so one cannot stall the loop. */
#define ROLES_REGEXP_MATCH_LIMIT 100000U
#define ROLES_PATTERN_MAX 2048U

struct Roles {
        char *base_arn;
        char *default_arn;
        bool restrictions;
        NamespaceRestrictionFormat format;
};

int roles_new(const char *base_arn, const char *default_role, bool restrictions,
              NamespaceRestrictionFormat format, Roles **ret) {
        _cleanup_(roles_freep) Roles *r = NULL;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->restrictions = restrictions;
        r->format = format;
        r->base_arn = strdup(strempty(base_arn));
        if (!r->base_arn)
                return -ENOMEM;
        /* kube2iam stores RoleARN(--default-role) even when no default role is given, which with a
         * base ARN makes the bare base ARN every unannotated pod's "role" (an empty 200 on the role
         * list). docs/compatibility.md changes that on purpose: without --default-role there is no fallback. */
        if (!isempty(default_role)) {
                r->default_arn = roles_arn(r, default_role);
                if (!r->default_arn)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

Roles *roles_free(Roles *r) {
        if (!r)
                return NULL;
        free(r->base_arn);
        free(r->default_arn);
        free(r);
        return NULL;
}

char *roles_arn(const Roles *r, const char *name) {
        if (startswith_no_case(name, "arn:"))
                return strdup(name);
        return strconcat3(r->base_arn, name, "");
}

const char *roles_base_arn(const Roles *r) {
        return r->base_arn;
}

const char *roles_default_arn(const Roles *r) {
        return r->default_arn;
}

int roles_choose(const Roles *r, const RoleCandidates *c, char **ret_arn, RoleSource *ret_source) {
        char *arn;
        RoleSource source;

        if (c->annotation) {
                arn = roles_arn(r, c->annotation);
                source = ROLE_SOURCE_ANNOTATION;
        } else if (!isempty(c->service_account)) {
                arn = roles_arn(r, c->service_account);
                source = ROLE_SOURCE_SERVICE_ACCOUNT;
        } else if (!isempty(c->namespace_default)) {
                arn = roles_arn(r, c->namespace_default);
                source = ROLE_SOURCE_NAMESPACE_DEFAULT;
        } else if (!isempty(r->default_arn)) {
                arn = strdup(r->default_arn);
                source = ROLE_SOURCE_DEFAULT;
        } else
                return -ENOENT;
        if (!arn)
                return -ENOMEM;
        *ret_arn = arn;
        if (ret_source)
                *ret_source = source;
        return 0;
}

int roles_for_pod(const Roles *r, const char *annotation, char **ret_arn, RoleSource *ret_source) {
        return roles_choose(r, &(const RoleCandidates){ .annotation = annotation }, ret_arn, ret_source);
}

bool roles_glob_match(const char *p, const char *s) {
        const char *star_p = NULL, *star_s = NULL;

        /* iterative wildcard match with one backtrack point: linear enough for annotation sizes */
        while (*s) {
                if (*p == '*') {
                        star_p = p++;
                        star_s = s;
                } else if (*p == *s) {
                        p++;
                        s++;
                } else if (star_p) {
                        p = star_p + 1;
                        s = ++star_s;
                } else
                        return false;
        }
        while (*p == '*')
                p++;
        return *p == '\0';
}

int roles_regexp_search(const char *pattern, const char *s) {
        pcre2_code *re;
        pcre2_match_data *md;
        pcre2_match_context *mc;
        PCRE2_SIZE erroff;
        int errcode, rc;

        if (strlen(pattern) > ROLES_PATTERN_MAX)
                return -EINVAL;
        re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errcode, &erroff, NULL);
        if (!re)
                return -EINVAL;
        md = pcre2_match_data_create_from_pattern(re, NULL);
        mc = pcre2_match_context_create(NULL);
        if (!md || !mc) {
                pcre2_match_data_free(md);
                pcre2_match_context_free(mc);
                pcre2_code_free(re);
                return -ENOMEM;
        }
        (void) pcre2_set_match_limit(mc, ROLES_REGEXP_MATCH_LIMIT);
        rc = pcre2_match(re, (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, 0, md, mc);
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        pcre2_code_free(re);
        if (rc >= 0)
                return 1;
        if (rc == PCRE2_ERROR_NOMATCH)
                return 0;
        return -EINVAL; /* limit hit, bad UTF-8: treated as no match */
}

bool roles_namespace_allows(const Roles *r, const char *role_arn, bool namespace_known,
                            char *const *allowed) {
        return roles_namespace_match(r, role_arn, namespace_known, allowed, NULL);
}

bool roles_namespace_match(const Roles *r, const char *role_arn, bool namespace_known, char *const *allowed,
                           const char **ret_pattern) {
        if (ret_pattern)
                *ret_pattern = NULL;
        if (!r->restrictions || (r->default_arn && streq(role_arn, r->default_arn)))
                return true;
        if (!namespace_known)
                return false;
        for (size_t i = 0; allowed && allowed[i]; i++) {
                _cleanup_free_ char *p = roles_arn(r, allowed[i]);
                bool match;

                if (!p)
                        return false;
                if (r->format == NAMESPACE_RESTRICTION_GLOB)
                        match = roles_glob_match(p, role_arn);
                else {
                        int m = roles_regexp_search(p, role_arn);
                        if (m < 0)
                                log_debug("Invalid namespace role pattern %s, treated as no match", p);
                        match = m > 0;
                }
                if (match) {
                        log_debug("Role: %s matched %s on namespace.", role_arn, p);
                        if (ret_pattern)
                                *ret_pattern = allowed[i];
                        return true;
                }
        }
        return false;
}

const char *roles_list_name(const Roles *r, const char *arn) {
        const char *rest;

        if (!isempty(r->base_arn) && (rest = startswith(arn, r->base_arn)))
                return rest;
        return arn;
}

bool roles_url_matches(const Roles *r, const char *url_role, const char *pod_arn) {
        _cleanup_free_ char *wanted = roles_arn(r, url_role);
        return wanted && streq(wanted, pod_arn);
}

bool roles_restrictions(const Roles *r) {
        return r->restrictions;
}
