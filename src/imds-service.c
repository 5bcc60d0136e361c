/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "aws/credentials.h"
#include "aws/imds-client.h"
#include "aws/sts.h"
#include "config.h"
#include "creds.h"
#include "imds-service.h"
#include "imds-surface.h"
#include "imds-token.h"
#include "kube/kube-client.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "roles.h"
#include "store.h"
#include "string-util.h"

#define TOKEN_HEADER "X-aws-ec2-metadata-token"
#define TOKEN_TTL_HEADER "X-aws-ec2-metadata-token-ttl-seconds"
#define AUDIT_MAX_PODS 65536U

typedef struct PodRequest PodRequest;

/* What a pod was last marked as using in the cache, and its last audit entry. */
typedef struct PodState {
        char *uid;
        char *role_arn; /* in use in the cache, or NULL */
        char *external_id;
        char *audit_key; /* "<result> <role>" of the last audit entry */
        usec_t audit_at;
        LogRatelimit log_ratelimit; /* the lines this pod's requests may cause */
} PodState;

struct ImdsService {
        ImdsServiceDeps d;
        PodRequest *waiting;
        unsigned n_waiting;
        PodState *pods;
        size_t n_pods, cap_pods;
        LogRatelimit audit_ratelimit;
        LogRatelimit request_log_ratelimit;
        MetricFamily *m_not_in_cache, *m_dup, *m_dup_success, *m_tokens;
};

struct PodRequest {
        ImdsService *service;
        HttpRequest *req; /* NULL once the client is gone (a live lookup may still be running) */
        RouteId route;
        bool extended;              /* iam/security-credentials-extended: the document adds AccountId */
        ImdsSurfaceVerdict verdict; /* ROUTE_PROXY: what the metadata table said */
        char *path;                 /* ROUTE_PROXY: the clean path to forward */
        char *url_role;
        char ip[64];
        usec_t deadline; /* CLOCK_MONOTONIC */
        sd_event_source *timer;
        CredsWaiter *waiter;
        bool resolving; /* a live API lookup (--resolve-duplicate-cache-ips) is running */
        bool resolved_once;
        bool linked;
        bool counted_miss;
        char *audit_uid, *audit_ns, *audit_name, *audit_role;
        PodRequest *prev, *next;
};

static const HttpHeader text_headers[] = {
        { "Server", "EC2ws" },
        { "Content-Type", "text/plain; charset=utf-8" },
        { "X-Content-Type-Options", "nosniff" },
};

/* Go's http.Error: the message and a newline, plain text, nosniff; Server: EC2ws first. */
static void respond_error(HttpRequest *req, unsigned status, const char *msg) {
        _cleanup_free_ char *b = NULL;

        if (asprintf(&b, "%s\n", msg) < 0) {
                (void) http_request_respond(req, 500, NULL, 0, NULL, 0);
                return;
        }
        (void) http_request_respond(req, status, text_headers, ELEMENTSOF(text_headers), b, strlen(b));
}

/* IMDS's own 404: the same XHTML page the real service sends for a path it does not have. */
static void respond_not_found(HttpRequest *req) {
        static const char body[] =
                "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
                "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n"
                "\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"
                "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n"
                " <head>\n"
                "  <title>404 - Not Found</title>\n"
                " </head>\n"
                " <body>\n"
                "  <h1>404 - Not Found</h1>\n"
                " </body>\n"
                "</html>\n";
        const HttpHeader h[] = { { "Server", "EC2ws" }, { "Content-Type", "text/html" } };
        (void) http_request_respond(req, 404, h, ELEMENTSOF(h), body, sizeof body - 1);
}

static void respond_ok_text(HttpRequest *req, const char *body, bool secret) {
        const HttpHeader h[] = { { "Server", "EC2ws" }, { "Content-Type", "text/plain; charset=utf-8" } };
        if (secret)
                (void) http_request_respond_secret(req, 200, h, ELEMENTSOF(h), body, strlen(body));
        else
                (void) http_request_respond(req, 200, h, ELEMENTSOF(h), body, strlen(body));
}

/* ---- documents ---- */

static void json_string(StrBuf *b, const char *s) {
        const unsigned char *run = (const unsigned char *) s, *p;

        /* Runs of plain bytes go in with one append: a credential document is ~1.3 KB, mostly the
         * session token, and byte-wise appends were half of a cached request's instructions. */
        strbuf_append_char(b, '"');
        for (p = run; *p; p++) {
                if (*p != '"' && *p != '\\' && *p >= 0x20)
                        continue;
                strbuf_append_n(b, (const char *) run, (size_t) (p - run));
                if (*p < 0x20)
                        strbuf_appendf(b, "\\u%04x", *p);
                else {
                        strbuf_append_char(b, '\\');
                        strbuf_append_char(b, (char) *p);
                }
                run = p + 1;
        }
        strbuf_append_n(b, (const char *) run, (size_t) (p - run));
        strbuf_append_char(b, '"');
}

