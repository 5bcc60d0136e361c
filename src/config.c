/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "nft/redirect.h"
#include "kubeconfig.h"
#include "kube/kube-freshness.h"
#include "aws/sts.h"
#include "log.h"
#include "session-tags.h"
#include "string-util.h"

/* Defaults for the token bucket in front of STS: STS allows hundreds of calls per second per
 * account, but a node is one of many; 10/s with a burst of 20 serves a node's worth of pod starts
 * (110 pods) within seconds while keeping a fleet far from the account limit. */
#define STS_RATE_DEFAULT 10.0
#define STS_BURST_DEFAULT 20
#define STS_RATE_MAX 1000.0

enum {
        ARG_KUBECONFIG = 0x100,
        ARG_API_SERVER,
        ARG_API_TOKEN,
        ARG_INSECURE,
        ARG_APP_PORT,
        ARG_METRICS_PORT,
        ARG_BASE_ROLE_ARN,
        ARG_DEFAULT_ROLE,
        ARG_AUTO_DISCOVER_BASE_ARN,
        ARG_AUTO_DISCOVER_DEFAULT_ROLE,
        ARG_IAM_ROLE_KEY,
        ARG_IAM_EXTERNAL_ID,
        ARG_IAM_ROLE_SESSION_TTL,
        ARG_IAM_ROLE_ERROR_TTL,
        ARG_NAMESPACE_RESTRICTIONS,
        ARG_NAMESPACE_RESTRICTION_FORMAT,
        ARG_NAMESPACE_KEY,
        ARG_CACHE_RESYNC_PERIOD,
        ARG_RESOLVE_DUPLICATE_CACHE_IPS,
        ARG_NODE,
        ARG_HOST_IP,
        ARG_HOST_INTERFACE,
        ARG_IPTABLES,
        ARG_METADATA_ADDR,
        ARG_BACKOFF_MAX_INTERVAL,
        ARG_BACKOFF_MAX_ELAPSED_TIME,
        ARG_LOG_FORMAT,
        ARG_LOG_LEVEL,
        ARG_VERBOSE,
        ARG_DEBUG,
        ARG_USE_REGIONAL_STS_ENDPOINT,
        ARG_VERSION,
        ARG_HELP,
        ARG_STS_ENDPOINT,
        ARG_LISTEN_ADDRESS,
        ARG_IMDSV2_REQUIRED,
        ARG_READY_SYNC_TIMEOUT,
        ARG_POD_EVENTS,
        ARG_POD_STORE_MAX_STALE,
        ARG_METADATA_ALLOW,
        ARG_PREFETCH,
        ARG_STS_RATE,
        ARG_STS_BURST,
        ARG_IPV6,
        ARG_HOST_IPV6,
        ARG_SESSION_TAGS,
        ARG_CLUSTER_NAME,
        ARG_CLUSTER_ARN,
        ARG_SESSION_NAME,
        ARG_SESSION_POLICIES,
        ARG_SERVICE_ACCOUNT_ROLES,
        ARG_NAMESPACE_DEFAULT_ROLES,
};

typedef struct OptionDoc {
        int id;
        const char *name;
        int has_arg; /* no_argument is never used: booleans take an optional =true|false */
        const char *value_name;
        const char *help; /* the default is printed from a fresh Config */
} OptionDoc;

