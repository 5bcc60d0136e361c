/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "fake-sts.h"
#include "metrics.h"
#include "tap.h"

typedef struct Result {
        unsigned calls;
        unsigned ok;
        unsigned errors;
        int last_error;
        usec_t least_remaining;
        FakeSts *fake;
} Result;

static void on_done(Credentials *creds, const StsError *error, void *userdata) {
        Result *r = userdata;

        r->calls++;
        if (creds) {
                usec_t left = credentials_remaining(creds, r->fake->now);
                r->ok++;
                if (left < r->least_remaining)
                        r->least_remaining = left;
        } else {
                r->errors++;
                r->last_error = error->error;
        }
}

static const CredsSettings defaults = {
        .session_ttl = 30 * USEC_PER_MINUTE,
        .error_ttl = 0,
        .sts_rate = 5,
        .sts_burst = 10,
};

#define ROLE "arn:aws:iam::123456789012:role/app"

/* Returns 0 (served: remaining life into *left), CREDS_WAIT, or <0. */
static int get(Creds *c, FakeSts *f, Result *res, const char *role, usec_t *left) {
        Credentials *cr = NULL;
        StsError *err = NULL;
        CredsRequest req = { .role_arn = role,
                             .caller_ip = "10.0.0.1",
                             .deadline = f->now + 5 * USEC_PER_SEC,
                             .done = on_done,
                             .userdata = res };
        int r = creds_get(c, &req, &cr, &err, NULL);

        if (r == 0) {
                ASSERT_NOT_NULL(cr);
                if (left)
                        *left = credentials_remaining(cr, f->now);
                credentials_unref(cr);
        } else if (r < 0) {
                ASSERT_NOT_NULL(err);
                sts_error_free(err);
        }
        return r;
}

TEST(cold_role_100_concurrent_requests_make_one_sts_call) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_(creds_freep) Creds *c = NULL;
        usec_t left;

        ASSERT_OK(metrics_new(&m));
        c = new_cache(&f, &defaults, m);
        for (int i = 0; i < 100; i++)
                ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_EQ(res.calls, 0); /* never answered from inside creds_get() */
        ASSERT_EQ(f.calls, 1);
        ASSERT_EQ(f.last_duration, 3600);
        ASSERT_STREQ(f.last_session, "debebe8d-app");
        fake_succeed_all(&f, c);
        ASSERT_EQ(res.ok, 100);
        ASSERT_EQ(get(c, &f, &res, ROLE, &left), 0);
        ASSERT_EQ(f.calls, 1);
        ASSERT_UEQ(left, 60 * USEC_PER_MINUTE);
        printf("# STS calls for 100 concurrent cold requests: %u\n", f.calls);
        ASSERT_EQ(metrics_get(metrics_find_family(m, "kube2iam_iam_cache_hits_total"),
                              (const char *const[]){ ROLE }),
                  1);
        ASSERT_EQ(metrics_get(metrics_find_family(m, "kube2iam_iam_cache_misses_total"),
                              (const char *const[]){ ROLE }),
                  100);
        ASSERT_EQ(metrics_get(metrics_find_family(m, "kube2iam_iam_request_duration_seconds"),
                              (const char *const[]){ "Success", ROLE }),
                  1);
}

TEST(key_includes_external_id) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        Credentials *cr = NULL;
        StsError *err = NULL;
        CredsRequest req = { .role_arn = ROLE,
                             .external_id = "ext-1",
                             .caller_ip = "10.0.0.1",
                             .deadline = f.now + USEC_PER_SEC,
                             .done = on_done,
                             .userdata = &res };

        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_EQ(creds_get(c, &req, &cr, &err, NULL), CREDS_WAIT);
        ASSERT_EQ(f.calls, 2);
        ASSERT_STREQ(f.last_ext, "ext-1");
        ASSERT_EQ(creds_size(c), 2);
}

