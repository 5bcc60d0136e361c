/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "creds.h"
#include "kube/kube-client.h"
#include "token-issuer.h"
#include "log.h"
#include "store.h"
#include "warm-start.h"

#define WARM_START_STATUS_MAX 160U

struct WarmStart {
        sd_event *event;
        char *runtime_dir;
        char *build;
        Snapshot *snapshot; /* until warm_start_restored() */
        bool warm;
        char status[WARM_START_STATUS_MAX];
        Creds *creds; /* the sources of later snapshots (not owned) */
        TokenIssuer *tokens;
        Store *store;
        KubeClient *kube;
        sd_event_source *timer;
        bool pending;
        bool can_store; /* NOTIFY_SOCKET is set: there is a PID 1 to give snapshots to */
};

static void checksum_hex(const uint8_t sum[static SNAPSHOT_CHECKSUM_BYTES], char out[static 65]) {
        for (size_t i = 0; i < SNAPSHOT_CHECKSUM_BYTES; i++)
                snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

static char *marker_path(const WarmStart *w) {
        char *p = NULL;
        if (!w->runtime_dir || asprintf(&p, "%s/%s", w->runtime_dir, WARM_START_MARKER) < 0)
                return NULL;
        return p;
}

/* True when the marker names this snapshot: the previous run died restoring it. */
static bool marker_matches(const WarmStart *w, const char *hex) {
        _cleanup_free_ char *path = marker_path(w);
        _cleanup_close_ int fd = -EBADF;
        char buf[65] = "";
        ssize_t n;

        if (!path)
                return false;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof buf - 1);
        return n == 64 && streq(buf, hex);
}

static void marker_write(const WarmStart *w, const char *hex) {
        _cleanup_free_ char *path = marker_path(w);
        _cleanup_close_ int fd = -EBADF;

        if (!path)
                return;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || write(fd, hex, 64) != 64 || fsync(fd) < 0)
                log_warning_errno(errno, "Failed to write the restore marker %s: %m", path);
}