static const OptionDoc option_docs[] = {
        { ARG_API_SERVER, "api-server", required_argument, "URL",
          "Endpoint for the api server (https://HOST[:PORT] or HOST[:PORT]); used with --api-token only" },
        { ARG_API_TOKEN, "api-token", required_argument, "TOKEN",
          "Token to authenticate with the api server" },
        { ARG_APP_PORT, "app-port", required_argument, "PORT", "Kube2iam server http port" },
        { ARG_AUTO_DISCOVER_BASE_ARN, "auto-discover-base-arn", optional_argument, NULL,
          "Queries EC2 Metadata to determine the base ARN" },
        { ARG_AUTO_DISCOVER_DEFAULT_ROLE, "auto-discover-default-role", optional_argument, NULL,
          "Queries EC2 Metadata to determine the default Iam Role and base ARN, cannot be used with "
          "--default-role, overwrites any previous setting for --base-role-arn" },
        { ARG_BACKOFF_MAX_ELAPSED_TIME, "backoff-max-elapsed-time", required_argument, "DURATION",
          "Max elapsed time for backoff when querying for role" },
        { ARG_BACKOFF_MAX_INTERVAL, "backoff-max-interval", required_argument, "DURATION",
          "Max interval for backoff when querying for role" },
        { ARG_BASE_ROLE_ARN, "base-role-arn", required_argument, "ARN", "Base role ARN" },
        { ARG_CACHE_RESYNC_PERIOD, "cache-resync-period", required_argument, "DURATION",
          "Kubernetes caches resync period (accepted for compatibility; watches keep the caches current)" },
        { ARG_CLUSTER_ARN, "cluster-arn", required_argument, "ARN",
          "The cluster's ARN, sent as the eks-cluster-arn session tag (--session-tags)" },
        { ARG_CLUSTER_NAME, "cluster-name", required_argument, "NAME",
          "The cluster's name, sent as the eks-cluster-name session tag (--session-tags)" },
        { ARG_DEBUG, "debug", optional_argument, NULL, "Enable debug features (/debug/store)" },
        { ARG_DEFAULT_ROLE, "default-role", required_argument, "ROLE",
          "Fallback role to use when annotation is not set" },
        { ARG_HELP, "help", no_argument, NULL, "Print this help and exit" },
        { ARG_HOST_INTERFACE, "host-interface", required_argument, "IFACES",
          "Host interface(s) for proxying AWS metadata, comma-separated; 'cali+' and 'cali*' both match "
          "every cali interface" },
        { ARG_HOST_IP, "host-ip", required_argument, "IP", "IP address of host" },
        { ARG_HOST_IPV6, "host-ipv6", required_argument, "IP6",
          "IPv6 address of host, target of the --ipv6 redirect" },
        { ARG_IAM_EXTERNAL_ID, "iam-external-id", required_argument, "KEY",
          "Pod annotation key used to retrieve the IAM ExternalId" },
        { ARG_IAM_ROLE_ERROR_TTL, "iam-role-error-ttl", required_argument, "DURATION",
          "TTL for caching an AssumeRole denial (AccessDenied and other client errors; throttling, 5xx and "
          "timeouts are retried with backoff instead) (0 = off)" },
        { ARG_IAM_ROLE_KEY, "iam-role-key", required_argument, "KEY",
          "Pod annotation key used to retrieve the IAM role" },
        { ARG_IAM_ROLE_SESSION_TTL, "iam-role-session-ttl", required_argument, "DURATION",
          "Credential cache TTL; STS sessions last twice as long (900..43200 s)" },
        { ARG_IMDSV2_REQUIRED, "imdsv2-required", optional_argument, NULL,
          "Require an IMDSv2 session token on credential and proxied requests, as HttpTokens=required "
          "does" },
        { ARG_INSECURE, "insecure", optional_argument, NULL,
          "Kubernetes server should be accessed without verifying the TLS. Testing only" },
        { ARG_IPTABLES, "iptables", optional_argument, NULL,
          "Add the redirect for the metadata service (written with nftables) before serving" },
        { ARG_IPV6, "ipv6", optional_argument, NULL, "Also redirect the IMDS IPv6 address fd00:ec2::254" },
        { ARG_KUBECONFIG, "kubeconfig", required_argument, "PATH", "Absolute path to the kubeconfig file" },
        { ARG_LISTEN_ADDRESS, "listen-address", required_argument, "ADDR",
          "Address to listen on when not socket-activated (default: all addresses)" },
        { ARG_LOG_FORMAT, "log-format", required_argument, "FORMAT",
          "Log format (text/json) of the lines on stderr; under systemd (stderr is the journal) entries go "
          "to "
          "the journal with structured fields and this has no effect" },
        { ARG_LOG_LEVEL, "log-level", required_argument, "LEVEL",
          "Log level (debug, info, warn, error, fatal)" },
        { ARG_METADATA_ADDR, "metadata-addr", required_argument, "HOST[:PORT]",
          "Address for the ec2 metadata" },
        { ARG_METADATA_ALLOW, "metadata-allow", required_argument, "PATTERNS",
          "Comma-separated path patterns ('*' wildcard): only documented metadata they name is forwarded; "
          "names user-data or instance-identity signatures to forward them (docs/imds-surface.md)" },
        { ARG_METRICS_PORT, "metrics-port", required_argument, "PORT",
          "Metrics server http port (default: same as kube2iam server port)" },
        { ARG_NAMESPACE_DEFAULT_ROLES, "namespace-default-roles", optional_argument, NULL,
          "A pod without a role (annotation or ServiceAccount) takes its namespace's "
          "iam.amazonaws.com/default-role, under the namespace's restrictions, before --default-role "
          "(docs/sessions.md)" },
        { ARG_NAMESPACE_KEY, "namespace-key", required_argument, "KEY",
          "Namespace annotation key used to retrieve the IAM roles allowed (value in annotation should be "
          "json array)" },
        { ARG_NAMESPACE_RESTRICTION_FORMAT, "namespace-restriction-format", required_argument, "FORMAT",
          "Namespace Restriction Format (glob/regexp)" },
        { ARG_NAMESPACE_RESTRICTIONS, "namespace-restrictions", optional_argument, NULL,
          "Enable namespace restrictions" },
        { ARG_NODE, "node", required_argument, "NAME", "Name of the node where kube2iam is running" },
        { ARG_POD_EVENTS, "pod-events", optional_argument, NULL,
          "Post a Kubernetes Event on a pod refused a role or whose AssumeRole failed (rate-limited per pod "
          "and reason)" },
        { ARG_POD_STORE_MAX_STALE, "pod-store-max-stale", required_argument, "DURATION",
          "Stop answering for pods once the API server has answered but the pod list could not be refreshed "
          "for this long (an unreachable API server does not count)" },
        { ARG_PREFETCH, "prefetch", optional_argument, NULL,
          "Fetch a pod's credentials as soon as the pod appears on the node" },
        { ARG_READY_SYNC_TIMEOUT, "ready-sync-timeout", required_argument, "DURATION",
          "At most this long, wait for the first pod list before telling systemd we are ready" },
        { ARG_RESOLVE_DUPLICATE_CACHE_IPS, "resolve-duplicate-cache-ips", optional_argument, NULL,
          "Queries the k8s api server to find the source of truth when the pod cache contains multiple pods "
          "with the same IP" },
        { ARG_SERVICE_ACCOUNT_ROLES, "service-account-roles", optional_argument, NULL,
          "A pod without a role annotation takes its ServiceAccount's eks.amazonaws.com/role-arn (IRSA's), "
          "under the namespace's restrictions; needs list and watch on serviceaccounts (contrib/rbac, "
          "docs/sessions.md)" },
        { ARG_SESSION_NAME, "session-name", required_argument, "kube2iam|pod",
          "RoleSessionName of the STS sessions: kube2iam's (fnv32a of the pod IP, '-', the role name) or "
          "the pod's namespace and name, kept for the pod's life (docs/sessions.md)" },
        { ARG_SESSION_POLICIES, "session-policies", optional_argument, NULL,
          "Send a namespace's iam.amazonaws.com/session-policy-arns (a JSON list of managed policy ARNs) "
          "as PolicyArns with its pods' AssumeRole calls, narrowing their roles (docs/sessions.md)" },
        { ARG_SESSION_TAGS, "session-tags", optional_argument, "LIST",
          "Tag every AssumeRole with EKS Pod Identity's session tags (transitive); LIST narrows them to "
          "some of eks-cluster-arn, eks-cluster-name, kubernetes-namespace, kubernetes-service-account, "
          "kubernetes-pod-name, kubernetes-pod-uid. Roles must allow sts:TagSession (docs/sessions.md)" },
        { ARG_STS_BURST, "sts-burst", required_argument, "N", "AssumeRole calls allowed in a burst" },
        { ARG_STS_ENDPOINT, "sts-endpoint", required_argument, "URL",
          "STS base URL (VPC endpoint, FIPS); default: the regional endpoint of the node's region" },
        { ARG_STS_RATE, "sts-rate", required_argument, "PER_SEC", "AssumeRole calls per second, sustained" },
        { ARG_USE_REGIONAL_STS_ENDPOINT, "use-regional-sts-endpoint", optional_argument, NULL,
          "Accepted for compatibility; the regional endpoint is always used" },
        { ARG_VERBOSE, "verbose", optional_argument, NULL, "Verbose" },
        { ARG_VERSION, "version", optional_argument, NULL, "Print the version and exits" },
};

