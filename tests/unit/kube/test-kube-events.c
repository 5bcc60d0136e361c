/* SPDX-License-Identifier: BSD-3-Clause */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "kube/kube-events.h"
#include "tap.h"

#define T0 (1000 * USEC_PER_SEC)

static const KubeEventInfo denied = {
        .ns = "shop", .name = "cart", .uid = "u-1", .reason = "IAMRoleDenied", .message = "role refused"
};

TEST(event_json_names_the_pod_reason_and_message) {
        _cleanup_free_ char *s = NULL;
        cJSON *j, *o;

        ASSERT_OK(kube_event_json(&denied, "node-1", 1764633600 * USEC_PER_SEC, &s));
        j = cJSON_Parse(s);
        ASSERT_NOT_NULL(j);
        ASSERT_STREQ(cJSON_GetObjectItem(j, "kind")->valuestring, "Event");
        ASSERT_STREQ(cJSON_GetObjectItem(j, "reason")->valuestring, "IAMRoleDenied");
        ASSERT_STREQ(cJSON_GetObjectItem(j, "type")->valuestring, "Warning");
        ASSERT_STREQ(cJSON_GetObjectItem(j, "lastTimestamp")->valuestring, "2025-12-02T00:00:00Z");
        o = cJSON_GetObjectItem(j, "involvedObject");
        ASSERT_STREQ(cJSON_GetObjectItem(o, "uid")->valuestring, "u-1");
        ASSERT_STREQ(cJSON_GetObjectItem(o, "namespace")->valuestring, "shop");
        o = cJSON_GetObjectItem(j, "metadata");
        ASSERT_STREQ(cJSON_GetObjectItem(o, "generateName")->valuestring, "cart.");
        cJSON_Delete(j);
}

TEST(event_message_is_cut_at_the_api_servers_limit) {
        _cleanup_free_ char *s = NULL, *big = malloc(4000);
        KubeEventInfo ev = denied;
        cJSON *j;

        ASSERT_NOT_NULL(big);
        memset(big, 'x', 3999);
        big[3999] = 0;
        ev.message = big;
        ASSERT_OK(kube_event_json(&ev, "node-1", T0, &s));
        j = cJSON_Parse(s);
        ASSERT_UEQ(strlen(cJSON_GetObjectItem(j, "message")->valuestring), KUBE_EVENTS_MESSAGE_MAX);
        cJSON_Delete(j);
        ev.uid = NULL;
        ASSERT_ERROR(kube_event_json(&ev, "node-1", T0, &s), -EINVAL);
}

TEST(one_event_per_pod_and_reason_per_window) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(http_client_freep) HttpClient *http = NULL;
        _cleanup_(kube_events_freep) KubeEvents *e = NULL;
        KubeEventInfo other = denied;

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK(http_client_new(event, &http));
        ASSERT_OK(kube_events_new(http, &e));
        ASSERT_TRUE(kube_events_admit(e, &denied, T0));
        ASSERT_FALSE(kube_events_admit(e, &denied, T0 + 1));
        ASSERT_FALSE(kube_events_admit(e, &denied, T0 + KUBE_EVENTS_WINDOW_USEC - 1));
        other.reason = "AssumeRoleFailed"; /* another reason of the same pod */
        ASSERT_TRUE(kube_events_admit(e, &other, T0 + 1));
        other.uid = "u-2"; /* another pod */
        ASSERT_TRUE(kube_events_admit(e, &other, T0 + 1));
        ASSERT_TRUE(kube_events_admit(e, &denied, T0 + KUBE_EVENTS_WINDOW_USEC));
        ASSERT_UEQ(kube_events_dropped(e), 0);
}

TEST(a_full_table_drops_until_entries_expire) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(http_client_freep) HttpClient *http = NULL;
        _cleanup_(kube_events_freep) KubeEvents *e = NULL;
        char uid[32];
        KubeEventInfo ev = denied;

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK(http_client_new(event, &http));
        ASSERT_OK(kube_events_new(http, &e));
        ev.uid = uid;
        for (unsigned i = 0; i < KUBE_EVENTS_MAX_KEYS; i++) {
                snprintf(uid, sizeof uid, "u-%u", i);
                ASSERT_TRUE(kube_events_admit(e, &ev, T0));
        }
        snprintf(uid, sizeof uid, "new");
        ASSERT_FALSE(kube_events_admit(e, &ev, T0 + 1));
        ASSERT_UEQ(kube_events_dropped(e), 1);
        ASSERT_TRUE(kube_events_admit(e, &ev, T0 + KUBE_EVENTS_WINDOW_USEC));
}
