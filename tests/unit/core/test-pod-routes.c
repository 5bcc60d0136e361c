/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pod-routes.h"
#include "store.h"
#include "string-util.h"
#include "tap.h"

/* A Calico node as the kernel prints it: the default route and the node's subnet on eth0, a /32
 * per pod on its cali* interface, docker0's subnet (no pods), and a route that is not up. The
 * addresses are network-order u32s printed in hex, so 10.1.2.3 is 0302010A. */
static const char CALICO_TABLE[] =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "eth0\t0000000A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n"
        "cali1234\t0302010A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "eth1\t0302010A\t00000000\t0001\t0\t0\t10\tFFFFFFFF\t0\t0\t0\n"
        "down0\t0402010A\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";

/* Writes text to a temporary file and reads it as the kernel's table. */
static int read_table(const char *text, PodRouteTable **ret) {
        char path[] = "/tmp/k2i-routes-XXXXXX";
        int fd = mkstemp(path), r;
        FILE *f;

        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        fputs(text, f);
        fclose(f);
        r = pod_routes_read(path, ret);
        unlink(path);
        return r;
}

static PodRouteTable *table_from(const char *text) {
        PodRouteTable *t = NULL;

        return read_table(text, &t) < 0 ? NULL : t;
}

static const char *iface(const PodRouteTable *t, const char *ip) {
        struct in_addr a;

        ASSERT_EQ(inet_pton(AF_INET, ip, &a), 1);
        return strna(pod_routes_interface(t, a));
}

TEST(most_specific_route_wins_then_lowest_metric_down_routes_ignored) {
        PodRouteTable *t = table_from(CALICO_TABLE);

        ASSERT_NOT_NULL(t);
        ASSERT_STREQ(iface(t, "10.1.2.3"), "cali1234"); /* /32, metric 0 beats eth1's 10 */
        ASSERT_STREQ(iface(t, "10.0.9.9"), "eth0");
        ASSERT_STREQ(iface(t, "172.17.0.5"), "docker0");
        ASSERT_STREQ(iface(t, "10.1.2.4"), "eth0"); /* down0's route is not up */
        ASSERT_STREQ(iface(t, "8.8.8.8"), "eth0");
        pod_routes_free(t);
}

TEST(no_default_route_means_no_interface) {
        PodRouteTable *t = table_from("Iface\tDestination\tGateway\n"
                                      "veth0\t0000C80A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");

        ASSERT_NOT_NULL(t);
        ASSERT_STREQ(iface(t, "10.200.0.2"), "veth0");
        ASSERT_STREQ(iface(t, "10.201.0.2"), "n/a");
        pod_routes_free(t);
}

TEST(malformed_and_missing_tables_are_errors) {
        PodRouteTable *t = NULL;

        ASSERT_ERROR(read_table("Iface\tDestination\nthis is not a route\n", &t), -EINVAL);
        ASSERT_ERROR(
                read_table("Iface\nan-interface-name-longer-than-ifnamsiz\t0\t0\t1\t0\t0\t0\t0\t0\t0\t0\n",
                           &t),
                -EINVAL);
        ASSERT_ERROR(pod_routes_read("/nonexistent/k2i-route", &t), -ENOENT);
        ASSERT_NULL(t);
}

TEST(table_beyond_the_route_limit_is_refused) {
        PodRouteTable *t = NULL;
        StrBuf b = {};
        char *text;

        strbuf_append(&b, "Iface\n");
        for (unsigned i = 0; i <= POD_ROUTES_MAX_ROUTES; i++)
                strbuf_appendf(&b, "eth0\t%08X\t00000000\t0001\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n", i);
        text = strbuf_steal(&b);
        ASSERT_NOT_NULL(text);
        ASSERT_ERROR(read_table(text, &t), -EFBIG);
        free(text);
        ASSERT_NULL(t);
}

TEST(interface_patterns_match_as_nftables_iifname) {
        char *patterns[] = { (char *) "cali*", (char *) "docker0", NULL };

        ASSERT_TRUE(pod_routes_interface_matches(patterns, "cali1234"));
        ASSERT_TRUE(pod_routes_interface_matches(patterns, "cali"));
        ASSERT_TRUE(pod_routes_interface_matches(patterns, "docker0"));
        ASSERT_FALSE(pod_routes_interface_matches(patterns, "docker01"));
        ASSERT_FALSE(pod_routes_interface_matches(patterns, "eni1"));
        ASSERT_FALSE(pod_routes_interface_matches(NULL, "docker0"));
}

static StorePod *pod(const char *uid, const char *ip, bool host_network) {
        StorePod *p = NULL;

        if (store_pod_new(uid, "payments", uid, &p) < 0)
                return NULL;
        p->host_network = host_network;
        if (ip && store_pod_add_ip(p, ip) < 0)
                return store_pod_free(p);
        return p;
}

TEST(pods_behind_interfaces_the_patterns_miss_are_reported) {
        PodRouteTable *t = table_from(CALICO_TABLE);
        char *docker_only[] = { (char *) "docker0", NULL };
        char *calico[] = { (char *) "cali*", NULL };
        PodRoutesReport rep;
        Store *s = NULL;

        ASSERT_NOT_NULL(t);
        ASSERT_OK(store_new(&s));
        ASSERT_OK(store_pod_update(s, pod("api", "10.1.2.3", false)));
        /* host-network pods and pods without an address are nobody's to redirect */
        ASSERT_OK(store_pod_update(s, pod("node-exporter", "10.0.0.7", true)));
        ASSERT_OK(store_pod_update(s, pod("pending", NULL, false)));
        ASSERT_OK(store_pod_update(s, pod("v6-only", "fd00::5", false)));

        pod_routes_check(s, t, docker_only, &rep);
        ASSERT_EQ(rep.n_pods, 1);
        ASSERT_EQ(rep.n_outside, 1);
        ASSERT_STREQ(rep.example_pod, "payments/api");
        ASSERT_STREQ(rep.example_ip, "10.1.2.3");
        ASSERT_STREQ(rep.example_ifname, "cali1234");

        pod_routes_check(s, t, calico, &rep);
        ASSERT_EQ(rep.n_pods, 1);
        ASSERT_EQ(rep.n_outside, 0);
        store_free(s);
        pod_routes_free(t);
}