int config_init(Config *c) {
        char host[HOST_NAME_MAX + 1] = {};

        *c = (Config){
                .app_port = 8181,
                .metrics_port = 0, /* same as --app-port unless given */
                .metadata_port = 80,
                .cache_resync_period = 30 * USEC_PER_MINUTE,
                .ready_sync_timeout = 10 * USEC_PER_SEC,
                .pod_store_max_stale = KUBE_POD_STORE_MAX_STALE_USEC,
                .namespace_restriction_format = NAMESPACE_RESTRICTION_GLOB,
                /* docs/compatibility.md: 30m by default (kube2iam: 15m), so credentials keep >= 30 minutes of life */
                .iam_role_session_ttl = 30 * USEC_PER_MINUTE,
                .iam_role_error_ttl = 0,
                .backoff_max_interval = 1 * USEC_PER_SEC,
                .backoff_max_elapsed_time = 2 * USEC_PER_SEC,
                .prefetch = true,
                .sts_rate = STS_RATE_DEFAULT,
                .sts_burst = STS_BURST_DEFAULT,
                .log_level = LOG_INFO,
        };
        c->metadata_host = strdup("169.254.169.254");
        c->iam_role_key = strdup("iam.amazonaws.com/role");
        c->iam_external_id = strdup("iam.amazonaws.com/external-id");
        c->namespace_key = strdup("iam.amazonaws.com/allowed-roles");
        if (gethostname(host, sizeof host - 1) == 0 && host[0])
                c->node = ascii_strlower(strdup(host));
        if (!c->metadata_host || !c->iam_role_key || !c->iam_external_id || !c->namespace_key ||
            strv_extend(&c->host_interfaces, "docker0") < 0) {
                config_done(c);
                return -ENOMEM;
        }
        return 0;
}

void config_done(Config *c) {
        free(c->kubeconfig);
        free(c->api_server);
        secret_free(c->api_token);
        free(c->node);
        free(c->listen_address);
        free(c->metadata_host);
        strv_free(c->metadata_allow);
        free(c->base_role_arn);
        free(c->default_role);
        free(c->iam_role_key);
        free(c->iam_external_id);
        free(c->namespace_key);
        free(c->sts_endpoint);
        free(c->cluster_name);
        free(c->cluster_arn);
        free(c->host_ip);
        strv_free(c->host_interfaces);
        free(c->host_ipv6);
        free(c->command);
        *c = (Config){};
}

static int bad_value(const char *flag, const char *value, const char *why) {
        fprintf(stderr, "%s: invalid value \"%s\" for flag --%s: %s\n", program_invocation_short_name,
                strempty(value), flag, why);
        return -EINVAL;
}

/* Values kube2iam accepted that mean something else here (or nothing): one line, and go on. Under
 * systemd this line is in the journal, where the unit's start-up is read. */
static void warn_value(const char *flag, const char *value, const char *what) {
        fprintf(stderr, "%s: warning: --%s=%s: %s\n", program_invocation_short_name, flag, strempty(value),
                what);
}

/* "$(NODE_NAME)": a Kubernetes dependent-variable reference that the kubelet expands in a pod's
 * args; copied from the DaemonSet into KUBE2IAM_ARGS it arrives verbatim. */
static bool is_kubernetes_expansion(const char *arg) {
        return startswith(arg, "$(") && endswith(arg, ")");
}

static int parse_bool_arg(const char *flag, const char *arg, bool *ret) {
        /* pflag's strconv.ParseBool spellings */
        static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
        static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

        if (!arg) {
                *ret = true;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (streq(arg, yes[i])) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (streq(arg, no[i])) {
                        *ret = false;
                        return 0;
                }
        return bad_value(flag, arg, "expected true or false");
}

static int parse_duration_arg(const char *flag, const char *arg, usec_t *ret) {
        int r = parse_duration(arg, ret);
        if (r == -ERANGE)
                return bad_value(flag, arg, "duration out of range (negative or too large)");
        if (r < 0)
                return bad_value(flag, arg, "expected a duration such as 500ms, 15m or 1h30m");
        return 0;
}

int config_parse_port(const char *s, uint16_t *ret) {
        char *end;
        unsigned long v;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end || v < 1 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

static int parse_port_arg(const char *flag, const char *arg, uint16_t *ret) {
        if (config_parse_port(arg, ret) < 0)
                return bad_value(flag, arg, "expected a port number 1..65535");
        return 0;
}

static int set_string(char **dst, const char *arg) {
        char *s = strdup(arg);
        if (!s)
                return -ENOMEM;
        free_and_replace(*dst, s);
        return 0;
}

bool config_base_arn_valid(const char *arn) {
        static const char pattern[] = "^arn:[A-Za-z0-9_-]*:iam::[0-9]+:role/?[A-Za-z0-9_./-]*$";
        regex_t re;
        bool ok;

        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
                return false;
        ok = regexec(&re, arn, 0, NULL, 0) == 0;
        regfree(&re);
        return ok;
}

int config_interface_pattern(const char *in, char **ret) {
        size_t n = strlen(in);
        char *s;

        if (n == 0 || n >= IFNAMSIZ)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char ch = in[i];
                bool last = i == n - 1;
                if ((ch == '+' || ch == '*') && last && n > 1)
                        continue;
                if (!isalnum((unsigned char) ch) && !strchr("_.:-", ch))
                        return -EINVAL;
        }
        s = strdup(in);
        if (!s)
                return -ENOMEM;
        if (s[n - 1] == '+')
                s[n - 1] = '*';
        *ret = s;
        return 0;
}

static bool hostname_valid(const char *h) {
        if (isempty(h) || strlen(h) > 253)
                return false;
        for (const char *p = h; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(".-_", *p))
                        return false;
        return true;
}

int config_parse_host_port(const char *s, uint16_t default_port, char **ret_host, uint16_t *ret_port) {
        _cleanup_free_ char *host = NULL;
        uint16_t port = default_port;
        struct in6_addr a6;
        const char *colon;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close)
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (close - s - 1));
                if (!host)
                        return -ENOMEM;
                if (inet_pton(AF_INET6, host, &a6) != 1)
                        return -EINVAL;
                if (close[1] == ':') {
                        if (config_parse_port(close + 2, &port) < 0)
                                return -EINVAL;
                } else if (close[1] != '\0')
                        return -EINVAL;
        } else if (inet_pton(AF_INET6, s, &a6) == 1) {
                host = strdup(s);
                if (!host)
                        return -ENOMEM;
        } else {
                colon = strchr(s, ':');
                host = colon ? strndup(s, (size_t) (colon - s)) : strdup(s);
                if (!host)
                        return -ENOMEM;
                if (colon && config_parse_port(colon + 1, &port) < 0)
                        return -EINVAL;
                if (!hostname_valid(host))
                        return -EINVAL;
        }
        *ret_host = TAKE_PTR(host);
        *ret_port = port;
        return 0;
}