static void json_field(StrBuf *b, const char *key, const char *value, bool last) {
        strbuf_append(b, "  ");
        json_string(b, key);
        strbuf_append(b, " : ");
        json_string(b, value);
        strbuf_append(b, last ? "\n" : ",\n");
}

int imds_account_from_arn(const char *arn, char ret[static IMDS_ACCOUNT_ID_MAX]) {
        const char *p = arn;

        /* arn:partition:service:region:account:resource */
        for (int field = 0; field < 4; field++) {
                p = strchr(p, ':');
                if (!p)
                        return -EINVAL;
                p++;
        }
        size_t n = strcspn(p, ":");
        if (n == 0 || n >= IMDS_ACCOUNT_ID_MAX || p[n] != ':')
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char) p[i]))
                        return -EINVAL;
        memcpy(ret, p, n);
        ret[n] = '\0';
        return 0;
}

int imds_credentials_json(const Credentials *c, const char *account_id, StrBuf *out) {
        char updated[TIMESTAMP_MAX], expiration[TIMESTAMP_MAX];

        format_timestamp_imds(c->last_updated, updated, sizeof updated);
        format_timestamp_imds(c->expiration, expiration, sizeof expiration);
        strbuf_append(out, "{\n");
        json_field(out, "Code", "Success", false);
        json_field(out, "LastUpdated", updated, false);
        json_field(out, "Type", "AWS-HMAC", false);
        json_field(out, "AccessKeyId", c->access_key_id, false);
        json_field(out, "SecretAccessKey", secret_reveal(c->secret_access_key), false);
        json_field(out, "Token", c->session_token ? secret_reveal(c->session_token) : "", false);
        json_field(out, "Expiration", expiration, !account_id);
        if (account_id)
                json_field(out, "AccountId", account_id, true);
        strbuf_append(out, "}");
        return strbuf_error(out);
}

int imds_iam_info_json(const char *role_arn, usec_t last_updated, StrBuf *out) {
        static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        unsigned char digest[SHA256_DIGEST_LENGTH];
        char updated[TIMESTAMP_MAX], id[4 + 17 + 1] = "AIPA";
        _cleanup_free_ char *profile = NULL;
        const char *role = strstr(role_arn, ":role/");

        /* a role-backed profile: same account and path, "instance-profile" for "role" */
        if (role) {
                if (asprintf(&profile, "%.*s:instance-profile/%s", (int) (role - role_arn), role_arn,
                             role + strlen(":role/")) < 0)
                        return -ENOMEM;
        } else if (!(profile = strdup(role_arn)))
                return -ENOMEM;
        /* a stable id per role, in the shape of IAM's unique ids (AIPA + 17 base32 characters) */
        SHA256((const unsigned char *) role_arn, strlen(role_arn), digest);
        for (size_t i = 0; i < 17; i++)
                id[4 + i] = b32[digest[i] & 31];
        id[21] = '\0';
        format_timestamp_imds(last_updated, updated, sizeof updated);
        strbuf_append(out, "{\n");
        json_field(out, "Code", "Success", false);
        json_field(out, "LastUpdated", updated, false);
        json_field(out, "InstanceProfileArn", profile, false);
        json_field(out, "InstanceProfileId", id, true);
        strbuf_append(out, "}");
        return strbuf_error(out);
}

bool imds_service_host_is_metadata(const char *host, const char *metadata_host) {
        _cleanup_free_ char *h = NULL;
        const char *end;

        if (host[0] == '[') {
                end = strchr(host, ']');
                if (!end || (end[1] != '\0' && (end[1] != ':' || !streq(end + 2, "80"))))
                        return false;
                h = strndup(host + 1, (size_t) (end - host - 1));
        } else {
                end = strchr(host, ':');
                if (end && !streq(end + 1, "80"))
                        return false;
                h = end ? strndup(host, (size_t) (end - host)) : strdup(host);
        }
        if (!h)
                return false;
        return streq(h, "169.254.169.254") || strcasecmp(h, "fd00:ec2::254") == 0 ||
               (metadata_host && streq(h, metadata_host));
}

/* ---- per-pod state: what the cache was told, and the audit rate limit ---- */

