/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeWatch: the list+watch state machine of one resource, the same for every resource: what
 * differs between pods and namespaces (path, selector, how an object is read and delivered,
 * whether a 403 is survivable, whether freshness is tracked) is one row of a table in
 * kube-watch.c. It lists in pages (limit/continue) and hands the complete list to the KubeSink at
 * once, then watches from the list's resourceVersion with bookmarks and a random timeoutSeconds
 * of 5-10 minutes, as client-go does. 410 Gone (HTTP or in-stream) and malformed events re-list;
 * dropped streams, 429/5xx and silence reconnect with jittered backoff; a page too large for us is
 * asked for again in smaller pages; 401 asks the driver to refresh the credentials; 403 on a
 * resource that may be forbidden waits KUBE_FORBIDDEN_RETRY_USEC. For pods it keeps the
 * freshness rule of kube-freshness.h and tells the sink when the pods stop (and start again) to
 * be vouched for (docs/pod-store.md).
 * It does no I/O of its own: a KubeWatchDriver starts and cancels the transfers and feeds their
 * bytes and ends back in (kube-client.c does it over libcurl; the unit tests feed responses by
 * hand). Owns its timers, the list in progress, the watch parser and the error text it reports. */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "kube-freshness.h"
#include "kube-object.h"
#include "kube-sink.h"
#include "macro.h"
#include "time-util.h"
#include "watch-parser.h"

/* Reconnect backoff: doubles from the first to the last, each wait jittered to 50-100 %. */
#define KUBE_BACKOFF_FIRST_USEC (500 * USEC_PER_MSEC)
#define KUBE_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* A Retry-After beyond this is not believed: the watch must come back eventually. */
#define KUBE_RETRY_AFTER_MAX_USEC (5 * USEC_PER_MINUTE)
/* RBAC is fixed by a human: ask again for a forbidden resource this rarely. */
#define KUBE_FORBIDDEN_RETRY_USEC (5 * USEC_PER_MINUTE)
/* client-go's watch timeout: random in [5, 10) minutes, so watches of many nodes spread out. */
#define KUBE_WATCH_TIMEOUT_MIN_SEC 300
#define KUBE_WATCH_TIMEOUT_MAX_SEC 600
/* Items per list page, as kubectl and client-go's pager use. */
#define KUBE_LIST_PAGE_LIMIT 500
/* A page over KUBE_LIST_PAGE_MAX_BYTES is asked for again with half the items (same continue
 * token), down to one item: tenants can make pods of ~1.5 MiB each, and 46 of them fill a page
 * of 500. The next list starts from the size that worked, doubled. */
#define KUBE_LIST_PAGE_LIMIT_MIN 1
/* One page of 500 pods of ~20 KiB each is 10 MiB; 64 MiB bounds a broken server. */
#define KUBE_LIST_PAGE_MAX_BYTES (64 * 1024 * 1024)
/* Error bodies are only read for their message. */
#define KUBE_ERROR_BODY_MAX_BYTES (64 * 1024)

typedef struct KubeWatch KubeWatch;

/* One row of the resource table. */
typedef enum KubeResourceType {
        KUBE_RESOURCE_PODS,             /* of this node (fieldSelector=spec.nodeName=<node>) */
        KUBE_RESOURCE_NAMESPACES,       /* cluster-wide */
        KUBE_RESOURCE_SERVICE_ACCOUNTS, /* cluster-wide, with --service-account-roles only */
        _KUBE_RESOURCE_MAX,
} KubeResourceType;

/* What a resource's copy is worth; main.c turns it into words. */
typedef enum KubeSyncState {
        KUBE_SYNC_STARTING,           /* the client's alone: not started yet */
        KUBE_SYNC_WAITING_KUBECONFIG, /* the client's alone: no kubeconfig yet (kubelet bootstrap) */
        KUBE_SYNC_KUBECONFIG_INVALID, /* the client's alone: the kubeconfig cannot be used */
        KUBE_SYNC_LISTING,            /* no complete list applied yet */
        KUBE_SYNC_SYNCED,             /* a complete list applied, kept current by the watch */
        KUBE_SYNC_STALE,              /* pods: not refreshed past --pod-store-max-stale, not vouched for */
        KUBE_SYNC_FORBIDDEN, /* namespaces, serviceaccounts: 403, the credentials may not read them */
        _KUBE_SYNC_STATE_MAX,
} KubeSyncState;

