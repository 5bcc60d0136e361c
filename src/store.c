/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kube/kube-object.h"
#include "log.h"
#include "session-tags.h"
#include "store.h"
#include "string-util.h"
#include "strmap.h"

/* ---- the store ---- */

typedef struct IpSlot {
        char *ip;
        StorePod *pods[MAX_PODS_PER_IP];
        size_t n;
        bool overflow; /* more than MAX_PODS_PER_IP claimed it: never answer */
} IpSlot;

/* What changed since the last store_dispatch_changes(), in the order it happened. Played and
 * emptied once per loop turn, so it holds at most what one turn applied: the watch events of what
 * libcurl read from the socket in that turn, or one complete list, both bounded where they are
 * read (MAX_WATCH_EVENT_BYTES per event, KUBE_LIST_PAGE_MAX_BYTES per page). */
typedef struct PodChange {
        StorePodEvent event;
        StorePod *pod; /* in the store, or retired (replaced or removed) until the dispatch */
} PodChange;

typedef struct Changes {
        PodChange *pods;
        size_t n_pods, cap_pods;
        StorePod **retired; /* pods no longer in the store that a PodChange still points to */
        size_t n_retired, cap_retired;
        char **namespaces; /* names whose allowed roles changed, without duplicates */
        bool all_namespaces;
        StrMap ip_set; /* ip -> the copy in ips (deduplication) */
        char **ips;    /* IPs whose answer may have changed, in order */
        size_t n_ips, cap_ips;
        bool all_ips;
        bool pending; /* something is recorded: the hook has been called */
        bool oom;     /* a change could not be recorded: the next dispatch reports everything */
} Changes;

struct Store {
        StrMap pods;       /* uid -> StorePod */
        StrMap ips;        /* ip -> IpSlot */
        StrMap namespaces; /* name -> StoreNamespace */
        bool namespaces_known;
        StrMap service_accounts; /* "namespace/name" -> StoreServiceAccount (only those naming a role) */
        StoreServiceAccounts service_accounts_state;
        bool pods_unconfirmed; /* store_set_pods_unconfirmed(): lookups vouch for no pod */
        StrMap gone;           /* uids the API server said are gone (store_pod_forget()); values unused */
        Changes changes;
        bool dispatching;
        store_change_hook_t hook;
        void *hook_userdata;
};

static void pod_free_void(void *p) {
        store_pod_free(p);
}

static void ip_slot_free(void *v) {
        IpSlot *s = v;
        if (!s)
                return;
        free(s->ip);
        free(s);
}

static StoreNamespace *namespace_free(StoreNamespace *n) {
        if (!n)
                return NULL;
        free(n->name);
        free(n->annotation);
        strv_free(n->allowed_roles);
        free(n->session_tags_annotation);
        strv_free(n->session_tags);
        free(n->session_policies_annotation);
        strv_free(n->session_policies);
        free(n->default_role);
        free(n);
        return NULL;
}

static void namespace_free_void(void *n) {
        namespace_free(n);
}

static void service_account_free(void *p);

