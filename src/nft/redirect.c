/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "log.h"
#include "macro.h"
#include "redirect-batch.h"
#include "redirect-host.h"
#include "redirect-netlink.h"
#include "redirect.h"
#include "string-util.h"

/* A dump interrupted by a concurrent ruleset change is retried; a ruleset that changes this
 * often while we read it is reported as an error rather than read forever. */
#define REDIRECT_CHECK_ATTEMPTS 5

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_gen *, nftnl_gen_free);

static const char *family_name(uint16_t family) {
        return family == NFPROTO_IPV6 ? "ip6" : "ip";
}

int redirect_spec_from_options(const RedirectOptions *c, bool resolve, RedirectSpec *ret) {
        RedirectSpec s = {
                .interfaces = c->interfaces,
                .port = c->app_port,
                .ipv6 = c->ipv6,
        };
        size_t n = strv_length(c->interfaces);
        int r;

        if (n == 0 || n > REDIRECT_MAX_INTERFACES) {
                log_error("Invalid --host-interface: give 1 to %d interface names or patterns, not %zu",
                          REDIRECT_MAX_INTERFACES, n);
                return -EINVAL;
        }
        if (inet_pton(AF_INET, c->metadata_host, &s.imds4) != 1) {
                log_error("Invalid --metadata-addr \"%s\" for the redirect: pods' requests go to an IPv4 "
                          "address, "
                          "give one (default 169.254.169.254)",
                          c->metadata_host);
                return -EINVAL;
        }
        if (inet_pton(AF_INET6, REDIRECT_IMDS_IPV6, &s.imds6) != 1)
                return -EINVAL;

        if (c->host_ip) {
                if (inet_pton(AF_INET, c->host_ip, &s.host4) != 1) {
                        log_error("Invalid --host-ip \"%s\": expected an IPv4 address", c->host_ip);
                        return -EINVAL;
                }
        } else if (resolve) {
                r = redirect_host_address(c->metadata_host, c->metadata_port, AF_INET, &s.host4);
                if (r < 0) {
                        log_error(
                                "Cannot determine the host address (no answer from the metadata service at "
                                "%s:%u, no default route with an address): give --host-ip",
                                c->metadata_host, c->metadata_port);
                        return -EADDRNOTAVAIL;
                }
        }
        if (c->ipv6) {
                if (c->host_ipv6) {
                        if (inet_pton(AF_INET6, c->host_ipv6, &s.host6) != 1) {
                                log_error("Invalid --host-ipv6 \"%s\": expected an IPv6 address",
                                          c->host_ipv6);
                                return -EINVAL;
                        }
                } else if (resolve) {
                        r = redirect_host_address(c->metadata_host, c->metadata_port, AF_INET6, &s.host6);
                        if (r < 0) {
                                log_error(
                                        "Cannot determine the host's IPv6 address for --ipv6 (none from the "
                                        "metadata service or the default IPv6 route): give --host-ipv6");
                                return -EADDRNOTAVAIL;
                        }
                }
        }
        *ret = s;
        return 0;
}

static int open_nfnetlink(RedirectNetlink **ret) {
        int r = redirect_netlink_open(NETLINK_NETFILTER, ret);

        if (r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT)
                return log_error_errno(r, "nf_tables is not available (no nfnetlink in this kernel): %m");
        if (r == -EPERM || r == -EACCES)
                return log_error_errno(r, "No permission to open nfnetlink (CAP_NET_ADMIN needed): %m");
        if (r < 0)
                return log_error_errno(r, "Failed to open nfnetlink: %m");
        return 0;
}

static int run_batch(const RedirectSpec *s, RedirectOp op) {
        _cleanup_(redirect_netlink_closep) RedirectNetlink *nl = NULL;
        _cleanup_(redirect_batch_freep) RedirectBatch *b = NULL;
        int r;

        r = open_nfnetlink(&nl);
        if (r < 0)
                return r;
        /* the batch's numbers come from the socket's counter; requests after it use later ones */
        r = redirect_batch_build(s, op, redirect_netlink_next_seq(nl), &b);
        if (r < 0)
                return log_error_errno(r, "Failed to build the nftables batch: %m");
        redirect_netlink_used_seq(nl, b->seq_end);
        return redirect_netlink_send_batch(nl, b);
}

static char *join_interfaces(char *const *l) {
        _cleanup_strbuf_ StrBuf sb = {};

        for (char *const *i = l; *i; i++) {
                if (i != l)
                        strbuf_append_char(&sb, ',');
                strbuf_append(&sb, *i);
        }
        return strbuf_steal(&sb);
}

