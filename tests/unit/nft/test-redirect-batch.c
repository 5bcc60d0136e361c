/* SPDX-License-Identifier: BSD-3-Clause */
/* The batch kube2iam-nft sends, without a kernel: compared byte for byte with golden files
 * (the .golden files next to this one; KUBE2IAM_UPDATE_GOLDEN=1 rewrites them after a deliberate change,
 * which the netns suite then proves against the real kernel), and parsed back with libnftnl.
 * The expected expressions are the lines `nft --debug=netlink` prints for the rule an operator
 * would write (iifname "cali*" ip daddr 169.254.169.254 tcp dport 80 dnat to 10.0.0.1:8181),
 * so the batch is what nft itself would send. */
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "config.h"
#include "nft/redirect-batch.h"
#include "nft/redirect.h"
#include "string-util.h"
#include "tap.h"

static char *interfaces[] = { "cali*", "docker0", NULL };

static RedirectSpec test_spec(bool ipv6) {
        RedirectSpec s = { .interfaces = interfaces, .port = 8181, .ipv6 = ipv6 };
        ASSERT_EQ(inet_pton(AF_INET, "169.254.169.254", &s.imds4), 1);
        ASSERT_EQ(inet_pton(AF_INET, "10.0.0.1", &s.host4), 1);
        ASSERT_EQ(inet_pton(AF_INET6, REDIRECT_IMDS_IPV6, &s.imds6), 1);
        ASSERT_EQ(inet_pton(AF_INET6, "fd00::1", &s.host6), 1);
        return s;
}

static void compare_golden(const RedirectBatch *b, const char *name) {
        char path[4096];
        FILE *f;
        char *want;
        long n;

        snprintf(path, sizeof path, "%s/tests/unit/nft/%s", tap_source_dir(), name);
        if (getenv("KUBE2IAM_UPDATE_GOLDEN")) {
                f = fopen(path, "we");
                ASSERT_NOT_NULL(f);
                ASSERT_EQ(fwrite(b->buf, 1, b->size, f), b->size);
                ASSERT_EQ(fclose(f), 0);
        }
        f = fopen(path, "re");
        ASSERT_NOT_NULL(f);
        ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        ASSERT_UEQ((size_t) n, b->size);
        want = malloc((size_t) n);
        ASSERT_NOT_NULL(want);
        ASSERT_EQ(fread(want, 1, (size_t) n, f), (size_t) n);
        fclose(f);
        for (long i = 0; i < n; i++)
                if (want[i] != b->buf[i])
                        tap_fail(__FILE__, __LINE__, "%s differs at byte %ld: 0x%02x != golden 0x%02x", name,
                                 i, (unsigned char) b->buf[i], (unsigned char) want[i]);
        free(want);
}

static bool is_batch_marker(const struct nlmsghdr *nlh) {
        return nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN || nlh->nlmsg_type == NFNL_MSG_BATCH_END;
}

/* Every message of the batch, in order: type, family and flags. */
typedef struct Seen {
        uint16_t type; /* NFT_MSG_* or NFNL_MSG_BATCH_* */
        uint8_t family;
        uint16_t flags;
        uint32_t seq;
} Seen;

static size_t walk(const RedirectBatch *b, Seen *out, size_t max) {
        int len = (int) b->size;
        size_t n = 0;

        for (const struct nlmsghdr *nlh = (const struct nlmsghdr *) b->buf; mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
                const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
                ASSERT_TRUE(n < max);
                out[n++] = (Seen){
                        .type = is_batch_marker(nlh) ? nlh->nlmsg_type : (uint16_t) (nlh->nlmsg_type & 0xff),
                        .family = g->nfgen_family,
                        .flags = nlh->nlmsg_flags,
                        .seq = nlh->nlmsg_seq,
                };
        }
        ASSERT_EQ(len, 0); /* no trailing garbage */
        return n;
}

