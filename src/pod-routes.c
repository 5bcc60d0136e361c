/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pod-routes.h"
#include "store.h"
#include "string-util.h"

/* A line of the table is ~128 bytes; anything longer is not the kernel's format. */
#define POD_ROUTES_LINE_MAX 512U
/* RTF_UP: the kernel lists only usable routes with it set. */
#define POD_ROUTES_RTF_UP 0x0001U

typedef struct PodRoute {
        char ifname[POD_ROUTES_IFNAME_MAX];
        uint32_t dest; /* network byte order, as the file has it */
        uint32_t mask;
        unsigned metric;
} PodRoute;

struct PodRouteTable {
        PodRoute *routes;
        size_t n;
};

PodRouteTable *pod_routes_free(PodRouteTable *t) {
        if (t) {
                free(t->routes);
                free(t);
        }
        return NULL;
}

static int parse_line(const char *line, PodRoute *ret, bool *ret_up) {
        char ifname[POD_ROUTES_IFNAME_MAX + 1];
        unsigned dest, gateway, flags, refcnt, use, metric, mask;

        /* Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT; the addresses
         * are the in-memory (network order) u32 printed in hex */
        if (sscanf(line, "%16s %x %x %x %u %u %u %x", ifname, &dest, &gateway, &flags, &refcnt, &use,
                   &metric, &mask) != 8 ||
            strlen(ifname) >= POD_ROUTES_IFNAME_MAX)
                return -EINVAL;
        *ret = (PodRoute){ .dest = dest, .mask = mask, .metric = metric };
        memcpy(ret->ifname, ifname, strlen(ifname) + 1);
        *ret_up = flags & POD_ROUTES_RTF_UP;
        return 0;
}

int pod_routes_read(const char *path, PodRouteTable **ret) {
        _cleanup_(pod_routes_freep) PodRouteTable *t = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char line[POD_ROUTES_LINE_MAX];
        bool header = true;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        while (fgets(line, sizeof line, f)) {
                PodRoute r;
                bool up;

                if (!strchr(line, '\n') && !feof(f))
                        return -EINVAL;
                if (header) {
                        header = false;
                        continue;
                }
                if (parse_line(line, &r, &up) < 0)
                        return -EINVAL;
                if (!up)
                        continue;
                if (t->n >= POD_ROUTES_MAX_ROUTES)
                        return -EFBIG;
                if (t->n % 64 == 0) {
                        PodRoute *n = reallocarray(t->routes, t->n + 64, sizeof *n);
                        if (!n)
                                return -ENOMEM;
                        t->routes = n;
                }
                t->routes[t->n++] = r;
        }
        if (ferror(f))
                return -EIO;
        *ret = TAKE_PTR(t);
        return 0;
}

static unsigned prefix_len(uint32_t mask) {
        return (unsigned) __builtin_popcount(mask);
}

const char *pod_routes_interface(const PodRouteTable *t, struct in_addr a) {
        const PodRoute *best = NULL;

        for (size_t i = 0; t && i < t->n; i++) {
                const PodRoute *r = &t->routes[i];

                if ((a.s_addr & r->mask) != (r->dest & r->mask))
                        continue;
                if (!best || prefix_len(r->mask) > prefix_len(best->mask) ||
                    (prefix_len(r->mask) == prefix_len(best->mask) && r->metric < best->metric))
                        best = r;
        }
        return best ? best->ifname : NULL;
}

bool pod_routes_interface_matches(char *const *patterns, const char *ifname) {
        for (char *const *p = patterns; p && *p; p++) {
                size_t n = strlen(*p);

                if (n > 0 && (*p)[n - 1] == '*' ? strncmp(*p, ifname, n - 1) == 0 : streq(*p, ifname))
                        return true;
        }
        return false;
}

typedef struct CheckState {
        const PodRouteTable *table;
        char *const *patterns;
        PodRoutesReport *report;
} CheckState;

static void check_pod(const StorePod *pod, void *userdata) {
        CheckState *st = userdata;
        PodRoutesReport *rep = st->report;

        if (pod->host_network || pod->terminating)
                return;
        for (char **ip = pod->ips; ip && *ip; ip++) {
                struct in_addr a;
                const char *ifname;

                if (inet_pton(AF_INET, *ip, &a) != 1)
                        continue;
                ifname = pod_routes_interface(st->table, a);
                if (!ifname)
                        continue;
                rep->n_pods++;
                if (pod_routes_interface_matches(st->patterns, ifname))
                        return;
                if (rep->n_outside++ == 0) {
                        snprintf(rep->example_pod, sizeof rep->example_pod, "%s/%s", pod->namespace,
                                 pod->name);
                        snprintf(rep->example_ip, sizeof rep->example_ip, "%s", *ip);
                        snprintf(rep->example_ifname, sizeof rep->example_ifname, "%s", ifname);
                }
                return;
        }
}

void pod_routes_check(const Store *s, const PodRouteTable *t, char *const *patterns, PodRoutesReport *ret) {
        CheckState st = { .table = t, .patterns = patterns, .report = ret };

        *ret = (PodRoutesReport){};
        store_foreach_pod(s, check_pod, &st);
}