TEST(every_sts_call_is_timed_prefetch_and_refresh_included) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_(creds_freep) Creds *c = NULL;
        MetricFamily *d;

        ASSERT_OK(metrics_new(&m));
        c = new_cache(&f, &defaults, m);
        d = metrics_find_family(m, "kube2iam_iam_request_duration_seconds");
        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        /* a prefetch: no pod asked yet */
        ASSERT_OK(creds_prefetch(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, "10.0.0.1"));
        ASSERT_EQ(f.calls, 1);
        fake_succeed_all(&f, c);
        ASSERT_EQ(metrics_get(d, (const char *const[]){ "Success", ROLE }), 1);
        /* a background refresh */
        f.now = creds_next_wakeup(c);
        creds_run(c);
        ASSERT_EQ(f.calls, 2);
        fake_fail_all(&f, c, STS_ERROR_TRANSIENT, "ServiceUnavailable", 503);
        ASSERT_EQ(metrics_get(d, (const char *const[]){ "ServiceUnavailable", ROLE }), 1);
        /* still served from the cache: no miss, yet two STS calls were timed */
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), 0);
        ASSERT_EQ(metrics_get(metrics_find_family(m, "kube2iam_iam_cache_misses_total"),
                              (const char *const[]){ ROLE }),
                  0);
}

TEST(refresh_happens_between_60_and_50_percent_of_life) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        /* 60 min life: nothing before 24 min have passed (60% left) */
        f.now = T0 + 24 * USEC_PER_MINUTE - 1;
        creds_run(c);
        ASSERT_EQ(f.calls, 1);
        ASSERT_TRUE(creds_next_wakeup(c) >= T0 + 24 * USEC_PER_MINUTE);
        ASSERT_TRUE(creds_next_wakeup(c) <= T0 + 30 * USEC_PER_MINUTE);
        f.now = creds_next_wakeup(c);
        creds_run(c);
        ASSERT_EQ(f.calls, 2);
        fake_succeed_all(&f, c);
}

TEST(three_simulated_hours_never_serve_less_than_session_ttl) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        usec_t least = USEC_INFINITY;
        unsigned served = 0;

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        /* a request every 7 s, STS answering 0.3 s after a call starts */
        for (usec_t t = 0; t <= 3 * USEC_PER_HOUR; t += 7 * USEC_PER_SEC) {
                usec_t left;
                int r;

                f.now = T0 + t;
                creds_run(c);
                r = get(c, &f, &res, ROLE, &left);
                if (r == 0) {
                        served++;
                        least = MIN(least, left);
                }
                if (f.n_pending > 0) {
                        f.now += 300 * USEC_PER_MSEC;
                        fake_succeed_all(&f, c);
                }
        }
        least = MIN(least, res.least_remaining);
        printf("# 3 h simulated: %u served from cache, %u after waiting, %u STS calls, least remaining life "
               "%llu s\n",
               served, res.ok, f.calls, (unsigned long long) (least / USEC_PER_SEC));
        ASSERT_TRUE(least >= 30 * USEC_PER_MINUTE);
        ASSERT_TRUE(f.calls >= 5 && f.calls <= 9); /* one per 24..30 min */
}

TEST(denial_is_cached_for_error_ttl_and_not_retried_in_a_loop) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        CredsSettings s = defaults;
        _cleanup_(creds_freep) Creds *c = NULL;

        s.error_ttl = 2 * USEC_PER_MINUTE;
        c = new_cache(&f, &s, NULL);
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_fail_all(&f, c, STS_ERROR_DENIED, "AccessDenied", 403);
        ASSERT_EQ(res.errors, 1);
        ASSERT_EQ(res.last_error, -EACCES);
        /* within the TTL: answered from the error cache, no STS call */
        f.now += USEC_PER_MINUTE;
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), -EACCES);
        ASSERT_EQ(f.calls, 1);
        /* an hour of loop runs: never retried on its own */
        for (int i = 0; i < 60; i++) {
                f.now += USEC_PER_MINUTE;
                creds_run(c);
        }
        ASSERT_EQ(f.calls, 1);
        /* after the TTL a new request asks STS again */
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_EQ(f.calls, 2);
}

