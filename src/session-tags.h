/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Session tags (--session-tags): EKS Pod Identity's tag keys, which of them the node sends
 * (a set of SessionTag bits), and the AssumeRole session parameters they make for one pod
 * (docs/sessions.md). The values come from the pod (namespace, service account, name, uid) and
 * from --cluster-name / --cluster-arn; a tag whose value is unknown is left out. */

#include <stdbool.h>

typedef struct KubePod KubePod;

typedef enum SessionTag {
        SESSION_TAG_CLUSTER_ARN,
        SESSION_TAG_CLUSTER_NAME,
        SESSION_TAG_NAMESPACE,
        SESSION_TAG_SERVICE_ACCOUNT,
        SESSION_TAG_POD_NAME,
        SESSION_TAG_POD_UID,
        _SESSION_TAG_MAX,
} SessionTag;

#define SESSION_TAGS_ALL ((1U << _SESSION_TAG_MAX) - 1)

/* The tag key, as Pod Identity names it ("kubernetes-namespace"). */
const char *session_tag_key(SessionTag t);
/* "a,b,...": the set of tags the list names; -EINVAL for an unknown or empty name. */
int session_tags_parse(const char *list, unsigned *ret);

typedef struct SessionTagsSettings {
        unsigned tags;            /* SessionTag bits; 0: no tags */
        const char *cluster_name; /* --cluster-name, NULL when not given */
        const char *cluster_arn;  /* --cluster-arn, NULL when not given */
} SessionTagsSettings;

/* A namespace adds at most this many tags: with the node's six, STS's limit of 50. */
#define SESSION_TAGS_NAMESPACE_MAX 44
/* The annotation's size: 44 tags at STS's key and value limits in JSON fit well below this. */
#define SESSION_TAGS_ANNOTATION_MAX (32 * 1024)

/* The namespace annotation (KUBE_SESSION_TAGS_ANNOTATION): a JSON object of string values, every
 * key and value within STS's rules, keys unique regardless of case, no reserved key (Pod
 * Identity's six, whether sent or not, and "aws:..."), at most SESSION_TAGS_NAMESPACE_MAX.
 * *ret: key, value, ... sorted by key, NULL for none (annotation NULL or ""). -EINVAL with *ret_why
 * (owned) saying what broke, -ENOMEM. */
int session_tags_parse_annotation(const char *annotation, char ***ret, char **ret_why);

/* The session-policy-arns annotation (KUBE_SESSION_POLICIES_ANNOTATION): a JSON list of at most
 * STS_POLICY_ARNS_MAX managed policy ARNs STS accepts, no duplicates. *ret: sorted, NULL for none.
 * -EINVAL with *ret_why (owned), -ENOMEM. */
int session_policies_parse_annotation(const char *annotation, char ***ret, char **ret_why);

/* The pod's session parameters (sts_session_tags_params()): "" when no tags are on; the node's
 * tags, then ns_tags (from session_tags_parse_annotation(), may be NULL) when any tag is on.
 * -EINVAL when a value STS would refuse (then the pod gets no credentials rather than fewer
 * tags), -ENOMEM. */
int session_tags_for_pod(const SessionTagsSettings *s, const KubePod *pod, char *const *ns_tags, char **ret);
