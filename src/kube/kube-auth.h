/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeAuth: the credentials each new API server connection uses. The kubeconfig's files are read
 * again for every connection (a rotated kubelet client certificate is picked up); an exec
 * plugin's result (kube-exec.h) is cached until shortly before it expires and put on top. Owns
 * that cache and the plugin while it runs; the kubeconfig is the caller's. */

#include <systemd/sd-event.h>

#include "kubeconfig.h"
#include "macro.h"
#include "time-util.h"

/* Refresh exec credentials this long before they expire, so no request carries an expired token. */
#define KUBE_CREDENTIAL_REFRESH_MARGIN_USEC (60 * USEC_PER_SEC)

typedef struct KubeAuth KubeAuth;

/* The plugin ended: error 0, or why there are no credentials. */
typedef void (*kube_auth_ready_t)(KubeAuth *a, int error, void *userdata);

int kube_auth_new(sd_event *event, kube_auth_ready_t ready, void *userdata, KubeAuth **ret);
KubeAuth *kube_auth_free(KubeAuth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeAuth *, kube_auth_free);

/* 1: credentials can be had now; 0: an exec plugin runs, ready() follows; <0 error. */
int kube_auth_ready(KubeAuth *a, const KubeConfig *kc);
/* The credentials for a new connection: the files read now, the plugin's on top. */
int kube_auth_credentials(KubeAuth *a, const KubeConfig *kc, KubeCredentials **ret);
/* The API server rejected them (401): the next ready() runs the plugin again. */
void kube_auth_forget(KubeAuth *a);
