/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Netlink transport of the redirect (libmnl): owns one netlink socket, sends a batch and drains
 * every ACK, matching each kernel error to the message that caused it by sequence number (as
 * nftables' src/mnl.c does), and runs dump requests (nf_tables objects, routes, addresses)
 * with a bounded wait for every reply. */

#include <stdint.h>

#include "redirect-batch.h"

struct nlmsghdr;

typedef struct RedirectNetlink RedirectNetlink;

/* Every reply we wait for comes from the local kernel; 10 s only guards against a wedged one. */
#define REDIRECT_NETLINK_TIMEOUT_MSEC 10000

/* A request we send outside a batch: a header, a family header and at most a table name. */
#define REDIRECT_NETLINK_REQUEST_BYTES 512

/* bus: NETLINK_NETFILTER or NETLINK_ROUTE. -EPROTONOSUPPORT when nfnetlink is missing. */
int redirect_netlink_open(int bus, RedirectNetlink **ret);
RedirectNetlink *redirect_netlink_close(RedirectNetlink *nl);
static inline void redirect_netlink_closep(RedirectNetlink **nl) {
        redirect_netlink_close(*nl);
}
/* A fresh sequence number for a request. */
uint32_t redirect_netlink_next_seq(RedirectNetlink *nl);

/* Sends b and reads until every message asking for an ACK was answered (or the kernel
 * rejected the batch as a whole). Logs each kernel error with the message it names; returns
 * 0, -EPERM (no CAP_NET_ADMIN), -EOPNOTSUPP (nf_tables or its NAT support missing) or -EPROTO
 * (any other rejection). */
int redirect_netlink_send_batch(RedirectNetlink *nl, const RedirectBatch *b);

/* Sends the dump request req (its nlmsg_seq set by the caller from redirect_netlink_next_seq())
 * and calls cb for every reply message until NLMSG_DONE. cb returns <0 to stop with that error.
 * Returns -EINTR when the kernel flagged the dump as interrupted (a concurrent change: retry). */
typedef int (*redirect_dump_cb)(const struct nlmsghdr *nlh, void *userdata);
int redirect_netlink_dump(RedirectNetlink *nl, struct nlmsghdr *req, redirect_dump_cb cb, void *userdata);