int store_new(Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (strmap_init(&s->pods) < 0 || strmap_init(&s->ips) < 0 || strmap_init(&s->namespaces) < 0 ||
            strmap_init(&s->service_accounts) < 0 || strmap_init(&s->changes.ip_set) < 0 ||
            strmap_init(&s->gone) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

static void changes_done(Changes *c);

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        strmap_done(&s->ips, ip_slot_free);
        strmap_done(&s->pods, pod_free_void);
        strmap_done(&s->namespaces, namespace_free_void);
        strmap_done(&s->service_accounts, service_account_free);
        strmap_done(&s->gone, free);
        changes_done(&s->changes);
        free(s);
        return NULL;
}

static bool pod_indexable(const StorePod *p) {
        /* kube2iam's rule (terminal phases are not indexed) plus: hostNetwork pods share the node's
         * IP and their traffic never reaches us through the redirect, so they must not shadow it */
        return !p->host_network && !streq(p->phase, "Succeeded") && !streq(p->phase, "Failed");
}

/* ---- recording changes (nothing is called back here: store_dispatch_changes() plays them) ---- */

static void changes_mark(Store *s) {
        bool first = !s->changes.pending;

        s->changes.pending = true;
        if (first && s->hook)
                s->hook(s, s->hook_userdata);
}

/* A change could not be recorded: the next dispatch reports every pod, namespace and IP instead,
 * so nothing is missed; the pod log is dropped (it may point to a pod that could not be retired). */
static void changes_oom(Store *s) {
        s->changes.oom = true;
        s->changes.n_pods = 0;
        changes_mark(s);
}

static bool grow(void **array, size_t *cap, size_t n, size_t size) {
        size_t c = MAX((size_t) 16, *cap * 2);
        void *a;

        if (n < *cap)
                return true;
        a = reallocarray(*array, c, size);
        if (!a)
                return false;
        *array = a;
        *cap = c;
        return true;
}

static void record_pod(Store *s, StorePodEvent event, StorePod *p) {
        Changes *c = &s->changes;

        if (c->oom) {
                changes_mark(s);
                return;
        }
        if (!grow((void **) &c->pods, &c->cap_pods, c->n_pods, sizeof(PodChange)))
                return changes_oom(s);
        c->pods[c->n_pods++] = (PodChange){ event, p };
        changes_mark(s);
}

/* p has left the store: kept until the dispatch, since the log may point to it. */
static void retire(Store *s, StorePod *p) {
        Changes *c = &s->changes;

        if (!grow((void **) &c->retired, &c->cap_retired, c->n_retired, sizeof(StorePod *))) {
                changes_oom(s); /* the log no longer points to p */
                store_pod_free(p);
                return;
        }
        c->retired[c->n_retired++] = p;
}

static void record_ip(Store *s, const char *ip) {
        Changes *c = &s->changes;
        char *copy;

        if (c->all_ips || c->oom || strmap_get(&c->ip_set, ip)) {
                changes_mark(s);
                return;
        }
        if (!grow((void **) &c->ips, &c->cap_ips, c->n_ips, sizeof(char *)) || !(copy = strdup(ip)))
                return changes_oom(s);
        if (strmap_put(&c->ip_set, copy, copy) < 0) {
                free(copy);
                return changes_oom(s);
        }
        c->ips[c->n_ips++] = copy;
        changes_mark(s);
}

static void record_namespace(Store *s, const char *name) {
        Changes *c = &s->changes;

        if (!c->all_namespaces && !strv_contains(c->namespaces, name) &&
            strv_extend(&c->namespaces, name) < 0)
                c->all_namespaces = true; /* asks for every pod to be looked at again: never less */
        changes_mark(s);
}

static void record_all_namespaces(Store *s) {
        s->changes.all_namespaces = true;
        changes_mark(s);
}

static void changes_reset(Changes *c) {
        for (size_t i = 0; i < c->n_retired; i++)
                store_pod_free(c->retired[i]);
        strmap_clear(&c->ip_set, free);
        c->namespaces = strv_free(c->namespaces);
        c->n_pods = c->n_retired = c->n_ips = 0;
        c->all_namespaces = c->all_ips = c->oom = c->pending = false;
}

static void changes_done(Changes *c) {
        changes_reset(c);
        strmap_done(&c->ip_set, NULL);
        free(c->pods);
        free(c->retired);
        free(c->ips);
}

static void unindex(Store *s, StorePod *p) {
        if (!p->indexed)
                return;
        for (char **ip = p->ips; ip && *ip; ip++) {
                IpSlot *slot = strmap_get(&s->ips, *ip);
                if (!slot)
                        continue;
                for (size_t i = 0; i < slot->n; i++)
                        if (slot->pods[i] == p) {
                                memmove(slot->pods + i, slot->pods + i + 1,
                                        (slot->n - i - 1) * sizeof(StorePod *));
                                slot->n--;
                                break;
                        }
                if (slot->n == 0) {
                        strmap_remove(&s->ips, slot->ip);
                        ip_slot_free(slot);
                }
        }
        p->indexed = false;
}

static int index_pod(Store *s, StorePod *p) {
        if (!pod_indexable(p))
                return 0;
        p->indexed = true;
        for (char **ip = p->ips; ip && *ip; ip++) {
                IpSlot *slot = strmap_get(&s->ips, *ip);
                if (!slot) {
                        slot = calloc(1, sizeof *slot);
                        if (!slot || !(slot->ip = strdup(*ip)) || strmap_put(&s->ips, slot->ip, slot) < 0) {
                                ip_slot_free(slot);
                                unindex(s, p);
                                return -ENOMEM;
                        }
                }
                if (slot->n >= MAX_PODS_PER_IP) {
                        if (!slot->overflow)
                                log_warning("More than %d pods claim IP %s; it is not served until they go",
                                            MAX_PODS_PER_IP, *ip);
                        slot->overflow = true;
                        continue;
                }
                slot->pods[slot->n++] = p;
        }
        return 0;
}

static bool strv_equal(char **a, char **b) {
        size_t n = strv_length(a);
        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

static bool str_equal_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && streq(a, b));
}

static bool pod_equal(const StorePod *a, const StorePod *b) {
        return streq(a->namespace, b->namespace) && streq(a->name, b->name) && streq(a->phase, b->phase) &&
               a->host_network == b->host_network && a->terminating == b->terminating &&
               str_equal_null(a->role, b->role) && str_equal_null(a->external_id, b->external_id) &&
               str_equal_null(a->service_account, b->service_account) && strv_equal(a->ips, b->ips);
}

/* A resourceVersion as Kubernetes 1.35 lets clients compare them (KEP-5504, client-go's
 * CompareResourceVersion): a positive decimal integer of any length without leading zeros. */
