/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* HttpServer: the libmicrohttpd adapter (the only file that includes microhttpd.h). One MHD
 * daemon per listening socket, in external-epoll mode on the sd-event loop, with suspend/resume
 * for requests that wait (proxy, cold credentials, pods not yet seen). Owns the named limits on
 * what a client may send, the per-request state (HttpRequest) and the drain on shutdown.
 * Handlers see HttpRequest only: raw path and query as received, headers, the peer address,
 * and one way to answer (http_request_respond), now or later. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"

/* Request line plus headers: IMDS clients (the SDKs, curl) send a few hundred bytes in fewer than
 * ten header lines, a token header included; 4 KiB in up to 32 lines is ten times that. MHD zeroes
 * its per-connection pool (sized from these two) for every request on a kept-alive connection:
 * at 16 KiB that was half of a cached credential request's instructions (bench/, callgrind). */
#define HTTP_MAX_HEADER_BYTES (4U * 1024U)
#define HTTP_MAX_HEADER_LINES 32U
/* IMDS requests carry no body (the token PUT neither); a small allowance keeps odd clients working. */
#define HTTP_MAX_BODY_BYTES 1024U
/* A node runs at most ~250 pods; each SDK holds a connection or two. 1024 leaves room for churn.
 * The fd limit must exceed it (see HTTP_FD_RESERVE): the unit sets LimitNOFILE=4096. */
#define HTTP_MAX_CONNECTIONS 1024U
/* One address must not take the server: at 128 it takes 8 addresses (8 pods, whose addresses the
 * CNI assigns, not they) to fill HTTP_MAX_CONNECTIONS, where 256 let 4 pods trickling request
 * heads hold every slot (issue 11). Not lower: a pod whose 100 threads each build an SDK client at
 * start asks IMDS 100 times at once, and a refused connection is a failed credential fetch. */
#define HTTP_MAX_CONNECTIONS_PER_IP 128U
/* A request head (and its small body) must be complete this long after the connection opened, or
 * after its request line arrived on a kept-alive connection. SDKs write a head in one go and give
 * up on IMDS after 1-2 s; a client trickling bytes resets MHD's idle timeout forever, this does
 * not reset. Requests handed to a handler (waiting for STS, a pod, the proxy) are not subject. */
#define HTTP_HEAD_DEADLINE_SEC 10U
/* Idle keep-alive connections are closed after this long (SDKs reconnect at will). Between two
 * requests it is also a deadline for the next request line that trickled bytes do not reset. */
#define HTTP_IDLE_TIMEOUT_SEC 30U
/* File descriptors kept for everything but pods' connections: curl's connections to STS, the real
 * IMDS and the API server, the watch, the journal, kubeconfig exec plugins' pipes, sd-event's own.
 * A few dozen in practice; the rest is headroom so accept() never meets EMFILE. */
#define HTTP_FD_RESERVE 1024U
/* The daemon's listeners sharing the fd limit: the pods' one and the metrics one. */
#define HTTP_SERVERS_MAX 2U
/* sd-event dispatches one pending source per iteration: the lowest priority number first, and
 * among equals the one pending longest. Every source of the daemon (this server, the HTTP client's
 * curl sockets and timers, the watch, the credential timer) has this one priority, so none can be
 * skipped twice while another is pending: the server never waits behind internal work for more
 * than one turn of each, and a busy server cannot starve the timers and curl that answer its
 * kept requests. A server at a lower priority than the rest waited for as long as any other
 * source stayed pending (issue 11: a credential timer due "now" kept it waiting for 20 s). */
#define HTTP_SERVER_EVENT_PRIORITY SD_EVENT_PRIORITY_NORMAL

/* The connection cap that fits an fd limit of `nofile`: HTTP_MAX_CONNECTIONS, or less when the
 * limit cannot hold HTTP_SERVERS_MAX servers' caps plus HTTP_FD_RESERVE (at least 1). */
unsigned http_server_connection_cap(uint64_t nofile);

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

typedef struct HttpHeader {
        const char *name;
        const char *value;
} HttpHeader;

/* Called once per request, when its headers (and small body) are in. The handler answers with
 * http_request_respond() now, or keeps the request (it is suspended automatically) and answers
 * later. userdata is the server's. */
typedef void (*http_handler_t)(HttpRequest *req, void *userdata);
/* Called when a kept request ends before it was answered (client gone, server stopping) so its
 * owner drops its pointer to it. */
