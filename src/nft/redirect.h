/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The redirect: owns the nftables tables `ip kube2iam` and `ip6 kube2iam` that DNAT pods'
 * metadata requests (169.254.169.254:80, and fd00:ec2::254:80 with --ipv6) to kube2iam.
 * redirect_install() writes them in ONE netlink batch that the kernel applies whole or not at
 * all (add table; delete table; add table, chain, rules: there is never a moment without the
 * rule); redirect_remove() deletes them and nothing else; redirect_check() reads them back and
 * says whether they are exactly what install would write. The tables carry no owner flag: they
 * outlive the process that wrote them (docs/design.md, invariant 1).
 * Both kube2iam-nft and the daemon's --iptables flag call these. libnftnl and libmnl are used
 * only in src/nft/. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define REDIRECT_TABLE "kube2iam"
#define REDIRECT_CHAIN "prerouting"
/* dstnat (NF_IP_PRI_NAT_DST, -100) - 10: runs before kube-proxy's and iptables-nft's DNAT at
 * dstnat, so a pod's metadata request is ours whatever else the node installs. */
#define REDIRECT_CHAIN_PRIORITY (-110)
/* The IMDS IPv6 address (Nitro instances, IPv6 subnets). */
#define REDIRECT_IMDS_IPV6 "fd00:ec2::254"
/* Pods reach IMDS on port 80 whatever --metadata-addr's port (kube2iam's rule: --dport 80). */
#define REDIRECT_IMDS_PORT 80
/* A node has a handful of pod interface patterns (cali+, eni+, docker0...); 64 bounds the batch
 * (2 families x 64 rules fit one send) while leaving room for any real CNI setup. */
#define REDIRECT_MAX_INTERFACES 64

/* kube2iam-nft's exit statuses, as config_help(CONFIG_PROGRAM_NFT) documents them. */
typedef enum RedirectExit {
        REDIRECT_EXIT_OK = 0,
        REDIRECT_EXIT_MISMATCH = 1,    /* check: missing or different */
        REDIRECT_EXIT_USAGE = 2,       /* bad flags (CONFIG_EXIT_USAGE) */
        REDIRECT_EXIT_PERMISSION = 3,  /* CAP_NET_ADMIN missing */
        REDIRECT_EXIT_NO_NFTABLES = 4, /* nf_tables (or its NAT support) not available */
        REDIRECT_EXIT_REJECTED = 5,    /* the kernel rejected the batch, or netlink failed */
        REDIRECT_EXIT_NO_HOST = 6,     /* the host address could not be determined */
} RedirectExit;

/* What the callers' flags say about the redirect (kube2iam-nft's and the daemon's, filled by
 * config_redirect_options()); strings borrowed. */
typedef struct RedirectOptions {
        char *const *interfaces;   /* --host-interface: nft patterns (trailing '*' for a prefix) */
        uint16_t app_port;         /* --app-port: the DNAT target port */
        const char *metadata_host; /* --metadata-addr host: the address pods use, and IMDS for lookups */
        uint16_t metadata_port;    /* --metadata-addr port */
        const char *host_ip;       /* --host-ip, NULL: look it up */
        const char *host_ipv6;     /* --host-ipv6, NULL: look it up (with ipv6) */
        bool ipv6;                 /* --ipv6 */
} RedirectOptions;

/* What install writes, fully resolved (no network needed to turn it into a batch). */
typedef struct RedirectSpec {
        char *const *interfaces; /* nft patterns (trailing '*' for a prefix); borrowed */
        uint16_t port;           /* --app-port */
        struct in_addr imds4;    /* --metadata-addr host: the daddr pods use */
        struct in_addr host4;    /* --host-ip: the DNAT target */
        bool ipv6;               /* --ipv6: also write table ip6 kube2iam */
        struct in6_addr imds6;   /* fd00:ec2::254 */
        struct in6_addr host6;   /* --host-ipv6 */
} RedirectSpec;

/* Fills ret from o. With resolve, a missing --host-ip (and --host-ipv6 with --ipv6) is found
 * (upstream IMDS, else the default route's interface; see redirect-host.h). Errors are logged:
 * -EINVAL bad input (exit 2), -EADDRNOTAVAIL no host address (exit 6). ret borrows
 * o->interfaces. */
int redirect_spec_from_options(const RedirectOptions *o, bool resolve, RedirectSpec *ret);

/* Each logs its failure once and returns a negative errno that redirect_exit_status() maps:
 * -EINVAL bad input, -EPERM/-EACCES no permission, -EOPNOTSUPP/-EPROTONOSUPPORT/-EAFNOSUPPORT
 * nf_tables missing, -EADDRNOTAVAIL no host address, -EPROTO the kernel rejected the batch
 * (its own error is in the log line), anything else a netlink or memory failure. */
int redirect_install(const RedirectOptions *o);
int redirect_remove(const RedirectOptions *o);
/* 1 when the installed tables are exactly what redirect_install(o) would write (and, without
 * --ipv6, no ip6 table of ours exists), 0 when missing or different (the difference is logged
 * at notice level), <0 on error. */
int redirect_check(const RedirectOptions *o);

/* Same three, from a resolved spec (the daemon may resolve once and reuse it). */
int redirect_install_spec(const RedirectSpec *s);
int redirect_check_spec(const RedirectSpec *s);

/* Maps a result of the functions above to kube2iam-nft's exit status. */
RedirectExit redirect_exit_status(int r);