/* kube2iam cached every failed AssumeRole for --iam-role-error-ttl; here only denials are: a
 * throttled or failing STS is retried with backoff, never answered from the error cache. */
TEST(error_ttl_caches_denials_only_not_throttling_or_5xx) {
        static const struct {
                StsErrorClass class;
                const char *code;
                long status;
        } cases[] = {
                { STS_ERROR_THROTTLED, "Throttling", 400 },
                { STS_ERROR_TRANSIENT, "ServiceUnavailable", 503 },
                { STS_ERROR_TRANSIENT, "InternalFailure", 500 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FakeSts f = {};
                Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
                CredsSettings s = defaults;
                _cleanup_(creds_freep) Creds *c = NULL;
                usec_t left;

                s.error_ttl = USEC_PER_HOUR;
                c = new_cache(&f, &s, NULL);
                ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
                fake_fail_all(&f, c, cases[i].class, cases[i].code, cases[i].status);
                /* well inside the error TTL, past the longest backoff: STS is asked again */
                f.now += 2 * CREDS_RETRY_MAX_USEC;
                creds_run(c);
                if (f.n_pending == 0)
                        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
                ASSERT_EQ(f.calls, 2);
                fake_succeed_all(&f, c);
                ASSERT_EQ(get(c, &f, &res, ROLE, &left), 0);
                ASSERT_TRUE(left >= 30 * USEC_PER_MINUTE);
        }
}

TEST(permanent_start_failure_is_returned_not_called_back) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_OK(sts_error_new(STS_ERROR_DENIED, -EXDEV, 0, "PartitionMismatch", "x", &f.fail_start));
        ASSERT_EQ(get(c, &f, &res, "arn:aws-cn:iam::123456789012:role/app", NULL), -EXDEV);
        ASSERT_EQ(res.calls, 0);
        f.fail_start = sts_error_free(f.fail_start);
}

TEST(cached_credentials_served_while_sts_fails) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        usec_t left;
        unsigned served = 0, waited = 0;

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        /* from the first refresh on, STS fails: 500s and throttling, alternately */
        for (usec_t t = 0; t < 59 * USEC_PER_MINUTE; t += 10 * USEC_PER_SEC) {
                int r;

                f.now = T0 + t;
                creds_run(c);
                fake_fail_all(&f, c, (t / 10) % 2 ? STS_ERROR_TRANSIENT : STS_ERROR_THROTTLED,
                              (t / 10) % 2 ? "InternalFailure" : "Throttling", (t / 10) % 2 ? 500 : 400);
                r = get(c, &f, &res, ROLE, &left);
                if (r == 0)
                        served++;
                else {
                        ASSERT_EQ(r, CREDS_WAIT);
                        waited++;
                        fake_fail_all(&f, c, STS_ERROR_TRANSIENT, "InternalFailure", 500);
                }
        }
        printf("# %u served, %u waited, %u STS calls while STS failed\n", served, waited, f.calls);
        ASSERT_TRUE(served > 340);
        ASSERT_EQ(res.errors, 0);
        /* retries are backed off: far fewer calls than the 354 loop turns */
        ASSERT_TRUE(f.calls < 120);
        /* once expired nothing is served: the caller gets an error at its deadline */
        f.now = T0 + 61 * USEC_PER_MINUTE;
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_fail_all(&f, c, STS_ERROR_TRANSIENT, "InternalFailure", 500);
        f.now += 6 * USEC_PER_SEC;
        creds_run(c);
        ASSERT_TRUE(res.errors >= 1);
}

TEST(waiter_gets_timeout_at_deadline_when_sts_hangs) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_UEQ(creds_next_wakeup(c), T0 + 5 * USEC_PER_SEC);
        f.now += 5 * USEC_PER_SEC;
        creds_run(c);
        ASSERT_EQ(res.errors, 1);
        ASSERT_EQ(res.last_error, -ETIMEDOUT);
        /* the call goes on and warms the cache */
        fake_succeed_all(&f, c);
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), 0);
}

