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

/* The pod's session parameters (sts_session_tags_params()): "" when no tags are on. -EINVAL when
 * a value STS would refuse (then the pod gets no credentials rather than fewer tags), -ENOMEM. */
int session_tags_for_pod(const SessionTagsSettings *s, const KubePod *pod, char **ret);
