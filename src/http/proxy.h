/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Proxy: the reverse proxy to the upstream IMDS (--metadata-addr), kube2iam's catch-all
 * route. Owns a pool of reusable curl easy handles on the shared HttpClient (the multi handle
 * keeps upstream connections alive), the header rules (hop-by-hop dropped, Host kept,
 * kube2iam's X-Forwarded-For rules), hard timeouts and the 502 on upstream failure. */

#include <stdbool.h>
#include <stdint.h>

#include "http-client.h"
#include "server.h"

/* Whole upstream exchange. IMDS answers in milliseconds; SDKs give up after 1 s anyway. */
#define PROXY_TIMEOUT_MSEC 3000L
#define PROXY_CONNECT_TIMEOUT_MSEC 1000L
/* user-data is at most 16 KiB; nothing IMDS serves comes near 1 MiB. */
#define PROXY_MAX_RESPONSE_BYTES (1024U * 1024U)
/* Immutable answers kept in memory (proxy_forward's memo): the instance's fixed facts, per
 * metadata version a client names; beyond this many paths the rest is forwarded each time. */
#define PROXY_MEMO_MAX 128U
/* The link-local budget: IMDS, DNS and NTP share 1,024 packets/s per interface on EC2, and one
 * upstream request on a kept-alive connection is about four packets (request, answer, ACKs).
 * The whole daemon sends at most PROXY_UPSTREAM_RATE requests/s (a quarter of the budget, the
 * rest left to DNS and NTP), bursts of PROXY_UPSTREAM_BURST; one pod at most PROXY_POD_RATE/s,
 * bursts of PROXY_POD_BURST. Beyond that the pod gets 429, as the real IMDS answers when it
 * throttles. A pod's burst lets a tool walk the whole documented tree (~80 paths) at once; the
 * daemon's is one second of the interface's packets, once. */
#define PROXY_UPSTREAM_RATE 64U
#define PROXY_UPSTREAM_BURST 256U
#define PROXY_POD_RATE 16U
#define PROXY_POD_BURST 128U
/* Single-flight (src/http/proxy-flight.h): concurrent GETs of one path share one upstream request.
 * Paths in flight at once: the budget lets at most PROXY_UPSTREAM_BURST + PROXY_UPSTREAM_RATE x
 * PROXY_TIMEOUT_MSEC / 1000 (448) upstream requests be under way, so at 512 the table never turns
 * away what the budget allows; it bounds the table. Beyond it a GET goes upstream on its own. */
#define PROXY_FLIGHT_MAX_KEYS 512U
/* Requests waiting for one path's upstream answer, which is copied to each of them in one turn of
 * the event loop. Every pod of a node (~250) asking for the same path at the same moment fits;
 * beyond it a request goes upstream on its own, as every request did before single-flight, and
 * meets the budget. */
#define PROXY_FLIGHT_MAX_WAITERS 256U
/* Answers kept for their path's TTL (imds_surface_ttl): the documented tree has about 80 paths per
 * metadata version and 20 per network interface. A full map drops the expired ones; if none has
 * expired the answer is not kept (the path is asked each time, still single-flight). */
#define PROXY_KEPT_MAX 256U
/* Pods (client addresses) with a bucket of their own; at this many, idle buckets are dropped. */
#define PROXY_POD_BUCKETS_MAX 4096U
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
 * are removed. filter (may be NULL) sees a 200's body; filter, filter_data, extra_headers and
 * drop_headers must be the same for every GET of one path, and filter_data must outlive it.
 *
 * A GET (without a body) joins the upstream request already in flight for its path, if any, and
 * gets its answer (status, headers, body; a 502 alike), at no cost to the link-local budget; only
 * the first request's headers go upstream. keep: how long a 200 answer to a GET answers later
 * GETs of that path from memory: 0 never, USEC_INFINITY for good (a fact that never changes,
 * imds_surface_immutable), else a TTL (imds_surface_ttl). */
void proxy_forward(Proxy *p, HttpRequest *req, const char *path, const HttpHeader *extra_headers,
                   size_t n_extra, const char *const *drop_headers, ProxyFilter filter,
                   const void *filter_data, usec_t keep);
/* Upstream requests sent; GETs answered from the fixed facts kept for good, from answers kept for
 * their TTL, and by joining a request in flight. */
uint64_t proxy_upstream_requests(const Proxy *p);
uint64_t proxy_memo_hits(const Proxy *p);
uint64_t proxy_kept_hits(const Proxy *p);
uint64_t proxy_joined(const Proxy *p);
/* Requests answered 429 because the link-local budget was spent. */
uint64_t proxy_throttled(const Proxy *p);

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
