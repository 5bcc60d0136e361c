/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "aws/upstream-client.h"
#include "aws/node-credentials.h"
#include "aws/sigv4.h"
#include "aws/sts-client.h"
#include "aws/sts.h"
#include "doctor-checks.h"
#include "http/http-client.h"
#include "kube/kube-auth.h"
#include "kube/kube-transport.h"
#include "kube/kubeconfig.h"
#include "kube/watch-parser.h"
#include "string-util.h"

/* Finding the node's credentials: an instance profile answers in milliseconds, a web identity
 * is one STS call; 10 s covers a slow IMDS without hanging a Packer build. */
#define DOCTOR_CREDENTIALS_WAIT_USEC (10 * USEC_PER_SEC)
/* A SelfSubjectAccessReview is answered at once; an exec plugin gets the same time as a list. */
#define DOCTOR_KUBE_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define DOCTOR_LOOP_STEP_USEC (100 * USEC_PER_MSEC)

/* The daemon's own objects for the node's AWS identity, on a loop of their own. */
typedef struct AwsNode {
        sd_event *event;
        HttpClient *http;
        UpstreamClient *imds;
        NodeCredentials *node;
        StsClient *sts;
} AwsNode;

static void aws_node_done(AwsNode *a) {
        sts_client_free(a->sts);
        node_credentials_free(a->node);
        upstream_client_free(a->imds);
        http_client_free(a->http);
        sd_event_unref(a->event);
}

/* The node's credentials as the daemon finds them: 0 with *ret borrowed from a, -ENOKEY when none
 * came in time, other errors when the configuration is refused (logged by node-credentials). */
static int aws_node_credentials(AwsNode *a, const Config *c, Credentials **ret) {
        usec_t deadline = now_monotonic() + DOCTOR_CREDENTIALS_WAIT_USEC;
        int r;

        r = sd_event_new(&a->event);
        if (r >= 0)
                r = http_client_new(a->event, &a->http);
        if (r >= 0)
                r = upstream_client_new(a->http, c->metadata_host, c->metadata_port, &a->imds);
        if (r >= 0)
                r = node_credentials_new(a->event, a->imds, &a->node);
        if (r >= 0)
                r = sts_client_new(a->http, a->node, c->sts_endpoint, &a->sts);
        if (r >= 0 && sts_client_discover_region(a->sts, a->imds) >= 0) {
                node_credentials_set_sts(a->node, a->sts);
                r = node_credentials_start(a->node);
        }
        if (r < 0)
                return r;
        while (!(*ret = node_credentials_get(a->node)) && now_monotonic() < deadline)
                if (sd_event_run(a->event, DOCTOR_LOOP_STEP_USEC) < 0)
                        break;
        return *ret ? 0 : -ENOKEY;
}

