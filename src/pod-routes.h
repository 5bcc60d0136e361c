/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* PodRoutes: which pods the redirect does not catch. kube2iam-nft's DNAT matches the interface a
 * pod's packets arrive on (--host-interface); that is the interface the node routes the pod's
 * address through. A pod routed through another interface (the default docker0 on a Calico or
 * VPC-CNI node, where pods sit behind cali* or eni*) reaches the real metadata service with the
 * node's role, or nothing if the node blocks it. Owns the reading of the kernel's IPv4 routing
 * table (/proc/self/net/route, readable inside the service's sandbox, unlike netlink), the
 * longest-prefix lookup and the interface-pattern match; the daemon reports the result in the
 * journal and STATUS=. IPv6-only pods are not checked. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct Store Store;

/* The kernel's IPv4 table, as the daemon reads it. */
#define POD_ROUTES_TABLE_PATH "/proc/self/net/route"
/* A node has a route per pod with Calico or VPC-CNI (~250) plus a few of its own; 8192 lines is
 * far beyond that and bounds what a huge table costs per check. */
#define POD_ROUTES_MAX_ROUTES 8192U
/* IFNAMSIZ */
#define POD_ROUTES_IFNAME_MAX 16U

typedef struct PodRouteTable PodRouteTable;

typedef struct PodRoutesReport {
        size_t n_pods;    /* pods checked: not host-network, with an IPv4 address, routed */
        size_t n_outside; /* of which routed through an interface no pattern matches */
        /* the first such pod, for the message */
        char example_pod[256]; /* namespace/name */
        char example_ip[INET_ADDRSTRLEN];
        char example_ifname[POD_ROUTES_IFNAME_MAX];
} PodRoutesReport;

/* Parses the table at path (the /proc/net/route format). -EFBIG beyond POD_ROUTES_MAX_ROUTES,
 * -EINVAL on a line it cannot read. */
int pod_routes_read(const char *path, PodRouteTable **ret);
PodRouteTable *pod_routes_free(PodRouteTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(PodRouteTable *, pod_routes_free);

/* The interface of the most specific route to a (lowest metric among equals); NULL: no route. */
const char *pod_routes_interface(const PodRouteTable *t, struct in_addr a);

/* Whether ifname matches one of patterns as nftables' iifname does ("cali*": a prefix,
 * otherwise the whole name). */
bool pod_routes_interface_matches(char *const *patterns, const char *ifname);

/* Checks every pod of the store against t and patterns. */
void pod_routes_check(const Store *s, const PodRouteTable *t, char *const *patterns, PodRoutesReport *ret);