TEST(unused_entry_is_not_refreshed_and_is_dropped) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        ASSERT_EQ(creds_size(c), 1);
        for (int i = 0; i < 40; i++) {
                f.now += USEC_PER_MINUTE;
                creds_run(c);
        }
        ASSERT_EQ(f.calls, 1);
        ASSERT_EQ(creds_size(c), 0);
}

static void count_memo_free(void *memo) {
        (*(unsigned *) memo)++;
}

static Credentials *get_creds(Creds *c, FakeSts *f, Result *res) {
        Credentials *cr = NULL;
        StsError *err = NULL;
        CredsRequest req = { .role_arn = ROLE,
                             .caller_ip = "10.0.0.1",
                             .deadline = f->now + 5 * USEC_PER_SEC,
                             .done = on_done,
                             .userdata = res };

        ASSERT_OK(creds_get(c, &req, &cr, &err, NULL));
        return cr;
}

/* The IMDS service keeps the rendered answer in Credentials.memo: that is right only if a refresh
 * hands out new credentials (never rewrites the ones served) and the memo goes with the last
 * reference to its credentials. */
TEST(refresh_serves_new_credentials_and_the_old_memo_goes_with_them) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        unsigned freed = 0;
        Credentials *first, *again, *second;

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        first = get_creds(c, &f, &res);
        first->memo = &freed;
        first->memo_free = count_memo_free;
        again = get_creds(c, &f, &res);
        ASSERT_TRUE(again == first); /* cached: the same object, memo and all */
        credentials_unref(again);
        f.now = creds_next_wakeup(c);
        creds_run(c);
        fake_succeed_all(&f, c);
        ASSERT_EQ(f.calls, 2);
        second = get_creds(c, &f, &res);
        ASSERT_TRUE(second != first && !second->memo);
        ASSERT_EQ(freed, 0U); /* a request still holds the old ones */
        credentials_unref(first);
        ASSERT_EQ(freed, 1U);
        credentials_unref(second);
}

TEST(entry_in_use_is_refreshed_and_kept_until_released) {
        FakeSts f = {};
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_OK(creds_prefetch(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, "10.0.0.1"));
        ASSERT_EQ(f.calls, 1);
        ASSERT_OK(creds_prefetch(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL },
                                 "10.0.0.1")); /* single flight */
        ASSERT_EQ(f.calls, 1);
        fake_succeed_all(&f, c);
        for (int i = 0; i < 120; i++) {
                f.now += USEC_PER_MINUTE;
                creds_run(c);
                fake_succeed_all(&f, c);
        }
        ASSERT_TRUE(f.calls >= 5);
        ASSERT_EQ(creds_size(c), 1);
        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, false));
        for (int i = 0; i < 60; i++) {
                f.now += USEC_PER_MINUTE;
                creds_run(c);
                fake_succeed_all(&f, c);
        }
        ASSERT_EQ(creds_size(c), 0);
}

TEST(token_bucket_limits_sts_calls_and_slows_on_throttling) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        CredsSettings s = defaults;
        _cleanup_(creds_freep) Creds *c = NULL;
        char role[64];

        s.sts_rate = 1;
        s.sts_burst = 2;
        c = new_cache(&f, &s, NULL);
        for (int i = 0; i < 6; i++) {
                snprintf(role, sizeof role, "arn:aws:iam::123456789012:role/r%d", i);
                ASSERT_EQ(get(c, &f, &res, role, NULL), CREDS_WAIT);
        }
        ASSERT_EQ(f.calls, 2);
        fake_succeed_all(&f, c);
        f.now += USEC_PER_SEC;
        creds_run(c);
        ASSERT_EQ(f.calls, 3);
        /* throttled: the rate halves, so the next token takes 2 s */
        fake_fail_all(&f, c, STS_ERROR_THROTTLED, "Throttling", 400);
        f.now += USEC_PER_SEC;
        creds_run(c);
        ASSERT_EQ(f.calls, 3);
        f.now += USEC_PER_SEC;
        creds_run(c);
        ASSERT_EQ(f.calls, 4);
}