/* The expressions of the rule in message nlh, as libnftnl prints them. */
static char **rule_exprs(const struct nlmsghdr *nlh, struct nftnl_rule *r) {
        struct nftnl_expr_iter *it;
        struct nftnl_expr *e;
        char **l = NULL;

        ASSERT_OK(nftnl_rule_nlmsg_parse(nlh, r));
        it = nftnl_expr_iter_create(r);
        ASSERT_NOT_NULL(it);
        while ((e = nftnl_expr_iter_next(it))) {
                char buf[512], *s;
                ASSERT_TRUE(nftnl_expr_snprintf(buf, sizeof buf, e, NFTNL_OUTPUT_DEFAULT, 0) >= 0);
                ASSERT_TRUE(asprintf(&s, "[ %s %s]", nftnl_expr_get_str(e, NFTNL_EXPR_NAME), buf) > 0);
                ASSERT_OK(strv_consume(&l, s));
        }
        nftnl_expr_iter_destroy(it);
        return l;
}

static void assert_strv_eq(char **got, const char *const *want) {
        size_t i = 0;
        for (; want[i]; i++) {
                ASSERT_NOT_NULL(got[i]);
                ASSERT_STREQ(got[i], want[i]);
        }
        ASSERT_NULL(got[i]);
}

/* nft --debug=netlink for: iifname "cali*" ip daddr 169.254.169.254 tcp dport 80 dnat to 10.0.0.1:8181 */
static const char *const nft_cali_v4[] = {
        "[ meta load iifname => reg 1 ]",
        "[ cmp eq reg 1 0x696c6163 ]",
        "[ payload load 4b @ network header + 16 => reg 1 ]",
        "[ cmp eq reg 1 0xfea9fea9 ]",
        "[ meta load l4proto => reg 1 ]",
        "[ cmp eq reg 1 0x00000006 ]",
        "[ payload load 2b @ transport header + 2 => reg 1 ]",
        "[ cmp eq reg 1 0x00005000 ]",
        "[ immediate reg 1 0x0100000a ]",
        "[ immediate reg 2 0x0000f51f ]",
        "[ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]",
        NULL,
};
/* ... iifname "docker0" ...: the whole NUL-padded 16-byte name, so docker01 does not match */
static const char *const nft_docker0_iifname =
        "[ cmp eq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]";
/* nft --debug=netlink for: iifname "cali*" ip6 daddr fd00:ec2::254 tcp dport 80 dnat to [fd00::1]:8181 */
static const char *const nft_cali_v6[] = {
        "[ meta load iifname => reg 1 ]",
        "[ cmp eq reg 1 0x696c6163 ]",
        "[ payload load 16b @ network header + 24 => reg 1 ]",
        "[ cmp eq reg 1 0xc20e00fd 0x00000000 0x00000000 0x54020000 ]",
        "[ meta load l4proto => reg 1 ]",
        "[ cmp eq reg 1 0x00000006 ]",
        "[ payload load 2b @ transport header + 2 => reg 1 ]",
        "[ cmp eq reg 1 0x00005000 ]",
        "[ immediate reg 1 0x000000fd 0x00000000 0x00000000 0x01000000 ]",
        "[ immediate reg 2 0x0000f51f ]",
        "[ nat dnat ip6 addr_min reg 1 proto_min reg 2 flags 0x2 ]",
        NULL,
};

TEST(install_batch_matches_golden_bytes) {
        RedirectSpec s = test_spec(false);
        RedirectBatch *b = NULL;

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b));
        compare_golden(b, "install-ipv4.golden");
        redirect_batch_free(b);

        s = test_spec(true);
        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b));
        compare_golden(b, "install-ipv6.golden");
        redirect_batch_free(b);

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_REMOVE, 1, &b));
        compare_golden(b, "remove.golden");
        redirect_batch_free(b);
}

