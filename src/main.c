/* SPDX-License-Identifier: BSD-3-Clause */
/* main: config → log → event loop → subsystems → serve → drain on SIGTERM.
 * The only file that knows every module; each request is routed here to its module. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "build-info.h"
#include "aws/upstream-client.h"
#include "aws/node-credentials.h"
#include "aws/sts-client.h"
#include "cluster-view.h"
#include "config.h"
#include "creds.h"
#include "doctor.h"
#include "explain-socket.h"
#include "explain.h"
#include "health.h"
#include "http-client.h"
#include "imds-service.h"
#include "token-issuer.h"
#include "kube/kube-client.h"
#include "kube/kubeconfig.h"
#include "log.h"
#include "metrics.h"
#include "pod-roles.h"
#include "process-metrics.h"
#include "pod-routes.h"
#include "proxy.h"
#include "redirect.h"
#include "restart-backoff.h"
#include "roles.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "string-util.h"
#include "warm-start.h"

/* How long SIGTERM waits for requests in progress before answering the rest 503 and exiting.
 * Must stay well below systemd's TimeoutStopSec (90 s by default). */
#define DRAIN_TIMEOUT (10 * USEC_PER_SEC)
#define DRAIN_POLL_INTERVAL (20 * USEC_PER_MSEC)
/* A connection accepted just before SIGTERM whose request has not arrived yet: clients write the
 * request right after connecting, within microseconds on a node; a quarter second from the start
 * of the drain covers a loaded one. Such a connection is waited for, then answered like any request
 * in progress; one still silent then is idle and closed at exit (its client reconnects to the
 * socket systemd keeps). */
#define DRAIN_FIRST_REQUEST_GRACE (250 * USEC_PER_MSEC)
#define LISTEN_BACKLOG 4096
/* Pods' listener: the kernel hands a connection over once its first bytes are in (TCP_DEFER_ACCEPT;
 * kube2iam.socket's DeferAcceptSec=), one wakeup per connection fewer: -8% CPU per request for a
 * client that opens a connection per request (bench/run.sh). A connection that stays silent waits
 * in the kernel this long, then is handed over and meets the head deadline (docs/limits.md). */
#define LISTEN_DEFER_ACCEPT_SEC 1
/* Pods, and with Calico or the VPC CNI their interfaces, come and go all the time: the routes are
 * checked on every change of the pod list and, for interfaces that change on their own, this often.
 * Reading the table costs well under a millisecond. */
#define POD_ROUTES_CHECK_INTERVAL (30 * USEC_PER_SEC)
/* --auto-discover-*: kube2iam reads IMDS once at start and dies when it cannot; we wait this long. */
#define DISCOVERY_TIMEOUT (30 * USEC_PER_SEC)
/* The per-request log (debug, --log-level=debug): enough to follow a few pods, not a flood. */
#define REQUEST_LOG_BURST 100U
#define REQUEST_LOG_INTERVAL_USEC USEC_PER_SEC

typedef struct Daemon {
        Config config;
        sd_event *event;
        HttpClient *http;
        HttpServer *app;
        HttpServer *metrics;
        Proxy *proxy;
        Health *health;
        Metrics *registry;
        MetricFamily *m_http, *m_health, *m_pods, *m_namespaces, *m_waiting, *m_pod_events;
        MetricFamily *m_forbidden; /* kube2iam_watch_forbidden{resource} */
        UpstreamClient *imds;
        NodeCredentials *node;
        StsClient *sts;
        Creds *creds;
        Roles *roles;
        Store *store;
        PodRoles *pod_roles;
        ExplainSocket *explain; /* `kube2iam explain`'s socket, NULL without $RUNTIME_DIRECTORY */
        KubeClient *kube;
        ClusterView view; /* the kube client's sink into the store, and the status line */
        TokenIssuer *tokens;
        WarmStart *warm; /* the fd store: the snapshot restored at start, and the ones pushed later */
        int snapshot_fd; /* handed back by systemd until setup_warm_start() takes it */
        ImdsService *service;
        sd_event_source *turn; /* the once-per-loop-turn pass (on_turn) */
        bool status_changed;   /* the Kubernetes client's state changed since the last turn */
        char *status_sent;     /* the last STATUS= text */
        sd_event_source *ready_timer;
        bool ready;
        bool has_kubeconfig;
        RouterOptions router;
        bool stopping;
        bool socket_activated;
        uint16_t listen_port;   /* of the passed socket */
        bool config_error;      /* exit with CONFIG_EXIT_USAGE: restarting cannot help */
        PodRoutesReport routes; /* the last check of pods against --host-interface */
        bool routes_unreadable;
        sd_event_source *routes_timer;
        usec_t drain_start, drain_deadline;
        sd_event_source *drain_timer;
        LogRatelimit request_log_ratelimit;
} Daemon;

static void daemon_done(Daemon *d) {
        d->drain_timer = sd_event_source_disable_unref(d->drain_timer);
        d->ready_timer = sd_event_source_disable_unref(d->ready_timer);
        d->routes_timer = sd_event_source_disable_unref(d->routes_timer);
        d->turn = sd_event_source_disable_unref(d->turn);
        /* waiting requests first (they hold cache waiters), then the servers */
        d->service = imds_service_free(d->service);
        d->explain = explain_socket_free(d->explain);
        d->app = http_server_free(d->app);
        d->metrics = http_server_free(d->metrics);
        d->kube = kube_client_free(d->kube);
        d->pod_roles = pod_roles_free(d->pod_roles); /* gives its in-use counts back to the cache */
        cluster_view_done(&d->view);
        d->warm = warm_start_free(d->warm);
        d->snapshot_fd = safe_close(d->snapshot_fd);
        d->creds = creds_free(d->creds);
        d->sts = sts_client_free(d->sts);
        d->node = node_credentials_free(d->node);
        d->proxy = proxy_free(d->proxy);
        d->health = health_free(d->health);
        d->imds = upstream_client_free(d->imds);
        d->http = http_client_free(d->http);
        d->store = store_free(d->store);
        d->roles = roles_free(d->roles);
        d->tokens = token_issuer_free(d->tokens);
        d->registry = metrics_free(d->registry);
        d->event = sd_event_unref(d->event);
        d->status_sent = mfree(d->status_sent);
        config_done(&d->config);
}

static void respond_text(HttpRequest *req, unsigned status, const char *server, const char *body) {
        const HttpHeader h[] = {
                { "Server", server },
                { "Content-Type", "text/plain; charset=utf-8" },
                { "X-Content-Type-Options", "nosniff" },
        };
        /* Go's http.Error: plain text, nosniff, the message and a newline */
        _cleanup_free_ char *b = NULL;
        if (asprintf(&b, "%s\n", body) < 0) {
                (void) http_request_respond(req, 500, NULL, 0, NULL, 0);
                return;
        }
        (void) http_request_respond(req, status, server ? h : h + 1, server ? 3 : 2, b, strlen(b));
}

