/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "config.h"
#include "kube/kubeconfig.h"
#include "log.h"
#include "string-util.h"
#include "tap.h"

/* base64 of "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n" */
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
#define CERT_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClFVSkQKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n"

static int parse(const char *text, KubeConfig **ret) {
        return kubeconfig_parse(text, strlen(text), "/etc/kubernetes/kubelet.conf", ret);
}

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/test-kubeconfig-XXXXXX");
        if (!d || !mkdtemp(d))
                return NULL;
        return d;
}

static void write_file(const char *dir, const char *name, const char *content) {
        char p[512];
        FILE *f;

        snprintf(p, sizeof p, "%s/%s", dir, name);
        f = fopen(p, "we");
        if (!f)
                tap_fail(__FILE__, __LINE__, "cannot write %s", p);
        fputs(content, f);
        fclose(f);
}

static void rm_rf(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                printf("# could not remove %s\n", dir);
}

#define KUBEADM \
        "apiVersion: v1\n" \
        "clusters:\n" \
        "- cluster:\n" \
        "    certificate-authority-data: " CERT_B64 "\n" \
        "    server: https://10.0.0.1:6443/\n" \
        "  name: kubernetes\n" \
        "contexts:\n" \
        "- context:\n" \
        "    cluster: kubernetes\n" \
        "    user: system:node:node-1\n" \
        "  name: system:node:node-1@kubernetes\n" \
        "current-context: system:node:node-1@kubernetes\n" \
        "kind: Config\n" \
        "preferences: {}\n" \
        "users:\n" \
        "- name: system:node:node-1\n" \
        "  user:\n" \
        "    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n" \
        "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n"

TEST(kubeconfig_kubeadm_kubelet_conf_uses_rotated_pem_and_embedded_ca) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;

        ASSERT_OK(parse(KUBEADM, &k));
        ASSERT_STREQ(k->server, "https://10.0.0.1:6443");
        ASSERT_STREQ(k->context, "system:node:node-1@kubernetes");
        ASSERT_STREQ(k->ca_data, CERT_PEM);
        ASSERT_NULL(k->ca_file);
        ASSERT_STREQ(k->client_cert_file, "/var/lib/kubelet/pki/kubelet-client-current.pem");
        ASSERT_STREQ(k->client_key_file, "/var/lib/kubelet/pki/kubelet-client-current.pem");
        ASSERT_NULL(k->token);
        ASSERT_NULL(k->exec);
}

TEST(kubeconfig_eks_exec_plugin_with_args_and_env) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        const char *eks = "apiVersion: v1\n"
                          "kind: Config\n"
                          "clusters:\n"
                          "- cluster:\n"
                          "    certificate-authority: /etc/kubernetes/pki/ca.crt\n"
                          "    server: https://ABC.gr7.us-west-2.eks.amazonaws.com\n"
                          "  name: kubernetes\n"
                          "contexts:\n"
                          "- context:\n"
                          "    cluster: kubernetes\n"
                          "    user: kubelet\n"
                          "  name: kubelet\n"
                          "current-context: kubelet\n"
                          "users:\n"
                          "- name: kubelet\n"
                          "  user:\n"
                          "    exec:\n"
                          "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                          "      command: aws\n"
                          "      args: [eks, get-token, --cluster-name, my-cluster, --region, us-west-2]\n"
                          "      env:\n"
                          "      - name: AWS_STS_REGIONAL_ENDPOINTS\n"
                          "        value: regional\n";

        ASSERT_OK(parse(eks, &k));
        ASSERT_STREQ(k->ca_file, "/etc/kubernetes/pki/ca.crt");
        ASSERT_NOT_NULL(k->exec);
        ASSERT_STREQ(k->exec->command, "aws");
        ASSERT_STREQ(k->exec->api_version, "client.authentication.k8s.io/v1beta1");
        ASSERT_EQ(strv_length(k->exec->args), 6);
        ASSERT_STREQ(k->exec->args[5], "us-west-2");
        ASSERT_STREQ(k->exec->env[0], "AWS_STS_REGIONAL_ENDPOINTS=regional");
        ASSERT_FALSE(k->exec->provide_cluster_info);
}

#define KOPS_RELATIVE \
        "apiVersion: v1\n" \
        "kind: Config\n" \
        "clusters:\n" \
        "- cluster:\n" \
        "    certificate-authority: pki/ca.crt\n" \
        "    server: https://api.internal.k.example.com\n" \
        "    tls-server-name: kubernetes.default\n" \
        "  name: local\n" \
        "contexts:\n" \
        "- context:\n" \
        "    cluster: local\n" \
        "    user: kubelet\n" \
        "  name: service-account-context\n" \
        "current-context: service-account-context\n" \
        "users:\n" \
        "- name: kubelet\n" \
        "  user:\n" \
        "    client-certificate: kubelet.crt\n" \
        "    client-key: ../kubelet.key\n" \
        "    tokenFile: token\n"

