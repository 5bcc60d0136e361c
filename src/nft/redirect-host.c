/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <libmnl/libmnl.h>

#include "http/http-client.h"
#include "log.h"
#include "macro.h"
#include "redirect-host.h"
#include "redirect-netlink.h"
#include "secret.h"
#include "string-util.h"

/* An IMDSv2 token is ~56 bytes; anything far longer is not IMDS. */
#define REDIRECT_IMDS_MAX_TOKEN 1024

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all);

typedef struct BoundedBody {
        char buf[REDIRECT_IMDS_MAX_TOKEN + 1];
        size_t len;
        size_t max;
        bool overflow;
} BoundedBody;

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        BoundedBody *b = userdata;
        size_t n = size * nmemb;

        if (n > b->max - b->len) {
                b->overflow = true;
                return 0; /* makes curl fail the transfer */
        }
        memcpy(b->buf + b->len, ptr, n);
        b->len += n;
        b->buf[b->len] = '\0';
        return n;
}

static void body_wipe(BoundedBody *b) {
        explicit_bzero(b->buf, sizeof b->buf);
        b->len = 0;
}

static size_t family_addr_len(int family) {
        return family == AF_INET6 ? sizeof(struct in6_addr) : sizeof(struct in_addr);
}

/* One bounded request. Returns the HTTP status (>0), or <0 when no HTTP answer came at all. */
static int imds_request(const char *url, bool put, const char *header, BoundedBody *body) {
        _cleanup_(curl_easy_cleanupp) CURL *e = NULL;
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        long status = 0;
        CURLcode cc;

        e = curl_easy_init();
        if (!e)
                return -ENOMEM;
        if (header) {
                headers = curl_slist_append(NULL, header);
                if (!headers)
                        return -ENOMEM;
        }
        if (http_client_prepare(
                    e,
                    &(const HttpRequestOptions){ .url = url,
                                                 .protocols = HTTP_PROTOCOLS_HTTP,
                                                 .timeout = REDIRECT_IMDS_TIMEOUT_MSEC * USEC_PER_MSEC,
                                                 .connect_timeout =
                                                         REDIRECT_IMDS_CONNECT_TIMEOUT_MSEC * USEC_PER_MSEC,
                                                 /* IMDS is link-local: never through an http_proxy from the
                                            * environment */
                                                 .direct = true }) < 0 ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, body) != CURLE_OK ||
            (headers && curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK) ||
            (put && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT") != CURLE_OK))
                return -ENOMEM;

        cc = curl_easy_perform(e);
        if (cc != CURLE_OK) {
                log_debug("IMDS request %s failed: %s", url, curl_easy_strerror(cc));
                return body->overflow ? -E2BIG : -EHOSTUNREACH;
        }
        if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status <= 0 || status > 999)
                return -EBADMSG;
        return (int) status;
}