static bool ip_valid(int family, const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(family, s, buf) == 1;
}

static bool url_valid(const char *s) {
        const char *rest = startswith(s, "https://") ?: startswith(s, "http://");
        return rest && *rest && !strpbrk(rest, " \t\r\n");
}

static bool api_host_valid(const char *s) {
        _cleanup_free_ char *h = NULL;
        uint16_t p;
        const char *slash = strchr(s, '/');
        _cleanup_free_ char *hostport = slash ? strndup(s, (size_t) (slash - s)) : strdup(s);

        if (!hostport)
                return false;
        return config_parse_host_port(hostport, 443, &h, &p) >= 0 && !strpbrk(s, " \t\r\n");
}

static const OptionDoc *doc_by_id(int id) {
        for (size_t i = 0; i < ELEMENTSOF(option_docs); i++)
                if (option_docs[i].id == id)
                        return &option_docs[i];
        return NULL;
}

static int parse_one(Config *c, int id, const char *arg) {
        const char *flag = doc_by_id(id)->name;
        int r;

        switch (id) {
        case ARG_KUBECONFIG:
                if (isempty(arg))
                        return bad_value(flag, arg, "expected a path");
                return set_string(&c->kubeconfig, arg);
        case ARG_API_SERVER:
                /* client-go takes "host:port" without a scheme too; we then use https (see
                 * kubeconfig_from_source: a token never travels in clear) */
                if (!url_valid(arg) && (strstr(arg, "://") || !api_host_valid(arg)))
                        return bad_value(flag, arg, "expected an https:// URL or HOST[:PORT]");
                return set_string(&c->api_server, arg);
        case ARG_API_TOKEN: {
                Secret *s;
                /* never echo a token back, not even in an error */
                if (isempty(arg)) {
                        fprintf(stderr, "%s: invalid value for flag --%s: empty token\n",
                                program_invocation_short_name, flag);
                        return -EINVAL;
                }
                r = secret_new(arg, strlen(arg), &s);
                if (r < 0)
                        return r;
                secret_free(c->api_token);
                c->api_token = s;
                return 0;
        }
        case ARG_INSECURE:
                return parse_bool_arg(flag, arg, &c->insecure);
        case ARG_APP_PORT:
                return parse_port_arg(flag, arg, &c->app_port);
        case ARG_METRICS_PORT:
                return parse_port_arg(flag, arg, &c->metrics_port);
        case ARG_BASE_ROLE_ARN: {
                _cleanup_free_ char *s = NULL;
                if (!config_base_arn_valid(arg))
                        return bad_value(
                                flag, arg,
                                "expected arn:<partition>:iam::<account>:role/[<path>/] (kube2iam's rule)");
                if (asprintf(&s, "%s%s", arg, endswith(arg, "/") ? "" : "/") < 0)
                        return -ENOMEM;
                free_and_replace(c->base_role_arn, s);
                return 0;
        }
        case ARG_DEFAULT_ROLE:
                return set_string(&c->default_role, arg);
        case ARG_AUTO_DISCOVER_BASE_ARN:
                return parse_bool_arg(flag, arg, &c->auto_discover_base_arn);
        case ARG_AUTO_DISCOVER_DEFAULT_ROLE:
                return parse_bool_arg(flag, arg, &c->auto_discover_default_role);
        /* kube2iam accepted empty annotation keys; no object can carry one (the API server
         * refuses empty keys), so the annotation is simply never found */
        case ARG_IAM_ROLE_KEY:
                if (isempty(arg))
                        warn_value(flag, arg,
                                   "empty annotation key: no pod has it, every pod gets the default role");
                return set_string(&c->iam_role_key, arg);
        case ARG_IAM_EXTERNAL_ID:
                if (isempty(arg))
                        warn_value(flag, arg,
                                   "empty annotation key: no pod has it, no ExternalId is ever sent");
                return set_string(&c->iam_external_id, arg);
        case ARG_IAM_ROLE_SESSION_TTL: {
                usec_t u;
                r = parse_duration_arg(flag, arg, &u);
                if (r < 0)
                        return r;
                if (2 * (u / USEC_PER_SEC) < STS_DURATION_MIN_SEC ||
                    u > (usec_t) STS_DURATION_MAX_SEC * USEC_PER_SEC / 2)
                        return bad_value(flag, arg,
                                         "STS sessions last twice this value, which must be 900..43200 s "
                                         "(7m30s..6h)");
                c->iam_role_session_ttl = u;
                return 0;
        }
        case ARG_IAM_ROLE_ERROR_TTL:
                return parse_duration_arg(flag, arg, &c->iam_role_error_ttl);
        case ARG_NAMESPACE_RESTRICTIONS:
                return parse_bool_arg(flag, arg, &c->namespace_restrictions);
        case ARG_NAMESPACE_RESTRICTION_FORMAT:
                /* kube2iam: "regexp" (any case) selects regexps, anything else is glob */
                if (strcasecmp(arg, "regexp") == 0)
                        c->namespace_restriction_format = NAMESPACE_RESTRICTION_REGEXP;
                else {
                        if (strcasecmp(arg, "glob") != 0)
                                warn_value(flag, arg,
                                           "not \"regexp\": glob patterns are used, as kube2iam does");
                        c->namespace_restriction_format = NAMESPACE_RESTRICTION_GLOB;
                }
                return 0;
        case ARG_NAMESPACE_KEY:
                if (isempty(arg))
                        warn_value(flag, arg,
                                   "empty annotation key: no namespace has it, namespace "
                                   "restrictions allow only the default role");
                return set_string(&c->namespace_key, arg);
        case ARG_CACHE_RESYNC_PERIOD:
                return parse_duration_arg(flag, arg, &c->cache_resync_period);
        case ARG_RESOLVE_DUPLICATE_CACHE_IPS:
                return parse_bool_arg(flag, arg, &c->resolve_duplicate_cache_ips);
        case ARG_NODE:
                if (is_kubernetes_expansion(arg)) {
                        warn_value(
                                flag, arg,
                                "a Kubernetes expansion from the DaemonSet manifest, which nothing fills in "
                                "on the node: ignored, this host's name is used (leave --node out, or "
                                "write the node's name)");
                        return 0;
                }
                if (isempty(arg))
                        return bad_value(
                                flag, arg,
                                "empty: kube2iam then watched every pod of the cluster; a node agent "
                                "watches its own node's pods only: leave --node out (default: this "
                                "host's name) or give the node's name");
                if (!hostname_valid(arg))
                        return bad_value(flag, arg, "expected a node name");
                r = set_string(&c->node, arg);
                if (r >= 0)
                        c->node_given = true;
                return r;
        case ARG_HOST_IP:
                if (is_kubernetes_expansion(arg)) {
                        warn_value(
                                flag, arg,
                                "a Kubernetes expansion from the DaemonSet manifest, which nothing fills in "
                                "on the node: ignored, this node's address is used (leave --host-ip out, "
                                "or write the address)");
                        return 0;
                }
                if (ip_valid(AF_INET6, arg)) {
                        /* kube2iam took any IP; an IPv6 address can only be the IPv6 redirect's target */
                        warn_value(flag, arg,
                                   "an IPv6 address: used as --host-ipv6 (the target of the --ipv6 "
                                   "redirect); the IPv4 redirect goes to this node's IPv4 address");
                        return set_string(&c->host_ipv6, arg);
                }
                if (!ip_valid(AF_INET, arg))
                        return bad_value(flag, arg, "expected an IPv4 or IPv6 address");
                return set_string(&c->host_ip, arg);
        case ARG_HOST_IPV6:
                if (!ip_valid(AF_INET6, arg))
                        return bad_value(flag, arg, "expected an IPv6 address");
                return set_string(&c->host_ipv6, arg);
        case ARG_HOST_INTERFACE: {
                _cleanup_strv_free_ char **parts = NULL, **out = NULL;
                r = strv_split(arg, ",", &parts);
                if (r < 0)
                        return r;
                if (!parts[0])
                        return bad_value(flag, arg, "expected one or more interface names or patterns");
                for (char **p = parts; *p; p++) {
                        char *pat;
                        if (config_interface_pattern(*p, &pat) < 0)
                                return bad_value(flag, *p,
                                                 "expected an interface name of at most 15 characters "
                                                 "[A-Za-z0-9_.:-], optionally ending in + or *");
                        r = strv_consume(&out, pat);
                        if (r < 0)
                                return r;
                }
                strv_free(c->host_interfaces);
                c->host_interfaces = TAKE_PTR(out);
                return 0;
        }
        case ARG_IPTABLES:
                return parse_bool_arg(flag, arg, &c->iptables);
        case ARG_IPV6:
                return parse_bool_arg(flag, arg, &c->ipv6);
        case ARG_METADATA_ADDR: {
                char *h;
                uint16_t p;
                if (config_parse_host_port(arg, 80, &h, &p) < 0)
                        return bad_value(flag, arg, "expected HOST, HOST:PORT or [IPv6]:PORT");
                free(c->metadata_host);
                c->metadata_host = h;
                c->metadata_port = p;
                return 0;
        }
        case ARG_METADATA_ALLOW: {
                _cleanup_strv_free_ char **parts = NULL;
                r = strv_split(arg, ",", &parts);
                if (r < 0)
                        return r;
                for (char **p = parts; *p; p++)
                        if ((*p)[0] != '/' || strpbrk(*p, " \t?#"))
                                return bad_value(flag, *p, "expected a path pattern starting with /");
                strv_free(c->metadata_allow);
                c->metadata_allow = TAKE_PTR(parts);
                return 0;
        }
        case ARG_BACKOFF_MAX_INTERVAL:
                return parse_duration_arg(flag, arg, &c->backoff_max_interval);
        case ARG_BACKOFF_MAX_ELAPSED_TIME:
                return parse_duration_arg(flag, arg, &c->backoff_max_elapsed_time);
        case ARG_LOG_FORMAT:
                /* kube2iam: "json" (any case) selects JSON, anything else is text */
                c->log_json = strcasecmp(arg, "json") == 0;
                if (!c->log_json && strcasecmp(arg, "text") != 0)
                        warn_value(flag, arg, "not \"json\": text lines are written, as kube2iam does");
                return 0;
        case ARG_LOG_LEVEL:
                r = log_level_from_string(arg);
                if (r < 0)
                        return bad_value(flag, arg, "expected debug, info, warn, error or fatal");
                c->log_level = r;
                return 0;
        case ARG_VERBOSE:
                return parse_bool_arg(flag, arg, &c->verbose);
        case ARG_DEBUG:
                return parse_bool_arg(flag, arg, &c->debug);
        case ARG_USE_REGIONAL_STS_ENDPOINT:
                return parse_bool_arg(flag, arg, &c->use_regional_sts_endpoint);
        case ARG_VERSION:
                return parse_bool_arg(flag, arg, &c->show_version);
        case ARG_HELP:
                c->show_help = true;
                return 0;
        case ARG_STS_ENDPOINT:
                if (!url_valid(arg))
                        return bad_value(flag, arg, "expected an https:// or http:// URL");
                return set_string(&c->sts_endpoint, arg);
        case ARG_LISTEN_ADDRESS:
                if (!ip_valid(AF_INET, arg) && !ip_valid(AF_INET6, arg))
                        return bad_value(flag, arg, "expected an IPv4 or IPv6 address");
                return set_string(&c->listen_address, arg);
        case ARG_IMDSV2_REQUIRED:
                return parse_bool_arg(flag, arg, &c->imdsv2_required);
        case ARG_READY_SYNC_TIMEOUT:
                return parse_duration_arg(flag, arg, &c->ready_sync_timeout);
        case ARG_POD_EVENTS:
                return parse_bool_arg(flag, arg, &c->pod_events);
        case ARG_POD_STORE_MAX_STALE: {
                usec_t u;
                int q = parse_duration_arg(flag, arg, &u);
                if (q < 0)
                        return q;
                /* 0 would stop vouching at the first routine 410; no value turns the check off */
                if (u < USEC_PER_SEC || u > POD_STORE_MAX_STALE_MAX_USEC)
                        return bad_value(flag, arg, "expected a duration from 1s to 24h");
                c->pod_store_max_stale = u;
                return 0;
        }
        case ARG_PREFETCH:
                return parse_bool_arg(flag, arg, &c->prefetch);
        case ARG_SESSION_TAGS:
                if (!arg || streq(arg, "true")) {
                        c->session_tags = SESSION_TAGS_ALL;
                        return 0;
                }
                if (streq(arg, "false")) {
                        c->session_tags = 0;
                        return 0;
                }
                if (session_tags_parse(arg, &c->session_tags) < 0)
                        return bad_value(flag, arg, "expected a comma-separated list of session tag keys");
                return 0;
        case ARG_SESSION_POLICIES:
                return parse_bool_arg(flag, arg, &c->session_policies);
        case ARG_SERVICE_ACCOUNT_ROLES:
                return parse_bool_arg(flag, arg, &c->service_account_roles);
        case ARG_NAMESPACE_DEFAULT_ROLES:
                return parse_bool_arg(flag, arg, &c->namespace_default_roles);
        case ARG_SESSION_NAME:
                if (!streq(arg, "kube2iam") && !streq(arg, "pod"))
                        return bad_value(flag, arg, "expected kube2iam or pod");
                c->pod_session_names = streq(arg, "pod");
                return 0;
        case ARG_CLUSTER_NAME:
        case ARG_CLUSTER_ARN:
                if (isempty(arg) || !sts_tag_value_valid(arg))
                        return bad_value(flag, arg, "expected a value STS accepts as a session tag value");
                return set_string(id == ARG_CLUSTER_NAME ? &c->cluster_name : &c->cluster_arn, arg);
        case ARG_STS_RATE: {
                char *end;
                double d;
                errno = 0;
                d = strtod(arg, &end);
                if (errno != 0 || end == arg || *end || !isfinite(d) || d <= 0 || d > STS_RATE_MAX)
                        return bad_value(flag, arg, "expected calls per second, > 0 and <= 1000");
                c->sts_rate = d;
                return 0;
        }
        case ARG_STS_BURST: {
                char *end;
                unsigned long v;
                errno = 0;
                v = strtoul(arg, &end, 10);
                if (errno != 0 || end == arg || *end || !isdigit((unsigned char) arg[0]) || v < 1 ||
                    v > 10000)
                        return bad_value(flag, arg, "expected a whole number 1..10000");
                c->sts_burst = (unsigned) v;
                return 0;
        }
        }
        return -EINVAL;
}

