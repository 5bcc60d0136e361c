/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* UpstreamClient: the daemon's own client of the upstream (real) instance-metadata service, on the loop.
 * Owns the IMDSv2 session token (PUT /latest/api/token, reused until shortly before its TTL ends,
 * renewed on 401, IMDSv1 fallback on 403/404/405 as the SDKs do) and the few reads the daemon
 * needs: placement/region (STS endpoint), iam/info (--auto-discover-base-arn), the instance role
 * name (--auto-discover-default-role) and the instance-profile credentials (node-credentials.h). */

#include <stdint.h>

#include "credentials.h"

typedef struct HttpClient HttpClient;
typedef struct UpstreamClient UpstreamClient;

/* Our own token lives as long as IMDS allows (6 h); renewed a minute before it ends. */
#define UPSTREAM_TOKEN_TTL_SEC 21600
#define UPSTREAM_TOKEN_RENEW_BEFORE_USEC (60 * USEC_PER_SEC)
/* IMDS answers locally in milliseconds; two seconds means it is not answering. */
#define UPSTREAM_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* Every document we read is tiny (a credentials JSON is ~1.5 KB). */
#define UPSTREAM_REPLY_MAX_BYTES (64 * 1024)

/* error < 0 on transport failure or a non-200 status (-ENOENT for 404, -EACCES for 401/403, -EIO otherwise).
 * The body is only valid during the callback. */
typedef void (*upstream_done_t)(UpstreamClient *c, int error, long status, const char *body, size_t size,
                                void *userdata);
typedef void (*upstream_string_done_t)(UpstreamClient *c, int error, const char *value, void *userdata);
/* creds borrowed (credentials_ref() to keep). */
typedef void (*upstream_credentials_done_t)(UpstreamClient *c, int error, Credentials *creds,
                                            void *userdata);

/* host is Config.metadata_host (IPv6 without brackets), port Config.metadata_port. */
int upstream_client_new(HttpClient *http, const char *host, uint16_t port, UpstreamClient **ret);
/* Aborts running reads without calling their callbacks. */
UpstreamClient *upstream_client_free(UpstreamClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(UpstreamClient *, upstream_client_free);

/* GET /latest/<path> (path without a leading '/', e.g. "meta-data/placement/region"). */
int upstream_client_get(UpstreamClient *c, const char *path, upstream_done_t done, void *userdata);
/* meta-data/placement/region, validated as a region name. */
int upstream_client_get_region(UpstreamClient *c, upstream_string_done_t done, void *userdata);
/* InstanceProfileArn from meta-data/iam/info. */
int upstream_client_get_instance_profile_arn(UpstreamClient *c, upstream_string_done_t done, void *userdata);
/* The first line of meta-data/iam/security-credentials/ (the instance role's name). */
int upstream_client_get_role_name(UpstreamClient *c, upstream_string_done_t done, void *userdata);
/* The instance role's credentials (role name, then meta-data/iam/security-credentials/<role>). */
int upstream_client_get_credentials(UpstreamClient *c, upstream_credentials_done_t done, void *userdata);

/* The daemon's current upstream session token (a copy to wipe and free), for the requests pods
 * make through the proxy: 1 and *ret set, or 0 and *ret NULL when there is none (IMDSv1, or none
 * fetched yet: every read above fetches one). */
int upstream_client_token(UpstreamClient *c, char **ret);
/* Parses an IMDS credentials document; for tests and the node's credentials. */
int upstream_parse_credentials(const char *body, size_t size, usec_t now_realtime, Credentials **ret);