static PodState *pod_state(ImdsService *s, const char *uid, bool create) {
        for (size_t i = 0; i < s->n_pods; i++)
                if (streq(s->pods[i].uid, uid))
                        return &s->pods[i];
        if (!create || s->n_pods >= AUDIT_MAX_PODS)
                return NULL;
        if (s->n_pods == s->cap_pods) {
                size_t cap = MAX((size_t) 16, s->cap_pods * 2);
                PodState *p = reallocarray(s->pods, cap, sizeof *p);
                if (!p)
                        return NULL;
                s->pods = p;
                s->cap_pods = cap;
        }
        s->pods[s->n_pods] = (PodState){
                .uid = strdup(uid),
                .log_ratelimit = { .interval_usec = IMDS_SERVICE_POD_LOG_INTERVAL,
                                   .burst = IMDS_SERVICE_POD_LOG_BURST },
        };
        if (!s->pods[s->n_pods].uid)
                return NULL;
        return &s->pods[s->n_pods++];
}

static void pod_state_drop(ImdsService *s, PodState *p) {
        free(p->uid);
        free(p->role_arn);
        free(p->external_id);
        free(p->audit_key);
        *p = s->pods[--s->n_pods];
}

/* message: the line's text when kube2iam had one people grep for ("Error assuming role ..."); NULL
 * for ours, "Credentials <result> for pod ...". */
static void audit_full(ImdsService *s, const char *uid, const char *ns, const char *name, const char *ip,
                       const char *role, const char *result, int level, const char *message_id,
                       const char *detail, const char *message) {
        _cleanup_free_ char *key = NULL;
        PodState *p = uid ? pod_state(s, uid, true) : NULL;
        usec_t now = now_monotonic();

        if (asprintf(&key, "%s %s", result, strempty(role)) < 0)
                return;
        if (p && p->audit_key && streq(p->audit_key, key) && now - p->audit_at < IMDS_SERVICE_AUDIT_REPEAT)
                return;
        if (!log_ratelimit_allow(p ? &p->log_ratelimit : NULL, &s->audit_ratelimit))
                return;
        if (p) {
                free_and_replace(p->audit_key, key);
                p->audit_at = now;
        }
        const LogField fields[] = {
                { "MESSAGE_ID", message_id }, { "POD_NAMESPACE", ns }, { "POD_NAME", name },
                { "POD_UID", uid },           { "POD_IP", ip },        { "ROLE_ARN", role },
                { "RESULT", result },
        };
        if (message)
                log_fields(level, fields, ELEMENTSOF(fields), "%s", message);
        else
                log_fields(level, fields, ELEMENTSOF(fields),
                           "Credentials %s for pod %s/%s at %s, role %s%s%s", result, strna(ns), strna(name),
                           ip, strna(role), detail ? ": " : "", strempty(detail));
}

static void audit(ImdsService *s, const char *uid, const char *ns, const char *name, const char *ip,
                  const char *role, const char *result, int level, const char *message_id,
                  const char *detail) {
        audit_full(s, uid, ns, name, ip, role, result, level, message_id, detail, NULL);
}

/* ---- waiting requests ---- */

static void pod_request_free(PodRequest *pr) {
        ImdsService *s = pr->service;

        if (pr->linked) {
                if (pr->prev)
                        pr->prev->next = pr->next;
                else
                        s->waiting = pr->next;
                if (pr->next)
                        pr->next->prev = pr->prev;
                s->n_waiting--;
        }
        if (pr->waiter)
                creds_waiter_cancel(pr->waiter);
        sd_event_source_disable_unref(pr->timer);
        free(pr->url_role);
        free(pr->path);
        free(pr->audit_uid);
        free(pr->audit_ns);
        free(pr->audit_name);
        free(pr->audit_role);
        free(pr);
}

static void pod_request_unlink(PodRequest *pr) {
        ImdsService *s = pr->service;
        if (!pr->linked)
                return;
        if (pr->prev)
                pr->prev->next = pr->next;
        else
                s->waiting = pr->next;
        if (pr->next)
                pr->next->prev = pr->prev;
        pr->prev = pr->next = NULL;
        pr->linked = false;
        s->n_waiting--;
}

/* The request has been answered (or its client left): nothing more to do for it. */
static void pod_request_done(PodRequest *pr) {
        pr->req = NULL;
        if (pr->resolving)
                return; /* freed when the live lookup reports */
        pod_request_free(pr);
}

static void pod_request_answer_error(PodRequest *pr, unsigned status, const char *msg) {
        HttpRequest *req = pr->req;
        pod_request_unlink(pr);
        if (req)
                respond_error(req, status, msg);
        pod_request_done(pr);
}

static void on_request_abort(HttpRequest *req, void *userdata) {
        pod_request_done(userdata);
}

static void try_answer(PodRequest *pr, bool final);

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        try_answer(userdata, true);
        return 0;
}