static bool rv_comparable(const char *rv) {
        if (isempty(rv) || rv[0] == '0')
                return false;
        for (const char *p = rv; *p; p++)
                if (*p < '0' || *p > '9')
                        return false;
        return true;
}

/* new is older than what the store holds: both versions are comparable and new's is lower. A live
 * GET can be ahead of the watch replaying what happened while the daemon was down; its answer is
 * not undone by an older event. When either version is not comparable (a server before 1.35 only
 * promises equality) the update is applied: the watch is in order and ends at the newest state. */
static bool pod_older(const StorePod *old, const StorePod *new) {
        size_t a, b;

        if (!old || !rv_comparable(old->resource_version) || !rv_comparable(new->resource_version))
                return false;
        a = strlen(old->resource_version);
        b = strlen(new->resource_version);
        return b < a || (b == a && strcmp(new->resource_version, old->resource_version) < 0);
}

/* The same pod in the same state: the old object stays. Confirming a restored pod records its IPs,
 * so that the requests waiting for the confirmation look again. */
static int keep_pod(Store *s, StorePod *old, StorePod *new) {
        int r = strmap_put(&s->pods, old->uid, old);

        if (r < 0)
                return r;
        free_and_replace(old->resource_version, new->resource_version);
        if (old->unconfirmed && !new->unconfirmed) {
                old->unconfirmed = false;
                for (char **ip = old->indexed ? old->ips : NULL; ip && *ip; ip++)
                        record_ip(s, *ip);
        }
        store_pod_free(new);
        return 0;
}

static int apply_pod(Store *s, StorePod *pod) {
        _cleanup_(store_pod_freep) StorePod *new = pod;
        StorePod *old, *p;
        bool was_indexed = false;
        int r;

        if (strmap_get(&s->gone, new->uid))
                return 0; /* the API server said it is gone: an older event does not bring it back */
        old = strmap_get(&s->pods, new->uid);
        if (pod_older(old, new))
                return 0;
        old = strmap_remove(&s->pods, new->uid);
        if (old && pod_equal(old, new)) {
                /* nothing a decision uses changed: keep the old object, record nothing */
                r = keep_pod(s, old, new);
                if (r >= 0) {
                        new = NULL;
                        return r;
                }
                new = store_pod_free(new); /* out of memory: the pod goes, as if deleted */
        }
        if (old) {
                was_indexed = old->indexed;
                unindex(s, old);
        }
        r = new ? strmap_put(&s->pods, new->uid, new) : -ENOMEM;
        if (r < 0) {
                if (old) {
                        record_pod(s, STORE_POD_REMOVED, old);
                        retire(s, old);
                }
                return r;
        }
        p = TAKE_PTR(new);
        r = index_pod(s, p);
        record_pod(s, old ? STORE_POD_CHANGED : STORE_POD_ADDED, p);
        /* the answer for each IP the pod holds or held may differ now (a new pod, a pod that
         * started terminating, a pod that moved): waiting requests look again */
        if (p->indexed)
                for (char **ip = p->ips; ip && *ip; ip++)
                        record_ip(s, *ip);
        for (char **ip = was_indexed ? old->ips : NULL; ip && *ip; ip++)
                if (!(p->indexed && strv_contains(p->ips, *ip)) && strmap_get(&s->ips, *ip))
                        record_ip(s, *ip);
        if (old)
                retire(s, old);
        return r;
}

int store_pod_update(Store *s, StorePod *pod) {
        if (!s || !pod) {
                store_pod_free(pod);
                return -EINVAL;
        }
        return apply_pod(s, pod);
}

int store_pod_remove(Store *s, const char *uid) {
        StorePod *p;

        if (!s || !uid)
                return -EINVAL;
        p = strmap_remove(&s->pods, uid);
        if (!p)
                return -ENOENT;
        unindex(s, p);
        record_pod(s, STORE_POD_REMOVED, p);
        /* an IP it shared may now have a single answer */
        for (char **ip = p->ips; ip && *ip; ip++)
                if (strmap_get(&s->ips, *ip))
                        record_ip(s, *ip);
        retire(s, p);
        return 0;
}

int store_pod_forget(Store *s, const char *uid) {
        char *key;
        int r;

        if (!s || isempty(uid))
                return -EINVAL;
        if (!strmap_get(&s->gone, uid)) {
                /* full: the pod stays, unconfirmed, so it is still never served (fail closed) */
                if (s->gone.n >= STORE_GONE_MAX)
                        return -ENOSPC;
                key = strdup(uid);
                if (!key)
                        return -ENOMEM;
                r = strmap_put(&s->gone, key, key);
                if (r < 0) {
                        free(key);
                        return r;
                }
        }
        r = store_pod_remove(s, uid);
        return r == -ENOENT ? 0 : r;
}

