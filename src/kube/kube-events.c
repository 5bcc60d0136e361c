/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kube-events.h"
#include "log.h"
#include "strmap.h"
#include "watch-parser.h"
#include "string-util.h"

/* The API server answers a created Event with the object; nothing of it is read. */
#define KUBE_EVENTS_REPLY_MAX (64 * 1024)

typedef struct Posted {
        usec_t at; /* monotonic */
        char key[];
} Posted;

typedef struct Post {
        KubeEvents *set;
        KubeRequest req;
        HttpBody body;
        char *what; /* "ns/name reason", for the log */
        struct Post *prev, *next;
} Post;

struct KubeEvents {
        HttpClient *http;
        StrMap posted; /* "uid reason" -> Posted */
        Post *running;
        unsigned n_running;
        unsigned long long n_posted, n_dropped;
};

static void post_free(Post *p) {
        KubeEvents *e = p->set;

        if (p->prev)
                p->prev->next = p->next;
        else
                e->running = p->next;
        if (p->next)
                p->next->prev = p->prev;
        e->n_running--;
        if (p->req.easy)
                http_client_cancel(e->http, p->req.easy);
        kube_request_done(&p->req);
        strbuf_done(&p->body.buf);
        free(p->what);
        free(p);
}

int kube_events_new(HttpClient *http, KubeEvents **ret) {
        KubeEvents *e;
        int r;

        if (!http || !ret)
                return -EINVAL;
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->http = http;
        r = strmap_init(&e->posted);
        if (r < 0) {
                free(e);
                return r;
        }
        *ret = e;
        return 0;
}

KubeEvents *kube_events_free(KubeEvents *e) {
        if (!e)
                return NULL;
        while (e->running)
                post_free(e->running);
        strmap_done(&e->posted, free);
        free(e);
        return NULL;
}

/* Forgets what is older than the window (so that a full table makes room). */
static void posted_expire(KubeEvents *e, usec_t now) {
        for (;;) {
                Posted *old = NULL;
                STRMAP_FOREACH(i, &e->posted) {
                        Posted *p = i->value;
                        if (now >= p->at + KUBE_EVENTS_WINDOW_USEC) {
                                old = p;
                                break;
                        }
                }
                if (!old)
                        return;
                free(strmap_remove(&e->posted, old->key));
        }
}

bool kube_events_admit(KubeEvents *e, const KubeEventInfo *ev, usec_t now) {
        _cleanup_free_ char *key = NULL;
        Posted *p;

        if (!e || !ev || isempty(ev->uid) || isempty(ev->reason))
                return false;
        if (asprintf(&key, "%s %s", ev->uid, ev->reason) < 0)
                return false;
        p = strmap_get(&e->posted, key);
        if (p && now < p->at + KUBE_EVENTS_WINDOW_USEC)
                return false; /* de-duplicated: not counted as dropped */
        if (!p && e->posted.n >= KUBE_EVENTS_MAX_KEYS)
                posted_expire(e, now);
        if (e->n_running >= KUBE_EVENTS_MAX_IN_FLIGHT || (!p && e->posted.n >= KUBE_EVENTS_MAX_KEYS)) {
                e->n_dropped++;
                return false;
        }
        if (p) {
                p->at = now;
                return true;
        }
        p = malloc(sizeof *p + strlen(key) + 1);
        if (!p)
                return false;
        p->at = now;
        strcpy(p->key, key);
        if (strmap_put(&e->posted, p->key, p) < 0) {
                free(p);
                return false;
        }
        return true;
}

static int add_strings(cJSON *o, const char *const *kv, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2)
                if (!cJSON_AddStringToObject(o, kv[i], kv[i + 1]))
                        return -ENOMEM;
        return 0;
}