/* What the machine is doing. */
typedef enum KubeWatchState {
        KUBE_WATCH_IDLE,             /* nothing running: the next step starts on kube_watch_start() */
        KUBE_WATCH_WAIT_CREDENTIALS, /* the driver fetches credentials (an exec plugin runs) */
        KUBE_WATCH_LISTING,          /* a list page transfer runs */
        KUBE_WATCH_WATCHING,         /* a watch stream runs */
        KUBE_WATCH_BACKOFF,          /* waiting before the next attempt */
        KUBE_WATCH_FORBIDDEN,        /* 403: waiting KUBE_FORBIDDEN_RETRY_USEC, then a new list */
        _KUBE_WATCH_STATE_MAX,
} KubeWatchState;

typedef enum KubeTransfer {
        KUBE_TRANSFER_LIST,  /* one page: bounded body, bounded time */
        KUBE_TRANSFER_WATCH, /* a stream: bounded by silence (the driver's idle limit) */
} KubeTransfer;

/* How a transfer ended, in the driver's words. */
typedef struct KubeResponse {
        long code;                   /* HTTP status; 0 when none arrived */
        int error;                   /* 0, or the transport's negative errno */
        bool timed_out;              /* the transport gave up on a silent (or slow) transfer */
        const char *transport_error; /* the transport's description of error; may be NULL */
        usec_t retry_after;          /* Retry-After of a 429/503, 0 when none */
} KubeResponse;

typedef struct KubeWatchDriver {
        /* Starts GET path (query included) on the API server. 1: started; 0: credentials are
         * being fetched, kube_watch_credentials_ready() follows; <0: failed (backoff). */
        int (*start)(KubeWatch *w, const char *path, KubeTransfer kind, void *userdata);
        /* Stops the running transfer; nothing more is fed for it. */
        void (*cancel)(KubeWatch *w, void *userdata);
        /* 401: the credentials were rejected; refresh them before the next start. */
        void (*unauthorized)(KubeWatch *w, void *userdata);
        void *userdata;
} KubeWatchDriver;

typedef struct KubeWatchOptions {
        KubeResourceType type;
        const char *node;     /* pods: spec.nodeName (copied) */
        KubeObjectKeys keys;  /* annotation keys (borrowed: must outlive the watch) */
        usec_t max_stale;     /* pods: --pod-store-max-stale */
        const KubeSink *sink; /* borrowed */
        KubeWatchDriver driver;
} KubeWatchOptions;

int kube_watch_new(sd_event *event, const KubeWatchOptions *o, KubeWatch **ret);
KubeWatch *kube_watch_free(KubeWatch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeWatch *, kube_watch_free);

/* Takes the next step if none runs or waits (the first list, or after the kubeconfig arrived). */
void kube_watch_start(KubeWatch *w);
/* The credentials the last start waited for are there (error 0), or could not be had. */
void kube_watch_credentials_ready(KubeWatch *w, int error);
/* The server the log lines name (copied); NULL before there is a kubeconfig. */
int kube_watch_set_server(KubeWatch *w, const char *server);
/* Pods: the node whose pods are listed (copied), decided when the kubeconfig is read (its client
 * certificate names the node); takes effect at the next list. No-op for cluster-wide resources. */
int kube_watch_set_node(KubeWatch *w, const char *node);

/* The driver's feed, for the running transfer. headers_done: the response headers ended with
 * code (a 200 on a watch means the server took our resourceVersion). receive: body bytes;
 * returns n, or 0 to stop the transfer (too large, a runaway stream). finished: the end, once. */
void kube_watch_headers_done(KubeWatch *w, long code);
size_t kube_watch_receive(KubeWatch *w, long code, const char *data, size_t n);
void kube_watch_finished(KubeWatch *w, const KubeResponse *r);

/* Warm restarts: before the first start, watch from rv (a snapshot's) instead of listing, the copy
 * restored from that snapshot counting as synced. The API server replays what changed since rv;
 * 410 Gone lists as usual, and the list replaces everything restored. */
int kube_watch_resume(KubeWatch *w, const char *rv);
/* The resourceVersion the delivered copy is current at; NULL while a list is under way (or none
 * has completed). */
const char *kube_watch_resource_version(const KubeWatch *w);
/* Lists started (first pages, continuations excluded): a warm start that resumes makes none. */
unsigned long long kube_watch_lists(const KubeWatch *w);

KubeWatchState kube_watch_state(const KubeWatch *w);
KubeSyncState kube_watch_sync_state(const KubeWatch *w);
/* Why the last attempt failed, NULL when the last one worked. */
const char *kube_watch_last_error(const KubeWatch *w);
const char *kube_watch_what(const KubeWatch *w);
unsigned long long kube_watch_events_applied(const KubeWatch *w);

const char *kube_sync_state_to_string(KubeSyncState s);
const char *kube_watch_state_to_string(KubeWatchState s);