int redirect_install_spec(const RedirectSpec *s) {
        _cleanup_free_ char *ifaces = NULL;
        char host4[INET_ADDRSTRLEN], imds4[INET_ADDRSTRLEN], host6[INET6_ADDRSTRLEN], port[8];
        int r;

        r = run_batch(s, REDIRECT_OP_INSTALL);
        if (r < 0)
                return r;

        ifaces = join_interfaces(s->interfaces);
        inet_ntop(AF_INET, &s->host4, host4, sizeof host4);
        inet_ntop(AF_INET, &s->imds4, imds4, sizeof imds4);
        inet_ntop(AF_INET6, &s->host6, host6, sizeof host6);
        snprintf(port, sizeof port, "%u", s->port);
        log_fields(LOG_INFO,
                   ((LogField[]){
                           { "MESSAGE_ID", LOG_MESSAGE_ID_REDIRECT },
                           { "HOST_INTERFACES", ifaces },
                           { "HOST_IP", host4 },
                           { "HOST_IPV6", s->ipv6 ? host6 : NULL },
                           { "APP_PORT", port },
                   }),
                   5, "Installed the metadata redirect: table%s %s, %s:%d on %s to %s:%u%s%s%s",
                   s->ipv6 ? "s ip and ip6" : " ip", REDIRECT_TABLE, imds4, REDIRECT_IMDS_PORT,
                   strna(ifaces), host4, s->port, s->ipv6 ? ", [" REDIRECT_IMDS_IPV6 "] to [" : "",
                   s->ipv6 ? host6 : "", s->ipv6 ? "]" : "");
        return 0;
}

int redirect_install(const RedirectOptions *o) {
        RedirectSpec s;
        int r;

        r = redirect_spec_from_options(o, true, &s);
        if (r < 0)
                return r;
        return redirect_install_spec(&s);
}

int redirect_remove(const RedirectOptions *o) {
        RedirectSpec s = { .interfaces = o->interfaces };
        int r;

        r = run_batch(&s, REDIRECT_OP_REMOVE);
        if (r < 0)
                return r;
        log_fields(LOG_INFO, ((LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_REDIRECT } }), 1,
                   "Removed the metadata redirect (tables ip and ip6 %s)", REDIRECT_TABLE);
        return 0;
}

/* What the kernel holds for one family's table. */
typedef struct FamilyState {
        uint16_t family;
        bool table_found;
        uint32_t table_flags;
        size_t n_chains;
        bool chain_ok;
        char *chain_seen;   /* the first chain that differs, described */
        char **rules;       /* canonical text, in chain order */
        char **rule_chains; /* their chains */
        size_t n_other;     /* sets, objects, flowtables in our table */
} FamilyState;

static void family_state_done(FamilyState *f) {
        free(f->chain_seen);
        strv_free(f->rules);
        strv_free(f->rule_chains);
        *f = (FamilyState){ .family = f->family };
}

static int table_one(const struct nlmsghdr *nlh, void *userdata) {
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        FamilyState *f = userdata;
        const char *name;

        if (!t)
                return -ENOMEM;
        if (nftnl_table_nlmsg_parse(nlh, t) < 0)
                return -EBADMSG;
        name = nftnl_table_get_str(t, NFTNL_TABLE_NAME);
        if (!name || !streq(name, REDIRECT_TABLE) || nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) != f->family)
                return 0;
        f->table_found = true;
        f->table_flags =
                nftnl_table_is_set(t, NFTNL_TABLE_FLAGS) ? nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS) : 0;
        return 0;
}

static int chain_one(const struct nlmsghdr *nlh, void *userdata) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        FamilyState *f = userdata;
        const char *table, *name, *type;
        bool ok;

        if (!c)
                return -ENOMEM;
        if (nftnl_chain_nlmsg_parse(nlh, c) < 0)
                return -EBADMSG;
        table = nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE);
        if (!table || !streq(table, REDIRECT_TABLE) ||
            nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY) != f->family)
                return 0;
        f->n_chains++;
        name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
        type = nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
        ok = name && streq(name, REDIRECT_CHAIN) && type && streq(type, "nat") &&
             nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
             nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) == NF_INET_PRE_ROUTING &&
             nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) == REDIRECT_CHAIN_PRIORITY &&
             nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) &&
             nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT &&
             !nftnl_chain_is_set(c, NFTNL_CHAIN_DEV) && !nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES);
        if (ok)
                f->chain_ok = true;
        else if (!f->chain_seen &&
                 asprintf(&f->chain_seen, "chain %s type %s hook %u priority %d policy %u", strna(name),
                          strna(type), nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM),
                          nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO),
                          nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY)) < 0) {
                f->chain_seen = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int rule_one(const struct nlmsghdr *nlh, void *userdata) {
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = nftnl_rule_alloc();
        FamilyState *f = userdata;
        const char *table, *chain;
        char *text;
        int r;

        if (!rule)
                return -ENOMEM;
        if (nftnl_rule_nlmsg_parse(nlh, rule) < 0)
                return -EBADMSG;
        table = nftnl_rule_get_str(rule, NFTNL_RULE_TABLE);
        chain = nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN);
        if (!table || !streq(table, REDIRECT_TABLE) ||
            nftnl_rule_get_u32(rule, NFTNL_RULE_FAMILY) != f->family)
                return 0;
        /* more rules than install could write: no need to keep them all to say so */
        if (strv_length(f->rules) > REDIRECT_MAX_INTERFACES)
                return 0;
        r = redirect_rule_canonical(rule, &text);
        if (r < 0)
                return r;
        r = strv_consume(&f->rules, text);
        if (r < 0)
                return r;
        return strv_extend(&f->rule_chains, strempty(chain));
}

