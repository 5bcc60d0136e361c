/* SPDX-License-Identifier: BSD-3-Clause */
/* main: config → log → event loop → subsystems → serve → drain on SIGTERM.
 * The only file that knows every module; each request is routed here to its module. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "health.h"
#include "http-client.h"
#include "log.h"
#include "proxy.h"
#include "redirect.h"
#include "router.h"
#include "server.h"
#include "string-util.h"

/* How long SIGTERM waits for requests in progress before answering the rest 503 and exiting.
 * Must stay well below systemd's TimeoutStopSec (90 s by default). */
#define DRAIN_TIMEOUT (10 * USEC_PER_SEC)
#define DRAIN_POLL_INTERVAL (20 * USEC_PER_MSEC)
#define LISTEN_BACKLOG 4096

typedef struct Daemon {
        Config config;
        sd_event *event;
        HttpClient *http;
        HttpServer *app;
        HttpServer *metrics;
        ImdsProxy *proxy;
        Health *health;
        RouterOptions router;
        bool stopping;
        bool socket_activated;
        usec_t drain_deadline;
        sd_event_source *drain_timer;
        LogRatelimit request_log_ratelimit;
} Daemon;

static void daemon_done(Daemon *d) {
        d->drain_timer = sd_event_source_disable_unref(d->drain_timer);
        d->app = http_server_free(d->app);
        d->metrics = http_server_free(d->metrics);
        d->proxy = imds_proxy_free(d->proxy);
        d->health = health_free(d->health);
        d->http = http_client_free(d->http);
        d->event = sd_event_unref(d->event);
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

        health_render(d->health, &b);
        if (strbuf_error(&b) < 0)
                return respond_text(req, 500, NULL, "out of memory");
        (void) http_request_respond(req, 200, h, 1, b.s, b.len);
}

static void on_request(HttpRequest *req, void *userdata) {
        Daemon *d = userdata;
        RouteMatch m = {};
        int r;

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
        case ROUTE_ROLE_LIST:
        case ROUTE_ROLE_CREDENTIALS:
                /* pods get roles once the credential service lands (issue 5): until then no
                 * credentials at all, never the node's */
                respond_text(req, 404, "EC2ws", "credentials are not served yet");
                break;
        case ROUTE_DEBUG_STORE:
        case ROUTE_METRICS:
        case ROUTE_PROXY:
        default:
                imds_proxy_forward(d->proxy, req, m.path, NULL, 0, NULL);
                break;
        }
        route_match_done(&m);
}

static void on_answered(const HttpRequest *req, unsigned status, usec_t duration, void *userdata) {
        Daemon *d = userdata;
        char ms[32], st[8];

        /* kube2iam logs every request but /healthz at info; ours are debug, and rate-limited */
        if (log_get_max_level() < LOG_DEBUG || streq(http_request_path(req), "/healthz"))
                return;
        if (!log_ratelimit_test(&d->request_log_ratelimit))
                return;
        snprintf(ms, sizeof ms, "%f", (double) duration / USEC_PER_MSEC);
        snprintf(st, sizeof st, "%u", status);
        log_fields(LOG_DEBUG,
                   ((const LogField[]){ { "REQ_METHOD", http_request_method(req) },
                                        { "REQ_PATH", http_request_path(req) },
                                        { "REQ_REMOTE", http_request_peer(req) },
                                        { "RES_DURATION", ms },
                                        { "RES_STATUS", st } }),
                   5, "%s %s (%u) took %s ms", http_request_method(req), http_request_path(req), status, ms);
}

static int make_listener(const char *address, uint16_t port, int *ret) {
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
        if (bind(fd, &sa.sa, len) < 0)
                return -errno;
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
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

        if (app < 0) {
                r = make_listener(d->config.listen_address, d->config.app_port, &app);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on %s port %u: %m",
                                               d->config.listen_address ?: "all addresses",
                                               d->config.app_port);
        }
        if (metrics < 0 && d->config.metrics_port != d->config.app_port) {
                r = make_listener(d->config.listen_address, d->config.metrics_port, &metrics);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on %s port %u: %m",
                                               d->config.listen_address ?: "all addresses",
                                               d->config.metrics_port);
        }
        *ret_app = TAKE_FD(app);
        *ret_metrics = TAKE_FD(metrics);
        return 0;
}

static unsigned pending_requests(Daemon *d) {
        return http_server_pending(d->app) + http_server_pending(d->metrics);
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
        log_fields(LOG_INFO, ((const LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_STOPPING } }), 1,
                   "Received %s, draining %u request(s) in progress", strsignal((int) si->ssi_signo),
                   pending_requests(d));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Draining requests in progress");
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

static int run(Daemon *d) {
        _cleanup_close_ int app_fd = -EBADF, metrics_fd = -EBADF;
        char status[256];
        sigset_t mask;
        int r;

        /* first, before anything opens an fd: passed sockets start at fd 3 */
        r = get_listeners(d, &app_fd, &metrics_fd);
        if (r < 0)
                return r;

        r = sd_event_default(&d->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
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

        r = http_client_new(d->event, &d->http);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the HTTP client: %m");

        r = imds_proxy_new(d->http, d->config.metadata_host, d->config.metadata_port, &d->proxy);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metadata proxy: %m");
        r = health_new(d->http, d->config.metadata_host, d->config.metadata_port, d->config.host_ip,
                       &d->health);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the health check: %m");
        r = health_start(d->health);
        if (r < 0)
                return log_error_errno(r, "Failed to start the health check: %m");

        d->router = (RouterOptions){ .debug = false, .metrics = false };
        d->request_log_ratelimit = (LogRatelimit){ .interval_usec = USEC_PER_SEC, .burst = 100 };

        r = http_server_new(d->event, TAKE_FD(app_fd), "app", on_request, d, &d->app);
        if (r < 0)
                return r;
        http_server_set_observer(d->app, on_answered, d);
        if (metrics_fd >= 0) {
                r = http_server_new(d->event, TAKE_FD(metrics_fd), "metrics", on_request, d, &d->metrics);
                if (r < 0)
                        return r;
        }

        if (d->socket_activated)
                snprintf(status, sizeof status,
                         "Serving on the socket from systemd; metadata service at %s:%u",
                         d->config.metadata_host, d->config.metadata_port);
        else
                snprintf(status, sizeof status, "Serving on port %u; metadata service at %s:%u",
                         d->config.app_port, d->config.metadata_host, d->config.metadata_port);
        log_fields(LOG_INFO, ((const LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_STARTED } }), 1, "%s",
                   status);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", status);

        r = sd_event_loop(d->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        Daemon d = {};
        int r;

        r = config_init(&d.config);
        if (r < 0) {
                fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
                return EXIT_FAILURE;
        }
        r = config_parse(&d.config, CONFIG_PROGRAM_DAEMON, argc, argv);
        if (r < 0) {
                config_done(&d.config);
                return CONFIG_EXIT_USAGE;
        }
        if (d.config.show_help) {
                config_help(CONFIG_PROGRAM_DAEMON, stdout);
                config_done(&d.config);
                return EXIT_SUCCESS;
        }
        if (d.config.show_version) {
                printf("Version: %s\n", KUBE2IAM_VERSION);
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
        if (d.config.iptables) {
                r = redirect_install(&d.config);
                if (r < 0) {
                        config_done(&d.config);
                        curl_global_cleanup();
                        return (int) redirect_exit_status(r);
                }
        }

        r = run(&d);
        daemon_done(&d);
        curl_global_cleanup();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
