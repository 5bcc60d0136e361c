/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* RestartBackoff: a growing pause between failed starts, which systemd 252 cannot give (no
 * RestartSteps=; a start limit would, once hit, also close kube2iam.socket, and pods would be
 * refused instead of waiting). The daemon keeps how its recent starts ended in a small file in
 * $RUNTIME_DIRECTORY (kept across restarts by RuntimeDirectoryPreserve=, gone at reboot), and
 * waits before serving (after a crash) or before exiting 2 (a configuration error that pods'
 * connections keep re-triggering through the socket) while connections wait in the backlog.
 *
 *   - a clean exit (SIGTERM: stop, restart, upgrade) clears the history: no pause after it;
 *   - an instance that ran RESTART_BACKOFF_HEALTHY_RUN or longer was not a crash loop;
 *   - a configuration error only delays the next configuration error, never a corrected start.
 *
 * Without $RUNTIME_DIRECTORY (run by hand, tests) there is no history and no pause. */

#include <stdbool.h>

#include "time-util.h"

#define RESTART_BACKOFF_FILE "restart-backoff"
/* The pause after the first quick failure; it doubles with each one after it. systemd's own
 * RestartSec=1s comes on top. */
#define RESTART_BACKOFF_BASE (1 * USEC_PER_SEC)
/* At most this long: well within TimeoutStartSec (90 s) and WatchdogSec (30 s, pinged while
 * waiting anyway), and a pod's SDK retries its credentials within about as long. */
#define RESTART_BACKOFF_MAX (16 * USEC_PER_SEC)
/* An instance that lived this long was serving, not crash-looping. */
#define RESTART_BACKOFF_HEALTHY_RUN (60 * USEC_PER_SEC)

typedef enum RestartKind {
        RESTART_SERVE,        /* the configuration is valid: this instance will serve */
        RESTART_CONFIG_ERROR, /* this instance exits 2 */
} RestartKind;

/* Records this start (at now, CLOCK_BOOTTIME) in dir and returns in *ret_delay how long to wait
 * first, from the history the previous instances left. dir NULL: *ret_delay = 0. Errors reading
 * or writing the history are not fatal: -errno, with *ret_delay = 0. */
int restart_backoff_begin(const char *dir, RestartKind kind, usec_t now, usec_t *ret_delay);
/* A clean exit: the next start does not wait. */
int restart_backoff_clean_exit(const char *dir);