static void handle_healthz(Daemon *d, HttpRequest *req) {
        _cleanup_strbuf_ StrBuf b = {};
        const HttpHeader h[] = { { "Content-Type", "application/json" } };

        health_render(d->health, d->kube && kube_client_pods_current(d->kube), &b);
        if (strbuf_error(&b) < 0)
                return respond_text(req, 500, NULL, "out of memory");
        (void) http_request_respond(req, 200, h, 1, b.s, b.len);
}

/* The Events client counts what it posted and dropped; a counter only goes up, so each scrape adds
 * what happened since the last one. */
static void pod_events_metrics_update(Daemon *d) {
        const double now[] = { (double) kube_client_events_posted(d->kube),
                               (double) kube_client_events_dropped(d->kube) };
        static const char *const results[] = { "posted", "dropped" };

        for (size_t i = 0; i < ELEMENTSOF(results); i++) {
                const char *const labels[] = { results[i] };

                (void) metrics_counter_add(d->m_pod_events, labels,
                                           MAX(now[i] - metrics_get(d->m_pod_events, labels), 0.0));
        }
}

static void handle_metrics(Daemon *d, HttpRequest *req) {
        _cleanup_strbuf_ StrBuf b = {};
        const HttpHeader h[] = { { "Content-Type", METRICS_CONTENT_TYPE } };

        (void) metrics_gauge_set(d->m_health, NULL, health_imds_ok(d->health) ? 1 : 0);
        (void) metrics_gauge_set(d->m_pods, NULL, (double) store_n_pods(d->store));
        (void) metrics_gauge_set(d->m_namespaces, NULL, (double) store_n_namespaces(d->store));
        (void) metrics_gauge_set(d->m_waiting, NULL, (double) imds_service_waiting(d->service));
        (void) metrics_gauge_set(d->m_forbidden, (const char *const[]){ "namespaces" },
                                 kube_client_namespaces_state(d->kube) == KUBE_SYNC_FORBIDDEN);
        if (d->config.service_account_roles)
                (void) metrics_gauge_set(d->m_forbidden, (const char *const[]){ "serviceaccounts" },
                                         kube_client_service_accounts_state(d->kube) == KUBE_SYNC_FORBIDDEN);
        pod_events_metrics_update(d);
        (void) process_metrics_update(d->registry);
        if (metrics_render(d->registry, &b) < 0)
                return respond_text(req, 500, NULL, "out of memory");
        (void) http_request_respond(req, 200, h, 1, b.s, b.len);
}

static void handle_debug_store(Daemon *d, HttpRequest *req) {
        _cleanup_free_ char *json = NULL;
        const HttpHeader h[] = { { "Content-Type", "application/json" } };

        if (store_debug_json(d->store, &json) < 0)
                return respond_text(req, 500, NULL, "out of memory");
        (void) http_request_respond(req, 200, h, 1, json, strlen(json));
}

static void on_request(HttpRequest *req, void *userdata) {
        Daemon *d = userdata;
        RouteMatch m = {};
        int r;

        /* explicit proxy use: tunnels are never opened, to the metadata service or anywhere */
        if (streq(http_request_method(req), "CONNECT"))
                return respond_text(req, 405, NULL, "Method Not Allowed: CONNECT is not supported");

        r = router_match(&d->router, http_request_path(req), http_request_query(req), &m);
        if (r < 0) {
                respond_text(req, 500, NULL, "internal error");
                return;
        }
        http_request_set_label(req, route_handler_name(m.id));

        switch (m.id) {
        case ROUTE_BAD_REQUEST:
                respond_text(req, 400, NULL, "400 Bad Request");
                break;
        case ROUTE_REDIRECT: {
                const HttpHeader h[] = { { "Location", m.location } };
                (void) http_request_respond(req, 301, h, 1, NULL, 0);
                break;
        }
        case ROUTE_HEALTHZ:
                handle_healthz(d, req);
                break;
        case ROUTE_METRICS:
                handle_metrics(d, req);
                break;
        case ROUTE_DEBUG_STORE:
                handle_debug_store(d, req);
                break;
        default:
                imds_service_handle(d->service, req, &m);
                break;
        }
        route_match_done(&m);
}

/* The separate --metrics-port listener serves /metrics only, as kube2iam's does. */
static void on_metrics_request(HttpRequest *req, void *userdata) {
        Daemon *d = userdata;
        RouteMatch m = {};
        const RouterOptions o = { .metrics = true };

        if (router_match(&o, http_request_path(req), http_request_query(req), &m) >= 0 &&
            m.id == ROUTE_METRICS)
                handle_metrics(d, req);
        else
                respond_text(req, 404, NULL, "404 page not found");
        route_match_done(&m);
}

/* The pod's ring of last requests (`kube2iam explain`): the metadata routes of a known pod. */
static void record_request(Daemon *d, const HttpRequest *req, unsigned status) {
        const char *label = http_request_label(req), *uid = http_request_subject(req);
        StoreLookup l;

        if (!label || streq(label, "healthHandler") || streq(label, "debugStoreHandler") ||
            streq(label, "metricsHandler"))
                return;
        /* the pod the request was answered for, when the IMDS service found one */
        if (uid)
                return pod_roles_record_request(d->pod_roles, uid, label, status, now_realtime());
        if (store_lookup_ip(d->store, http_request_peer(req), &l) < 0)
                return;
        if (l.status == STORE_LOOKUP_FOUND)
                pod_roles_record_request(d->pod_roles, l.pod->uid, label, status, now_realtime());
        store_lookup_done(&l);
}

