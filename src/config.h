/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Config: every command-line setting, with kube2iam's flag names, meanings and defaults
 * (docs/compatibility.md, "Flags") plus ours. Owns the parsing of argv and
 * of $KUBE2IAM_ARGS (the one variable the systemd unit's EnvironmentFile= sets; parsed first,
 * so flags on the command line win) and the validation of every value: a bad value is one
 * line on stderr naming the flag, and exit status 2. Both binaries (kube2iam, kube2iam-nft)
 * read the same settings; kube2iam-nft accepts every flag but validates only those it acts on. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "secret.h"
#include "time-util.h"

/* The environment variable holding extra arguments (set by EnvironmentFile=/etc/default/kube2iam). */
#define CONFIG_ARGS_ENV "KUBE2IAM_ARGS"
#define CONFIG_EXIT_USAGE 2

/* --pod-store-max-stale beyond a day is no bound an operator means: the check stays on. */
#define POD_STORE_MAX_STALE_MAX_USEC (24 * USEC_PER_HOUR)

/* Bounds for STS DurationSeconds (= 2 x --iam-role-session-ttl), from the AssumeRole API. */
#define STS_DURATION_MIN_SEC 900
#define STS_DURATION_MAX_SEC 43200

typedef enum NamespaceRestrictionFormat {
        NAMESPACE_RESTRICTION_GLOB,
        NAMESPACE_RESTRICTION_REGEXP,
} NamespaceRestrictionFormat;

typedef enum ConfigProgram {
        CONFIG_PROGRAM_DAEMON,
        CONFIG_PROGRAM_NFT,
} ConfigProgram;

typedef struct Config {
        /* Kubernetes */
        char *kubeconfig;  /* --kubeconfig */
        char *api_server;  /* --api-server */
        Secret *api_token; /* --api-token */
        bool insecure;     /* --insecure */
        char *node;        /* --node; default: the kubelet certificate's node, else this host's name */
        bool node_given;   /* --node was given (else the daemon may take the certificate's) */
        usec_t cache_resync_period; /* --cache-resync-period (kept for compatibility; watches need none) */
        bool resolve_duplicate_cache_ips; /* --resolve-duplicate-cache-ips */
        bool pod_events;                  /* --pod-events: Events on pods refused a role or failed by STS */
        usec_t ready_sync_timeout; /* --ready-sync-timeout: max wait for the first pod list before READY=1 */
        usec_t pod_store_max_stale; /* --pod-store-max-stale: see KUBE_POD_STORE_MAX_STALE_USEC */

        /* Serving */
        uint16_t app_port;      /* --app-port */
        uint16_t metrics_port;  /* --metrics-port; == app_port means /metrics on the app listener */
        char *listen_address;   /* --listen-address; NULL = all addresses (when not socket-activated) */
        char *metadata_host;    /* --metadata-addr host part (IPv6 without brackets) */
        uint16_t metadata_port; /* --metadata-addr port part, default 80 */
        bool imdsv2_required;   /* --imdsv2-required */
        char **metadata_allow;  /* --metadata-allow: patterns over the metadata table; NULL = its defaults */
        bool debug;             /* --debug: /debug/store */

        /* Roles */
        char *base_role_arn;             /* --base-role-arn, validated, '/'-terminated */
        char *default_role;              /* --default-role */
        bool auto_discover_base_arn;     /* --auto-discover-base-arn */
        bool auto_discover_default_role; /* --auto-discover-default-role */
        char *iam_role_key;              /* --iam-role-key (pod annotation) */
        char *iam_external_id;           /* --iam-external-id (pod annotation key) */
        bool namespace_restrictions;     /* --namespace-restrictions */
        NamespaceRestrictionFormat namespace_restriction_format; /* --namespace-restriction-format */
        char *namespace_key;                                     /* --namespace-key (namespace annotation) */
        usec_t backoff_max_interval;                             /* --backoff-max-interval */
        usec_t backoff_max_elapsed_time;                         /* --backoff-max-elapsed-time */
        bool prefetch;                /* --prefetch (default true): warm credentials when a pod appears */
        unsigned session_tags;        /* --session-tags: SessionTag bits (session-tags.h), 0 for none */
        char *cluster_name;           /* --cluster-name: the eks-cluster-name tag */
        char *cluster_arn;            /* --cluster-arn: the eks-cluster-arn tag */
        bool pod_session_names;       /* --session-name=pod (false: kube2iam's names) */
        bool session_policies;        /* --session-policies: namespaces' session-policy-arns annotation */
        bool service_account_roles;   /* --service-account-roles: the ServiceAccount's IRSA role */
        bool namespace_default_roles; /* --namespace-default-roles: the namespace's default-role */

        /* AWS */
        usec_t iam_role_session_ttl; /* --iam-role-session-ttl; STS DurationSeconds = 2 x this */
        usec_t iam_role_error_ttl;   /* --iam-role-error-ttl */
        char *sts_endpoint;          /* --sts-endpoint: STS base URL */
        bool use_regional_sts_endpoint; /* --use-regional-sts-endpoint (no effect, as in kube2iam: always regional) */
        double sts_rate;                /* --sts-rate: AssumeRole calls per second (token bucket) */
        unsigned sts_burst;             /* --sts-burst */

        /* Network redirect (kube2iam-nft, and the daemon with --iptables) */
        bool iptables;          /* --iptables: the daemon installs the nftables redirect itself */
        char *host_ip;          /* --host-ip */
        char **host_interfaces; /* --host-interface, comma-separated; '+' already turned into '*' */
        bool ipv6;              /* --ipv6: also redirect fd00:ec2::254 */
        char *host_ipv6;        /* --host-ipv6: target of the IPv6 redirect */

        /* Logging */
        int log_level; /* --log-level (syslog level), --verbose forces LOG_DEBUG */
        bool log_json; /* --log-format */
        bool verbose;

        /* Set while parsing */
        bool show_version;
        bool show_help;
        char *command; /* kube2iam-nft: install | remove | check */
} Config;

