/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "creds.h"
#include "explain.h"
#include "kube/kube-object.h"
#include "pod-roles.h"
#include "roles.h"
#include "store.h"
#include "time-util.h"

/* The answer is built as a cJSON tree; every Add* may fail on memory, which the builder counts
 * and the caller turns into -ENOMEM once (cJSON ignores additions to a NULL parent). */
typedef struct Builder {
        const ExplainDeps *d;
        cJSON *root;
        bool oom;
} Builder;

static cJSON *add_str(Builder *b, cJSON *o, const char *name, const char *value) {
        cJSON *v = value ? cJSON_AddStringToObject(o, name, value) : cJSON_AddNullToObject(o, name);
        if (!v)
                b->oom = true;
        return v;
}

static void add_bool(Builder *b, cJSON *o, const char *name, bool value) {
        if (!cJSON_AddBoolToObject(o, name, value))
                b->oom = true;
}

static void add_num(Builder *b, cJSON *o, const char *name, double value) {
        if (!cJSON_AddNumberToObject(o, name, value))
                b->oom = true;
}

static void add_time(Builder *b, cJSON *o, const char *name, usec_t realtime) {
        char buf[TIMESTAMP_MAX];
        add_str(b, o, name, realtime > 0 ? format_timestamp_rfc3339(realtime, buf, sizeof buf) : NULL);
}

static cJSON *add_obj(Builder *b, cJSON *o, const char *name) {
        cJSON *v = cJSON_AddObjectToObject(o, name);
        if (!v)
                b->oom = true;
        return v;
}

static cJSON *add_arr(Builder *b, cJSON *o, const char *name) {
        cJSON *v = cJSON_AddArrayToObject(o, name);
        if (!v)
                b->oom = true;
        return v;
}

static void arr_str(Builder *b, cJSON *a, const char *s) {
        cJSON *v = cJSON_CreateString(s);
        if (!v || !cJSON_AddItemToArray(a, v)) {
                cJSON_Delete(v);
                b->oom = true;
        }
}

static const char *role_source_name(RoleSource s) {
        switch (s) {
        case ROLE_SOURCE_ANNOTATION:
                return "annotation";
        case ROLE_SOURCE_DEFAULT:
                return "default-role";
        case ROLE_SOURCE_SERVICE_ACCOUNT:
                return "service-account";
        case ROLE_SOURCE_NAMESPACE_DEFAULT:
                return "namespace-default-role";
        }
        return "unknown";
}

/* The rule that decided the role: a source name and what it read, so new sources (a
 * ServiceAccount, a namespace default) are one more case with their own "from". */
static void add_rule(Builder *b, const StorePod *pod, const PodRoleDecision *dec) {
        cJSON *rule = add_obj(b, b->root, "rule");

        if (dec->verdict == POD_ROLE_NO_ROLE) {
                add_str(b, rule, "source", "none");
                add_str(b, rule, "from", "no role annotation and no --default-role");
                return;
        }
        if (dec->verdict == POD_ROLE_SERVICE_ACCOUNTS_LISTING ||
            dec->verdict == POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN) {
                add_str(b, rule, "source", "none");
                add_str(b, rule, "from",
                        dec->verdict == POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN
                                ? "no role annotation, and ServiceAccounts may not be read (RBAC)"
                                : "no role annotation, and ServiceAccounts are not listed yet");
                return;
        }
        if (!dec->role_arn) {
                add_str(b, rule, "source", "none");
                add_str(b, rule, "from",
                        "no role annotation, and the namespace's default-role is not known");
                return;
        }
        add_str(b, rule, "source", role_source_name(dec->source));
        _cleanup_free_ char *from = NULL;
        switch (dec->source) {
        case ROLE_SOURCE_ANNOTATION:
                if (asprintf(&from, "pod annotation %s=%s", b->d->role_key, strempty(pod->role)) < 0)
                        from = NULL;
                break;
        case ROLE_SOURCE_SERVICE_ACCOUNT:
                if (asprintf(&from, "ServiceAccount %s/%s annotation %s (the pod has no role annotation)",
                             pod->namespace, pod->service_account ?: "default",
                             KUBE_SERVICE_ACCOUNT_ROLE_ANNOTATION) < 0)
                        from = NULL;
                break;
        case ROLE_SOURCE_NAMESPACE_DEFAULT:
                if (asprintf(&from, "namespace %s annotation %s (no role annotation or ServiceAccount role)",
                             pod->namespace, KUBE_NAMESPACE_DEFAULT_ROLE_ANNOTATION) < 0)
                        from = NULL;
                break;
        case ROLE_SOURCE_DEFAULT:
                from = strdup("--default-role (the pod has no role annotation)");
                break;
        }
        if (!from)
                b->oom = true;
        add_str(b, rule, "from", from);
}

