/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "aws/endpoints.h"
#include "doctor-checks.h"
#include "doctor.h"
#include "explain-socket.h"
#include "kube/kubeconfig.h"
#include "redirect.h"
#include "string-util.h"

bool doctor_report(FILE *out, DoctorVerdict v, const char *name, const char *what, const char *fix) {
        static const char *const names[] = {
                [DOCTOR_PASS] = "PASS", [DOCTOR_FAIL] = "FAIL", [DOCTOR_SKIP] = "SKIP"
        };

        fprintf(out, "%s %-15s %s%s%s\n", names[v], name, what, fix ? " -- fix: " : "", strempty(fix));
        return v != DOCTOR_FAIL;
}

static bool check_redirect(const DoctorOptions *o, FILE *out) {
        RedirectOptions ro;
        int r;

        config_redirect_options(o->config, &ro);
        r = redirect_check(&ro);
        if (r > 0)
                return doctor_report(out, DOCTOR_PASS, "redirect",
                                     "the nftables redirect is installed as the flags say", NULL);
        if (r == 0)
                return doctor_report(
                        out, DOCTOR_FAIL, "redirect",
                        "the nftables redirect is missing or differs from the flags",
                        "systemctl restart kube2iam (its ExecStartPre runs kube2iam-nft install)");
        if (r == -EPERM || r == -EACCES)
                return doctor_report(out, DOCTOR_FAIL, "redirect", "cannot read nftables",
                                     "run kube2iam doctor as root");
        return doctor_report(out, DOCTOR_FAIL, "redirect", "cannot check nftables (see kube2iam-nft check)",
                             "load nf_tables and nft_nat, or run kube2iam-nft check for the error");
}

size_t doctor_body_write(char *p, size_t size, size_t nmemb, void *userdata) {
        DoctorBody *b = userdata;
        size_t n = size * nmemb;

        if (n > DOCTOR_MAX_BODY - b->n)
                return 0; /* over the limit: curl fails the transfer */
        memcpy(b->buf + b->n, p, n);
        b->n += n;
        b->buf[b->n] = '\0';
        return n;
}

long doctor_http(const char *url, const char *method, struct curl_slist *headers, const char *post,
                 DoctorBody *b) {
        CURL *e = curl_easy_init();
        long status = 0;

        *b = (DoctorBody){};
        if (!e)
                return 0;
        if (curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
            (!post || curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, post) == CURLE_OK) &&
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, DOCTOR_IMDS_TIMEOUT_MS) == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, doctor_body_write) == CURLE_OK &&
            curl_easy_setopt(e, CURLOPT_WRITEDATA, b) == CURLE_OK) {
                /* a body over the limit ends the transfer, but the status was received */
                CURLcode res = curl_easy_perform(e);
                if (res == CURLE_OK || res == CURLE_WRITE_ERROR)
                        (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        }
        curl_easy_cleanup(e);
        return status;
}

/* One request with at most one header: the HTTP status, 0 when none came. */
static long http_request(const char *url, const char *method, const char *header, DoctorBody *b) {
        struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
        long status = doctor_http(url, method, h, NULL, b);

        curl_slist_free_all(h);
        return status;
}

/* One request to the upstream IMDS (--metadata-addr). */
static long imds_request(const DoctorOptions *o, const char *method, const char *path, const char *header,
                         DoctorBody *b) {
        _cleanup_free_ char *url = NULL;
        bool v6 = strchr(o->config->metadata_host, ':');

        if (asprintf(&url, "http://%s%s%s:%u%s", v6 ? "[" : "", o->config->metadata_host, v6 ? "]" : "",
                     o->config->metadata_port, path) < 0)
                return 0;
        return http_request(url, method, header, b);
}

