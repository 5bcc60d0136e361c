/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The bytes of the redirect: builds the one nf_tables netlink batch that installs or removes
 * our tables (with a description of each message, so a kernel error is reported against the
 * message that caused it), the rule objects install writes (check compares the kernel's copy
 * with them), and a canonical text of a rule's expressions that ignores what the kernel fills
 * in on its own (nat addr_max/proto_max, the MAP_IPS flag). Pure: no socket, no privileges, so
 * the unit tests compare its output to golden bytes. */

#include <stddef.h>
#include <stdint.h>

#include "redirect.h"

struct nftnl_rule;
struct nftnl_chain;

typedef enum RedirectOp {
        REDIRECT_OP_INSTALL,
        REDIRECT_OP_REMOVE,
} RedirectOp;

/* Upper bound of one message of our batch (the largest, an IPv6 rule, is ~600 bytes): every
 * message is built only where this much room is left. */
#define REDIRECT_MSG_MAX 2048
/* What a message is, for an operator reading an error: add rule ip kube2iam prerouting iifname "cali*" */
#define REDIRECT_DESCRIPTION_MAX 96

typedef struct RedirectMessage {
        uint32_t seq;
        char description[REDIRECT_DESCRIPTION_MAX];
} RedirectMessage;

typedef struct RedirectBatch {
        char *buf;
        size_t size; /* bytes used, from BATCH_BEGIN to BATCH_END */
        size_t allocated;
        uint32_t seq_begin;        /* the BATCH_BEGIN message; seq_begin + 1.. are the commands */
        uint32_t seq_end;          /* the BATCH_END message */
        RedirectMessage *messages; /* every message that asks for an ACK (all but begin/end) */
        size_t n_messages;
} RedirectBatch;

/* Builds the batch; sequence numbers start at seq (BATCH_BEGIN). INSTALL: for ip (and ip6 with
 * s->ipv6): add table; delete table; add table, chain, one rule per interface. Without s->ipv6
 * the ip6 table is removed in the same batch (add; delete), so install always leaves exactly
 * what it was asked for. REMOVE: add; delete for both families (succeeds when absent). */
int redirect_batch_build(const RedirectSpec *s, RedirectOp op, uint32_t seq, RedirectBatch **ret);
RedirectBatch *redirect_batch_free(RedirectBatch *b);
static inline void redirect_batch_freep(RedirectBatch **b) {
        redirect_batch_free(*b);
}
/* The description of the message with this sequence number, or NULL. */
const char *redirect_batch_describe(const RedirectBatch *b, uint32_t seq);

/* The chain and one rule of table `family kube2iam` as install writes them. family is
 * NFPROTO_IPV4 or NFPROTO_IPV6. */
int redirect_chain_new(uint16_t family, struct nftnl_chain **ret);
int redirect_rule_new(const RedirectSpec *s, uint16_t family, const char *interface,
                      struct nftnl_rule **ret);

/* "[ meta load iifname => reg 1 ] [ cmp eq reg 1 0x696c6163 ] ... [ nat dnat ip addr reg 1 proto reg 2 ]":
 * the expressions of r in a form in which a rule as we send it and as the kernel dumps it back
 * compare equal. Returns a new string. */
int redirect_rule_canonical(const struct nftnl_rule *r, char **ret);
