/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Doctor: `kube2iam doctor`, the checks an operator runs on a node (or a Packer build runs on an
 * image), one line each with a verdict and the fix (docs/explain.md, "kube2iam doctor"). Owns the
 * checks that need no daemon (the redirect, the upstream IMDS, the kubeconfig) and the reading of
 * the daemon's own status (the explain socket's "?status" query: READY, synced, its socket's
 * port, pods routed around --host-interface). */

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* The query the explain socket answers with the daemon's status: no pod name or address starts
 * with '?' (Kubernetes names are DNS labels). */
#define DOCTOR_STATUS_QUERY "?status"
/* Each request to the upstream IMDS or STS: both answer in milliseconds from EC2. */
#define DOCTOR_IMDS_TIMEOUT_MS 2000L

typedef enum DoctorVerdict {
        DOCTOR_PASS,
        DOCTOR_FAIL,
        DOCTOR_SKIP, /* not applicable here (says why); does not fail the run */
} DoctorVerdict;

typedef struct DoctorOptions {
        const Config *config;
        const char *runtime_dir; /* where the daemon's explain socket is */
        bool skip_cluster;       /* --skip-cluster: no API server here (an image build) */
} DoctorOptions;

/* Runs every check, printing one line each to out. Returns true when none failed. */
bool doctor_run(const DoctorOptions *o, FILE *out);
