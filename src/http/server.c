/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "server.h"
#include "string-util.h"

/* MHD's per-connection memory pool holds the request head, MHD's record of each header line (64
 * bytes in 0.9.75) and the response's head (Date, Server, Content-Type, Content-Length: a few
 * hundred bytes); an answer's body is sent from the response itself. A head that does not fit is
 * refused by MHD with 431/414. MHD zeroes the pool for every request of a kept-alive connection,
 * and half of it again when it answers: the pool is what the limits need and no more. */
#define HTTP_HEADER_RECORD_BYTES 64U
#define HTTP_RESPONSE_HEAD_BYTES 512U
#define HTTP_CONNECTION_POOL_BYTES \
        (HTTP_MAX_HEADER_BYTES + HTTP_MAX_HEADER_LINES * HTTP_HEADER_RECORD_BYTES + HTTP_RESPONSE_HEAD_BYTES)
/* libmicrohttpd's own messages (a refused connection over the per-address limit, a broken
 * request): a client can trigger one per connection, so they are rate-limited like request logs. */
#define HTTP_LIBRARY_LOG_BURST 20U
#define HTTP_LIBRARY_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)
#define HTTP_LIBRARY_LOG_LINE_MAX 256U
/* How late the head-deadline timer may fire: deadlines are seconds long, and one wakeup for the
 * connections that expire close together costs less than one each. */
#define HTTP_DEADLINE_ACCURACY_USEC (100 * USEC_PER_MSEC)
/* Connections cut at their head deadline are reported in one line per this interval at most. */
#define HTTP_DEADLINE_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

/* One per TCP connection, from accept to close (MHD's socket context): when its request head (or
 * the next one, kept alive) must be in. */
typedef struct HttpConnection {
        HttpServer *server;
        struct MHD_Connection *connection;
        usec_t deadline; /* CLOCK_MONOTONIC; USEC_INFINITY while a request is with the handler */
        bool requested;  /* a request began on it (its first request line arrived) */
        bool fin_sent;   /* shutdown(SHUT_WR) done: see connection_send_fin() */
        int fd;
        struct HttpConnection *prev, *next;
} HttpConnection;

