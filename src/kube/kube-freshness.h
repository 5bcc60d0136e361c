/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeFreshness: whether the pod store may still vouch for the pods it holds, decided from
 * times and outcomes only (no clock, no I/O), so that the rule is unit-tested on its own. The
 * store is confirmed by every complete list, every accepted watch and every watch event or
 * bookmark. A refresh that fails while the API server answers (an HTTP error, a page or event
 * we reject) starts a clock; when it has run for longer than the bound without a confirmation,
 * the store is stale and vouches for no pod until a complete list has been applied. A refresh
 * that cannot reach the API server starts no clock: while nothing reaches the API server, no
 * pod can be created, bound or deleted either, so the last view stays right. The rule and its
 * numbers are explained in docs/pod-store.md. */

#include <stdbool.h>

#include "time-util.h"

/* How long the API server may answer while our pod list or watch keeps failing before the
 * store stops vouching for pods (--pod-store-max-stale). A routine re-list after 410 Gone takes
 * seconds; the watch backoff tops out at 30 s, so one minute leaves room for two or three more
 * attempts. A deleted pod's address can be handed to a new pod within seconds by most CNIs
 * (the VPC CNI waits 30 s), so this is also the longest time such a pod could be answered with
 * the deleted pod's role when we cannot refresh. */
#define KUBE_POD_STORE_MAX_STALE_USEC (60 * USEC_PER_SEC)

typedef enum KubeRefresh {
        KUBE_REFRESH_CONFIRMED,   /* the store matches the API server as of now */
        KUBE_REFRESH_UNREACHABLE, /* no answer: cannot connect, a dropped stream, a gateway 502-504 */
        KUBE_REFRESH_FAILED,      /* the API server answered, but we could not refresh */
} KubeRefresh;

typedef struct KubeFreshness {
        usec_t failing_since; /* first FAILED since the last confirmation; 0 = none */
} KubeFreshness;

/* Classifies how a list or watch request ended: http_status 0 when no HTTP answer arrived,
 * rejected when we refused what arrived (too large, unparsable, an ERROR event). A 2xx that
 * ended normally is not classified here: the caller confirms. */
KubeRefresh kube_refresh_classify(long http_status, bool transport_error, bool rejected);

void kube_freshness_record(KubeFreshness *f, KubeRefresh outcome, usec_t now);
/* When the store turns stale (USEC_INFINITY: not while nothing fails). */
usec_t kube_freshness_deadline(const KubeFreshness *f, usec_t max_stale);
bool kube_freshness_stale(const KubeFreshness *f, usec_t now, usec_t max_stale);
