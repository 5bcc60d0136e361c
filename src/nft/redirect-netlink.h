/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Netlink transport of the redirect (libmnl): owns one netlink socket, sends a batch and drains
 * every ACK, matching each kernel error to the message that caused it by sequence number (as
 * nftables' src/mnl.c does), and runs dump requests (nf_tables objects, routes, addresses)
 * with a bounded wait for every reply. */

#include <stdbool.h>
#include <stddef.h>
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
/* A batch built from next_seq() used the numbers up to last: later requests start after it. */
void redirect_netlink_used_seq(RedirectNetlink *nl, uint32_t last);

/* Sends b and reads until every message asking for an ACK was answered (or the kernel
 * rejected the batch as a whole). Logs each kernel error with the message it names; returns
 * 0, -EPERM (no CAP_NET_ADMIN), -EOPNOTSUPP (nf_tables or its NAT support missing) or -EPROTO
 * (any other rejection). */
int redirect_netlink_send_batch(RedirectNetlink *nl, const RedirectBatch *b);

/* The answers to one batch, as they arrive: every message asking for an ACK must be answered
 * (nfnetlink processes the whole batch and reports every error before it aborts), unless the
 * kernel refused the batch as a whole with an error on BATCH_BEGIN. The first error is kept with
 * its sequence number, so it is reported against the message that caused it. */
#define REDIRECT_EXTACK_MAX 256
typedef struct RedirectAcks {
        const RedirectBatch *batch;
        uint32_t portid;
        bool *answered; /* by message, seq_begin + 1 + i */
        size_t pending;
        int error; /* first kernel error, a positive errno; 0 none */
        uint32_t error_seq;
        bool whole_batch;                 /* the error named BATCH_BEGIN or BATCH_END */
        char extack[REDIRECT_EXTACK_MAX]; /* the kernel's reason for error, or "" */
} RedirectAcks;

int redirect_acks_init(RedirectAcks *a, const RedirectBatch *b, uint32_t portid);
void redirect_acks_done(RedirectAcks *a);
/* Feeds one datagram from the socket. Returns 1 when nothing more is due, 0 when answers are
 * still missing, -EBADMSG for a truncated ACK. Messages of other requests are skipped. */
int redirect_acks_feed(RedirectAcks *a, const void *buf, size_t size);
/* 0 when every message was accepted, else logs the first error with its message and returns
 * -EPERM (no CAP_NET_ADMIN), -EOPNOTSUPP (nf_tables or NAT support missing) or -EPROTO. */
int redirect_acks_result(const RedirectAcks *a);

/* Sends the dump request req (its nlmsg_seq set by the caller from redirect_netlink_next_seq())
 * and calls cb for every reply message until NLMSG_DONE. cb returns <0 to stop with that error.
 * Returns -EINTR when the kernel flagged the dump as interrupted (a concurrent change: retry). */
typedef int (*redirect_dump_cb)(const struct nlmsghdr *nlh, void *userdata);
int redirect_netlink_dump(RedirectNetlink *nl, struct nlmsghdr *req, redirect_dump_cb cb, void *userdata);