int http_socket_local_port(int fd, uint16_t *ret) {
        struct sockaddr_storage ss = {};
        socklen_t len = sizeof ss;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return -errno;
        if (ss.ss_family == AF_INET)
                *ret = ntohs(((const struct sockaddr_in *) &ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
                *ret = ntohs(((const struct sockaddr_in6 *) &ss)->sin6_port);
        else
                return -EAFNOSUPPORT;
        return 0;
}

typedef enum RequestState {
        REQUEST_RECEIVING, /* headers in, body (if any) arriving */
        REQUEST_KEPT,      /* handed to the handler, suspended until answered */
        REQUEST_ANSWERED,  /* response queued */
} RequestState;

struct HttpRequest {
        HttpServer *server;
        struct MHD_Connection *connection;
        RequestState state;
        bool first_call_done;
        bool body_too_large;
        bool in_handler;
        bool suspended;

        char *target;       /* raw request target */
        const char *path;   /* into target */
        const char *query;  /* into target, or NULL */
        const char *method; /* MHD's, valid for the connection */
        char peer[INET6_ADDRSTRLEN];
        StrBuf body;
        usec_t start;
        const char *label;
        char subject[HTTP_REQUEST_SUBJECT_MAX]; /* "" when not set */

        struct MHD_Response *response; /* the answer waiting to be queued */
        HttpResponse *prepared;        /* when the answer is a prepared one: our reference to it */
        unsigned status;

        http_request_abort_t abort_cb;
        void *owner_data;

        HttpRequest *prev, *next; /* the server's list of requests not yet answered */
};

struct HttpServer {
        sd_event *event;
        struct MHD_Daemon *mhd;
        sd_event_source *io, *timer, *defer;
        char *name;
        http_handler_t handler;
        void *userdata;
        http_observer_t observer;
        void *observer_data;
        int listen_fd;
        bool stopping; /* http_server_stop_accepting() was called: answers end their connection */
        HttpRequest *pending;
        unsigned n_pending;
        LogRatelimit library_log_ratelimit;

        HttpConnection *connections;
        sd_event_source *deadline_timer;
        usec_t deadline_armed; /* when deadline_timer fires, USEC_INFINITY when off */
        unsigned cut_unreported;
        LogRatelimit cut_log_ratelimit;
};

static void server_schedule(HttpServer *s);

/* Without this, libmicrohttpd writes to stderr itself: one unstructured, unlimited line per
 * connection refused at the per-address limit (120,000 lines in 30 s under bench/run.sh). */
_printf_(2, 0) static void on_library_log(void *userdata, const char *fmt, va_list ap) {
        HttpServer *s = userdata;
        char line[HTTP_LIBRARY_LOG_LINE_MAX];
        size_t n;

        if (!log_ratelimit_allow(NULL, &s->library_log_ratelimit))
                return;
        (void) vsnprintf(line, sizeof line, fmt, ap);
        n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
        log_warning("HTTP server (%s): %s", s->name, line);
}

static void pending_link(HttpServer *s, HttpRequest *r) {
        r->next = s->pending;
        r->prev = NULL;
        if (s->pending)
                s->pending->prev = r;
        s->pending = r;
        s->n_pending++;
}

static void pending_unlink(HttpServer *s, HttpRequest *r) {
        if (r->prev)
                r->prev->next = r->next;
        else if (s->pending == r)
                s->pending = r->next;
        else
                return; /* not linked */
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
        s->n_pending--;
}

unsigned http_server_connection_cap(uint64_t nofile) {
        uint64_t fit;

        if (nofile <= HTTP_FD_RESERVE)
                return 1;
        fit = (nofile - HTTP_FD_RESERVE) / HTTP_SERVERS_MAX;
        return (unsigned) MAX(MIN(fit, (uint64_t) HTTP_MAX_CONNECTIONS), 1);
}

/* Raises the soft fd limit to what HTTP_SERVERS_MAX full servers need, if the hard limit allows
 * (run by hand; the unit sets LimitNOFILE= and its syscall filter forbids this), and returns the
 * connection cap that fits the limit there is, so accept() never fails with EMFILE. */
static unsigned fd_budget_connection_cap(const char *name) {
        const rlim_t need = (rlim_t) HTTP_SERVERS_MAX * HTTP_MAX_CONNECTIONS + HTTP_FD_RESERVE;
        struct rlimit rl;
        unsigned cap;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return HTTP_MAX_CONNECTIONS;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
                struct rlimit raised = { .rlim_cur = MIN(need, rl.rlim_max), .rlim_max = rl.rlim_max };
                if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
                        rl = raised;
        }
        cap = rl.rlim_cur == RLIM_INFINITY ? HTTP_MAX_CONNECTIONS : http_server_connection_cap(rl.rlim_cur);
        if (cap < HTTP_MAX_CONNECTIONS)
                log_warning("HTTP server (%s): the fd limit (%llu) holds %u connections, not %u: "
                            "raise LimitNOFILE= to at least %llu",
                            name, (unsigned long long) rl.rlim_cur, cap, HTTP_MAX_CONNECTIONS,
                            (unsigned long long) need);
        return cap;
}

static void deadline_arm(HttpServer *s, usec_t t) {
        int r;

        if (t >= s->deadline_armed)
                return;
        r = sd_event_source_set_time(s->deadline_timer, t);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->deadline_timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the HTTP server's head deadline: %m");
                return;
        }
        s->deadline_armed = t;
}

