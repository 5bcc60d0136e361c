/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sts.h"
#include "creds.h"
#include "pod-roles.h"
#include "store.h"
#include "string-util.h"
#include "strmap.h"

/* A credential cache key (CredsKey) with its strings owned; role_arn NULL for none. */
typedef struct PodKey {
        char *role_arn;
        char *external_id;
        char *session_name;
        char *session;
} PodKey;

/* What is known about one pod of the store. */
typedef struct PodRole {
        char *uid;
        PodRoleVerdict verdict;
        RoleSource source;
        PodKey key;    /* the decision's; role_arn NULL for POD_ROLE_NO_ROLE */
        PodKey in_use; /* what the cache was told this pod uses (creds_set_in_use); role_arn NULL: nothing */
        char *audit_key; /* "<result> <role>" of the last audit entry */
        usec_t audit_at;
        LogRatelimit log_ratelimit;                      /* the lines this pod's requests may cause */
        PodRoleRequest requests[POD_ROLES_REQUEST_RING]; /* the last ones, oldest overwritten */
        unsigned n_requests;                             /* recorded in all (the ring's head) */
} PodRole;

struct PodRoles {
        PodRolesDeps d;
        StrMap pods; /* uid -> PodRole */
        pod_roles_wake_t wake;
        void *wake_userdata;
};

/* A namespace's lists as arrays (store_namespace_list()), for the rules that take them. */
typedef struct NamespaceLists {
        char **l[_STORE_NAMESPACE_LIST_MAX];
} NamespaceLists;

static void ns_lists_done(NamespaceLists *x) {
        for (size_t i = 0; i < _STORE_NAMESPACE_LIST_MAX; i++)
                free(x->l[i]);
}