static bool nft_command_valid(const char *s) {
        return streq(s, "install") || streq(s, "remove") || streq(s, "check");
}

/* kube2iam-nft: a command, and nothing about the daemon's settings (see nft_uses_flag()). */
static int validate_nft(Config *c) {
        if (!c->command && !c->show_help && !c->show_version) {
                fprintf(stderr, "%s: missing command: install, remove or check\n",
                        program_invocation_short_name);
                return -EINVAL;
        }
        if (c->command && !nft_command_valid(c->command)) {
                fprintf(stderr, "%s: unknown command \"%s\": expected install, remove or check\n",
                        program_invocation_short_name, c->command);
                return -EINVAL;
        }
        if (c->verbose)
                c->log_level = LOG_DEBUG;
        return 0;
}

static int validate(Config *c, ConfigProgram program) {
        if (program == CONFIG_PROGRAM_NFT)
                return validate_nft(c);
        if (c->auto_discover_base_arn && c->base_role_arn) {
                fprintf(stderr,
                        "%s: flags --auto-discover-base-arn and --base-role-arn conflict: give one\n",
                        program_invocation_short_name);
                return -EINVAL;
        }
        if (c->auto_discover_default_role && c->default_role) {
                fprintf(stderr,
                        "%s: flags --auto-discover-default-role and --default-role conflict: give one\n",
                        program_invocation_short_name);
                return -EINVAL;
        }
        if (isempty(c->node)) {
                fprintf(stderr, "%s: flag --node is required: this host's name could not be read\n",
                        program_invocation_short_name);
                return -EINVAL;
        }
        if (c->insecure && program == CONFIG_PROGRAM_DAEMON)
                fprintf(stderr, "%s: warning: --insecure: %s\n", program_invocation_short_name,
                        c->kubeconfig || (c->api_server && c->api_token)
                                ? "the API server's certificate is not verified"
                                : "no effect without --kubeconfig or --api-server with --api-token (as in "
                                  "kube2iam, whose in-cluster client ignored it)");
        if (c->api_server && c->kubeconfig)
                fprintf(stderr,
                        "%s: warning: --api-server is ignored with --kubeconfig, as kube2iam does: "
                        "the kubeconfig names the server\n",
                        program_invocation_short_name);
        else if (c->api_server && !c->api_token)
                fprintf(stderr,
                        "%s: warning: --api-server without --api-token: kube2iam then ignored --api-server "
                        "and "
                        "used its in-cluster service account; on the node the kubelet's kubeconfig plays "
                        "that part and is used instead (give --kubeconfig to choose one)\n",
                        program_invocation_short_name);
        if (c->verbose)
                c->log_level = LOG_DEBUG;
        /* kube2iam's help says "(default: same as kube2iam server port)": follow --app-port, so a
         * daemon moved to another port does not also grab 8181 for its metrics */
        if (c->metrics_port == 0)
                c->metrics_port = c->app_port;
        return 0;
}