static HttpConnection *connection_of(struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static void connection_set_deadline(struct MHD_Connection *connection, usec_t deadline) {
        HttpConnection *hc = connection_of(connection);

        if (!hc)
                return;
        hc->deadline = deadline;
        deadline_arm(hc->server, deadline);
}

/* Ends a connection MHD would keep: the kernel reports the shutdown to MHD's epoll, and MHD closes
 * the connection as it would any that the client closed. */
static void connection_cut(struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
                (void) shutdown(ci->connect_fd, SHUT_RDWR);
}

/* The FIN after the last answer of a connection. MHD_USE_TURBO (docs/design.md) skips the
 * library's shutdown(SHUT_WR) and closes the socket only at the end of its run, after every other
 * ready connection; a close() with request bytes still unread then sends a reset instead of the
 * end of the stream, and the client may lose an error answer it has not read yet. Sent once per
 * connection: when its last request completes, or at the latest just before the library closes. */
static void connection_send_fin(HttpConnection *hc) {
        if (hc->fin_sent || hc->fd < 0)
                return;
        hc->fin_sent = true;
        (void) shutdown(hc->fd, SHUT_WR);
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        HttpServer *s = userdata;
        usec_t now = now_monotonic(), next = USEC_INFINITY;

        s->deadline_armed = USEC_INFINITY;
        for (HttpConnection *hc = s->connections; hc; hc = hc->next) {
                if (hc->deadline > now) {
                        next = MIN(next, hc->deadline);
                        continue;
                }
                hc->deadline = USEC_INFINITY;
                connection_cut(hc->connection);
                s->cut_unreported++;
        }
        if (s->cut_unreported > 0 && log_ratelimit_allow(NULL, &s->cut_log_ratelimit)) {
                log_notice("HTTP server (%s): closed %u connection(s) that sent no complete request within "
                           "%us (or %us after the last answer)",
                           s->name, s->cut_unreported, HTTP_HEAD_DEADLINE_SEC, HTTP_IDLE_TIMEOUT_SEC);
                s->cut_unreported = 0;
        }
        deadline_arm(s, next);
        return 0;
}

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        HttpServer *s = cls;
        const union MHD_ConnectionInfo *ci;
        HttpConnection *hc;

        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                hc = calloc(1, sizeof *hc);
                if (!hc) {
                        connection_cut(connection); /* a connection without a deadline is not served */
                        return;
                }
                ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
                *hc = (HttpConnection){ .server = s,
                                        .connection = connection,
                                        .fd = ci ? ci->connect_fd : -1,
                                        .next = s->connections };
                if (s->connections)
                        s->connections->prev = hc;
                s->connections = hc;
                *socket_context = hc;
                connection_set_deadline(connection,
                                        usec_add(now_monotonic(), HTTP_HEAD_DEADLINE_SEC * USEC_PER_SEC));
                return;
        }
        hc = *socket_context;
        if (!hc)
                return;
        *socket_context = NULL;
        connection_send_fin(hc); /* MHD closes the socket right after this */
        if (hc->prev)
                hc->prev->next = hc->next;
        else
                s->connections = hc->next;
        if (hc->next)
                hc->next->prev = hc->prev;
        free(hc);
}

/* Dotted quad into buf (INET_ADDRSTRLEN): inet_ntop() goes through sprintf, 4% of a cached
 * credential request (bench/, callgrind). */
static void format_ipv4(const void *addr, char buf[static INET_ADDRSTRLEN]) {
        const uint8_t *b = addr;
        char *p = buf;

        for (size_t i = 0; i < 4; i++) {
                unsigned v = b[i];
                if (i > 0)
                        *p++ = '.';
                if (v >= 100)
                        *p++ = (char) ('0' + v / 100);
                if (v >= 10)
                        *p++ = (char) ('0' + v / 10 % 10);
                *p++ = (char) ('0' + v % 10);
        }
        *p = '\0';
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *connection) {
        HttpServer *s = cls;
        const union MHD_ConnectionInfo *ci;
        HttpConnection *hc;
        HttpRequest *r;
        char *q;

        r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->server = s;
        r->connection = connection;
        r->start = now_monotonic();
        r->target = strdup(uri ?: "");
        if (!r->target) {
                free(r);
                return NULL;
        }
        q = strchr(r->target, '?');
        if (q) {
                *q = '\0';
                r->query = q + 1;
        }
        r->path = r->target;
        /* the rest of this head is due within the head deadline, whatever was allowed before */
        hc = connection_of(connection);
        if (hc)
                hc->requested = true;
        if (hc)
                connection_set_deadline(
                        connection,
                        MIN(hc->deadline, usec_add(r->start, HTTP_HEAD_DEADLINE_SEC * USEC_PER_SEC)));

        ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                        format_ipv4(&((const struct sockaddr_in *) sa)->sin_addr, r->peer);
                else if (sa->sa_family == AF_INET6) {
                        const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                        if (IN6_IS_ADDR_V4MAPPED(a))
                                format_ipv4(&a->s6_addr[12], r->peer);
                        else
                                inet_ntop(AF_INET6, a, r->peer, sizeof r->peer);
                }
        }
        return r;
}

