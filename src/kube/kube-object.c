/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube-object.h"
#include "macro.h"
#include "watch-parser.h"

static const cJSON *get(const cJSON *o, const char *key) {
        return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* A string member, NULL when absent or null; -EBADMSG when something else. */
static int get_str(const cJSON *o, const char *key, const char **ret) {
        const cJSON *v = get(o, key);

        if (!v || cJSON_IsNull(v)) {
                *ret = NULL;
                return 0;
        }
        if (!cJSON_IsString(v))
                return -EBADMSG;
        *ret = v->valuestring;
        return 0;
}

const char *kube_object_uid(const cJSON *o) {
        const char *uid = NULL;
        (void) get_str(get(o, "metadata"), "uid", &uid);
        return isempty(uid) ? NULL : uid;
}

int kube_pod_from_json(const cJSON *pod, const KubeObjectKeys *keys, StorePod **ret) {
        _cleanup_(store_pod_freep) StorePod *p = NULL;
        const cJSON *meta = get(pod, "metadata"), *spec = get(pod, "spec"), *status = get(pod, "status");
        const cJSON *annotations = get(meta, "annotations"), *v;
        const char *uid, *ns, *name, *s;
        int r;

        if (!cJSON_IsObject(meta) || get_str(meta, "uid", &uid) < 0 || get_str(meta, "namespace", &ns) < 0 ||
            get_str(meta, "name", &name) < 0 || isempty(uid) || isempty(ns) || isempty(name))
                return -EBADMSG;
        r = store_pod_new(uid, ns, name, &p);
        if (r < 0)
                return r;

        v = get(meta, "deletionTimestamp");
        p->terminating = v && !cJSON_IsNull(v);

        if (annotations && !cJSON_IsNull(annotations) && !cJSON_IsObject(annotations))
                return -EBADMSG;
        if (keys->role_key) {
                if (get_str(annotations, keys->role_key, &s) < 0)
                        return -EBADMSG;
                if (s && !(p->role = strdup(s)))
                        return -ENOMEM;
        }
        if (keys->external_id_key) {
                if (get_str(annotations, keys->external_id_key, &s) < 0)
                        return -EBADMSG;
                if (s && !(p->external_id = strdup(s)))
                        return -ENOMEM;
        }

        v = get(spec, "hostNetwork");
        if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v))
                return -EBADMSG;
        p->host_network = cJSON_IsTrue(v);

        if (get_str(status, "phase", &s) < 0)
                return -EBADMSG;
        if (s) {
                char *copy = strdup(s);
                if (!copy)
                        return -ENOMEM;
                free_and_replace(p->phase, copy);
        }
        if (get_str(status, "podIP", &s) < 0)
                return -EBADMSG;
        if (!isempty(s) && (r = store_pod_add_ip(p, s)) < 0)
                return r == -E2BIG ? -EBADMSG : r;
        v = get(status, "podIPs");
        if (v && !cJSON_IsNull(v)) {
                const cJSON *i;
                if (!cJSON_IsArray(v))
                        return -EBADMSG;
                cJSON_ArrayForEach(i, v) {
                        if (get_str(i, "ip", &s) < 0)
                                return -EBADMSG;
                        if (!isempty(s) && (r = store_pod_add_ip(p, s)) < 0)
                                return r == -E2BIG ? -EBADMSG : r;
                }
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int kube_namespace_from_json(const cJSON *ns, const KubeObjectKeys *keys, const char **ret_name,
                             const char **ret_annotation) {
        const cJSON *meta = get(ns, "metadata"), *annotations = get(meta, "annotations");
        const char *name, *a = NULL;

        if (get_str(meta, "name", &name) < 0 || isempty(name))
                return -EBADMSG;
        if (annotations && !cJSON_IsNull(annotations) && !cJSON_IsObject(annotations))
                return -EBADMSG;
        if (keys->namespace_key && get_str(annotations, keys->namespace_key, &a) < 0)
                return -EBADMSG;
        *ret_name = name;
        *ret_annotation = a;
        return 0;
}
