/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* NodeCredentials: the node's own AWS identity, which signs every AssumeRole. In the order of
 * kube2iam's AWS SDK: the profile named by AWS_PROFILE; AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN from the environment (never refreshed); AWS_WEB_IDENTITY_TOKEN_FILE with
 * AWS_ROLE_ARN (AssumeRoleWithWebIdentity, refreshed); the default profile of the shared files
 * (shared-config.h: static keys or a web identity); else the instance profile from the upstream
 * IMDS (IMDSv2 token, then iam/security-credentials/ and /<role>), refreshed well before expiry.
 * What the SDK also read but we cannot honour (credential_process, SSO, a role assumed from
 * another profile, container credentials) is refused at start with one line, never replaced by
 * the instance profile. An outage keeps the current credentials while they are valid. These
 * credentials are never served to pods. */

#include <systemd/sd-event.h>

#include "credentials.h"

typedef struct UpstreamClient UpstreamClient;
typedef struct StsClient StsClient;
typedef struct NodeCredentials NodeCredentials;

/* Refresh instance-profile credentials when this much life is left: IMDS itself has new ones at
 * least five minutes before expiry, and this leaves several retries before an outage hurts. */
#define NODE_CREDENTIALS_REFRESH_BEFORE_USEC (15 * USEC_PER_MINUTE)
/* Even long-lived credentials are re-read this often, so a changed instance profile is noticed. */
#define NODE_CREDENTIALS_REFRESH_MAX_USEC (60 * USEC_PER_MINUTE)
/* Retry after a failed IMDS read: first and longest wait. */
#define NODE_CREDENTIALS_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define NODE_CREDENTIALS_RETRY_MAX_USEC (60 * USEC_PER_SEC)
/* Below this much life, credentials are not used to sign (STS would see them expire in flight). */
#define NODE_CREDENTIALS_MIN_LIFE_USEC (1 * USEC_PER_MINUTE)

/* imds may be NULL when only the environment may provide credentials. Reads the environment and the
 * shared files now: -EINVAL when they hold a partial or malformed key pair, -EOPNOTSUPP for a source
 * we refuse, -ENOENT for an AWS_PROFILE that does not exist (each logged in one line). */
int node_credentials_new(sd_event *event, UpstreamClient *imds, NodeCredentials **ret);
/* The STS client for AssumeRoleWithWebIdentity (not owned; set before node_credentials_start()). */
void node_credentials_set_sts(NodeCredentials *n, StsClient *sts);
NodeCredentials *node_credentials_free(NodeCredentials *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(NodeCredentials *, node_credentials_free);

/* Starts fetching (and keeps refreshing) the instance-profile credentials; a no-op with env keys. */
int node_credentials_start(NodeCredentials *n);
/* The current credentials with at least NODE_CREDENTIALS_MIN_LIFE_USEC left, borrowed; NULL when none. */
Credentials *node_credentials_get(NodeCredentials *n);
/* "env", "imds", "profile NAME (FILE)" or "web identity ROLE (FILE)" (for the startup log line). */
const char *node_credentials_source(const NodeCredentials *n);
/* Sets credentials directly (tests and tools); takes a reference. */
void node_credentials_set(NodeCredentials *n, Credentials *c);