/* The region as the daemon finds it: the environment, else the instance's placement. */
char *doctor_find_region(const DoctorOptions *o) {
        _cleanup_free_ char *auth = NULL;
        char *region = NULL;
        DoctorBody b;

        if (aws_region_from_env(&region) >= 0)
                return region;
        if (imds_request(o, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60", &b) !=
                    200 ||
            asprintf(&auth, "X-aws-ec2-metadata-token: %s", b.buf) < 0)
                return NULL;
        explicit_bzero(&b, sizeof b);
        if (imds_request(o, "GET", "/latest/meta-data/placement/region", auth, &b) == 200 &&
            aws_region_valid(b.buf))
                region = strdup(b.buf);
        explicit_bzero(auth, strlen(auth));
        return region;
}

int doctor_sts_target(const DoctorOptions *o, char **ret_url, char **ret_region) {
        _cleanup_free_ char *region = doctor_find_region(o), *url = NULL;
        const AwsPartition *part = region ? aws_partition_for_region(region) : NULL;

        if (o->config->sts_endpoint)
                url = strdup(o->config->sts_endpoint);
        else if (!part)
                return -ENXIO;
        else if (asprintf(&url, "https://sts.%s.%s/", region, part->dns_suffix) < 0)
                url = NULL;
        if (!url)
                return -ENOMEM;
        *ret_url = TAKE_PTR(url);
        if (ret_region)
                *ret_region = TAKE_PTR(region);
        return 0;
}

static bool check_sts(const DoctorOptions *o, FILE *out) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        DoctorBody b;
        int r;

        r = doctor_sts_target(o, &url, NULL);
        if (r == -ENXIO)
                return doctor_report(out, DOCTOR_FAIL, "sts", "the region is not known (environment, IMDS)",
                                     "set AWS_REGION in the service's environment file");
        if (r < 0)
                return doctor_report(out, DOCTOR_FAIL, "sts", "out of memory", NULL);
        /* any HTTP answer: the endpoint is reachable (an unsigned request is refused, as it should be) */
        if (http_request(url, "GET", NULL, &b) == 0) {
                if (asprintf(&what, "STS does not answer at %s", url) < 0)
                        return false;
                return doctor_report(
                        out, DOCTOR_FAIL, "sts", what,
                        "allow HTTPS to the regional STS endpoint (security groups, proxy, VPC endpoint)");
        }
        if (asprintf(&what, "STS answers at %s", url) < 0)
                return false;
        return doctor_report(out, DOCTOR_PASS, "sts", what, NULL);
}