/* Keeps the target exactly as received: routing does its own decoding, as Go's mux does. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s) {
        return strlen(s);
}

struct HttpResponse {
        unsigned n_ref;
        struct MHD_Response *mhd; /* one MHD reference, ours; each connection sending it holds another */
};

/* Lets go of the request's answer: a response of its own is destroyed, a prepared one unreferenced. */
static void request_drop_response(HttpRequest *r) {
        if (r->prepared)
                r->prepared = http_response_unref(r->prepared);
        else if (r->response)
                MHD_destroy_response(r->response);
        r->response = NULL;
}

static enum MHD_Result queue_prepared(HttpRequest *r) {
        enum MHD_Result ret;

        /* Stopping: a kept-alive connection must not carry another request to a process about to
         * exit. A request that says "Connection: close" makes MHD close after the answer and say so
         * (the response, possibly shared, stays as it is). */
        if (r->server->stopping)
                (void) MHD_set_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION,
                                                "close");
        ret = MHD_queue_response(r->connection, r->status, r->response);
        request_drop_response(r);
        r->state = REQUEST_ANSWERED;
        pending_unlink(r->server, r);
        if (r->server->observer)
                r->server->observer(r, r->status, usec_sub(now_monotonic(), r->start),
                                    r->server->observer_data);
        return ret;
}

/* A body that holds secrets (credentials): our own copy, wiped when MHD lets go of it. */
typedef struct SecretBody {
        size_t size;
        char data[];
} SecretBody;

static void secret_body_free(void *cls) {
        SecretBody *b = cls;
        explicit_bzero(b->data, b->size);
        free(b);
}

