/* SPDX-License-Identifier: BSD-3-Clause */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "kube/kube-exec.h"
#include "log.h"
#include "string-util.h"
#include "tap.h"

typedef struct Result {
        bool done;
        int error;
        KubeCredentials *creds;
} Result;

static void on_done(KubeExec *x, int error, KubeCredentials **creds, void *userdata) {
        Result *res = userdata;
        res->done = true;
        res->error = error;
        if (creds)
                res->creds = TAKE_PTR(*creds);
}

/* sd-event watches children only with SIGCHLD blocked, as the daemon's main() does. */
static void set_sigchld_blocked(bool blocked) {
        sigset_t ss;

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ASSERT_OK(sigprocmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &ss, NULL));
}

/* True when this process has no child left, running or unreaped. */
static bool no_children_left(void) {
        return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* A kubeconfig whose exec plugin is sh -c script. */
static KubeConfig *plugin_config(const char *script, const char *api_version, bool cluster_info) {
        KubeConfig *k = calloc(1, sizeof *k);
        KubeExecConfig *ec;

        ASSERT_NOT_NULL(k);
        k->server = strdup("https://127.0.0.1:1");
        ec = k->exec = calloc(1, sizeof *ec);
        ASSERT_NOT_NULL(ec);
        ec->api_version = strdup(api_version);
        ec->command = strdup("/bin/sh");
        ASSERT_OK(strv_extend(&ec->args, "-c"));
        ASSERT_OK(strv_extend(&ec->args, script));
        ASSERT_OK(strv_extend(&ec->env, "PLUGIN_TEST_VAR=from-kubeconfig"));
        ec->provide_cluster_info = cluster_info;
        k->ca_data = strdup("PEM");
        k->ca_size = 3;
        return k;
}

/* Runs sh -c script as the exec plugin and returns what the callback got. */
static void run_plugin_with(const char *script, const char *api_version, bool cluster_info, Result *res) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = plugin_config(script, api_version, cluster_info);
        _cleanup_(kube_exec_freep) KubeExec *x = NULL;
        sd_event *e = NULL;

        set_sigchld_blocked(true);
        ASSERT_OK(sd_event_new(&e));
        *res = (Result){};
        ASSERT_OK(kube_exec_start(e, k, on_done, res, &x));
        while (!res->done)
                ASSERT_OK(sd_event_run(e, UINT64_MAX));
        sd_event_unref(e);
}

static void run_plugin(const char *script, const char *api_version, Result *res) {
        run_plugin_with(script, api_version, false, res);
}

TEST(exec_plugin_gets_cluster_info_when_asked) {
        Result res;
        /* base64("PEM") = UEVN */
        run_plugin_with(
                "case \"$KUBERNETES_EXEC_INFO\" in "
                "*'\"server\":\"https://127.0.0.1:1\"'*'\"certificate-authority-data\":\"UEVN\"'*) ;;"
                " *) exit 3;; esac;"
                "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                "\"status\":{\"token\":\"t\"}}'",
                "client.authentication.k8s.io/v1", true, &res);
        ASSERT_OK(res.error);
        ASSERT_STREQ(secret_reveal(res.creds->token), "t");
        kube_credentials_free(res.creds);
}

TEST(exec_plugin_token_and_expiry_are_parsed_with_exec_info_and_env) {
        Result res;
        /* the plugin proves it saw KUBERNETES_EXEC_INFO and the configured env by echoing them into the token */
        run_plugin(
                "case \"$KUBERNETES_EXEC_INFO\" in *'\"interactive\":false'*) ;; *) exit 3;; esac;"
                "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
                "\"status\":{\"token\":\"k8s-aws-v1.'$PLUGIN_TEST_VAR'\",\"expirationTimestamp\":"
                "\"2030-01-02T03:04:05Z\"}}'",
                "client.authentication.k8s.io/v1beta1", &res);
        ASSERT_OK(res.error);
        ASSERT_NOT_NULL(res.creds);
        ASSERT_STREQ(secret_reveal(res.creds->token), "k8s-aws-v1.from-kubeconfig");
        {
                usec_t want;
                ASSERT_OK(parse_timestamp_rfc3339("2030-01-02T03:04:05Z", &want));
                ASSERT_UEQ(res.creds->expires, want);
        }
        kube_credentials_free(res.creds);
}

