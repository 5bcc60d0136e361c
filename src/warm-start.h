/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* WarmStart: the daemon's side of systemd's file descriptor store (issue 16, docs/warm-restart.md).
 * It owns the snapshot handed back at start (consumed once: removed from the store, with a barrier,
 * before anything is restored from it), the restore marker in $RUNTIME_DIRECTORY that drops a
 * snapshot which crashed the previous run, the coalesced pushes of new snapshots after changes worth
 * keeping, and the warm/cold line STATUS= shows. Only systemd 252 interfaces: FDSTORE=1, FDNAME=,
 * FDSTOREREMOVE=1, sd_notify_barrier() and sd_listen_fds_with_names(). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "snapshot.h"
#include "time-util.h"

typedef struct Creds Creds;
typedef struct KubeClient KubeClient;
typedef struct Store Store;
typedef struct TokenIssuer TokenIssuer;
typedef struct WarmStart WarmStart;

/* Changes within this window go into one snapshot: a burst of new roles (a node filling up) costs
 * one memfd, not one per role; a restart within it at worst re-assumes the roles of that second. */
#define WARM_START_COALESCE_USEC (1 * USEC_PER_SEC)
/* How long to wait for PID 1 to confirm it dropped the snapshot before restoring from it. */
#define WARM_START_BARRIER_USEC (5 * USEC_PER_SEC)
/* -Dtest_faults=true builds only: a snapshot written by this "build" aborts the daemon in the middle
 * of its restore (after the marker is written), as a snapshot that crashes the daemon would. The
 * parser accepts it like any other; release builds compile the fault point out. */
#define WARM_START_FAULT_CRASH_AT_RESTORE "test-fault: crash at restore"
/* The restore marker's name under $RUNTIME_DIRECTORY. */
#define WARM_START_MARKER "snapshot-restoring"

/* fd: the memfd systemd handed back under SNAPSHOT_FDNAME, or -EBADF for none; taken (closed here).
 * runtime_dir: $RUNTIME_DIRECTORY or NULL (no marker then: a snapshot is still consumed once).
 * Never fails on a bad snapshot: that is a cold start with a reason. */
int warm_start_new(sd_event *event, const char *runtime_dir, const char *build, int fd, WarmStart **ret);
WarmStart *warm_start_free(WarmStart *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(WarmStart *, warm_start_free);

/* The snapshot being restored, NULL on a cold start. Valid until warm_start_restored(). */
const Snapshot *warm_start_snapshot(const WarmStart *w);
/* Puts the snapshot's valid credentials into c; returns how many were restored. */
size_t warm_start_restore_creds(WarmStart *w, Creds *c);
/* Puts the snapshot's pod and namespace view into store, marked unconfirmed (store.h), and has the
 * kube client's watches resume from the resourceVersions it is current at, instead of listing.
 * Before kube_client_start(). Returns how many pods were restored. */
size_t warm_start_restore_view(WarmStart *w, Store *store, KubeClient *kube);
/* Later snapshots carry store's view at the resourceVersions kube's watches are current at. */
void warm_start_keep_view(WarmStart *w, Store *store, KubeClient *kube);
/* Restoring is over: the marker goes, the snapshot is freed, and the sources of every later
 * snapshot are c and t; one is pushed now, so a crash from here on restarts warm. */
void warm_start_restored(WarmStart *w, Creds *c, TokenIssuer *t);
/* Something worth keeping changed: a snapshot is pushed within WARM_START_COALESCE_USEC. */
void warm_start_changed(WarmStart *w);
/* Pushes at once if a change is pending, or the view is kept (its resourceVersion moves with every
 * bookmark): shutdown. */
void warm_start_flush(WarmStart *w);
/* "warm start (...)" or "cold start (why)", for STATUS= and the journal. */
const char *warm_start_status(const WarmStart *w);
bool warm_start_is_warm(const WarmStart *w);
