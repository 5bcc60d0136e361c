/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "health.h"
#include "log.h"

typedef enum HealthStep {
        HEALTH_IDLE,
        HEALTH_TOKEN,
        HEALTH_INSTANCE_ID,
} HealthStep;

struct Health {
        HttpClient *client;
        CURL *easy;
        struct curl_slist *headers;
        sd_event_source *timer;
        char *base_url;
        char *host_ip;
        HealthStep step;
        StrBuf body;
        char token[128];
        char instance_id[HEALTH_INSTANCE_ID_MAX + 1];
        bool ok;
        bool logged_failure;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Health *h = userdata;
        size_t n = size * nmemb;

        if (h->body.len + n > 1024)
                return 0;
        strbuf_append_n(&h->body, data, n);
        return n;
}

static void check_failed(Health *h, const char *why) {
        if (!h->logged_failure)
                log_error("Error getting instance id %s", why);
        h->logged_failure = true;
        h->ok = false;
        h->step = HEALTH_IDLE;
}

static int start_step(Health *h, HealthStep step);

static void on_done(HttpClient *c, CURL *easy, int error, CURLcode result, void *userdata) {
        Health *h = userdata;
        long status = 0;

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (h->step == HEALTH_TOKEN) {
                /* 403/404/405 on the PUT mean IMDSv1 only, as SDKs read it */
                h->token[0] = '\0';
                if (error >= 0 && status == 200 && h->body.len > 0 && h->body.len < sizeof h->token)
                        memcpy(h->token, h->body.s, h->body.len + 1);
                else if (error < 0) {
                        check_failed(h, curl_easy_strerror(result));
                        return;
                }
                (void) start_step(h, HEALTH_INSTANCE_ID);
                return;
        }

        if (error < 0) {
                check_failed(h, curl_easy_strerror(result));
                return;
        }
        if (status != 200 || h->body.len == 0 || h->body.len > HEALTH_INSTANCE_ID_MAX) {
                char why[64];
                snprintf(why, sizeof why, "upstream answered %ld", status);
                check_failed(h, why);
                return;
        }
        for (size_t i = 0; i < h->body.len; i++)
                if (!isalnum((unsigned char) h->body.s[i]) && h->body.s[i] != '-') {
                        check_failed(h, "upstream answered something that is not an instance id");
                        return;
                }
        memcpy(h->instance_id, h->body.s, h->body.len + 1);
        if (!h->ok && h->logged_failure)
                log_info("Instance metadata reachable again, instance id %s", h->instance_id);
        h->ok = true;
        h->logged_failure = false;
        h->step = HEALTH_IDLE;
}

static int start_step(Health *h, HealthStep step) {
        _cleanup_free_ char *url = NULL, *token_header = NULL;
        struct curl_slist *headers = NULL;
        int r;

        curl_easy_reset(h->easy);
        strbuf_reset(&h->body);
        h->step = step;
        if (asprintf(&url, "%s%s", h->base_url,
                     step == HEALTH_TOKEN ? "/latest/api/token" : "/latest/meta-data/instance-id") < 0)
                return -ENOMEM;
        if (step == HEALTH_TOKEN) {
                headers = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
                (void) curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, "PUT");
        } else if (h->token[0]) {
                if (asprintf(&token_header, "X-aws-ec2-metadata-token: %s", h->token) < 0)
                        return -ENOMEM;
                headers = curl_slist_append(NULL, token_header);
        }
        /* the list must outlive the transfer */
        curl_slist_free_all(h->headers);
        h->headers = headers;

        (void) curl_easy_setopt(h->easy, CURLOPT_URL, url);
        (void) curl_easy_setopt(h->easy, CURLOPT_PROXY, "");
        (void) curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);
        (void) curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_write);
        (void) curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
        (void) curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, HEALTH_CHECK_TIMEOUT_MSEC);
        (void) curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
        r = http_client_start(h->client, h->easy, on_done, h);
        if (r < 0) {
                h->step = HEALTH_IDLE;
                return log_error_errno(r, "Failed to start the health check: %m");
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Health *h = userdata;

        if (h->step == HEALTH_IDLE)
                (void) start_step(h, HEALTH_TOKEN);
        /* after a failure, look again sooner so /healthz shows the instance id soon after IMDS is back */
        (void) sd_event_source_set_time(
                s, usec_add(now_monotonic(), h->ok ? HEALTH_CHECK_INTERVAL : HEALTH_RETRY_INTERVAL));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

int health_new(HttpClient *client, const char *imds_host, uint16_t imds_port, const char *host_ip,
               Health **ret) {
        Health *h;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->client = client;
        h->easy = curl_easy_init();
        h->host_ip = strdup(strempty(host_ip));
        if (!h->easy || !h->host_ip ||
            asprintf(&h->base_url, strchr(imds_host, ':') ? "http://[%s]:%u" : "http://%s:%u", imds_host,
                     imds_port) < 0) {
                h->base_url = NULL;
                health_free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

Health *health_free(Health *h) {
        if (!h)
                return NULL;
        if (h->easy) {
                http_client_cancel(h->client, h->easy);
                curl_easy_cleanup(h->easy);
        }
        curl_slist_free_all(h->headers);
        sd_event_source_disable_unref(h->timer);
        strbuf_done(&h->body);
        free(h->base_url);
        free(h->host_ip);
        free(h);
        return NULL;
}

int health_start(Health *h) {
        int r;

        r = sd_event_add_time(http_client_get_event(h->client), &h->timer, CLOCK_MONOTONIC, 0, 0, on_timer,
                              h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->timer, "health-check");
        return sd_event_source_set_enabled(h->timer, SD_EVENT_ON);
}

bool health_imds_ok(const Health *h) {
        return h && h->ok;
}

void health_render(const Health *h, StrBuf *out) {
        cJSON *o = cJSON_CreateObject();
        char *s;

        if (!o)
                return;
        /* kube2iam's shape; keys in the order Go's encoder writes its struct */
        cJSON_AddStringToObject(o, "hostIP", h->host_ip);
        cJSON_AddStringToObject(o, "instanceId", h->instance_id);
        s = cJSON_PrintUnformatted(o);
        if (s) {
                strbuf_append(out, s);
                strbuf_append_char(out, '\n');
                cJSON_free(s);
        }
        cJSON_Delete(o);
}
