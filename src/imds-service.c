/* SPDX-License-Identifier: BSD-3-Clause */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "aws/credentials.h"
#include "aws/upstream-client.h"
#include "aws/sts.h"
#include "kube/kube-object.h"
#include "config.h"
#include "creds.h"
#include "imds-service.h"
#include "imds-surface.h"
#include "token-issuer.h"
#include "kube/kube-client.h"
#include "log.h"
#include "metrics.h"
#include "pod-roles.h"
#include "proxy.h"
#include "roles.h"
#include "store.h"
#include "string-util.h"

#define TOKEN_HEADER "X-aws-ec2-metadata-token"
#define TOKEN_TTL_HEADER "X-aws-ec2-metadata-token-ttl-seconds"

typedef struct PodRequest PodRequest;

/* A request that needs its pod (credentials, role list, iam/info, metadata for pods only).
 * Changed by pod_request_enter() only. */
typedef enum PodRequestState {
        POD_REQUEST_NEW,        /* looked up for the first time */
        POD_REQUEST_WAIT_POD,   /* no single pod has its address: waiting (listed), woken for its
                                 * IP by pod-roles or by its deadline timer */
        POD_REQUEST_RESOLVING,  /* a live API lookup runs (--resolve-duplicate-cache-ips; listed, not
                                 * woken); cannot be withdrawn, so it ends when the lookup reports */
        POD_REQUEST_WAIT_CREDS, /* the credential cache calls on_creds() (pr->waiter) */
        POD_REQUEST_DONE,       /* answered or abandoned: freed on entry */
} PodRequestState;

struct ImdsService {
        ImdsServiceDeps d;
        PodRequest *waiting; /* WAIT_POD and RESOLVING */
        unsigned n_waiting;
        LogRatelimit audit_ratelimit;
        LogRatelimit request_log_ratelimit;
        MetricFamily *m_not_in_cache, *m_dup, *m_dup_success, *m_tokens;
        MetricFamily *m_remaining;              /* remaining lifetime of the credentials handed out */
        MetricFamily *m_wait;                   /* how long requests waited for their pod */
        MetricFamily *m_upstream, *m_throttled; /* the link-local budget (proxy.h) */
        MetricFamily *m_joined, *m_kept;        /* single-flight and TTL hits (proxy.h) */
};

struct PodRequest {
        ImdsService *service;
        PodRequestState state;
        HttpRequest *req; /* NULL once answered or once the client is gone */
        RouteId route;
        bool extended;              /* iam/security-credentials-extended: the document adds AccountId */
        ImdsSurfaceVerdict verdict; /* ROUTE_PROXY: what the metadata table said */
        char *path;                 /* ROUTE_PROXY: the clean path to forward */
        char *url_role;
        char ip[64];
        usec_t deadline;        /* CLOCK_MONOTONIC */
        sd_event_source *timer; /* WAIT_POD: the deadline */
        CredsWaiter *waiter;    /* WAIT_CREDS */
        bool resolved_once;
        bool linked;         /* in the waiting list (WAIT_POD, RESOLVING) */
        usec_t wait_started; /* CLOCK_MONOTONIC: when it was linked */
        bool counted_miss;
        char *audit_uid, *audit_ns, *audit_name, *audit_role;
        bool audit_tagged; /* the STS session carries session tags (--session-tags) */
        char *audit_tags;  /* those tags, "key=value,..." (sts_session_tags_describe), NULL for none */
        bool final;        /* its deadline has passed: answer now, whatever is still unknown */
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

static const HttpHeader ok_text_headers[] = {
        { "Server", "EC2ws" },
        { "Content-Type", "text/plain; charset=utf-8" },
};

static void respond_ok_text(HttpRequest *req, const char *body) {
        (void) http_request_respond(req, 200, ok_text_headers, ELEMENTSOF(ok_text_headers), body,
                                    strlen(body));
}

/* ---- documents ---- */

/* Any byte of w below 0x20, '"' or '\\'? Exact as a yes/no (the has-less-than trick holds for
 * bounds up to 0x80; bytes >= 0x80 never match). */
static bool json_word_needs_escape(uint64_t w) {
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');

        return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
}

static bool json_plain(const char *s, size_t n) {
        size_t i = 0;

        /* eight bytes a step: the ~1 KB session token is scanned on every cached request */
        for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
                uint64_t w;
                memcpy(&w, s + i, sizeof w);
                if (json_word_needs_escape(w))
                        return false;
        }
        for (; i < n; i++)
                if (s[i] == '"' || s[i] == '\\' || (unsigned char) s[i] < 0x20)
                        return false;
        return true;
}

