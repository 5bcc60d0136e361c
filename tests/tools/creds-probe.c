/* SPDX-License-Identifier: BSD-3-Clause */
/* creds-probe: test tool. Runs the real loop with HttpClient, StsClient, the node's credentials and
 * the credential cache against fake STS / fake IMDS, driven by commands on stdin, one a line:
 *   get ROLE N [EXTERNAL_ID|-] [CALLER_IP]   N concurrent requests; prints one summary line once
 *                                            all are answered
 *   prefetch ROLE | inuse ROLE 0|1 | sleep MS | size | metrics | quit
 * Summary: "get ok=N err=N keys=N min_left=SECONDS codes=CODE,..." (keys: distinct access key ids;
 * no key, secret or token is ever printed: the integration tests grep for them).
 * Options: --sts-endpoint URL --region R --metadata HOST:PORT --session-ttl-sec N --error-ttl-ms N
 *          --sts-rate R --sts-burst N --sts-timeout-ms N --deadline-ms N --verbose */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "aws/endpoints.h"
#include "aws/upstream-client.h"
#include "aws/node-credentials.h"
#include "aws/sts-client.h"
#include "config.h"
#include "creds.h"
#include "http/http-client.h"
#include "log.h"
#include "metrics.h"

/* One command line; role ARNs are at most 2048 bytes. */
#define PROBE_LINE_MAX 8192
/* Requests one "get" may issue at once. */
#define PROBE_MAX_REQUESTS 10000
/* How long the tool waits for anything before it reports a hang. */
#define PROBE_WAIT_MAX_USEC (60 * USEC_PER_SEC)

typedef struct Probe {
        sd_event *event;
        unsigned pending;
        unsigned ok, err;
        usec_t min_left;
        char **keys;
        char **codes;
} Probe;

static void record(Probe *p, Credentials *creds, const StsError *error) {
        if (creds) {
                usec_t left = credentials_remaining(creds, now_realtime());
                p->ok++;
                p->min_left = MIN(p->min_left, left);
                if (!strv_contains(p->keys, creds->access_key_id))
                        (void) strv_extend(&p->keys, creds->access_key_id);
        } else {
                p->err++;
                if (!strv_contains(p->codes, error->code))
                        (void) strv_extend(&p->codes, error->code);
        }
}

static void on_done(Credentials *creds, const StsError *error, void *userdata) {
        Probe *p = userdata;
        record(p, creds, error);
        p->pending--;
}