static void marker_remove(const WarmStart *w) {
        _cleanup_free_ char *path = marker_path(w);
        if (path && unlink(path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove the restore marker %s: %m", path);
}

static void set_cold(WarmStart *w, const char *why) {
        snprintf(w->status, sizeof w->status, "cold start (%s)", why);
        w->warm = false;
}

/* Decodes fd and decides; the snapshot is already out of the store. */
static void consume(WarmStart *w, int fd) {
        uint8_t sum[SNAPSHOT_CHECKSUM_BYTES];
        char hex[65];
        int r;

        r = snapshot_from_memfd(fd, &w->snapshot, sum);
        if (r < 0) {
                const char *why = r == -EPROTONOSUPPORT ? "snapshot of another format version dropped"
                                  : r == -EPERM         ? "unsealed snapshot dropped"
                                                        : "corrupt snapshot dropped";
                log_warning_errno(r, "Starting cold: %s: %m", why);
                set_cold(w, why);
                return;
        }
        checksum_hex(sum, hex);
        if (marker_matches(w, hex)) {
                log_warning(
                        "Starting cold: the previous run stopped while restoring this snapshot; dropped");
                w->snapshot = snapshot_free(w->snapshot);
                marker_remove(w);
                set_cold(w, "snapshot dropped: it crashed the previous start");
                return;
        }
        marker_write(w, hex);
        w->warm = true;
        if (w->snapshot->pods_rv)
                snprintf(w->status, sizeof w->status,
                         "warm start (%zu role(s)%s, %zu pod(s) to confirm, from %s)", w->snapshot->n_creds,
                         w->snapshot->token_key ? ", token key" : "", w->snapshot->n_pods,
                         w->snapshot->build);
        else
                snprintf(w->status, sizeof w->status, "warm start (%zu role(s)%s, pods listed, from %s)",
                         w->snapshot->n_creds, w->snapshot->token_key ? ", token key" : "",
                         w->snapshot->build);
        log_info("Restoring a snapshot from %s: %zu credential set(s)%s", w->snapshot->build,
                 w->snapshot->n_creds, w->snapshot->token_key ? " and the IMDSv2 token key" : "");
}

int warm_start_new(sd_event *event, const char *runtime_dir, const char *build, int fd, WarmStart **ret) {
        _cleanup_close_ int owned = fd;
        _cleanup_(warm_start_freep) WarmStart *w = NULL;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->event = sd_event_ref(event);
        w->build = strdup(build);
        w->runtime_dir = runtime_dir ? strdup(runtime_dir) : NULL;
        if (!w->build || (runtime_dir && !w->runtime_dir))
                return -ENOMEM;
        w->can_store = getenv("NOTIFY_SOCKET") != NULL;
        if (owned < 0) {
                /* systemd 252 empties the store on stop: a first start, a stop/start or a reboot */
                set_cold(w, "no snapshot: first start, or the service was stopped");
                marker_remove(w); /* a run that died restoring left it; its snapshot is gone */
                *ret = TAKE_PTR(w);
                return 0;
        }
        /* consumed once: out of the store before anything is restored from it, so a snapshot that
         * kills this run is not handed to the next (the marker covers a notification PID 1 had not
         * read when we died) */
        r = sd_pid_notify(0, false, "FDSTOREREMOVE=1\nFDNAME=" SNAPSHOT_FDNAME);
        if (r > 0)
                r = sd_notify_barrier(false, WARM_START_BARRIER_USEC);
        if (r < 0)
                log_warning_errno(r, "Failed to remove the snapshot from the fd store: %m");
        consume(w, owned);
        *ret = TAKE_PTR(w);
        return 0;
}

WarmStart *warm_start_free(WarmStart *w) {
        if (!w)
                return NULL;
        w->timer = sd_event_source_disable_unref(w->timer);
        snapshot_free(w->snapshot);
        sd_event_unref(w->event);
        free(w->runtime_dir);
        free(w->build);
        free(w);
        return NULL;
}

const Snapshot *warm_start_snapshot(const WarmStart *w) {
        return w->snapshot;
}

/* The fault point of the crash-at-restore test (WARM_START_FAULT_CRASH_AT_RESTORE). */
static void restore_fault_point(const WarmStart *w) {
#if KUBE2IAM_TEST_FAULTS
        if (streq(w->snapshot->build, WARM_START_FAULT_CRASH_AT_RESTORE)) {
                log_error("Test fault point: aborting in the middle of the restore");
                abort();
        }
#endif
}

size_t warm_start_restore_creds(WarmStart *w, Creds *c) {
        size_t n = 0;

        if (!w->snapshot)
                return 0;
        restore_fault_point(w);
        for (size_t i = 0; i < w->snapshot->n_creds; i++) {
                const SnapshotCredentials *e = &w->snapshot->creds[i];
                CredsKey key = { .role_arn = e->role_arn,
                                 .external_id = e->external_id,
                                 .session_name = e->session_name,
                                 .session = e->session };
                if (creds_restore(c, &key, e->creds) >= 0)
                        n++;
        }
        return n;
}

size_t warm_start_restore_view(WarmStart *w, Store *store, KubeClient *kube) {
        Snapshot *s = w->snapshot;
        size_t n = 0;
        int r;

        if (!s || (!s->pods_rv && !s->namespaces_rv))
                return 0;
        /* the watches first: a view restored without its resume would never be confirmed */
        r = kube_client_resume(kube, s->pods_rv, s->namespaces_rv);
        if (r < 0) {
                log_warning_errno(r, "Failed to resume the watches, listing instead: %m");
                return 0;
        }
        if (s->namespaces_rv && store_namespaces_restore(store, s->namespaces, s->n_namespaces) < 0)
                log_warning("Failed to restore every namespace of the snapshot; the others are confirmed "
                            "as usual");
        if (s->pods_rv) {
                n = s->n_pods;
                if (store_pods_restore(store, TAKE_PTR(s->pods), n) < 0)
                        log_warning("Failed to restore every pod of the snapshot; the others are confirmed "
                                    "as usual");
                s->n_pods = 0;
        }
        return n;
}

void warm_start_keep_view(WarmStart *w, Store *store, KubeClient *kube) {
        w->store = store;
        w->kube = kube;
}

static void add_pod(const StorePod *pod, void *userdata) {
        Snapshot *s = userdata;
        if (s->pods_rv && snapshot_add_pod(s, pod) < 0)
                s->pods_rv = mfree(s->pods_rv); /* not all of it: none of it (the next start lists) */
}

static void add_namespace(const StoreNamespace *ns, void *userdata) {
        Snapshot *s = userdata;
        if (s->namespaces_rv && snapshot_add_namespace(s, store_namespace_name(ns)) < 0)
                s->namespaces_rv = mfree(s->namespaces_rv);
}

/* The view at the resourceVersions the watches are current at; a resource being listed is left
 * out (its next start lists). */
static int add_view(WarmStart *w, Snapshot *s) {
        int r;

        if (!w->store || !w->kube)
                return 0;
        r = snapshot_set_view(s, kube_client_resource_version(w->kube, KUBE_RESOURCE_PODS),
                              kube_client_resource_version(w->kube, KUBE_RESOURCE_NAMESPACES));
        if (r < 0)
                return r;
        store_foreach_pod(w->store, add_pod, s);
        if (!store_namespaces_known(w->store))
                s->namespaces_rv = mfree(s->namespaces_rv);
        store_foreach_namespace(w->store, add_namespace, s);
        snapshot_clear_view(s);
        return 0;
}

static int add_creds(const CredsKey *key, Credentials *creds, void *userdata) {
        if (!creds->session_token)
                return 0; /* long-term keys are never cached; nothing to keep */
        return snapshot_add_credentials(userdata, key, creds);
}

static int push(WarmStart *w) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        w->pending = false;
        if (!w->can_store)
                return 0;
        r = snapshot_new(&s);
        if (r >= 0 && w->tokens)
                r = snapshot_set_token_key(s, token_issuer_key(w->tokens));
        if (r >= 0 && w->creds)
                r = creds_foreach_valid(w->creds, add_creds, s);
        if (r >= 0)
                r = add_view(w, s);
        if (r >= 0)
                r = snapshot_to_memfd(s, w->build, &fd);
        if (r < 0)
                return log_warning_errno(r, "Failed to write a snapshot, the next start may be cold: %m");
        /* one snapshot in the store: the old one goes first (the store keeps same-named fds side by
         * side); a crash between the two messages means a cold start, never a stale snapshot */
        r = sd_pid_notify(0, false, "FDSTOREREMOVE=1\nFDNAME=" SNAPSHOT_FDNAME);
        if (r >= 0)
                r = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=" SNAPSHOT_FDNAME, &fd, 1);
        if (r < 0)
                return log_warning_errno(r, "Failed to hand a snapshot to systemd: %m");
        log_debug("Snapshot stored: %zu credential set(s), %zu pod(s), %zu namespace(s)", s->n_creds,
                  s->n_pods, s->n_namespaces);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) push(userdata);
        return 0;
}