static int ns_lists(const StoreNamespace *ns, NamespaceLists *ret) {
        for (size_t i = 0; ns && i < _STORE_NAMESPACE_LIST_MAX; i++) {
                int r = store_namespace_list(ns, i, &ret->l[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The pod's role candidates (roles.h) beyond its annotation: its ServiceAccount's role and its
 * namespace's default role, when asked for. POD_ROLE_ALLOWED when they are known, else the verdict
 * that says which is not. */
static PodRoleVerdict candidates(const PodRoles *p, const StorePod *pod, const StoreNamespace *ns,
                                 RoleCandidates *c) {
        *c = (RoleCandidates){ .annotation = pod->role };
        if (pod->role)
                return POD_ROLE_ALLOWED;
        if (p->d.service_account_roles) {
                switch (store_service_accounts_state(p->d.store)) {
                case STORE_SERVICE_ACCOUNTS_LISTING:
                        return POD_ROLE_SERVICE_ACCOUNTS_LISTING;
                case STORE_SERVICE_ACCOUNTS_FORBIDDEN:
                        return POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN;
                case STORE_SERVICE_ACCOUNTS_KNOWN:
                        break;
                }
                /* the API server sets "default" when a pod names none */
                c->service_account = store_service_account_role(p->d.store, pod->namespace,
                                                                pod->service_account ?: "default");
        }
        if (p->d.namespace_default_roles && isempty(c->service_account)) {
                if (!ns)
                        return POD_ROLE_NAMESPACE_UNKNOWN; /* its default role is not known */
                c->namespace_default = store_namespace_default_role(ns);
        }
        return POD_ROLE_ALLOWED;
}

/* The pure part: kube2iam's rules (roles.h) applied to a pod and its namespace as the store has it. */
static int decide(const PodRoles *p, const StorePod *pod, PodRoleDecision *ret) {
        PodRoleDecision d = { .external_id = pod->external_id };
        const StoreNamespace *ns = store_get_namespace(p->d.store, pod->namespace);
        _cleanup_(ns_lists_done) NamespaceLists lists = {};
        RoleCandidates c;
        int r;

        d.verdict = candidates(p, pod, ns, &c);
        if (d.verdict != POD_ROLE_ALLOWED) {
                *ret = d;
                return 0;
        }
        r = roles_choose(p->d.roles, &c, &d.role_arn, &d.source);
        if (r == -ENOENT) {
                d.verdict = POD_ROLE_NO_ROLE;
                *ret = d;
                return 0;
        }
        if (r < 0)
                return r;
        if ((p->d.session_tags.tags || p->d.session_policies) && !ns) {
                /* the namespace may add tags or policies: a session without them would be the wrong one */
                d.verdict = POD_ROLE_NAMESPACE_UNKNOWN;
                *ret = d;
                return 0;
        }
        r = ns_lists(ns, &lists);
        if (r >= 0)
                r = ns && store_namespace_invalid(ns, STORE_NAMESPACE_SESSION_TAGS)
                            ? -EINVAL
                            : session_tags_for_pod(&p->d.session_tags, pod,
                                                   lists.l[STORE_NAMESPACE_SESSION_TAGS], &d.session);
        if (r >= 0 && p->d.session_policies)
                r = store_namespace_invalid(ns, STORE_NAMESPACE_SESSION_POLICIES)
                            ? -EINVAL
                            : sts_session_add_policy_arns(&d.session,
                                                          lists.l[STORE_NAMESPACE_SESSION_POLICIES]);
        if (r >= 0 && p->d.pod_session_names)
                r = sts_pod_session_name(pod->namespace, pod->name, &d.session_name);
        if (r == -EINVAL) {
                /* tags or a name STS would refuse: no credentials rather than another session */
                d.verdict = POD_ROLE_SESSION_REFUSED;
                d.session = mfree(d.session);
                *ret = d;
                return 0;
        }
        if (r < 0) {
                pod_role_decision_done(&d);
                return r;
        }
        if (roles_namespace_allows(p->d.roles, d.role_arn, ns != NULL,
                                   lists.l[STORE_NAMESPACE_ALLOWED_ROLES]))
                d.verdict = POD_ROLE_ALLOWED;
        else
                d.verdict = ns ? POD_ROLE_DENIED : POD_ROLE_NAMESPACE_UNKNOWN;
        *ret = d;
        return 0;
}

void pod_role_decision_done(PodRoleDecision *d) {
        if (!d)
                return;
        d->role_arn = mfree(d->role_arn);
        d->session_name = mfree(d->session_name);
        d->session = mfree(d->session);
}

static void pod_key_done(PodKey *k) {
        k->role_arn = mfree(k->role_arn);
        k->external_id = mfree(k->external_id);
        k->session_name = mfree(k->session_name);
        k->session = mfree(k->session);
}

static bool pod_key_equal(const PodKey *a, const PodKey *b) {
        /* as the cache compares keys: NULL and "" are the same */
        return streq(strempty(a->role_arn), strempty(b->role_arn)) &&
               streq(strempty(a->external_id), strempty(b->external_id)) &&
               streq(strempty(a->session_name), strempty(b->session_name)) &&
               streq(strempty(a->session), strempty(b->session));
}

static char *strdup_null(const char *s, bool *oom) {
        char *c = s ? strdup(s) : NULL;
        if (s && !c)
                *oom = true;
        return c;
}

static int pod_key_copy(const PodKey *from, PodKey *to) {
        bool oom = false;

        *to = (PodKey){ .role_arn = strdup_null(from->role_arn, &oom),
                        .external_id = strdup_null(from->external_id, &oom),
                        .session_name = strdup_null(from->session_name, &oom),
                        .session = strdup_null(from->session, &oom) };
        if (oom) {
                pod_key_done(to);
                return -ENOMEM;
        }
        return 0;
}

static CredsKey pod_key_creds(const PodKey *k) {
        return (CredsKey){ .role_arn = k->role_arn,
                           .external_id = k->external_id,
                           .session_name = k->session_name,
                           .session = k->session };
}

static void pod_role_release(PodRoles *p, PodRole *r) {
        if (!r->in_use.role_arn)
                return;
        if (p->d.creds) {
                CredsKey k = pod_key_creds(&r->in_use);
                (void) creds_set_in_use(p->d.creds, &k, false);
        }
        pod_key_done(&r->in_use);
}

static void pod_role_free(PodRoles *p, PodRole *r) {
        if (!r)
                return;
        pod_role_release(p, r);
        free(r->uid);
        pod_key_done(&r->key);
        free(r->audit_key);
        free(r);
}

/* Moves the pod's in-use count in the cache to what the decision says, and warms the new role. */
static void pod_role_use(PodRoles *p, PodRole *r, const StorePod *pod) {
        bool use = r->verdict == POD_ROLE_ALLOWED && pod->indexed && pod->ips && !pod->terminating;
        bool same = use && r->in_use.role_arn && pod_key_equal(&r->in_use, &r->key);

        if (same || !p->d.creds)
                return;
        pod_role_release(p, r);
        if (!use)
                return;
        CredsKey k = pod_key_creds(&r->key);
        if (pod_key_copy(&r->key, &r->in_use) >= 0)
                (void) creds_set_in_use(p->d.creds, &k, true);
        if (p->d.prefetch)
                (void) creds_prefetch(p->d.creds, &k, pod->ips[0]);
}

static int pod_role_new(PodRoles *p, const char *uid, PodRole **ret) {
        PodRole *r = calloc(1, sizeof *r);

        if (!r)
                return -ENOMEM;
        r->uid = strdup(uid);
        r->log_ratelimit =
                (LogRatelimit){ .interval_usec = POD_ROLES_LOG_INTERVAL_USEC, .burst = POD_ROLES_LOG_BURST };
        if (!r->uid || strmap_put(&p->pods, r->uid, r) < 0) {
                free(r->uid);
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

static void pod_role_drop(PodRoles *p, const char *uid) {
        pod_role_free(p, strmap_remove(&p->pods, uid));
}

/* Recomputes the decision of the pod with this uid as the store now has it. */
static void pod_role_refresh(PodRoles *p, const char *uid) {
        const StorePod *pod = store_get_pod(p->d.store, uid);
        PodRoleDecision d = {};
        PodRole *r;
        char *ext = NULL;

        if (!pod) {
                pod_role_drop(p, uid);
                return;
        }
        r = strmap_get(&p->pods, uid);
        if (!r && pod_role_new(p, uid, &r) < 0)
                return;
        if (decide(p, pod, &d) < 0 || (pod->external_id && !(ext = strdup(pod->external_id)))) {
                /* out of memory: the pod is served by pod_roles_decide() and keeps no count */
                pod_role_decision_done(&d);
                pod_role_drop(p, uid);
                return;
        }
        pod_key_done(&r->key);
        r->key = (PodKey){ .role_arn = TAKE_PTR(d.role_arn),
                           .external_id = TAKE_PTR(ext),
                           .session_name = TAKE_PTR(d.session_name),
                           .session = TAKE_PTR(d.session) };
        r->verdict = d.verdict;
        r->source = d.source;
        pod_role_use(p, r, pod);
}

static void on_pod(Store *s, StorePodEvent event, const StorePod *pod, void *userdata) {
        /* by uid, from the store's final state: a pod replaced or removed later in the same turn
         * is looked at as it is now, and one looked at twice changes nothing the second time */
        pod_role_refresh(userdata, pod->uid);
}

static void on_namespace(Store *s, const char *name, void *userdata) {
        PodRoles *p = userdata;
        _cleanup_strv_free_ char **uids = NULL;

        /* collected first: refreshing may drop entries */
        STRMAP_FOREACH(e, &p->pods) {
                const StorePod *pod = store_get_pod(p->d.store, e->key);
                if ((!name || !pod || streq(pod->namespace, name)) && strv_extend(&uids, e->key) < 0)
                        return;
        }
        for (char **u = uids; u && *u; u++)
                pod_role_refresh(p, *u);
}

static void on_ip(Store *s, const char *ip, void *userdata) {
        PodRoles *p = userdata;

        if (p->wake)
                p->wake(ip, p->wake_userdata);
}

bool pod_roles_dispatch(PodRoles *p, pod_roles_wake_t wake, void *userdata) {
        const StoreChangeHandler h = {
                .pod = on_pod, .namespace = on_namespace, .ip = on_ip, .userdata = p
        };

        if (!p || !store_has_changes(p->d.store))
                return false;
        p->wake = wake;
        p->wake_userdata = userdata;
        store_dispatch_changes(p->d.store, &h);
        p->wake = NULL;
        p->wake_userdata = NULL;
        return true;
}

int pod_roles_decide(PodRoles *p, const StorePod *pod, PodRoleDecision *ret) {
        const PodRole *r = strmap_get(&p->pods, pod->uid);

        /* the record holds for the store's own pod once every change has been played */
        if (!r || store_get_pod(p->d.store, pod->uid) != pod || store_has_changes(p->d.store))
                return decide(p, pod, ret);
        *ret = (PodRoleDecision){
                .verdict = r->verdict,
                .source = r->source,
                .external_id = pod->external_id,
        };
        if ((r->key.role_arn && !(ret->role_arn = strdup(r->key.role_arn))) ||
            (r->key.session_name && !(ret->session_name = strdup(r->key.session_name))) ||
            (r->key.session && !(ret->session = strdup(r->key.session)))) {
                pod_role_decision_done(ret);
                return -ENOMEM;
        }
        return 0;
}

bool pod_roles_audit_allow(PodRoles *p, const char *uid, const char *key, usec_t now, LogRatelimit *shared) {
        PodRole *r = uid ? strmap_get(&p->pods, uid) : NULL;
        char *copy;

        if (r && r->audit_key && streq(r->audit_key, key) && now - r->audit_at < POD_ROLES_AUDIT_REPEAT_USEC)
                return false;
        if (!log_ratelimit_allow(r ? &r->log_ratelimit : NULL, shared))
                return false;
        if (r && (copy = strdup(key))) {
                free_and_replace(r->audit_key, copy);
                r->audit_at = now;
        }
        return true;
}

LogRatelimit *pod_roles_log_ratelimit(PodRoles *p, const char *uid) {
        PodRole *r = uid ? strmap_get(&p->pods, uid) : NULL;
        return r ? &r->log_ratelimit : NULL;
}

size_t pod_roles_size(const PodRoles *p) {
        return p ? p->pods.n : 0;
}

void pod_roles_record_request(PodRoles *p, const char *uid, const char *route, unsigned status,
                              usec_t when) {
        PodRole *r = p && uid ? strmap_get(&p->pods, uid) : NULL;
        PodRoleRequest *q;

        if (!r)
                return;
        q = &r->requests[r->n_requests++ % POD_ROLES_REQUEST_RING];
        *q = (PodRoleRequest){ .route = strempty(route), .status = status, .when = when };
}

size_t pod_roles_requests(const PodRoles *p, const char *uid, const PodRoleRequest **ret, size_t max) {
        const PodRole *r = p && uid ? strmap_get(&p->pods, uid) : NULL;
        size_t n = 0;

        if (!r)
                return 0;
        /* newest first */
        for (unsigned i = r->n_requests; i > 0 && n < max && r->n_requests - i < POD_ROLES_REQUEST_RING; i--)
                ret[n++] = &r->requests[(i - 1) % POD_ROLES_REQUEST_RING];
        return n;
}

bool pod_roles_in_use(const PodRoles *p, const char *uid) {
        const PodRole *r = p && uid ? strmap_get(&p->pods, uid) : NULL;
        return r && r->in_use.role_arn;
}

int pod_roles_new(const PodRolesDeps *deps, PodRoles **ret) {
        PodRoles *p;

        if (!deps || !deps->store || !deps->roles || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->d = *deps;
        if (strmap_init(&p->pods) < 0) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

PodRoles *pod_roles_free(PodRoles *p) {
        if (!p)
                return NULL;
        STRMAP_FOREACH(e, &p->pods)
        pod_role_free(p, e->value);
        strmap_done(&p->pods, NULL);
        free(p);
        return NULL;
}