static void wait_for_pod(PodRequest *pr) {
        ImdsService *s = pr->service;

        if (!pr->linked) {
                if (s->n_waiting >= IMDS_SERVICE_MAX_WAITING) {
                        pod_request_answer_error(pr, 503, "too many requests waiting for pods");
                        return;
                }
                pr->next = s->waiting;
                if (s->waiting)
                        s->waiting->prev = pr;
                s->waiting = pr;
                pr->linked = true;
                s->n_waiting++;
        }
        if (!pr->timer && sd_event_add_time(s->d.event, &pr->timer, CLOCK_MONOTONIC, pr->deadline, 1,
                                            on_deadline, pr) < 0) {
                pod_request_answer_error(pr, 500, "failed to wait for the pod");
                return;
        }
        http_request_set_owner(pr->req, on_request_abort, pr);
}

static void on_creds(Credentials *creds, const StsError *error, void *userdata) {
        PodRequest *pr = userdata;
        ImdsService *s = pr->service;
        HttpRequest *req = pr->req;

        pr->waiter = NULL;
        if (!req) {
                pod_request_done(pr);
                return;
        }
        if (creds) {
                _cleanup_(strbuf_done_erase) StrBuf b = { .erase = true };
                char account[IMDS_ACCOUNT_ID_MAX];
                bool with_account = pr->extended && pr->audit_role &&
                                    imds_account_from_arn(pr->audit_role, account) >= 0;
                if (imds_credentials_json(creds, with_account ? account : NULL, &b) < 0) {
                        respond_error(req, 500, "out of memory");
                } else {
                        respond_ok_text(req, b.s, true);
                        audit(s, pr->audit_uid, pr->audit_ns, pr->audit_name, pr->ip, pr->audit_role,
                              "issued", LOG_INFO, LOG_MESSAGE_ID_CREDS_ISSUED, NULL);
                }
        } else {
                /* kube2iam's 500 body is the SDK's error string, and its log line "Error assuming role
                 * <that string>" */
                _cleanup_free_ char *msg = NULL, *line = NULL;
                if (sts_error_describe(error, &msg) < 0 ||
                    asprintf(&line, "Error assuming role %s", msg) < 0)
                        line = NULL;
                respond_error(req, 500, msg ?: "Error assuming role");
                audit_full(s, pr->audit_uid, pr->audit_ns, pr->audit_name, pr->ip, pr->audit_role,
                           "sts-error", LOG_ERR, LOG_MESSAGE_ID_STS_FAILURE, error->code, line);
        }
        pod_request_done(pr);
}

static void forward_metadata(ImdsService *s, HttpRequest *req, const char *path, bool listing);

/* A pod of this node asked for metadata the table lets through (role or not). */
static void answer_metadata(PodRequest *pr) {
        HttpRequest *req = pr->req;

        pod_request_unlink(pr);
        (void) sd_event_source_set_enabled(pr->timer, SD_EVENT_OFF);
        if (pr->verdict == IMDS_SURFACE_SERVED)
                /* iam/: what the daemon answers there, as the real IMDS lists it */
                respond_ok_text(req, "info\nsecurity-credentials/", false);
        else
                forward_metadata(pr->service, req, pr->path, pr->verdict == IMDS_SURFACE_LISTING);
        pod_request_done(pr);
}

