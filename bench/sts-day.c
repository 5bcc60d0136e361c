/* SPDX-License-Identifier: BSD-3-Clause */

/* sts-day: STS AssumeRole calls per hour that the credential cache (src/creds.c) makes for a node
 * over a simulated day, with the cache's clock injected so a day takes a fraction of a second.
 *
 * The node: --pods pods sharing --roles roles (pod i uses role i % roles), all created at the
 * start (each one prefetched, as the pod store's observer does) and marked in use. Every pod runs
 * an AWS SDK that asks for its role's credentials at start and again whenever the ones it holds
 * have less than 15 minutes left (botocore's advisory refresh), plus every --poll seconds (SDKs
 * and sidecars that re-read the metadata service). The fake STS answers each call after
 * --sts-latency milliseconds. Every --churn seconds one pod is replaced by a new one with the same
 * role (rolling deployments).
 *
 * Prints one JSON object: the calls, the calls per hour, per role per hour, requests served and
 * requests that had to wait. Flags: --pods N --roles N --hours N --poll SEC --churn SEC
 * --sts-latency MS --session-ttl DURATION (the daemon's --iam-role-session-ttl) --pod-tags (the
 * daemon's --session-tags with kubernetes-pod-uid: every pod, and every replacement, has a session
 * key of its own, so nothing is shared between the pods of a role). */

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "creds.h"
#include "log.h"

/* Bounds that keep the simulation's arrays on the stack and its run under a second. */
#define SIM_MAX_PODS 5000U
#define SIM_MAX_ROLES 1000U
#define SIM_MAX_PENDING 1024U
#define SIM_MAX_HOURS 24U * 31U
/* botocore refreshes credentials that have less than this left (its advisory refresh window). */
#define SDK_REFRESH_USEC (15 * USEC_PER_MINUTE)
/* The simulation's step: finer than any timer the cache or an SDK uses that matters here. */
#define SIM_STEP_USEC (100 * USEC_PER_MSEC)
#define SIM_T0 ((usec_t) 1780000000 * USEC_PER_SEC)

typedef struct Pending {
        void *token;
        usec_t due;
        unsigned duration_sec;
} Pending;

typedef struct Sim {
        usec_t now;
        uint64_t calls;
        uint64_t served_now;
        uint64_t waited;
        uint64_t errors;
        usec_t sts_latency;
        Pending pending[SIM_MAX_PENDING];
        unsigned n_pending;
        unsigned serial;
        bool pod_tags;   /* --pod-tags */
        unsigned n_uids; /* pod instances created so far (their kubernetes-pod-uid) */
} Sim;

typedef struct Pod {
        Sim *sim;
        unsigned role;
        usec_t expiration; /* of the credentials it holds; 0 for none */
        usec_t started;    /* its container asks from then on */
        usec_t next_poll;
        bool waiting;
        char session[96]; /* its session parameters: "" unless --pod-tags */
} Pod;

static usec_t sim_now(void *userdata) {
        return ((Sim *) userdata)->now;
}

static int sim_start(void *userdata, Creds *c, void *token, const char *role_arn, const char *session_name,
                     unsigned duration_sec, const char *external_id, const char *session, void **ret_handle,
                     StsError **ret_error) {
        Sim *s = userdata;

        (void) c;
        (void) role_arn;
        (void) session_name;
        (void) external_id;
        (void) ret_error;
        if (s->n_pending >= SIM_MAX_PENDING)
                return -EBUSY;
        s->calls++;
        s->pending[s->n_pending++] = (Pending){ token, s->now + s->sts_latency, duration_sec };
        *ret_handle = token;
        return 0;
}

static void sim_cancel(void *userdata, void *handle) {
        Sim *s = userdata;

        for (unsigned i = 0; i < s->n_pending; i++)
                if (s->pending[i].token == handle) {
                        s->pending[i] = s->pending[--s->n_pending];
                        return;
                }
}

