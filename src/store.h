/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Store: what the daemon knows about the cluster, kept in memory so that no request waits on
 * the network. Owns the pods on this node keyed by uid with an index by pod IP (status.podIP
 * and every status.podIPs entry), and the namespaces keyed by name with their allowed-roles
 * annotation parsed once per change. Written by the watches (src/kube/kube-client), read by
 * requests. Calls nobody back while it changes: it records what changed (pods in order, the
 * namespaces whose allowed roles changed, the IPs whose answer may differ) and its owner plays
 * that record once per loop turn with store_dispatch_changes() (pod-roles, docs/pod-store.md).
 * Decides IP reuse (kube2iam #17/#244, kiam #107): a pod whose DELETED event or
 * whose absence from a re-list has been applied is never served again, a terminating pod loses
 * to a live one, and anything still ambiguous is no answer (fail closed). While the kube client
 * marks the pods unconfirmed (docs/pod-store.md), no pod is found at all.
 * Reference: docs/compatibility.md (pod indexing, duplicate IPs, /debug/store). */

#include <stdbool.h>
#include <stddef.h>

#include "kube/kube-pod.h"
#include "macro.h"

/* Pods the API server said are gone (a live GET answered 404 or another uid) while a watch may
 * still replay older events for them: at most the pods a snapshot restored. */
#define STORE_GONE_MAX 4096
/* Pods sharing one IP on one node: at most a terminating pod or two and its successor. 16 is
 * far past any real overlap; beyond it the IP is treated as ambiguous rather than growing. */
#define MAX_PODS_PER_IP 16
#define MAX_IPS_PER_POD KUBE_POD_MAX_IPS

typedef struct Store Store;

/* The pods as the kube client delivers them (only what decisions need; strings owned by the pod).
 * The store sets `indexed`. */
typedef KubePod StorePod;

/* What a namespace's annotations say, parsed: the lists a namespace holds. */
typedef enum StoreNamespaceList {
        STORE_NAMESPACE_ALLOWED_ROLES,    /* allowed-roles: role patterns; invalid allows nothing */
        STORE_NAMESPACE_SESSION_TAGS,     /* key, value, ... sorted by key; invalid: no credentials */
        STORE_NAMESPACE_SESSION_POLICIES, /* policy ARNs, sorted; invalid: no credentials */
        STORE_NAMESPACE_DEFAULT_ROLE,     /* the default-role annotation (--namespace-default-roles): one
                                           * item, none when absent or empty */
        _STORE_NAMESPACE_LIST_MAX,
} StoreNamespaceList;

/* One namespace: its name and its parsed annotations in one compact record (every node holds every
 * namespace of the cluster: docs/limits.md, "Memory"). The raw annotations are not kept. Read it
 * with the functions below; valid until the store next changes. */
typedef struct StoreNamespace StoreNamespace;

typedef enum StorePodEvent {
        STORE_POD_ADDED,
        STORE_POD_CHANGED, /* a field above changed (a new resourceVersion alone is no change) */
        STORE_POD_REMOVED, /* DELETED event or absent from a re-list; already out of the index */
} StorePodEvent;

/* The handler of store_dispatch_changes(). Called with the store in its final state for this turn;
 * handlers read the store and must not change it. Any member may be NULL. */
typedef struct StoreChangeHandler {
        /* Every pod change since the last dispatch, in order. pod is valid during the call only
         * (a removed or replaced pod is kept until the dispatch ends). */
        void (*pod)(Store *s, StorePodEvent event, const StorePod *pod, void *userdata);
        /* A namespace's allowed roles changed (added, changed, removed); NULL: all of them (the
         * list became known or unavailable, or a change could not be recorded). After pod(). */
        void (*namespace)(Store *s, const char *name, void *userdata);
        /* The answer for ip may have changed while a pod still holds it: a pod appeared or changed
         * there, or a pod sharing it went away. NULL: every IP (the pods became unconfirmed or
         * confirmed again). A request waiting for that IP looks again. Last. */
        void (*ip)(Store *s, const char *ip, void *userdata);
        void *userdata;
} StoreChangeHandler;

/* Called when the first change is recorded after a dispatch. It schedules the dispatch; it must
 * not read or change the store (it runs in the middle of an update). */
typedef void (*store_change_hook_t)(Store *s, void *userdata);

typedef enum StoreLookupStatus {
        STORE_LOOKUP_FOUND,
        STORE_LOOKUP_NOT_FOUND,
        STORE_LOOKUP_AMBIGUOUS, /* several live pods claim the IP: ask the live API or deny */
} StoreLookupStatus;

typedef struct StoreLookup {
        StoreLookupStatus status;
        const StorePod *pod; /* FOUND: valid until the store next changes (the next loop iteration) */
        char *error;         /* otherwise: kube2iam's error text, e.g. `pod with specificed IP "X" not
                                 * found`, `2 pods ([a b]) with the ip X indexed` */
} StoreLookup;

/* Describes one namespace for store_namespaces_replace(). */
typedef struct StoreNamespaceSpec {
        const char *name;
        const char *annotation;       /* NULL when absent */
        const char *session_tags;     /* the session-tags annotation, NULL when absent */
        const char *session_policies; /* the session-policy-arns annotation, NULL when absent */
        const char *default_role;     /* the default-role annotation, NULL when absent */
} StoreNamespaceSpec;

/* Describes one ServiceAccount for store_service_accounts_replace(). */
typedef struct StoreServiceAccountSpec {
        const char *namespace;
        const char *name;
        const char *role_arn; /* its IRSA annotation, NULL when absent */
} StoreServiceAccountSpec;

int store_new(Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* A pod from its fields, handed to store_pod_update() (kube-pod.h makes them). */
static inline int store_pod_new(const char *uid, const char *namespace, const char *name, StorePod **ret) {
        return kube_pod_new(uid, namespace, name, ret);
}
/* Adds ip unless present (at most MAX_IPS_PER_POD, -E2BIG beyond). */
static inline int store_pod_add_ip(StorePod *p, const char *ip) {
        return kube_pod_add_ip(p, ip);
}
static inline StorePod *store_pod_free(StorePod *p) {
        return kube_pod_free(p);
}
static inline void store_pod_freep(StorePod **p) {
        store_pod_free(*p);
}

/* ADDED or MODIFIED: takes ownership of pod (also on failure). */
int store_pod_update(Store *s, StorePod *pod);
/* DELETED: -ENOENT when unknown. */
int store_pod_remove(Store *s, const char *uid);
/* Warm restarts (docs/warm-restart.md): the pods of a snapshot, marked unconfirmed (a lookup
 * returns them, and the caller must have the API server confirm them before vouching for them; a
 * confirmed pod at the same IP wins). A watch event or a live GET of the pod (store_pod_update())
 * confirms it; a list replaces it. Takes the pods and the array. */
int store_pods_restore(Store *s, StorePod **pods, size_t n);
/* The API server said the pod is gone (404, or the name now has another uid): removed, and no
 * later update of that uid (an older event replayed by a resumed watch) brings it back. */
int store_pod_forget(Store *s, const char *uid);
/* A pod update older than the one held (both resourceVersions comparable integers, KEP-5504) is
 * ignored. */

/* A complete list (re-list): afterwards the store holds exactly these pods, as if DELETED
 * events had been applied for the others. Takes ownership of the pods and of the array. */
int store_pods_replace(Store *s, StorePod **pods, size_t n);

/* Namespace ADDED/MODIFIED. The annotations are parsed each time and the record replaced only when
 * what they say changed (then the pods of the namespace are looked at again). */
int store_namespace_update(Store *s, const StoreNamespaceSpec *ns);
int store_namespace_remove(Store *s, const char *name);
int store_namespaces_replace(Store *s, const StoreNamespaceSpec *ns, size_t n);
/* Warm restarts: the namespaces a snapshot named, marked unconfirmed (with no annotations) until
 * an update (a watch event, a live GET, a list) confirms each and says what its annotations are;
 * the list counts as known. */
int store_namespaces_restore(Store *s, char *const *names, size_t n);
/* A live GET said the namespace is gone: removed if it is still unconfirmed. */
int store_namespace_forget(Store *s, const char *name);
/* False until a namespace list was applied, and again after store_namespaces_unavailable()
 * (the credentials may not read namespaces): restrictions must then deny. */
bool store_namespaces_known(const Store *s);
void store_namespaces_unavailable(Store *s);

/* ServiceAccounts (--service-account-roles). Only those with a role annotation are kept (a cluster
 * has thousands; few name a role); a change of one is recorded as a change of its namespace, so
 * that its pods are decided again. */
int store_service_account_update(Store *s, const StoreServiceAccountSpec *sa);
int store_service_account_remove(Store *s, const char *namespace, const char *name);
int store_service_accounts_replace(Store *s, const StoreServiceAccountSpec *sa, size_t n);
typedef enum StoreServiceAccounts {
        STORE_SERVICE_ACCOUNTS_LISTING,   /* no complete list yet */
        STORE_SERVICE_ACCOUNTS_KNOWN,     /* a complete list applied */
        STORE_SERVICE_ACCOUNTS_FORBIDDEN, /* the credentials may not read them */
} StoreServiceAccounts;
StoreServiceAccounts store_service_accounts_state(const Store *s);
void store_service_accounts_unavailable(Store *s);
/* The role annotation of namespace/name, NULL when it has none or is not known. */
const char *store_service_account_role(const Store *s, const char *namespace, const char *name);
size_t store_n_service_accounts(const Store *s);
/* While set, no lookup finds a pod (NOT_FOUND, with a message saying why): the pods held could
 * not be confirmed with the API server for too long (docs/pod-store.md). The contents are kept,
 * so that the next complete list reports exactly what changed. A change of the flag records
 * every IP as changed, so that the requests waiting look again. */
void store_set_pods_unconfirmed(Store *s, bool unconfirmed);
bool store_pods_unconfirmed(const Store *s);

void store_set_change_hook(Store *s, store_change_hook_t hook, void *userdata);
/* Something was recorded and not played yet (false while store_dispatch_changes() runs). */
bool store_has_changes(const Store *s);
/* Plays what changed since the last call (pods, then namespaces, then IPs) and forgets it. Nothing
 * is recorded on failure to allocate; the next dispatch then reports every pod as changed and
 * namespace(NULL) and ip(NULL), so that no change is ever missed. */
void store_dispatch_changes(Store *s, const StoreChangeHandler *h);

/* Fills *ret (never fails but for -ENOMEM); free ret->error with store_lookup_done(). */
int store_lookup_ip(Store *s, const char *ip, StoreLookup *ret);
void store_lookup_done(StoreLookup *l);
const StorePod *store_get_pod(Store *s, const char *uid);
const StoreNamespace *store_get_namespace(Store *s, const char *name);
const char *store_namespace_name(const StoreNamespace *n);
/* Restored from a snapshot and not confirmed by the API server yet (store_namespaces_restore()). */
bool store_namespace_unconfirmed(const StoreNamespace *n);
/* The annotation of list l was present and broke its rule (see StoreNamespaceList). */
bool store_namespace_invalid(const StoreNamespace *n, StoreNamespaceList l);
/* The allowed-roles annotation was a JSON array of strings, maybe empty ([] rather than null in
 * /debug/store). */
bool store_namespace_roles_declared(const StoreNamespace *n);
size_t store_namespace_count(const StoreNamespace *n, StoreNamespaceList l);
/* List l as a NULL-terminated array of pointers into n: free() the array, not the strings, and do
 * not change them. *ret is NULL for an empty list. -ENOMEM. */
int store_namespace_list(const StoreNamespace *n, StoreNamespaceList l, char ***ret);
/* The default-role annotation, NULL when absent or empty (points into n). */
const char *store_namespace_default_role(const StoreNamespace *n);
/* Calls fn for every pod, in no particular order; fn must not change the store. */
typedef void (*store_pod_visitor_t)(const StorePod *pod, void *userdata);
void store_foreach_pod(const Store *s, store_pod_visitor_t fn, void *userdata);
size_t store_n_pods(const Store *s);
/* Calls fn for every namespace (the list known, else none); fn must not change the store. */
void store_foreach_namespace(const Store *s, void (*fn)(const StoreNamespace *ns, void *userdata),
                             void *userdata);
size_t store_n_namespaces(const Store *s);

/* kube2iam's /debug/store body: {"namespaceByIP":{},"rolesByIP":{},"rolesByNamespace":{}},
 * keys sorted, no trailing newline, IPs without a single answer left out. */
int store_debug_json(Store *s, char **ret);