/* Fills c with the defaults. */
int config_init(Config *c);
/* The redirect's flags (nft/redirect.h), borrowed from c. */
typedef struct RedirectOptions RedirectOptions;
void config_redirect_options(const Config *c, RedirectOptions *ret);
/* Where the kubeconfig comes from (kube/kubeconfig.h), borrowed from c. */
typedef struct KubeconfigSource KubeconfigSource;
void config_kubeconfig_source(const Config *c, KubeconfigSource *ret);
void config_done(Config *c);

/* Parses $KUBE2IAM_ARGS then argv into c (which config_init() prepared) and validates the result.
 * On bad input writes one line naming the flag to stderr and returns -EINVAL: the caller exits
 * with CONFIG_EXIT_USAGE. */
int config_parse(Config *c, ConfigProgram program, int argc, char *argv[]);
/* Same, from an explicit argument vector and env string; for tests. */
int config_parse_strv(Config *c, ConfigProgram program, const char *env_args, int argc, char *argv[]);

void config_help(ConfigProgram program, FILE *f);

/* Validators shared with other modules. */
/* kube2iam's base ARN rule: ^arn:(\w|-)*:iam::\d+:role\/?(\w+|-|\/|\.)*$ */
bool config_base_arn_valid(const char *arn);
/* An interface pattern for nftables: [A-Za-z0-9_.:-]+ with an optional trailing '*' (or kube2iam's '+'),
 * at most IFNAMSIZ-1 characters. Writes the nft form (trailing '*') to a new string. */
int config_interface_pattern(const char *in, char **ret);
/* "host", "host:port", "[v6]:port" or a bare IPv6 address. */
int config_parse_host_port(const char *s, uint16_t default_port, char **ret_host, uint16_t *ret_port);
int config_parse_port(const char *s, uint16_t *ret);
/* STS DurationSeconds for the configured session TTL. */
static inline unsigned config_sts_duration_sec(const Config *c) {
        return (unsigned) (2 * c->iam_role_session_ttl / USEC_PER_SEC);
}
