/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "upstream-client.h"
#include "log.h"
#include "node-credentials.h"
#include "shared-config.h"
#include "string-util.h"
#include "sts-client.h"

typedef enum NodeSource {
        NODE_SOURCE_IMDS,
        NODE_SOURCE_ENV,
        NODE_SOURCE_PROFILE,
        NODE_SOURCE_WEB_IDENTITY,
} NodeSource;

struct NodeCredentials {
        sd_event *event;
        UpstreamClient *imds;
        StsClient *sts; /* web identity only; not owned */
        StsCall *call;
        Credentials *current;
        NodeSource source;
        char *description; /* "profile ops (/etc/kube2iam/aws/credentials)", for the start-up line */
        char *web_role_arn, *web_token_file, *web_session_name;
        bool fetching;
        sd_event_source *timer;
        usec_t retry; /* current backoff after failures */
};

/* Static keys (environment or profile): never refreshed. */
static int set_static(NodeCredentials *n, const char *key, const char *secret, size_t secret_len,
                      const Secret *token, const char *what) {
        Secret *s = NULL, *t = NULL;
        int r;

        r = secret_new(secret, secret_len, &s);
        if (r >= 0 && token)
                r = secret_dup(token, &t);
        if (r < 0) {
                secret_free(s);
                return r;
        }
        r = credentials_new(key, s, t, USEC_INFINITY, now_realtime(), &n->current);
        if (r < 0)
                return log_error_errno(r, "%s: the access key id is not a valid access key id", what);
        return 0;
}