void warm_start_restored(WarmStart *w, Creds *c, TokenIssuer *t) {
        w->creds = c;
        w->tokens = t;
        w->snapshot = snapshot_free(w->snapshot);
        (void) push(w);
        marker_remove(w);
        if (w->warm && w->runtime_dir && t)
                /* the store has carried the key: the copy on tmpfs is no longer what keeps tokens */
                (void) token_issuer_remove_key_file(w->runtime_dir);
}

void warm_start_changed(WarmStart *w) {
        int r;

        if (!w || !w->can_store || w->pending)
                return;
        w->pending = true;
        if (!w->timer) {
                r = sd_event_add_time_relative(w->event, &w->timer, CLOCK_MONOTONIC,
                                               WARM_START_COALESCE_USEC, 100 * USEC_PER_MSEC, on_timer, w);
                if (r < 0) {
                        (void) push(w);
                        return;
                }
                (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
                return;
        }
        (void) sd_event_source_set_time_relative(w->timer, WARM_START_COALESCE_USEC);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

void warm_start_flush(WarmStart *w) {
        if (w && (w->pending || (w->can_store && w->store)))
                (void) push(w);
}

const char *warm_start_status(const WarmStart *w) {
        return w->status;
}

bool warm_start_is_warm(const WarmStart *w) {
        return w->warm;
}