/* `kube2iam doctor`'s view of the daemon: READY, synced, its socket's port, the pod routes. */
static int daemon_status_json(Daemon *d, char **ret) {
        cJSON *o = cJSON_CreateObject();
        char *s;

        if (!o || !cJSON_AddBoolToObject(o, "ready", d->ready) ||
            !cJSON_AddBoolToObject(o, "synced", d->kube && kube_client_pods_current(d->kube)) ||
            !cJSON_AddBoolToObject(o, "serviceAccountsForbidden",
                                   d->config.service_account_roles &&
                                           kube_client_service_accounts_state(d->kube) ==
                                                   KUBE_SYNC_FORBIDDEN) ||
            !cJSON_AddNumberToObject(o, "listenPort",
                                     d->socket_activated ? d->listen_port : d->config.app_port) ||
            !cJSON_AddNumberToObject(o, "podsChecked", (double) d->routes.n_pods) ||
            !cJSON_AddNumberToObject(o, "podsOutside", (double) d->routes.n_outside) ||
            !cJSON_AddStringToObject(o, "examplePod", d->routes.example_pod) ||
            !cJSON_AddStringToObject(o, "exampleInterface", d->routes.example_ifname)) {
                cJSON_Delete(o);
                return -ENOMEM;
        }
        s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int on_explain(const char *query, char **ret, void *userdata) {
        Daemon *d = userdata;

        if (streq(query, DOCTOR_STATUS_QUERY))
                return daemon_status_json(d, ret);
        const ExplainDeps deps = {
                .store = d->store,
                .pod_roles = d->pod_roles,
                .creds = d->creds,
                .roles = d->roles,
                .role_key = d->config.iam_role_key,
                .namespace_key = d->config.namespace_key,
                .node = d->kube ? kube_client_node(d->kube) : d->config.node,
                .pods_synced = d->kube && kube_client_pods_current(d->kube),
        };
        return explain_query(&deps, query, ret);
}

/* An HTTP status (three digits, libmicrohttpd refuses others) as text, without printf: this runs
 * for every answered request. */
static void format_status(unsigned status, char buf[static 8]) {
        if (status < 100 || status > 999) {
                (void) snprintf(buf, 8, "%u", status);
                return;
        }
        buf[0] = (char) ('0' + status / 100);
        buf[1] = (char) ('0' + status / 10 % 10);
        buf[2] = (char) ('0' + status % 10);
        buf[3] = '\0';
}

static void on_answered(const HttpRequest *req, unsigned status, usec_t duration, void *userdata) {
        Daemon *d = userdata;
        char ms[32], st[8];

        /* kube2iam times its app handlers; mux's redirects and /metrics are not */
        if (http_request_label(req)) {
                format_status(status, st);
                (void) metrics_histogram_observe(
                        d->m_http,
                        (const char *const[]){ st, http_request_method(req), http_request_label(req) },
                        (double) duration / USEC_PER_SEC);
        }

        record_request(d, req, status);

        /* kube2iam logs every request but /healthz at info; ours are debug, and rate-limited */
        if (log_get_max_level() < LOG_DEBUG || streq(http_request_path(req), "/healthz"))
                return;
        snprintf(ms, sizeof ms, "%f", (double) duration / USEC_PER_MSEC);
        format_status(status, st);
        (void) log_ratelimited(NULL, &d->request_log_ratelimit, LOG_DEBUG, 0,
                               ((const LogField[]){ { "REQ_METHOD", http_request_method(req) },
                                                    { "REQ_PATH", http_request_path(req) },
                                                    { "REQ_REMOTE", http_request_peer(req) },
                                                    { "RES_DURATION", ms },
                                                    { "RES_STATUS", st } }),
                               5, "%s %s (%u) took %s ms", http_request_method(req), http_request_path(req),
                               status, ms);
}

static int make_listener(const char *address, uint16_t port, int defer_accept_sec, int *ret) {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } sa = {};
        socklen_t len;
        _cleanup_close_ int fd = -EBADF;
        int one = 1, zero = 0, family;

        if (address && inet_pton(AF_INET, address, &sa.in.sin_addr) == 1) {
                family = AF_INET;
                sa.in.sin_family = AF_INET;
                sa.in.sin_port = htons(port);
                len = sizeof sa.in;
        } else {
                family = AF_INET6;
                sa.in6.sin6_family = AF_INET6;
                sa.in6.sin6_port = htons(port);
                sa.in6.sin6_addr = in6addr_any;
                if (address && inet_pton(AF_INET6, address, &sa.in6.sin6_addr) != 1)
                        return -EINVAL;
                len = sizeof sa.in6;
        }

        fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 && errno == EAFNOSUPPORT && !address) {
                /* no IPv6 on this host: all IPv4 addresses */
                family = AF_INET;
                memset(&sa, 0, sizeof sa);
                sa.in.sin_family = AF_INET;
                sa.in.sin_port = htons(port);
                len = sizeof sa.in;
                fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        }
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (family == AF_INET6 && !address)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (defer_accept_sec > 0 &&
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_accept_sec, sizeof defer_accept_sec) < 0)
                return -errno;
        if (bind(fd, &sa.sa, len) < 0)
                return -errno;
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

/* kube2iam-nft points the redirect at --app-port: a socket from systemd on another port would
 * leave every pod's request unanswered (kube2iam.socket's ListenStream= and --app-port are set
 * in two files). Refused as a configuration error, naming both. */
static int check_socket_port(Daemon *d, int fd) {
        uint16_t port;
        int r;

        r = http_socket_local_port(fd, &port);
        if (r < 0)
                return log_error_errno(r, "Failed to read the port of the socket passed by systemd: %m");
        if (port != d->config.app_port) {
                log_error("The socket passed by systemd listens on port %u but --app-port is %u, where the "
                          "redirect sends pods: make kube2iam.socket's ListenStream= and --app-port agree",
                          port, d->config.app_port);
                d->config_error = true;
                return -EINVAL;
        }
        return 0;
}

/* Sockets from systemd (named "metrics" for the metrics listener, anything else for the app),
 * else our own. */
static int get_listeners(Daemon *d, int *ret_app, int *ret_metrics) {
        _cleanup_close_ int app = -EBADF, metrics = -EBADF;
        char **names = NULL;
        int n, r;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                bool is_metrics = names && names[i] && streq(names[i], "metrics");

                if (names && names[i] && streq(names[i], SNAPSHOT_FDNAME)) {
                        if (d->snapshot_fd >= 0) {
                                /* two snapshots: which is current cannot be told; neither is used */
                                log_warning("More than one snapshot in the fd store, starting cold");
                                d->snapshot_fd = safe_close(d->snapshot_fd);
                                (void) sd_pid_notify(0, false, "FDSTOREREMOVE=1\nFDNAME=" SNAPSHOT_FDNAME);
                                safe_close(fd);
                                continue;
                        }
                        d->snapshot_fd = fd;
                        continue;
                }

                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                        log_warning("Ignoring passed fd %i (%s): not a listening stream socket", fd,
                                    names && names[i] ? names[i] : "unnamed");
                        safe_close(fd);
                        continue;
                }
                (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                if (is_metrics && metrics < 0)
                        metrics = fd;
                else if (!is_metrics && app < 0)
                        app = fd;
                else {
                        log_warning("Ignoring extra passed socket fd %i", fd);
                        safe_close(fd);
                }
        }
        strv_free(names);
        if (n > 0)
                log_info("Using %i socket(s) passed by systemd", n);
        d->socket_activated = app >= 0;
        if (app >= 0) {
                r = check_socket_port(d, app);
                if (r < 0)
                        return r;
                d->listen_port = d->config.app_port;
        }

        if (app < 0) {
                r = make_listener(d->config.listen_address, d->config.app_port, LISTEN_DEFER_ACCEPT_SEC,
                                  &app);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on %s port %u: %m",
                                               d->config.listen_address ?: "all addresses",
                                               d->config.app_port);
        }
        if (metrics < 0 && d->config.metrics_port != d->config.app_port) {
                r = make_listener(d->config.listen_address, d->config.metrics_port, 0, &metrics);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on %s port %u: %m",
                                               d->config.listen_address ?: "all addresses",
                                               d->config.metrics_port);
        }
        *ret_app = TAKE_FD(app);
        *ret_metrics = TAKE_FD(metrics);
        return 0;
}