static void add_namespace(Builder *b, const StorePod *pod, const PodRoleDecision *dec) {
        const StoreNamespace *ns = store_get_namespace(b->d->store, pod->namespace);
        cJSON *o = add_obj(b, b->root, "namespace");
        _cleanup_free_ char **roles = NULL;
        const char *pattern = NULL;
        bool allowed;

        if (ns && store_namespace_list(ns, STORE_NAMESPACE_ALLOWED_ROLES, &roles) < 0)
                b->oom = true;

        add_str(b, o, "name", pod->namespace);
        add_bool(b, o, "restricted", roles_restrictions(b->d->roles));
        add_bool(b, o, "known", ns != NULL);
        if (ns) {
                cJSON *a = add_arr(b, o, "allowedRoles");
                for (char **r = roles; a && r && *r; r++)
                        arr_str(b, a, *r);
                add_bool(b, o, "annotationInvalid",
                         store_namespace_invalid(ns, STORE_NAMESPACE_ALLOWED_ROLES));
        }
        add_str(b, o, "annotation", b->d->namespace_key);
        if (!dec->role_arn) {
                add_str(b, o, "result", "no role to check");
                return;
        }
        allowed = roles_namespace_match(b->d->roles, dec->role_arn, ns != NULL, roles, &pattern);
        add_str(b, o, "matched", pattern);
        add_str(b, o, "result",
                !roles_restrictions(b->d->roles) ? "not restricted"
                : allowed && !pattern            ? "allowed (the default role)"
                : allowed                        ? "allowed by pattern"
                : !ns && !b->d->pods_synced      ? "denied: namespace not synced yet"
                : !ns                            ? "denied: namespace not known"
                                                 : "denied: no pattern matches");
}

/* What the cache entry says of the next request: served, or refused until the error TTL ends (a
 * denial is answered from the cache), or retried (throttling, transient failures). */
typedef enum CacheOutlook {
        CACHE_SERVES,
        CACHE_RETRIES, /* in the error state after a retryable failure: the next fetch may work */
        CACHE_DENIES,
} CacheOutlook;

static void add_cache(Builder *b, const PodRoleDecision *dec, CacheOutlook *ret) {
        CredsEntryInfo info;
        cJSON *o;

        *ret = CACHE_SERVES;
        if (!b->d->creds || !dec->role_arn || dec->verdict != POD_ROLE_ALLOWED)
                return;
        o = add_obj(b, b->root, "cache");
        if (creds_describe(b->d->creds,
                           &(const CredsKey){ .role_arn = dec->role_arn,
                                              .external_id = dec->external_id,
                                              .session_name = dec->session_name,
                                              .session = dec->session },
                           &info) < 0) {
                add_str(b, o, "state", "none");
                return;
        }
        add_str(b, o, "state", info.state);
        add_time(b, o, "validUntil", info.expiration);
        add_time(b, o, "refreshAt", info.refresh_at);
        add_time(b, o, "retryAt", info.retry_at);
        add_num(b, o, "inUse", info.in_use);
        add_num(b, o, "waiting", info.waiters);
        if (info.error) {
                cJSON *e = add_obj(b, o, "lastError");
                add_str(b, e, "code", info.error->code);
                add_num(b, e, "httpStatus", (double) info.error->http_status);
                add_str(b, e, "requestId", info.error->request_id);
        }
        if (streq(info.state, "error"))
                *ret = info.error && info.error->class == STS_ERROR_DENIED ? CACHE_DENIES : CACHE_RETRIES;
}

static void add_requests(Builder *b, const StorePod *pod) {
        const PodRoleRequest *q[POD_ROLES_REQUEST_RING];
        size_t n = pod_roles_requests(b->d->pod_roles, pod->uid, q, ELEMENTSOF(q));
        cJSON *a = add_arr(b, b->root, "requests");

        for (size_t i = 0; a && i < n; i++) {
                cJSON *o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(a, o)) {
                        cJSON_Delete(o);
                        b->oom = true;
                        return;
                }
                add_str(b, o, "route", q[i]->route);
                add_num(b, o, "status", q[i]->status);
                add_time(b, o, "at", q[i]->when);
        }
}

