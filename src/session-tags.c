/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

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

static bool key_reserved(const char *key) {
        if (strncasecmp(key, "aws:", 4) == 0)
                return true;
        for (SessionTag t = 0; t < _SESSION_TAG_MAX; t++)
                if (strcasecmp(key, tag_keys[t]) == 0)
                        return true;
        return false;
}

_printf_(2, 3) static int why(char **ret_why, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret_why, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret_why = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static int compare_pairs(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Checks one member of the annotation's object against STS's rules and the ones above. */
static int check_member(const cJSON *item, const cJSON *object, char **ret_why) {
        if (!cJSON_IsString(item))
                return why(ret_why, "the value of %s is not a string", item->string);
        if (!sts_tag_key_valid(item->string))
                return why(ret_why, "key \"%s\" breaks STS's rules for tag keys", item->string);
        if (!sts_tag_value_valid(item->valuestring))
                return why(ret_why, "the value of %s breaks STS's rules for tag values", item->string);
        if (key_reserved(item->string))
                return why(ret_why, "key %s is reserved: the node sets it", item->string);
        for (const cJSON *o = object->child; o != item; o = o->next)
                if (strcasecmp(o->string, item->string) == 0)
                        return why(ret_why, "key %s appears twice (STS ignores case)", item->string);
        return 0;
}

/* The annotation as JSON of the expected type (an object, else a list): 0 with *ret_root NULL
 * when absent or empty, 1 with *ret_root set, -EINVAL with *ret_why. */
static int annotation_json(const char *annotation, bool object, cJSON **ret_root, char **ret_why) {
        cJSON *root;

        *ret_root = NULL;
        *ret_why = NULL;
        if (isempty(annotation))
                return 0;
        if (strlen(annotation) > SESSION_TAGS_ANNOTATION_MAX)
                return why(ret_why, "%s", "longer than 32 KiB");
        root = cJSON_Parse(annotation);
        if (object ? !cJSON_IsObject(root) : !cJSON_IsArray(root)) {
                cJSON_Delete(root);
                return why(ret_why, "%s", object ? "not a JSON object" : "not a JSON list");
        }
        *ret_root = root;
        return 1;
}

int session_tags_parse_annotation(const char *annotation, char ***ret, char **ret_why) {
        _cleanup_strv_free_ char **l = NULL;
        cJSON *root, *item;
        size_t n = 0;
        int r = 0;

        *ret = NULL;
        r = annotation_json(annotation, true, &root, ret_why);
        if (r <= 0)
                return r;
        r = 0;
        cJSON_ArrayForEach(item, root) {
                if (++n > SESSION_TAGS_NAMESPACE_MAX) {
                        r = why(ret_why, "%s", "more than 44 tags");
                        break;
                }
                r = check_member(item, root, ret_why);
                if (r >= 0 && (strv_extend(&l, item->string) < 0 || strv_extend(&l, item->valuestring) < 0))
                        r = -ENOMEM;
                if (r < 0)
                        break;
        }
        cJSON_Delete(root);
        if (r < 0)
                return r;
        /* sorted by key: one namespace's tags make one cache key, whatever order they were written in */
        if (n > 0)
                qsort(l, n, 2 * sizeof(char *), compare_pairs);
        *ret = TAKE_PTR(l);
        return 0;
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int session_policies_parse_annotation(const char *annotation, char ***ret, char **ret_why) {
        _cleanup_strv_free_ char **l = NULL;
        cJSON *root, *item;
        size_t n = 0;
        int r = 0;

        *ret = NULL;
        r = annotation_json(annotation, false, &root, ret_why);
        if (r <= 0)
                return r;
        r = 0;
        cJSON_ArrayForEach(item, root) {
                if (++n > STS_POLICY_ARNS_MAX)
                        r = why(ret_why, "%s", "more than 10 policy ARNs");
                else if (!cJSON_IsString(item) || !sts_policy_arn_valid(item->valuestring))
                        r = why(ret_why, "%s", "an element is not a policy ARN STS accepts");
                else if (strv_contains(l, item->valuestring))
                        r = why(ret_why, "%s appears twice", item->valuestring);
                else if (strv_extend(&l, item->valuestring) < 0)
                        r = -ENOMEM;
                if (r < 0)
                        break;
        }
        cJSON_Delete(root);
        if (r < 0)
                return r;
        /* sorted: one namespace's list makes one cache key, whatever order it was written in */
        if (n > 0)
                qsort(l, n, sizeof(char *), compare_strings);
        *ret = TAKE_PTR(l);
        return 0;
}

int session_tags_for_pod(const SessionTagsSettings *s, const KubePod *pod, char *const *ns_tags,
                         char **ret) {
        StsTag tags[STS_TAGS_MAX];
        size_t n = 0;

        if (!s || !pod || !ret)
                return -EINVAL;
        for (SessionTag t = 0; t < _SESSION_TAG_MAX; t++) {
                const char *v = tag_value(s, pod, t);

                if ((s->tags & (1U << t)) && v)
                        tags[n++] = (StsTag){ .key = tag_keys[t], .value = v };
        }
        for (size_t i = 0; s->tags && ns_tags && ns_tags[i] && ns_tags[i + 1]; i += 2) {
                if (n >= STS_TAGS_MAX)
                        return -EINVAL;
                tags[n++] = (StsTag){ .key = ns_tags[i], .value = ns_tags[i + 1] };
        }
        return sts_session_tags_params(tags, n, ret);
}
