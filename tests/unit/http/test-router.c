/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "proxy.h"
#include "router.h"
#include "tap.h"

static RouteId route(const RouterOptions *o, const char *path, RouteMatch *m) {
        ASSERT_OK(router_match(o, path, NULL, m));
        return m->id;
}

TEST(clean_path_follows_go_path_clean_and_keeps_trailing_slash) {
        static const char *cases[][2] = {
                { "", "/" },
                { "/", "/" },
                { "//", "/" },
                { "/a//b", "/a/b" },
                { "/a/./b/", "/a/b/" },
                { "/a/../b", "/b" },
                { "/../a", "/a" },
                /* clean already (the fast path) or only nearly so */
                { "/latest/meta-data/iam/security-credentials/role",
                  "/latest/meta-data/iam/security-credentials/role" },
                { "/a/.b/..c/", "/a/.b/..c/" },
                { "/a/.", "/a" },
                { "/a/..", "/" },
                { "/a//", "/a/" },
                { "a/b", "/a/b" },
                { "/a/b/..", "/a" },
                { "/a/b/../", "/a/" },
                { "a/b", "/a/b" },
                { "/latest/meta-data/", "/latest/meta-data/" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *c = router_clean_path(cases[i][0]);
                ASSERT_STREQ(c, cases[i][1]);
                free(c);
        }
}

TEST(unclean_paths_redirect_with_query) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_OK(router_match(&o, "/latest//meta-data", "a=1", &m));
        ASSERT_EQ(m.id, ROUTE_REDIRECT);
        ASSERT_STREQ(m.location, "/latest/meta-data?a=1");
        route_match_done(&m);

        /* decoding happens before cleaning, and the Location is re-escaped */
        ASSERT_OK(router_match(&o, "/a%2F%2Fb%20c", NULL, &m));
        ASSERT_EQ(m.id, ROUTE_REDIRECT);
        ASSERT_STREQ(m.location, "/a/b%20c");
        route_match_done(&m);
}

TEST(credential_routes_match_any_version_segment) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials", &m), ROUTE_ROLE_LIST);
        ASSERT_STREQ(m.version, "latest");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/2016-09-02/meta-data/iam/security-credentials/", &m), ROUTE_ROLE_LIST);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/foo/meta-data/iam/security-credentials/my-role", &m), ROUTE_ROLE_CREDENTIALS);
        ASSERT_STREQ(m.role, "my-role");
        ASSERT_STREQ(m.version, "foo");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials/path/role", &m),
                  ROUTE_ROLE_CREDENTIALS);
        ASSERT_STREQ(m.role, "path/role");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials/arn:aws:iam::1:role/x", &m),
                  ROUTE_ROLE_CREDENTIALS);
        ASSERT_STREQ(m.role, "arn:aws:iam::1:role/x");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials/%61bc", &m), ROUTE_ROLE_CREDENTIALS);
        ASSERT_STREQ(m.role, "abc");
        route_match_done(&m);
}

TEST(extended_credential_routes_take_the_same_handlers) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials-extended/", &m), ROUTE_ROLE_LIST);
        ASSERT_TRUE(m.extended);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials-extended", &m), ROUTE_ROLE_LIST);
        ASSERT_TRUE(m.extended);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/2025-01-01/meta-data/iam/security-credentials-extended/my-role", &m),
                  ROUTE_ROLE_CREDENTIALS);
        ASSERT_TRUE(m.extended);
        ASSERT_STREQ(m.role, "my-role");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials/my-role", &m),
                  ROUTE_ROLE_CREDENTIALS);
        ASSERT_FALSE(m.extended);
        route_match_done(&m);
        /* a near miss is neither: it goes to the metadata table, which refuses it */
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentials-extendedX", &m), ROUTE_PROXY);
        ASSERT_FALSE(m.extended);
        route_match_done(&m);
}

TEST(near_misses_are_proxied) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "/latest/meta-data/iam/security-credentialsX", &m), ROUTE_PROXY);
        ASSERT_NULL(m.version);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/meta-data/iam/security-credentials/", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/info/x", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/identity-credentialsX", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/a/b/api/token", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/healthz/", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/a/b/meta-data/iam/security-credentials", &m), ROUTE_PROXY);
        route_match_done(&m);
}

