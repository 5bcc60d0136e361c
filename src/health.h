/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Health: the state behind /healthz. Every HEALTH_CHECK_INTERVAL it asks the upstream IMDS for
 * the instance id (through the daemon's IMDS client, IMDSv2 token included), keeps the last
 * answer, and renders kube2iam's body {"hostIP":"...","instanceId":"..."} plus whether the pod
 * cache is synced. /healthz reports the daemon's own health: an IMDS that is slow or down is
 * reported in the body and the kube2iam_healthcheck_status gauge, never by failing the probe
 * (kube2iam #232, #251). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "string-util.h"
#include "time-util.h"

#define HEALTH_CHECK_INTERVAL (30 * USEC_PER_SEC)
#define HEALTH_RETRY_INTERVAL (5 * USEC_PER_SEC)
/* An instance id is "i-" and 8 or 17 hex digits; anything longer is not one. */
#define HEALTH_INSTANCE_ID_MAX 64

typedef struct Health Health;
typedef struct UpstreamClient UpstreamClient;

int health_new(sd_event *event, UpstreamClient *imds, const char *host_ip, Health **ret);
Health *health_free(Health *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Health *, health_free);

/* Starts the periodic check (the first one runs at once). */
int health_start(Health *h);
/* Whether the last check reached the upstream IMDS. */
bool health_imds_ok(const Health *h);
/* Appends the /healthz JSON body (with a trailing newline, as Go's encoder writes it). */
void health_render(const Health *h, bool synced, StrBuf *out);