static void answer_for_pod(PodRequest *pr, const StorePod *pod) {
        ImdsService *s = pr->service;
        const StoreNamespace *ns;
        _cleanup_free_ char *arn = NULL, *msg = NULL;
        RoleSource source;
        int r;

        if (pr->route == ROUTE_PROXY)
                return answer_metadata(pr);

        free(pr->audit_uid);
        free(pr->audit_ns);
        free(pr->audit_name);
        pr->audit_uid = strdup(pod->uid);
        pr->audit_ns = strdup(pod->namespace);
        pr->audit_name = strdup(pod->name);

        r = roles_for_pod(s->d.roles, pod->role, &arn, &source);
        if (r == -ENOENT) {
                (void) asprintf(&msg, "unable to find role for IP %s", pr->ip);
                audit(s, pod->uid, pod->namespace, pod->name, pr->ip, NULL, "no-role", LOG_NOTICE,
                      LOG_MESSAGE_ID_ROLE_DENIED, NULL);
                pod_request_answer_error(pr, 404, msg ?: "unable to find role");
                return;
        }
        if (r < 0) {
                pod_request_answer_error(pr, 500, "out of memory");
                return;
        }
        /* kube2iam warns on every request; ours shares the audit's rate limit */
        if (source == ROLE_SOURCE_DEFAULT && log_get_max_level() >= LOG_WARNING &&
            log_ratelimit_test(&s->audit_ratelimit))
                log_warning("Using fallback role for IP %s", pr->ip);

        ns = store_get_namespace(s->d.store, pod->namespace);
        if (!roles_namespace_allows(s->d.roles, arn, ns != NULL, ns ? ns->allowed_roles : NULL)) {
                _cleanup_free_ char *line = NULL;
                if (!ns)
                        log_debug("Unable to find an indexed namespace of %s", pod->namespace);
                else if (asprintf(&line, "Role: %s on namespace: %s not found.", arn, pod->namespace) < 0)
                        line = NULL; /* kube2iam's warning, word for word */
                (void) asprintf(&msg,
                                "role requested %s not valid for namespace of pod at %s with namespace %s",
                                arn, pr->ip, pod->namespace);
                audit_full(s, pod->uid, pod->namespace, pod->name, pr->ip, arn, "denied", LOG_WARNING,
                           LOG_MESSAGE_ID_ROLE_DENIED, ns ? "namespace restriction" : "namespace not known",
                           line);
                pod_request_answer_error(pr, 404, msg ?: "role not valid for namespace");
                return;
        }

        switch (pr->route) {
        case ROUTE_ROLE_LIST: {
                HttpRequest *req = pr->req;
                pod_request_unlink(pr);
                respond_ok_text(req, roles_list_name(s->d.roles, arn), false);
                pod_request_done(pr);
                return;
        }
        case ROUTE_IAM_INFO: {
                _cleanup_strbuf_ StrBuf b = {};
                HttpRequest *req = pr->req;
                if (imds_iam_info_json(arn, now_realtime(), &b) < 0) {
                        pod_request_answer_error(pr, 500, "out of memory");
                        return;
                }
                pod_request_unlink(pr);
                respond_ok_text(req, b.s, false);
                pod_request_done(pr);
                return;
        }
        case ROUTE_ROLE_CREDENTIALS:
                break;
        default:
                pod_request_answer_error(pr, 500, "unexpected route");
                return;
        }

        if (!roles_url_matches(s->d.roles, pr->url_role, arn)) {
                PodState *st = pod_state(s, pod->uid, true);

                (void) log_ratelimited(st ? &st->log_ratelimit : NULL, &s->request_log_ratelimit, LOG_ERR, 0,
                                       ((const LogField[]){ { "POD_IAM_ROLE", arn },
                                                            { "NS_NAME", pod->namespace },
                                                            { "PARAMS_IAM_ROLE", pr->url_role },
                                                            { "POD_IP", pr->ip } }),
                                       4, "Invalid role: does not match annotated role");
                (void) asprintf(&msg, "Invalid role %s", pr->url_role);
                audit(s, pod->uid, pod->namespace, pod->name, pr->ip, arn, "wrong-role", LOG_WARNING,
                      LOG_MESSAGE_ID_ROLE_DENIED, pr->url_role);
                pod_request_answer_error(pr, 403, msg ?: "Invalid role");
                return;
        }

        free(pr->audit_role);
        pr->audit_role = strdup(arn);
        pod_request_unlink(pr);
        (void) sd_event_source_set_enabled(pr->timer, SD_EVENT_OFF);

        {
                _cleanup_(credentials_unrefp) Credentials *creds = NULL;
                _cleanup_(sts_error_freep) StsError *error = NULL;
                CredsRequest cr = {
                        .role_arn = arn,
                        .external_id = pod->external_id,
                        .caller_ip = pr->ip,
                        .deadline = usec_add(now_realtime(), IMDS_SERVICE_CREDS_WAIT),
                        .done = on_creds,
                        .userdata = pr,
                };
                r = creds_get(s->d.creds, &cr, &creds, &error, &pr->waiter);
                if (r == CREDS_WAIT) {
                        http_request_set_owner(pr->req, on_request_abort, pr);
                        return;
                }
                pr->waiter = NULL;
                on_creds(r >= 0 ? creds : NULL, r >= 0 ? NULL : error, pr);
                if (r < 0 && !error) {
                        /* creds_get() always describes a failure; this only guards the contract */
                        (void) log_ratelimited(NULL, &s->request_log_ratelimit, LOG_ERR, r, NULL, 0,
                                               "Credential cache failed: %m");
                }
        }
}

static void on_resolved(KubeClient *k, int error, const StorePod *pod, void *userdata) {
        PodRequest *pr = userdata;
        ImdsService *s = pr->service;

        pr->resolving = false;
        pr->resolved_once = true;
        if (!pr->req) {
                pod_request_free(pr);
                return;
        }
        if (error < 0 || !pod) {
                _cleanup_free_ char *msg = NULL;
                if (error == -ENOENT)
                        msg = strdup("more than a pod with the same IP has been indexed, this can happen "
                                     "when pods "
                                     "have hostNetwork: true");
                else
                        (void) asprintf(&msg, "resolveDuplicatedIP: Error retriving the pod with IP %s",
                                        pr->ip);
                pod_request_answer_error(pr, 404, msg ?: "duplicate IP");
                return;
        }
        if (s->m_dup_success)
                (void) metrics_counter_inc(s->m_dup_success, NULL);
        answer_for_pod(pr, pod);
}