TEST(install_batch_replaces_table_in_one_transaction) {
        RedirectSpec s = test_spec(false);
        RedirectBatch *b = NULL;
        Seen m[32];
        size_t n;
        /* ip: add, delete, add, chain, 2 rules; ip6 (no --ipv6): add, delete */
        static const Seen want[] = {
                { NFNL_MSG_BATCH_BEGIN, AF_UNSPEC, NLM_F_REQUEST, 7 },
                { NFT_MSG_NEWTABLE, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, 8 },
                { NFT_MSG_DELTABLE, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_ACK, 9 },
                { NFT_MSG_NEWTABLE, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, 10 },
                { NFT_MSG_NEWCHAIN, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, 11 },
                { NFT_MSG_NEWRULE, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
                  12 },
                { NFT_MSG_NEWRULE, NFPROTO_IPV4, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
                  13 },
                { NFT_MSG_NEWTABLE, NFPROTO_IPV6, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, 14 },
                { NFT_MSG_DELTABLE, NFPROTO_IPV6, NLM_F_REQUEST | NLM_F_ACK, 15 },
                { NFNL_MSG_BATCH_END, AF_UNSPEC, NLM_F_REQUEST, 16 },
        };

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 7, &b));
        n = walk(b, m, ELEMENTSOF(m));
        ASSERT_UEQ(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n; i++) {
                ASSERT_UEQ(m[i].type, want[i].type);
                ASSERT_UEQ(m[i].family, want[i].family);
                ASSERT_UEQ(m[i].flags, want[i].flags);
                ASSERT_UEQ(m[i].seq, want[i].seq);
        }
        ASSERT_UEQ(b->seq_begin, 7);
        ASSERT_UEQ(b->seq_end, 16);
        ASSERT_UEQ(b->n_messages, 8); /* every command asks for an ACK */
        redirect_batch_free(b);
}

TEST(install_batch_parses_back_as_the_rules_nft_would_write) {
        RedirectSpec s = test_spec(true);
        RedirectBatch *b = NULL;
        size_t rules = 0, chains = 0;
        int len;

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b));
        len = (int) b->size;
        for (const struct nlmsghdr *nlh = (const struct nlmsghdr *) b->buf; mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
                uint16_t type = nlh->nlmsg_type & 0xff;
                if (is_batch_marker(nlh))
                        continue;
                if (type == NFT_MSG_NEWTABLE || type == NFT_MSG_DELTABLE) {
                        struct nftnl_table *t = nftnl_table_alloc();
                        ASSERT_OK(nftnl_table_nlmsg_parse(nlh, t));
                        ASSERT_STREQ(nftnl_table_get_str(t, NFTNL_TABLE_NAME), "kube2iam");
                        /* no owner flag: the table outlives the helper */
                        ASSERT_FALSE(nftnl_table_is_set(t, NFTNL_TABLE_FLAGS) &&
                                     nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS) != 0);
                        nftnl_table_free(t);
                } else if (type == NFT_MSG_NEWCHAIN) {
                        struct nftnl_chain *c = nftnl_chain_alloc();
                        ASSERT_OK(nftnl_chain_nlmsg_parse(nlh, c));
                        ASSERT_STREQ(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), "kube2iam");
                        ASSERT_STREQ(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), "prerouting");
                        ASSERT_STREQ(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), "nat");
                        ASSERT_UEQ(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), NF_INET_PRE_ROUTING);
                        ASSERT_EQ(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), -110); /* dstnat - 10 */
                        ASSERT_UEQ(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY), NF_ACCEPT);
                        nftnl_chain_free(c);
                        chains++;
                } else if (type == NFT_MSG_NEWRULE) {
                        struct nftnl_rule *r = nftnl_rule_alloc();
                        char **exprs = rule_exprs(nlh, r);
                        bool v6 = nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) == NFPROTO_IPV6;

                        ASSERT_STREQ(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), "kube2iam");
                        ASSERT_STREQ(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "prerouting");
                        if (rules % 2 == 0)
                                assert_strv_eq(exprs, v6 ? nft_cali_v6 : nft_cali_v4);
                        else {
                                ASSERT_STREQ(exprs[1], nft_docker0_iifname);
                                ASSERT_STREQ(exprs[2], (v6 ? nft_cali_v6 : nft_cali_v4)[2]);
                        }
                        strv_free(exprs);
                        nftnl_rule_free(r);
                        rules++;
                }
        }
        ASSERT_EQ(len, 0);
        ASSERT_UEQ(chains, 2);
        ASSERT_UEQ(rules, 4);
        redirect_batch_free(b);
}