int redirect_host_from_imds(const char *host, uint16_t port, int family, void *ret) {
        _cleanup_secret_ Secret *token = NULL;
        _cleanup_erase_ char *token_header = NULL;
        _cleanup_free_ char *base = NULL, *url = NULL;
        BoundedBody body = { .max = REDIRECT_IMDS_MAX_TOKEN };
        struct in6_addr addr; /* large enough for both families */
        bool v6host = strchr(host, ':');
        char ttl_header[64];
        int status;

        if (asprintf(&base, "http://%s%s%s:%u", v6host ? "[" : "", host, v6host ? "]" : "", port) < 0)
                return -ENOMEM;

        if (asprintf(&url, "%s/latest/api/token", base) < 0)
                return -ENOMEM;
        snprintf(ttl_header, sizeof ttl_header, "X-aws-ec2-metadata-token-ttl-seconds: %d",
                 REDIRECT_IMDS_TOKEN_TTL_SEC);
        status = imds_request(url, true, ttl_header, &body);
        if (status < 0 && status != -E2BIG) {
                body_wipe(&body);
                return status; /* nothing answers there: do not wait a second time */
        }
        if (status == 200 && body.len > 0) {
                int r = secret_new(body.buf, body.len, &token);
                body_wipe(&body);
                if (r < 0)
                        return r;
                /* curl keeps its own copy of this header until the request ends; ours is wiped */
                if (asprintf(&token_header, "X-aws-ec2-metadata-token: %s", secret_reveal(token)) < 0)
                        return -ENOMEM;
        } else
                /* 403/404/405: an IMDS that only speaks v1 (or a token refused): try without */
                log_debug("IMDS token request answered %d, trying without a token", status);
        body_wipe(&body);

        free(url);
        if (asprintf(&url, "%s/latest/meta-data/%s", base, family == AF_INET6 ? "ipv6" : "local-ipv4") < 0) {
                url = NULL;
                return -ENOMEM;
        }
        body.max = REDIRECT_IMDS_MAX_BODY;
        status = imds_request(url, false, token_header, &body);
        if (status < 0)
                return status;
        if (status != 200) {
                log_debug("IMDS %s answered %d", url, status);
                return -ENOENT;
        }
        while (body.len > 0 && isspace((unsigned char) body.buf[body.len - 1]))
                body.buf[--body.len] = '\0';
        if (inet_pton(family, body.buf, &addr) != 1) {
                log_debug("IMDS %s answered something that is not an address", url);
                return -EBADMSG;
        }
        memcpy(ret, &addr, family_addr_len(family));
        return 0;
}

typedef struct RouteLookup {
        int family;
        uint32_t seq;
        /* best default route so far */
        bool found;
        uint32_t priority;
        uint32_t oif;
        bool has_prefsrc;
        struct in6_addr prefsrc; /* large enough for both families */
        /* address lookup */
        bool addr_found;
        struct in6_addr addr;
} RouteLookup;

static int route_attr(const struct nlattr *a, void *data) {
        const struct nlattr **tb = data;
        uint16_t type = mnl_attr_get_type(a);

        if (mnl_attr_type_valid(a, RTA_MAX) < 0)
                return MNL_CB_OK;
        tb[type] = a;
        return MNL_CB_OK;
}

static int route_one(const struct nlmsghdr *nlh, void *userdata) {
        RouteLookup *l = userdata;
        const struct nlattr *tb[RTA_MAX + 1] = {};
        const struct rtmsg *rt;
        uint32_t table, priority = 0, oif = 0;

        if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof *rt)
                return 0;
        rt = mnl_nlmsg_get_payload(nlh);
        if (rt->rtm_family != l->family || rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST)
                return 0;
        if (mnl_attr_parse(nlh, sizeof *rt, route_attr, tb) < 0)
                return 0;
        table = rt->rtm_table;
        if (tb[RTA_TABLE] && mnl_attr_validate(tb[RTA_TABLE], MNL_TYPE_U32) == 0)
                table = mnl_attr_get_u32(tb[RTA_TABLE]);
        if (table != RT_TABLE_MAIN)
                return 0;
        if (tb[RTA_PRIORITY] && mnl_attr_validate(tb[RTA_PRIORITY], MNL_TYPE_U32) == 0)
                priority = mnl_attr_get_u32(tb[RTA_PRIORITY]);
        if (tb[RTA_OIF] && mnl_attr_validate(tb[RTA_OIF], MNL_TYPE_U32) == 0)
                oif = mnl_attr_get_u32(tb[RTA_OIF]);
        else if (tb[RTA_MULTIPATH] &&
                 mnl_attr_get_payload_len(tb[RTA_MULTIPATH]) >= sizeof(struct rtnexthop)) {
                const struct rtnexthop *nh = mnl_attr_get_payload(tb[RTA_MULTIPATH]);
                oif = (uint32_t) nh->rtnh_ifindex;
        }
        if (oif == 0 || (l->found && priority >= l->priority))
                return 0;

        l->found = true;
        l->priority = priority;
        l->oif = oif;
        l->has_prefsrc =
                tb[RTA_PREFSRC] && mnl_attr_get_payload_len(tb[RTA_PREFSRC]) == family_addr_len(l->family);
        if (l->has_prefsrc)
                memcpy(&l->prefsrc, mnl_attr_get_payload(tb[RTA_PREFSRC]), family_addr_len(l->family));
        return 0;
}