/* Whether each of the pod's addresses leads to it, and the first one that does not. */
static int check_addresses(Builder *b, const StorePod *pod, const char **ret_other) {
        bool ok = pod->ips && pod->ips[0];

        *ret_other = NULL;
        for (char **ip = pod->ips; ip && *ip; ip++) {
                StoreLookup l;
                int r = store_lookup_ip(b->d->store, *ip, &l);
                if (r < 0)
                        return r;
                if (l.status != STORE_LOOKUP_FOUND || !streq(l.pod->uid, pod->uid)) {
                        ok = false;
                        if (l.status == STORE_LOOKUP_AMBIGUOUS && !cJSON_HasObjectItem(b->root, "ambiguity"))
                                add_str(b, b->root, "ambiguity", l.error);
                        else if (l.status == STORE_LOOKUP_FOUND)
                                *ret_other = *ip;
                }
                store_lookup_done(&l);
        }
        return ok;
}

/* Why a pod of the store is not served by address, or NULL when it is. */
static const char *not_indexed_reason(const StorePod *pod) {
        if (pod->host_network)
                return "hostNetwork: the pod uses the node's address and gets the node's metadata";
        if (streq(pod->phase, "Succeeded") || streq(pod->phase, "Failed"))
                return "terminal phase: the pod has finished";
        if (!pod->ips || !pod->ips[0])
                return "no address yet";
        return NULL;
}

static int explain_pod(Builder *b, const StorePod *pod) {
        _cleanup_(pod_role_decision_done) PodRoleDecision dec = {};
        const char *reason = not_indexed_reason(pod), *other = NULL;
        cJSON *o = add_obj(b, b->root, "pod"), *ips;
        CacheOutlook cache;
        bool served;
        int r;

        add_str(b, o, "namespace", pod->namespace);
        add_str(b, o, "name", pod->name);
        add_str(b, o, "uid", pod->uid);
        add_str(b, o, "phase", pod->phase);
        add_bool(b, o, "terminating", pod->terminating);
        /* restored from the snapshot of a warm restart: not served until the API server confirms it */
        add_bool(b, o, "unconfirmed", pod->unconfirmed);
        ips = add_arr(b, o, "addresses");
        for (char **ip = pod->ips; ips && ip && *ip; ip++)
                arr_str(b, ips, *ip);

        r = pod_roles_decide(b->d->pod_roles, pod, &dec);
        if (r < 0)
                return r;
        add_str(b, b->root, "role", dec.role_arn);
        add_rule(b, pod, &dec);
        add_namespace(b, pod, &dec);
        /* an external id guards a role against confused deputies: whether it is set, never its value */
        add_bool(b, b->root, "externalId", !isempty(dec.external_id));
        add_cache(b, &dec, &cache);
        add_requests(b, pod);

        r = check_addresses(b, pod, &other);
        if (r < 0)
                return r;
        served = !reason && r > 0 && dec.verdict == POD_ROLE_ALLOWED && cache != CACHE_DENIES &&
                 b->d->pods_synced;
        add_bool(b, b->root, "credentials", served);
        add_str(b, b->root, "reason",
                served && pod->unconfirmed
                        ? "the pod would get its role's credentials once the API server confirms it "
                          "(restored by a warm restart: its first request asks for it)"
                : served && cache == CACHE_RETRIES ? "the pod would get its role's credentials once STS "
                                                     "answers (the last call failed and is retried)"
                : served                           ? "the pod would get its role's credentials"
                : !b->d->pods_synced               ? "the pod list is not synced with the API server"
                : reason                           ? reason
                : cJSON_GetObjectItem(b->root, "ambiguity") ? "the address is ambiguous (IP reuse)"
                : other                                     ? "another pod holds the address"
                : dec.verdict == POD_ROLE_NO_ROLE           ? "no role: no annotation and no --default-role"
                : dec.verdict == POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN
                        ? "no role: ServiceAccounts may not be read (grant list and watch on "
                          "serviceaccounts)"
                : dec.verdict == POD_ROLE_SERVICE_ACCOUNTS_LISTING
                        ? "no role: ServiceAccounts not listed yet"
                : !dec.role_arn ? "no role: the namespace, which may name a default role, is not known"
                : dec.verdict != POD_ROLE_ALLOWED
                        ? "the namespace restriction denies the role"
                        : "STS denied the role (answered from the cache until the error TTL ends)");
        return 0;
}

static bool is_address(const char *q) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, q, buf) == 1 || inet_pton(AF_INET6, q, buf) == 1;
}