/* Requests in progress, and during the first DRAIN_FIRST_REQUEST_GRACE of the drain the
 * connections whose request has not arrived yet. */
static unsigned pending_requests(Daemon *d) {
        unsigned n = http_server_pending(d->app) + http_server_pending(d->metrics);

        if (now_monotonic() < usec_add(d->drain_start, DRAIN_FIRST_REQUEST_GRACE))
                n += http_server_unrequested(d->app) + http_server_unrequested(d->metrics);
        return n;
}

static int on_drain_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        unsigned n = pending_requests(d);

        if (n == 0) {
                log_info("All requests answered, exiting");
                return sd_event_exit(d->event, 0);
        }
        if (now_monotonic() >= d->drain_deadline) {
                log_warning("%u request(s) still open after the drain timeout, answering them 503", n);
                http_server_abort_pending(d->app, 503);
                if (d->metrics)
                        http_server_abort_pending(d->metrics, 503);
                return sd_event_exit(d->event, 0);
        }
        (void) sd_event_source_set_time(s, usec_add(now_monotonic(), DRAIN_POLL_INTERVAL));
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        int r;

        if (d->stopping)
                return 0;
        d->stopping = true;
        d->drain_start = now_monotonic();
        log_fields(LOG_INFO, ((const LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_STOPPING } }), 1,
                   "Received %s, draining %u request(s) in progress", strsignal((int) si->ssi_signo),
                   pending_requests(d));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Draining requests in progress");
        /* what changed in the last coalescing window goes to the store before the next run starts */
        warm_start_flush(d->warm);
        /* new connections wait in the socket's backlog (systemd keeps it for the next instance) */
        http_server_stop_accepting(d->app);
        http_server_stop_accepting(d->metrics);
        d->drain_deadline = usec_add(now_monotonic(), DRAIN_TIMEOUT);
        r = sd_event_add_time(d->event, &d->drain_timer, CLOCK_MONOTONIC, now_monotonic(), 1, on_drain_tick,
                              d);
        if (r < 0)
                return sd_event_exit(d->event, 0);
        return 0;
}

/* STATUS=: sent only when the text changed, and at most once per loop turn (on_turn), however
 * many pods the turn added or removed. */
static void update_status(Daemon *d) {
        char status[1024], routes[400] = "";
        char *copy;

        if (d->routes.n_outside > 0)
                snprintf(routes, sizeof routes,
                         "; WARNING: %zu pod(s) routed outside --host-interface, not redirected (%s via %s)",
                         d->routes.n_outside, d->routes.example_pod, d->routes.example_ifname);
        /* the line keeps its start ("Serving; Synced ..."): warm or cold goes last */
        snprintf(status, sizeof status, "%s; %s%s; %s%s", d->ready ? "Serving" : "Starting",
                 d->kube ? cluster_view_status(&d->view) : "no Kubernetes API", routes,
                 d->warm ? warm_start_status(d->warm) : "cold start", d->stopping ? "; stopping" : "");
        if (d->status_sent && streq(d->status_sent, status))
                return;
        (void) sd_notifyf(false, "STATUS=%s", status);
        copy = strdup(status);
        if (copy)
                free_and_replace(d->status_sent, copy);
}

static void notify_ready(Daemon *d, const char *why) {
        if (d->ready)
                return;
        d->ready = true;
        d->ready_timer = sd_event_source_disable_unref(d->ready_timer);
        log_info("Ready: %s", why);
        (void) sd_notify(false, "READY=1");
        update_status(d);
}

/* Pods routed through an interface --host-interface does not match are not redirected (an empty
 * KUBE2IAM_ARGS on a Calico or VPC-CNI node redirects only docker0): said in the journal when the
 * number changes, and in STATUS= while it lasts. */
static void check_pod_routes(Daemon *d) {
        _cleanup_(pod_routes_freep) PodRouteTable *t = NULL;
        _cleanup_free_ char *patterns = NULL;
        StrBuf b = {};
        PodRoutesReport rep;
        bool changed;
        int r;

        if (!d->kube || !kube_client_pods_synced(d->kube))
                return;
        r = pod_routes_read(POD_ROUTES_TABLE_PATH, &t);
        if (r < 0) {
                if (!d->routes_unreadable)
                        log_warning_errno(
                                r, "Cannot read %s to check --host-interface against the pods' routes: %m",
                                POD_ROUTES_TABLE_PATH);
                d->routes_unreadable = true;
                return;
        }
        d->routes_unreadable = false;
        pod_routes_check(d->store, t, d->config.host_interfaces, &rep);
        changed = rep.n_outside != d->routes.n_outside;
        /* as the operator wrote them: kube2iam's "cali+" is nftables' "cali*" */
        for (char **p = d->config.host_interfaces; p && *p; p++) {
                size_t n = strlen(*p);
                bool wild = n > 0 && (*p)[n - 1] == '*';
                strbuf_appendf(&b, "%s%.*s%s", p == d->config.host_interfaces ? "" : ",", (int) (n - wild),
                               *p, wild ? "+" : "");
        }
        patterns = strbuf_steal(&b);
        if (changed && rep.n_outside > 0)
                log_warning("%zu of %zu pods are routed through interfaces that --host-interface=%s does "
                            "not match "
                            "(%s, %s, via %s): the redirect does not catch their metadata requests; set "
                            "--host-interface to the pods' interfaces (Calico cali+, Amazon VPC CNI eni+)",
                            rep.n_outside, rep.n_pods, strna(patterns), rep.example_pod, rep.example_ip,
                            rep.example_ifname);
        else if (changed && rep.n_outside == 0)
                log_info("Every pod is routed through an interface --host-interface matches");
        d->routes = rep;
        if (changed)
                update_status(d);
}