/* Looks the pod up; answers, waits, or (final) gives up with kube2iam's error text. */
static void try_answer(PodRequest *pr, bool final) {
        ImdsService *s = pr->service;
        StoreLookup l = {};

        if (!pr->req || pr->resolving || pr->waiter)
                return;
        if (store_lookup_ip(s->d.store, pr->ip, &l) < 0) {
                pod_request_answer_error(pr, 500, "out of memory");
                return;
        }
        switch (l.status) {
        case STORE_LOOKUP_FOUND:
                answer_for_pod(pr, l.pod);
                break;
        case STORE_LOOKUP_AMBIGUOUS:
                if (s->d.config->resolve_duplicate_cache_ips && s->d.kube && !pr->resolved_once) {
                        if (s->m_dup)
                                (void) metrics_counter_inc(s->m_dup, NULL);
                        if (kube_client_resolve_ip(s->d.kube, pr->ip, on_resolved, pr) >= 0) {
                                pr->resolving = true;
                                wait_for_pod(pr);
                                break;
                        }
                }
                _fallthrough_;
        case STORE_LOOKUP_NOT_FOUND:
        default:
                if (l.status == STORE_LOOKUP_NOT_FOUND && !pr->counted_miss && s->m_not_in_cache) {
                        pr->counted_miss = true;
                        (void) metrics_counter_inc(s->m_not_in_cache, NULL);
                }
                if (final || now_monotonic() >= pr->deadline)
                        pod_request_answer_error(pr, 404, l.error ?: "pod not found");
                else
                        wait_for_pod(pr);
                break;
        }
        store_lookup_done(&l);
}

static void wake_ip(ImdsService *s, const char *ip) {
        /* try_answer may free the current entry: take the next one first */
        for (PodRequest *pr = s->waiting, *next; pr; pr = next) {
                next = pr->next;
                if (streq(pr->ip, ip))
                        try_answer(pr, false);
        }
}

void imds_service_kube_changed(ImdsService *s) {
        for (PodRequest *pr = s->waiting, *next; pr; pr = next) {
                next = pr->next;
                try_answer(pr, false);
        }
}

unsigned imds_service_waiting(const ImdsService *s) {
        return s ? s->n_waiting : 0;
}

/* ---- store observers: prefetch, roles in use, waking waiters ---- */

static void on_store_ip(Store *store, const char *ip, void *userdata) {
        wake_ip(userdata, ip);
}

static void on_store_pod(Store *store, StorePodEvent event, const StorePod *pod, void *userdata) {
        ImdsService *s = userdata;
        PodState *st = pod_state(s, pod->uid, event != STORE_POD_REMOVED);
        _cleanup_free_ char *arn = NULL;
        bool use = false;

        if (event != STORE_POD_REMOVED && pod->indexed && pod->ips && !pod->terminating &&
            roles_for_pod(s->d.roles, pod->role, &arn, NULL) >= 0) {
                const StoreNamespace *ns = store_get_namespace(s->d.store, pod->namespace);
                use = roles_namespace_allows(s->d.roles, arn, ns != NULL, ns ? ns->allowed_roles : NULL);
        }

        if (st) {
                bool same = use && st->role_arn && streq(st->role_arn, arn) &&
                            streq(strempty(st->external_id), strempty(pod->external_id));
                if (st->role_arn && !same) {
                        (void) creds_set_in_use(s->d.creds, st->role_arn, st->external_id, false);
                        st->role_arn = mfree(st->role_arn);
                        st->external_id = mfree(st->external_id);
                }
                if (use && !same) {
                        st->role_arn = strdup(arn);
                        st->external_id = pod->external_id ? strdup(pod->external_id) : NULL;
                        if (st->role_arn)
                                (void) creds_set_in_use(s->d.creds, arn, pod->external_id, true);
                        if (s->d.config->prefetch)
                                (void) creds_prefetch(s->d.creds, arn, pod->external_id, pod->ips[0]);
                }
                if (event == STORE_POD_REMOVED)
                        pod_state_drop(s, st);
        }

        for (char **ip = pod->ips; ip && *ip; ip++)
                wake_ip(s, *ip);
}

/* ---- request entry points ---- */