TEST(remove_batch_deletes_only_our_tables_and_succeeds_when_absent) {
        RedirectSpec s = { .interfaces = interfaces };
        RedirectBatch *b = NULL;
        Seen m[16];
        size_t n;

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_REMOVE, 100, &b));
        n = walk(b, m, ELEMENTSOF(m));
        ASSERT_UEQ(n, 6);
        /* add first, so the delete finds the table even when nothing is installed */
        ASSERT_UEQ(m[1].type, NFT_MSG_NEWTABLE);
        ASSERT_UEQ(m[2].type, NFT_MSG_DELTABLE);
        ASSERT_UEQ(m[3].type, NFT_MSG_NEWTABLE);
        ASSERT_UEQ(m[4].type, NFT_MSG_DELTABLE);
        ASSERT_UEQ(m[1].family, NFPROTO_IPV4);
        ASSERT_UEQ(m[4].family, NFPROTO_IPV6);
        ASSERT_STREQ(redirect_batch_describe(b, 102), "delete table ip kube2iam");
        ASSERT_STREQ(redirect_batch_describe(b, 104), "delete table ip6 kube2iam");
        redirect_batch_free(b);
}

TEST(kernel_errors_are_named_by_the_message_that_caused_them) {
        RedirectSpec s = test_spec(false);
        RedirectBatch *b = NULL;

        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b));
        ASSERT_STREQ(redirect_batch_describe(b, 1), "batch begin");
        ASSERT_STREQ(redirect_batch_describe(b, 2), "add table ip kube2iam");
        ASSERT_STREQ(redirect_batch_describe(b, 3), "delete table ip kube2iam");
        ASSERT_STREQ(redirect_batch_describe(b, 5), "add chain ip kube2iam prerouting");
        ASSERT_STREQ(redirect_batch_describe(b, 6), "add rule ip kube2iam prerouting iifname \"cali*\"");
        ASSERT_STREQ(redirect_batch_describe(b, 7), "add rule ip kube2iam prerouting iifname \"docker0\"");
        ASSERT_STREQ(redirect_batch_describe(b, 10), "batch end");
        ASSERT_NULL(redirect_batch_describe(b, 11));
        redirect_batch_free(b);
}

TEST(batch_refuses_bad_interface_lists) {
        char *none[] = { NULL };
        char *star[] = { "*", NULL };
        char *toolong[] = { "abcdefghijklmnop", NULL };
        char *many[REDIRECT_MAX_INTERFACES + 2] = {};
        RedirectSpec s = test_spec(false);
        RedirectBatch *b = NULL;

        s.interfaces = none;
        ASSERT_ERROR(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b), -EINVAL);
        s.interfaces = star;
        ASSERT_ERROR(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b), -EINVAL);
        s.interfaces = toolong;
        ASSERT_ERROR(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b), -EINVAL);
        for (size_t i = 0; i < REDIRECT_MAX_INTERFACES + 1; i++)
                many[i] = "eni*";
        s.interfaces = many;
        ASSERT_ERROR(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b), -EINVAL);
        ASSERT_NULL(b);
        /* the largest batch allowed fits its buffer */
        many[REDIRECT_MAX_INTERFACES] = NULL;
        s.ipv6 = true;
        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, 1, &b));
        ASSERT_UEQ(b->n_messages, 2 * (4 + REDIRECT_MAX_INTERFACES));
        redirect_batch_free(b);
}