typedef struct Search {
        const char *query;
        const char *namespace; /* NULL: any */
        const char *name;      /* NULL: match by address */
        const StorePod *found[EXPLAIN_MAX_CANDIDATES];
        size_t n;
        /* by address: a hostNetwork pod holding it (the node's own address, which every such pod
         * shares: listing them as an ambiguity would mislead) */
        const StorePod *host_network;
} Search;

static void visit(const StorePod *pod, void *userdata) {
        Search *s = userdata;
        bool match = false;

        if (s->name)
                match = streq(pod->name, s->name) && (!s->namespace || streq(pod->namespace, s->namespace));
        else
                for (char **ip = pod->ips; ip && *ip && !match; ip++)
                        match = streq(*ip, s->query);
        if (match && !s->name && pod->host_network)
                s->host_network = s->host_network ?: pod;
        else if (match && s->n < ELEMENTSOF(s->found))
                s->found[s->n++] = pod;
}

static void explain_unknown(Builder *b, const Search *s) {
        add_bool(b, b->root, "credentials", false);
        add_str(b, b->root, "reason",
                !b->d->pods_synced ? "unknown pod: the pod list is not synced with the API server yet"
                : s->name          ? "unknown pod: not on this node (the daemon knows only its node's pods)"
                                   : "unknown address: no pod of this node has it");
}

static void explain_candidates(Builder *b, const Search *s, bool verdict) {
        cJSON *a = add_arr(b, b->root, "candidates");

        for (size_t i = 0; a && i < s->n; i++) {
                _cleanup_free_ char *id = NULL;
                if (asprintf(&id, "%s/%s", s->found[i]->namespace, s->found[i]->name) < 0)
                        b->oom = true;
                else
                        arr_str(b, a, id);
        }
        if (!verdict)
                return;
        add_bool(b, b->root, "credentials", false);
        add_str(b, b->root, "reason",
                s->name ? "the name is used in several namespaces: ask for NAMESPACE/POD"
                        : "the address is ambiguous (IP reuse): several pods of this node have it");
}

/* An address held by several pods: the one the store serves (if any) is explained. */
static int explain_search(Builder *b, Search *s) {
        store_foreach_pod(b->d->store, visit, s);
        if (s->n == 0 && s->host_network)
                return explain_pod(b, s->host_network);
        if (s->n == 0) {
                explain_unknown(b, s);
                return 0;
        }
        if (s->n == 1)
                return explain_pod(b, s->found[0]);
        if (!s->name) {
                StoreLookup l;
                int r = store_lookup_ip(b->d->store, s->query, &l);
                if (r < 0)
                        return r;
                if (l.status == STORE_LOOKUP_FOUND) {
                        /* the store serves one of them (the others are terminating): its verdict */
                        r = explain_pod(b, l.pod);
                        store_lookup_done(&l);
                        explain_candidates(b, s, false);
                        return r;
                }
                store_lookup_done(&l);
        }
        explain_candidates(b, s, true);
        return 0;
}

int explain_query(const ExplainDeps *d, const char *query, char **ret_json) {
        _cleanup_free_ char *copy = NULL;
        Builder b = { .d = d };
        Search s = { .query = query };
        char *slash, *out;
        int r;

        if (isempty(query) || strlen(query) > EXPLAIN_MAX_QUERY)
                return -EINVAL;
        b.root = cJSON_CreateObject();
        copy = strdup(query);
        if (!b.root || !copy) {
                cJSON_Delete(b.root);
                return -ENOMEM;
        }
        add_str(&b, b.root, "query", query);
        add_str(&b, b.root, "node", d->node);
        add_bool(&b, b.root, "synced", d->pods_synced);
        if (!is_address(query)) {
                slash = strchr(copy, '/');
                if (slash) {
                        *slash = '\0';
                        s.namespace = copy;
                        s.name = slash + 1;
                } else
                        s.name = copy;
        }
        r = explain_search(&b, &s);
        if (r < 0 || b.oom) {
                cJSON_Delete(b.root);
                return r < 0 ? r : -ENOMEM;
        }
        out = cJSON_PrintUnformatted(b.root);
        cJSON_Delete(b.root);
        if (!out)
                return -ENOMEM;
        *ret_json = out;
        return 0;
}

static const char *jstr(const cJSON *o, const char *name) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
        return s;
}

static void line(StrBuf *out, const char *label, const char *value) {
        if (value)
                strbuf_appendf(out, "%-12s %s\n", label, value);
}