/* 0: go on; <0: answered (401). */
static int check_token(ImdsService *s, HttpRequest *req) {
        const char *tok = http_request_header(req, TOKEN_HEADER);
        int r;

        if (!tok) {
                if (!s->d.config->imdsv2_required)
                        return 0;
                respond_error(req, 401, "Unauthorized");
                return -EACCES;
        }
        r = token_issuer_check(s->d.tokens, http_request_peer(req), tok, now_clock(CLOCK_BOOTTIME));
        if (r < 0) {
                respond_error(req, 401, "Unauthorized");
                return r;
        }
        return 0;
}

static void handle_token(ImdsService *s, HttpRequest *req, const RouteMatch *m) {
        _cleanup_free_ char *tok = NULL;
        const char *ttl_header;
        unsigned ttl;
        char ttl_str[16];

        if (!streq(http_request_method(req), "PUT"))
                return respond_error(req, 405, "Method Not Allowed");
        /* IMDS: version-specific token paths are refused by design, and so are proxied PUTs */
        if (!streq(strempty(m->version), "latest"))
                return respond_error(req, 403, "Forbidden");
        if (http_request_header(req, "X-Forwarded-For"))
                return respond_error(req, 403, "Forbidden");
        ttl_header = http_request_header(req, TOKEN_TTL_HEADER);
        if (token_parse_ttl(ttl_header, &ttl) < 0)
                return respond_error(req, 400, "Missing or Invalid Parameters");
        if (token_issuer_mint(s->d.tokens, http_request_peer(req), ttl, now_clock(CLOCK_BOOTTIME), &tok) < 0)
                return respond_error(req, 500, "Failed to create a token");
        if (s->m_tokens)
                (void) metrics_counter_inc(s->m_tokens, NULL);
        snprintf(ttl_str, sizeof ttl_str, "%u", ttl);
        const HttpHeader h[] = {
                { "Server", "EC2ws" },
                { "Content-Type", "text/plain" },
                { TOKEN_TTL_HEADER, ttl_str },
        };
        (void) http_request_respond_secret(req, 200, h, ELEMENTSOF(h), tok, strlen(tok));
}

static int filter_listing(const char *path, const char *body, size_t size, const void *userdata,
                          StrBuf *out) {
        const Config *c = userdata;
        return imds_surface_filter_listing(path, body, size, c->metadata_allow, out);
}

static void forward_metadata(ImdsService *s, HttpRequest *req, const char *path, bool listing) {
        static const char *const drop[] = { TOKEN_HEADER, TOKEN_TTL_HEADER, NULL };
        _cleanup_free_ char *upstream = NULL;
        HttpHeader extra[1];
        size_t n_extra = 0;

        /* the pod's token is ours, not the upstream's: use the daemon's own upstream token */
        if (s->d.imds && upstream_client_token(s->d.imds, &upstream) >= 0 && upstream) {
                extra[0] = (HttpHeader){ TOKEN_HEADER, upstream };
                n_extra = 1;
        }
        proxy_forward(s->d.proxy, req, path, extra, n_extra, drop, listing ? filter_listing : NULL,
                      s->d.config);
        if (upstream)
                explicit_bzero(upstream, strlen(upstream));
}

/* /{version}/meta-data/iam[/], the one listing the daemon answers itself */
static bool is_iam_listing(const char *path) {
        const char *rest = strchr(path + 1, '/');
        return rest && (streq(rest, "/meta-data/iam") || streq(rest, "/meta-data/iam/"));
}

/* ROUTE_PROXY: the metadata table decides; what it lets through still goes to pods of this node
 * only (pod_request_start waits for the address like a credential request does). 0: go on. */
static int judge_metadata(ImdsService *s, HttpRequest *req, const RouteMatch *m, ImdsSurfaceVerdict *ret) {
        const char *method = http_request_method(req);
        ImdsSurfaceVerdict v;

        /* IMDS serves GET and HEAD; any other method is not forwarded (the token PUT is ours) */
        if (!streq(method, "GET") && !streq(method, "HEAD")) {
                respond_error(req, 405, "Method Not Allowed");
                return -EPERM;
        }
        v = imds_surface_classify(m->path, s->d.config->metadata_allow);
        if (v == IMDS_SURFACE_REFUSED || v == IMDS_SURFACE_WITHHELD) {
                log_debug("Metadata path %s not forwarded (%s)", m->path, imds_surface_verdict_name(v));
                respond_not_found(req);
                return -EPERM;
        }
        if (v == IMDS_SURFACE_SERVED && !is_iam_listing(m->path)) {
                /* a path of ours the router did not take: never forwarded */
                respond_not_found(req);
                return -EPERM;
        }
        *ret = v;
        return 0;
}

