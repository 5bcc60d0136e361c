/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "imds-client.h"
#include "log.h"
#include "node-credentials.h"
#include "string-util.h"

struct NodeCredentials {
        sd_event *event;
        ImdsClient *imds;
        Credentials *current;
        bool from_env;
        bool fetching;
        sd_event_source *timer;
        usec_t retry; /* current backoff after failures */
};

int node_credentials_new(sd_event *event, ImdsClient *imds, NodeCredentials **ret) {
        _cleanup_(node_credentials_freep) NodeCredentials *n = NULL;
        const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY"),
                   *token = getenv("AWS_SESSION_TOKEN");
        int r;

        if (!ret)
                return -EINVAL;
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->event = event ? sd_event_ref(event) : NULL;
        n->imds = imds;
        if (!isempty(key) || !isempty(secret)) {
                Secret *s = NULL, *t = NULL;

                if (isempty(key) || isempty(secret))
                        return log_error_errno(
                                -EINVAL, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
                r = secret_new(secret, strlen(secret), &s);
                if (r >= 0 && !isempty(token))
                        r = secret_new(token, strlen(token), &t);
                if (r < 0) {
                        secret_free(s);
                        return r;
                }
                r = credentials_new(key, s, t, USEC_INFINITY, now_realtime(), &n->current);
                if (r < 0)
                        return log_error_errno(r, "AWS_ACCESS_KEY_ID is not a valid access key id");
                n->from_env = true;
        }
        *ret = TAKE_PTR(n);
        return 0;
}

NodeCredentials *node_credentials_free(NodeCredentials *n) {
        if (!n)
                return NULL;
        credentials_unref(n->current);
        sd_event_source_disable_unref(n->timer);
        sd_event_unref(n->event);
        free(n);
        return NULL;
}

const char *node_credentials_source(const NodeCredentials *n) {
        return n && n->from_env ? "env" : "imds";
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

static void on_credentials(ImdsClient *imds, int error, Credentials *creds, void *userdata) {
        NodeCredentials *n = userdata;
        usec_t now = now_realtime(), left, delay;

        n->fetching = false;
        if (error < 0 || credentials_remaining(creds, now) < NODE_CREDENTIALS_MIN_LIFE_USEC) {
                n->retry = n->retry == 0 ? NODE_CREDENTIALS_RETRY_MIN_USEC
                                         : MIN(2 * n->retry, NODE_CREDENTIALS_RETRY_MAX_USEC);
                /* keep what we have while it is valid; say so once per failure streak step */
                log_warning_errno(error < 0 ? error : -ESTALE,
                                  "Failed to read the node's instance-profile credentials from IMDS, %s, "
                                  "retrying in %llus: %m",
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
        log_debug("Node credentials read from IMDS, next refresh in %llus",
                  (unsigned long long) (delay / USEC_PER_SEC));
        (void) schedule(n, delay);
}

static int fetch(NodeCredentials *n) {
        int r;

        if (n->fetching)
                return 0;
        r = imds_client_get_credentials(n->imds, on_credentials, n);
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
        if (!n)
                return -EINVAL;
        if (n->from_env)
                return 0;
        if (!n->imds)
                return -ENOKEY;
        return fetch(n);
}
