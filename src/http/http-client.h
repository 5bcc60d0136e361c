/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* HttpClient: libcurl's multi interface glued to the sd-event loop (socket and timer callbacks),
 * so every outgoing HTTP request (the IMDS proxy, STS, the node's IMDS client, the Kubernetes
 * watches) runs on the one thread without blocking. It owns the CURLM and its event sources;
 * callers own their CURL easy handles (reuse them: the multi handle keeps the connections) and
 * get one completion callback per transfer. Callers in src/http, src/aws and src/kube may use
 * libcurl's easy API directly; nothing else includes curl. */

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "string-util.h"
#include "time-util.h"

typedef struct HttpClient HttpClient;

/* Called once when a transfer ends. error is 0 or a negative errno mapped from result (the
 * HTTP status is read with curl_easy_getinfo(CURLINFO_RESPONSE_CODE)). The easy handle is no
 * longer in the multi handle: the callback may free it, or start it again. */
typedef void (*http_client_done_t)(HttpClient *c, CURL *easy, int error, CURLcode result, void *userdata);

int http_client_new(sd_event *event, HttpClient **ret);
/* Aborts every transfer still running without calling their callbacks. */
HttpClient *http_client_free(HttpClient *c);
static inline void http_client_freep(HttpClient **c) {
        http_client_free(*c);
}

/* Starts a transfer. Overwrites CURLOPT_PRIVATE. */
int http_client_start(HttpClient *c, CURL *easy, http_client_done_t done, void *userdata);
/* Stops a running transfer without calling its callback; a no-op for one that is not running. */
void http_client_cancel(HttpClient *c, CURL *easy);
unsigned http_client_running(const HttpClient *c);
sd_event *http_client_get_event(const HttpClient *c);

int http_client_errno(CURLcode code);

/* What every outgoing request has in common, set by http_client_prepare(). */
typedef enum HttpProtocols {
        HTTP_PROTOCOLS_HTTP,       /* the metadata service (IMDS has no TLS) */
        HTTP_PROTOCOLS_HTTP_HTTPS, /* the API server and STS (plain http only for test endpoints) */
} HttpProtocols;

typedef struct HttpRequestOptions {
        const char *url;
        HttpProtocols protocols;
        usec_t timeout;         /* the whole transfer; 0: none (a watch bounds itself by silence) */
        usec_t connect_timeout; /* 0: bounded by timeout alone */
        bool direct;            /* never through a proxy from the environment (IMDS is link-local) */
        bool transparent;       /* no User-Agent of ours: the proxy forwards the pod's own */
} HttpRequestOptions;

/* The one place a CURL easy handle is configured for our loop, as systemd's curl_glue_make():
 * URL, allowed protocols (no file://, no redirect to another scheme), no signals (we are
 * single-threaded on sd-event), no redirects, the timeouts and our User-Agent. Call it on a new
 * handle and after every curl_easy_reset(); the caller then adds only what is its own (headers,
 * body, write callback, TLS material). -EIO when libcurl refuses an option. */
int http_client_prepare(CURL *easy, const HttpRequestOptions *o);

/* A response body read into memory, with a cap: CURLOPT_WRITEFUNCTION http_body_write and
 * CURLOPT_WRITEDATA the HttpBody. Past max bytes the transfer is aborted and overflow set. */
typedef struct HttpBody {
        StrBuf buf;
        size_t max;
        bool overflow;
} HttpBody;

size_t http_body_write(char *ptr, size_t size, size_t nmemb, void *userdata);
/* Empties the body for another transfer (the cap stays). */
void http_body_reset(HttpBody *b);
