/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "kube/kube-freshness.h"
#include "log.h"
#include "session-tags.h"
#include "string-util.h"
#include "tap.h"

/* Parses a space-separated argument string (split like $KUBE2IAM_ARGS) into c. */
static int parse(Config *c, ConfigProgram p, const char *env, const char *args) {
        _cleanup_strv_free_ char **v = NULL;
        char *argv[64] = { (char *) "kube2iam" };
        int argc = 1;

        ASSERT_OK(config_init(c));
        ASSERT_OK(split_args(args, &v));
        for (char **a = v; *a && argc < 63; a++)
                argv[argc++] = *a;
        /* silence the one-line errors the bad-input tests provoke */
        FILE *saved = stderr;
        stderr = fopen("/dev/null", "w");
        int r = config_parse_strv(c, p, env, argc, argv);
        fclose(stderr);
        stderr = saved;
        return r;
}

TEST(defaults_are_kube2iams_except_session_ttl) {
        Config c;
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, ""));
        ASSERT_EQ(c.app_port, 8181);
        ASSERT_EQ(c.metrics_port, 8181);
        ASSERT_STREQ(c.metadata_host, "169.254.169.254");
        ASSERT_EQ(c.metadata_port, 80);
        ASSERT_STREQ(c.iam_role_key, "iam.amazonaws.com/role");
        ASSERT_STREQ(c.iam_external_id, "iam.amazonaws.com/external-id");
        ASSERT_STREQ(c.namespace_key, "iam.amazonaws.com/allowed-roles");
        ASSERT_STREQ(c.host_interfaces[0], "docker0");
        ASSERT_NULL(c.host_interfaces[1]);
        ASSERT_UEQ(c.iam_role_session_ttl, 30 * USEC_PER_MINUTE);
        ASSERT_EQ(config_sts_duration_sec(&c), 3600);
        ASSERT_UEQ(c.iam_role_error_ttl, 0);
        ASSERT_UEQ(c.backoff_max_interval, USEC_PER_SEC);
        ASSERT_UEQ(c.backoff_max_elapsed_time, 2 * USEC_PER_SEC);
        ASSERT_UEQ(c.cache_resync_period, 30 * USEC_PER_MINUTE);
        ASSERT_UEQ(c.ready_sync_timeout, 10 * USEC_PER_SEC);
        ASSERT_UEQ(c.pod_store_max_stale, KUBE_POD_STORE_MAX_STALE_USEC);
        ASSERT_EQ(c.namespace_restriction_format, NAMESPACE_RESTRICTION_GLOB);
        ASSERT_EQ(c.log_level, LOG_INFO);
        ASSERT_FALSE(c.log_json);
        ASSERT_FALSE(c.namespace_restrictions);
        ASSERT_FALSE(c.iptables);
        ASSERT_TRUE(c.prefetch);
        ASSERT_NULL(c.base_role_arn);
        ASSERT_NOT_NULL(c.node);
        config_done(&c);
}