static int sim_complete_due(Sim *s, Creds *c) {
        for (unsigned i = 0; i < s->n_pending;) {
                Pending p = s->pending[i];
                _cleanup_(credentials_unrefp) Credentials *cr = NULL;
                Secret *secret = NULL, *token = NULL;
                char key[32];
                int r;

                if (p.due > s->now) {
                        i++;
                        continue;
                }
                s->pending[i] = s->pending[--s->n_pending];
                snprintf(key, sizeof key, "ASIASIM%u", ++s->serial);
                r = secret_new("simulated", 9, &secret);
                if (r < 0)
                        return r;
                r = secret_new("simulated", 9, &token);
                if (r < 0) {
                        secret_free(secret);
                        return r;
                }
                r = credentials_new(key, secret, token, s->now + (usec_t) p.duration_sec * USEC_PER_SEC,
                                    s->now, &cr);
                if (r < 0)
                        return r;
                creds_fetch_complete(c, p.token, cr, NULL);
        }
        return 0;
}

static void pod_done(Credentials *creds, const StsError *error, void *userdata) {
        Pod *p = userdata;

        p->waiting = false;
        if (creds)
                p->expiration = creds->expiration;
        else if (error)
                p->sim->errors++;
}

static void role_arn(unsigned role, char *buf, size_t n) {
        snprintf(buf, n, "arn:aws:iam::123456789012:role/sim-role-%u", role);
}

static void pod_ip(unsigned i, char *buf, size_t n) {
        snprintf(buf, n, "10.1.%u.%u", i / 250, i % 250 + 1);
}

static int pod_request(Creds *c, Pod *p, unsigned i) {
        Sim *s = p->sim;
        char arn[80], ip[32];
        Credentials *cr = NULL;
        StsError *err = NULL;
        int r;

        role_arn(p->role, arn, sizeof arn);
        pod_ip(i, ip, sizeof ip);
        r = creds_get(c,
                      &(CredsRequest){ .role_arn = arn,
                                       .session = p->session,
                                       .caller_ip = ip,
                                       .deadline = s->now + 10 * USEC_PER_SEC,
                                       .done = pod_done,
                                       .userdata = p },
                      &cr, &err, NULL);
        if (r == 0) {
                s->served_now++;
                p->expiration = cr->expiration;
                credentials_unref(cr);
        } else if (r == CREDS_WAIT) {
                s->waited++;
                p->waiting = true;
        } else {
                s->errors++;
                sts_error_free(err);
        }
        return 0;
}

static int pod_appear(Creds *c, Pod *p, unsigned i) {
        char arn[80], ip[32];
        int r;

        role_arn(p->role, arn, sizeof arn);
        pod_ip(i, ip, sizeof ip);
        p->session[0] = '\0';
        if (p->sim->pod_tags)
                snprintf(p->session, sizeof p->session,
                         "&Tags.member.1.Key=kubernetes-pod-uid"
                         "&Tags.member.1.Value=sim-%u",
                         ++p->sim->n_uids);
        r = creds_set_in_use(c, &(CredsKey){ .role_arn = arn, .session = p->session }, true);
        if (r < 0)
                return r;
        return creds_prefetch(c, &(CredsKey){ .role_arn = arn, .session = p->session }, ip);
}

static int pod_vanish(Creds *c, Pod *p) {
        char arn[80];

        role_arn(p->role, arn, sizeof arn);
        return creds_set_in_use(c, &(CredsKey){ .role_arn = arn, .session = p->session }, false);
}