typedef void (*http_request_abort_t)(HttpRequest *req, void *owner_data);

/* The local port of a bound socket (IPv4 or IPv6) in *ret. -EAFNOSUPPORT for other families. */
int http_socket_local_port(int fd, uint16_t *ret);

/* listen_fd: a listening stream socket; ownership passes to the server. */
int http_server_new(sd_event *event, int listen_fd, const char *name, http_handler_t handler, void *userdata,
                    HttpServer **ret);
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);

/* Stops accepting new connections (they stay in the socket's backlog, which systemd keeps for
 * the next instance); requests in progress go on. */
void http_server_stop_accepting(HttpServer *s);
/* Requests accepted and not yet answered. */
unsigned http_server_pending(const HttpServer *s);
/* Connections on which no request began yet: a client that connected just before the drain began
 * writes its request at once, and is owed an answer. */
unsigned http_server_unrequested(const HttpServer *s);
/* Answers every kept request with `status` (used at the end of a drain). */
void http_server_abort_pending(HttpServer *s, unsigned status);

const char *http_request_method(const HttpRequest *r);
/* The request target's path exactly as received (no decoding), never NULL, may be absolute-form. */
const char *http_request_path(const HttpRequest *r);
/* The raw query string without '?', or NULL when the target had none. */
const char *http_request_query(const HttpRequest *r);
const char *http_request_header(const HttpRequest *r, const char *name);
/* Calls f for every request header in order; stops early when f returns false. */
void http_request_foreach_header(const HttpRequest *r,
                                 bool (*f)(const char *name, const char *value, void *ud), void *ud);
/* The TCP peer's address, normalised as Go's net.ParseIP(...).String() does (IPv4-mapped IPv6
 * becomes dotted IPv4). */
const char *http_request_peer(const HttpRequest *r);
const void *http_request_body(const HttpRequest *r, size_t *ret_size);
usec_t http_request_start_usec(const HttpRequest *r);

/* Answers the request: copies headers and body. Content-Length is set by the server. Safe to
 * call while the request is kept; after this call the HttpRequest pointer is no longer the
 * caller's. Returns <0 only on allocation failure, when a bare 500 is sent instead. */
int http_request_respond(HttpRequest *r, unsigned status, const HttpHeader *headers, size_t n_headers,
                         const void *body, size_t size);
/* The same, for a body that holds secrets: the server's copy is wiped when it is freed. */
int http_request_respond_secret(HttpRequest *r, unsigned status, const HttpHeader *headers, size_t n_headers,
                                const void *body, size_t size);

/* A response built once and answered many times (the credential document of one set of cached
 * credentials): headers and body are copied when it is made; with secret, the body is wiped when
 * the last reference goes, which may be a connection still sending it after its maker let go.
 * Answering with one costs no allocation and no copy. */
typedef struct HttpResponse HttpResponse;
int http_response_new(const HttpHeader *headers, size_t n_headers, const void *body, size_t size,
                      bool secret, HttpResponse **ret);
HttpResponse *http_response_ref(HttpResponse *p);
HttpResponse *http_response_unref(HttpResponse *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpResponse *, http_response_unref);
/* http_request_respond() with a prepared response (a new reference is taken). */
int http_request_respond_prepared(HttpRequest *r, unsigned status, HttpResponse *p);
/* Registers the owner of a kept request, told (abort) when the request ends unanswered. */
void http_request_set_owner(HttpRequest *r, http_request_abort_t abort_cb, void *owner_data);
/* Who the handler layer found the client to be (the pod's uid), for the observer: a copy is kept,
 * none when longer than HTTP_REQUEST_SUBJECT_MAX. NULL when never set. */
#define HTTP_REQUEST_SUBJECT_MAX 64U
void http_request_set_subject(HttpRequest *r, const char *subject);
const char *http_request_subject(const HttpRequest *r);
/* Per-request slot for the handler layer (route label for metrics, etc.). */
void http_request_set_label(HttpRequest *r, const char *label);
const char *http_request_label(const HttpRequest *r);

/* Observer of every answered request (metrics, request log). */
typedef void (*http_observer_t)(const HttpRequest *r, unsigned status, usec_t duration, void *userdata);
void http_server_set_observer(HttpServer *s, http_observer_t f, void *userdata);