int store_pods_restore(Store *s, StorePod **pods, size_t n) {
        int r = 0;

        if (!s || (!pods && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                StorePod *p = TAKE_PTR(pods[i]);
                p->unconfirmed = true;
                int k = apply_pod(s, p);
                if (k < 0 && r >= 0)
                        r = k;
        }
        free(pods);
        return r;
}

int store_pods_replace(Store *s, StorePod **pods, size_t n) {
        _cleanup_free_ StorePod **gone = NULL;
        StrMap incoming;
        size_t n_gone = 0;
        int r = 0;

        if (!s || (!pods && n > 0))
                return -EINVAL;
        r = strmap_init(&incoming);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n; i++)
                if (!strmap_get(&incoming, pods[i]->uid) &&
                    (r = strmap_put(&incoming, pods[i]->uid, pods[i])) < 0)
                        goto out;

        /* Removals first: a pod that vanished meanwhile must be out of the index before its IP's
         * new owner arrives, exactly as if its DELETED event had been seen. */
        gone = calloc(s->pods.n + 1, sizeof(StorePod *));
        if (!gone) {
                r = -ENOMEM;
                goto out;
        }
        STRMAP_FOREACH(e, &s->pods)
        if (!strmap_get(&incoming, e->key))
                gone[n_gone++] = e->value;
        /* a duplicate uid in the list: the first wins */
        for (size_t i = 0; i < n; i++)
                if (strmap_get(&incoming, pods[i]->uid) != pods[i])
                        pods[i] = store_pod_free(pods[i]);
        strmap_done(&incoming, NULL); /* its keys belong to pods that applying may free */
        for (size_t i = 0; i < n_gone; i++)
                (void) store_pod_remove(s, gone[i]->uid);

        for (size_t i = 0; i < n; i++) {
                StorePod *p = TAKE_PTR(pods[i]);
                if (!p)
                        continue;
                int k = apply_pod(s, p);
                if (k < 0 && r >= 0)
                        r = k;
        }
out:
        strmap_done(&incoming, NULL);
        for (size_t i = 0; i < n; i++)
                store_pod_free(pods[i]);
        free(pods);
        return r;
}

/* The allowed-roles annotation: a JSON array of strings, anything else allows nothing. */
static int parse_allowed_roles(const char *ns, const char *annotation, char ***ret, bool *ret_invalid) {
        _cleanup_strv_free_ char **l = NULL;
        cJSON *root, *i;

        *ret_invalid = false;
        if (isempty(annotation)) {
                *ret = NULL;
                return 0;
        }
        root = cJSON_Parse(annotation);
        if (!cJSON_IsArray(root)) {
                cJSON_Delete(root);
                log_error(
                        "Unable to decode roles on namespace %s: the allowed-roles annotation is not a JSON "
                        "array of strings; it allows no role",
                        ns);
                *ret_invalid = true;
                *ret = NULL;
                return 0;
        }
        cJSON_ArrayForEach(i, root) {
                if (!cJSON_IsString(i)) {
                        cJSON_Delete(root);
                        log_error("Unable to decode roles on namespace %s: the allowed-roles annotation "
                                  "holds a "
                                  "non-string; it allows no role",
                                  ns);
                        *ret_invalid = true;
                        *ret = NULL;
                        return 0;
                }
                if (strv_extend(&l, i->valuestring) < 0) {
                        cJSON_Delete(root);
                        return -ENOMEM;
                }
        }
        cJSON_Delete(root);
        *ret = TAKE_PTR(l);
        return 0;
}

/* kube2iam's namespace lines, which operators grep for: one per allowed role when a namespace
 * appears or its annotation changes. */
static void log_namespace_roles(const StoreNamespace *n, const char *event) {
        for (char **role = n->allowed_roles; role && *role; role++)
                log_fields(LOG_INFO, ((const LogField[]){ { "NS_NAME", n->name }, { "NS_ROLE", *role } }), 2,
                           "Discovered role on namespace (%s)", event);
}

/* A namespace annotation that shapes sessions (session-tags.h), parsed when it changed: *raw the
 * annotation, *parsed what parse() made of it, *invalid when parse() refused it. 1 when changed. */
