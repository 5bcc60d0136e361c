/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Proxy: the reverse proxy to the upstream IMDS (--metadata-addr), kube2iam's catch-all
 * route. Owns a pool of reusable curl easy handles on the shared HttpClient (the multi handle
 * keeps upstream connections alive), the header rules (hop-by-hop dropped, Host kept,
 * kube2iam's X-Forwarded-For rules), hard timeouts and the 502 on upstream failure. */

#include <stdint.h>

#include "http-client.h"
#include "server.h"

/* Whole upstream exchange. IMDS answers in milliseconds; SDKs give up after 1 s anyway. */
#define PROXY_TIMEOUT_MSEC 3000L
#define PROXY_CONNECT_TIMEOUT_MSEC 1000L
/* user-data is at most 16 KiB; nothing IMDS serves comes near 1 MiB. */
#define PROXY_MAX_RESPONSE_BYTES (1024U * 1024U)
/* Idle easy handles kept for reuse. */
#define PROXY_POOL_MAX 64U
/* "proxy error" lines (one per failed proxied request): an IMDS outage is said, not repeated. */
#define PROXY_ERROR_LOG_BURST 20U
#define PROXY_ERROR_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

typedef struct Proxy Proxy;

int proxy_new(HttpClient *client, const char *host, uint16_t port, Proxy **ret);
Proxy *proxy_free(Proxy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Proxy *, proxy_free);

/* Rewrites the body of a 200 answer before it goes out (a directory listing cut down to what the
 * client may get). <0: the client gets 502. */
typedef int (*ProxyFilter)(const char *path, const char *body, size_t size, const void *userdata,
                           StrBuf *out);

/* Forwards a kept request to the upstream, path only (origin-form, already decoded and clean, as
 * Go's ReverseProxy sends URL.Path): the query is not forwarded, the upstream gets exactly the
 * path the caller judged. Answers when the upstream does (or 502). extra_headers replace
 * same-named client headers (e.g. the daemon's own IMDSv2 token); drop_headers (NULL-terminated)
 * are removed. filter (may be NULL) sees a 200's body; filter_data must outlive the request. */
void proxy_forward(Proxy *p, HttpRequest *req, const char *path, const HttpHeader *extra_headers,
                   size_t n_extra, const char *const *drop_headers, ProxyFilter filter,
                   const void *filter_data);

/* kube2iam's rule: no X-Forwarded-For is added to the IMDSv2 token PUT (`^/?[^/]+/api/token$`)
 * nor to a GET carrying an X-aws-ec2-metadata-token header, because IMDS rejects those. */
bool proxy_adds_xff(const char *method, const char *path, const char *token_header);
/* Hop-by-hop headers (RFC 9110 7.6.1 plus the legacy ones Go removes). */
bool proxy_is_hop_header(const char *name);

unsigned proxy_in_flight(const Proxy *p);
typedef struct Metrics Metrics;
/* Registers kube2iam_proxy_requests_total{category,status} and
 * kube2iam_upstream_imds_duration_seconds in m (-EEXIST when already there). */
int proxy_set_metrics(Proxy *p, Metrics *m);
/* The metric's category of a forwarded path: "meta-data", "dynamic", "user-data", "api" (the part
 * after the version), else "other"; a bounded set whatever pods ask. */
const char *proxy_category(const char *path);