static int addr_attr(const struct nlattr *a, void *data) {
        const struct nlattr **tb = data;

        if (mnl_attr_type_valid(a, IFA_MAX) < 0)
                return MNL_CB_OK;
        tb[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
}

static int addr_one(const struct nlmsghdr *nlh, void *userdata) {
        RouteLookup *l = userdata;
        const struct nlattr *tb[IFA_MAX + 1] = {};
        const struct ifaddrmsg *ifa;
        const struct nlattr *a;
        uint32_t flags;

        if (l->addr_found || nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof *ifa)
                return 0;
        ifa = mnl_nlmsg_get_payload(nlh);
        if (ifa->ifa_family != l->family || ifa->ifa_index != l->oif || ifa->ifa_scope != RT_SCOPE_UNIVERSE)
                return 0;
        if (mnl_attr_parse(nlh, sizeof *ifa, addr_attr, tb) < 0)
                return 0;
        flags = ifa->ifa_flags;
        if (tb[IFA_FLAGS] && mnl_attr_validate(tb[IFA_FLAGS], MNL_TYPE_U32) == 0)
                flags = mnl_attr_get_u32(tb[IFA_FLAGS]);
        if (flags & (IFA_F_SECONDARY | IFA_F_TENTATIVE | IFA_F_DEPRECATED | IFA_F_DADFAILED))
                return 0;
        a = tb[IFA_LOCAL] ?: tb[IFA_ADDRESS];
        if (!a || mnl_attr_get_payload_len(a) != family_addr_len(l->family))
                return 0;
        memcpy(&l->addr, mnl_attr_get_payload(a), family_addr_len(l->family));
        l->addr_found = true;
        return 0;
}

static int rtnl_dump(RedirectNetlink *nl, uint16_t type, int family, redirect_dump_cb cb, RouteLookup *l) {
        char buf[REDIRECT_NETLINK_REQUEST_BYTES] = {};
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = redirect_netlink_next_seq(nl);
        if (type == RTM_GETROUTE) {
                struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof *rt);
                rt->rtm_family = (unsigned char) family;
        } else {
                struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
                ifa->ifa_family = (unsigned char) family;
        }
        return redirect_netlink_dump(nl, nlh, cb, l);
}

int redirect_host_from_default_route(int family, void *ret) {
        _cleanup_(redirect_netlink_closep) RedirectNetlink *nl = NULL;
        RouteLookup l = { .family = family };
        int r;

        r = redirect_netlink_open(NETLINK_ROUTE, &nl);
        if (r < 0)
                return r;
        r = rtnl_dump(nl, RTM_GETROUTE, family, route_one, &l);
        if (r < 0)
                return r;
        if (!l.found)
                return -ENOENT;
        if (l.has_prefsrc) {
                memcpy(ret, &l.prefsrc, family_addr_len(family));
                return 0;
        }
        r = rtnl_dump(nl, RTM_GETADDR, family, addr_one, &l);
        if (r < 0)
                return r;
        if (!l.addr_found)
                return -ENOENT;
        memcpy(ret, &l.addr, family_addr_len(family));
        return 0;
}

int redirect_host_address(const char *metadata_host, uint16_t metadata_port, int family, void *ret) {
        char text[INET6_ADDRSTRLEN];
        int r;

        r = redirect_host_from_imds(metadata_host, metadata_port, family, ret);
        if (r >= 0) {
                log_info("Using the host address %s from the metadata service",
                         inet_ntop(family, ret, text, sizeof text) ?: "?");
                return 0;
        }
        log_debug_errno(r, "No host address from the metadata service: %m");

        r = redirect_host_from_default_route(family, ret);
        if (r >= 0) {
                log_info("Using the host address %s of the default route's interface",
                         inet_ntop(family, ret, text, sizeof text) ?: "?");
                return 0;
        }
        log_debug_errno(r, "No host address from the default route: %m");
        return -EADDRNOTAVAIL;
}