static bool check_imds(const DoctorOptions *o, FILE *out) {
        _cleanup_free_ char *auth = NULL;
        DoctorBody b;
        long st;
        bool ok;

        st = imds_request(o, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60", &b);
        if (st != 200 || b.n == 0)
                return doctor_report(out, DOCTOR_FAIL, "imds",
                                     "the upstream metadata service gives no IMDSv2 token",
                                     "enable the instance's metadata endpoint, or correct --metadata-addr");
        if (asprintf(&auth, "X-aws-ec2-metadata-token: %s", b.buf) < 0)
                return doctor_report(out, DOCTOR_FAIL, "imds", "out of memory", NULL);
        explicit_bzero(&b, sizeof b);
        st = imds_request(o, "GET", "/latest/meta-data/instance-id", auth, &b);
        explicit_bzero(auth, strlen(auth));
        if (st != 200)
                return doctor_report(out, DOCTOR_FAIL, "imds",
                                     "the upstream metadata service does not answer with a token",
                                     "check the instance's metadata options and --metadata-addr");
        /* without a token: 401 when the instance requires IMDSv2 (HttpTokens=required) */
        st = imds_request(o, "GET", "/latest/meta-data/instance-id", NULL, &b);
        ok = st == 401;
        return doctor_report(
                out, DOCTOR_PASS, "imds",
                ok ? "the upstream metadata service answers; HttpTokens=required"
                   : "the upstream metadata service answers; HttpTokens=optional (IMDSv1 allowed)",
                NULL);
}

static bool check_kubeconfig(const DoctorOptions *o, FILE *out) {
        _cleanup_(kubeconfig_freep) KubeConfig *kc = NULL;
        KubeconfigSource source;
        _cleanup_free_ char *waiting = NULL, *msg = NULL;
        int r;

        if (o->skip_cluster)
                return doctor_report(out, DOCTOR_SKIP, "kubeconfig", "--skip-cluster: no cluster here",
                                     NULL);
        config_kubeconfig_source(o->config, &source);
        r = kubeconfig_from_source(&source, &kc, &waiting);
        if (r == -ENOENT) {
                if (asprintf(&msg, "no kubeconfig yet (waiting for %s)", strna(waiting)) < 0)
                        return false;
                return doctor_report(out, DOCTOR_FAIL, "kubeconfig", msg,
                                     "let kubelet's TLS bootstrap finish, or give --kubeconfig");
        }
        if (r < 0)
                return doctor_report(out, DOCTOR_FAIL, "kubeconfig",
                                     "the kubeconfig does not load (see the journal)",
                                     "correct the file --kubeconfig names");
        return doctor_report(out, DOCTOR_PASS, "kubeconfig", "the kubeconfig loads", NULL);
}

static bool jtrue(const cJSON *o, const char *name) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static double jnum(const cJSON *o, const char *name) {
        return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static bool check_daemon_status(const DoctorOptions *o, const cJSON *st, FILE *out) {
        bool ok = true;
        char what[512];

        if (!jtrue(st, "ready"))
                ok &= doctor_report(out, DOCTOR_FAIL, "daemon", "kube2iam runs but is not READY",
                                    "journalctl -u kube2iam for what it waits for");
        else if (o->skip_cluster)
                ok &= doctor_report(out, DOCTOR_PASS, "daemon",
                                    "kube2iam is READY (--skip-cluster: sync not checked)", NULL);
        else if (!jtrue(st, "synced"))
                ok &= doctor_report(out, DOCTOR_FAIL, "daemon",
                                    "kube2iam is READY but its pod list is not synced",
                                    "check the API server and the node's RBAC (contrib/rbac)");
        else
                ok &= doctor_report(out, DOCTOR_PASS, "daemon", "kube2iam is READY and synced", NULL);
        if (jtrue(st, "serviceAccountsForbidden"))
                ok &= doctor_report(
                        out, DOCTOR_FAIL, "daemon",
                        "the API server refuses kube2iam's ServiceAccount list (403): pods without a "
                        "role annotation get no role",
                        "grant list and watch on serviceaccounts: kubectl apply -f "
                        "contrib/rbac/namespaces-for-nodes.yaml");

        snprintf(what, sizeof what, "the daemon listens on port %.0f, --app-port is %u",
                 jnum(st, "listenPort"), o->config->app_port);
        ok &= doctor_report(out, jnum(st, "listenPort") == o->config->app_port ? DOCTOR_PASS : DOCTOR_FAIL,
                            "socket-port", what,
                            jnum(st, "listenPort") == o->config->app_port
                                    ? NULL
                                    : "make kube2iam.socket's ListenStream= "
                                      "and --app-port the same");

        if (jnum(st, "podsOutside") > 0) {
                snprintf(what, sizeof what,
                         "%.0f of %.0f pods are routed around --host-interface (%s via %s)",
                         jnum(st, "podsOutside"), jnum(st, "podsChecked"),
                         strna(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "examplePod"))),
                         strna(cJSON_GetStringValue(
                                 cJSON_GetObjectItemCaseSensitive(st, "exampleInterface"))));
                ok &= doctor_report(out, DOCTOR_FAIL, "pod-interfaces", what,
                                    "set --host-interface to the CNI's interfaces (cali+, eni+, ...)");
        } else {
                snprintf(what, sizeof what, "%.0f pods, all routed through --host-interface",
                         jnum(st, "podsChecked"));
                ok &= doctor_report(out, DOCTOR_PASS, "pod-interfaces", what, NULL);
        }
        return ok;
}

static bool check_daemon(const DoctorOptions *o, FILE *out) {
        _cleanup_free_ char *answer = NULL;
        cJSON *st;
        bool ok;
        int r;

        r = explain_socket_ask(o->runtime_dir, DOCTOR_STATUS_QUERY, &answer);
        if (r < 0)
                return doctor_report(out, DOCTOR_FAIL, "daemon", "kube2iam does not answer on its socket",
                                     "systemctl start kube2iam; journalctl -u kube2iam");
        st = cJSON_Parse(answer);
        if (!cJSON_IsObject(st)) {
                cJSON_Delete(st);
                return doctor_report(out, DOCTOR_FAIL, "daemon",
                                     "kube2iam's status answer is not understood",
                                     "run the same version of kube2iam and its command");
        }
        ok = check_daemon_status(o, st, out);
        cJSON_Delete(st);
        return ok;
}

bool doctor_run(const DoctorOptions *o, FILE *out) {
        bool ok = true;

        /* every check runs, whatever the ones before found */
        ok &= check_redirect(o, out);
        ok &= check_imds(o, out);
        ok &= check_sts(o, out);
        ok &= doctor_check_node_credentials(o, out);
        ok &= check_kubeconfig(o, out);
        ok &= doctor_check_rbac(o, out);
        ok &= check_daemon(o, out);
        return ok;
}