TEST(cancelled_waiter_is_not_called) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        CredsWaiter *w = NULL;
        Credentials *cr = NULL;
        StsError *err = NULL;
        CredsRequest req = { .role_arn = ROLE,
                             .caller_ip = "10.0.0.1",
                             .deadline = f.now + USEC_PER_SEC,
                             .done = on_done,
                             .userdata = &res };

        ASSERT_EQ(creds_get(c, &req, &cr, &err, &w), CREDS_WAIT);
        creds_waiter_cancel(w);
        fake_succeed_all(&f, c);
        ASSERT_EQ(res.calls, 0);
}

TEST(shutdown_answers_waiters_and_cancels_fetches) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        creds_free(c);
        ASSERT_EQ(res.errors, 1);
        ASSERT_EQ(res.last_error, -ECANCELED);
        ASSERT_EQ(f.cancelled, 1);
}

TEST(failing_role_nobody_asks_for_stops_being_retried) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        unsigned calls_after_first_hour = 0;

        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        for (int i = 0; i < 6 * 60; i++) {
                f.now += 20 * USEC_PER_SEC;
                creds_run(c);
                fake_fail_all(&f, c, STS_ERROR_TRANSIENT, "InternalFailure", 500);
                if (i == 3 * 60)
                        calls_after_first_hour = f.calls;
        }
        ASSERT_EQ(res.errors, 1); /* the one caller got an error at its deadline */
        ASSERT_EQ(creds_size(c), 0);
        ASSERT_EQ(f.calls, calls_after_first_hour);
}

/* The rule behind issue 11: after creds_run() at T, nothing is due at T any more. A wakeup at or before
 * T would be a timer firing "now" without progress, which once starved the HTTP server. */
static void run_expecting_progress(Creds *c, FakeSts *f) {
        creds_run(c);
        ASSERT_TRUE(creds_next_wakeup(c) > f->now);
}

TEST(external_id_churn_never_wakes_the_timer_without_progress) {
        FakeSts f = {};
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        char ext[32], prev[32] = "";
        unsigned runs = 0;

        /* one pod whose external id changes 300 times: each change releases the old key and
         * prefetches the new one, far more than the bucket (burst 10) allows at once */
        for (int i = 0; i < 300; i++) {
                snprintf(ext, sizeof ext, "ext-%d", i);
                ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = ext }, true));
                ASSERT_OK(
                        creds_prefetch(c, &(CredsKey){ .role_arn = ROLE, .external_id = ext }, "10.0.0.1"));
                if (prev[0])
                        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = prev },
                                                   false));
                memcpy(prev, ext, sizeof prev);
        }
        ASSERT_EQ(f.calls, defaults.sts_burst);
        run_expecting_progress(c, &f);
        while (creds_next_wakeup(c) < T0 + USEC_PER_MINUTE && runs++ < 1000) {
                f.now = creds_next_wakeup(c);
                run_expecting_progress(c, &f);
                fake_succeed_all(&f, c);
        }
        /* the abandoned ids' queued prefetches were dropped, not paid for: one more call, for
         * the id the pod uses now */
        ASSERT_EQ(f.calls, defaults.sts_burst + 1);
        ASSERT_STREQ(f.last_ext, "ext-299");
        printf("# timer runs in the first minute after 300 external-id changes: %u\n", runs);
        ASSERT_TRUE(runs < 20);
}

TEST(failed_refresh_of_an_entry_nobody_uses_is_not_due_now) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        /* the refresh point: the refresh starts, fails, and the pod goes away meanwhile */
        f.now = creds_next_wakeup(c);
        run_expecting_progress(c, &f);
        ASSERT_EQ(f.calls, 2);
        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, false));
        fake_fail_all(&f, c, STS_ERROR_TRANSIENT, "InternalFailure", 500);
        /* the retry is not wanted, the credentials are still fresh: nothing to do until they are not */
        for (int i = 0; i < 10 && creds_size(c) > 0; i++) {
                ASSERT_TRUE(creds_next_wakeup(c) > f.now);
                f.now = creds_next_wakeup(c);
                run_expecting_progress(c, &f);
        }
        ASSERT_EQ(creds_size(c), 0);
        ASSERT_EQ(f.calls, 2);
}