static int namespace_set_session_list(const StoreNamespace *n, const char *key,
                                      int (*parse)(const char *, char ***, char **), const char *annotation,
                                      char **raw, char ***parsed, bool *invalid) {
        _cleanup_free_ char *copy = NULL, *why = NULL;
        char **l = NULL;
        int r;

        if (str_equal_null(*raw, annotation) && (annotation || !*parsed))
                return 0;
        if (annotation && !(copy = strdup(annotation)))
                return -ENOMEM;
        r = parse(annotation, &l, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                log_fields(LOG_ERR, ((const LogField[]){ { "NS_NAME", n->name } }), 1,
                           "Namespace %s: the %s annotation is refused (%s); its pods get no credentials",
                           n->name, key, strna(why));
        free_and_replace(*raw, copy);
        strv_free(*parsed);
        *parsed = l;
        *invalid = r < 0;
        return 1;
}

static int namespace_set_session_tags(StoreNamespace *n, const char *annotation) {
        return namespace_set_session_list(n, KUBE_SESSION_TAGS_ANNOTATION, session_tags_parse_annotation,
                                          annotation, &n->session_tags_annotation, &n->session_tags,
                                          &n->session_tags_invalid);
}

static int namespace_set_session_policies(StoreNamespace *n, const char *annotation) {
        return namespace_set_session_list(
                n, KUBE_SESSION_POLICIES_ANNOTATION, session_policies_parse_annotation, annotation,
                &n->session_policies_annotation, &n->session_policies, &n->session_policies_invalid);
}

/* The default-role annotation; "" is none. 1 when changed. */
static int namespace_set_default_role(StoreNamespace *n, const char *role) {
        char *copy = NULL;

        if (isempty(role))
                role = NULL;
        if (str_equal_null(n->default_role, role))
                return 0;
        if (role && !(copy = strdup(role)))
                return -ENOMEM;
        free_and_replace(n->default_role, copy);
        return 1;
}

static int namespace_set_allowed_roles(StoreNamespace *n, const char *annotation) {
        char *copy = NULL, **roles = NULL;
        bool invalid;
        int r;

        if (annotation && !(copy = strdup(annotation)))
                return -ENOMEM;
        r = parse_allowed_roles(n->name, annotation, &roles, &invalid);
        if (r < 0) {
                free(copy);
                return r;
        }
        free_and_replace(n->annotation, copy);
        strv_free(n->allowed_roles);
        n->allowed_roles = roles;
        n->invalid = invalid;
        return 0;
}

/* The session annotations and the default role; 1 when any changed. */
static int namespace_set_extras(StoreNamespace *n, const StoreNamespaceSpec *spec) {
        int r, q, d;

        r = namespace_set_session_tags(n, spec->session_tags);
        if (r < 0)
                return r;
        q = namespace_set_session_policies(n, spec->session_policies);
        if (q < 0)
                return q;
        d = namespace_set_default_role(n, spec->default_role);
        if (d < 0)
                return d;
        return r > 0 || q > 0 || d > 0;
}

int store_namespace_update(Store *s, const StoreNamespaceSpec *spec) {
        StoreNamespace *n;
        int r;

        if (!s || !spec || isempty(spec->name))
                return -EINVAL;
        n = strmap_get(&s->namespaces, spec->name);
        if (n && n->unconfirmed) {
                /* confirmed by the API server: the requests waiting for it look again */
                n->unconfirmed = false;
                s->changes.all_ips = true;
                changes_mark(s);
        }
        if (n) {
                r = namespace_set_extras(n, spec);
                if (r < 0)
                        return r;
                if (str_equal_null(n->annotation, spec->annotation)) {
                        if (r > 0)
                                record_namespace(s, spec->name);
                        return 0;
                }
                r = namespace_set_allowed_roles(n, spec->annotation);
                if (r < 0)
                        return r;
                log_namespace_roles(n, "OnUpdate");
                record_namespace(s, spec->name);
                return 0;
        }
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->name = strdup(spec->name);
        r = n->name ? namespace_set_allowed_roles(n, spec->annotation) : -ENOMEM;
        if (r >= 0)
                r = namespace_set_extras(n, spec);
        if (r >= 0)
                r = strmap_put(&s->namespaces, n->name, n);
        if (r < 0) {
                namespace_free(n);
                return r;
        }
        log_namespace_roles(n, "OnAdd");
        record_namespace(s, spec->name);
        return 0;
}

int store_namespace_remove(Store *s, const char *name) {
        StoreNamespace *n;

        if (!s || !name)
                return -EINVAL;
        n = strmap_remove(&s->namespaces, name);
        if (!n)
                return -ENOENT;
        log_fields(LOG_INFO, ((const LogField[]){ { "NS_NAME", n->name } }), 1,
                   "Deleting namespace (OnDelete)");
        record_namespace(s, n->name);
        namespace_free(n);
        return 0;
}

int store_namespaces_replace(Store *s, const StoreNamespaceSpec *ns, size_t n) {
        StrMap incoming;
        _cleanup_free_ char **gone = NULL;
        size_t n_gone = 0;
        int r;

        if (!s || (!ns && n > 0))
                return -EINVAL;
        r = strmap_init(&incoming);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!strmap_get(&incoming, ns[i].name) &&
                    (r = strmap_put(&incoming, ns[i].name, (void *) &ns[i])) < 0)
                        goto out;
        gone = calloc(s->namespaces.n + 1, sizeof(char *));
        if (!gone) {
                r = -ENOMEM;
                goto out;
        }
        STRMAP_FOREACH(e, &s->namespaces)
        if (!strmap_get(&incoming, e->key))
                gone[n_gone++] = (char *) e->key;
        for (size_t i = 0; i < n_gone; i++)
                (void) store_namespace_remove(s, gone[i]);
        for (size_t i = 0; i < n; i++) {
                int k = store_namespace_update(s, &ns[i]);
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (!s->namespaces_known)
                record_all_namespaces(s); /* restrictions stop denying for want of a list */
        s->namespaces_known = true;
out:
        strmap_done(&incoming, NULL);
        return r;
}

int store_namespaces_restore(Store *s, const StoreNamespaceSpec *ns, size_t n) {
        int r = 0;

        if (!s || (!ns && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                StoreNamespace *x;
                int k = store_namespace_update(s, &ns[i]);
                x = k >= 0 ? strmap_get(&s->namespaces, ns[i].name) : NULL;
                if (x)
                        x->unconfirmed = true;
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (!s->namespaces_known)
                record_all_namespaces(s);
        s->namespaces_known = true;
        return r;
}

int store_namespace_forget(Store *s, const char *name) {
        StoreNamespace *n = s && name ? strmap_get(&s->namespaces, name) : NULL;

        if (!n || !n->unconfirmed)
                return 0; /* a watch event or a list has spoken since: it is newer than a 404 */
        return store_namespace_remove(s, name);
}

bool store_namespaces_known(const Store *s) {
        return s && s->namespaces_known;
}

void store_namespaces_unavailable(Store *s) {
        if (!s)
                return;
        s->namespaces_known = false;
        strmap_clear(&s->namespaces, namespace_free_void);
        record_all_namespaces(s);
}

/* ---- ServiceAccounts ---- */

typedef struct StoreServiceAccount {
        char *key; /* "namespace/name": neither part holds '/' (DNS names), so it is unique */
        char *role_arn;
        bool listed; /* seen in the list being applied (store_service_accounts_replace) */
} StoreServiceAccount;

static void service_account_free(void *p) {
        StoreServiceAccount *a = p;
        if (!a)
                return;
        free(a->key);
        free(a->role_arn);
        free(a);
}

static char *service_account_key(const char *namespace, const char *name) {
        return strconcat3(namespace, "/", name);
}

/* Sets (role non-empty) or forgets (role NULL or "") namespace/name; records its namespace when
 * that changes what its pods get. */
static int service_account_set(Store *s, const char *namespace, const char *name, const char *role) {
        _cleanup_free_ char *key = NULL;
        StoreServiceAccount *a;

        if (isempty(namespace) || isempty(name))
                return -EINVAL;
        key = service_account_key(namespace, name);
        if (!key)
                return -ENOMEM;
        a = strmap_get(&s->service_accounts, key);
        if (a)
                a->listed = true;
        if (isempty(role)) {
                if (!a)
                        return 0;
                service_account_free(strmap_remove(&s->service_accounts, key));
        } else if (a) {
                char *copy;
                if (streq(a->role_arn, role))
                        return 0;
                copy = strdup(role);
                if (!copy)
                        return -ENOMEM;
                free_and_replace(a->role_arn, copy);
        } else {
                a = calloc(1, sizeof *a);
                if (!a)
                        return -ENOMEM;
                *a = (StoreServiceAccount){ .key = TAKE_PTR(key), .role_arn = strdup(role), .listed = true };
                if (!a->role_arn || strmap_put(&s->service_accounts, a->key, a) < 0) {
                        service_account_free(a);
                        return -ENOMEM;
                }
        }
        record_namespace(s, namespace); /* its pods are decided again */
        return 0;
}

int store_service_account_update(Store *s, const StoreServiceAccountSpec *sa) {
        if (!s || !sa)
                return -EINVAL;
        return service_account_set(s, sa->namespace, sa->name, sa->role_arn);
}

int store_service_account_remove(Store *s, const char *namespace, const char *name) {
        if (!s)
                return -EINVAL;
        return service_account_set(s, namespace, name, NULL);
}

int store_service_accounts_replace(Store *s, const StoreServiceAccountSpec *sa, size_t n) {
        _cleanup_strv_free_ char **gone = NULL;
        int r = 0;

        if (!s || (!sa && n > 0))
                return -EINVAL;
        STRMAP_FOREACH(e, &s->service_accounts)
        ((StoreServiceAccount *) e->value)->listed = false;
        for (size_t i = 0; i < n; i++) {
                int k = store_service_account_update(s, &sa[i]);
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (r < 0)
                return r; /* the list is applied again (re-list): nothing is dropped on a failure */
        STRMAP_FOREACH(e, &s->service_accounts)
        if (!((StoreServiceAccount *) e->value)->listed && strv_extend(&gone, e->key) < 0)
                return -ENOMEM;
        for (char **g = gone; g && *g; g++) {
                char *slash = strchr(*g, '/');
                *slash = 0;
                (void) service_account_set(s, *g, slash + 1, NULL);
        }
        if (s->service_accounts_state != STORE_SERVICE_ACCOUNTS_KNOWN) {
                /* pods decided without the list (or waiting for it) are decided again */
                record_all_namespaces(s);
                s->changes.all_ips = true;
        }
        s->service_accounts_state = STORE_SERVICE_ACCOUNTS_KNOWN;
        return 0;
}

StoreServiceAccounts store_service_accounts_state(const Store *s) {
        return s ? s->service_accounts_state : STORE_SERVICE_ACCOUNTS_LISTING;
}

void store_service_accounts_unavailable(Store *s) {
        if (!s)
                return;
        s->service_accounts_state = STORE_SERVICE_ACCOUNTS_FORBIDDEN;
        strmap_clear(&s->service_accounts, service_account_free);
        record_all_namespaces(s);
        s->changes.all_ips = true; /* requests waiting for the list are answered now */
        changes_mark(s);
}

const char *store_service_account_role(const Store *s, const char *namespace, const char *name) {
        _cleanup_free_ char *key = NULL;

        const StoreServiceAccount *a;

        if (!s || !namespace || !name || !(key = service_account_key(namespace, name)))
                return NULL;
        a = strmap_get(&s->service_accounts, key);
        return a ? a->role_arn : NULL;
}

size_t store_n_service_accounts(const Store *s) {
        return s ? s->service_accounts.n : 0;
}

void store_set_pods_unconfirmed(Store *s, bool unconfirmed) {
        if (!s || s->pods_unconfirmed == unconfirmed)
                return;
        s->pods_unconfirmed = unconfirmed;
        /* every lookup's answer changes: every waiting request looks again */
        s->changes.all_ips = true;
        changes_mark(s);
}

bool store_pods_unconfirmed(const Store *s) {
        return s && s->pods_unconfirmed;
}

void store_set_change_hook(Store *s, store_change_hook_t hook, void *userdata) {
        if (!s)
                return;
        s->hook = hook;
        s->hook_userdata = userdata;
}

bool store_has_changes(const Store *s) {
        /* while the record plays, what it holds counts as seen: the IP handlers run last */
        return s && s->changes.pending && !s->dispatching;
}

static void dispatch_pods(Store *s, const StoreChangeHandler *h) {
        Changes *c = &s->changes;

        if (!h->pod)
                return;
        if (c->oom) {
                /* the log was lost: every pod counts as changed (namespace(NULL) then drops the rest) */
                STRMAP_FOREACH(e, &s->pods)
                h->pod(s, STORE_POD_CHANGED, e->value, h->userdata);
                return;
        }
        for (size_t i = 0; i < c->n_pods; i++)
                h->pod(s, c->pods[i].event, c->pods[i].pod, h->userdata);
}

void store_dispatch_changes(Store *s, const StoreChangeHandler *h) {
        Changes *c;

        if (!store_has_changes(s) || !h)
                return;
        c = &s->changes;
        s->dispatching = true;
        dispatch_pods(s, h);
        if (h->namespace) {
                if (c->all_namespaces || c->oom)
                        h->namespace(s, NULL, h->userdata);
                else
                        for (char **n = c->namespaces; n && *n; n++)
                                h->namespace(s, *n, h->userdata);
        }
        if (h->ip) {
                if (c->all_ips || c->oom)
                        h->ip(s, NULL, h->userdata);
                else
                        for (size_t i = 0; i < c->n_ips; i++)
                                h->ip(s, c->ips[i], h->userdata);
        }
        changes_reset(c);
        s->dispatching = false;
}

int store_lookup_ip(Store *s, const char *ip, StoreLookup *ret) {
        const StorePod *live = NULL, *dying = NULL;
        size_t n_live = 0, n_dying = 0;
        IpSlot *slot;

        *ret = (StoreLookup){ .status = STORE_LOOKUP_NOT_FOUND };
        if (s && s->pods_unconfirmed) {
                if (asprintf(&ret->error,
                             "pod with specificed IP \"%s\" not found: the pod list could not be refreshed "
                             "from the API server",
                             strempty(ip)) < 0)
                        return ret->error = NULL, -ENOMEM;
                return 0;
        }
        slot = s && ip ? strmap_get(&s->ips, ip) : NULL;
        if (!slot || slot->n == 0) {
                if (asprintf(&ret->error, "pod with specificed IP \"%s\" not found", strempty(ip)) < 0)
                        return ret->error = NULL, -ENOMEM;
                return 0;
        }
        /* a pod restored from a snapshot and not confirmed yet loses to one the API server
         * confirmed: the address has moved on (deleted while the daemon was down, reused) */
        for (size_t i = 0; i < slot->n; i++)
                if (!slot->pods[i]->unconfirmed)
                        n_live++;
        bool confirmed_only = n_live > 0;
        n_live = 0;
        for (size_t i = 0; i < slot->n; i++) {
                if (confirmed_only && slot->pods[i]->unconfirmed)
                        continue;
                if (slot->pods[i]->terminating) {
                        dying = slot->pods[i];
                        n_dying++;
                } else {
                        live = slot->pods[i];
                        n_live++;
                }
        }
        if (!slot->overflow && (n_live == 1 || (n_live == 0 && n_dying == 1))) {
                ret->status = STORE_LOOKUP_FOUND;
                ret->pod = live ?: dying;
                return 0;
        }
        {
                _cleanup_strbuf_ StrBuf b = {};
                strbuf_appendf(&b, "%zu pods ([", slot->n);
                for (size_t i = 0; i < slot->n; i++)
                        strbuf_appendf(&b, "%s%s", i ? " " : "", slot->pods[i]->name);
                strbuf_appendf(&b, "]) with the ip %s indexed", ip);
                ret->status = STORE_LOOKUP_AMBIGUOUS;
                ret->error = strbuf_steal(&b);
                return ret->error ? 0 : -ENOMEM;
        }
}

void store_lookup_done(StoreLookup *l) {
        if (l)
                l->error = mfree(l->error);
}

const StorePod *store_get_pod(Store *s, const char *uid) {
        return s && uid ? strmap_get(&s->pods, uid) : NULL;
}

const StoreNamespace *store_get_namespace(Store *s, const char *name) {
        return s && name && s->namespaces_known ? strmap_get(&s->namespaces, name) : NULL;
}

void store_foreach_pod(const Store *s, store_pod_visitor_t fn, void *userdata) {
        if (!s)
                return;
        STRMAP_FOREACH(e, &s->pods)
        fn(e->value, userdata);
}

void store_foreach_namespace(const Store *s, void (*fn)(const StoreNamespace *ns, void *userdata),
                             void *userdata) {
        if (!s || !fn || !s->namespaces_known)
                return;
        STRMAP_FOREACH(e, &s->namespaces)
        fn(e->value, userdata);
}

size_t store_n_pods(const Store *s) {
        return s ? s->pods.n : 0;
}

size_t store_n_namespaces(const Store *s) {
        return s ? s->namespaces.n : 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Keys of a table, sorted (Go's json.Marshal sorts map keys). */
static const char **sorted_keys(const StrMap *t) {
        const char **k = calloc(t->n + 1, sizeof(char *));
        size_t n = 0;

        if (!k)
                return NULL;
        STRMAP_FOREACH(e, t)
        k[n++] = e->key;
        qsort(k, n, sizeof(char *), cmp_str);
        return k;
}

int store_debug_json(Store *s, char **ret) {
        _cleanup_free_ const char **ips = NULL, **nss = NULL;
        cJSON *root = NULL, *by_ip, *roles, *by_ns;
        char *out;

        if (!s || !ret)
                return -EINVAL;
        ips = sorted_keys(&s->ips);
        nss = sorted_keys(&s->namespaces);
        root = cJSON_CreateObject();
        if (!ips || !nss || !root)
                goto oom;
        by_ip = cJSON_AddObjectToObject(root, "namespaceByIP");
        roles = cJSON_AddObjectToObject(root, "rolesByIP");
        by_ns = cJSON_AddObjectToObject(root, "rolesByNamespace");
        if (!by_ip || !roles || !by_ns)
                goto oom;
        for (size_t i = 0; ips[i]; i++) {
                StoreLookup l;
                if (store_lookup_ip(s, ips[i], &l) < 0)
                        goto oom;
                if (l.status == STORE_LOOKUP_FOUND &&
                    (!cJSON_AddStringToObject(by_ip, ips[i], l.pod->namespace) ||
                     !cJSON_AddStringToObject(roles, ips[i], strempty(l.pod->role)))) {
                        store_lookup_done(&l);
                        goto oom;
                }
                store_lookup_done(&l);
        }
        for (size_t i = 0; nss[i]; i++) {
                const StoreNamespace *n = strmap_get(&s->namespaces, nss[i]);
                cJSON *a;

                /* kube2iam (Go): null without a decodable annotation, [] for an empty array */
                if (!n->allowed_roles && (isempty(n->annotation) || n->invalid))
                        a = cJSON_AddNullToObject(by_ns, nss[i]);
                else {
                        a = cJSON_AddArrayToObject(by_ns, nss[i]);
                        for (char **r = n->allowed_roles; a && r && *r; r++) {
                                cJSON *str = cJSON_CreateString(*r);
                                if (!str || !cJSON_AddItemToArray(a, str)) {
                                        cJSON_Delete(str);
                                        a = NULL;
                                }
                        }
                }
                if (!a)
                        goto oom;
        }
        out = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
oom:
        cJSON_Delete(root);
        return -ENOMEM;
}