void imds_service_handle(ImdsService *s, HttpRequest *req, const RouteMatch *m) {
        ImdsSurfaceVerdict verdict = IMDS_SURFACE_REFUSED;
        PodRequest *pr;

        if (m->host && !imds_service_host_is_metadata(m->host, s->d.config->metadata_host))
                return respond_error(
                        req, 403,
                        "Forbidden: only the instance metadata service (169.254.169.254) is served here");

        if (m->id == ROUTE_API_TOKEN)
                return handle_token(s, req, m);
        if (check_token(s, req) < 0)
                return;

        switch (m->id) {
        case ROUTE_IDENTITY:
                /* the node's identity credentials are the node's: never a pod's */
                return respond_not_found(req);
        case ROUTE_PROXY:
                if (judge_metadata(s, req, m, &verdict) < 0)
                        return;
                break;
        case ROUTE_ROLE_LIST:
        case ROUTE_ROLE_CREDENTIALS:
        case ROUTE_IAM_INFO:
                break;
        default:
                return respond_error(req, 500, "unexpected route");
        }

        pr = calloc(1, sizeof *pr);
        if (!pr)
                return respond_error(req, 500, "out of memory");
        pr->service = s;
        pr->req = req;
        pr->route = m->id;
        pr->extended = m->extended;
        pr->verdict = verdict;
        snprintf(pr->ip, sizeof pr->ip, "%s", http_request_peer(req));
        /* kube2iam retries for --backoff-max-elapsed-time, then sleeps once more at most
         * --backoff-max-interval before its last attempt: the same budget, woken by the store */
        pr->deadline = usec_add(now_monotonic(), usec_add(s->d.config->backoff_max_elapsed_time,
                                                          s->d.config->backoff_max_interval));
        if ((m->role && !(pr->url_role = strdup(m->role))) ||
            (m->id == ROUTE_PROXY && !(pr->path = strdup(m->path)))) {
                free(pr->url_role);
                free(pr);
                return respond_error(req, 500, "out of memory");
        }
        try_answer(pr, false);
}

int imds_service_new(const ImdsServiceDeps *deps, ImdsService **ret) {
        _cleanup_(imds_service_freep) ImdsService *s = NULL;
        int r;

        if (!deps || !deps->event || !deps->config || !deps->store || !deps->roles || !deps->creds ||
            !deps->tokens || !deps->proxy)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->d = *deps;
        s->audit_ratelimit = (LogRatelimit){ .interval_usec = IMDS_SERVICE_AUDIT_INTERVAL,
                                             .burst = IMDS_SERVICE_AUDIT_BURST };
        s->request_log_ratelimit = (LogRatelimit){ .interval_usec = IMDS_SERVICE_REQUEST_LOG_INTERVAL,
                                                   .burst = IMDS_SERVICE_REQUEST_LOG_BURST };
        if (deps->metrics) {
                r = metrics_add_family(deps->metrics, "kube2iam_iam_k8s_pod_not_in_pod_cache",
                                       "Requests from an address no known pod had.", METRIC_COUNTER, NULL,
                                       NULL, 0, 0, &s->m_not_in_cache);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_iam_k8s_dup_req_count",
                                               "Live API lookups for an address several pods had.",
                                               METRIC_COUNTER, NULL, NULL, 0, 0, &s->m_dup);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_iam_k8s_dup_req_success_count",
                                               "Live API lookups that found the pod.", METRIC_COUNTER, NULL,
                                               NULL, 0, 0, &s->m_dup_success);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_imds_tokens_issued_total",
                                               "IMDSv2 session tokens minted for pods.", METRIC_COUNTER,
                                               NULL, NULL, 0, 0, &s->m_tokens);
                if (r < 0)
                        return r;
                (void) metrics_touch(s->m_not_in_cache, NULL);
                (void) metrics_touch(s->m_dup, NULL);
                (void) metrics_touch(s->m_dup_success, NULL);
                (void) metrics_touch(s->m_tokens, NULL);
        }
        r = store_add_observer(deps->store, on_store_pod, on_store_ip, s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

ImdsService *imds_service_free(ImdsService *s) {
        if (!s)
                return NULL;
        store_remove_observer(s->d.store, on_store_pod, on_store_ip, s);
        while (s->waiting) {
                PodRequest *pr = s->waiting;
                pod_request_unlink(pr);
                if (pr->req)
                        respond_error(pr->req, 503, "service stopping");
                pod_request_done(pr);
        }
        for (size_t i = 0; i < s->n_pods; i++) {
                free(s->pods[i].uid);
                free(s->pods[i].role_arn);
                free(s->pods[i].external_id);
                free(s->pods[i].audit_key);
        }
        free(s->pods);
        free(s);
        return NULL;
}