static int on_routes_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        check_pod_routes(d);
        (void) sd_event_source_set_time(s, usec_add(usec, POD_ROUTES_CHECK_INTERVAL));
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static void schedule_turn(Daemon *d) {
        if (d->turn && sd_event_source_set_enabled(d->turn, SD_EVENT_ONESHOT) < 0)
                log_error("Failed to schedule the pass over changed pods");
}

/* The Kubernetes client's state changed: the status line is due at the next turn. Nothing else:
 * what changed for requests is in the store's record (a stale store records every IP). */
static void on_kube_state(ClusterView *v, void *userdata) {
        Daemon *d = userdata;

        if (kube_client_pods_synced(v->kube))
                notify_ready(d, "caches have been synced");
        check_pod_routes(d);
        d->status_changed = true;
        schedule_turn(d);
}

/* The store recorded its first change since the last turn (nothing may be done here: the store is
 * in the middle of an update). */
static void on_store_changed(Store *s, void *userdata) {
        schedule_turn(userdata);
}

static void wake_requests(const char *ip, void *userdata) {
        Daemon *d = userdata;
        imds_service_wake(d->service, ip);
}

/* Once per loop turn that changed something, ahead of the HTTP server (HTTP_SERVER_EVENT_PRIORITY):
 * pod-roles plays the store's record (roles recomputed, in-use counts and prefetches in the cache,
 * then the requests waiting on the IPs that changed), then the status line. */
static int on_turn(sd_event_source *s, void *userdata) {
        Daemon *d = userdata;

        if (pod_roles_dispatch(d->pod_roles, wake_requests, d))
                warm_start_changed(d->warm); /* the view changed: worth a snapshot */
        if (d->status_changed) {
                d->status_changed = false;
                update_status(d);
        }
        return 0;
}

static int setup_turn(Daemon *d) {
        int r;

        r = sd_event_add_defer(d->event, &d->turn, on_turn, d);
        if (r >= 0)
                r = sd_event_source_set_priority(d->turn, HTTP_SERVER_EVENT_PRIORITY - 1);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->turn, store_has_changes(d->store) ? SD_EVENT_ONESHOT
                                                                                     : SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the pass over changed pods: %m");
        (void) sd_event_source_set_description(d->turn, "pod-roles-turn");
        store_set_change_hook(d->store, on_store_changed, d);
        return 0;
}

static int on_ready_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        log_warning("No pod list within --ready-sync-timeout; serving anyway (unknown pods are refused)");
        notify_ready(d, "--ready-sync-timeout reached");
        return 0;
}

typedef struct Discovery {
        int pending;
        int error;
        char *profile_arn;
        char *role_name;
} Discovery;

static void on_discovered_profile(UpstreamClient *c, int error, const char *value, void *userdata) {
        Discovery *x = userdata;
        x->pending--;
        if (error < 0)
                x->error = error;
        else if (!(x->profile_arn = strdup(value)))
                x->error = -ENOMEM;
}

static void on_discovered_role(UpstreamClient *c, int error, const char *value, void *userdata) {
        Discovery *x = userdata;
        x->pending--;
        if (error < 0)
                x->error = error;
        else if (!(x->role_name = strdup(value)))
                x->error = -ENOMEM;
}

/* kube2iam's base ARN discovery: InstanceProfileArn with its first "instance-profile" turned into
 * "role", cut after the first '/': any path is dropped. */
static int base_arn_from_profile(const char *profile, char **ret) {
        const char *ip = strstr(profile, "instance-profile");
        const char *slash;

        if (!ip)
                return -EINVAL;
        slash = strchr(ip, '/');
        if (!slash)
                return -EINVAL;
        if (asprintf(ret, "%.*srole/", (int) (ip - profile), profile) < 0)
                return -ENOMEM;
        return 0;
}

/* --auto-discover-base-arn / --auto-discover-default-role: asks the upstream IMDS before serving. */
static int discover_roles(Daemon *d, char **base, char **def) {
        Discovery x = {};
        usec_t deadline = usec_add(now_monotonic(), DISCOVERY_TIMEOUT);
        int r = 0;

        if (!d->config.auto_discover_base_arn && !d->config.auto_discover_default_role)
                return 0;
        if (upstream_client_get_instance_profile_arn(d->imds, on_discovered_profile, &x) >= 0)
                x.pending++;
        if (d->config.auto_discover_default_role &&
            upstream_client_get_role_name(d->imds, on_discovered_role, &x) >= 0)
                x.pending++;
        while (x.pending > 0 && now_monotonic() < deadline) {
                r = sd_event_run(d->event, 100 * USEC_PER_MSEC);
                if (r < 0)
                        break;
        }
        if (x.pending > 0 || x.error < 0 || !x.profile_arn ||
            (d->config.auto_discover_default_role && !x.role_name)) {
                r = log_error_errno(x.error < 0 ? x.error : ETIMEDOUT,
                                    "Failed to discover the base ARN from the instance metadata: %m");
                goto finish;
        }
        r = base_arn_from_profile(x.profile_arn, base);
        if (r < 0) {
                r = log_error_errno(r, "can't determine BaseARN from %s", x.profile_arn);
                goto finish;
        }
        log_info("base ARN autodetected, %s", *base);
        if (d->config.auto_discover_default_role) {
                *def = TAKE_PTR(x.role_name);
                log_info("Using instance IAMRole %s%s as default", *base, *def);
        }
        r = 0;
finish:
        free(x.profile_arn);
        free(x.role_name);
        return r;
}