int kube_event_json(const KubeEventInfo *ev, const char *node, usec_t now_real, char **ret) {
        _cleanup_(json_deletep) cJSON *j = cJSON_CreateObject();
        _cleanup_free_ char *generate = NULL, *message = NULL;
        char ts[TIMESTAMP_MAX];
        cJSON *meta, *obj, *src;

        if (!ev || isempty(ev->ns) || isempty(ev->name) || isempty(ev->uid) || isempty(ev->reason) ||
            isempty(ev->message) || !ret)
                return -EINVAL;
        if (asprintf(&generate, "%s.", ev->name) < 0)
                return -ENOMEM;
        message = strndup(ev->message, KUBE_EVENTS_MESSAGE_MAX);
        if (!message || !format_timestamp_imds(now_real, ts, sizeof ts))
                return -ENOMEM;
        if (!j || !(meta = cJSON_AddObjectToObject(j, "metadata")) ||
            !(obj = cJSON_AddObjectToObject(j, "involvedObject")) ||
            !(src = cJSON_AddObjectToObject(j, "source")))
                return -ENOMEM;
        if (add_strings(j,
                        (const char *[]){ "apiVersion", "v1", "kind", "Event", "reason", ev->reason,
                                          "message", message, "type", "Warning", "firstTimestamp", ts,
                                          "lastTimestamp", ts, "reportingComponent", "kube2iam",
                                          "reportingInstance", strempty(node) },
                        18) < 0 ||
            add_strings(meta, (const char *[]){ "generateName", generate, "namespace", ev->ns }, 4) < 0 ||
            add_strings(obj,
                        (const char *[]){ "apiVersion", "v1", "kind", "Pod", "namespace", ev->ns, "name",
                                          ev->name, "uid", ev->uid },
                        10) < 0 ||
            add_strings(src, (const char *[]){ "component", "kube2iam", "host", strempty(node) }, 4) < 0 ||
            !cJSON_AddNumberToObject(j, "count", 1))
                return -ENOMEM;
        *ret = cJSON_PrintUnformatted(j);
        return *ret ? 0 : -ENOMEM;
}

static void on_post_done(HttpClient *h, CURL *easy, int error, CURLcode result, void *userdata) {
        Post *p = userdata;
        long code = kube_response_code(easy);

        if (error >= 0 && code == 201)
                p->set->n_posted++;
        else {
                p->set->n_dropped++;
                log_warning("Could not post the Event %s: %s", p->what,
                            error < 0 ? curl_easy_strerror(result) : "unexpected HTTP status");
        }
        post_free(p); /* the transfer is over: nothing to cancel */
}

int kube_events_post(KubeEvents *e, const KubeConfig *kc, KubeCredentials *creds, const char *node,
                     const KubeEventInfo *ev, usec_t now_real) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = creds;
        _cleanup_free_ char *path = NULL, *body = NULL;
        struct curl_slist *h;
        Post *p;
        int r;

        if (!e || !kc || !c || !ev)
                return -EINVAL;
        r = kube_event_json(ev, node, now_real, &body);
        if (r < 0)
                return r;
        if (asprintf(&path, "/api/v1/namespaces/%s/events", ev->ns) < 0)
                return -ENOMEM;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (Post){ .set = e, .body.max = KUBE_EVENTS_REPLY_MAX, .next = e->running };
        if (e->running)
                e->running->prev = p;
        e->running = p;
        e->n_running++;
        if (asprintf(&p->what, "%s/%s %s", ev->ns, ev->name, ev->reason) < 0) {
                p->what = NULL;
                post_free(p);
                return -ENOMEM;
        }
        r = kube_request_prepare(&p->req, kc, TAKE_PTR(c), path, KUBE_EVENTS_TIMEOUT_USEC);
        if (r >= 0) {
                h = curl_slist_append(p->req.headers, "Content-Type: application/json");
                if (!h)
                        r = -ENOMEM;
                else
                        p->req.headers = h;
        }
        if (r >= 0 && (curl_easy_setopt(p->req.easy, CURLOPT_HTTPHEADER, p->req.headers) != CURLE_OK ||
                       curl_easy_setopt(p->req.easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
                       curl_easy_setopt(p->req.easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
                       curl_easy_setopt(p->req.easy, CURLOPT_WRITEDATA, &p->body) != CURLE_OK))
                r = -EIO;
        if (r >= 0)
                r = http_client_start(e->http, p->req.easy, on_post_done, p);
        if (r < 0) {
                post_free(p);
                return r;
        }
        return 0;
}

unsigned long long kube_events_posted(const KubeEvents *e) {
        return e ? e->n_posted : 0;
}

unsigned long long kube_events_dropped(const KubeEvents *e) {
        return e ? e->n_dropped : 0;
}
