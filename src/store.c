/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
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

/* Names in the order they were added, without duplicates; adding is O(1), so that a list of 10,000
 * namespaces records its changes in linear time. */
typedef struct NameSet {
        StrMap set;   /* name -> its copy in names */
        char **names; /* owned copies */
        size_t n, cap;
} NameSet;

typedef struct Changes {
        PodChange *pods;
        size_t n_pods, cap_pods;
        StorePod **retired; /* pods no longer in the store that a PodChange still points to */
        size_t n_retired, cap_retired;
        NameSet namespaces; /* namespaces whose annotations changed */
        bool all_namespaces;
        NameSet ips; /* IPs whose answer may have changed */
        bool all_ips;
        bool replaced; /* a complete list was applied: give its leftovers back afterwards */
        bool pending;  /* something is recorded: the hook has been called */
        bool oom;      /* a change could not be recorded: the next dispatch reports everything */
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

static void namespace_free_void(void *n) {
        free(n); /* one allocation (StoreNamespace) */
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
            strmap_init(&s->service_accounts) < 0 || strmap_init(&s->changes.ips.set) < 0 ||
            strmap_init(&s->changes.namespaces.set) < 0 || strmap_init(&s->gone) < 0)
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

static int name_set_add(NameSet *x, const char *name) {
        char *copy;

        if (strmap_get(&x->set, name))
                return 0;
        if (!grow((void **) &x->names, &x->cap, x->n, sizeof(char *)) || !(copy = strdup(name)))
                return -ENOMEM;
        if (strmap_put(&x->set, copy, copy) < 0) {
                free(copy);
                return -ENOMEM;
        }
        x->names[x->n++] = copy;
        return 0;
}

static void name_set_reset(NameSet *x) {
        strmap_clear(&x->set, free);
        x->n = 0;
}

static void name_set_done(NameSet *x) {
        name_set_reset(x);
        strmap_done(&x->set, NULL);
        x->names = mfree(x->names);
        x->cap = 0;
}

static void record_ip(Store *s, const char *ip) {
        Changes *c = &s->changes;

        if (!c->all_ips && !c->oom && name_set_add(&c->ips, ip) < 0)
                return changes_oom(s);
        changes_mark(s);
}

static void record_namespace(Store *s, const char *name) {
        Changes *c = &s->changes;

        if (!c->all_namespaces && name_set_add(&c->namespaces, name) < 0)
                c->all_namespaces = true; /* asks for every pod to be looked at again: never less */
        changes_mark(s);
}

/* A complete list was applied (pods or namespaces). */
static void record_replaced(Store *s) {
        s->changes.replaced = true;
        changes_mark(s);
}

static void record_all_namespaces(Store *s) {
        s->changes.all_namespaces = true;
        changes_mark(s);
}

static void changes_reset(Changes *c) {
        for (size_t i = 0; i < c->n_retired; i++)
                store_pod_free(c->retired[i]);
        name_set_reset(&c->ips);
        name_set_reset(&c->namespaces);
        c->n_pods = c->n_retired = 0;
        c->all_namespaces = c->all_ips = c->oom = c->pending = c->replaced = false;
}

static void changes_done(Changes *c) {
        changes_reset(c);
        name_set_done(&c->ips);
        name_set_done(&c->namespaces);
        free(c->pods);
        free(c->retired);
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

/* The same pod in the same state: the old object stays, with the newer version. Confirming a
 * restored pod records its IPs, so that the requests waiting for the confirmation look again. */
static void keep_pod(Store *s, StorePod *old, StorePod *new) {
        free_and_replace(old->resource_version, new->resource_version);
        if (old->unconfirmed && !new->unconfirmed) {
                old->unconfirmed = false;
                for (char **ip = old->indexed ? old->ips : NULL; ip && *ip; ip++)
                        record_ip(s, *ip);
        }
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
        if (old && pod_equal(old, new)) {
                /* nothing a decision uses changed: keep the old object, record nothing */
                keep_pod(s, old, new);
                return 0;
        }
        if (old) {
                was_indexed = old->indexed;
                unindex(s, old);
                (void) strmap_replace(&s->pods, new->uid, new); /* cannot fail: the uid is there */
        } else {
                r = strmap_put(&s->pods, new->uid, new);
                if (r < 0)
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
        record_replaced(s);
out:
        strmap_done(&incoming, NULL);
        for (size_t i = 0; i < n; i++)
                store_pod_free(pods[i]);
        free(pods);
        return r;
}

/* ---- namespaces ---- */

/* One namespace in one allocation: a cluster may hold tens of thousands and every node keeps all of
 * them, so a namespace costs its name and what its annotations say, parsed, and no more (no copy of
 * the raw annotations, no pointer per string: docs/limits.md, "Memory"). data holds the name, then
 * the items of each list in StoreNamespaceList order, each NUL-terminated (items may be empty). */
struct StoreNamespace {
        uint32_t count[_STORE_NAMESPACE_LIST_MAX]; /* items per list */
        uint8_t invalid;                           /* bit per list: the annotation broke its rule */
        bool roles_declared;                       /* allowed-roles was a JSON array, maybe empty */
        bool unconfirmed; /* restored from a snapshot: its pods wait until the API server confirms it */
        char data[];
};

/* The parsed annotations of a namespace before they are packed. */
typedef struct NamespaceParsed {
        char **list[_STORE_NAMESPACE_LIST_MAX];
        char *why[_STORE_NAMESPACE_LIST_MAX]; /* why a list is invalid; NULL when valid */
        bool roles_declared;
} NamespaceParsed;

static void namespace_parsed_done(NamespaceParsed *p) {
        for (size_t i = 0; i < _STORE_NAMESPACE_LIST_MAX; i++) {
                strv_free(p->list[i]);
                free(p->why[i]);
        }
}

/* The allowed-roles annotation: a JSON array of strings, anything else allows nothing. */
static int parse_allowed_roles(const char *annotation, char ***ret, char **ret_why, bool *ret_declared) {
        _cleanup_strv_free_ char **l = NULL;
        cJSON *root, *items, *i;
        const char *why = NULL;
        int r = 0;

        *ret_declared = false;
        if (isempty(annotation))
                return 0;
        root = cJSON_Parse(annotation);
        if (!cJSON_IsArray(root))
                why = "is not a JSON array of strings";
        items = why ? NULL : root;
        cJSON_ArrayForEach(i, items) {
                if (!cJSON_IsString(i)) {
                        why = "holds a non-string";
                        break;
                }
                if (strv_extend(&l, i->valuestring) < 0) {
                        r = -ENOMEM;
                        break;
                }
        }
        cJSON_Delete(root);
        if (r < 0)
                return r;
        if (why) {
                *ret_why = strdup(why);
                return *ret_why ? -EINVAL : -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        *ret_declared = true;
        return 0;
}

/* The default-role annotation as a list of one item; "" is none. */
static int parse_default_role(const char *role, char ***ret) {
        return isempty(role) ? 0 : strv_extend(ret, role);
}

static int namespace_parse(const StoreNamespaceSpec *spec, NamespaceParsed *ret) {
        NamespaceParsed p = {};
        int r[_STORE_NAMESPACE_LIST_MAX];

        r[STORE_NAMESPACE_ALLOWED_ROLES] =
                parse_allowed_roles(spec->annotation, &p.list[STORE_NAMESPACE_ALLOWED_ROLES],
                                    &p.why[STORE_NAMESPACE_ALLOWED_ROLES], &p.roles_declared);
        r[STORE_NAMESPACE_SESSION_TAGS] =
                session_tags_parse_annotation(spec->session_tags, &p.list[STORE_NAMESPACE_SESSION_TAGS],
                                              &p.why[STORE_NAMESPACE_SESSION_TAGS]);
        r[STORE_NAMESPACE_SESSION_POLICIES] = session_policies_parse_annotation(
                spec->session_policies, &p.list[STORE_NAMESPACE_SESSION_POLICIES],
                &p.why[STORE_NAMESPACE_SESSION_POLICIES]);
        r[STORE_NAMESPACE_DEFAULT_ROLE] =
                parse_default_role(spec->default_role, &p.list[STORE_NAMESPACE_DEFAULT_ROLE]);
        for (size_t i = 0; i < _STORE_NAMESPACE_LIST_MAX; i++)
                if (r[i] == -ENOMEM || (r[i] < 0 && !p.why[i])) {
                        namespace_parsed_done(&p);
                        return -ENOMEM;
                }
        *ret = p;
        return 0;
}

static size_t namespace_size(const StoreNamespace *n) {
        const char *at = n->data + strlen(n->data) + 1;

        for (size_t l = 0; l < _STORE_NAMESPACE_LIST_MAX; l++)
                for (uint32_t i = 0; i < n->count[l]; i++)
                        at += strlen(at) + 1;
        return at - n->data;
}

static int namespace_pack(const char *name, const NamespaceParsed *p, StoreNamespace **ret) {
        size_t size = strlen(name) + 1;
        StoreNamespace *n;
        char *at;

        for (size_t l = 0; l < _STORE_NAMESPACE_LIST_MAX; l++)
                for (char **i = p->list[l]; i && *i; i++)
                        size += strlen(*i) + 1;
        n = malloc(offsetof(StoreNamespace, data) + size);
        if (!n)
                return -ENOMEM;
        *n = (StoreNamespace){ .roles_declared = p->roles_declared };
        at = stpcpy(n->data, name) + 1;
        for (size_t l = 0; l < _STORE_NAMESPACE_LIST_MAX; l++) {
                n->count[l] = strv_length(p->list[l]);
                if (p->why[l])
                        n->invalid |= 1U << l;
                for (char **i = p->list[l]; i && *i; i++)
                        at = stpcpy(at, *i) + 1;
        }
        *ret = n;
        return 0;
}

static bool namespace_equal(const StoreNamespace *a, const StoreNamespace *b) {
        size_t size = namespace_size(a);

        return a->invalid == b->invalid && a->roles_declared == b->roles_declared &&
               memcmp(a->count, b->count, sizeof a->count) == 0 && size == namespace_size(b) &&
               memcmp(a->data, b->data, size) == 0;
}

/* The first item of list l. */
static const char *namespace_list_start(const StoreNamespace *n, StoreNamespaceList l) {
        const char *at = n->data + strlen(n->data) + 1;

        for (size_t k = 0; k < (size_t) l; k++)
                for (uint32_t i = 0; i < n->count[k]; i++)
                        at += strlen(at) + 1;
        return at;
}

static bool namespace_list_equal(const StoreNamespace *a, const StoreNamespace *b, StoreNamespaceList l) {
        const char *x = namespace_list_start(a, l), *y = namespace_list_start(b, l);

        if (a->count[l] != b->count[l] || (a->invalid & (1U << l)) != (b->invalid & (1U << l)))
                return false;
        for (uint32_t i = 0; i < a->count[l]; i++, x += strlen(x) + 1, y += strlen(y) + 1)
                if (!streq(x, y))
                        return false;
        return l != STORE_NAMESPACE_ALLOWED_ROLES || a->roles_declared == b->roles_declared;
}

const char *store_namespace_name(const StoreNamespace *n) {
        return n->data;
}

bool store_namespace_invalid(const StoreNamespace *n, StoreNamespaceList l) {
        return n->invalid & (1U << l);
}

bool store_namespace_roles_declared(const StoreNamespace *n) {
        return n->roles_declared;
}

size_t store_namespace_count(const StoreNamespace *n, StoreNamespaceList l) {
        return n->count[l];
}

const char *store_namespace_default_role(const StoreNamespace *n) {
        return n->count[STORE_NAMESPACE_DEFAULT_ROLE] > 0
                       ? namespace_list_start(n, STORE_NAMESPACE_DEFAULT_ROLE)
                       : NULL;
}

int store_namespace_list(const StoreNamespace *n, StoreNamespaceList l, char ***ret) {
        const char *at;
        char **v;

        if (n->count[l] == 0) {
                *ret = NULL;
                return 0;
        }
        v = calloc(n->count[l] + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        at = namespace_list_start(n, l);
        for (uint32_t i = 0; i < n->count[l]; i++, at += strlen(at) + 1)
                v[i] = (char *) at;
        *ret = v;
        return 0;
}

/* kube2iam's namespace lines, which operators grep for: one per allowed role when a namespace
 * appears or its allowed roles change. */
static void log_namespace_roles(const StoreNamespace *n, const char *event) {
        const char *role = namespace_list_start(n, STORE_NAMESPACE_ALLOWED_ROLES);

        for (uint32_t i = 0; i < n->count[STORE_NAMESPACE_ALLOWED_ROLES]; i++, role += strlen(role) + 1)
                log_fields(LOG_INFO, ((const LogField[]){ { "NS_NAME", n->data }, { "NS_ROLE", role } }), 2,
                           "Discovered role on namespace (%s)", event);
}

/* An annotation that became invalid is logged once, when it does. */
static void log_namespace_refusals(const StoreNamespace *old, const StoreNamespace *n,
                                   const NamespaceParsed *p) {
        static const char *const keys[_STORE_NAMESPACE_LIST_MAX] = {
                [STORE_NAMESPACE_SESSION_TAGS] = KUBE_SESSION_TAGS_ANNOTATION,
                [STORE_NAMESPACE_SESSION_POLICIES] = KUBE_SESSION_POLICIES_ANNOTATION,
        };

        for (size_t l = 0; l < _STORE_NAMESPACE_LIST_MAX; l++) {
                if (!p->why[l] || (old && store_namespace_invalid(old, l)))
                        continue;
                if (l == STORE_NAMESPACE_ALLOWED_ROLES)
                        log_error("Unable to decode roles on namespace %s: the allowed-roles annotation %s; "
                                  "it "
                                  "allows no role",
                                  n->data, p->why[l]);
                else
                        log_fields(LOG_ERR, ((const LogField[]){ { "NS_NAME", n->data } }), 1,
                                   "Namespace %s: the %s annotation is refused (%s); its pods get no "
                                   "credentials",
                                   n->data, keys[l], p->why[l]);
        }
}

int store_namespace_update(Store *s, const StoreNamespaceSpec *spec) {
        _cleanup_(namespace_parsed_done) NamespaceParsed p = {};
        _cleanup_free_ StoreNamespace *n = NULL, *old = NULL;
        StoreNamespace *held;
        bool roles_changed;
        int r;

        if (!s || !spec || isempty(spec->name))
                return -EINVAL;
        held = strmap_get(&s->namespaces, spec->name);
        if (held && held->unconfirmed) {
                /* confirmed by the API server: the requests waiting for it look again */
                held->unconfirmed = false;
                s->changes.all_ips = true;
                changes_mark(s);
        }
        /* parsed every time rather than kept raw to compare: the parsed form is what decides, and
         * keeping both would double what every namespace costs */
        r = namespace_parse(spec, &p);
        if (r >= 0)
                r = namespace_pack(spec->name, &p, &n);
        if (r < 0)
                return r;
        old = strmap_get(&s->namespaces, spec->name);
        if (old && namespace_equal(old, n)) {
                TAKE_PTR(old); /* unchanged: stays */
                return 0;
        }
        if (old)
                (void) strmap_replace(&s->namespaces, n->data, n); /* the key now points into n */
        else {
                r = strmap_put(&s->namespaces, n->data, n);
                if (r < 0)
                        return r;
        }
        log_namespace_refusals(old, n, &p);
        roles_changed = !old || !namespace_list_equal(old, n, STORE_NAMESPACE_ALLOWED_ROLES);
        if (roles_changed)
                log_namespace_roles(n, old ? "OnUpdate" : "OnAdd");
        record_namespace(s, spec->name);
        TAKE_PTR(n);
        return 0;
}

int store_namespace_remove(Store *s, const char *name) {
        _cleanup_free_ StoreNamespace *n = NULL;

        if (!s || !name)
                return -EINVAL;
        n = strmap_remove(&s->namespaces, name);
        if (!n)
                return -ENOENT;
        log_fields(LOG_INFO, ((const LogField[]){ { "NS_NAME", n->data } }), 1,
                   "Deleting namespace (OnDelete)");
        record_namespace(s, n->data);
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
        /* the first list: restrictions stop denying for want of a list, every pod is looked at again
         * (recorded first, so that the namespaces are not also recorded one by one) */
        if (!s->namespaces_known)
                record_all_namespaces(s);
        for (size_t i = 0; i < n_gone; i++)
                (void) store_namespace_remove(s, gone[i]);
        for (size_t i = 0; i < n; i++) {
                int k = store_namespace_update(s, &ns[i]);
                if (k < 0 && r >= 0)
                        r = k;
        }
        s->namespaces_known = true;
        record_replaced(s);
out:
        strmap_done(&incoming, NULL);
        return r;
}

int store_namespaces_restore(Store *s, char *const *names, size_t n) {
        int r = 0;

        if (!s || (!names && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                StoreNamespace *x;
                /* the name only: what its annotations say is asked of the API server before it
                 * decides anything (store.h) */
                int k = store_namespace_update(s, &(const StoreNamespaceSpec){ .name = names[i] });
                x = k >= 0 ? strmap_get(&s->namespaces, names[i]) : NULL;
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

bool store_namespace_unconfirmed(const StoreNamespace *n) {
        return n && n->unconfirmed;
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
        record_replaced(s);
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
        bool trim;

        if (!store_has_changes(s) || !h)
                return;
        c = &s->changes;
        s->dispatching = true;
        dispatch_pods(s, h);
        if (h->namespace) {
                if (c->all_namespaces || c->oom)
                        h->namespace(s, NULL, h->userdata);
                else
                        for (size_t i = 0; i < c->namespaces.n; i++)
                                h->namespace(s, c->namespaces.names[i], h->userdata);
        }
        if (h->ip) {
                if (c->all_ips || c->oom)
                        h->ip(s, NULL, h->userdata);
                else
                        for (size_t i = 0; i < c->ips.n; i++)
                                h->ip(s, c->ips.names[i], h->userdata);
        }
        trim = c->replaced;
        changes_reset(c);
        s->dispatching = false;
        /* A list of 10,000 namespaces goes through its page buffer, cJSON trees and the kube client's
         * copies before it lands here, and the records it replaced are freed: glibc keeps all that
         * resident in holes of the heap, which it gives back only at its top. A complete list is rare
         * (start, expiry, errors) and the walk costs far less than parsing the list did, so hand the
         * free pages back once its handlers ran (docs/limits.md, "Memory"). */
        if (trim)
                (void) malloc_trim(0);
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
                const char *role = namespace_list_start(n, STORE_NAMESPACE_ALLOWED_ROLES);
                cJSON *a;

                /* kube2iam (Go): null without a decodable annotation, [] for an empty array */
                if (!n->roles_declared)
                        a = cJSON_AddNullToObject(by_ns, nss[i]);
                else {
                        a = cJSON_AddArrayToObject(by_ns, nss[i]);
                        for (uint32_t k = 0; a && k < n->count[STORE_NAMESPACE_ALLOWED_ROLES];
                             k++, role += strlen(role) + 1) {
                                cJSON *str = cJSON_CreateString(role);
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
