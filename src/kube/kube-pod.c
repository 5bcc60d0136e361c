/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube-pod.h"
#include "string-util.h"

int kube_pod_new(const char *uid, const char *namespace, const char *name, KubePod **ret) {
        _cleanup_(kube_pod_freep) KubePod *p = NULL;

        if (isempty(uid) || !namespace || !name || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->uid = strdup(uid);
        p->namespace = strdup(namespace);
        p->name = strdup(name);
        p->phase = strdup("");
        if (!p->uid || !p->namespace || !p->name || !p->phase)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

int kube_pod_add_ip(KubePod *p, const char *ip) {
        if (isempty(ip))
                return -EINVAL;
        if (strv_contains(p->ips, ip))
                return 0;
        if (strv_length(p->ips) >= KUBE_POD_MAX_IPS)
                return -E2BIG;
        return strv_extend(&p->ips, ip);
}

KubePod *kube_pod_free(KubePod *p) {
        if (!p)
                return NULL;
        free(p->uid);
        free(p->namespace);
        free(p->name);
        free(p->phase);
        free(p->role);
        free(p->external_id);
        free(p->service_account);
        free(p->resource_version);
        strv_free(p->ips);
        free(p);
        return NULL;
}