static int run_until(Probe *p, bool (*cond)(Probe *p), usec_t max) {
        usec_t end = usec_add(now_monotonic(), max);

        while (!cond(p)) {
                usec_t now = now_monotonic();
                int r;
                if (now >= end)
                        return -ETIMEDOUT;
                r = sd_event_run(p->event, MIN(end - now, 100 * USEC_PER_MSEC));
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool no_pending(Probe *p) {
        return p->pending == 0;
}

static bool never(Probe *p) {
        return false;
}

static StsClient *probe_sts;
static bool region_known(Probe *p) {
        return sts_client_get_region(probe_sts) != NULL;
}

static NodeCredentials *probe_node;
static bool node_ready(Probe *p) {
        return node_credentials_get(probe_node) != NULL;
}

static void print_summary(Probe *p) {
        printf("get ok=%u err=%u keys=%zu min_left=%llu codes=", p->ok, p->err, strv_length(p->keys),
               p->min_left == USEC_INFINITY ? 0ULL : (unsigned long long) (p->min_left / USEC_PER_SEC));
        for (size_t i = 0; p->codes && p->codes[i]; i++)
                printf("%s%s", i > 0 ? "," : "", p->codes[i]);
        printf("\n");
        fflush(stdout);
}

int main(int argc, char *argv[]) {
        enum {
                OPT_ENDPOINT = 256,
                OPT_REGION,
                OPT_METADATA,
                OPT_TTL,
                OPT_ERROR_TTL,
                OPT_RATE,
                OPT_BURST,
                OPT_TIMEOUT,
                OPT_DEADLINE,
                OPT_VERBOSE
        };
        static const struct option options[] = { { "sts-endpoint", required_argument, NULL, OPT_ENDPOINT },
                                                 { "region", required_argument, NULL, OPT_REGION },
                                                 { "metadata", required_argument, NULL, OPT_METADATA },
                                                 { "session-ttl-sec", required_argument, NULL, OPT_TTL },
                                                 { "error-ttl-ms", required_argument, NULL, OPT_ERROR_TTL },
                                                 { "sts-rate", required_argument, NULL, OPT_RATE },
                                                 { "sts-burst", required_argument, NULL, OPT_BURST },
                                                 { "sts-timeout-ms", required_argument, NULL, OPT_TIMEOUT },
                                                 { "deadline-ms", required_argument, NULL, OPT_DEADLINE },
                                                 { "verbose", no_argument, NULL, OPT_VERBOSE },
                                                 {} };
        _cleanup_free_ char *endpoint = NULL, *region = NULL, *md_host = NULL, *line = NULL;
        uint16_t md_port = 80;
        CredsSettings settings = { .session_ttl = 30 * USEC_PER_MINUTE, .sts_rate = 5, .sts_burst = 10 };
        usec_t sts_timeout = STS_CLIENT_TIMEOUT_USEC, deadline = 2 * USEC_PER_SEC;
        Probe p = { .min_left = USEC_INFINITY };
        HttpClient *http = NULL;
        UpstreamClient *imds = NULL;
        StsClient *sts = NULL;
        Metrics *metrics = NULL;
        Creds *creds = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case OPT_ENDPOINT:
                        endpoint = strdup(optarg);
                        break;
                case OPT_REGION:
                        region = strdup(optarg);
                        break;
                case OPT_METADATA:
                        if (config_parse_host_port(optarg, 80, &md_host, &md_port) < 0)
                                return 2;
                        break;
                case OPT_TTL:
                        settings.session_ttl = strtoull(optarg, NULL, 10) * USEC_PER_SEC;
                        break;
                case OPT_ERROR_TTL:
                        settings.error_ttl = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case OPT_RATE:
                        settings.sts_rate = strtod(optarg, NULL);
                        break;
                case OPT_BURST:
                        settings.sts_burst = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case OPT_TIMEOUT:
                        sts_timeout = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case OPT_DEADLINE:
                        deadline = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case OPT_VERBOSE:
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return 2;
                }

        r = sd_event_default(&p.event);
        if (r >= 0)
                r = http_client_new(p.event, &http);
        if (r >= 0 && md_host)
                r = upstream_client_new(http, md_host, md_port, &imds);
        if (r >= 0)
                r = node_credentials_new(p.event, imds, &probe_node);
        if (r >= 0)
                r = sts_client_new(http, probe_node, endpoint, &sts);
        probe_sts = sts;
        if (r >= 0)
                r = metrics_new(&metrics);
        if (r >= 0)
                r = creds_new_sts(&settings, sts, metrics, &creds);
        if (r >= 0)
                r = creds_attach_event(creds, p.event);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }
        sts_client_set_timeout(sts, sts_timeout);

        if (region)
                r = sts_client_set_region(sts, region);
        else {
                r = sts_client_discover_region(sts, imds);
                if (r > 0)
                        r = run_until(&p, region_known, PROBE_WAIT_MAX_USEC);
        }
        if (r < 0) {
                log_error_errno(r, "No region: %m");
                return 1;
        }
        r = node_credentials_start(probe_node);
        if (r < 0 || run_until(&p, node_ready, PROBE_WAIT_MAX_USEC) < 0) {
                log_error("No node credentials (source %s)", node_credentials_source(probe_node));
                return 1;
        }
        printf("ready node=%s region=%s\n", node_credentials_source(probe_node),
               strna(sts_client_get_region(sts)));
        fflush(stdout);

        line = malloc(PROBE_LINE_MAX);
        if (!line)
                return 1;
        while (fgets(line, PROBE_LINE_MAX, stdin)) {
                _cleanup_strv_free_ char **w = NULL;

                if (strv_split(line, " \t\r\n", &w) < 0 || !w || !w[0])
                        continue;
                if (streq(w[0], "quit"))
                        break;
                if (streq(w[0], "get") && w[1] && w[2]) {
                        unsigned n = (unsigned) strtoul(w[2], NULL, 10);
                        const char *ext = w[3] && !streq(w[3], "-") ? w[3] : NULL;
                        const char *ip = w[3] && w[4] ? w[4] : "10.0.0.1";

                        p = (Probe){ .event = p.event, .min_left = USEC_INFINITY };
                        for (unsigned i = 0; i < MIN(n, (unsigned) PROBE_MAX_REQUESTS); i++) {
                                Credentials *cr = NULL;
                                StsError *err = NULL;
                                CredsRequest req = { .role_arn = w[1],
                                                     .external_id = ext,
                                                     .caller_ip = ip,
                                                     .deadline = now_realtime() + deadline,
                                                     .done = on_done,
                                                     .userdata = &p };

                                r = creds_get(creds, &req, &cr, &err, NULL);
                                if (r == CREDS_WAIT)
                                        p.pending++;
                                else {
                                        record(&p, cr, err);
                                        credentials_unref(cr);
                                        sts_error_free(err);
                                }
                        }
                        if (run_until(&p, no_pending, PROBE_WAIT_MAX_USEC) < 0)
                                printf("get hang pending=%u\n", p.pending);
                        else
                                print_summary(&p);
                        p.keys = strv_free(p.keys);
                        p.codes = strv_free(p.codes);
                } else if (streq(w[0], "prefetch") && w[1]) {
                        printf("prefetch %d\n",
                               creds_prefetch(creds, &(CredsKey){ .role_arn = w[1], .external_id = NULL },
                                              "10.0.0.1"));
                } else if (streq(w[0], "inuse") && w[1] && w[2]) {
                        printf("inuse %d\n",
                               creds_set_in_use(creds, &(CredsKey){ .role_arn = w[1], .external_id = NULL },
                                                streq(w[2], "1")));
                } else if (streq(w[0], "sleep") && w[1]) {
                        (void) run_until(&p, never, strtoull(w[1], NULL, 10) * USEC_PER_MSEC);
                        printf("slept\n");
                } else if (streq(w[0], "size")) {
                        printf("size %zu\n", creds_size(creds));
                } else if (streq(w[0], "metrics")) {
                        _cleanup_strbuf_ StrBuf b = {};
                        (void) metrics_render(metrics, &b);
                        printf("%s# end\n", strbuf_str(&b));
                } else
                        printf("unknown command\n");
                fflush(stdout);
        }

        creds_free(creds);
        sts_client_free(sts);
        node_credentials_free(probe_node);
        upstream_client_free(imds);
        http_client_free(http);
        metrics_free(metrics);
        sd_event_unref(p.event);
        return 0;
}
