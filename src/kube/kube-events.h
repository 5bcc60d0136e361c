/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeEvents: --pod-events, one core/v1 Event on a pod the daemon refused a role or whose
 * AssumeRole failed, so that `kubectl describe pod` shows why. Owns the POSTs in flight (each its
 * own request, bounded) and the record of what was posted lately per pod and reason (bounded),
 * which de-duplicates: one Event per pod and reason per window, never a queue that grows. A
 * refused Event (the table or the in-flight bound is full, the API server says no) is dropped
 * and counted, never retried: the pod's next denial after the window posts again. Nothing here
 * blocks: the POST runs on the HttpClient's multi handle. Documented in docs/explain.md. */

#include <stdbool.h>

#include "http/http-client.h"
#include "kube-transport.h"
#include "macro.h"
#include "time-util.h"

/* kubelet's event correlator folds repeats over ten minutes; one Event per pod and reason in that
 * window tells the user why without flooding etcd from a pod that retries every second. */
#define KUBE_EVENTS_WINDOW_USEC (10 * USEC_PER_MINUTE)
/* Pods and reasons remembered at once: a node's pods (110 by default, a few hundred at most) times
 * the few reasons. When full and nothing has expired, new Events are dropped. */
#define KUBE_EVENTS_MAX_KEYS 2048U
/* POSTs in flight at once: each takes milliseconds; a burst of pods failing together fits, an
 * unreachable API server does not pile up transfers. */
#define KUBE_EVENTS_MAX_IN_FLIGHT 16U
/* An Event POST answers at once; it must not hold a transfer when the API server stalls. */
#define KUBE_EVENTS_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* The API server's limit on a core/v1 Event's message (1 kB, as events.k8s.io's note). */
#define KUBE_EVENTS_MESSAGE_MAX 1024U

typedef struct KubeEvents KubeEvents;

/* What an Event says about a pod. reason: CamelCase, e.g. IAMRoleDenied. */
typedef struct KubeEventInfo {
        const char *ns;
        const char *name;
        const char *uid;
        const char *reason;
        const char *message;
} KubeEventInfo;

int kube_events_new(HttpClient *http, KubeEvents **ret);
/* Cancels what runs. */
KubeEvents *kube_events_free(KubeEvents *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeEvents *, kube_events_free);

/* Whether an Event for ev's pod and reason may be posted at now (monotonic); true records it.
 * False: one was posted within the window, or the table or the in-flight bound is full. */
bool kube_events_admit(KubeEvents *e, const KubeEventInfo *ev, usec_t now);
/* POSTs the Event to kc's server with creds (taken, also on failure) as node's kube2iam at
 * now_real (wall clock). */
int kube_events_post(KubeEvents *e, const KubeConfig *kc, KubeCredentials *creds, const char *node,
                     const KubeEventInfo *ev, usec_t now_real);

/* Events posted (the API server answered 201), and refused or dropped. */
unsigned long long kube_events_posted(const KubeEvents *e);
unsigned long long kube_events_dropped(const KubeEvents *e);
/* Builds the Event's JSON body (exposed for the unit test). */
int kube_event_json(const KubeEventInfo *ev, const char *node, usec_t now_real, char **ret);