static int from_env(NodeCredentials *n, const char *key, const char *secret, const char *token) {
        _cleanup_(secret_freep) Secret *t = NULL;
        int r;

        if (isempty(key) || isempty(secret))
                return log_error_errno(-EINVAL,
                                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
        if (!isempty(token) && (r = secret_new(token, strlen(token), &t)) < 0)
                return r;
        n->source = NODE_SOURCE_ENV;
        return set_static(n, key, secret, strlen(secret), t, "AWS_ACCESS_KEY_ID");
}

static int set_web_identity(NodeCredentials *n, const char *role_arn, const char *token_file,
                            const char *session_name, const char *what) {
        if (isempty(role_arn) || isempty(token_file))
                return log_error_errno(
                        -EINVAL,
                        "%s: a web identity token file needs a role ARN (AWS_ROLE_ARN or role_arn) "
                        "and the reverse",
                        what);
        n->source = NODE_SOURCE_WEB_IDENTITY;
        n->web_role_arn = strdup(role_arn);
        n->web_token_file = strdup(token_file);
        /* the SDKs' default when AWS_ROLE_SESSION_NAME is unset is a generated name too */
        n->web_session_name = strdup(!isempty(session_name) ? session_name : "kube2iam-node");
        if (!n->web_role_arn || !n->web_token_file || !n->web_session_name)
                return -ENOMEM;
        if (asprintf(&n->description, "web identity %s (%s)", role_arn, token_file) < 0)
                n->description = NULL;
        return 0;
}

/* A profile that names credentials: static keys or a web identity; anything else is refused. */
static int from_profile(NodeCredentials *n, const AwsProfile *p) {
        const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");

        if (p->unsupported)
                return log_error_errno(
                        -EOPNOTSUPP,
                        "AWS profile \"%s\" gets its credentials with %s, which kube2iam does not "
                        "support for the node's identity: give static keys or a "
                        "web_identity_token_file in the profile, or use the instance profile",
                        p->name, p->unsupported);
        if (p->web_identity_token_file)
                return set_web_identity(n, p->role_arn, p->web_identity_token_file, p->role_session_name,
                                        "AWS profile");
        if (p->role_arn)
                return log_error_errno(
                        -EOPNOTSUPP,
                        "AWS profile \"%s\" assumes %s from another identity (role_arn without "
                        "web_identity_token_file), which kube2iam does not support for the "
                        "node's identity: give static keys in the profile instead",
                        p->name, p->role_arn);
        if (!p->access_key_id || !p->secret_access_key)
                return log_error_errno(
                        -EINVAL,
                        "AWS profile \"%s\": aws_access_key_id and aws_secret_access_key must be "
                        "set together",
                        p->name);
        n->source = NODE_SOURCE_PROFILE;
        if (asprintf(&n->description, "profile %s (%s)", p->name, file ?: "~/.aws/credentials") < 0)
                n->description = NULL;
        return set_static(n, p->access_key_id, secret_reveal(p->secret_access_key),
                          secret_size(p->secret_access_key), p->session_token, "AWS profile");
}

/* The order of kube2iam's SDK: an explicit AWS_PROFILE, environment keys, the web identity
 * environment, the default profile, container credentials (refused), the instance profile. */
static int choose_source(NodeCredentials *n) {
        const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY"),
                   *profile = getenv("AWS_PROFILE") ?: getenv("AWS_DEFAULT_PROFILE"),
                   *web_file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), *web_role = getenv("AWS_ROLE_ARN");
        _cleanup_(aws_profile_freep) AwsProfile *p = NULL;
        int r;

        if (!isempty(profile)) {
                r = aws_profile_load(getenv("AWS_SHARED_CREDENTIALS_FILE"), getenv("AWS_CONFIG_FILE"),
                                     profile, &p);
                if (r < 0)
                        return r;
                if (!p->found)
                        return log_error_errno(
                                -ENOENT,
                                "AWS_PROFILE=%s: no such profile in the AWS credentials or config "
                                "file",
                                profile);
                if (aws_profile_has_credentials(p))
                        return from_profile(n, p);
        } else if (!isempty(key) || !isempty(secret))
                return from_env(n, key, secret, getenv("AWS_SESSION_TOKEN"));
        else if (!isempty(web_file) || !isempty(web_role))
                return set_web_identity(n, web_role, web_file, getenv("AWS_ROLE_SESSION_NAME"),
                                        "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN");
        else {
                r = aws_profile_load(getenv("AWS_SHARED_CREDENTIALS_FILE"), getenv("AWS_CONFIG_FILE"),
                                     "default", &p);
                if (r < 0)
                        return r;
                if (aws_profile_has_credentials(p))
                        return from_profile(n, p);
        }
        if (!isempty(getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")) ||
            !isempty(getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")))
                return log_error_errno(
                        -EOPNOTSUPP, "AWS_CONTAINER_CREDENTIALS_*_URI is set: container credentials are not "
                                     "supported for the node's identity; unset it to use the instance "
                                     "profile, or give keys or a profile");
        n->source = NODE_SOURCE_IMDS;
        return 0;
}

int node_credentials_new(sd_event *event, UpstreamClient *imds, NodeCredentials **ret) {
        _cleanup_(node_credentials_freep) NodeCredentials *n = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->event = event ? sd_event_ref(event) : NULL;
        n->imds = imds;
        r = choose_source(n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(n);
        return 0;
}

void node_credentials_set_sts(NodeCredentials *n, StsClient *sts) {
        if (n)
                n->sts = sts;
}

NodeCredentials *node_credentials_free(NodeCredentials *n) {
        if (!n)
                return NULL;
        sts_call_cancel(n->call);
        credentials_unref(n->current);
        sd_event_source_disable_unref(n->timer);
        sd_event_unref(n->event);
        free(n->description);
        free(n->web_role_arn);
        free(n->web_token_file);
        free(n->web_session_name);
        free(n);
        return NULL;
}

const char *node_credentials_source(const NodeCredentials *n) {
        if (!n)
                return "imds";
        switch (n->source) {
        case NODE_SOURCE_ENV:
                return "env";
        case NODE_SOURCE_PROFILE:
        case NODE_SOURCE_WEB_IDENTITY:
                return n->description ?: "profile";
        default:
                return "imds";
        }
}

Credentials *node_credentials_get(NodeCredentials *n) {
        if (!n || !n->current)
                return NULL;
        if (credentials_remaining(n->current, now_realtime()) < NODE_CREDENTIALS_MIN_LIFE_USEC)
                return NULL;
        return n->current;
}

void node_credentials_set(NodeCredentials *n, Credentials *c) {
        if (!n)
                return;
        credentials_unref(n->current);
        n->current = credentials_ref(c);
}

static int schedule(NodeCredentials *n, usec_t delay);

static void got_credentials(NodeCredentials *n, int error, Credentials *creds) {
        usec_t now = now_realtime(), left, delay;

        n->fetching = false;
        if (error < 0 || credentials_remaining(creds, now) < NODE_CREDENTIALS_MIN_LIFE_USEC) {
                n->retry = n->retry == 0 ? NODE_CREDENTIALS_RETRY_MIN_USEC
                                         : MIN(2 * n->retry, NODE_CREDENTIALS_RETRY_MAX_USEC);
                /* keep what we have while it is valid; say so once per failure streak step */
                log_warning_errno(error < 0 ? error : -ESTALE,
                                  "Failed to read the node's credentials from %s, %s, retrying in %llus: %m",
                                  n->source == NODE_SOURCE_WEB_IDENTITY ? "STS (web identity)"
                                                                        : "IMDS (instance profile)",
                                  node_credentials_get(n) ? "keeping the current ones" : "none available",
                                  (unsigned long long) (n->retry / USEC_PER_SEC));
                (void) schedule(n, n->retry);
                return;
        }
        n->retry = 0;
        credentials_unref(n->current);
        n->current = credentials_ref(creds);
        left = credentials_remaining(creds, now);
        delay = left > NODE_CREDENTIALS_REFRESH_BEFORE_USEC ? left - NODE_CREDENTIALS_REFRESH_BEFORE_USEC
                                                            : NODE_CREDENTIALS_RETRY_MIN_USEC;
        delay = MIN(delay, NODE_CREDENTIALS_REFRESH_MAX_USEC);
        log_debug("Node credentials read from %s, next refresh in %llus", node_credentials_source(n),
                  (unsigned long long) (delay / USEC_PER_SEC));
        (void) schedule(n, delay);
}

static void on_credentials(UpstreamClient *imds, int error, Credentials *creds, void *userdata) {
        got_credentials(userdata, error, creds);
}

static void on_web_identity(StsClient *c, Credentials *creds, const StsError *error, void *userdata) {
        NodeCredentials *n = userdata;

        n->call = NULL;
        if (error)
                log_warning("AssumeRoleWithWebIdentity %s failed: %s%s%s", n->web_role_arn, error->code,
                            error->message ? ": " : "", strempty(error->message));
        got_credentials(n, error ? error->error : 0, creds);
}

/* Read again for every call: the token file is rotated by whoever writes it. */
static int fetch_web_identity(NodeCredentials *n) {
        _cleanup_(secret_freep) Secret *token = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_(erase_and_freep) char *buf = NULL;
        size_t len;
        int r;

        if (!n->sts)
                return -ENOKEY;
        f = fopen(n->web_token_file, "re");
        if (!f)
                return log_warning_errno(-errno, "Failed to open the web identity token file %s: %m",
                                         n->web_token_file);
        buf = malloc(STS_WEB_IDENTITY_TOKEN_MAX + 2);
        if (!buf)
                return -ENOMEM;
        len = fread(buf, 1, STS_WEB_IDENTITY_TOKEN_MAX + 1, f);
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
                len--;
        if (len < STS_WEB_IDENTITY_TOKEN_MIN || len > STS_WEB_IDENTITY_TOKEN_MAX)
                return log_warning_errno(-EINVAL, "The web identity token in %s is empty or too long",
                                         n->web_token_file);
        r = secret_new(buf, len, &token);
        if (r < 0)
                return r;
        /* an hour, the default maximum of a role's sessions; refreshed 15 minutes before */
        r = sts_assume_role_with_web_identity(n->sts, n->web_role_arn, n->web_session_name, 3600, token,
                                              on_web_identity, n, &n->call);
        if (r < 0)
                return r;
        n->fetching = true;
        return 0;
}

static int fetch(NodeCredentials *n) {
        int r;

        if (n->fetching)
                return 0;
        if (n->source == NODE_SOURCE_WEB_IDENTITY)
                return fetch_web_identity(n);
        r = upstream_client_get_credentials(n->imds, on_credentials, n);
        if (r < 0)
                return r;
        n->fetching = true;
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        NodeCredentials *n = userdata;
        int r = fetch(n);

        if (r < 0) {
                n->retry = MIN(MAX(2 * n->retry, NODE_CREDENTIALS_RETRY_MIN_USEC),
                               NODE_CREDENTIALS_RETRY_MAX_USEC);
                (void) schedule(n, n->retry);
        }
        return 0;
}

static int schedule(NodeCredentials *n, usec_t delay) {
        usec_t when = usec_add(now_monotonic(), delay);
        int r;

        if (!n->event)
                return 0;
        if (n->timer) {
                r = sd_event_source_set_time(n->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(n->timer, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time(n->event, &n->timer, CLOCK_MONOTONIC, when, USEC_PER_MSEC, on_timer,
                                      n);
                if (r >= 0)
                        (void) sd_event_source_set_description(n->timer, "node-credentials-refresh");
        }
        if (r < 0)
                return log_error_errno(r, "Failed to schedule the node credentials refresh: %m");
        return 0;
}

int node_credentials_start(NodeCredentials *n) {
        int r;

        if (!n)
                return -EINVAL;
        if (n->source == NODE_SOURCE_ENV || n->source == NODE_SOURCE_PROFILE)
                return 0;
        if (n->source == NODE_SOURCE_IMDS && !n->imds)
                return -ENOKEY;
        r = fetch(n);
        if (r < 0 && n->source == NODE_SOURCE_WEB_IDENTITY) {
                /* the region may not be known yet, the token not yet written: keep trying */
                n->retry = NODE_CREDENTIALS_RETRY_MIN_USEC;
                return schedule(n, n->retry);
        }
        return r;
}
