/* SPDX-License-Identifier: BSD-3-Clause */
#include "kube/kube-freshness.h"
#include "tap.h"

#define BOUND (60 * USEC_PER_SEC)
#define T0 (1000 * USEC_PER_SEC)

TEST(outcomes_are_classified_by_who_answered) {
        ASSERT_EQ(kube_refresh_classify(200, false, false), KUBE_REFRESH_CONFIRMED);
        /* no answer, a dropped stream, a gateway saying the server is down */
        ASSERT_EQ(kube_refresh_classify(0, true, false), KUBE_REFRESH_UNREACHABLE);
        ASSERT_EQ(kube_refresh_classify(200, true, false), KUBE_REFRESH_UNREACHABLE);
        ASSERT_EQ(kube_refresh_classify(502, false, false), KUBE_REFRESH_UNREACHABLE);
        ASSERT_EQ(kube_refresh_classify(503, false, false), KUBE_REFRESH_UNREACHABLE);
        ASSERT_EQ(kube_refresh_classify(504, false, false), KUBE_REFRESH_UNREACHABLE);
        /* the server answered and we could not refresh */
        ASSERT_EQ(kube_refresh_classify(500, false, false), KUBE_REFRESH_FAILED);
        ASSERT_EQ(kube_refresh_classify(429, false, false), KUBE_REFRESH_FAILED);
        ASSERT_EQ(kube_refresh_classify(410, false, false), KUBE_REFRESH_FAILED);
        ASSERT_EQ(kube_refresh_classify(403, false, false), KUBE_REFRESH_FAILED);
        /* what we rejected counts as answered, whatever the transport said */
        ASSERT_EQ(kube_refresh_classify(200, true, true), KUBE_REFRESH_FAILED);
        ASSERT_EQ(kube_refresh_classify(0, true, true), KUBE_REFRESH_FAILED);
}

TEST(fresh_store_never_turns_stale) {
        KubeFreshness f = {};

        ASSERT_UEQ(kube_freshness_deadline(&f, BOUND), USEC_INFINITY);
        ASSERT_FALSE(kube_freshness_stale(&f, USEC_INFINITY - 1, BOUND));
        kube_freshness_record(&f, KUBE_REFRESH_CONFIRMED, T0);
        ASSERT_FALSE(kube_freshness_stale(&f, T0 + 10 * BOUND, BOUND));
}

TEST(answered_failures_turn_stale_after_the_bound_from_the_first_one) {
        KubeFreshness f = {};

        kube_freshness_record(&f, KUBE_REFRESH_FAILED, T0);
        kube_freshness_record(&f, KUBE_REFRESH_FAILED, T0 + BOUND / 2); /* does not restart the clock */
        ASSERT_UEQ(kube_freshness_deadline(&f, BOUND), T0 + BOUND);
        ASSERT_FALSE(kube_freshness_stale(&f, T0 + BOUND - 1, BOUND));
        ASSERT_TRUE(kube_freshness_stale(&f, T0 + BOUND, BOUND));
        ASSERT_TRUE(kube_freshness_stale(&f, T0 + 100 * BOUND, BOUND));
}

TEST(confirmation_ends_staleness) {
        KubeFreshness f = {};

        kube_freshness_record(&f, KUBE_REFRESH_FAILED, T0);
        ASSERT_TRUE(kube_freshness_stale(&f, T0 + 2 * BOUND, BOUND));
        kube_freshness_record(&f, KUBE_REFRESH_CONFIRMED, T0 + 2 * BOUND);
        ASSERT_FALSE(kube_freshness_stale(&f, T0 + 5 * BOUND, BOUND));
        /* a later failure starts a new clock */
        kube_freshness_record(&f, KUBE_REFRESH_FAILED, T0 + 5 * BOUND);
        ASSERT_FALSE(kube_freshness_stale(&f, T0 + 6 * BOUND - 1, BOUND));
        ASSERT_TRUE(kube_freshness_stale(&f, T0 + 6 * BOUND, BOUND));
}

TEST(outage_keeps_the_last_view_for_any_time) {
        KubeFreshness f = {};

        kube_freshness_record(&f, KUBE_REFRESH_CONFIRMED, T0);
        for (usec_t t = T0; t < T0 + 1000 * BOUND; t += BOUND / 3)
                kube_freshness_record(&f, KUBE_REFRESH_UNREACHABLE, t);
        ASSERT_FALSE(kube_freshness_stale(&f, T0 + 1000 * BOUND, BOUND));
}

TEST(outage_after_an_answered_failure_keeps_the_clock_running) {
        KubeFreshness f = {};

        kube_freshness_record(&f, KUBE_REFRESH_FAILED, T0);
        kube_freshness_record(&f, KUBE_REFRESH_UNREACHABLE, T0 + BOUND / 2);
        ASSERT_TRUE(kube_freshness_stale(&f, T0 + BOUND, BOUND));
        /* and an answered failure after an outage starts it only then */
        KubeFreshness g = {};
        kube_freshness_record(&g, KUBE_REFRESH_UNREACHABLE, T0);
        kube_freshness_record(&g, KUBE_REFRESH_FAILED, T0 + 10 * BOUND);
        ASSERT_FALSE(kube_freshness_stale(&g, T0 + 11 * BOUND - 1, BOUND));
        ASSERT_TRUE(kube_freshness_stale(&g, T0 + 11 * BOUND, BOUND));
}

TEST(failure_at_time_zero_still_starts_the_clock) {
        KubeFreshness f = {};

        kube_freshness_record(&f, KUBE_REFRESH_FAILED, 0);
        ASSERT_TRUE(kube_freshness_stale(&f, BOUND + 1, BOUND));
}