TEST(every_flag_is_parsed) {
        Config c;
        ASSERT_OK(parse(
                &c, CONFIG_PROGRAM_DAEMON, NULL,
                "--kubeconfig=/etc/k.conf --api-server=https://k:6443 --api-token=tok --insecure "
                "--app-port=9000 --metrics-port=9001 --base-role-arn=arn:aws:iam::123456789012:role/team "
                "--default-role=def --iam-role-key=k/role --iam-external-id=k/ext "
                "--iam-role-session-ttl=1h --iam-role-error-ttl=30s --namespace-restrictions "
                "--namespace-restriction-format=REGEXP --namespace-key=k/allowed "
                "--cache-resync-period=5m --resolve-duplicate-cache-ips --node=Node-1 --host-ip=10.1.2.3 "
                "--host-interface=cali+,eni*,cni0 --iptables --metadata-addr=[fd00:ec2::254]:8080 "
                "--backoff-max-interval=500ms --backoff-max-elapsed-time=3s --log-format=JSON "
                "--log-level=warn --debug --use-regional-sts-endpoint "
                "--sts-endpoint=https://sts.vpce.example --listen-address=10.1.2.3 --imdsv2-required "
                "--ready-sync-timeout=2s --pod-store-max-stale=5m "
                "--metadata-allow=/latest/meta-data/*,/latest/dynamic/* "
                "--prefetch=false --sts-rate=2.5 --sts-burst=7 --ipv6 --host-ipv6=fd00::1"));
        ASSERT_STREQ(c.kubeconfig, "/etc/k.conf");
        ASSERT_STREQ(c.api_server, "https://k:6443");
        ASSERT_STREQ(secret_reveal(c.api_token), "tok");
        ASSERT_TRUE(c.insecure);
        ASSERT_EQ(c.app_port, 9000);
        ASSERT_EQ(c.metrics_port, 9001);
        ASSERT_STREQ(c.base_role_arn, "arn:aws:iam::123456789012:role/team/");
        ASSERT_STREQ(c.default_role, "def");
        ASSERT_STREQ(c.iam_role_key, "k/role");
        ASSERT_STREQ(c.iam_external_id, "k/ext");
        ASSERT_EQ(config_sts_duration_sec(&c), 7200);
        ASSERT_UEQ(c.iam_role_error_ttl, 30 * USEC_PER_SEC);
        ASSERT_TRUE(c.namespace_restrictions);
        ASSERT_EQ(c.namespace_restriction_format, NAMESPACE_RESTRICTION_REGEXP);
        ASSERT_STREQ(c.namespace_key, "k/allowed");
        ASSERT_UEQ(c.cache_resync_period, 5 * USEC_PER_MINUTE);
        ASSERT_TRUE(c.resolve_duplicate_cache_ips);
        ASSERT_STREQ(c.node, "Node-1");
        ASSERT_STREQ(c.host_ip, "10.1.2.3");
        ASSERT_STREQ(c.host_interfaces[0], "cali*");
        ASSERT_STREQ(c.host_interfaces[1], "eni*");
        ASSERT_STREQ(c.host_interfaces[2], "cni0");
        ASSERT_TRUE(c.iptables);
        ASSERT_STREQ(c.metadata_host, "fd00:ec2::254");
        ASSERT_EQ(c.metadata_port, 8080);
        ASSERT_UEQ(c.backoff_max_interval, 500 * USEC_PER_MSEC);
        ASSERT_UEQ(c.backoff_max_elapsed_time, 3 * USEC_PER_SEC);
        ASSERT_TRUE(c.log_json);
        ASSERT_EQ(c.log_level, LOG_WARNING);
        ASSERT_TRUE(c.debug);
        ASSERT_TRUE(c.use_regional_sts_endpoint);
        ASSERT_STREQ(c.sts_endpoint, "https://sts.vpce.example");
        ASSERT_STREQ(c.listen_address, "10.1.2.3");
        ASSERT_TRUE(c.imdsv2_required);
        ASSERT_UEQ(c.ready_sync_timeout, 2 * USEC_PER_SEC);
        ASSERT_UEQ(c.pod_store_max_stale, 5 * USEC_PER_MINUTE);
        ASSERT_STREQ(c.metadata_allow[0], "/latest/meta-data/*");
        ASSERT_STREQ(c.metadata_allow[1], "/latest/dynamic/*");
        ASSERT_FALSE(c.prefetch);
        ASSERT_TRUE(c.sts_rate > 2.49 && c.sts_rate < 2.51);
        ASSERT_EQ(c.sts_burst, 7);
        ASSERT_TRUE(c.ipv6);
        ASSERT_STREQ(c.host_ipv6, "fd00::1");
        config_done(&c);
}

TEST(verbose_forces_debug) {
        Config c;
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--log-level=error --verbose"));
        ASSERT_EQ(c.log_level, LOG_DEBUG);
        config_done(&c);
}

TEST(env_args_come_first_and_flags_win) {
        Config c;
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, "--app-port=1000 --node='my-node' --debug",
                        "--app-port=2000"));
        ASSERT_EQ(c.app_port, 2000);
        ASSERT_TRUE(c.debug);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, "--node 'x", ""), -EINVAL);
        config_done(&c);
}

TEST(bad_values_are_rejected) {
        static const char *bad[] = {
                "--app-port=0",
                "--app-port=65536",
                "--app-port=8o",
                "--app-port=-1",
                "--iam-role-session-ttl=7m",
                "--iam-role-session-ttl=6h1s",
                "--iam-role-session-ttl=abc",
                "--iam-role-error-ttl=-5s",
                "--base-role-arn=arn:aws:iam::12a:role/",
                "--base-role-arn=arn:aws:iam::123:user/x",
                "--base-role-arn=foo",
                "--log-level=verbose",
                "--host-ip=300.1.1.1",
                "--host-interface=",
                "--host-interface=a+b",
                "--host-interface=0123456789abcdef",
                "--metadata-addr=",
                "--metadata-addr=[::1",
                "--metadata-addr=host:",
                "--listen-address=::zz",
                "--sts-endpoint=ftp://x",
                "--api-server=ftp://k8s:6443",
                "--api-server=k8s:port",
                "--sts-rate=0",
                "--sts-rate=nan",
                "--sts-burst=0",
                "--insecure=yes",
                "--unknown",
                "--node=",
                "--metadata-allow=latest",
                "--kubeconfig=",
                "--base-role-arn=arn:aws:iam::1:role/ --auto-discover-base-arn",
                "--auto-discover-default-role --default-role=x",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                Config c;
                int r = parse(&c, CONFIG_PROGRAM_DAEMON, NULL, bad[i]);
                if (r != -EINVAL)
                        tap_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
                config_done(&c);
        }
}

