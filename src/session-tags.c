/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sts.h"
#include "kube/kube-pod.h"
#include "session-tags.h"
#include "string-util.h"

static const char *const tag_keys[_SESSION_TAG_MAX] = {
        [SESSION_TAG_CLUSTER_ARN] = "eks-cluster-arn",
        [SESSION_TAG_CLUSTER_NAME] = "eks-cluster-name",
        [SESSION_TAG_NAMESPACE] = "kubernetes-namespace",
        [SESSION_TAG_SERVICE_ACCOUNT] = "kubernetes-service-account",
        [SESSION_TAG_POD_NAME] = "kubernetes-pod-name",
        [SESSION_TAG_POD_UID] = "kubernetes-pod-uid",
};

const char *session_tag_key(SessionTag t) {
        return t < _SESSION_TAG_MAX ? tag_keys[t] : NULL;
}

int session_tags_parse(const char *list, unsigned *ret) {
        unsigned set = 0;
        const char *p = list;

        if (!list || !ret)
                return -EINVAL;
        for (;;) {
                size_t n = strcspn(p, ",");
                SessionTag t;

                for (t = 0; t < _SESSION_TAG_MAX; t++)
                        if (strlen(tag_keys[t]) == n && strncmp(p, tag_keys[t], n) == 0)
                                break;
                if (t == _SESSION_TAG_MAX)
                        return -EINVAL;
                set |= 1U << t;
                if (!p[n])
                        break;
                p += n + 1;
        }
        *ret = set;
        return 0;
}

static const char *tag_value(const SessionTagsSettings *s, const KubePod *pod, SessionTag t) {
        switch (t) {
        case SESSION_TAG_CLUSTER_ARN:
                return s->cluster_arn;
        case SESSION_TAG_CLUSTER_NAME:
                return s->cluster_name;
        case SESSION_TAG_NAMESPACE:
                return pod->namespace;
        case SESSION_TAG_SERVICE_ACCOUNT:
                return pod->service_account;
        case SESSION_TAG_POD_NAME:
                return pod->name;
        case SESSION_TAG_POD_UID:
                return pod->uid;
        default:
                return NULL;
        }
}

int session_tags_for_pod(const SessionTagsSettings *s, const KubePod *pod, char **ret) {
        StsTag tags[_SESSION_TAG_MAX];
        size_t n = 0;

        if (!s || !pod || !ret)
                return -EINVAL;
        for (SessionTag t = 0; t < _SESSION_TAG_MAX; t++) {
                const char *v = tag_value(s, pod, t);

                if ((s->tags & (1U << t)) && v)
                        tags[n++] = (StsTag){ .key = tag_keys[t], .value = v };
        }
        return sts_session_tags_params(tags, n, ret);
}