/* GetCallerIdentity at url signed with creds: the HTTP status, the reply in b. */
static long get_caller_identity(const char *url, const char *region, const Credentials *creds,
                                DoctorBody *b) {
        static const char form[] = "Action=GetCallerIdentity&Version=2011-06-15";
        _cleanup_(sigv4_signer_freep) SigV4Signer *signer = NULL;
        _cleanup_sigv4_signature_ SigV4Signature sig = {};
        _cleanup_free_ char *host = NULL, *path = NULL;
        struct curl_slist *h = NULL;
        long status = 0;

        if (sts_url_host_header(url, &host, &path) < 0 ||
            sigv4_signer_new(region ?: "us-east-1", "sts", &signer) < 0)
                return 0;
        const SigV4Header headers[] = {
                { "Host", host },
                { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
        };
        const SigV4Request req = { .method = "POST",
                                   .path = path,
                                   .headers = headers,
                                   .n_headers = ELEMENTSOF(headers),
                                   .body = form,
                                   .body_size = strlen(form),
                                   .normalize_path = true };
        const SigV4Credentials sc = { .access_key_id = creds->access_key_id,
                                      .secret_access_key = creds->secret_access_key,
                                      .session_token = creds->session_token };
        if (sigv4_sign(signer, &req, &sc, now_realtime(), &sig) >= 0 &&
            sts_header_append(&h, "Content-Type", headers[1].value) >= 0 &&
            sts_header_append(&h, "X-Amz-Date", sig.amz_date) >= 0 &&
            sts_header_append(&h, "Authorization", sig.authorization) >= 0 &&
            (!creds->session_token ||
             sts_header_append(&h, "X-Amz-Security-Token", secret_reveal(creds->session_token)) >= 0) &&
            sts_header_append(&h, "Expect", NULL) >= 0)
                status = doctor_http(url, "POST", h, form, b);
        sts_headers_free_erase(h);
        return status;
}

/* The <Arn> of a GetCallerIdentity reply (not a secret: CloudTrail shows it), NULL if absent. */
static char *reply_arn(const DoctorBody *b) {
        const char *s = strstr(b->buf, "<Arn>"), *e;

        if (!s)
                return NULL;
        s += strlen("<Arn>");
        e = strstr(s, "</Arn>");
        return e && e - s <= 2048 ? strndup(s, e - s) : NULL;
}

static bool report_sts_refusal(FILE *out, const DoctorBody *b, long status) {
        _cleanup_(sts_error_freep) StsError *err = NULL;
        _cleanup_(credentials_unrefp) Credentials *unexpected = NULL;
        _cleanup_free_ char *what = NULL;

        if (status == 0)
                return doctor_report(out, DOCTOR_FAIL, "node-credentials",
                                     "STS does not answer GetCallerIdentity",
                                     "allow HTTPS to the regional STS endpoint (see the sts check)");
        (void) sts_reply_parse(b->buf, b->n, status, now_realtime(), &unexpected, &err);
        if (asprintf(&what, "STS refuses the node's credentials: %s (HTTP %ld)", err ? err->code : "unknown",
                     status) < 0)
                return false;
        return doctor_report(
                out, DOCTOR_FAIL, "node-credentials", what,
                "check the instance profile (aws sts get-caller-identity), the AWS_* variables of "
                "the service's environment and the clock");
}

bool doctor_check_node_credentials(const DoctorOptions *o, FILE *out) {
        _cleanup_(aws_node_done) AwsNode a = {};
        _cleanup_free_ char *url = NULL, *region = NULL, *arn = NULL, *what = NULL;
        Credentials *creds = NULL;
        DoctorBody b;
        long status;
        int r;

        if (o->skip_cluster)
                return doctor_report(out, DOCTOR_SKIP, "node-credentials",
                                     "--skip-cluster: the image build's credentials are not the node's",
                                     NULL);
        r = aws_node_credentials(&a, o->config, &creds);
        if (r == -ENOKEY)
                return doctor_report(
                        out, DOCTOR_FAIL, "node-credentials",
                        "no node credentials (environment, profile, web identity, instance profile)",
                        "attach an instance profile, or set AWS_* in the service's environment");
        if (r < 0)
                return doctor_report(out, DOCTOR_FAIL, "node-credentials",
                                     "the node's credential settings are refused (see above)",
                                     "correct the AWS_* variables or the shared config files");
        r = doctor_sts_target(o, &url, &region);
        if (r < 0)
                return doctor_report(out, DOCTOR_FAIL, "node-credentials", "the region is not known",
                                     "set AWS_REGION in the service's environment file");
        status = get_caller_identity(url, region, creds, &b);
        arn = status == 200 ? reply_arn(&b) : NULL;
        if (!arn) {
                bool ok = report_sts_refusal(out, &b, status);
                explicit_bzero(&b, sizeof b);
                return ok;
        }
        explicit_bzero(&b, sizeof b);
        if (asprintf(&what, "the node's credentials (%s) are %s", node_credentials_source(a.node), arn) < 0)
                return false;
        return doctor_report(out, DOCTOR_PASS, "node-credentials", what, NULL);
}

/* The kubeconfig's identity asks the API server whether it may verb resource (cluster-wide).
 * 1 allowed, 0 not, <0 no answer (-EACCES: the API server refused the review itself). */
static int access_review(const KubeConfig *kc, KubeCredentials *creds, const char *verb,
                         const char *resource) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = creds;
        _cleanup_(kube_request_done) KubeRequest req = {};
        _cleanup_(json_deletep) cJSON *j = NULL;
        _cleanup_free_ char *body = NULL;
        struct curl_slist *h;
        DoctorBody b = {};
        long code;
        int r;

        if (asprintf(&body,
                     "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SelfSubjectAccessReview\","
                     "\"spec\":{\"resourceAttributes\":{\"verb\":\"%s\",\"group\":\"\",\"resource\":\"%s\"}}"
                     "}",
                     verb, resource) < 0)
                return -ENOMEM;
        r = kube_request_prepare(&req, kc, TAKE_PTR(c),
                                 "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                 DOCTOR_KUBE_TIMEOUT_USEC);
        if (r < 0)
                return r;
        h = curl_slist_append(req.headers, "Content-Type: application/json");
        if (!h)
                return -ENOMEM;
        req.headers = h;
        if (curl_easy_setopt(req.easy, CURLOPT_HTTPHEADER, req.headers) != CURLE_OK ||
            curl_easy_setopt(req.easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
            curl_easy_setopt(req.easy, CURLOPT_WRITEFUNCTION, doctor_body_write) != CURLE_OK ||
            curl_easy_setopt(req.easy, CURLOPT_WRITEDATA, &b) != CURLE_OK)
                return -EIO;
        if (curl_easy_perform(req.easy) != CURLE_OK)
                return -EHOSTUNREACH;
        code = kube_response_code(req.easy);
        if (code == 401 || code == 403)
                return -EACCES;
        j = cJSON_ParseWithLength(b.buf, b.n);
        if (code != 201 && code != 200)
                return -EIO;
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (!cJSON_IsObject(status))
                return -EBADMSG;
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "allowed"));
}

