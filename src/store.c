/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "store.h"
#include "string-util.h"

/* ---- a small string-keyed hash table (chaining, seeded hash, grows at load 1) ---- */

typedef struct Entry {
        struct Entry *next;
        const char *key; /* points into value */
        void *value;
} Entry;

typedef struct Table {
        Entry **buckets;
        size_t n_buckets, n;
        uint64_t seed;
} Table;

static uint64_t hash_string(const Table *t, const char *s) {
        /* FNV-1a, seeded per table so that names chosen by cluster users cannot be made to collide */
        uint64_t h = 1469598103934665603ULL ^ t->seed;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 1099511628211ULL;
        }
        return h ^ (h >> 29);
}

static int table_init(Table *t) {
        *t = (Table){ .n_buckets = 64 };
        t->buckets = calloc(t->n_buckets, sizeof(Entry *));
        if (!t->buckets)
                return -ENOMEM;
        if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
                t->seed = (uint64_t) (uintptr_t) t ^ 0x9e3779b97f4a7c15ULL;
        return 0;
}

static void *table_get(const Table *t, const char *key) {
        for (Entry *e = t->buckets[hash_string(t, key) % t->n_buckets]; e; e = e->next)
                if (streq(e->key, key))
                        return e->value;
        return NULL;
}

static int table_grow(Table *t) {
        size_t nb = t->n_buckets * 2;
        Entry **b = calloc(nb, sizeof(Entry *));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (Entry *e = t->buckets[i], *next; e; e = next) {
                        size_t h = hash_string(t, e->key) % nb;
                        next = e->next;
                        e->next = b[h];
                        b[h] = e;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = nb;
        return 0;
}

/* key must stay valid while the entry exists (it points into value); key must be absent. */
static int table_put(Table *t, const char *key, void *value) {
        Entry *e;
        size_t h;

        if (t->n >= t->n_buckets && table_grow(t) < 0)
                return -ENOMEM;
        e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        h = hash_string(t, key) % t->n_buckets;
        *e = (Entry){ .next = t->buckets[h], .key = key, .value = value };
        t->buckets[h] = e;
        t->n++;
        return 0;
}

static void *table_remove(Table *t, const char *key) {
        for (Entry **p = &t->buckets[hash_string(t, key) % t->n_buckets]; *p; p = &(*p)->next)
                if (streq((*p)->key, key)) {
                        Entry *e = *p;
                        void *v = e->value;
                        *p = e->next;
                        free(e);
                        t->n--;
                        return v;
                }
        return NULL;
}

/* Calls f on every value; f must not change the table. */
#define TABLE_FOREACH(e, t) \
        for (size_t _i = 0; _i < (t)->n_buckets; _i++) \
                for (Entry *e = (t)->buckets[_i]; e; e = e->next)

static void table_clear(Table *t, void (*free_value)(void *)) {
        for (size_t i = 0; i < t->n_buckets; i++) {
                for (Entry *e = t->buckets[i], *next; e; e = next) {
                        next = e->next;
                        if (free_value)
                                free_value(e->value);
                        free(e);
                }
                t->buckets[i] = NULL;
        }
        t->n = 0;
}

static void table_done(Table *t, void (*free_value)(void *)) {
        if (!t->buckets)
                return;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (Entry *e = t->buckets[i], *next; e; e = next) {
                        next = e->next;
                        if (free_value)
                                free_value(e->value);
                        free(e);
                }
        free(t->buckets);
        *t = (Table){};
}

/* ---- the store ---- */

typedef struct IpSlot {
        char *ip;
        StorePod *pods[MAX_PODS_PER_IP];
        size_t n;
        bool overflow; /* more than MAX_PODS_PER_IP claimed it: never answer */
} IpSlot;

typedef struct Observer {
        store_pod_observer_t pod_cb;
        store_ip_observer_t ip_cb;
        void *userdata;
} Observer;

struct Store {
        Table pods;       /* uid -> StorePod */
        Table ips;        /* ip -> IpSlot */
        Table namespaces; /* name -> StoreNamespace */
        bool namespaces_known;
        bool pods_unconfirmed; /* store_set_pods_unconfirmed(): lookups vouch for no pod */
        Observer *observers;
        size_t n_observers;
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
        free(n);
        return NULL;
}

static void namespace_free_void(void *n) {
        namespace_free(n);
}

int store_new(Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (table_init(&s->pods) < 0 || table_init(&s->ips) < 0 || table_init(&s->namespaces) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        table_done(&s->ips, ip_slot_free);
        table_done(&s->pods, pod_free_void);
        table_done(&s->namespaces, namespace_free_void);
        free(s->observers);
        free(s);
        return NULL;
}

static bool pod_indexable(const StorePod *p) {
        /* kube2iam's rule (terminal phases are not indexed) plus: hostNetwork pods share the node's
         * IP and their traffic never reaches us through the redirect, so they must not shadow it */
        return !p->host_network && !streq(p->phase, "Succeeded") && !streq(p->phase, "Failed");
}

static void notify_pod(Store *s, StorePodEvent ev, const StorePod *p) {
        for (size_t i = 0; i < s->n_observers; i++)
                if (s->observers[i].pod_cb)
                        s->observers[i].pod_cb(s, ev, p, s->observers[i].userdata);
}

static void notify_ip(Store *s, const char *ip) {
        for (size_t i = 0; i < s->n_observers; i++)
                if (s->observers[i].ip_cb)
                        s->observers[i].ip_cb(s, ip, s->observers[i].userdata);
}

static void unindex(Store *s, StorePod *p) {
        if (!p->indexed)
                return;
        for (char **ip = p->ips; ip && *ip; ip++) {
                IpSlot *slot = table_get(&s->ips, *ip);
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
                        table_remove(&s->ips, slot->ip);
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
                IpSlot *slot = table_get(&s->ips, *ip);
                if (!slot) {
                        slot = calloc(1, sizeof *slot);
                        if (!slot || !(slot->ip = strdup(*ip)) || table_put(&s->ips, slot->ip, slot) < 0) {
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
               strv_equal(a->ips, b->ips);
}

static int apply_pod(Store *s, StorePod *pod) {
        _cleanup_(store_pod_freep) StorePod *new = pod, *old = NULL;
        char **was_at = NULL;
        int r;

        old = table_remove(&s->pods, new->uid);
        if (old && pod_equal(old, new)) {
                /* nothing a decision uses changed: keep the old object, no notification */
                StorePod *keep = TAKE_PTR(old);
                return table_put(&s->pods, keep->uid, keep);
        }
        if (old) {
                bool was_indexed = old->indexed;

                unindex(s, old);
                if (was_indexed)
                        was_at = old->ips; /* old lives until the end of this function */
        }
        r = table_put(&s->pods, new->uid, new);
        if (r < 0)
                return r;
        StorePod *p = TAKE_PTR(new);
        r = index_pod(s, p);
        notify_pod(s, old ? STORE_POD_CHANGED : STORE_POD_ADDED, p);
        /* the answer for each IP the pod holds or held may differ now (a new pod, a pod that
         * started terminating, a pod that moved): waiting requests look again */
        if (p->indexed)
                for (char **ip = p->ips; ip && *ip; ip++)
                        notify_ip(s, *ip);
        for (char **ip = was_at; ip && *ip; ip++)
                if (!(p->indexed && strv_contains(p->ips, *ip)) && table_get(&s->ips, *ip))
                        notify_ip(s, *ip);
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
        p = table_remove(&s->pods, uid);
        if (!p)
                return -ENOENT;
        unindex(s, p);
        notify_pod(s, STORE_POD_REMOVED, p);
        /* an IP it shared may now have a single answer */
        for (char **ip = p->ips; ip && *ip; ip++)
                if (table_get(&s->ips, *ip))
                        notify_ip(s, *ip);
        store_pod_free(p);
        return 0;
}

int store_pods_replace(Store *s, StorePod **pods, size_t n) {
        _cleanup_free_ StorePod **gone = NULL;
        Table incoming;
        size_t n_gone = 0;
        int r = 0;

        if (!s || (!pods && n > 0))
                return -EINVAL;
        r = table_init(&incoming);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n; i++)
                if (!table_get(&incoming, pods[i]->uid) &&
                    (r = table_put(&incoming, pods[i]->uid, pods[i])) < 0)
                        goto out;

        /* Removals first: a pod that vanished meanwhile must be out of the index before its IP's
         * new owner arrives, exactly as if its DELETED event had been seen. */
        gone = calloc(s->pods.n + 1, sizeof(StorePod *));
        if (!gone) {
                r = -ENOMEM;
                goto out;
        }
        TABLE_FOREACH(e, &s->pods)
        if (!table_get(&incoming, e->key))
                gone[n_gone++] = e->value;
        /* a duplicate uid in the list: the first wins */
        for (size_t i = 0; i < n; i++)
                if (table_get(&incoming, pods[i]->uid) != pods[i])
                        pods[i] = store_pod_free(pods[i]);
        table_done(&incoming, NULL); /* its keys belong to pods that applying may free */
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
        table_done(&incoming, NULL);
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

int store_namespace_update(Store *s, const char *name, const char *annotation) {
        StoreNamespace *n;
        int r;

        if (!s || isempty(name))
                return -EINVAL;
        n = table_get(&s->namespaces, name);
        if (n) {
                char *copy = NULL, **roles = NULL;
                bool invalid;

                if (str_equal_null(n->annotation, annotation))
                        return 0;
                if (annotation && !(copy = strdup(annotation)))
                        return -ENOMEM;
                r = parse_allowed_roles(name, annotation, &roles, &invalid);
                if (r < 0) {
                        free(copy);
                        return r;
                }
                free_and_replace(n->annotation, copy);
                strv_free(n->allowed_roles);
                n->allowed_roles = roles;
                n->invalid = invalid;
                log_namespace_roles(n, "OnUpdate");
                return 0;
        }
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->name = strdup(name);
        if (!n->name || (annotation && !(n->annotation = strdup(annotation)))) {
                namespace_free(n);
                return -ENOMEM;
        }
        r = parse_allowed_roles(name, annotation, &n->allowed_roles, &n->invalid);
        if (r >= 0)
                r = table_put(&s->namespaces, n->name, n);
        if (r < 0) {
                namespace_free(n);
                return r;
        }
        log_namespace_roles(n, "OnAdd");
        return r;
}

int store_namespace_remove(Store *s, const char *name) {
        StoreNamespace *n;

        if (!s || !name)
                return -EINVAL;
        n = table_remove(&s->namespaces, name);
        if (!n)
                return -ENOENT;
        log_fields(LOG_INFO, ((const LogField[]){ { "NS_NAME", n->name } }), 1,
                   "Deleting namespace (OnDelete)");
        namespace_free(n);
        return 0;
}

int store_namespaces_replace(Store *s, const StoreNamespaceSpec *ns, size_t n) {
        Table incoming;
        _cleanup_free_ char **gone = NULL;
        size_t n_gone = 0;
        int r;

        if (!s || (!ns && n > 0))
                return -EINVAL;
        r = table_init(&incoming);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!table_get(&incoming, ns[i].name) &&
                    (r = table_put(&incoming, ns[i].name, (void *) &ns[i])) < 0)
                        goto out;
        gone = calloc(s->namespaces.n + 1, sizeof(char *));
        if (!gone) {
                r = -ENOMEM;
                goto out;
        }
        TABLE_FOREACH(e, &s->namespaces)
        if (!table_get(&incoming, e->key))
                gone[n_gone++] = (char *) e->key;
        for (size_t i = 0; i < n_gone; i++)
                (void) store_namespace_remove(s, gone[i]);
        for (size_t i = 0; i < n; i++) {
                int k = store_namespace_update(s, ns[i].name, ns[i].annotation);
                if (k < 0 && r >= 0)
                        r = k;
        }
        s->namespaces_known = true;
out:
        table_done(&incoming, NULL);
        return r;
}

bool store_namespaces_known(const Store *s) {
        return s && s->namespaces_known;
}

void store_namespaces_unavailable(Store *s) {
        if (!s)
                return;
        s->namespaces_known = false;
        table_clear(&s->namespaces, namespace_free_void);
}

void store_set_pods_unconfirmed(Store *s, bool unconfirmed) {
        if (s)
                s->pods_unconfirmed = unconfirmed;
}

bool store_pods_unconfirmed(const Store *s) {
        return s && s->pods_unconfirmed;
}

int store_add_observer(Store *s, store_pod_observer_t pod_cb, store_ip_observer_t ip_cb, void *userdata) {
        Observer *o;

        if (!s || (!pod_cb && !ip_cb))
                return -EINVAL;
        o = realloc(s->observers, (s->n_observers + 1) * sizeof(Observer));
        if (!o)
                return -ENOMEM;
        s->observers = o;
        o[s->n_observers++] = (Observer){ pod_cb, ip_cb, userdata };
        return 0;
}

void store_remove_observer(Store *s, store_pod_observer_t pod_cb, store_ip_observer_t ip_cb,
                           void *userdata) {
        for (size_t i = 0; s && i < s->n_observers; i++)
                if (s->observers[i].pod_cb == pod_cb && s->observers[i].ip_cb == ip_cb &&
                    s->observers[i].userdata == userdata) {
                        memmove(s->observers + i, s->observers + i + 1,
                                (s->n_observers - i - 1) * sizeof(Observer));
                        s->n_observers--;
                        return;
                }
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
        slot = s && ip ? table_get(&s->ips, ip) : NULL;
        if (!slot || slot->n == 0) {
                if (asprintf(&ret->error, "pod with specificed IP \"%s\" not found", strempty(ip)) < 0)
                        return ret->error = NULL, -ENOMEM;
                return 0;
        }
        for (size_t i = 0; i < slot->n; i++) {
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
        return s && uid ? table_get(&s->pods, uid) : NULL;
}

const StoreNamespace *store_get_namespace(Store *s, const char *name) {
        return s && name && s->namespaces_known ? table_get(&s->namespaces, name) : NULL;
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
static const char **sorted_keys(const Table *t) {
        const char **k = calloc(t->n + 1, sizeof(char *));
        size_t n = 0;

        if (!k)
                return NULL;
        TABLE_FOREACH(e, t)
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
                const StoreNamespace *n = table_get(&s->namespaces, nss[i]);
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
