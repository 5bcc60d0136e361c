/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Snapshot: what a warm restart keeps (issue 16, docs/warm-restart.md). This module owns the
 * format and the sealed memfd that carries it through systemd's file descriptor store; main.c
 * decides when to push one and what to do with the one it is handed.
 *
 * Format (all integers little endian):
 *   "K2ISNAP\n"  8 bytes magic
 *   u32          SNAPSHOT_FORMAT_VERSION
 *   u32 + bytes  the build that wrote it (KUBE2IAM_VERSION and commit), for the journal: an upgrade
 *                keeps the snapshot; what it may contain is decided by the format version alone,
 *                which every change to the records bumps
 *   records      u8 type, u32 length, payload
 *   32 bytes     SHA-256 over everything before it
 * Records: SNAPSHOT_RECORD_TOKEN_KEY (the IMDSv2 key, TOKEN_KEY_BYTES) at most once, and up to
 * CREDS_MAX_ENTRIES SNAPSHOT_RECORD_CREDENTIALS: the cache key (role ARN, external id, session name,
 * session parameters: "" for absent), access key id, secret key, session token (each u32 length +
 * bytes), expiration and last update (u64 realtime usec). Version 1 had no session name or
 * parameters (default sessions only); it is dropped like any other version.
 * Then the view (version 2): SNAPSHOT_RECORD_VIEW per resource kept, with its resourceVersion;
 * SNAPSHOT_RECORD_POD (uid, namespace, name, phase, resourceVersion, then role, external id, service
 * account each u8 present + string, u8 flags: host network, terminating; u8 count + the IPs) and
 * SNAPSHOT_RECORD_NAMESPACE (its name: a restored namespace's annotations are asked of the API
 * server before they decide anything). Pods or
 * namespaces without the VIEW record of their resource are refused.
 * An unknown record type, a short field, trailing bytes or a bad checksum reject the whole snapshot:
 * a snapshot is either understood entirely or not used at all.
 *
 * Secrets: the encoded buffer and the memfd's mapping are wiped before they are released; the
 * memfd is sealed against writes, growth and shrinking before it leaves the process, and only
 * PID 1 ever receives it. Nothing here logs a secret. */

#include <stddef.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "creds.h"
#include "kube/kube-pod.h"
#include "macro.h"
#include "secret.h"

#define SNAPSHOT_MAGIC "K2ISNAP\n"
#define SNAPSHOT_MAGIC_LEN 8U
#define SNAPSHOT_FORMAT_VERSION 2U
#define SNAPSHOT_CHECKSUM_BYTES 32U
/* The name the memfd has in the fd store (FDNAME=). */
#define SNAPSHOT_FDNAME "snapshot"
/* A build identifier longer than this is not ours. */
#define SNAPSHOT_BUILD_MAX 256U
/* 5,000 roles x (ARN 2,048 + external id 1,224 + keys and a session token of a few KiB) stays far
 * below this; anything larger is not a snapshot we wrote. */
#define SNAPSHOT_SIZE_MAX (64U * 1024U * 1024U)
/* Up to CREDS_MAX_ENTRIES credential records (creds.h). */
#define SNAPSHOT_CREDS_MAX 5000U

/* The pods of one node: max-pods is 110 by default and 737 on the largest instance types. */
#define SNAPSHOT_PODS_MAX 4096U
/* Namespaces are cluster-wide: 100,000 names of at most 63 bytes stay far within SNAPSHOT_SIZE_MAX. */
#define SNAPSHOT_NAMESPACES_MAX 100000U

typedef enum SnapshotRecordType {
        SNAPSHOT_RECORD_TOKEN_KEY = 1,
        SNAPSHOT_RECORD_CREDENTIALS = 2,
        SNAPSHOT_RECORD_VIEW = 3,      /* u8 resource (KubeResourceType), the resourceVersion */
        SNAPSHOT_RECORD_POD = 4,       /* one KubePod */
        SNAPSHOT_RECORD_NAMESPACE = 5, /* one namespace's name */
} SnapshotRecordType;

typedef struct SnapshotCredentials {
        char *role_arn;
        char *external_id;  /* "" for none */
        char *session_name; /* "" for kube2iam's (from the caller's address) */
        char *session;      /* session parameters, "" for none */
        Credentials *creds;
} SnapshotCredentials;

typedef struct Snapshot {
        char *build;       /* decoded: the build that wrote it */
        Secret *token_key; /* NULL: none kept */
        SnapshotCredentials *creds;
        size_t n_creds;
        /* The pod and namespace view and the resourceVersion it is current at (NULL: not kept; then
         * no pod, or no namespace, is in it). */
        char *pods_rv;
        KubePod **pods;
        size_t n_pods;
        char *namespaces_rv;
        char **namespaces; /* names only: what a namespace's annotations say is asked again */
        size_t n_namespaces;
} Snapshot;

int snapshot_new(Snapshot **ret);
Snapshot *snapshot_free(Snapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Snapshot *, snapshot_free);

/* Copies key (TOKEN_KEY_BYTES bytes) into the snapshot. */
int snapshot_set_token_key(Snapshot *s, const Secret *key);
/* Copies key and takes a new reference to creds. -E2BIG beyond SNAPSHOT_CREDS_MAX. */
int snapshot_add_credentials(Snapshot *s, const CredsKey *key, Credentials *creds);

/* The view: pods_rv and namespaces_rv (either may be NULL: that resource is not kept). */
int snapshot_set_view(Snapshot *s, const char *pods_rv, const char *namespaces_rv);
/* Frees the pods when pods_rv is NULL, the namespaces when namespaces_rv is: a view not kept. */
void snapshot_clear_view(Snapshot *s);
/* Copies pod. -E2BIG beyond SNAPSHOT_PODS_MAX. */
int snapshot_add_pod(Snapshot *s, const KubePod *pod);
/* Copies name. -E2BIG beyond SNAPSHOT_NAMESPACES_MAX. */
int snapshot_add_namespace(Snapshot *s, const char *name);

/* Encodes s for build. *ret is wiped and freed by the caller (erase_and_free()). */
int snapshot_encode(const Snapshot *s, const char *build, char **ret, size_t *ret_size);
/* Decodes buf. -EPROTO: not a snapshot (magic); -EPROTONOSUPPORT: another format version;
 * -EBADMSG: bad checksum, truncated, or a record we do not understand. */
int snapshot_decode(const void *buf, size_t size, Snapshot **ret);

/* The sealed memfd holding s (mapped only while written). */
int snapshot_to_memfd(const Snapshot *s, const char *build, int *ret_fd);
/* Decodes the memfd fd (not closed): it must be sealed against writes, growth and shrinking
 * (-EPERM otherwise), and is mapped only while read. ret_checksum (optional, 32 bytes) receives
 * the trailer, which names this snapshot in the restore marker. */
int snapshot_from_memfd(int fd, Snapshot **ret, uint8_t *ret_checksum);