TEST(kubeconfig_relative_paths_resolve_against_the_file_folder) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;

        ASSERT_OK(kubeconfig_parse(KOPS_RELATIVE, strlen(KOPS_RELATIVE), "/var/lib/kubelet/kubeconfig", &k));
        ASSERT_STREQ(k->ca_file, "/var/lib/kubelet/pki/ca.crt");
        ASSERT_STREQ(k->client_cert_file, "/var/lib/kubelet/kubelet.crt");
        ASSERT_STREQ(k->client_key_file, "/var/lib/kubelet/../kubelet.key");
        ASSERT_STREQ(k->token_file, "/var/lib/kubelet/token");
        ASSERT_STREQ(k->tls_server_name, "kubernetes.default");
}

TEST(kubeconfig_data_wins_over_path_and_token_over_token_file) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        const char *t = "current-context: c\n"
                        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                        "clusters: [{name: k, cluster: {server: 'https://h', certificate-authority: /ca,"
                        " certificate-authority-data: " CERT_B64 ", insecure-skip-tls-verify: true}}]\n"
                        "users:\n"
                        "- name: u\n"
                        "  user:\n"
                        "    client-certificate: /c.pem\n"
                        "    client-certificate-data: " CERT_B64 "\n"
                        "    client-key: /k.pem\n"
                        "    client-key-data: " CERT_B64 "\n"
                        "    token: abc.def\n"
                        "    tokenFile: /t\n";

        ASSERT_OK(parse(t, &k));
        ASSERT_NULL(k->ca_file);
        ASSERT_STREQ(k->ca_data, CERT_PEM);
        ASSERT_TRUE(k->insecure_skip_tls_verify);
        ASSERT_NULL(k->client_cert_file);
        ASSERT_NULL(k->client_key_file);
        ASSERT_STREQ(secret_reveal(k->client_key_data), CERT_PEM);
        ASSERT_STREQ(secret_reveal(k->token), "abc.def");
        ASSERT_NULL(k->token_file);
}

TEST(kubeconfig_broken_forms_are_rejected) {
        static const char *const bad[] = {
                "",
                "- a list\n",
                "current-context: [x]\n",
                "clusters: []\ncontexts: []\n",       /* no current-context */
                "current-context: c\ncontexts: []\n", /* context not found */
                "current-context: c\ncontexts: 5\n",
                "current-context: c\ncontexts: [{name: c, context: {user: u}}]\n", /* no cluster */
                "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: []\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                "clusters: [{name: k, cluster: {server: 'ftp://x'}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x', certificate-authority-data: '%%%'}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x', insecure-skip-tls-verify: maybe}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: "
                "{client-key: /k}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
                "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
                "command: x}}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
                "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]\n",
                "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
                "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: x,"
                " env: [{value: 1}]}}}]\n",
                "a: &x [1]\nb: *x\n", /* aliases */
                "current-context: c\n  bad indentation: [\n",
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]"
                "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        };
        int saved = log_get_max_level();

        log_set_max_level(LOG_EMERG); /* the errors are expected; keep the TAP output readable */
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                KubeConfig *k = NULL;
                int r = parse(bad[i], &k);
                if (r != -EINVAL) {
                        log_set_max_level(saved);
                        tap_fail(__FILE__, __LINE__, "case %zu: expected -EINVAL, got %d", i, r);
                }
                ASSERT_NULL(k);
        }
        log_set_max_level(saved);
}