TEST(check_treats_kernel_filled_nat_fields_as_equal) {
        RedirectSpec s = test_spec(false);
        struct nftnl_rule *sent = NULL, *dumped = NULL;
        struct nftnl_expr_iter *it;
        struct nftnl_expr *e, *last = NULL;
        char *a = NULL, *b = NULL;

        ASSERT_OK(redirect_rule_new(&s, NFPROTO_IPV4, "cali*", &sent));
        ASSERT_OK(redirect_rule_new(&s, NFPROTO_IPV4, "cali*", &dumped));
        /* as the kernel dumps it: max registers filled in, MAP_IPS added */
        it = nftnl_expr_iter_create(dumped);
        while ((e = nftnl_expr_iter_next(it)))
                last = e;
        nftnl_expr_iter_destroy(it);
        ASSERT_STREQ(nftnl_expr_get_str(last, NFTNL_EXPR_NAME), "nat");
        nftnl_expr_set_u32(last, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1);
        nftnl_expr_set_u32(last, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFT_REG_2);
        nftnl_expr_set_u32(last, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
        ASSERT_OK(redirect_rule_canonical(sent, &a));
        ASSERT_OK(redirect_rule_canonical(dumped, &b));
        ASSERT_STREQ(a, b);
        free(b);

        /* but a different port is a different rule */
        nftnl_rule_free(dumped);
        s.port = 8182;
        ASSERT_OK(redirect_rule_new(&s, NFPROTO_IPV4, "cali*", &dumped));
        ASSERT_OK(redirect_rule_canonical(dumped, &b));
        ASSERT_FALSE(streq(a, b));
        free(a);
        free(b);
        nftnl_rule_free(sent);
        nftnl_rule_free(dumped);
}

TEST(spec_from_options_takes_flags_and_refuses_a_hostname_as_metadata_addr) {
        char *argv[] = { "kube2iam-nft",
                         "--host-ip=10.1.2.3",
                         "--host-interface=cali+,eni+",
                         "--app-port=9000",
                         "--ipv6",
                         "--host-ipv6=fd00::5",
                         "install",
                         NULL };
        char *argv_bad[] = { "kube2iam-nft", "--host-ip=10.1.2.3", "--metadata-addr=imds.internal",
                             "install", NULL };
        char text[INET6_ADDRSTRLEN];
        RedirectOptions o;
        RedirectSpec s;
        Config c;

        ASSERT_OK(config_init(&c));
        ASSERT_OK(config_parse_strv(&c, CONFIG_PROGRAM_NFT, NULL, 7, argv));
        config_redirect_options(&c, &o);
        /* resolve=true must not touch the network when the addresses are given */
        ASSERT_OK(redirect_spec_from_options(&o, true, &s));
        ASSERT_STREQ(s.interfaces[0], "cali*");
        ASSERT_STREQ(s.interfaces[1], "eni*");
        ASSERT_NULL(s.interfaces[2]);
        ASSERT_UEQ(s.port, 9000);
        ASSERT_TRUE(s.ipv6);
        ASSERT_STREQ(inet_ntop(AF_INET, &s.host4, text, sizeof text), "10.1.2.3");
        ASSERT_STREQ(inet_ntop(AF_INET, &s.imds4, text, sizeof text), "169.254.169.254");
        ASSERT_STREQ(inet_ntop(AF_INET6, &s.host6, text, sizeof text), "fd00::5");
        ASSERT_STREQ(inet_ntop(AF_INET6, &s.imds6, text, sizeof text), "fd00:ec2::254");
        config_done(&c);

        ASSERT_OK(config_init(&c));
        ASSERT_OK(config_parse_strv(&c, CONFIG_PROGRAM_NFT, NULL, 4, argv_bad));
        config_redirect_options(&c, &o);
        ASSERT_ERROR(redirect_spec_from_options(&o, true, &s), -EINVAL);
        config_done(&c);
}

TEST(exit_status_follows_help_text) {
        ASSERT_EQ(redirect_exit_status(0), REDIRECT_EXIT_OK);
        ASSERT_EQ(redirect_exit_status(-EINVAL), 2);
        ASSERT_EQ(redirect_exit_status(-EPERM), 3);
        ASSERT_EQ(redirect_exit_status(-EOPNOTSUPP), 4);
        ASSERT_EQ(redirect_exit_status(-EPROTONOSUPPORT), 4);
        ASSERT_EQ(redirect_exit_status(-EPROTO), 5);
        ASSERT_EQ(redirect_exit_status(-ETIMEDOUT), 5);
        ASSERT_EQ(redirect_exit_status(-EADDRNOTAVAIL), 6);
        ASSERT_EQ(REDIRECT_EXIT_USAGE, CONFIG_EXIT_USAGE);
}