static void on_auth_ready(KubeAuth *a, int error, void *userdata) {
        int *done = userdata;

        *done = error < 0 ? error : 1;
}

/* 0 when the kubeconfig's credentials can be had (an exec plugin ran), else why not. */
static int kube_auth_wait(sd_event *event, KubeAuth *auth, const KubeConfig *kc, int *done) {
        usec_t deadline = now_monotonic() + DOCTOR_KUBE_TIMEOUT_USEC;
        int r = kube_auth_ready(auth, kc);

        if (r != 0)
                return r < 0 ? r : 0;
        while (*done == 0 && now_monotonic() < deadline)
                if (sd_event_run(event, DOCTOR_LOOP_STEP_USEC) < 0)
                        break;
        return *done > 0 ? 0 : *done < 0 ? *done : -ETIMEDOUT;
}

static bool report_review(FILE *out, int pods, int namespaces, int service_accounts, const Config *c) {
        bool need_namespaces = c->namespace_restrictions || c->namespace_default_roles;
        char what[256];

        if (pods < 0 || namespaces < 0 || service_accounts < 0) {
                snprintf(what, sizeof what, "the API server does not answer a SelfSubjectAccessReview (%s)",
                         strerror(-(pods < 0         ? pods
                                    : namespaces < 0 ? namespaces
                                                     : service_accounts)));
                return doctor_report(
                        out, DOCTOR_FAIL, "rbac", what,
                        "check the kubeconfig's server and credentials (see the kubeconfig check)");
        }
        if (!pods)
                return doctor_report(
                        out, DOCTOR_FAIL, "rbac", "the kubeconfig's identity may not list pods",
                        "use the kubelet's kubeconfig, or apply contrib/rbac/kube2iam-user.yaml");
        if (!namespaces && need_namespaces)
                return doctor_report(
                        out, DOCTOR_FAIL, "rbac",
                        "the kubeconfig's identity may not list namespaces (--namespace-restrictions "
                        "then denies restricted roles)",
                        "kubectl apply -f contrib/rbac/namespaces-for-nodes.yaml");
        if (!service_accounts)
                return doctor_report(out, DOCTOR_FAIL, "rbac",
                                     "the kubeconfig's identity may not list serviceaccounts "
                                     "(--service-account-roles then gives pods without a role annotation "
                                     "none)",
                                     "kubectl apply -f contrib/rbac/namespaces-for-nodes.yaml");
        return doctor_report(
                out, DOCTOR_PASS, "rbac",
                namespaces ? "the kubeconfig's identity may list pods and namespaces"
                           : "the kubeconfig's identity may list pods (not namespaces: needed only "
                             "with --namespace-restrictions)",
                NULL);
}

bool doctor_check_rbac(const DoctorOptions *o, FILE *out) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(kube_auth_freep) KubeAuth *auth = NULL;
        _cleanup_(kubeconfig_freep) KubeConfig *kc = NULL;
        KubeconfigSource source;
        KubeCredentials *creds = NULL;
        int r, done = 0, verdict[3] = { 1, 1, 1 };
        static const char *const resources[] = { "pods", "namespaces", "serviceaccounts" };

        if (o->skip_cluster)
                return doctor_report(out, DOCTOR_SKIP, "rbac", "--skip-cluster: no cluster here", NULL);
        config_kubeconfig_source(o->config, &source);
        if (kubeconfig_from_source(&source, &kc, NULL) < 0)
                return doctor_report(out, DOCTOR_FAIL, "rbac",
                                     "no kubeconfig to ask with (see the kubeconfig check)",
                                     "give --kubeconfig, or wait for kubelet's TLS bootstrap");
        r = sd_event_new(&event);
        if (r >= 0)
                r = kube_auth_new(event, on_auth_ready, &done, &auth);
        if (r >= 0)
                r = kube_auth_wait(event, auth, kc, &done);
        for (size_t i = 0; i < ELEMENTSOF(resources); i++) {
                if (i == 2 && !o->config->service_account_roles)
                        break; /* read only with --service-account-roles */
                if (r >= 0)
                        r = kube_auth_credentials(auth, kc, &creds);
                verdict[i] = r < 0 ? r : access_review(kc, TAKE_PTR(creds), "list", resources[i]);
        }
        return report_review(out, verdict[0], verdict[1], verdict[2], o->config);
}
