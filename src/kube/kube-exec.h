/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeExec: one run of a kubeconfig exec credential plugin (client.authentication.k8s.io v1beta1
 * and v1; EKS nodes run `aws eks get-token`), on the sd-event loop without blocking: the child is
 * watched by sd-event (SIGCHLD must be blocked before the first run), its stdout and stderr through non-blocking pipes, with a deadline
 * and bounded output. Owns the child until it is reaped (freeing a run kills the plugin). The
 * result is parsed from the ExecCredential into KubeCredentials (token or client certificate and
 * key, expirationTimestamp). Caching and re-running on 401 are the caller's (kube-client). */

#include <systemd/sd-event.h>

#include "kubeconfig.h"
#include "macro.h"

/* `aws eks get-token` starts Python and calls nothing remote (it presigns locally): a second or
 * two on a loaded node. 30 s tolerates a slow first start without letting a hung plugin block
 * the watch forever. */
#define KUBE_EXEC_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* An ExecCredential with a client certificate and key is a few KiB; 64 KiB is ample. */
#define KUBE_EXEC_MAX_STDOUT (64 * 1024)
/* Only kept to say why a plugin failed. */
#define KUBE_EXEC_MAX_STDERR (4 * 1024)

typedef struct KubeExec KubeExec;

/* Called once with the credentials (owned by the callee: take them with TAKE_PTR or leave them
 * to be freed) or a negative errno; the failure is already logged. The run may be freed from
 * the callback. */
typedef void (*kube_exec_done_t)(KubeExec *x, int error, KubeCredentials **creds, void *userdata);

/* Starts k->exec. */
int kube_exec_start(sd_event *event, const KubeConfig *k, kube_exec_done_t done, void *userdata,
                    KubeExec **ret);
/* Kills a plugin still running (no callback). */
KubeExec *kube_exec_free(KubeExec *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeExec *, kube_exec_free);

/* Parses a plugin's stdout. what names the plugin in error messages. */
int kube_exec_parse_credential(const char *json, size_t size, const char *api_version, const char *what,
                               KubeCredentials **ret);
