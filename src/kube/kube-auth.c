/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube-auth.h"
#include "kube-exec.h"

struct KubeAuth {
        sd_event *event;
        KubeCredentials *exec_creds; /* cached exec plugin result */
        KubeExec *exec;              /* the plugin while it runs */
        kube_auth_ready_t ready;
        void *userdata;
};

int kube_auth_new(sd_event *event, kube_auth_ready_t ready, void *userdata, KubeAuth **ret) {
        KubeAuth *a;

        if (!event || !ready || !ret)
                return -EINVAL;
        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        *a = (KubeAuth){ .event = sd_event_ref(event), .ready = ready, .userdata = userdata };
        *ret = a;
        return 0;
}

KubeAuth *kube_auth_free(KubeAuth *a) {
        if (!a)
                return NULL;
        kube_exec_free(a->exec);
        kube_credentials_free(a->exec_creds);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}

static void on_exec_done(KubeExec *x, int error, KubeCredentials **creds, void *userdata) {
        KubeAuth *a = userdata;

        a->exec = kube_exec_free(a->exec);
        if (error >= 0) {
                kube_credentials_free(a->exec_creds);
                a->exec_creds = TAKE_PTR(*creds);
        }
        a->ready(a, error < 0 ? error : 0, a->userdata);
}

int kube_auth_ready(KubeAuth *a, const KubeConfig *kc) {
        const KubeCredentials *x = a->exec_creds;
        int r;

        if (!kc->exec)
                return 1;
        if (x && (x->expires == USEC_INFINITY ||
                  usec_add(now_realtime(), KUBE_CREDENTIAL_REFRESH_MARGIN_USEC) < x->expires))
                return 1;
        if (a->exec)
                return 0;
        r = kube_exec_start(a->event, kc, on_exec_done, a, &a->exec);
        return r < 0 ? r : 0;
}

int kube_auth_credentials(KubeAuth *a, const KubeConfig *kc, KubeCredentials **ret) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        const KubeCredentials *x = a->exec_creds;
        int r;

        r = kubeconfig_read_credentials(kc, &c);
        if (r < 0)
                return r;
        if (x && x->token) {
                secret_free(c->token);
                r = secret_dup(x->token, &c->token);
                if (r < 0)
                        return r;
        }
        if (x && x->cert_pem) {
                free(c->cert_pem);
                c->cert_pem = strdup(x->cert_pem);
                c->cert_size = x->cert_size;
                secret_free(c->key_pem);
                c->key_pem = NULL;
                if (!c->cert_pem || secret_dup(x->key_pem, &c->key_pem) < 0)
                        return -ENOMEM;
        }
        if (x)
                c->expires = x->expires;
        *ret = TAKE_PTR(c);
        return 0;
}

void kube_auth_forget(KubeAuth *a) {
        a->exec_creds = kube_credentials_free(a->exec_creds);
}