TEST(daemon_owned_routes) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "/latest/api/token", &m), ROUTE_API_TOKEN);
        ASSERT_STREQ(m.version, "latest");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/2021-03-23/api/token", &m), ROUTE_API_TOKEN);
        ASSERT_STREQ(m.version, "2021-03-23");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/iam/info", &m), ROUTE_IAM_INFO);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
                        &m),
                  ROUTE_IDENTITY);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/latest/meta-data/identity-credentials", &m), ROUTE_IDENTITY);
        route_match_done(&m);
}

TEST(debug_and_metrics_only_when_enabled) {
        RouterOptions off = {}, on = { .debug = true, .metrics = true };
        RouteMatch m;

        ASSERT_EQ(route(&off, "/debug/store", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&on, "/debug/store", &m), ROUTE_DEBUG_STORE);
        route_match_done(&m);
        ASSERT_EQ(route(&off, "/metrics", &m), ROUTE_PROXY);
        route_match_done(&m);
        ASSERT_EQ(route(&on, "/metrics", &m), ROUTE_METRICS);
        route_match_done(&m);
        ASSERT_EQ(route(&off, "/healthz", &m), ROUTE_HEALTHZ);
        route_match_done(&m);
}

TEST(absolute_form_targets_route_by_path_and_keep_the_host) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", &m),
                  ROUTE_ROLE_LIST);
        ASSERT_STREQ(m.host, "169.254.169.254");
        route_match_done(&m);
        ASSERT_EQ(route(&o, "http://example.com/x", &m), ROUTE_PROXY);
        ASSERT_STREQ(m.host, "example.com");
        route_match_done(&m);
}

TEST(bad_escapes_and_nul_are_bad_requests) {
        RouterOptions o = {};
        RouteMatch m;

        ASSERT_EQ(route(&o, "/a%zz", &m), ROUTE_BAD_REQUEST);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/a%4", &m), ROUTE_BAD_REQUEST);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/a%", &m), ROUTE_BAD_REQUEST);
        route_match_done(&m);
        ASSERT_EQ(route(&o, "/a%00b", &m), ROUTE_BAD_REQUEST);
        route_match_done(&m);
}

TEST(handler_names_are_kube2iams) {
        ASSERT_STREQ(route_handler_name(ROUTE_ROLE_LIST), "securityCredentialsHandler");
        ASSERT_STREQ(route_handler_name(ROUTE_ROLE_CREDENTIALS), "roleHandler");
        ASSERT_STREQ(route_handler_name(ROUTE_HEALTHZ), "healthHandler");
        ASSERT_STREQ(route_handler_name(ROUTE_DEBUG_STORE), "debugStoreHandler");
        ASSERT_STREQ(route_handler_name(ROUTE_PROXY), "reverseProxyHandler");
}

TEST(proxy_adds_x_forwarded_for_except_on_token_requests) {
        ASSERT_TRUE(proxy_adds_xff("GET", "/latest/meta-data/", NULL));
        ASSERT_TRUE(proxy_adds_xff("GET", "/latest/meta-data/", ""));
        ASSERT_FALSE(proxy_adds_xff("GET", "/latest/meta-data/", "tok"));
        ASSERT_TRUE(proxy_adds_xff("HEAD", "/latest/meta-data/", "tok"));
        ASSERT_FALSE(proxy_adds_xff("PUT", "/latest/api/token", NULL));
        ASSERT_FALSE(proxy_adds_xff("PUT", "/2021-03-23/api/token", NULL));
        ASSERT_FALSE(proxy_adds_xff("PUT", "latest/api/token", NULL));
        ASSERT_TRUE(proxy_adds_xff("PUT", "/a/b/api/token", NULL));
        ASSERT_TRUE(proxy_adds_xff("PUT", "//api/token", NULL));
        ASSERT_TRUE(proxy_adds_xff("POST", "/latest/api/token", NULL));
}

TEST(hop_by_hop_headers) {
        ASSERT_TRUE(proxy_is_hop_header("connection"));
        ASSERT_TRUE(proxy_is_hop_header("Keep-Alive"));
        ASSERT_TRUE(proxy_is_hop_header("Transfer-Encoding"));
        ASSERT_TRUE(proxy_is_hop_header("Proxy-Connection"));
        ASSERT_FALSE(proxy_is_hop_header("X-aws-ec2-metadata-token"));
        ASSERT_FALSE(proxy_is_hop_header("Host"));
}
