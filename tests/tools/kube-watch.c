/* SPDX-License-Identifier: BSD-3-Clause */
/* kube-watch: the daemon's Kubernetes side alone, for integration tests and benchmarks. Runs
 * KubeClient + Store on an sd-event loop with the daemon's flags (config_parse) and prints one
 * JSON object per line on stdout: store changes, status changes, and answers to commands read
 * from stdin:
 *   lookup IP     -> {"lookup":IP,"status":"found"|"not_found"|"ambiguous","pod":..,"role":..,"error":..}
 *   resolve IP    -> {"resolve":IP,"error":0|-errno,"pod":..,"role":..}   (live API, --resolve-duplicate-cache-ips)
 *   dump          -> {"debug_store":<kube2iam /debug/store JSON>}  (also on SIGUSR1)
 *   stats         -> {"stats":{"events_applied":N,"pods":N,"namespaces":N,"rss_kb":N,"pods_changed":N,
 *                     "first_change_usec":T,"last_change_usec":T}}   (CLOCK_MONOTONIC)
 * KUBE_WATCH_IDLE_SEC overrides the watch idle limit; KUBE_WATCH_QUIET=1 leaves out pod events;
 * KUBE_WATCH_RESOLVE_ON_ADD=1 starts a live lookup for every pod added, from the pass that plays
 * the store's changes once per loop turn (as the credential prefetch starts STS calls from it),
 * printed like "resolve". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cluster-view.h"
#include "config.h"
#include "http/http-client.h"
#include "kube/kube-client.h"
#include "log.h"
#include "store.h"
#include "string-util.h"

typedef struct Tool {
        sd_event *event;
        Store *store;
        KubeClient *client;
        ClusterView view;
        bool quiet;
        bool resolve_on_add;
        sd_event_source *turn;        /* plays the store's changes, as the daemon's once-per-turn pass */
        unsigned long long n_changed; /* pod changes seen by the observer (benchmark) */
        usec_t first_change, last_change;
        StrBuf line;
} Tool;

static void emit(cJSON *o) {
        char *s = cJSON_PrintUnformatted(o);
        if (s) {
                fputs(s, stdout);
                fputc('\n', stdout);
                fflush(stdout);
                free(s);
        }
        cJSON_Delete(o);
}

static void add_pod(cJSON *o, const StorePod *p) {
        cJSON *ips = cJSON_AddArrayToObject(o, "ips");
        cJSON_AddStringToObject(o, "uid", p->uid);
        cJSON_AddStringToObject(o, "namespace", p->namespace);
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddStringToObject(o, "phase", p->phase);
        if (p->role)
                cJSON_AddStringToObject(o, "role", p->role);
        else
                cJSON_AddNullToObject(o, "role");
        cJSON_AddBoolToObject(o, "terminating", p->terminating);
        for (char **ip = p->ips; ip && *ip; ip++)
                cJSON_AddItemToArray(ips, cJSON_CreateString(*ip));
}

static void on_resolved(KubeClient *k, int error, const StorePod *pod, void *userdata);

static void on_pod(Store *s, StorePodEvent ev, const StorePod *p, void *userdata) {
        static const char *const names[] = { "added", "changed", "removed" };
        Tool *t = userdata;
        cJSON *o;

        if (ev == STORE_POD_CHANGED) {
                t->last_change = now_monotonic();
                if (t->n_changed++ == 0)
                        t->first_change = t->last_change;
        }
        if (t->quiet)
                return;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", names[ev]);
        add_pod(o, p);
        emit(o);
        if (t->resolve_on_add && ev == STORE_POD_ADDED && p->ips) {
                char *ip = strdup(p->ips[0]);
                int r = ip ? kube_client_resolve_ip(t->client, ip, on_resolved, ip) : -ENOMEM;
                if (r < 0)
                        on_resolved(t->client, r, NULL, ip);
        }
}

static void on_ip(Store *s, const char *ip, void *userdata) {
        Tool *t = userdata;
        cJSON *o;

        if (t->quiet)
                return;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "ip");
        if (ip)
                cJSON_AddStringToObject(o, "ip", ip);
        else
                cJSON_AddNullToObject(o, "ip"); /* every IP */
        emit(o);
}

static int on_turn(sd_event_source *s, void *userdata) {
        Tool *t = userdata;
        const StoreChangeHandler h = { .pod = on_pod, .ip = on_ip, .userdata = t };

        store_dispatch_changes(t->store, &h);
        return 0;
}

static void on_store_changed(Store *s, void *userdata) {
        Tool *t = userdata;
        (void) sd_event_source_set_enabled(t->turn, SD_EVENT_ONESHOT);
}

static void on_state(ClusterView *v, void *userdata) {
        Tool *t = userdata;
        KubeClient *k = v->kube;
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "event", "status");
        cJSON_AddStringToObject(o, "status", cluster_view_status(v));
        cJSON_AddBoolToObject(o, "pods_synced", kube_client_pods_synced(k));
        cJSON_AddBoolToObject(o, "namespaces_synced", kube_client_namespaces_state(k) == KUBE_SYNC_SYNCED);
        cJSON_AddBoolToObject(o, "namespaces_forbidden",
                              kube_client_namespaces_state(k) == KUBE_SYNC_FORBIDDEN);
        cJSON_AddNumberToObject(o, "pods", (double) store_n_pods(t->store));
        cJSON_AddNumberToObject(o, "namespaces", (double) store_n_namespaces(t->store));
        emit(o);
}

