/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeRequest: one GET to the API server on a reusable libcurl handle. Owns what a running
 * transfer points into (libcurl keeps pointers to the TLS blobs, the header list and the
 * CONNECT_TO list until the transfer ends) and wipes the bearer token when released. Sets what
 * is the API server's own on top of the common options of http_client_prepare(): the
 * kubeconfig's TLS trust and client certificate, the token, tls-server-name (verified and sent as
 * SNI while connecting to the server's address), gzip, TCP keepalive for long watches. */

#include <curl/curl.h>

#include "kubeconfig.h"
#include "time-util.h"

/* A reachable API server accepts a connection in milliseconds; 10 s covers a loaded control plane
 * behind a load balancer without leaving a list waiting on a dead address. */
#define KUBE_CONNECT_TIMEOUT_USEC (10 * USEC_PER_SEC)

typedef struct KubeRequest {
        CURL *easy;
        struct curl_slist *headers;
        struct curl_slist *connect_to;
        KubeCredentials *creds;
} KubeRequest;

/* Prepares r->easy for GET kc->server + path (path includes the query) with creds (taken, also on
 * failure); timeout 0: none. The caller adds its write (and header) callbacks and starts it. */
int kube_request_prepare(KubeRequest *r, const KubeConfig *kc, KubeCredentials *creds, const char *path,
                         usec_t timeout);
/* Frees what the last transfer needed; keeps the handle (and with it the connection). */
void kube_request_release(KubeRequest *r);
/* Releases and frees the handle. */
void kube_request_done(KubeRequest *r);

/* The HTTP status of the last response on easy, 0 when none. */
long kube_response_code(CURL *easy);

/* Makes the PEM certificates in pem[size] the only trust anchors of an OpenSSL SSL_CTX (what
 * CURLOPT_CAINFO_BLOB does; used where libcurl lacks it). Returns the number of certificates, or
 * -EBADMSG when pem holds none. */
int kube_tls_trust_only(void *ssl_ctx, const char *pem, size_t size);
