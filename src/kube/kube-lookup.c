/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube-lookup.h"
#include "log.h"
#include "string-util.h"

typedef struct Lookup {
        KubeLookups *set;
        KubeRequest req;
        HttpBody body;
        kube_lookup_done_t done;
        kube_get_done_t get_done; /* a GET of one object instead of a lookup by IP */
        void *userdata;
        char *ip; /* or the path of the object */
        struct Lookup *prev, *next;
} Lookup;

struct KubeLookups {
        HttpClient *http;
        const KubeObjectKeys *keys;
        KubeClient *owner;
        Lookup *running;
};

static void lookup_free(Lookup *x) {
        KubeLookups *l = x->set;

        if (x->prev)
                x->prev->next = x->next;
        else
                l->running = x->next;
        if (x->next)
                x->next->prev = x->prev;
        if (x->req.easy)
                http_client_cancel(l->http, x->req.easy);
        kube_request_done(&x->req);
        strbuf_done(&x->body.buf);
        free(x->ip);
        free(x);
}

int kube_lookups_new(HttpClient *http, const KubeObjectKeys *keys, KubeClient *owner, KubeLookups **ret) {
        KubeLookups *l;

        if (!http || !keys || !ret)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        *l = (KubeLookups){ .http = http, .keys = keys, .owner = owner };
        *ret = l;
        return 0;
}

KubeLookups *kube_lookups_free(KubeLookups *l) {
        if (!l)
                return NULL;
        while (l->running)
                lookup_free(l->running);
        free(l);
        return NULL;
}

/* The first running pod without hostNetwork in a list body. */
static int lookup_pick(const Lookup *x, KubePod **ret) {
        _cleanup_(json_deletep) cJSON *j = cJSON_ParseWithLength(strbuf_str(&x->body.buf), x->body.buf.len);
        const cJSON *i, *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        int r = cJSON_IsObject(j) ? -ENOENT : -EBADMSG;

        cJSON_ArrayForEach(i, items) {
                KubePod *p = NULL;
                if (kube_pod_from_json(i, x->set->keys, &p) < 0)
                        continue;
                if (!p->host_network && streq(p->phase, "Running")) {
                        *ret = p;
                        return 0;
                }
                kube_pod_free(p);
        }
        return r;
}

/* A GET of one object: 200 hands it over, 404 is -ENOENT, anything else an error. */
static void on_get_done(Lookup *x, int error, long code) {
        _cleanup_(json_deletep) cJSON *j = NULL;
        kube_get_done_t done = x->get_done;
        void *done_userdata = x->userdata;
        KubeClient *owner = x->set->owner;
        int r = 0;

        if (error < 0)
                r = error;
        else if (code == 404)
                r = -ENOENT;
        else if (code != 200)
                r = -EIO;
        else {
                j = cJSON_ParseWithLength(strbuf_str(&x->body.buf), x->body.buf.len);
                if (!cJSON_IsObject(j))
                        r = -EBADMSG;
        }
        if (r < 0 && r != -ENOENT)
                log_warning("Failed to get %s from the API server: %s", x->ip,
                            error < 0 ? strerror(-error) : "unexpected HTTP status or body");
        lookup_free(x);
        done(owner, r, r >= 0 ? j : NULL, done_userdata);
}

static void on_lookup_done(HttpClient *h, CURL *easy, int error, CURLcode result, void *userdata) {
        Lookup *x = userdata;
        _cleanup_(kube_pod_freep) KubePod *found = NULL;
        long code = kube_response_code(easy);
        kube_lookup_done_t done = x->done;
        void *done_userdata = x->userdata;
        KubeClient *owner = x->set->owner;
        int r;

        if (x->get_done)
                return on_get_done(x, error, code);
        if (error < 0 || code != 200) {
                log_warning("resolveDuplicatedIP: Error retriving the pod with IP %s: %s", x->ip,
                            error < 0 ? curl_easy_strerror(result) : "unexpected HTTP status");
                r = error < 0 ? error : -EIO;
        } else
                r = lookup_pick(x, &found);
        lookup_free(x); /* the transfer is over: nothing to cancel */
        done(owner, r, found, done_userdata);
}

/* Starts GET path; what (the IP, or the path) names it in the log. */
static int lookup_run(KubeLookups *l, const KubeConfig *kc, KubeCredentials *creds, const char *path,
                      const char *what, Lookup *proto) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = creds;
        Lookup *x;
        int r;

        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = *proto;
        x->set = l;
        x->body.max = KUBE_RESOLVE_MAX_BYTES;
        x->ip = strdup(what);
        x->next = l->running;
        if (l->running)
                l->running->prev = x;
        l->running = x;
        if (!x->ip) {
                lookup_free(x);
                return -ENOMEM;
        }
        r = kube_request_prepare(&x->req, kc, TAKE_PTR(c), path, KUBE_RESOLVE_TIMEOUT_USEC);
        if (r >= 0 && (curl_easy_setopt(x->req.easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
                       curl_easy_setopt(x->req.easy, CURLOPT_WRITEDATA, &x->body) != CURLE_OK))
                r = -EIO;
        if (r >= 0)
                r = http_client_start(l->http, x->req.easy, on_lookup_done, x);
        if (r < 0) {
                lookup_free(x);
                return r;
        }
        return 0;
}

int kube_lookup_start(KubeLookups *l, const KubeConfig *kc, KubeCredentials *creds, const char *ip,
                      kube_lookup_done_t done, void *userdata) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = creds;
        _cleanup_free_ char *path = NULL, *sel = NULL;
        char *e;
        int r;

        if (!l || !kc || !c || isempty(ip) || !done)
                return -EINVAL;
        if (asprintf(&sel, "status.podIP=%s", ip) < 0)
                return -ENOMEM;
        e = curl_easy_escape(NULL, sel, 0);
        if (!e)
                return -ENOMEM;
        r = asprintf(&path, "/api/v1/pods?fieldSelector=%s", e);
        curl_free(e);
        if (r < 0)
                return -ENOMEM;
        return lookup_run(l, kc, TAKE_PTR(c), path, ip, &(Lookup){ .done = done, .userdata = userdata });
}

int kube_lookup_get(KubeLookups *l, const KubeConfig *kc, KubeCredentials *creds, const char *path,
                    kube_get_done_t done, void *userdata) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = creds;

        if (!l || !kc || !c || isempty(path) || !done)
                return -EINVAL;
        return lookup_run(l, kc, TAKE_PTR(c), path, path,
                          &(Lookup){ .get_done = done, .userdata = userdata });
}