TEST(exec_plugin_failures_are_errors_not_credentials) {
        static const char *const scripts[] = {
                "echo 'no such cluster' >&2; exit 1",
                "echo garbage",
                "echo "
                "'{\"apiVersion\":\"client.authentication.k8s.io/"
                "v1\",\"kind\":\"ExecCredential\",\"status\":{}}'",
                "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
                "\"status\":{\"token\":\"x\"}}'", /* apiVersion mismatch */
                "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                "\"status\":{\"token\":\"x\",\"expirationTimestamp\":\"tomorrow\"}}'",
                "head -c 200000 /dev/zero | tr '\\0' a",
                "kill -9 $$",
        };
        int saved = log_get_max_level();

        log_set_max_level(LOG_EMERG);
        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                Result res;
                run_plugin(scripts[i], "client.authentication.k8s.io/v1", &res);
                if (res.error >= 0 || res.creds) {
                        log_set_max_level(saved);
                        tap_fail(__FILE__, __LINE__, "case %zu: expected an error, got %d", i, res.error);
                }
        }
        log_set_max_level(saved);
}

TEST(exec_plugin_starts_with_no_signal_blocked_and_sigpipe_default) {
        Result res;
        sigset_t ss;

        /* what the daemon has: its loop's signals blocked, SIGPIPE ignored */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        ASSERT_OK(sigprocmask(SIG_BLOCK, &ss, NULL));
        signal(SIGPIPE, SIG_IGN);
        /* SIGPIPE is signal 13: bit 0x1000 of SigIgn (other ignored signals may come from whoever
         * started the test; the daemon ignores only SIGPIPE) */
        run_plugin("blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status);"
                   "ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status);"
                   "[ \"$blk\" = 0000000000000000 ] && [ $((0x$ign & 0x1000)) -eq 0 ] || "
                   "{ echo \"SigBlk $blk SigIgn $ign\" >&2; exit 3; };"
                   "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                   "\"status\":{\"token\":\"t\"}}'",
                   "client.authentication.k8s.io/v1", &res);
        signal(SIGPIPE, SIG_DFL);
        ASSERT_OK(sigprocmask(SIG_UNBLOCK, &ss, NULL));
        ASSERT_OK(res.error);
        ASSERT_STREQ(secret_reveal(res.creds->token), "t");
        kube_credentials_free(res.creds);
}

TEST(exec_plugin_is_refused_without_sigchld_blocked_and_leaves_no_child) {
        _cleanup_(kubeconfig_freep) KubeConfig *k =
                plugin_config("sleep 30", "client.authentication.k8s.io/v1", false);
        KubeExec *x = NULL;
        sd_event *e = NULL;
        int saved = log_get_max_level(), r;

        set_sigchld_blocked(false);
        ASSERT_OK(sd_event_new(&e));
        log_set_max_level(LOG_EMERG);
        r = kube_exec_start(e, k, on_done, NULL, &x);
        log_set_max_level(saved);
        set_sigchld_blocked(true);
        sd_event_unref(e);
        ASSERT_EQ(r, -EBUSY);
        ASSERT_NULL(x);
        ASSERT_TRUE(no_children_left());
}

TEST(freeing_a_running_exec_plugin_kills_and_reaps_it) {
        _cleanup_(kubeconfig_freep) KubeConfig *k =
                plugin_config("sleep 30", "client.authentication.k8s.io/v1", false);
        KubeExec *x = NULL;
        sd_event *e = NULL;
        Result res = {};

        set_sigchld_blocked(true);
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(kube_exec_start(e, k, on_done, &res, &x));
        ASSERT_FALSE(no_children_left());
        x = kube_exec_free(x);
        sd_event_unref(e);
        ASSERT_TRUE(no_children_left());
        ASSERT_FALSE(res.done);
}

TEST(exec_credential_with_client_certificate) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        const char *j = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                        "\"status\":{\"clientCertificateData\":\"CERT\",\"clientKeyData\":\"KEY\"}}";

        ASSERT_OK(kube_exec_parse_credential(j, strlen(j), "client.authentication.k8s.io/v1", "test", &c));
        ASSERT_STREQ(c->cert_pem, "CERT");
        ASSERT_STREQ(secret_reveal(c->key_pem), "KEY");
        ASSERT_NULL(c->token);
        ASSERT_UEQ(c->expires, USEC_INFINITY);
}