TEST(debug_json_shows_state_but_no_secret_or_key) {
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &defaults, NULL);
        _cleanup_strbuf_ StrBuf out = {};

        ASSERT_OK(creds_set_in_use(c, &(CredsKey){ .role_arn = ROLE, .external_id = NULL }, true));
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, c);
        ASSERT_OK(creds_debug_json(c, &out));
        ASSERT_STREQ(strbuf_str(&out),
                     "[{\"roleArn\":\"arn:aws:iam::123456789012:role/app\",\"externalId\":false,"
                     "\"state\":\"fresh\",\"inUse\":1,\"waiters\":0,"
                     "\"expiration\":\"2026-05-28T21:26:40Z\"}]");
        ASSERT_NULL(strstr(strbuf_str(&out), "ASIAFAKE"));
        ASSERT_NULL(strstr(strbuf_str(&out), "secret"));
        ASSERT_NULL(strstr(strbuf_str(&out), "token"));
}

/* The state of the entry of role, as creds_debug_json() reports it. */
static const char *state_of(Creds *c, const char *role, char *buf, size_t size) {
        _cleanup_strbuf_ StrBuf out = {};
        const char *p, *q;

        ASSERT_OK(creds_debug_json(c, &out));
        p = strstr(strbuf_str(&out), role);
        ASSERT_NOT_NULL(p);
        p = strstr(p, "\"state\":\"");
        ASSERT_NOT_NULL(p);
        p += strlen("\"state\":\"");
        q = strchr(p, '"');
        snprintf(buf, size, "%.*s", (int) (q - p), p);
        return buf;
}