/* Sets, objects and flowtables all carry their table in attribute 1 (NFTA_*_TABLE). */
static int other_one(const struct nlmsghdr *nlh, void *userdata) {
        FamilyState *f = userdata;
        const struct nfgenmsg *g;
        const struct nlattr *a;

        if (mnl_nlmsg_get_payload_len(nlh) < sizeof *g)
                return 0;
        g = mnl_nlmsg_get_payload(nlh);
        if (g->nfgen_family != f->family)
                return 0;
        mnl_attr_for_each(a, nlh, sizeof *g) {
                if (mnl_attr_get_type(a) == NFTA_SET_TABLE &&
                    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 &&
                    streq(mnl_attr_get_str(a), REDIRECT_TABLE))
                        f->n_other++;
        }
        return 0;
}

static int nft_dump(RedirectNetlink *nl, uint16_t type, uint16_t family, redirect_dump_cb cb,
                    void *userdata) {
        char buf[REDIRECT_NETLINK_REQUEST_BYTES] = {};
        struct nlmsghdr *nlh;

        nlh = nftnl_nlmsg_build_hdr(buf, type, family, NLM_F_DUMP, redirect_netlink_next_seq(nl));
        if (type == NFT_MSG_GETRULE) {
                /* only our table's rules: a kube-proxy node can have thousands of others */
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *filter = nftnl_rule_alloc();
                if (!filter || nftnl_rule_set_str(filter, NFTNL_RULE_TABLE, REDIRECT_TABLE) < 0)
                        return -ENOMEM;
                nftnl_rule_nlmsg_build_payload(nlh, filter);
        }
        return redirect_netlink_dump(nl, nlh, cb, userdata);
}

static int gen_one(const struct nlmsghdr *nlh, void *userdata) {
        _cleanup_(nftnl_gen_freep) struct nftnl_gen *g = nftnl_gen_alloc();

        if (!g)
                return -ENOMEM;
        if (nftnl_gen_nlmsg_parse(nlh, g) < 0)
                return -EBADMSG;
        *(uint32_t *) userdata = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
        return 0;
}

static int get_generation(RedirectNetlink *nl, uint32_t *ret) {
        char buf[REDIRECT_NETLINK_REQUEST_BYTES] = {};
        struct nlmsghdr *nlh;

        /* NLM_F_ACK: the ACK after the one NEWGEN reply ends the exchange */
        nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK,
                                    redirect_netlink_next_seq(nl));
        return redirect_netlink_dump(nl, nlh, gen_one, ret);
}

