/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube-object.h"
#include "macro.h"
#include "string-util.h"
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

int kube_pod_from_json(const cJSON *pod, const KubeObjectKeys *keys, KubePod **ret) {
        _cleanup_(kube_pod_freep) KubePod *p = NULL;
        const cJSON *meta = get(pod, "metadata"), *spec = get(pod, "spec"), *status = get(pod, "status");
        const cJSON *annotations = get(meta, "annotations"), *v;
        const char *uid, *ns, *name, *s;
        int r;

        if (!cJSON_IsObject(meta) || get_str(meta, "uid", &uid) < 0 || get_str(meta, "namespace", &ns) < 0 ||
            get_str(meta, "name", &name) < 0 || isempty(uid) || isempty(ns) || isempty(name))
                return -EBADMSG;
        r = kube_pod_new(uid, ns, name, &p);
        if (r < 0)
                return r;

        if (get_str(meta, "resourceVersion", &s) < 0)
                return -EBADMSG;
        if (!isempty(s) && !(p->resource_version = strdup(s)))
                return -ENOMEM;

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
        if (get_str(spec, "serviceAccountName", &s) < 0)
                return -EBADMSG;
        if (!isempty(s) && !(p->service_account = strdup(s)))
                return -ENOMEM;

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
        if (!isempty(s) && (r = kube_pod_add_ip(p, s)) < 0)
                return r == -E2BIG ? -EBADMSG : r;
        v = get(status, "podIPs");
        if (v && !cJSON_IsNull(v)) {
                const cJSON *i;
                if (!cJSON_IsArray(v))
                        return -EBADMSG;
                cJSON_ArrayForEach(i, v) {
                        if (get_str(i, "ip", &s) < 0)
                                return -EBADMSG;
                        if (!isempty(s) && (r = kube_pod_add_ip(p, s)) < 0)
                                return r == -E2BIG ? -EBADMSG : r;
                }
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int kube_namespace_from_json(const cJSON *ns, const KubeObjectKeys *keys, KubeNamespaceFields *ret) {
        const cJSON *meta = get(ns, "metadata"), *annotations = get(meta, "annotations");
        const char *const *const want[] = { &keys->namespace_key, &keys->session_tags_key,
                                            &keys->session_policies_key, &keys->default_role_key };
        const char **const out[] = { &ret->annotation, &ret->session_tags, &ret->session_policies,
                                     &ret->default_role };

        *ret = (KubeNamespaceFields){};
        if (get_str(meta, "name", &ret->name) < 0 || isempty(ret->name))
                return -EBADMSG;
        if (annotations && !cJSON_IsNull(annotations) && !cJSON_IsObject(annotations))
                return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                if (*want[i] && get_str(annotations, *want[i], out[i]) < 0)
                        return -EBADMSG;
        return 0;
}

int kube_service_account_from_json(const cJSON *sa, KubeServiceAccountFields *ret) {
        const cJSON *meta = get(sa, "metadata"), *annotations = get(meta, "annotations");

        *ret = (KubeServiceAccountFields){};
        if (get_str(meta, "namespace", &ret->namespace) < 0 || isempty(ret->namespace) ||
            get_str(meta, "name", &ret->name) < 0 || isempty(ret->name))
                return -EBADMSG;
        if (annotations && !cJSON_IsNull(annotations) && !cJSON_IsObject(annotations))
                return -EBADMSG;
        return get_str(annotations, KUBE_SERVICE_ACCOUNT_ROLE_ANNOTATION, &ret->role_arn);
}

/* ---- list bodies, one item at a time ---- */

static const char *skip_ws(const char *p, const char *end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

/* p at the opening quote; returns the position after the closing quote, NULL if the body ends. */
static const char *skip_string(const char *p, const char *end) {
        for (p++; p < end; p++) {
                if (*p == '\\') {
                        p++;
                        continue;
                }
                if (*p == '"')
                        return p + 1;
        }
        return NULL;
}

/* Returns the position after the value at p, NULL if the body ends first; p itself when no value
 * starts there. Brackets are only counted, not matched: the item's own parse (cJSON) validates it. */
static const char *skip_value(const char *p, const char *end) {
        size_t depth = 0;

        if (p >= end)
                return NULL;
        if (*p == '"')
                return skip_string(p, end);
        if (*p != '{' && *p != '[') {
                while (p < end && !strchr(",}] \t\r\n", *p))
                        p++;
                return p < end ? p : NULL;
        }
        while (p < end) {
                if (*p == '"') {
                        p = skip_string(p, end);
                        if (!p)
                                return NULL;
                        continue;
                }
                if (*p == '{' || *p == '[')
                        depth++;
                else if (*p == '}' || *p == ']') {
                        if (--depth == 0)
                                return p + 1;
                }
                p++;
        }
        return NULL;
}

/* True when the key at p (a quoted string) is exactly want. */
static bool key_is(const char *p, const char *key_end, const char *want) {
        size_t n = strlen(want);
        return (size_t) (key_end - p) == n + 2 && memcmp(p + 1, want, n) == 0;
}

/* The items array at p: each element to cb. 0 at its end, 1 when the body ends inside an element. */
static int scan_items(const char **pp, const char *end, kube_list_item_t cb, void *userdata) {
        const char *p = skip_ws(*pp, end);

        if (p < end && *p == 'n') /* "items": null */
                return (p = skip_value(p, end)) ? (*pp = p, 0) : -EBADMSG;
        if (p >= end || *p != '[')
                return -EBADMSG;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') {
                *pp = p + 1;
                return 0;
        }
        for (;;) {
                const char *v = skip_value(p, end);
                int r;

                if (v == p)
                        return -EBADMSG;
                if (!v) {
                        r = p < end ? cb(p, (size_t) (end - p), false, userdata) : -EBADMSG;
                        return r < 0 ? r : 1;
                }
                r = cb(p, (size_t) (v - p), true, userdata);
                if (r < 0)
                        return r;
                p = skip_ws(v, end);
                if (p < end && *p == ']') {
                        *pp = p + 1;
                        return 0;
                }
                if (p >= end || *p != ',')
                        return -EBADMSG;
                p = skip_ws(p + 1, end);
        }
}

int kube_list_scan(const char *body, size_t len, kube_list_item_t cb, void *userdata, cJSON **ret_metadata) {
        const char *p = body, *end = body + len;
        _cleanup_(json_deletep) cJSON *meta = NULL;

        p = skip_ws(p, end);
        if (p >= end || *p != '{')
                return -EBADMSG;
        p = skip_ws(p + 1, end);
        while (p < end && *p != '}') {
                const char *k = p, *k_end, *v;
                int r;

                if (*p != '"' || !(k_end = skip_string(p, end)))
                        return -EBADMSG;
                p = skip_ws(k_end, end);
                if (p >= end || *p != ':')
                        return -EBADMSG;
                p = skip_ws(p + 1, end);
                if (key_is(k, k_end, "items")) {
                        r = scan_items(&p, end, cb, userdata);
                        if (r != 0) {
                                if (r > 0)
                                        *ret_metadata = TAKE_PTR(meta);
                                return r;
                        }
                } else {
                        v = skip_value(p, end);
                        if (!v || v == p)
                                return -EBADMSG;
                        if (key_is(k, k_end, "metadata") && !meta) {
                                meta = cJSON_ParseWithLength(p, (size_t) (v - p));
                                if (!cJSON_IsObject(meta))
                                        return -EBADMSG;
                        }
                        p = v;
                }
                p = skip_ws(p, end);
                if (p < end && *p == ',')
                        p = skip_ws(p + 1, end);
                else if (p >= end || *p != '}')
                        return -EBADMSG;
        }
        if (p >= end || skip_ws(p + 1, end) != end)
                return -EBADMSG;
        *ret_metadata = TAKE_PTR(meta);
        return 0;
}

/* The string value of key directly inside the object at p (one level: nested objects are
 * skipped whole), if the bytes reach it; only name characters are accepted. */
static bool find_member(const char *p, const char *end, const char *key, const char **ret, size_t *ret_len) {
        p = skip_ws(p, end);
        if (p >= end || *p != '{')
                return false;
        p = skip_ws(p + 1, end);
        while (p < end && *p == '"') {
                const char *k = p, *k_end = skip_string(p, end), *v;
                if (!k_end)
                        return false;
                p = skip_ws(k_end, end);
                if (p >= end || *p != ':')
                        return false;
                p = skip_ws(p + 1, end);
                if (key_is(k, k_end, key)) {
                        *ret = p;
                        v = skip_value(p, end);
                        *ret_len = v ? (size_t) (v - p) : (size_t) (end - p);
                        return true;
                }
                v = skip_value(p, end);
                if (!v || v == p)
                        return false;
                p = skip_ws(v, end);
                if (p < end && *p == ',')
                        p = skip_ws(p + 1, end);
        }
        return false;
}

static void append_part(StrBuf *b, const char *meta, size_t meta_len, const char *key) {
        const char *v;
        size_t n;

        if (meta && find_member(meta, meta + meta_len, key, &v, &n) && n >= 2 &&
            n - 2 <= KUBE_IDENTITY_MAX && v[0] == '"' && v[n - 1] == '"') {
                bool ok = n > 2;
                for (size_t i = 1; i + 1 < n; i++)
                        ok = ok && (isalnum((unsigned char) v[i]) || strchr("-._", v[i]));
                if (ok) {
                        strbuf_append_n(b, v + 1, n - 2);
                        return;
                }
        }
        strbuf_append_char(b, '?');
}

int kube_object_identity(const char *obj, size_t len, char **ret) {
        _cleanup_strbuf_ StrBuf b = {};
        const char *meta = NULL;
        size_t meta_len = 0;

        if (!find_member(obj, obj + len, "metadata", &meta, &meta_len))
                meta = NULL;
        append_part(&b, meta, meta_len, "namespace");
        strbuf_append_char(&b, '/');
        append_part(&b, meta, meta_len, "name");
        strbuf_append(&b, " uid ");
        append_part(&b, meta, meta_len, "uid");
        if (strbuf_error(&b) < 0)
                return -ENOMEM;
        *ret = strbuf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}