static void json_string(StrBuf *b, const char *s) {
        const unsigned char *run = (const unsigned char *) s, *p;
        size_t n = strlen(s);

        /* A credential document is ~1.3 KB, mostly the session token, which never needs escaping:
         * one scan and one append for it (byte-wise appends were half of a cached request's
         * instructions, bench/). */
        strbuf_append_char(b, '"');
        if (json_plain(s, n)) {
                strbuf_append_n(b, s, n);
                strbuf_append_char(b, '"');
                return;
        }
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

/* The credential document's text besides the three secrets: keys, punctuation, two timestamps,
 * the account id (~250 bytes); rounded up. */
#define IMDS_CREDENTIALS_JSON_FIXED_BYTES 384U

int imds_credentials_json(const Credentials *c, const char *account_id, StrBuf *out) {
        char updated[TIMESTAMP_MAX], expiration[TIMESTAMP_MAX];

        const char *secret = secret_reveal(c->secret_access_key),
                   *token = c->session_token ? secret_reveal(c->session_token) : "";

        format_timestamp_imds(c->last_updated, updated, sizeof updated);
        format_timestamp_imds(c->expiration, expiration, sizeof expiration);
        /* one allocation: the fields plus room for the fixed text (escapes, if any, may regrow) */
        if (strbuf_reserve_extra(out, strlen(c->access_key_id) + strlen(secret) + strlen(token) +
                                              IMDS_CREDENTIALS_JSON_FIXED_BYTES) < 0)
                return -ENOMEM;
        strbuf_append(out, "{\n");
        json_field(out, "Code", "Success", false);
        json_field(out, "LastUpdated", updated, false);
        json_field(out, "Type", "AWS-HMAC", false);
        json_field(out, "AccessKeyId", c->access_key_id, false);
        json_field(out, "SecretAccessKey", secret, false);
        json_field(out, "Token", token, false);
        json_field(out, "Expiration", expiration, !account_id);
        if (account_id)
                json_field(out, "AccountId", account_id, true);
        strbuf_append(out, "}");
        return strbuf_error(out);
}

/* The answers made from one set of credentials, kept with them (Credentials.memo): a cached
 * credential request renders no document and builds no response; both happen once per STS call.
 * Refreshed credentials are a new object, so a memo never outlives what it was made from. */
typedef struct CredentialsAnswers {
        HttpResponse *plain;                        /* iam/security-credentials/<role> */
        HttpResponse *extended;                     /* ...-extended/<role>: with AccountId */
        char extended_account[IMDS_ACCOUNT_ID_MAX]; /* the account id `extended` carries */
} CredentialsAnswers;

static void credentials_answers_free(void *memo) {
        CredentialsAnswers *a = memo;

        if (!a)
                return;
        /* the bodies hold secrets: the server wipes them once no connection sends them any more */
        http_response_unref(a->plain);
        http_response_unref(a->extended);
        free(a);
}

static int credentials_answer_make(const Credentials *c, const char *account_id, HttpResponse **ret) {
        _cleanup_(strbuf_done_erase) StrBuf b = { .erase = true };
        int r;

        r = imds_credentials_json(c, account_id, &b);
        if (r < 0)
                return r;
        return http_response_new(ok_text_headers, ELEMENTSOF(ok_text_headers), b.s, b.len, true, ret);
}

/* The prepared answer for c (with AccountId when account_id is not NULL), made on first use;
 * borrowed: valid while c is. */
static int credentials_answer(Credentials *c, const char *account_id, HttpResponse **ret) {
        CredentialsAnswers *a = c->memo;
        HttpResponse **slot;
        int r;

        if (!a && !c->memo_free) {
                a = calloc(1, sizeof *a);
                if (!a)
                        return -ENOMEM;
                c->memo = a;
                c->memo_free = credentials_answers_free;
        }
        if (!a || c->memo_free != credentials_answers_free)
                return -EBUSY; /* another consumer's memo: never the case, but never misread either */
        slot = account_id ? &a->extended : &a->plain;
        if (*slot && account_id && !streq(a->extended_account, account_id))
                *slot = http_response_unref(*slot); /* one role per entry: not expected */
        if (!*slot) {
                r = credentials_answer_make(c, account_id, slot);
                if (r < 0)
                        return r;
                if (account_id)
                        snprintf(a->extended_account, sizeof a->extended_account, "%s", account_id);
        }
        *ret = *slot;
        return 0;
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

/* ---- audit: one entry per issuance and per denial, deduplicated per pod by pod-roles ---- */

/* --pod-events: an audit result the pod's user should see on `kubectl describe pod`, as an
 * Event's reason and message (the reason names the decision, the message the way out). */
static void pod_event(ImdsService *s, const char *uid, const char *ns, const char *name, const char *role,
                      const char *result, const char *detail, const char *message) {
        const Config *c = s->d.config;
        _cleanup_free_ char *text = NULL;
        const char *reason;
        int r = -EINVAL;

        if (!s->d.kube || !c->pod_events || isempty(uid))
                return;
        if (streq(result, "denied") && !role) {
                /* no role could be chosen: the ServiceAccounts or the namespace are not known */
                reason = "IAMRoleDenied";
                r = asprintf(&text, "kube2iam gave this pod no role: %s", strna(detail));
        } else if (streq(result, "denied")) {
                reason = "IAMRoleDenied";
                r = asprintf(&text, "kube2iam refused role %s: %s of namespace %s (annotation %s)",
                             strna(role), strna(detail), strna(ns), c->namespace_key);
        } else if (streq(result, "no-role")) {
                reason = "IAMRoleNotFound";
                r = asprintf(&text, "kube2iam found no IAM role for this pod: no annotation %s%s",
                             c->iam_role_key, c->default_role ? "" : " and no --default-role");
        } else if (streq(result, "wrong-role")) {
                reason = "IAMRoleMismatch";
                r = asprintf(&text, "kube2iam refused role %s: the pod's role is %s", strna(detail),
                             strna(role));
        } else if (streq(result, "sts-error")) {
                reason = "AssumeRoleFailed";
                r = asprintf(&text, "kube2iam could not assume role %s: STS %s: %s", strna(role),
                             strna(detail), strna(message));
        } else
                return;
        if (r < 0)
                return;
        (void) kube_client_pod_event(
                s->d.kube, &(const KubeEventInfo){
                                   .ns = ns, .name = name, .uid = uid, .reason = reason, .message = text });
}

/* message: the line's text when kube2iam had one people grep for ("Error assuming role ..."); NULL
 * for ours, "Credentials <result> for pod ...". */
/* Fields an audit entry may carry besides the pod's (STS's code and the cause, the issued key). */
#define AUDIT_EXTRA_FIELDS_MAX 3
/* SESSION_TAGS= of an issuance: Pod Identity's six tags with long names fit in about 1 KiB; 4 KiB
 * leaves room for a namespace's own and keeps one entry per issuance small (50 tags at STS's
 * limits would be 19 KiB). Tags past it are left out and the field ends in ",...". */
#define AUDIT_SESSION_TAGS_MAX 4096

static void audit_full(ImdsService *s, const char *uid, const char *ns, const char *name, const char *ip,
                       const char *role, const char *result, int level, const char *message_id,
                       const char *detail, const char *message, const LogField *extra, size_t n_extra) {
        _cleanup_free_ char *key = strconcat3(result, " ", strempty(role));

        assert(n_extra <= AUDIT_EXTRA_FIELDS_MAX);
        pod_event(s, uid, ns, name, role, result, detail, message);

        if (!key)
                return;
        if (!pod_roles_audit_allow(s->d.pod_roles, uid, key, now_monotonic(), &s->audit_ratelimit))
                return;
        LogField fields[7 + AUDIT_EXTRA_FIELDS_MAX] = {
                { "MESSAGE_ID", message_id }, { "POD_NAMESPACE", ns }, { "POD_NAME", name },
                { "POD_UID", uid },           { "POD_IP", ip },        { "ROLE_ARN", role },
                { "RESULT", result },
        };
        for (size_t i = 0; i < n_extra; i++)
                fields[7 + i] = extra[i];
        if (message)
                log_fields(level, fields, 7 + n_extra, "%s", message);
        else
                log_fields(level, fields, 7 + n_extra, "Credentials %s for pod %s/%s at %s, role %s%s%s",
                           result, strna(ns), strna(name), ip, strna(role), detail ? ": " : "",
                           strempty(detail));
}

static void audit(ImdsService *s, const char *uid, const char *ns, const char *name, const char *ip,
                  const char *role, const char *result, int level, const char *message_id,
                  const char *detail) {
        audit_full(s, uid, ns, name, ip, role, result, level, message_id, detail, NULL, NULL, 0);
}

/* Why STS refused, when a setting of ours is the likely reason (docs/sessions.md); NULL otherwise. */
static const char *sts_failure_cause(const StsError *error, bool tagged) {
        if (streq(error->code, "PackedPolicyTooLarge"))
                return "the session tags and policies exceed STS's packed size limit";
        if (tagged && streq(error->code, "AccessDenied"))
                return "the call carried session tags: the role's trust policy must allow sts:TagSession "
                       "(--session-tags)";
        return NULL;
}

/* ---- a pod request's life ---- */

static void pod_request_link(PodRequest *pr) {
        ImdsService *s = pr->service;

        pr->next = s->waiting;
        if (s->waiting)
                s->waiting->prev = pr;
        s->waiting = pr;
        pr->linked = true;
        pr->wait_started = now_monotonic();
        s->n_waiting++;
}

static void pod_request_unlink(PodRequest *pr) {
        ImdsService *s = pr->service;

        if (!pr->linked)
                return;
        if (s->m_wait)
                (void) metrics_histogram_observe(
                        s->m_wait, NULL, (double) (now_monotonic() - pr->wait_started) / USEC_PER_SEC);
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

static void on_request_abort(HttpRequest *req, void *userdata);
static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata);

static bool state_waits_for_pod(PodRequestState st) {
        return st == POD_REQUEST_WAIT_POD || st == POD_REQUEST_RESOLVING;
}

/* The one place a request changes state (the enum in the header of this file says what each
 * means). <0: WAIT_POD or RESOLVING could not be entered (too many waiting, no timer); the
 * request is then where it was, and the caller answers it. DONE frees the request. */
static int pod_request_enter(PodRequest *pr, PodRequestState to) {
        ImdsService *s = pr->service;
        PodRequestState from = pr->state;

        if (state_waits_for_pod(to) && !pr->linked) {
                if (s->n_waiting >= IMDS_SERVICE_MAX_WAITING)
                        return -EBUSY;
                pod_request_link(pr);
        }
        if (to == POD_REQUEST_WAIT_POD && !pr->timer &&
            sd_event_add_time(s->d.event, &pr->timer, CLOCK_MONOTONIC, pr->deadline, 1, on_deadline, pr) <
                    0) {
                if (!state_waits_for_pod(from))
                        pod_request_unlink(pr);
                return -ENOMEM;
        }
        /* leaving */
        if (!state_waits_for_pod(to))
                pod_request_unlink(pr);
        if (from == POD_REQUEST_WAIT_POD && to != POD_REQUEST_WAIT_POD)
                (void) sd_event_source_set_enabled(pr->timer, SD_EVENT_OFF);
        if (from == POD_REQUEST_WAIT_CREDS && pr->waiter) {
                creds_waiter_cancel(pr->waiter);
                pr->waiter = NULL;
        }
        pr->state = to;
        /* entering */
        switch (to) {
        case POD_REQUEST_WAIT_POD:
        case POD_REQUEST_RESOLVING:
        case POD_REQUEST_WAIT_CREDS:
                if (pr->req)
                        http_request_set_owner(pr->req, on_request_abort, pr);
                break;
        case POD_REQUEST_DONE:
                sd_event_source_disable_unref(pr->timer);
                free(pr->url_role);
                free(pr->path);
                free(pr->audit_uid);
                free(pr->audit_ns);
                free(pr->audit_name);
                free(pr->audit_role);
                free(pr->audit_tags);
                free(pr);
                break;
        case POD_REQUEST_NEW: /* never entered: a request starts there */
                break;
        }
        return 0;
}

/* Answers with an error (when the client is still there) and ends the request. */
static void pod_request_fail(PodRequest *pr, unsigned status, const char *msg) {
        if (pr->req)
                respond_error(pr->req, status, msg);
        pr->req = NULL;
        (void) pod_request_enter(pr, POD_REQUEST_DONE);
}

/* Waits for the pod (again); answers 503/500 when it cannot. */
static void pod_request_wait(PodRequest *pr) {
        int r = pod_request_enter(pr, POD_REQUEST_WAIT_POD);

        if (r == -EBUSY)
                pod_request_fail(pr, 503, "too many requests waiting for pods");
        else if (r < 0)
                pod_request_fail(pr, 500, "failed to wait for the pod");
}

static void on_request_abort(HttpRequest *req, void *userdata) {
        PodRequest *pr = userdata;

        pr->req = NULL;
        /* a live lookup cannot be withdrawn: the request ends when it reports */
        if (pr->state != POD_REQUEST_RESOLVING)
                (void) pod_request_enter(pr, POD_REQUEST_DONE);
}

static void try_answer(PodRequest *pr, bool final);

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        try_answer(userdata, true);
        return 0;
}

static void on_creds(Credentials *creds, const StsError *error, void *userdata) {
        PodRequest *pr = userdata;
        ImdsService *s = pr->service;
        HttpRequest *req = pr->req;

        pr->waiter = NULL; /* the cache frees it after this call */
        pr->req = NULL;
        if (creds) {
                char account[IMDS_ACCOUNT_ID_MAX];
                bool with_account = pr->extended && pr->audit_role &&
                                    imds_account_from_arn(pr->audit_role, account) >= 0;
                HttpResponse *answer;
                if (credentials_answer(creds, with_account ? account : NULL, &answer) < 0) {
                        respond_error(req, 500, "out of memory");
                } else {
                        (void) http_request_respond_prepared(req, 200, answer);
                        if (s->m_remaining)
                                (void) metrics_histogram_observe(
                                        s->m_remaining, NULL,
                                        (double) credentials_remaining(creds, now_realtime()) /
                                                USEC_PER_SEC);
                        /* the key id and STS's session id map a CloudTrail row back to this pod */
                        const LogField ids[] = { { "ACCESS_KEY_ID", creds->access_key_id },
                                                 { "ASSUMED_ROLE_ID", creds->assumed_role_id },
                                                 { "SESSION_TAGS", pr->audit_tags } };
                        audit_full(s, pr->audit_uid, pr->audit_ns, pr->audit_name, pr->ip, pr->audit_role,
                                   "issued", LOG_INFO, LOG_MESSAGE_ID_CREDS_ISSUED, creds->access_key_id,
                                   NULL, ids, ELEMENTSOF(ids));
                }
        } else {
                /* kube2iam's 500 body is the SDK's error string, and its log line "Error assuming role
                 * <that string>" */
                _cleanup_free_ char *msg = NULL, *line = NULL;
                const char *cause = sts_failure_cause(error, pr->audit_tagged);
                if (sts_error_describe(error, &msg) < 0 ||
                    asprintf(&line, "Error assuming role %s%s%s%s", msg, cause ? " (" : "", strempty(cause),
                             cause ? ")" : "") < 0)
                        line = NULL;
                respond_error(req, 500, msg ?: "Error assuming role");
                const LogField extra[] = { { "STS_ERROR_CODE", error->code }, { "STS_ERROR_CAUSE", cause } };
                audit_full(s, pr->audit_uid, pr->audit_ns, pr->audit_name, pr->ip, pr->audit_role,
                           "sts-error", LOG_ERR, LOG_MESSAGE_ID_STS_FAILURE, error->code, line, extra,
                           ELEMENTSOF(extra));
        }
        (void) pod_request_enter(pr, POD_REQUEST_DONE);
}

static void forward_metadata(ImdsService *s, HttpRequest *req, const char *path, bool listing);

/* A pod of this node asked for metadata the table lets through (role or not). */
static void answer_metadata(PodRequest *pr) {
        HttpRequest *req = TAKE_PTR(pr->req);

        if (pr->verdict == IMDS_SURFACE_SERVED)
                /* iam/: what the daemon answers there, as the real IMDS lists it */
                respond_ok_text(req, "info\nsecurity-credentials/");
        else
                forward_metadata(pr->service, req, pr->path, pr->verdict == IMDS_SURFACE_LISTING);
        (void) pod_request_enter(pr, POD_REQUEST_DONE);
}

/* The detail of a "denied" audit entry. */
static const char *pod_role_verdict_reason(PodRoleVerdict v) {
        switch (v) {
        case POD_ROLE_DENIED:
                return "namespace restriction";
        case POD_ROLE_SESSION_REFUSED:
                return "session tags refused";
        case POD_ROLE_SERVICE_ACCOUNTS_LISTING:
                return "serviceaccounts not listed yet";
        case POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN:
                return "serviceaccounts forbidden";
        default:
                return "namespace not known";
        }
}

/* 0: the pod's role may be served (*d filled); <0: the request has been answered, or waits. */
static int check_role(PodRequest *pr, const StorePod *pod, PodRoleDecision *d) {
        ImdsService *s = pr->service;
        _cleanup_free_ char *msg = NULL, *line = NULL;

        if (pod_roles_decide(s->d.pod_roles, pod, d) < 0) {
                pod_request_fail(pr, 500, "out of memory");
                return -ENOMEM;
        }
        switch (d->verdict) {
        case POD_ROLE_ALLOWED:
                /* kube2iam warns on every request; ours shares the audit's rate limit */
                if (d->source == ROLE_SOURCE_DEFAULT && log_get_max_level() >= LOG_WARNING &&
                    log_ratelimit_test(&s->audit_ratelimit))
                        log_warning("Using fallback role for IP %s", pr->ip);
                return 0;
        case POD_ROLE_NO_ROLE:
                (void) asprintf(&msg, "unable to find role for IP %s", pr->ip);
                audit(s, pod->uid, pod->namespace, pod->name, pr->ip, NULL, "no-role", LOG_NOTICE,
                      LOG_MESSAGE_ID_ROLE_DENIED, NULL);
                pod_request_fail(pr, 404, msg ?: "unable to find role");
                return -EACCES;
        case POD_ROLE_SERVICE_ACCOUNTS_LISTING:
                if (!pr->final && (pr->state == POD_REQUEST_NEW || pr->state == POD_REQUEST_WAIT_POD)) {
                        pod_request_wait(pr); /* woken when the list arrives (every IP is) */
                        return -EAGAIN;
                }
                _fallthrough_;
        case POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN:
                if (asprintf(&line,
                             "No role for pod %s/%s: it has no role annotation and the ServiceAccounts %s "
                             "(--service-account-roles)",
                             pod->namespace, pod->name,
                             d->verdict == POD_ROLE_SERVICE_ACCOUNTS_FORBIDDEN
                                     ? "may not be read (grant list and watch on serviceaccounts: "
                                       "contrib/rbac)"
                                     : "are not listed yet") < 0)
                        line = NULL;
                break;
        case POD_ROLE_NAMESPACE_UNKNOWN:
                log_debug("Unable to find an indexed namespace of %s", pod->namespace);
                break;
        case POD_ROLE_DENIED:
                if (asprintf(&line, "Role: %s on namespace: %s not found.", d->role_arn, pod->namespace) < 0)
                        line = NULL; /* kube2iam's warning, word for word */
                break;
        case POD_ROLE_SESSION_REFUSED:
                if (asprintf(&line, "Role: %s refused for pod %s/%s: its session tags are refused (%s)",
                             d->role_arn, pod->namespace, pod->name, KUBE_SESSION_TAGS_ANNOTATION) < 0)
                        line = NULL;
                break;
        }
        (void) asprintf(&msg, "role requested %s not valid for namespace of pod at %s with namespace %s",
                        strna(d->role_arn), pr->ip, pod->namespace);
        audit_full(s, pod->uid, pod->namespace, pod->name, pr->ip, d->role_arn, "denied", LOG_WARNING,
                   LOG_MESSAGE_ID_ROLE_DENIED, pod_role_verdict_reason(d->verdict), line, NULL, 0);
        pod_request_fail(pr, 404, msg ?: "role not valid for namespace");
        return -EACCES;
}

/* ROUTE_ROLE_CREDENTIALS for an allowed role: the URL's role must be the pod's; then the cache. */
static void answer_credentials(PodRequest *pr, const StorePod *pod, const PodRoleDecision *d) {
        ImdsService *s = pr->service;
        _cleanup_(credentials_unrefp) Credentials *creds = NULL;
        _cleanup_(sts_error_freep) StsError *error = NULL;
        int r;

        if (!roles_url_matches(s->d.roles, pr->url_role, d->role_arn)) {
                _cleanup_free_ char *msg = NULL;

                (void) log_ratelimited(pod_roles_log_ratelimit(s->d.pod_roles, pod->uid),
                                       &s->request_log_ratelimit, LOG_ERR, 0,
                                       ((const LogField[]){ { "POD_IAM_ROLE", d->role_arn },
                                                            { "NS_NAME", pod->namespace },
                                                            { "PARAMS_IAM_ROLE", pr->url_role },
                                                            { "POD_IP", pr->ip } }),
                                       4, "Invalid role: does not match annotated role");
                (void) asprintf(&msg, "Invalid role %s", pr->url_role);
                audit(s, pod->uid, pod->namespace, pod->name, pr->ip, d->role_arn, "wrong-role", LOG_WARNING,
                      LOG_MESSAGE_ID_ROLE_DENIED, pr->url_role);
                pod_request_fail(pr, 403, msg ?: "Invalid role");
                return;
        }

        free(pr->audit_role);
        pr->audit_role = strdup(d->role_arn);
        pr->audit_tagged = !isempty(d->session);
        pr->audit_tags = mfree(pr->audit_tags);
        if (pr->audit_tagged &&
            sts_session_tags_describe(d->session, AUDIT_SESSION_TAGS_MAX, &pr->audit_tags) >= 0 &&
            isempty(pr->audit_tags))
                pr->audit_tags = mfree(pr->audit_tags); /* policy ARNs only */
        CredsRequest cr = {
                .role_arn = d->role_arn,
                .external_id = d->external_id,
                .session_name = d->session_name,
                .session = d->session,
                .caller_ip = pr->ip,
                .deadline = usec_add(now_realtime(), IMDS_SERVICE_CREDS_WAIT),
                .done = on_creds,
                .userdata = pr,
        };
        r = creds_get(s->d.creds, &cr, &creds, &error, &pr->waiter);
        if (r == CREDS_WAIT) {
                (void) pod_request_enter(pr, POD_REQUEST_WAIT_CREDS);
                return;
        }
        pr->waiter = NULL;
        if (r < 0 && !error) {
                /* creds_get() always describes a failure; this only guards the contract */
                (void) log_ratelimited(NULL, &s->request_log_ratelimit, LOG_ERR, r, NULL, 0,
                                       "Credential cache failed: %m");
                return pod_request_fail(pr, 500, "credential cache failed");
        }
        on_creds(r >= 0 ? creds : NULL, r >= 0 ? NULL : error, pr);
}

static void answer_for_pod(PodRequest *pr, const StorePod *pod) {
        _cleanup_(pod_role_decision_done) PodRoleDecision d = {};
        _cleanup_strbuf_ StrBuf b = {};

        /* the explain ring (main.c) records the answer for this pod, without a lookup of its own */
        if (pr->req)
                http_request_set_subject(pr->req, pod->uid);
        if (pr->route == ROUTE_PROXY)
                return answer_metadata(pr);

        free(pr->audit_uid);
        free(pr->audit_ns);
        free(pr->audit_name);
        pr->audit_uid = strdup(pod->uid);
        pr->audit_ns = strdup(pod->namespace);
        pr->audit_name = strdup(pod->name);

        if (check_role(pr, pod, &d) < 0)
                return;
        switch (pr->route) {
        case ROUTE_ROLE_LIST:
                respond_ok_text(pr->req, roles_list_name(pr->service->d.roles, d.role_arn));
                pr->req = NULL;
                (void) pod_request_enter(pr, POD_REQUEST_DONE);
                return;
        case ROUTE_IAM_INFO:
                if (imds_iam_info_json(d.role_arn, now_realtime(), &b) < 0)
                        return pod_request_fail(pr, 500, "out of memory");
                respond_ok_text(pr->req, b.s);
                pr->req = NULL;
                (void) pod_request_enter(pr, POD_REQUEST_DONE);
                return;
        case ROUTE_ROLE_CREDENTIALS:
                return answer_credentials(pr, pod, &d);
        default:
                return pod_request_fail(pr, 500, "unexpected route");
        }
}

static void on_resolved(KubeClient *k, int error, const StorePod *pod, void *userdata) {
        PodRequest *pr = userdata;
        ImdsService *s;

        pr->resolved_once = true;
        if (!pr->req) {
                /* the client left, or the service stopped: touch nothing else */
                (void) pod_request_enter(pr, POD_REQUEST_DONE);
                return;
        }
        s = pr->service;
        if (error < 0 || !pod) {
                _cleanup_free_ char *msg = NULL;
                if (error == -ENOENT)
                        msg = strdup("more than a pod with the same IP has been indexed, this can happen "
                                     "when pods "
                                     "have hostNetwork: true");
                else
                        (void) asprintf(&msg, "resolveDuplicatedIP: Error retriving the pod with IP %s",
                                        pr->ip);
                pod_request_fail(pr, 404, msg ?: "duplicate IP");
                return;
        }
        if (s->m_dup_success)
                (void) metrics_counter_inc(s->m_dup_success, NULL);
        answer_for_pod(pr, pod);
}

/* Several live pods claim the address: with --resolve-duplicate-cache-ips, ask the API server
 * once. True when the lookup runs (or the request was answered). */
static bool try_resolve(PodRequest *pr) {
        ImdsService *s = pr->service;

        if (!s->d.config->resolve_duplicate_cache_ips || !s->d.kube || pr->resolved_once)
                return false;
        if (s->m_dup)
                (void) metrics_counter_inc(s->m_dup, NULL);
        if (!pr->linked && s->n_waiting >= IMDS_SERVICE_MAX_WAITING) {
                pod_request_fail(pr, 503, "too many requests waiting for pods");
                return true;
        }
        if (kube_client_resolve_ip(s->d.kube, pr->ip, on_resolved, pr) < 0)
                return false;
        (void) pod_request_enter(pr, POD_REQUEST_RESOLVING); /* room was checked above */
        return true;
}

/* A pod, or the namespace whose annotations decide its role, restored from a snapshot is vouched
 * for once the API server confirms it (docs/warm-restart.md): a live GET is asked for (one per
 * object at a time) and the request waits for the store to change, like one whose pod is not
 * known yet. True: not confirmed yet. */
static bool unconfirmed(PodRequest *pr, const StorePod *pod) {
        ImdsService *s = pr->service;
        const Config *c = s->d.config;
        const StoreNamespace *ns = NULL;
        bool wait = false;

        if (c->namespace_restrictions || c->session_tags || c->session_policies ||
            c->namespace_default_roles)
                ns = store_get_namespace(s->d.store, pod->namespace);
        if (pod->unconfirmed) {
                if (s->d.kube)
                        (void) kube_client_confirm_pod(s->d.kube, pod->uid, pod->namespace, pod->name);
                wait = true;
        }
        if (store_namespace_unconfirmed(ns)) {
                if (s->d.kube)
                        (void) kube_client_confirm_namespace(s->d.kube, store_namespace_name(ns));
                wait = true;
        }
        return wait;
}

/* Looks the pod up; answers, waits, or (final) gives up with kube2iam's error text. */
static void try_answer(PodRequest *pr, bool final) {
        ImdsService *s = pr->service;
        StoreLookup l = {};

        if (pr->state != POD_REQUEST_NEW && pr->state != POD_REQUEST_WAIT_POD)
                return;
        pr->final = final || now_monotonic() >= pr->deadline;
        if (store_lookup_ip(s->d.store, pr->ip, &l) < 0)
                return pod_request_fail(pr, 500, "out of memory");
        if (l.status == STORE_LOOKUP_FOUND && unconfirmed(pr, l.pod)) {
                if (final || now_monotonic() >= pr->deadline)
                        pod_request_fail(pr, 404, "pod not confirmed by the API server since the restart");
                else
                        pod_request_wait(pr);
        } else if (l.status == STORE_LOOKUP_FOUND)
                answer_for_pod(pr, l.pod);
        else if (l.status == STORE_LOOKUP_AMBIGUOUS && try_resolve(pr))
                ;
        else {
                if (l.status == STORE_LOOKUP_NOT_FOUND && !pr->counted_miss && s->m_not_in_cache) {
                        pr->counted_miss = true;
                        (void) metrics_counter_inc(s->m_not_in_cache, NULL);
                }
                if (final || now_monotonic() >= pr->deadline)
                        pod_request_fail(pr, 404, l.error ?: "pod not found");
                else
                        pod_request_wait(pr);
        }
        store_lookup_done(&l);
}

void imds_service_wake(ImdsService *s, const char *ip) {
        if (!s)
                return;
        /* try_answer may free the current request: take the next one first */
        for (PodRequest *pr = s->waiting, *next; pr; pr = next) {
                next = pr->next;
                if (pr->state == POD_REQUEST_WAIT_POD && (!ip || streq(pr->ip, ip)))
                        try_answer(pr, false);
        }
}

unsigned imds_service_waiting(const ImdsService *s) {
        return s ? s->n_waiting : 0;
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
        /* a fixed fact is kept for good; the rest for its path's TTL (docs/imds-surface.md) */
        usec_t keep = !listing && imds_surface_immutable(path) ? USEC_INFINITY
                                                               : imds_surface_ttl(path) * USEC_PER_SEC;
        uint64_t sent = proxy_upstream_requests(s->d.proxy), throttled = proxy_throttled(s->d.proxy),
                 joined = proxy_joined(s->d.proxy), kept = proxy_kept_hits(s->d.proxy);
        proxy_forward(s->d.proxy, req, path, extra, n_extra, drop, listing ? filter_listing : NULL,
                      s->d.config, keep);
        if (s->m_upstream && proxy_upstream_requests(s->d.proxy) > sent)
                (void) metrics_counter_inc(s->m_upstream, NULL);
        if (s->m_throttled && proxy_throttled(s->d.proxy) > throttled)
                (void) metrics_counter_inc(s->m_throttled, NULL);
        if (s->m_joined && proxy_joined(s->d.proxy) > joined)
                (void) metrics_counter_inc(s->m_joined, NULL);
        if (s->m_kept && proxy_kept_hits(s->d.proxy) > kept)
                (void) metrics_counter_inc(s->m_kept, NULL);
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
        const char *peer = http_request_peer(req); /* at most INET6_ADDRSTRLEN: no printf on this path */
        memcpy(pr->ip, peer, MIN(strlen(peer), sizeof pr->ip - 1));
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

/* Seconds. SDKs refresh credentials 5 to 15 minutes before they expire, and kube2iam's sessions
 * last 2 x --iam-role-session-ttl (30 min by default); the low buckets show credentials handed
 * out too close to their expiry before SDKs start failing. */
static const double remaining_buckets[] = { 60, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 21600, 43200 };

/* Seconds: a pod's watch event arrives within milliseconds of its start; the deadline is
 * --backoff-max-elapsed-time (2 s by default) plus the API lookup, far below 30 s. */
static const double wait_buckets[] = { 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

int imds_service_new(const ImdsServiceDeps *deps, ImdsService **ret) {
        _cleanup_(imds_service_freep) ImdsService *s = NULL;
        int r;

        if (!deps || !deps->event || !deps->config || !deps->store || !deps->pod_roles || !deps->roles ||
            !deps->creds || !deps->tokens || !deps->proxy)
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
                        r = metrics_add_family(deps->metrics, "kube2iam_credentials_remaining_seconds",
                                               "Remaining lifetime of the credentials handed to pods.",
                                               METRIC_HISTOGRAM, NULL, remaining_buckets,
                                               ELEMENTSOF(remaining_buckets), 0, &s->m_remaining);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_pod_wait_seconds",
                                               "How long requests waited for their pod to be known (or for "
                                               "their deadline).",
                                               METRIC_HISTOGRAM, NULL, wait_buckets,
                                               ELEMENTSOF(wait_buckets), 0, &s->m_wait);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_imds_tokens_issued_total",
                                               "IMDSv2 session tokens minted for pods.", METRIC_COUNTER,
                                               NULL, NULL, 0, 0, &s->m_tokens);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_imds_upstream_requests_total",
                                               "Requests the proxy sent to the real IMDS.", METRIC_COUNTER,
                                               NULL, NULL, 0, 0, &s->m_upstream);
                if (r >= 0)
                        r = metrics_add_family(
                                deps->metrics, "kube2iam_imds_upstream_throttled_total",
                                "Proxied requests answered 429: the link-local budget was spent.",
                                METRIC_COUNTER, NULL, NULL, 0, 0, &s->m_throttled);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_imds_upstream_joined_total",
                                               "Proxied GETs answered by the upstream request already in "
                                               "flight for their path (single-flight).",
                                               METRIC_COUNTER, NULL, NULL, 0, 0, &s->m_joined);
                if (r >= 0)
                        r = metrics_add_family(deps->metrics, "kube2iam_imds_upstream_ttl_hits_total",
                                               "Proxied GETs answered from an upstream answer kept for its "
                                               "path's TTL.",
                                               METRIC_COUNTER, NULL, NULL, 0, 0, &s->m_kept);
                if (r < 0)
                        return r;
                (void) metrics_touch(s->m_upstream, NULL);
                (void) metrics_touch(s->m_throttled, NULL);
                (void) metrics_touch(s->m_joined, NULL);
                (void) metrics_touch(s->m_kept, NULL);
                (void) metrics_touch(s->m_not_in_cache, NULL);
                (void) metrics_touch(s->m_dup, NULL);
                (void) metrics_touch(s->m_dup_success, NULL);
                (void) metrics_touch(s->m_tokens, NULL);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

ImdsService *imds_service_free(ImdsService *s) {
        if (!s)
                return NULL;
        while (s->waiting) {
                PodRequest *pr = s->waiting;

                if (pr->req)
                        respond_error(pr->req, 503, "service stopping");
                pr->req = NULL;
                if (pr->state == POD_REQUEST_RESOLVING)
                        pod_request_unlink(pr); /* freed when the lookup reports (on_resolved) */
                else
                        (void) pod_request_enter(pr, POD_REQUEST_DONE);
        }
        free(s);
        return NULL;
}
