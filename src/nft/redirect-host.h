/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The default target of the redirect when --host-ip (or --host-ipv6) is not given: the address
 * the upstream IMDS reports for this instance (local-ipv4, or ipv6), fetched with one short,
 * bounded IMDSv2 exchange; failing that, the address of the interface that holds the default
 * route, read over rtnetlink. Owns nothing beyond the call. */

#include <stdint.h>

/* Whole IMDS exchange budget per request: a node's IMDS answers in milliseconds; when it does not
 * answer (not on EC2, a test namespace) we fall back to the route quickly. */
#define REDIRECT_IMDS_TIMEOUT_MSEC 2000
#define REDIRECT_IMDS_CONNECT_TIMEOUT_MSEC 1000
/* An address is at most 39 characters; anything longer is not an answer we can use. */
#define REDIRECT_IMDS_MAX_BODY 64
/* Short-lived token: we use it for one GET right away. */
#define REDIRECT_IMDS_TOKEN_TTL_SEC 60

/* family AF_INET or AF_INET6; ret points to a struct in_addr / in6_addr. Asks the metadata
 * service at metadata_host:metadata_port first. Returns 0, or -EADDRNOTAVAIL when neither source
 * gave an address (logged by the caller). */
int redirect_host_address(const char *metadata_host, uint16_t metadata_port, int family, void *ret);

/* The two sources on their own (tests, diagnostics). */
int redirect_host_from_imds(const char *host, uint16_t port, int family, void *ret);
int redirect_host_from_default_route(int family, void *ret);