static int setup_metrics(Daemon *d) {
        static const char *const http_labels[] = { "code", "method", "handler", NULL };
        static const char *const info_labels[] = { "version", "build_date", "commit_hash", NULL };
        static const char *const result_labels[] = { "result", NULL };
        static const char *const forbidden_labels[] = { "resource", NULL };
        MetricFamily *info;
        int r;

        r = metrics_new(&d->registry);
        if (r < 0)
                return r;
        r = metrics_add_family(d->registry, "kube2iam_http_request_duration_seconds",
                               "Time spent answering pods' HTTP requests.", METRIC_HISTOGRAM, http_labels,
                               metrics_kube2iam_buckets, ELEMENTSOF(metrics_kube2iam_buckets), 0,
                               &d->m_http);
        if (r >= 0)
                r = metrics_add_family(d->registry, "kube2iam_healthcheck_status",
                                       "1 when the last check of the instance metadata service passed.",
                                       METRIC_GAUGE, NULL, NULL, 0, 0, &d->m_health);
        if (r >= 0)
                r = metrics_add_family(d->registry, "kube2iam_info", "Build information.", METRIC_GAUGE,
                                       info_labels, NULL, 0, 0, &info);
        if (r >= 0)
                r = metrics_add_family(d->registry, "kube2iam_pods_known", "Pods of this node in the store.",
                                       METRIC_GAUGE, NULL, NULL, 0, 0, &d->m_pods);
        if (r >= 0)
                r = metrics_add_family(d->registry, "kube2iam_namespaces_known", "Namespaces in the store.",
                                       METRIC_GAUGE, NULL, NULL, 0, 0, &d->m_namespaces);
        if (r >= 0)
                r = metrics_add_family(d->registry, "kube2iam_requests_waiting",
                                       "Requests waiting for their pod to be known.", METRIC_GAUGE, NULL,
                                       NULL, 0, 0, &d->m_waiting);
        if (r >= 0)
                r = metrics_add_family(
                        d->registry, "kube2iam_pod_events_total",
                        "Pod Events (--pod-events) posted, and dropped (de-duplicated ones are "
                        "not counted).",
                        METRIC_COUNTER, result_labels, NULL, 0, 0, &d->m_pod_events);
        if (r >= 0)
                r = metrics_add_family(
                        d->registry, "kube2iam_watch_forbidden",
                        "1 when the API server refuses to list the resource (403): grant list "
                        "and watch on it (contrib/rbac).",
                        METRIC_GAUGE, forbidden_labels, NULL, 0, 0, &d->m_forbidden);
        if (r >= 0)
                r = process_metrics_register(d->registry);
        if (r < 0)
                return r;
        return metrics_gauge_set(
                info, (const char *const[]){ KUBE2IAM_VERSION, KUBE2IAM_BUILD_DATE, KUBE2IAM_COMMIT_HASH },
                1);
}