TEST(kubeconfig_credentials_reread_files_and_keep_only_certificates_outside_secret) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        char path[512];
        ASSERT_NOT_NULL(dir);

        write_file(dir, "kubeconfig", KOPS_RELATIVE);
        mkdir(strcat(strcpy(path, dir), "/pki"), 0755);
        write_file(dir, "pki/ca.crt", CERT_PEM);
        write_file(dir, "kubelet.crt", CERT_PEM KEY_PEM); /* combined, as kubelet-client-current.pem */
        write_file(dir, "token", "tok-1\n");
        /* the key is one folder up: put the whole tree one level deeper */
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        ASSERT_OK(kubeconfig_load(path, &k));
        free(k->client_key_file);
        k->client_key_file = strdup(k->client_cert_file);

        {
                _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
                ASSERT_OK(kubeconfig_read_credentials(k, &c));
                ASSERT_STREQ(c->ca_pem, CERT_PEM);
                ASSERT_STREQ(c->cert_pem, CERT_PEM); /* no private key bytes outside Secret */
                ASSERT_TRUE(strstr(secret_reveal(c->key_pem), "PRIVATE KEY") != NULL);
                ASSERT_STREQ(secret_reveal(c->token), "tok-1");
                ASSERT_UEQ(c->expires, USEC_INFINITY);
        }
        /* rotation: the same path now holds a new token */
        write_file(dir, "token", "tok-2");
        {
                _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
                ASSERT_OK(kubeconfig_read_credentials(k, &c));
                ASSERT_STREQ(secret_reveal(c->token), "tok-2");
        }
        /* an unreadable key is an error, not an anonymous connection */
        snprintf(path, sizeof path, "%s/kubelet.crt", dir);
        unlink(path);
        {
                KubeCredentials *c = NULL;
                int saved = log_get_max_level();
                log_set_max_level(LOG_EMERG);
                ASSERT_ERROR(kubeconfig_read_credentials(k, &c), -ENOENT);
                log_set_max_level(saved);
                ASSERT_NULL(c);
        }
        rm_rf(dir);
}

/* The flags as the daemon turns them into a kubeconfig source. */
static int from_config(const Config *c, KubeConfig **ret, char **ret_waiting_for) {
        KubeconfigSource s;

        config_kubeconfig_source(c, &s);
        return kubeconfig_from_source(&s, ret, ret_waiting_for);
}

TEST(kubeconfig_from_config_prefers_flag_then_api_server) {
        Config c = {};
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        _cleanup_free_ char *waiting = NULL;

        c.kubeconfig = (char *) "/nonexistent/kubeconfig";
        ASSERT_ERROR(from_config(&c, &k, &waiting), -ENOENT);
        ASSERT_STREQ(waiting, "/nonexistent/kubeconfig");

        c.kubeconfig = NULL;
        c.api_server = (char *) "api.example.com:6443";
        ASSERT_OK(secret_new("tok", 3, &c.api_token));
        c.insecure = true;
        ASSERT_OK(from_config(&c, &k, NULL));
        ASSERT_STREQ(k->server, "https://api.example.com:6443");
        ASSERT_STREQ(secret_reveal(k->token), "tok");
        ASSERT_TRUE(k->insecure_skip_tls_verify);
        secret_free(c.api_token);
}

TEST(kubeconfig_flag_ignores_api_server_and_takes_insecure_as_kube2iam_does) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        Config c = {};
        char path[512];

        ASSERT_NOT_NULL(dir);
        write_file(dir, "kubelet.conf", KUBEADM);
        snprintf(path, sizeof path, "%s/kubelet.conf", dir);
        c.kubeconfig = path;
        c.api_server = (char *) "10.9.9.9:443";
        ASSERT_OK(from_config(&c, &k, NULL));
        ASSERT_STREQ(k->server, "https://10.0.0.1:6443");
        ASSERT_STREQ(k->client_cert_file, "/var/lib/kubelet/pki/kubelet-client-current.pem");
        ASSERT_FALSE(k->insecure_skip_tls_verify);
        k = kubeconfig_free(k);
        c.insecure = true;
        ASSERT_OK(from_config(&c, &k, NULL));
        ASSERT_TRUE(k->insecure_skip_tls_verify);
        rm_rf(dir);
}

TEST(api_server_without_token_is_never_an_anonymous_client) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        _cleanup_free_ char *waiting = NULL;
        Config c = { .api_server = (char *) "https://10.9.9.9:443" };
        int r = from_config(&c, &k, &waiting);

        /* the node's kubeconfig stands in for kube2iam's in-cluster identity */
        if (r == -ENOENT)
                ASSERT_NOT_NULL(waiting);
        else {
                ASSERT_OK(r);
                ASSERT_FALSE(streq(k->server, c.api_server));
        }
}

TEST(kube_read_file_is_bounded) {
        char *s = NULL;
        size_t n;
        ASSERT_ERROR(kube_read_file("/dev/zero", 4096, &s, &n), -EFBIG);
        ASSERT_NULL(s);
}

TEST(base64_decode_rejects_garbage) {
        char *s = NULL;
        size_t n;
        ASSERT_ERROR(kube_base64_decode("ab$c", 4, &s, &n), -EINVAL);
        ASSERT_ERROR(kube_base64_decode("YQ==YQ", 6, &s, &n), -EINVAL);
        ASSERT_OK(kube_base64_decode("YWJj\nZA==", 9, &s, &n));
        ASSERT_EQ(n, 4);
        ASSERT_STREQ(s, "abcd");
        free(s);
}