static void render_pod(const cJSON *root, StrBuf *out) {
        const cJSON *pod = cJSON_GetObjectItemCaseSensitive(root, "pod"), *ip;
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(root, "namespace");
        const cJSON *rule = cJSON_GetObjectItemCaseSensitive(root, "rule");
        const cJSON *cache = cJSON_GetObjectItemCaseSensitive(root, "cache"), *q;
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(cache, "lastError");
        bool first = true;

        if (!pod)
                return;
        strbuf_appendf(out, "%-12s %s/%s (uid %s, phase %s%s%s)\n", "pod:", strna(jstr(pod, "namespace")),
                       strna(jstr(pod, "name")), strna(jstr(pod, "uid")),
                       isempty(jstr(pod, "phase")) ? "unknown" : jstr(pod, "phase"),
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pod, "terminating")) ? ", terminating"
                                                                                          : "",
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pod, "unconfirmed"))
                               ? ", unconfirmed: restored, not yet confirmed by the API server"
                               : "");
        strbuf_appendf(out, "%-12s", "addresses:");
        cJSON_ArrayForEach(ip, cJSON_GetObjectItemCaseSensitive(pod, "addresses"))
                strbuf_appendf(out, " %s", strna(cJSON_GetStringValue(ip)));
        strbuf_append_char(out, '\n');
        line(out, "role:", jstr(root, "role") ?: "(none)");
        if (rule)
                strbuf_appendf(out, "%-12s %s: %s\n", "rule:", strna(jstr(rule, "source")),
                               strna(jstr(rule, "from")));
        if (ns)
                strbuf_appendf(out, "%-12s %s: %s%s%s%s\n", "namespace:", strna(jstr(ns, "name")),
                               strna(jstr(ns, "result")), jstr(ns, "matched") ? " \"" : "",
                               strempty(jstr(ns, "matched")), jstr(ns, "matched") ? "\"" : "");
        if (ns && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ns, "restricted")) && !jstr(ns, "matched")) {
                const cJSON *a;
                strbuf_appendf(out, "%-12s", "allowed:");
                cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(ns, "allowedRoles"))
                        strbuf_appendf(out, " \"%s\"", strna(cJSON_GetStringValue(a)));
                strbuf_appendf(out, "%s (annotation %s)\n",
                               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ns, "allowedRoles"))
                                       ? ""
                                       : " nothing",
                               strna(jstr(ns, "annotation")));
        }
        line(out, "external id:",
             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "externalId")) ? "set" : "(none)");
        if (cache) {
                strbuf_appendf(out, "%-12s %s", "cache:", strna(jstr(cache, "state")));
                if (jstr(cache, "validUntil"))
                        strbuf_appendf(out, ", valid until %s", jstr(cache, "validUntil"));
                if (jstr(cache, "refreshAt"))
                        strbuf_appendf(out, ", refresh at %s", jstr(cache, "refreshAt"));
                if (jstr(cache, "retryAt"))
                        strbuf_appendf(out, ", retry at %s", jstr(cache, "retryAt"));
                strbuf_append_char(out, '\n');
        }
        if (err)
                strbuf_appendf(
                        out, "%-12s %s (HTTP %d, request id %s)\n", "last error:", strna(jstr(err, "code")),
                        (int) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(err, "httpStatus")),
                        jstr(err, "requestId") ?: "none");
        cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(root, "requests")) {
                strbuf_appendf(out, "%-12s %s %s %d\n", first ? "requests:" : "", strna(jstr(q, "at")),
                               strna(jstr(q, "route")),
                               (int) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(q, "status")));
                first = false;
        }
}

int explain_render_text(const char *json, StrBuf *out) {
        cJSON *root = cJSON_Parse(json), *c;
        const cJSON *credentials;
        bool served;

        credentials = cJSON_GetObjectItemCaseSensitive(root, "credentials");
        if (!cJSON_IsBool(credentials) || !jstr(root, "reason")) {
                cJSON_Delete(root);
                return -EBADMSG;
        }
        served = cJSON_IsTrue(credentials);
        line(out, "query:", jstr(root, "query"));
        line(out, "node:", jstr(root, "node"));
        render_pod(root, out);
        line(out, "ambiguity:", jstr(root, "ambiguity"));
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "candidates"))
                line(out, "also:", cJSON_GetStringValue(c));
        strbuf_appendf(out, "%-12s %s: %s\n", "verdict:", served ? "credentials" : "no credentials",
                       jstr(root, "reason"));
        cJSON_Delete(root);
        return served;
}
