/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* AwsProfile: one profile of the AWS shared credentials and config files (~/.aws/credentials,
 * ~/.aws/config, or $AWS_SHARED_CREDENTIALS_FILE / $AWS_CONFIG_FILE), as kube2iam's AWS SDK read
 * them for the node's own identity. Owns the INI reading and the profile's credential keys; which
 * source wins is node-credentials.h's business. The secret key and session token are Secrets. */

#include <stdbool.h>

#include "macro.h"
#include "secret.h"

/* Shared files are a few kilobytes; this bounds what a stray path can make us read. */
#define AWS_SHARED_FILE_MAX (1024 * 1024)

typedef struct AwsProfile {
        char *name;
        char *access_key_id;           /* aws_access_key_id */
        Secret *secret_access_key;     /* aws_secret_access_key */
        Secret *session_token;         /* aws_session_token */
        char *role_arn;                /* role_arn */
        char *web_identity_token_file; /* web_identity_token_file */
        char *role_session_name;       /* role_session_name */
        char *unsupported; /* the first credential key we cannot honour (credential_process, ...) */
        bool found;        /* a section of this name exists in either file */
} AwsProfile;

/* Reads the profile from the credentials file text, then the config file text (either NULL);
 * a key in the credentials file wins. Sections: "[name]" in credentials, "[profile name]" (or
 * "[default]") in config. -EINVAL for a line that is none of section, key = value, comment, blank
 * or an indented sub-key. */
int aws_profile_parse(const char *credentials_text, const char *config_text, const char *name,
                      AwsProfile **ret);
/* The same from files; a missing file is no error. Paths NULL: the default under $HOME. */
int aws_profile_load(const char *credentials_path, const char *config_path, const char *name,
                     AwsProfile **ret);
AwsProfile *aws_profile_free(AwsProfile *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(AwsProfile *, aws_profile_free);

/* True when the profile names any credential (static keys, a role, a process, SSO). */
bool aws_profile_has_credentials(const AwsProfile *p);