/* Like parse(), but keeps what went to stderr in *ret_err. */
static int parse_capture(Config *c, ConfigProgram p, const char *args, char **ret_err) {
        _cleanup_strv_free_ char **v = NULL;
        char *argv[64] = { (char *) "kube2iam" };
        char buf[4096] = {};
        int argc = 1, r;
        FILE *saved = stderr, *tmp = tmpfile();

        ASSERT_NOT_NULL(tmp);
        ASSERT_OK(config_init(c));
        ASSERT_OK(split_args(args, &v));
        for (char **a = v; *a && argc < 63; a++)
                argv[argc++] = *a;
        stderr = tmp;
        r = config_parse_strv(c, p, NULL, argc, argv);
        stderr = saved;
        rewind(tmp);
        (void) !fread(buf, 1, sizeof buf - 1, tmp);
        fclose(tmp);
        *ret_err = strdup(buf);
        return r;
}

TEST(values_kube2iam_accepted_start_with_a_warning) {
        static const struct {
                const char *args, *warning;
        } cases[] = {
                { "--namespace-restriction-format=regex", "glob patterns are used" },
                { "--host-ip=fd00::1", "used as --host-ipv6" },
                { "--iam-role-key=", "every pod gets the default role" },
                { "--iam-external-id=", "no ExternalId" },
                { "--namespace-key=", "only the default role" },
                { "--debug true", "ignoring argument \"true\"" },
                { "--node=$(NODE_NAME)", "Kubernetes expansion" },
                { "--host-ip=$(HOST_IP)", "Kubernetes expansion" },
                { "--api-server=k8s.example.com:6443 --api-token=t", "" },
                { "--kubeconfig=/k --api-server=https://x", "--api-server is ignored with --kubeconfig" },
                { "--api-server=https://x", "kubelet's kubeconfig" },
                { "--insecure", "no effect" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *err = NULL;
                Config c;
                int r = parse_capture(&c, CONFIG_PROGRAM_DAEMON, cases[i].args, &err);
                if (r < 0 || !err || !strstr(err, cases[i].warning))
                        tap_fail(__FILE__, __LINE__, "%s: r=%i, stderr: %s", cases[i].args, r, strna(err));
                config_done(&c);
        }
}

TEST(accepted_values_mean_what_kube2iam_meant) {
        _cleanup_free_ char *host = NULL;
        Config c;

        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--namespace-restriction-format=REGEXP"));
        ASSERT_EQ(c.namespace_restriction_format, NAMESPACE_RESTRICTION_REGEXP);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--namespace-restriction-format=regex"));
        ASSERT_EQ(c.namespace_restriction_format, NAMESPACE_RESTRICTION_GLOB);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--debug true --host-ip=fd00::1"));
        ASSERT_TRUE(c.debug);
        ASSERT_NULL(c.host_ip);
        ASSERT_STREQ(c.host_ipv6, "fd00::1");
        config_done(&c);
        ASSERT_OK(config_init(&c));
        host = strdup(c.node);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--node=$(NODE_NAME) --host-ip=$(HOST_IP)"));
        ASSERT_STREQ(c.node, host);
        ASSERT_NULL(c.host_ip);
        config_done(&c);
        /* an empty --node watched the whole cluster in kube2iam: refused */
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--node="), -EINVAL);
        config_done(&c);
}

TEST(base_arn_rule_is_kube2iams) {
        ASSERT_TRUE(config_base_arn_valid("arn:aws:iam::123456789012:role/"));
        ASSERT_TRUE(config_base_arn_valid("arn:aws:iam::123456789012:role"));
        ASSERT_TRUE(config_base_arn_valid("arn:aws-cn:iam::1:role/team/sub/"));
        ASSERT_TRUE(config_base_arn_valid("arn:aws-us-gov:iam::1:role/a.b-c_d"));
        ASSERT_FALSE(config_base_arn_valid("arn:aws:iam::1:instance-profile/x"));
        ASSERT_FALSE(config_base_arn_valid("arn:aws:iam:us-east-1:1:role/"));
        ASSERT_FALSE(config_base_arn_valid("arn:aws:iam::1:role/a b"));
}

TEST(interface_patterns_become_nft_wildcards) {
        char *p;
        ASSERT_OK(config_interface_pattern("cali+", &p));
        ASSERT_STREQ(p, "cali*");
        free(p);
        ASSERT_OK(config_interface_pattern("eth0", &p));
        ASSERT_STREQ(p, "eth0");
        free(p);
        ASSERT_ERROR(config_interface_pattern("+", &p), -EINVAL);
        ASSERT_ERROR(config_interface_pattern("a*b", &p), -EINVAL);
        ASSERT_ERROR(config_interface_pattern("a b", &p), -EINVAL);
}

TEST(host_port_forms) {
        char *h;
        uint16_t p;
        ASSERT_OK(config_parse_host_port("169.254.169.254", 80, &h, &p));
        ASSERT_STREQ(h, "169.254.169.254");
        ASSERT_EQ(p, 80);
        free(h);
        ASSERT_OK(config_parse_host_port("127.0.0.1:9999", 80, &h, &p));
        ASSERT_STREQ(h, "127.0.0.1");
        ASSERT_EQ(p, 9999);
        free(h);
        ASSERT_OK(config_parse_host_port("fd00:ec2::254", 80, &h, &p));
        ASSERT_STREQ(h, "fd00:ec2::254");
        ASSERT_EQ(p, 80);
        free(h);
        ASSERT_OK(config_parse_host_port("[fd00:ec2::254]:81", 80, &h, &p));
        ASSERT_STREQ(h, "fd00:ec2::254");
        ASSERT_EQ(p, 81);
        free(h);
        ASSERT_OK(config_parse_host_port("metadata.local", 80, &h, &p));
        free(h);
        ASSERT_ERROR(config_parse_host_port("a b", 80, &h, &p), -EINVAL);
        ASSERT_ERROR(config_parse_host_port("[::1]x", 80, &h, &p), -EINVAL);
}

TEST(nft_program_ignores_the_values_of_daemon_only_flags) {
        Config c;
        /* the daemon refuses each of these; the helper reads the same $KUBE2IAM_ARGS and must
         * still install, check or remove the redirect */
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_NFT,
                        "--iam-role-session-ttl=5m --sts-rate=0 --node= --namespace-restriction-format=x "
                        "--auto-discover-base-arn --base-role-arn=arn:aws:iam::1:role/ --app-port=9000 "
                        "--host-interface=eni+",
                        "check"));
        ASSERT_STREQ(c.command, "check");
        ASSERT_EQ(c.app_port, 9000);
        ASSERT_STREQ(c.host_interfaces[0], "eni*");
        ASSERT_NULL(c.base_role_arn);
        config_done(&c);
        /* the daemon itself still rejects them */
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, "--iam-role-session-ttl=5m", ""), -EINVAL);
        config_done(&c);
        /* the helper's own flags are validated, and an unknown flag is an error for both */
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_NFT, "--app-port=0", "check"), -EINVAL);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_NFT, "--no-such-flag", "check"), -EINVAL);
        config_done(&c);
}

