/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "macro.h"
#include "redirect-batch.h"
#include "string-util.h"

/* Offsets of the fields the rule matches, from the start of their header. */
#define IPV4_DADDR_OFFSET 16
#define IPV6_DADDR_OFFSET 24
#define TCP_DPORT_OFFSET 2

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_expr *, nftnl_expr_free);

static const char *family_name(uint16_t family) {
        return family == NFPROTO_IPV6 ? "ip6" : "ip";
}

RedirectBatch *redirect_batch_free(RedirectBatch *b) {
        if (!b)
                return NULL;
        free(b->buf);
        free(b->messages);
        return mfree(b);
}

const char *redirect_batch_describe(const RedirectBatch *b, uint32_t seq) {
        if (seq == b->seq_begin)
                return "batch begin";
        if (seq == b->seq_end)
                return "batch end";
        for (size_t i = 0; i < b->n_messages; i++)
                if (b->messages[i].seq == seq)
                        return b->messages[i].description;
        return NULL;
}

/* Room for the next message, or -ENOBUFS (our size computation was wrong: a bug, not input). */
static int batch_reserve(RedirectBatch *b, char **ret) {
        if (b->allocated - b->size < REDIRECT_MSG_MAX)
                return -ENOBUFS;
        *ret = b->buf + b->size;
        return 0;
}

static int batch_commit(RedirectBatch *b, const struct nlmsghdr *nlh, bool acked, const char *fmt, ...)
        _printf_(4, 5);
static int batch_commit(RedirectBatch *b, const struct nlmsghdr *nlh, bool acked, const char *fmt, ...) {
        if (nlh->nlmsg_len > REDIRECT_MSG_MAX)
                return -ENOBUFS;
        b->size += NLMSG_ALIGN(nlh->nlmsg_len);
        if (acked) {
                RedirectMessage *m = &b->messages[b->n_messages++];
                va_list ap;

                m->seq = nlh->nlmsg_seq;
                va_start(ap, fmt);
                (void) vsnprintf(m->description, sizeof m->description, fmt, ap);
                va_end(ap);
        }
        return 0;
}

static int batch_add_table(RedirectBatch *b, uint16_t family, uint16_t type, uint32_t seq) {
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = NULL;
        struct nlmsghdr *nlh;
        char *p;
        int r;

        r = batch_reserve(b, &p);
        if (r < 0)
                return r;
        t = nftnl_table_alloc();
        if (!t)
                return -ENOMEM;
        if (nftnl_table_set_str(t, NFTNL_TABLE_NAME, REDIRECT_TABLE) < 0)
                return -ENOMEM;
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, family);
        /* No NFT_TABLE_F_OWNER: the table must outlive us (docs/design.md, invariant 1). NLM_F_CREATE without
         * NLM_F_EXCL: adding an existing table is a no-op, so the delete that follows never fails. */
        nlh = nftnl_nlmsg_build_hdr(p, type, family,
                                    (type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0) | NLM_F_ACK, seq);
        nftnl_table_nlmsg_build_payload(nlh, t);
        return batch_commit(b, nlh, true, "%s table %s %s", type == NFT_MSG_NEWTABLE ? "add" : "delete",
                            family_name(family), REDIRECT_TABLE);
}

int redirect_chain_new(uint16_t family, struct nftnl_chain **ret) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = NULL;

        c = nftnl_chain_alloc();
        if (!c)
                return -ENOMEM;
        if (nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, REDIRECT_TABLE) < 0 ||
            nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, REDIRECT_CHAIN) < 0 ||
            nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat") < 0)
                return -ENOMEM;
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, family);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, REDIRECT_CHAIN_PRIORITY);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        *ret = TAKE_PTR(c);
        return 0;
}

static int rule_add_expr(struct nftnl_rule *r, struct nftnl_expr **e) {
        if (!*e)
                return -ENOMEM;
        nftnl_rule_add_expr(r, TAKE_PTR(*e));
        return 0;
}

static int add_meta(struct nftnl_rule *r, uint32_t key) {
        struct nftnl_expr *e = nftnl_expr_alloc("meta");
        if (e) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
                nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        }
        return rule_add_expr(r, &e);
}

static int add_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len) {
        struct nftnl_expr *e = nftnl_expr_alloc("payload");
        if (e) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
                nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
                nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        }
        return rule_add_expr(r, &e);
}

static int add_cmp_eq(struct nftnl_rule *r, const void *data, uint32_t len) {
        _cleanup_(nftnl_expr_freep) struct nftnl_expr *e = nftnl_expr_alloc("cmp");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0)
                return -EINVAL;
        return rule_add_expr(r, &e);
}

static int add_immediate(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len) {
        _cleanup_(nftnl_expr_freep) struct nftnl_expr *e = nftnl_expr_alloc("immediate");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
        if (nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len) < 0)
                return -EINVAL;
        return rule_add_expr(r, &e);
}

static int add_dnat(struct nftnl_rule *r, uint16_t family) {
        struct nftnl_expr *e = nftnl_expr_alloc("nat");
        if (e) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, family);
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
                /* as nft writes `dnat to A:P`; the kernel adds MAP_IPS itself */
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
        }
        return rule_add_expr(r, &e);
}