static int read_family(RedirectNetlink *nl, FamilyState *f) {
        static const uint16_t others[] = { NFT_MSG_GETSET, NFT_MSG_GETOBJ, NFT_MSG_GETFLOWTABLE };
        int r;

        if ((r = nft_dump(nl, NFT_MSG_GETTABLE, f->family, table_one, f)) < 0)
                return r;
        if (!f->table_found)
                return 0;
        if ((r = nft_dump(nl, NFT_MSG_GETCHAIN, f->family, chain_one, f)) < 0 ||
            (r = nft_dump(nl, NFT_MSG_GETRULE, f->family, rule_one, f)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(others); i++)
                if ((r = nft_dump(nl, others[i], f->family, other_one, f)) < 0)
                        return r;
        return 0;
}

/* 1 when f is exactly what install writes for this family, else 0 with the difference logged. */
static int compare_family(const RedirectSpec *s, const FamilyState *f, bool wanted) {
        const char *fam = family_name(f->family);
        size_t n_rules = strv_length(f->rules), n_expected = strv_length(s->interfaces);
        int r;

        if (!wanted) {
                if (f->table_found) {
                        log_notice("Table %s %s exists, but install would not write it (no --ipv6)", fam,
                                   REDIRECT_TABLE);
                        return 0;
                }
                return 1;
        }
        if (!f->table_found) {
                log_notice("Table %s %s is missing", fam, REDIRECT_TABLE);
                return 0;
        }
        if (f->table_flags != 0) {
                log_notice("Table %s %s has flags 0x%x, install writes none", fam, REDIRECT_TABLE,
                           f->table_flags);
                return 0;
        }
        if (f->n_chains != 1 || !f->chain_ok) {
                log_notice("Table %s %s has %zu chain(s)%s%s, install writes one: chain %s type nat hook "
                           "prerouting "
                           "priority %d policy accept",
                           fam, REDIRECT_TABLE, f->n_chains, f->chain_seen ? ", " : "",
                           strempty(f->chain_seen), REDIRECT_CHAIN, REDIRECT_CHAIN_PRIORITY);
                return 0;
        }
        if (f->n_other > 0) {
                log_notice("Table %s %s holds %zu set(s), object(s) or flowtable(s), install writes none",
                           fam, REDIRECT_TABLE, f->n_other);
                return 0;
        }
        if (n_rules != n_expected) {
                log_notice("Table %s %s has %zu rule(s), install writes %zu", fam, REDIRECT_TABLE, n_rules,
                           n_expected);
                return 0;
        }
        for (size_t i = 0; i < n_expected; i++) {
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *want = NULL;
                _cleanup_free_ char *text = NULL;

                r = redirect_rule_new(s, f->family, s->interfaces[i], &want);
                if (r < 0)
                        return r;
                r = redirect_rule_canonical(want, &text);
                if (r < 0)
                        return r;
                if (!streq(f->rule_chains[i], REDIRECT_CHAIN) || !streq(f->rules[i], text)) {
                        log_notice("Rule %zu of table %s %s (iifname \"%s\") differs: found %s in chain %s, "
                                   "install writes %s",
                                   i + 1, fam, REDIRECT_TABLE, s->interfaces[i], f->rules[i],
                                   f->rule_chains[i], text);
                        return 0;
                }
        }
        return 1;
}

static int log_read_error(int r) {
        if (r == -EPERM || r == -EACCES)
                return log_error_errno(r, "No permission to read nftables (CAP_NET_ADMIN needed): %m");
        if (r == -EOPNOTSUPP || r == -EAFNOSUPPORT || r == -EPROTONOSUPPORT)
                return log_error_errno(r, "nf_tables is not available in this kernel: %m");
        return log_error_errno(r, "Failed to read the nftables ruleset: %m");
}

int redirect_check_spec(const RedirectSpec *s) {
        _cleanup_(redirect_netlink_closep) RedirectNetlink *nl = NULL;
        FamilyState v4 = { .family = NFPROTO_IPV4 }, v6 = { .family = NFPROTO_IPV6 };
        int r;

        r = open_nfnetlink(&nl);
        if (r < 0)
                return r;

        for (unsigned attempt = 0;; attempt++) {
                uint32_t gen_before = 0, gen_after = 0;

                family_state_done(&v4);
                family_state_done(&v6);
                if (attempt >= REDIRECT_CHECK_ATTEMPTS) {
                        r = log_error_errno(EAGAIN, "The nftables ruleset kept changing while it was read");
                        goto finish;
                }
                /* the generation brackets the dumps: equal before and after means they show one
                 * consistent ruleset, as nft's cache does it */
                r = get_generation(nl, &gen_before);
                if (r >= 0)
                        r = read_family(nl, &v4);
                if (r >= 0)
                        r = read_family(nl, &v6);
                if (r >= 0)
                        r = get_generation(nl, &gen_after);
                if (r == -EINTR || (r >= 0 && gen_before != gen_after))
                        continue;
                if (r < 0) {
                        r = log_read_error(r);
                        goto finish;
                }
                break;
        }

        r = compare_family(s, &v4, true);
        if (r > 0)
                r = compare_family(s, &v6, s->ipv6);
        if (r > 0)
                log_info("The metadata redirect is installed as configured");
finish:
        family_state_done(&v4);
        family_state_done(&v6);
        return r;
}

int redirect_check(const RedirectOptions *o) {
        RedirectSpec s;
        int r;

        r = redirect_spec_from_options(o, true, &s);
        if (r < 0)
                return r;
        return redirect_check_spec(&s);
}

RedirectExit redirect_exit_status(int r) {
        if (r >= 0)
                return REDIRECT_EXIT_OK;
        switch (-r) {
        case EINVAL:
                return REDIRECT_EXIT_USAGE;
        case EPERM:
        case EACCES:
                return REDIRECT_EXIT_PERMISSION;
        case EOPNOTSUPP:
        case EPROTONOSUPPORT:
        case EAFNOSUPPORT:
                return REDIRECT_EXIT_NO_NFTABLES;
        case EADDRNOTAVAIL:
                return REDIRECT_EXIT_NO_HOST;
        default:
                return REDIRECT_EXIT_REJECTED;
        }
}