static void dump(Tool *t) {
        _cleanup_free_ char *j = NULL;
        if (store_debug_json(t->store, &j) < 0)
                return;
        printf("{\"debug_store\":%s}\n", j);
        fflush(stdout);
}

static long rss_kb(void) {
        char buf[4096];
        FILE *f = fopen("/proc/self/status", "re");
        long v = -1;

        if (!f)
                return -1;
        while (fgets(buf, sizeof buf, f))
                if (sscanf(buf, "VmRSS: %ld kB", &v) == 1)
                        break;
        fclose(f);
        return v;
}

static void on_resolved(KubeClient *k, int error, const StorePod *pod, void *userdata) {
        char *ip = userdata;
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "resolve", ip);
        cJSON_AddNumberToObject(o, "error", error);
        if (pod)
                add_pod(o, pod);
        emit(o);
        free(ip);
}

static void command(Tool *t, const char *line) {
        const char *arg;
        cJSON *o;

        if ((arg = startswith(line, "lookup "))) {
                StoreLookup l;
                static const char *const st[] = { "found", "not_found", "ambiguous" };
                if (store_lookup_ip(t->store, arg, &l) < 0)
                        return;
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "lookup", arg);
                cJSON_AddStringToObject(o, "status", st[l.status]);
                if (l.pod) {
                        cJSON_AddStringToObject(o, "pod", l.pod->name);
                        if (l.pod->role)
                                cJSON_AddStringToObject(o, "role", l.pod->role);
                }
                if (l.error)
                        cJSON_AddStringToObject(o, "error", l.error);
                store_lookup_done(&l);
                emit(o);
        } else if ((arg = startswith(line, "resolve "))) {
                char *ip = strdup(arg);
                int r = ip ? kube_client_resolve_ip(t->client, ip, on_resolved, ip) : -ENOMEM;
                if (r < 0) {
                        on_resolved(t->client, r, NULL, ip);
                }
        } else if (streq(line, "dump"))
                dump(t);
        else if (streq(line, "stats")) {
                o = cJSON_CreateObject();
                cJSON *s = cJSON_AddObjectToObject(o, "stats");
                cJSON_AddNumberToObject(s, "events_applied", (double) kube_client_events_applied(t->client));
                cJSON_AddNumberToObject(s, "pods", (double) store_n_pods(t->store));
                cJSON_AddNumberToObject(s, "namespaces", (double) store_n_namespaces(t->store));
                cJSON_AddNumberToObject(s, "rss_kb", (double) rss_kb());
                cJSON_AddNumberToObject(s, "pods_changed", (double) t->n_changed);
                cJSON_AddNumberToObject(s, "first_change_usec", (double) t->first_change);
                cJSON_AddNumberToObject(s, "last_change_usec", (double) t->last_change);
                emit(o);
        }
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Tool *t = userdata;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);

        if (n <= 0) {
                if (n == 0 || errno != EAGAIN)
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
                if (buf[i] != '\n') {
                        strbuf_append_char(&t->line, buf[i]);
                        continue;
                }
                command(t, strbuf_str(&t->line));
                strbuf_reset(&t->line);
        }
        return 0;
}

static int on_usr1(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        dump(userdata);
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_(http_client_freep) HttpClient *http = NULL;
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        sd_event *event = NULL;
        Config c;
        Tool t = {};
        KubeClientOptions opts;
        sigset_t ss;
        const char *idle = getenv("KUBE_WATCH_IDLE_SEC");
        int r;

        if (config_init(&c) < 0)
                return 1;
        r = config_parse(&c, CONFIG_PROGRAM_DAEMON, argc, argv);
        if (r < 0)
                return CONFIG_EXIT_USAGE;
        log_set_target(LOG_TARGET_STDERR);
        log_set_max_level(c.log_level);

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGUSR1);
        sigaddset(&ss, SIGCHLD); /* exec plugins (kube-exec.h) */
        sigprocmask(SIG_BLOCK, &ss, NULL);

        if (sd_event_default(&event) < 0 || http_client_new(event, &http) < 0 || store_new(&store) < 0)
                return 1;
        cluster_view_init(&t.view, store, &c, on_state, &t);
        if (kube_client_new(event, http, cluster_view_kube_options(&t.view, &opts), &t.view.sink, &client) <
            0)
                return 1;
        t.view.kube = client;
        t.event = event;
        t.store = store;
        t.client = client;
        t.quiet = getenv("KUBE_WATCH_QUIET") != NULL;
        t.resolve_on_add = getenv("KUBE_WATCH_RESOLVE_ON_ADD") != NULL;
        if (idle)
                kube_client_set_idle_timeout(client, (usec_t) atoi(idle) * USEC_PER_SEC);
        if (sd_event_add_defer(event, &t.turn, on_turn, &t) < 0 ||
            sd_event_source_set_enabled(t.turn, SD_EVENT_OFF) < 0)
                return 1;
        store_set_change_hook(store, on_store_changed, &t);
        (void) sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGUSR1, on_usr1, &t);
        (void) sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &t);

        r = kube_client_start(client);
        if (r < 0)
                return 1;
        r = sd_event_loop(event);
        client = kube_client_free(client);
        t.turn = sd_event_source_disable_unref(t.turn);
        cluster_view_done(&t.view);
        http = http_client_free(http);
        strbuf_done(&t.line);
        sd_event_unref(event);
        config_done(&c);
        return r < 0 ? 1 : 0;
}