static int setup_loop(Daemon *d) {
        sigset_t mask;
        int r;

        r = sd_event_default(&d->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        /* sd-event watches exec credential plugins only with SIGCHLD blocked (kube-exec.h) */
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, continuing without: %m");
        return 0;
}

static void on_worth_a_snapshot(void *userdata) {
        Daemon *d = userdata;
        warm_start_changed(d->warm);
}

/* The node's own credentials sign STS calls; the cache fetches through them. */
static int setup_credentials(Daemon *d) {
        CredsSettings settings;
        int r;

        r = node_credentials_new(d->event, d->imds, &d->node);
        if (r < 0)
                return log_error_errno(
                        r, "Failed to read the node's credentials (environment, AWS profile): %m");
        r = sts_client_new(d->http, d->node, d->config.sts_endpoint, &d->sts);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the STS client: %m");
        r = sts_client_discover_region(d->sts, d->imds);
        if (r < 0)
                return log_error_errno(r, "Invalid region in AWS_REGION/AWS_DEFAULT_REGION: %m");
        /* a web identity is exchanged through the same STS endpoint */
        node_credentials_set_sts(d->node, d->sts);
        r = node_credentials_start(d->node);
        if (r < 0)
                return log_error_errno(r, "Failed to start fetching the node's credentials: %m");
        creds_settings_from_config(&d->config, &settings);
        r = creds_new_sts(&settings, d->sts, d->registry, &d->creds);
        if (r >= 0)
                r = creds_attach_event(d->creds, d->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the credential cache: %m");
        if (warm_start_snapshot(d->warm)) {
                /* not inside log_info(): its arguments are not evaluated below --log-level=info */
                size_t n = warm_start_restore_creds(d->warm, d->creds);
                log_info("Restored %zu credential set(s) still valid from the snapshot", n);
        }
        creds_set_on_change(d->creds, on_worth_a_snapshot, d);
        return 0;
}

/* The fd store's snapshot, taken before anything is restored from it. */
static int setup_warm_start(Daemon *d) {
        int r;

        r = warm_start_new(d->event, getenv("RUNTIME_DIRECTORY"), KUBE2IAM_VERSION " " KUBE2IAM_COMMIT_HASH,
                           TAKE_FD(d->snapshot_fd), &d->warm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up warm restarts: %m");
        log_info("%s", warm_start_status(d->warm));
        return 0;
}

/* The IMDSv2 key: the snapshot's (tokens minted before the restart stay valid), else the per-boot
 * file, else a new one. */
static int setup_tokens(Daemon *d) {
        const Snapshot *s = warm_start_snapshot(d->warm);

        if (s && s->token_key)
                return token_issuer_new_with_key(s->token_key, &d->tokens);
        return token_issuer_new(getenv("RUNTIME_DIRECTORY"), &d->tokens);
}

/* The store, the pass that plays its changes once per turn, and what answers pods. */

static int setup_pods(Daemon *d) {
        KubeClientOptions kube;
        int r;

        r = store_new(&d->store);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the pod store: %m");
        r = pod_roles_new(&(const PodRolesDeps){ .store = d->store,
                                                 .roles = d->roles,
                                                 .creds = d->creds,
                                                 .prefetch = d->config.prefetch,
                                                 .session_tags = {
                                                         .tags = d->config.session_tags,
                                                         .cluster_name = d->config.cluster_name,
                                                         .cluster_arn = d->config.cluster_arn,
                                                 },
                                                 .pod_session_names = d->config.pod_session_names,
                                                 .session_policies = d->config.session_policies,
                                                 .service_account_roles = d->config.service_account_roles,
                                                 .namespace_default_roles = d->config.namespace_default_roles },
                          &d->pod_roles);
        if (r < 0)
                return log_error_errno(r, "Failed to set up per-pod roles: %m");
        r = setup_turn(d);
        if (r < 0)
                return r;
        r = setup_tokens(d);
        if (r < 0)
                return log_error_errno(r, "Failed to set up IMDSv2 tokens: %m");
        r = proxy_new(d->http, d->config.metadata_host, d->config.metadata_port, &d->proxy);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metadata proxy: %m");
        r = proxy_set_metrics(d->proxy, d->registry);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the proxy's metrics: %m");
        cluster_view_init(&d->view, d->store, &d->config, NULL, d);
        d->view.progress = on_worth_a_snapshot; /* a bookmark: the next snapshot resumes from later */
        r = kube_client_new(d->event, d->http, cluster_view_kube_options(&d->view, &kube), &d->view.sink,
                            &d->kube);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Kubernetes client: %m");
        if (warm_start_snapshot(d->warm)) {
                size_t n = warm_start_restore_view(d->warm, d->store, d->kube);
                log_info(
                        "Restored %zu pod(s) from the snapshot, each served once the API server confirms it",
                        n);
        }
        warm_start_keep_view(d->warm, d->store, d->kube);

        r = imds_service_new(&(const ImdsServiceDeps){ .event = d->event,
                                                       .config = &d->config,
                                                       .store = d->store,
                                                       .pod_roles = d->pod_roles,
                                                       .kube = d->kube,
                                                       .roles = d->roles,
                                                       .creds = d->creds,
                                                       .tokens = d->tokens,
                                                       .proxy = d->proxy,
                                                       .imds = d->imds,
                                                       .metrics = d->registry },
                             &d->service);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metadata service: %m");
        return 0;
}

static void log_started(Daemon *d) {
        if (d->socket_activated)
                /* kube2iam's "Listening on port N" starts the line: people grep for it */
                log_fields(LOG_INFO, ((const LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_STARTED } }), 1,
                           "Listening on port %u (the socket from systemd); metadata service at %s:%u; node "
                           "credentials from %s",
                           d->listen_port, d->config.metadata_host, d->config.metadata_port,
                           node_credentials_source(d->node));
        else
                log_fields(LOG_INFO, ((const LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_STARTED } }), 1,
                           "Listening on port %u; metadata service at %s:%u; node credentials from %s",
                           d->config.app_port, d->config.metadata_host, d->config.metadata_port,
                           node_credentials_source(d->node));
}

static int run(Daemon *d) {
        _cleanup_close_ int app_fd = -EBADF, metrics_fd = -EBADF;
        _cleanup_free_ char *base = NULL, *def = NULL;
        int r;

        /* first, before anything opens an fd: passed sockets start at fd 3 */
        r = get_listeners(d, &app_fd, &metrics_fd);
        if (r < 0)
                return r;

        r = setup_loop(d);
        if (r < 0)
                return r;

        r = setup_metrics(d);
        if (r < 0)
                return log_error_errno(r, "Failed to set up metrics: %m");
        r = http_client_new(d->event, &d->http);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the HTTP client: %m");
        r = upstream_client_new(d->http, d->config.metadata_host, d->config.metadata_port, &d->imds);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metadata client: %m");

        /* roles first: auto-discovery may be needed before anything can be answered */
        r = discover_roles(d, &base, &def);
        if (r < 0)
                return r;
        r = roles_new(base ?: d->config.base_role_arn, def ?: d->config.default_role,
                      d->config.namespace_restrictions, d->config.namespace_restriction_format, &d->roles);
        if (r < 0)
                return log_error_errno(r, "Failed to set up role rules: %m");

        r = setup_warm_start(d);
        if (r < 0)
                return r;
        r = setup_credentials(d);
        if (r < 0)
                return r;

        r = setup_pods(d);
        if (r < 0)
                return r;
        warm_start_restored(d->warm, d->creds, d->tokens);

        r = health_new(d->event, d->imds, d->config.host_ip, &d->health);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the health check: %m");
        r = health_start(d->health);
        if (r < 0)
                return log_error_errno(r, "Failed to start the health check: %m");

        d->router = (RouterOptions){ .debug = d->config.debug,
                                     .metrics = d->config.metrics_port == d->config.app_port };
        d->request_log_ratelimit =
                (LogRatelimit){ .interval_usec = REQUEST_LOG_INTERVAL_USEC, .burst = REQUEST_LOG_BURST };

        r = http_server_new(d->event, TAKE_FD(app_fd), "app", on_request, d, &d->app);
        if (r < 0)
                return r;
        http_server_set_observer(d->app, on_answered, d);
        if (metrics_fd >= 0) {
                r = http_server_new(d->event, TAKE_FD(metrics_fd), "metrics", on_metrics_request, d,
                                    &d->metrics);
                if (r < 0)
                        return r;
        }

        if (getenv("RUNTIME_DIRECTORY")) {
                /* an operator's tool: without it pods are still served, so a failure only warns */
                r = explain_socket_new(d->event, getenv("RUNTIME_DIRECTORY"), on_explain, d, &d->explain);
                if (r < 0)
                        log_warning_errno(
                                r,
                                "Failed to set up the explain socket, `kube2iam explain` will not work: %m");
        }

        d->view.kube = d->kube;
        d->view.changed = on_kube_state;
        {
                _cleanup_(kubeconfig_freep) KubeConfig *kc = NULL;
                KubeconfigSource source;

                config_kubeconfig_source(&d->config, &source);
                d->has_kubeconfig = kubeconfig_from_source(&source, &kc, NULL) != -ENOENT;
        }
        r = kube_client_start(d->kube);
        if (r < 0)
                return log_error_errno(r, "Failed to start the Kubernetes client: %m");
        r = sd_event_add_time_relative(d->event, &d->routes_timer, CLOCK_MONOTONIC,
                                       POD_ROUTES_CHECK_INTERVAL, USEC_PER_SEC, on_routes_timer, d);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the pod route check: %m");

        log_started(d);

        /* docs/design.md, boot order: with a kubeconfig, wait (bounded) for the first pod list so the
         * pods kubelet restarts are answered from memory; without one, never wait for it */
        if (!d->has_kubeconfig || kube_client_pods_synced(d->kube) || d->config.ready_sync_timeout == 0)
                notify_ready(d, d->has_kubeconfig ? "serving" : "serving; waiting for a kubeconfig");
        else {
                r = sd_event_add_time_relative(d->event, &d->ready_timer, CLOCK_MONOTONIC,
                                               d->config.ready_sync_timeout, 1, on_ready_timeout, d);
                if (r < 0)
                        notify_ready(d, "serving");
                update_status(d);
        }

        r = sd_event_loop(d->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

/* The pause restart-backoff.h asks for, before serving or before exiting 2: systemd keeps the
 * socket, pods' connections wait in its backlog, and the watchdog hears from us meanwhile. */
static void restart_backoff_wait(RestartKind kind) {
        char buf[DURATION_MAX];
        usec_t delay, until;

        if (restart_backoff_begin(getenv("RUNTIME_DIRECTORY"), kind, now_clock(CLOCK_BOOTTIME), &delay) <
                    0 ||
            delay == 0)
                return;
        format_duration(delay, buf, sizeof buf);
        if (kind == RESTART_CONFIG_ERROR)
                log_warning("Configuration error again within a minute: exiting in %s (backoff), so that "
                            "pods' connections do not restart kube2iam in a tight loop",
                            buf);
        else
                log_warning("The previous instance failed within a minute of starting: waiting %s before "
                            "serving (restart backoff); pods' connections wait in the socket",
                            buf);
        (void) sd_notifyf(false, "STATUS=%s: waiting %s (restart backoff)",
                          kind == RESTART_CONFIG_ERROR ? "Configuration error, see the journal"
                                                       : "Restarting after a failure",
                          buf);
        until = usec_add(now_monotonic(), delay);
        for (usec_t n = now_monotonic(); n < until; n = now_monotonic()) {
                usec_t step = MIN(until - n, USEC_PER_SEC);
                struct timespec ts = { .tv_sec = (time_t) (step / USEC_PER_SEC),
                                       .tv_nsec = (long) (step % USEC_PER_SEC) * 1000 };
                (void) nanosleep(&ts, NULL);
                (void) sd_notify(false, "WATCHDOG=1");
        }
}

/* `kube2iam doctor [--skip-cluster] [flags]`: the node's checks with the daemon's flags (from
 * $KUBE2IAM_ARGS and the command line). Exit status 0: every check passed; 1: one failed; 2: usage. */
static int doctor_main(int argc, char *argv[]) {
        _cleanup_free_ char **args = NULL;
        DoctorOptions o = { .runtime_dir = getenv("RUNTIME_DIRECTORY") ?: EXPLAIN_DEFAULT_DIR };
        Config c = {};
        int n = 0, r;
        bool ok;

        args = calloc((size_t) argc + 1, sizeof(char *));
        if (!args || config_init(&c) < 0)
                return EXIT_FAILURE;
        args[n++] = argv[0];
        for (int i = 2; i < argc; i++)
                if (streq(argv[i], "--skip-cluster"))
                        o.skip_cluster = true;
                else
                        args[n++] = argv[i];
        r = config_parse(&c, CONFIG_PROGRAM_DAEMON, n, args);
        if (r < 0 || c.show_help || c.show_version) {
                if (r >= 0)
                        fprintf(stderr, "Usage: kube2iam doctor [--skip-cluster] [kube2iam flags]\n");
                config_done(&c);
                return CONFIG_EXIT_USAGE;
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                config_done(&c);
                return EXIT_FAILURE;
        }
        o.config = &c;
        ok = doctor_run(&o, stdout);
        curl_global_cleanup();
        config_done(&c);
        return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* `kube2iam explain [--json] POD|NAMESPACE/POD|IP`: asks the running daemon. Exit status 0: the
 * pod would get credentials now; 1: it would not (or is unknown); 2: usage; 3: no answer. */
static int explain_main(int argc, char *argv[]) {
        _cleanup_free_ char *answer = NULL;
        _cleanup_strbuf_ StrBuf text = {};
        const char *query = NULL, *dir = getenv("RUNTIME_DIRECTORY") ?: EXPLAIN_DEFAULT_DIR;
        bool json = false;
        int r;

        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--json"))
                        json = true;
                else if (!query && argv[i][0] != '-')
                        query = argv[i];
                else {
                        fprintf(stderr, "Usage: kube2iam explain [--json] POD|NAMESPACE/POD|IP\n");
                        return CONFIG_EXIT_USAGE;
                }
        if (!query) {
                fprintf(stderr, "Usage: kube2iam explain [--json] POD|NAMESPACE/POD|IP\n");
                return CONFIG_EXIT_USAGE;
        }
        r = explain_socket_ask(dir, query, &answer);
        if (r == -EINVAL) {
                fprintf(stderr,
                        "kube2iam explain: the query must be POD, NAMESPACE/POD or an address (at most %u "
                        "bytes)\n",
                        EXPLAIN_MAX_QUERY);
                return CONFIG_EXIT_USAGE;
        }
        if (r < 0) {
                fprintf(stderr,
                        "kube2iam explain: cannot ask the daemon at %s/%s: %s (is kube2iam running, and are "
                        "you root?)\n",
                        dir, EXPLAIN_SOCKET_NAME, strerror(-r));
                return EXPLAIN_EXIT_NO_ANSWER;
        }
        r = explain_render_text(answer, &text);
        if (r < 0) {
                fprintf(stderr, "kube2iam explain: the daemon answered: %s\n", answer);
                return EXPLAIN_EXIT_NO_ANSWER;
        }
        if (json)
                printf("%s\n", answer);
        else if (strbuf_error(&text) < 0)
                return EXPLAIN_EXIT_NO_ANSWER;
        else
                fputs(strbuf_str(&text), stdout);
        return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char *argv[]) {
        Daemon d = { .snapshot_fd = -EBADF };
        int r;

        if (argc >= 2 && streq(argv[1], "explain"))
                return explain_main(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "doctor"))
                return doctor_main(argc, argv);

        r = config_init(&d.config);
        if (r < 0) {
                fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
                return EXIT_FAILURE;
        }
        r = config_parse(&d.config, CONFIG_PROGRAM_DAEMON, argc, argv);
        if (r < 0) {
                config_done(&d.config);
                if (r != -ENOMEM)
                        restart_backoff_wait(RESTART_CONFIG_ERROR);
                return CONFIG_EXIT_USAGE;
        }
        if (d.config.show_help) {
                config_help(CONFIG_PROGRAM_DAEMON, stdout);
                config_done(&d.config);
                return EXIT_SUCCESS;
        }
        if (d.config.show_version) {
                /* kube2iam's exact line */
                printf("Version: %s - Commit: %s - Date: %s\n", KUBE2IAM_VERSION, KUBE2IAM_COMMIT_HASH,
                       KUBE2IAM_BUILD_DATE);
                config_done(&d.config);
                return EXIT_SUCCESS;
        }

        log_set_max_level(d.config.log_level);
        log_set_format(d.config.log_json ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("Failed to initialise libcurl");
                config_done(&d.config);
                return EXIT_FAILURE;
        }

        /* kube2iam's --iptables: the redirect before serving, fatal when it fails. It writes
         * nftables (the same code as kube2iam-nft install); the units use the helper instead. */
        if (d.config.iptables && sd_listen_fds(false) > 0)
                /* the packaged units: kube2iam-nft install ran as ExecStartPre, with the privileges this
                 * sandboxed process lacks; installing again could only fail (and restart forever) */
                log_notice(
                        "--iptables: the redirect is installed by kube2iam-nft (the unit's ExecStartPre) "
                        "when systemd passes the socket; not installing it again. The flag can be removed.");
        else if (d.config.iptables) {
                RedirectOptions o;
                config_redirect_options(&d.config, &o);
                r = redirect_install(&o);
                if (r < 0) {
                        config_done(&d.config);
                        curl_global_cleanup();
                        return (int) redirect_exit_status(r);
                }
        }

        restart_backoff_wait(RESTART_SERVE);
        r = run(&d);
        daemon_done(&d);
        curl_global_cleanup();
        if (r >= 0)
                (void) restart_backoff_clean_exit(getenv("RUNTIME_DIRECTORY"));
        if (r < 0)
                return d.config_error ? CONFIG_EXIT_USAGE : EXIT_FAILURE;
        return EXIT_SUCCESS;
}