int redirect_rule_new(const RedirectSpec *s, uint16_t family, const char *interface,
                      struct nftnl_rule **ret) {
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = NULL;
        char ifname[IFNAMSIZ] = {};
        size_t n = strlen(interface);
        uint32_t name_len;
        uint8_t proto = IPPROTO_TCP;
        uint16_t dport = htons(REDIRECT_IMDS_PORT), port = htons(s->port);
        bool v6 = family == NFPROTO_IPV6;
        int k;

        if (n == 0 || n >= IFNAMSIZ)
                return -EINVAL;
        /* nft's encoding of iifname: "cali*" compares the 4-byte prefix, "docker0" the whole
         * NUL-padded IFNAMSIZ field, so "docker0" never matches "docker01". */
        if (interface[n - 1] == '*') {
                if (n == 1)
                        return -EINVAL;
                memcpy(ifname, interface, n - 1);
                name_len = (uint32_t) (n - 1);
        } else {
                memcpy(ifname, interface, n);
                name_len = IFNAMSIZ;
        }

        r = nftnl_rule_alloc();
        if (!r)
                return -ENOMEM;
        if (nftnl_rule_set_str(r, NFTNL_RULE_TABLE, REDIRECT_TABLE) < 0 ||
            nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, REDIRECT_CHAIN) < 0)
                return -ENOMEM;
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, family);

        if ((k = add_meta(r, NFT_META_IIFNAME)) < 0 || (k = add_cmp_eq(r, ifname, name_len)) < 0 ||
            (k = add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v6 ? IPV6_DADDR_OFFSET : IPV4_DADDR_OFFSET,
                             v6 ? sizeof(struct in6_addr) : sizeof(struct in_addr))) < 0 ||
            (k = add_cmp_eq(r, v6 ? (const void *) &s->imds6 : (const void *) &s->imds4,
                            v6 ? sizeof(struct in6_addr) : sizeof(struct in_addr))) < 0 ||
            /* the l4proto match nft adds for `tcp dport`, so the rule lists as an operator wrote it */
            (k = add_meta(r, NFT_META_L4PROTO)) < 0 || (k = add_cmp_eq(r, &proto, sizeof proto)) < 0 ||
            (k = add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, TCP_DPORT_OFFSET, sizeof dport)) < 0 ||
            (k = add_cmp_eq(r, &dport, sizeof dport)) < 0 ||
            (k = add_immediate(r, NFT_REG_1, v6 ? (const void *) &s->host6 : (const void *) &s->host4,
                               v6 ? sizeof(struct in6_addr) : sizeof(struct in_addr))) < 0 ||
            (k = add_immediate(r, NFT_REG_2, &port, sizeof port)) < 0 || (k = add_dnat(r, family)) < 0)
                return k;

        *ret = TAKE_PTR(r);
        return 0;
}

static int batch_add_chain(RedirectBatch *b, uint16_t family, uint32_t seq) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = NULL;
        struct nlmsghdr *nlh;
        char *p;
        int r;

        r = batch_reserve(b, &p);
        if (r < 0)
                return r;
        r = redirect_chain_new(family, &c);
        if (r < 0)
                return r;
        nlh = nftnl_nlmsg_build_hdr(p, NFT_MSG_NEWCHAIN, family, NLM_F_CREATE | NLM_F_ACK, seq);
        nftnl_chain_nlmsg_build_payload(nlh, c);
        return batch_commit(b, nlh, true, "add chain %s %s %s", family_name(family), REDIRECT_TABLE,
                            REDIRECT_CHAIN);
}

static int batch_add_rule(RedirectBatch *b, const RedirectSpec *s, uint16_t family, const char *interface,
                          uint32_t seq) {
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = NULL;
        struct nlmsghdr *nlh;
        char *p;
        int r;

        r = batch_reserve(b, &p);
        if (r < 0)
                return r;
        r = redirect_rule_new(s, family, interface, &rule);
        if (r < 0)
                return r;
        /* NLM_F_APPEND: rules keep the order of --host-interface (without it each one goes first) */
        nlh = nftnl_nlmsg_build_hdr(p, NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
                                    seq);
        nftnl_rule_nlmsg_build_payload(nlh, rule);
        return batch_commit(b, nlh, true, "add rule %s %s %s iifname \"%s\"", family_name(family),
                            REDIRECT_TABLE, REDIRECT_CHAIN, interface);
}