static struct MHD_Response *make_response(const HttpHeader *headers, size_t n, const void *body, size_t size,
                                          bool secret) {
        struct MHD_Response *resp;

        if (secret) {
                SecretBody *b = malloc(sizeof(SecretBody) + size + 1);
                if (!b)
                        return NULL;
                b->size = size;
                if (size > 0)
                        memcpy(b->data, body, size);
                resp = MHD_create_response_from_buffer_with_free_callback_cls(size, b->data,
                                                                              secret_body_free, b);
                if (!resp) {
                        secret_body_free(b);
                        return NULL;
                }
        } else
                resp = MHD_create_response_from_buffer(size, (void *) (body ?: ""), MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (headers[i].name && headers[i].value &&
                    MHD_add_response_header(resp, headers[i].name, headers[i].value) != MHD_YES) {
                        MHD_destroy_response(resp);
                        return NULL;
                }
        return resp;
}

static enum MHD_Result answer_now(HttpRequest *r, unsigned status, const char *body) {
        static const HttpHeader h[] = {
                { "Content-Type", "text/plain; charset=utf-8" },
                { "X-Content-Type-Options", "nosniff" },
        };
        r->response = make_response(h, ELEMENTSOF(h), body, strlen(body), false);
        if (!r->response)
                return MHD_NO;
        r->status = status;
        return queue_prepared(r);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
        HttpServer *s = cls;
        HttpRequest *r = *con_cls;

        if (!r)
                return MHD_NO; /* allocation failed in on_uri: drop the connection */

        if (r->response) /* answered while kept, and now resumed */
                return queue_prepared(r);
        if (r->state != REQUEST_RECEIVING)
                return MHD_YES;

        if (!r->first_call_done) {
                /* Queue nothing on the first call: answering now would force Connection: close. */
                r->first_call_done = true;
                r->method = method;
                pending_link(s, r);
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (r->body.len + *upload_data_size > HTTP_MAX_BODY_BYTES)
                        r->body_too_large = true;
                else
                        strbuf_append_n(&r->body, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (r->body_too_large)
                return answer_now(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
        if (strbuf_error(&r->body) < 0)
                return answer_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");

        r->state = REQUEST_KEPT;
        /* with the handler now: a request that waits (for STS, a pod, the proxy) has its own deadline */
        connection_set_deadline(connection, USEC_INFINITY);
        r->in_handler = true;
        s->handler(r, s->userdata);
        r->in_handler = false;

        if (r->response)
                return queue_prepared(r);

        MHD_suspend_connection(connection);
        r->suspended = true;
        return MHD_YES;
}

/* Whether a comma-separated header value lists token (case-insensitive, RFC 9110 5.6.1). */
static bool header_has_token(const char *value, const char *token) {
        size_t n = strlen(token);

        for (const char *p = value; p && *p;) {
                p += strspn(p, " \t,");
                if (strncasecmp(p, token, n) == 0 && strchr(" \t,", p[n]))
                        return true;
                p = strchr(p, ',');
        }
        return false;
}

/* The request said "Connection: close" (or the drain set it), which MHD always honours: this was
 * the connection's last answer. Sending the FIN now, not at the end of the library's run, lets the
 * server close first and keep the TIME_WAIT; a client that closes first keeps it instead, and its
 * next connect() has to search for a free port (bench/run.sh, new-connection rows). Never on a
 * connection that may be kept alive. */
static void finish_closing_connection(struct MHD_Connection *connection) {
        const char *v = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
        const union MHD_ConnectionInfo *ci;

        if (!v || !header_has_token(v, "close"))
                return;
        ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context)
                connection_send_fin(ci->socket_context);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        HttpServer *s = cls;
        HttpRequest *r = *con_cls;

        /* kept alive, the connection has until the idle timeout to send its next request line */
        connection_set_deadline(connection, usec_add(now_monotonic(), HTTP_IDLE_TIMEOUT_SEC * USEC_PER_SEC));
        /* the whole answer is sent (COMPLETED_OK comes after its last byte) */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                finish_closing_connection(connection);
        if (!r)
                return;
        *con_cls = NULL;
        pending_unlink(s, r);
        if (r->state == REQUEST_KEPT && r->abort_cb)
                r->abort_cb(r, r->owner_data);
        request_drop_response(r);
        strbuf_done(&r->body);
        free(r->target);
        free(r);
}

static void run_mhd(HttpServer *s) {
        (void) MHD_run(s->mhd);
        server_schedule(s);
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        run_mhd(userdata);
        return 0;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        run_mhd(userdata);
        return 0;
}

static int on_defer(sd_event_source *src, void *userdata) {
        run_mhd(userdata);
        return 0;
}

/* Acts on all three MHD_get_timeout answers (docs/design.md): 0 = run again now (epoll is
 * edge-triggered and pipelined requests would wait), none = no timer, N = a timer. */
static void server_schedule(HttpServer *s) {
        MHD_UNSIGNED_LONG_LONG ms;

        if (!s->mhd)
                return;
        if (MHD_get_timeout(s->mhd, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        if (ms == 0) {
                (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
                return;
        }
        (void) sd_event_source_set_time(s->timer, usec_add(now_monotonic(), (usec_t) ms * USEC_PER_MSEC));
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

int http_server_new(sd_event *event, int listen_fd, const char *name, http_handler_t handler, void *userdata,
                    HttpServer **ret) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        const union MHD_DaemonInfo *info;
        unsigned cap;
        int r;

        if (!event || listen_fd < 0 || !handler || !ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s) {
                safe_close(listen_fd);
                return -ENOMEM;
        }
        s->event = sd_event_ref(event);
        s->listen_fd = listen_fd;
        s->library_log_ratelimit = (LogRatelimit){ .interval_usec = HTTP_LIBRARY_LOG_INTERVAL_USEC,
                                                   .burst = HTTP_LIBRARY_LOG_BURST };
        s->handler = handler;
        s->userdata = userdata;
        s->name = strdup(name ?: "http");
        if (!s->name)
                return -ENOMEM;

        s->cut_log_ratelimit =
                (LogRatelimit){ .interval_usec = HTTP_DEADLINE_LOG_INTERVAL_USEC, .burst = 1 };
        s->deadline_armed = USEC_INFINITY;
        cap = fd_budget_connection_cap(s->name);
        r = sd_event_add_time(event, &s->deadline_timer, CLOCK_MONOTONIC, USEC_INFINITY,
                              HTTP_DEADLINE_ACCURACY_USEC, on_deadline, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HTTP server's head deadline timer: %m");
        (void) sd_event_source_set_enabled(s->deadline_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_priority(s->deadline_timer, HTTP_SERVER_EVENT_PRIORITY);

        s->mhd = MHD_start_daemon(
                MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_library_log, s, MHD_OPTION_LISTEN_SOCKET,
                listen_fd, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape,
                s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
                s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) HTTP_CONNECTION_POOL_BYTES,
                MHD_OPTION_CONNECTION_LIMIT, cap, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                MIN((unsigned) HTTP_MAX_CONNECTIONS_PER_IP, cap), MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned) HTTP_IDLE_TIMEOUT_SEC, MHD_OPTION_END);
        if (!s->mhd)
                return log_error_errno(EIO, "Failed to start the HTTP server (%s)", s->name);

        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(EIO, "Failed to get the HTTP server's epoll fd (%s)", s->name);

        r = sd_event_add_io(event, &s->io, info->epoll_fd, EPOLLIN, on_io, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the HTTP server: %m");
        r = sd_event_add_time(event, &s->timer, CLOCK_MONOTONIC, 0, 1, on_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HTTP server timer: %m");
        r = sd_event_add_defer(event, &s->defer, on_defer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HTTP server run source: %m");
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_priority(s->io, HTTP_SERVER_EVENT_PRIORITY);
        (void) sd_event_source_set_priority(s->timer, HTTP_SERVER_EVENT_PRIORITY);
        (void) sd_event_source_set_priority(s->defer, HTTP_SERVER_EVENT_PRIORITY);
        (void) sd_event_source_set_description(s->io, "http-server-io");

        *ret = TAKE_PTR(s);
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        if (s->mhd) {
                http_server_abort_pending(s, MHD_HTTP_SERVICE_UNAVAILABLE);
                MHD_stop_daemon(s->mhd);
                s->mhd = NULL;
        }
        /* MHD told us of every connection it closed; nothing is left, but free what would be */
        while (s->connections) {
                HttpConnection *hc = s->connections;
                s->connections = hc->next;
                free(hc);
        }
        /* MHD does not close a socket passed with MHD_OPTION_LISTEN_SOCKET */
        safe_close(s->listen_fd);
        sd_event_source_disable_unref(s->deadline_timer);
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        sd_event_source_disable_unref(s->defer);
        sd_event_unref(s->event);
        free(s->name);
        free(s);
        return NULL;
}

void http_server_stop_accepting(HttpServer *s) {
        MHD_socket fd;

        if (!s || !s->mhd || s->listen_fd < 0)
                return;
        s->stopping = true;
        fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET) {
                /* our copy only: under socket activation systemd keeps the socket and its backlog */
                s->listen_fd = safe_close(s->listen_fd);
        }
        server_schedule(s);
}

unsigned http_server_pending(const HttpServer *s) {
        return s ? s->n_pending : 0;
}

unsigned http_server_unrequested(const HttpServer *s) {
        unsigned n = 0;

        if (!s)
                return 0;
        for (const HttpConnection *hc = s->connections; hc; hc = hc->next)
                if (!hc->requested)
                        n++;
        return n;
}

void http_server_abort_pending(HttpServer *s, unsigned status) {
        /* answer every kept request; requests still receiving are left to MHD's own teardown */
        for (HttpRequest *r = s->pending, *next; r; r = next) {
                next = r->next;
                if (r->state != REQUEST_KEPT || r->response)
                        continue;
                if (r->abort_cb) {
                        http_request_abort_t cb = r->abort_cb;
                        r->abort_cb = NULL;
                        cb(r, r->owner_data);
                }
                (void) http_request_respond(
                        r, status, (const HttpHeader[]){ { "Content-Type", "text/plain; charset=utf-8" } },
                        1, "service stopping\n", strlen("service stopping\n"));
        }
        if (s->mhd)
                (void) MHD_run(s->mhd);
}

void http_server_set_observer(HttpServer *s, http_observer_t f, void *userdata) {
        s->observer = f;
        s->observer_data = userdata;
}

const char *http_request_method(const HttpRequest *r) {
        return r->method ?: "GET";
}

const char *http_request_path(const HttpRequest *r) {
        return r->path;
}

const char *http_request_query(const HttpRequest *r) {
        return r->query;
}

const char *http_request_header(const HttpRequest *r, const char *name) {
        return MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, name);
}

typedef struct HeaderIter {
        bool (*f)(const char *, const char *, void *);
        void *ud;
} HeaderIter;

static enum MHD_Result header_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        HeaderIter *it = cls;
        return it->f(key, value ?: "", it->ud) ? MHD_YES : MHD_NO;
}

void http_request_foreach_header(const HttpRequest *r, bool (*f)(const char *, const char *, void *),
                                 void *ud) {
        HeaderIter it = { f, ud };
        MHD_get_connection_values(r->connection, MHD_HEADER_KIND, header_iter, &it);
}

const char *http_request_peer(const HttpRequest *r) {
        return r->peer;
}

const void *http_request_body(const HttpRequest *r, size_t *ret_size) {
        if (ret_size)
                *ret_size = r->body.len;
        return r->body.s;
}

usec_t http_request_start_usec(const HttpRequest *r) {
        return r->start;
}

void http_request_set_owner(HttpRequest *r, http_request_abort_t abort_cb, void *owner_data) {
        r->abort_cb = abort_cb;
        r->owner_data = owner_data;
}

void http_request_set_label(HttpRequest *r, const char *label) {
        r->label = label;
}

const char *http_request_label(const HttpRequest *r) {
        return r->label;
}

void http_request_set_subject(HttpRequest *r, const char *subject) {
        size_t n = subject ? strnlen(subject, sizeof r->subject) : 0;

        r->subject[0] = '\0';
        if (n > 0 && n < sizeof r->subject) /* one too long to keep is as if never set */
                memcpy(r->subject, subject, n + 1);
}

const char *http_request_subject(const HttpRequest *r) {
        return r->subject[0] ? r->subject : NULL;
}

static bool request_can_answer(const HttpRequest *r) {
        return r && r->state == REQUEST_KEPT && !r->response;
}

/* The answer is set: a request the handler kept is resumed, and queued by on_access. */
static void request_answered(HttpRequest *r) {
        r->abort_cb = NULL;
        if (!r->in_handler && r->suspended) {
                r->suspended = false;
                MHD_resume_connection(r->connection);
                /* MHD 0.9.75 does not count a resume in MHD_get_timeout: run it ourselves */
                (void) sd_event_source_set_enabled(r->server->defer, SD_EVENT_ONESHOT);
        }
}

static int respond(HttpRequest *r, unsigned status, const HttpHeader *headers, size_t n_headers,
                   const void *body, size_t size, bool secret) {
        int ret = 0;

        if (!request_can_answer(r))
                return -EINVAL;
        r->abort_cb = NULL; /* the owner lets go now, whether or not an answer can be made */
        r->response = make_response(headers, n_headers, body, size, secret);
        r->status = status;
        if (!r->response) {
                ret = -ENOMEM;
                r->response = make_response(NULL, 0, NULL, 0, false);
                r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                if (!r->response)
                        return -ENOMEM;
        }
        request_answered(r);
        return ret;
}

int http_response_new(const HttpHeader *headers, size_t n_headers, const void *body, size_t size,
                      bool secret, HttpResponse **ret) {
        HttpResponse *p;

        if (!ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->n_ref = 1;
        p->mhd = make_response(headers, n_headers, body, size, secret);
        if (!p->mhd) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

HttpResponse *http_response_ref(HttpResponse *p) {
        if (p)
                p->n_ref++;
        return p;
}

HttpResponse *http_response_unref(HttpResponse *p) {
        if (!p || --p->n_ref > 0)
                return NULL;
        /* a connection still sending it keeps MHD's copy (and the secret) until it is done */
        MHD_destroy_response(p->mhd);
        free(p);
        return NULL;
}

int http_request_respond_prepared(HttpRequest *r, unsigned status, HttpResponse *p) {
        if (!p || !request_can_answer(r))
                return -EINVAL;
        r->prepared = http_response_ref(p);
        r->response = p->mhd;
        r->status = status;
        request_answered(r);
        return 0;
}

int http_request_respond(HttpRequest *r, unsigned status, const HttpHeader *headers, size_t n_headers,
                         const void *body, size_t size) {
        return respond(r, status, headers, n_headers, body, size, false);
}

int http_request_respond_secret(HttpRequest *r, unsigned status, const HttpHeader *headers, size_t n_headers,
                                const void *body, size_t size) {
        return respond(r, status, headers, n_headers, body, size, true);
}
