/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aws/upstream-client.h"
#include "health.h"
#include "log.h"

struct Health {
        sd_event *event;
        UpstreamClient *imds;
        sd_event_source *timer;
        char *host_ip;
        char instance_id[HEALTH_INSTANCE_ID_MAX + 1];
        bool running;
        bool ok;
        bool logged_failure;
};

static void on_instance_id(UpstreamClient *c, int error, long status, const char *body, size_t size,
                           void *userdata) {
        Health *h = userdata;

        h->running = false;
        if (error >= 0 && size > 0 && size <= HEALTH_INSTANCE_ID_MAX) {
                bool valid = true;
                for (size_t i = 0; i < size; i++)
                        valid = valid && (isalnum((unsigned char) body[i]) || body[i] == '-');
                if (valid) {
                        memcpy(h->instance_id, body, size);
                        h->instance_id[size] = '\0';
                        if (!h->ok && h->logged_failure)
                                log_info("Instance metadata reachable again, instance id %s",
                                         h->instance_id);
                        h->ok = true;
                        h->logged_failure = false;
                        return;
                }
        }
        if (!h->logged_failure) {
                if (error < 0)
                        log_error_errno(error, "Error getting instance id (status %ld): %m", status);
                else
                        log_error("Error getting instance id: not an instance id");
        }
        h->logged_failure = true;
        h->ok = false;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Health *h = userdata;

        if (!h->running && upstream_client_get(h->imds, "meta-data/instance-id", on_instance_id, h) >= 0)
                h->running = true;
        /* after a failure, look again sooner so /healthz shows the instance id soon after IMDS is back */
        (void) sd_event_source_set_time(
                s, usec_add(now_monotonic(), h->ok ? HEALTH_CHECK_INTERVAL : HEALTH_RETRY_INTERVAL));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

int health_new(sd_event *event, UpstreamClient *imds, const char *host_ip, Health **ret) {
        Health *h;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->imds = imds;
        h->host_ip = strdup(strempty(host_ip));
        if (!h->host_ip) {
                health_free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

Health *health_free(Health *h) {
        if (!h)
                return NULL;
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h->host_ip);
        free(h);
        return NULL;
}

int health_start(Health *h) {
        int r;

        r = sd_event_add_time(h->event, &h->timer, CLOCK_MONOTONIC, 0, 0, on_timer, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->timer, "health-check");
        return sd_event_source_set_enabled(h->timer, SD_EVENT_ON);
}

bool health_imds_ok(const Health *h) {
        return h && h->ok;
}

void health_render(const Health *h, bool synced, StrBuf *out) {
        cJSON *o = cJSON_CreateObject();
        char *s;

        if (!o)
                return;
        /* kube2iam's shape (keys in its struct's order), plus whether the pod cache is synced */
        cJSON_AddStringToObject(o, "hostIP", h->host_ip);
        cJSON_AddStringToObject(o, "instanceId", h->instance_id);
        cJSON_AddBoolToObject(o, "cachesSynced", synced);
        s = cJSON_PrintUnformatted(o);
        if (s) {
                strbuf_append(out, s);
                strbuf_append_char(out, '\n');
                cJSON_free(s);
        }
        cJSON_Delete(o);
}