/* The flags kube2iam-nft acts on. It shares $KUBE2IAM_ARGS with the daemon, so it accepts every
 * daemon flag but neither parses nor validates the others' values: a daemon-only setting (an
 * --iam-role-session-ttl the daemon would reject, say) must not stop the redirect from being
 * installed, checked or removed. An unknown flag is still an error for both. */
static bool nft_uses_flag(int id) {
        switch (id) {
        case ARG_APP_PORT:
        case ARG_HOST_IP:
        case ARG_HOST_IPV6:
        case ARG_HOST_INTERFACE:
        case ARG_IPV6:
        case ARG_METADATA_ADDR:
        case ARG_LOG_FORMAT:
        case ARG_LOG_LEVEL:
        case ARG_VERBOSE:
        case ARG_VERSION:
        case ARG_HELP:
                return true;
        default:
                return false;
        }
}

int config_parse_strv(Config *c, ConfigProgram program, const char *env_args, int argc, char *argv[]) {
        struct option longopts[ELEMENTSOF(option_docs) + 1] = {};
        _cleanup_strv_free_ char **envv = NULL;
        _cleanup_free_ char **all = NULL;
        size_t n_env = 0, n = 0;
        int r, opt;

        if (!isempty(env_args)) {
                r = split_args(env_args, &envv);
                if (r == -EINVAL) {
                        fprintf(stderr, "%s: $%s has an unterminated quote\n", program_invocation_short_name,
                                CONFIG_ARGS_ENV);
                        return r;
                }
                if (r < 0)
                        return r;
                n_env = strv_length(envv);
        }

        /* argv[0], then $KUBE2IAM_ARGS, then the command line: later flags win */
        all = calloc(n_env + (size_t) argc + 2, sizeof(char *));
        if (!all)
                return -ENOMEM;
        all[n++] = argc > 0 ? argv[0] : (char *) "kube2iam";
        for (size_t i = 0; i < n_env; i++)
                all[n++] = envv[i];
        for (int i = 1; i < argc; i++)
                all[n++] = argv[i];

        for (size_t i = 0; i < ELEMENTSOF(option_docs); i++)
                longopts[i] = (struct option){ option_docs[i].name, option_docs[i].has_arg, NULL,
                                               option_docs[i].id };

        optind = 0; /* full re-initialisation, so tests can parse repeatedly */
        opterr = 0;
        while ((opt = getopt_long(n, all, "h", longopts, NULL)) >= 0) {
                if (opt == 'h')
                        opt = ARG_HELP;
                if (opt == '?' || opt == ':') {
                        const char *bad = all[optind - 1];
                        if (optopt >= ARG_KUBECONFIG && doc_by_id(optopt))
                                fprintf(stderr, "%s: flag needs an argument: --%s\n",
                                        program_invocation_short_name, doc_by_id(optopt)->name);
                        else
                                fprintf(stderr, "%s: unknown flag: %s\n", program_invocation_short_name,
                                        bad);
                        return -EINVAL;
                }
                if (program == CONFIG_PROGRAM_NFT && !nft_uses_flag(opt))
                        continue;
                r = parse_one(c, opt, optarg);
                if (r < 0)
                        return r;
        }

        /* kube2iam (pflag) ignored words that are not flags: "--debug true" is --debug and a stray
         * "true". kube2iam-nft's last word is its command. */
        for (int i = optind; i < (int) n; i++) {
                if (program == CONFIG_PROGRAM_NFT && i == (int) n - 1) {
                        r = set_string(&c->command, all[i]);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (program == CONFIG_PROGRAM_NFT && nft_command_valid(all[i])) {
                        fprintf(stderr, "%s: more than one command: %s and %s\n",
                                program_invocation_short_name, all[i], all[n - 1]);
                        return -EINVAL;
                }
                fprintf(stderr,
                        "%s: warning: ignoring argument \"%s\", as kube2iam did; a flag's value must be "
                        "joined with '=' (\"--debug true\" is --debug and a stray \"true\": write "
                        "--debug=false to turn a flag off)\n",
                        program_invocation_short_name, all[i]);
        }
        return validate(c, program);
}

int config_parse(Config *c, ConfigProgram program, int argc, char *argv[]) {
        return config_parse_strv(c, program, getenv(CONFIG_ARGS_ENV), argc, argv);
}

static void print_default(const Config *d, int id, FILE *f) {
        char buf[DURATION_MAX];

        switch (id) {
        case ARG_APP_PORT:
                fprintf(f, " (default %u)", d->app_port);
                break;
        case ARG_METRICS_PORT:
                fprintf(f, " (default: the --app-port)");
                break;
        case ARG_BACKOFF_MAX_ELAPSED_TIME:
                fprintf(f, " (default %s)", format_duration(d->backoff_max_elapsed_time, buf, sizeof buf));
                break;
        case ARG_BACKOFF_MAX_INTERVAL:
                fprintf(f, " (default %s)", format_duration(d->backoff_max_interval, buf, sizeof buf));
                break;
        case ARG_CACHE_RESYNC_PERIOD:
                fprintf(f, " (default %s)", format_duration(d->cache_resync_period, buf, sizeof buf));
                break;
        case ARG_HOST_INTERFACE:
                fprintf(f, " (default \"docker0\")");
                break;
        case ARG_IAM_EXTERNAL_ID:
                fprintf(f, " (default \"%s\")", d->iam_external_id);
                break;
        case ARG_IAM_ROLE_KEY:
                fprintf(f, " (default \"%s\")", d->iam_role_key);
                break;
        case ARG_NAMESPACE_KEY:
                fprintf(f, " (default \"%s\")", d->namespace_key);
                break;
        case ARG_IAM_ROLE_ERROR_TTL:
                fprintf(f, " (default %s)", format_duration(d->iam_role_error_ttl, buf, sizeof buf));
                break;
        case ARG_IAM_ROLE_SESSION_TTL:
                fprintf(f, " (default %s)", format_duration(d->iam_role_session_ttl, buf, sizeof buf));
                break;
        case ARG_READY_SYNC_TIMEOUT:
                fprintf(f, " (default %s)", format_duration(d->ready_sync_timeout, buf, sizeof buf));
                break;
        case ARG_POD_STORE_MAX_STALE:
                fprintf(f, " (default %s)", format_duration(d->pod_store_max_stale, buf, sizeof buf));
                break;
        case ARG_LOG_FORMAT:
                fprintf(f, " (default \"text\")");
                break;
        case ARG_LOG_LEVEL:
                fprintf(f, " (default \"info\")");
                break;
        case ARG_METADATA_ADDR:
                fprintf(f, " (default \"%s\")", d->metadata_host);
                break;
        case ARG_NAMESPACE_RESTRICTION_FORMAT:
                fprintf(f, " (default \"glob\")");
                break;
        case ARG_KUBECONFIG: {
                static const char *const paths[] = { KUBECONFIG_DEFAULT_PATHS };
                fputs(" (default: with no --api-server, the first that exists of", f);
                for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                        fprintf(f, "%s %s", i > 0 ? "," : "", paths[i]);
                fputs(")", f);
                break;
        }
        case ARG_NODE:
                fprintf(f,
                        " (default: the node of the kubeconfig's client certificate, system:node:<name>; "
                        "else this host's name, \"%s\")",
                        strna(d->node));
                break;
        case ARG_PREFETCH:
                fprintf(f, " (default true)");
                break;
        case ARG_SESSION_TAGS:
                fprintf(f, " (default: none; alone: all six)");
                break;
        case ARG_SESSION_NAME:
                fprintf(f, " (default kube2iam)");
                break;
        case ARG_SESSION_POLICIES:
        case ARG_SERVICE_ACCOUNT_ROLES:
        case ARG_NAMESPACE_DEFAULT_ROLES:
                fprintf(f, " (default false)");
                break;
        case ARG_STS_RATE:
                fprintf(f, " (default %g)", d->sts_rate);
                break;
        case ARG_STS_BURST:
                fprintf(f, " (default %u)", d->sts_burst);
                break;
        default:
                break;
        }
}

static bool option_matters_to_nft(int id) {
        switch (id) {
        case ARG_APP_PORT:
        case ARG_HOST_INTERFACE:
        case ARG_HOST_IP:
        case ARG_HOST_IPV6:
        case ARG_IPV6:
        case ARG_METADATA_ADDR:
        case ARG_LOG_FORMAT:
        case ARG_LOG_LEVEL:
        case ARG_VERBOSE:
        case ARG_HELP:
        case ARG_VERSION:
                return true;
        default:
                return false;
        }
}

void config_help(ConfigProgram program, FILE *f) {
        Config d;

        if (config_init(&d) < 0)
                return;
        if (program == CONFIG_PROGRAM_NFT)
                fprintf(f,
                        "Usage: %s [flags] install|remove|check\n\n"
                        "Installs, removes or checks the nftables redirect of the metadata service to "
                        "kube2iam.\n"
                        "Accepts every kube2iam flag (it reads the same $%s); these are the\n"
                        "ones that change what it does.\n\n"
                        "Exit status: 0 done (check: the table is exactly what install writes),\n"
                        "  1 check found the table missing or different, 2 bad flags,\n"
                        "  3 no permission (CAP_NET_ADMIN needed), 4 nf_tables not available,\n"
                        "  5 the kernel rejected the batch, 6 the host address could not be determined.\n\n",
                        program_invocation_short_name, CONFIG_ARGS_ENV);
        else
                fprintf(f,
                        "Usage: %s [flags]\n"
                        "       %s explain [--json] POD|NAMESPACE/POD|IP\n"
                        "       %s doctor [--skip-cluster] [flags]\n\n"
                        "Gives each Kubernetes pod the IAM role named in its annotation by answering its\n"
                        "instance-metadata requests. Flags can also come from $%s (flags given here "
                        "win).\n\n"
                        "Commands (as root, on the node):\n"
                        "  explain [--json] QUERY             Why the pod (POD, NAMESPACE/POD or address)\n"
                        "                                     gets its role or none, asked of the running\n"
                        "                                     daemon. Exit status 0: it would get\n"
                        "                                     credentials now, 1: it would not, 2: bad\n"
                        "                                     usage, 3: the daemon did not answer.\n"
                        "  doctor [--skip-cluster] [flags]    Checks the node: the redirect, the upstream\n"
                        "                                     IMDS, STS, the kubeconfig, the daemon "
                        "(READY,\n"
                        "                                     synced, port, pod interfaces); one line\n"
                        "                                     each, with the fix. Exit status 0: all\n"
                        "                                     passed. --skip-cluster: no cluster here.\n\n"
                        "Flags:\n",
                        program_invocation_short_name, program_invocation_short_name,
                        program_invocation_short_name, CONFIG_ARGS_ENV);
        for (size_t i = 0; i < ELEMENTSOF(option_docs); i++) {
                const OptionDoc *o = &option_docs[i];
                char left[64];

                /* kube2iam-nft accepts every flag (it reads the daemon's KUBE2IAM_ARGS) but lists
                 * only those that change what it does */
                if (program == CONFIG_PROGRAM_NFT && !option_matters_to_nft(o->id))
                        continue;

                snprintf(left, sizeof left, "--%s%s%s", o->name, o->value_name ? " " : "",
                         strempty(o->value_name));
                fprintf(f, "  %-34s %s", left, o->help);
                print_default(&d, o->id, f);
                fputc('\n', f);
        }
        config_done(&d);
}

void config_redirect_options(const Config *c, RedirectOptions *ret) {
        *ret = (RedirectOptions){ .interfaces = c->host_interfaces,
                                  .app_port = c->app_port,
                                  .metadata_host = c->metadata_host,
                                  .metadata_port = c->metadata_port,
                                  .host_ip = c->host_ip,
                                  .host_ipv6 = c->host_ipv6,
                                  .ipv6 = c->ipv6 };
}

void config_kubeconfig_source(const Config *c, KubeconfigSource *ret) {
        *ret = (KubeconfigSource){ .kubeconfig = c->kubeconfig,
                                   .api_server = c->api_server,
                                   .api_token = c->api_token,
                                   .insecure = c->insecure };
}