TEST(entry_state_goes_queued_fetching_cached_failed) {
        const CredsSettings one = { .session_ttl = 30 * USEC_PER_MINUTE, .sts_rate = 1, .sts_burst = 1 };
        FakeSts f = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *c = new_cache(&f, &one, NULL);
        char buf[32];

        ASSERT_STREQ(creds_entry_state_to_string(CREDS_ENTRY_QUEUED), "queued");
        ASSERT_NULL(creds_entry_state_to_string((CredsEntryState) 99));
        /* the one token goes to the first role; the second waits for the next token */
        ASSERT_EQ(get(c, &f, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_EQ(get(c, &f, &res, ROLE "-2", NULL), CREDS_WAIT);
        ASSERT_STREQ(state_of(c, ROLE "\"", buf, sizeof buf), "fetching");
        ASSERT_STREQ(state_of(c, ROLE "-2", buf, sizeof buf), "queued");
        ASSERT_EQ(f.calls, 1);
        fake_succeed_all(&f, c);
        ASSERT_STREQ(state_of(c, ROLE "\"", buf, sizeof buf), "fresh");
        /* a second later the token is there: the queued fetch starts, and is denied */
        f.now += USEC_PER_SEC;
        creds_run(c);
        ASSERT_STREQ(state_of(c, ROLE "-2", buf, sizeof buf), "fetching");
        fake_fail_all(&f, c, STS_ERROR_DENIED, "AccessDenied", 403);
        ASSERT_STREQ(state_of(c, ROLE "-2", buf, sizeof buf), "error");
        ASSERT_EQ(res.ok, 1);
        ASSERT_EQ(res.errors, 1);
        ASSERT_EQ(res.last_error, -EACCES);
}

static void count_change(void *userdata) {
        (*(unsigned *) userdata)++;
}

static int collect(const CredsKey *key, Credentials *creds, void *userdata) {
        Creds *into = userdata;
        return creds_restore(into, key, creds);
}

TEST(restored_credentials_are_served_without_an_sts_call) {
        FakeSts f = {}, g = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &g };
        _cleanup_(creds_freep) Creds *old = NULL, *fresh_run = NULL;
        unsigned changes = 0;
        usec_t left = 0;

        old = new_cache(&f, &defaults, NULL);
        creds_set_on_change(old, count_change, &changes);
        ASSERT_EQ(get(old, &f, &res, ROLE, NULL), CREDS_WAIT);
        fake_succeed_all(&f, old);
        ASSERT_EQ(changes, 1); /* new credentials: worth a snapshot */
        ASSERT_EQ(f.calls, 1);

        /* the next run, a second later: what the old one exported is served at once */
        g.now = f.now + USEC_PER_SEC;
        fresh_run = new_cache(&g, &defaults, NULL);
        ASSERT_OK(creds_foreach_valid(old, collect, fresh_run));
        ASSERT_EQ(get(fresh_run, &g, &res, ROLE, &left), 0);
        ASSERT_EQ(g.calls, 0);
        ASSERT_TRUE(left > defaults.session_ttl);
        /* and a second restore of the same entry does not replace what this run holds */
        ASSERT_ERROR(creds_foreach_valid(old, collect, fresh_run), -EEXIST);
}

TEST(expired_credentials_are_not_restored) {
        FakeSts f = {};
        _cleanup_(creds_freep) Creds *c = NULL;
        _cleanup_(credentials_unrefp) Credentials *cr = NULL;

        c = new_cache(&f, &defaults, NULL);
        cr = make_creds(&f, USEC_PER_MINUTE);
        f.now += 2 * USEC_PER_MINUTE;
        ASSERT_ERROR(creds_restore(c, &(const CredsKey){ .role_arn = ROLE }, cr), -ESTALE);
        ASSERT_EQ(creds_size(c), 0);
}

TEST(tagged_and_pod_named_sessions_are_restored_under_their_own_keys) {
        FakeSts f = {}, g = {};
        Result res = { .least_remaining = USEC_INFINITY, .fake = &f };
        _cleanup_(creds_freep) Creds *old = NULL, *fresh_run = NULL;
        Credentials *cr = NULL;
        StsError *err = NULL;
        CredsRequest tagged = { .role_arn = ROLE,
                                .session = "Tags.member.1.Key=ns&Tags.member.1.Value=a",
                                .caller_ip = "10.0.0.1",
                                .deadline = f.now + 5 * USEC_PER_SEC,
                                .done = on_done,
                                .userdata = &res };
        CredsRequest named = { .role_arn = ROLE,
                               .session_name = "default.app-0",
                               .caller_ip = "10.0.0.2",
                               .deadline = f.now + 5 * USEC_PER_SEC,
                               .done = on_done,
                               .userdata = &res };

        old = new_cache(&f, &defaults, NULL);
        ASSERT_EQ(creds_get(old, &tagged, &cr, &err, NULL), CREDS_WAIT);
        ASSERT_EQ(creds_get(old, &named, &cr, &err, NULL), CREDS_WAIT);
        fake_succeed_all(&f, old);
        ASSERT_EQ(f.calls, 2);

        g.now = f.now + USEC_PER_SEC;
        fresh_run = new_cache(&g, &defaults, NULL);
        ASSERT_OK(creds_foreach_valid(old, collect, fresh_run));
        ASSERT_EQ(creds_size(fresh_run), 2);
        tagged.deadline = named.deadline = g.now + 5 * USEC_PER_SEC;
        res.fake = &g;
        ASSERT_EQ(creds_get(fresh_run, &tagged, &cr, &err, NULL), 0);
        credentials_unref(cr);
        ASSERT_EQ(creds_get(fresh_run, &named, &cr, &err, NULL), 0);
        credentials_unref(cr);
        ASSERT_EQ(g.calls, 0);
        /* the default session of the same role is another key: not restored, fetched */
        ASSERT_EQ(get(fresh_run, &g, &res, ROLE, NULL), CREDS_WAIT);
        ASSERT_EQ(g.calls, 1);
}