static int parse_uint(const char *s, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = { { "pods", required_argument, NULL, 'p' },
                                                 { "roles", required_argument, NULL, 'r' },
                                                 { "hours", required_argument, NULL, 'h' },
                                                 { "poll", required_argument, NULL, 'P' },
                                                 { "churn", required_argument, NULL, 'c' },
                                                 { "sts-latency", required_argument, NULL, 'l' },
                                                 { "session-ttl", required_argument, NULL, 't' },
                                                 { "pod-tags", no_argument, NULL, 'T' },
                                                 {} };
        unsigned n_pods = 250, n_roles = 40, hours = 24, poll_sec = 300, churn_sec = 600, latency_ms = 200;
        _cleanup_(creds_freep) Creds *c = NULL;
        CredsSettings settings;
        Config config;
        Sim sim = { .now = SIM_T0 };
        static Pod pods[SIM_MAX_PODS];
        usec_t end, next_churn;
        unsigned churned = 0;
        int r, opt;

        log_set_max_level(LOG_WARNING);
        r = config_init(&config);
        if (r < 0)
                return EXIT_FAILURE;
        creds_settings_from_config(&config, &settings);
        config_done(&config);

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (opt) {
                case 'p':
                        r = parse_uint(optarg, SIM_MAX_PODS, &n_pods);
                        break;
                case 'r':
                        r = parse_uint(optarg, SIM_MAX_ROLES, &n_roles);
                        break;
                case 'h':
                        r = parse_uint(optarg, SIM_MAX_HOURS, &hours);
                        break;
                case 'P':
                        r = parse_uint(optarg, 86400, &poll_sec);
                        break;
                case 'c':
                        r = parse_uint(optarg, 86400, &churn_sec);
                        break;
                case 'l':
                        r = parse_uint(optarg, 60000, &latency_ms);
                        break;
                case 't':
                        r = parse_duration(optarg, &settings.session_ttl);
                        break;
                case 'T':
                        sim.pod_tags = true;
                        r = 0;
                        break;
                default:
                        return EXIT_FAILURE;
                }
                if (r < 0) {
                        fprintf(stderr, "sts-day: bad value: %s\n", optarg);
                        return 2;
                }
        }
        if (n_roles > n_pods) {
                fprintf(stderr, "sts-day: --roles must not exceed --pods\n");
                return 2;
        }
        sim.sts_latency = (usec_t) latency_ms * USEC_PER_MSEC;

        r = creds_new(&settings,
                      &(CredsFetcher){ .start = sim_start, .cancel = sim_cancel, .userdata = &sim }, NULL,
                      &c);
        if (r < 0)
                return EXIT_FAILURE;
        creds_set_clock(c, sim_now, &sim);
        creds_set_seed(c, 1);

        for (unsigned i = 0; i < n_pods; i++) {
                /* pods start within the first minute, as after a node boots */
                pods[i] = (Pod){ .sim = &sim,
                                 .role = i % n_roles,
                                 .started = SIM_T0 + (i % 60) * USEC_PER_SEC };
                r = pod_appear(c, &pods[i], i);
                if (r < 0)
                        return EXIT_FAILURE;
        }

        end = SIM_T0 + (usec_t) hours * USEC_PER_HOUR;
        next_churn = SIM_T0 + (usec_t) churn_sec * USEC_PER_SEC;
        for (; sim.now < end; sim.now += SIM_STEP_USEC) {
                r = sim_complete_due(&sim, c);
                if (r < 0)
                        return EXIT_FAILURE;
                if (creds_next_wakeup(c) <= sim.now)
                        creds_run(c);
                if (sim.now >= next_churn) {
                        unsigned i = churned++ % n_pods;

                        if (pod_vanish(c, &pods[i]) < 0)
                                return EXIT_FAILURE;
                        pods[i].expiration = 0;
                        pods[i].started = sim.now + 5 * USEC_PER_SEC; /* the new container starts */
                        if (pod_appear(c, &pods[i], i) < 0)
                                return EXIT_FAILURE;
                        next_churn += (usec_t) churn_sec * USEC_PER_SEC;
                }
                for (unsigned i = 0; i < n_pods; i++) {
                        Pod *p = &pods[i];

                        if (p->waiting || sim.now < p->started)
                                continue;
                        if (p->expiration < sim.now + SDK_REFRESH_USEC || sim.now >= p->next_poll) {
                                pod_request(c, p, i);
                                p->next_poll = sim.now + (usec_t) poll_sec * USEC_PER_SEC;
                        }
                }
        }

        printf("{\"pods\": %u, \"roles\": %u, \"pod_tags\": %s, \"hours\": %u, \"session_ttl_sec\": %" PRIu64
               ", \"sts_calls\": %" PRIu64 ", \"sts_calls_per_hour\": %.1f, \"per_role_per_hour\": %.2f"
               ", \"requests_served_from_cache\": %" PRIu64 ", \"requests_waited\": %" PRIu64
               ", \"errors\": %" PRIu64 ", \"pods_replaced\": %u, \"cache_entries\": %zu}\n",
               n_pods, n_roles, sim.pod_tags ? "true" : "false", hours, settings.session_ttl / USEC_PER_SEC,
               sim.calls, (double) sim.calls / hours, (double) sim.calls / hours / n_roles, sim.served_now,
               sim.waited, sim.errors, churned, creds_size(c));
        return sim.errors == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