static int batch_install_family(RedirectBatch *b, const RedirectSpec *s, uint16_t family, uint32_t *seq) {
        int r;

        /* add (no-op if present); delete; add again: the kernel applies the three with the rest
         * of the batch in one transaction, so the old rules are replaced without a gap */
        if ((r = batch_add_table(b, family, NFT_MSG_NEWTABLE, (*seq)++)) < 0 ||
            (r = batch_add_table(b, family, NFT_MSG_DELTABLE, (*seq)++)) < 0 ||
            (r = batch_add_table(b, family, NFT_MSG_NEWTABLE, (*seq)++)) < 0 ||
            (r = batch_add_chain(b, family, (*seq)++)) < 0)
                return r;
        for (char *const *i = s->interfaces; *i; i++) {
                r = batch_add_rule(b, s, family, *i, (*seq)++);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int batch_remove_family(RedirectBatch *b, uint16_t family, uint32_t *seq) {
        int r;

        /* deleting an absent table fails with ENOENT; adding it first makes remove idempotent
         * on every kernel (NFT_MSG_DESTROYTABLE needs 6.3) */
        if ((r = batch_add_table(b, family, NFT_MSG_NEWTABLE, (*seq)++)) < 0 ||
            (r = batch_add_table(b, family, NFT_MSG_DELTABLE, (*seq)++)) < 0)
                return r;
        return 0;
}

int redirect_batch_build(const RedirectSpec *s, RedirectOp op, uint32_t seq, RedirectBatch **ret) {
        _cleanup_(redirect_batch_freep) RedirectBatch *b = NULL;
        size_t n_if = strv_length(s->interfaces), n_msgs;
        struct nlmsghdr *nlh;
        char *p;
        int r;

        if (op == REDIRECT_OP_INSTALL && (n_if == 0 || n_if > REDIRECT_MAX_INTERFACES))
                return -EINVAL;
        /* per family at most 4 table/chain messages plus the rules; plus begin and end */
        n_msgs = 2 * (4 + n_if) + 2;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->allocated = n_msgs * REDIRECT_MSG_MAX;
        b->buf = calloc(1, b->allocated);
        b->messages = calloc(n_msgs, sizeof *b->messages);
        if (!b->buf || !b->messages)
                return -ENOMEM;

        r = batch_reserve(b, &p);
        if (r < 0)
                return r;
        b->seq_begin = seq;
        nlh = nftnl_batch_begin(p, seq++);
        r = batch_commit(b, nlh, false, "batch begin");
        if (r < 0)
                return r;

        if (op == REDIRECT_OP_INSTALL) {
                r = batch_install_family(b, s, NFPROTO_IPV4, &seq);
                if (r < 0)
                        return r;
                r = s->ipv6 ? batch_install_family(b, s, NFPROTO_IPV6, &seq)
                            : batch_remove_family(b, NFPROTO_IPV6, &seq);
        } else {
                r = batch_remove_family(b, NFPROTO_IPV4, &seq);
                if (r < 0)
                        return r;
                r = batch_remove_family(b, NFPROTO_IPV6, &seq);
        }
        if (r < 0)
                return r;

        r = batch_reserve(b, &p);
        if (r < 0)
                return r;
        b->seq_end = seq;
        nlh = nftnl_batch_end(p, seq);
        r = batch_commit(b, nlh, false, "batch end");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(b);
        return 0;
}

/* The nat expression as the kernel means it: it stores addr_max = addr_min and proto_max =
 * proto_min when they are absent, and sets MAP_IPS whenever an address register is given. */
static void canonical_nat(StrBuf *sb, const struct nftnl_expr *e) {
        uint32_t type = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE);
        uint32_t family = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
        uint32_t flags =
                nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS) : 0;
        uint32_t amin = 0, amax = 0, pmin = 0, pmax = 0;

        if (nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_ADDR_MIN))
                amin = amax = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN);
        if (nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_ADDR_MAX))
                amax = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX);
        if (nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN))
                pmin = pmax = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN);
        if (nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MAX))
                pmax = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX);
        if (amin)
                flags |= NF_NAT_RANGE_MAP_IPS;
        if (pmin)
                flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
        strbuf_appendf(sb, "[ nat %s family %u addr %u-%u proto %u-%u flags 0x%x ]",
                       type == NFT_NAT_DNAT ? "dnat" : "snat", family, amin, amax, pmin, pmax, flags);
}

struct canonical_ctx {
        StrBuf *sb;
        int error;
};

static int canonical_expr(struct nftnl_expr *e, void *data) {
        struct canonical_ctx *ctx = data;
        const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        char buf[512];
        int n;

        if (ctx->sb->len > 0)
                strbuf_append_char(ctx->sb, ' ');
        if (name && streq(name, "nat")) {
                canonical_nat(ctx->sb, e);
                return MNL_CB_OK;
        }
        n = nftnl_expr_snprintf(buf, sizeof buf, e, NFTNL_OUTPUT_DEFAULT, 0);
        if (n < 0 || (size_t) n >= sizeof buf) {
                /* an expression we never write (or one too long to be ours): no match */
                strbuf_appendf(ctx->sb, "[ %s ? ]", strna(name));
                return MNL_CB_OK;
        }
        strbuf_appendf(ctx->sb, "[ %s %s]", strna(name), buf);
        return MNL_CB_OK;
}

int redirect_rule_canonical(const struct nftnl_rule *r, char **ret) {
        _cleanup_strbuf_ StrBuf sb = {};
        struct canonical_ctx ctx = { .sb = &sb };
        char *s;

        (void) nftnl_expr_foreach((struct nftnl_rule *) r, canonical_expr, &ctx);
        if (strbuf_error(&sb) < 0)
                return -ENOMEM;
        s = strbuf_steal(&sb);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