TEST(nft_program_takes_a_command) {
        Config c;
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_NFT, "--host-interface=cali+", "install"));
        ASSERT_STREQ(c.command, "install");
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_NFT, NULL, ""), -EINVAL);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_NFT, NULL, "flush"), -EINVAL);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_NFT, NULL, "install remove"), -EINVAL);
        config_done(&c);
}

TEST(session_tags_alone_means_all_six_and_a_list_narrows) {
        Config c;

        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, ""));
        ASSERT_EQ(c.session_tags, 0U);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL,
                        "--session-tags --cluster-name=prod-1 "
                        "--cluster-arn=arn:aws:eks:eu-west-1:1:cluster/prod-1"));
        ASSERT_EQ(c.session_tags, SESSION_TAGS_ALL);
        ASSERT_STREQ(c.cluster_name, "prod-1");
        ASSERT_STREQ(c.cluster_arn, "arn:aws:eks:eu-west-1:1:cluster/prod-1");
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL,
                        "--session-tags=kubernetes-namespace,kubernetes-service-account"));
        ASSERT_EQ(c.session_tags, (1U << SESSION_TAG_NAMESPACE) | (1U << SESSION_TAG_SERVICE_ACCOUNT));
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--session-tags=kubernetes-namespace,team"),
                     -EINVAL);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--session-tags=kubernetes-namespace,"),
                     -EINVAL);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--cluster-name=a;b"), -EINVAL);
        config_done(&c);
}

TEST(session_name_is_kube2iam_or_pod) {
        Config c;

        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, ""));
        ASSERT_FALSE(c.pod_session_names);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--session-name=pod"));
        ASSERT_TRUE(c.pod_session_names);
        config_done(&c);
        ASSERT_OK(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--session-name=pod --session-name=kube2iam"));
        ASSERT_FALSE(c.pod_session_names);
        config_done(&c);
        ASSERT_ERROR(parse(&c, CONFIG_PROGRAM_DAEMON, NULL, "--session-name=uid"), -EINVAL);
        config_done(&c);
}
