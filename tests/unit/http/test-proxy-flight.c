/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-flight.h"
#include "tap.h"

/* Waiters are the caller's opaque pointers: requests, here. */
static int req[8];

TEST(the_first_request_for_a_path_leads_and_later_ones_join_in_order) {
        _cleanup_(proxy_flights_freep) ProxyFlights *t = NULL;
        ProxyFlight *f = NULL;
        int call;
        void **w = NULL;

        ASSERT_OK(proxy_flights_new(4, 8, &t));
        ASSERT_NULL(proxy_flights_find(t, "/latest/meta-data/security-groups"));
        ASSERT_OK(proxy_flights_open(t, "/latest/meta-data/security-groups", &call, &req[0], &f));
        ASSERT_TRUE(proxy_flights_find(t, "/latest/meta-data/security-groups") == f);
        ASSERT_TRUE(proxy_flight_data(f) == &call);
        ASSERT_STREQ(proxy_flight_key(f), "/latest/meta-data/security-groups");
        /* another path is another flight; the same path again is not */
        ASSERT_NULL(proxy_flights_find(t, "/latest/meta-data/security-groups/"));
        ASSERT_ERROR(proxy_flights_open(t, "/latest/meta-data/security-groups", &call, &req[1], &f),
                     -EEXIST);
        for (int i = 1; i < 4; i++)
                ASSERT_OK(proxy_flight_join(f, &req[i]));
        ASSERT_UEQ(proxy_flight_waiters(f), 4);
        ASSERT_UEQ(proxy_flights_count(t), 1);

        /* landing takes the flight out: everyone gets the answer, in the order they came */
        ASSERT_UEQ(proxy_flights_land(t, f, &w), 4);
        for (int i = 0; i < 4; i++)
                ASSERT_TRUE(w[i] == &req[i]);
        free(w);
        ASSERT_UEQ(proxy_flights_count(t), 0);
        ASSERT_NULL(proxy_flights_find(t, "/latest/meta-data/security-groups"));
}

TEST(a_waiter_that_leaves_is_not_answered_and_the_others_keep_their_order) {
        _cleanup_(proxy_flights_freep) ProxyFlights *t = NULL;
        ProxyFlight *f = NULL;
        void **w = NULL;

        ASSERT_OK(proxy_flights_new(4, 8, &t));
        ASSERT_OK(proxy_flights_open(t, "/p", NULL, &req[0], &f));
        ASSERT_OK(proxy_flight_join(f, &req[1]));
        ASSERT_OK(proxy_flight_join(f, &req[2]));
        ASSERT_UEQ(proxy_flight_leave(f, &req[0]), 2); /* the leader may go: the flight goes on */
        ASSERT_UEQ(proxy_flight_leave(f, &req[5]), 2); /* never joined: nothing changes */
        ASSERT_UEQ(proxy_flights_land(t, f, &w), 2);
        ASSERT_TRUE(w[0] == &req[1] && w[1] == &req[2]);
        free(w);

        /* everyone left: the flight lands with nobody to answer */
        ASSERT_OK(proxy_flights_open(t, "/p", NULL, &req[0], &f));
        ASSERT_UEQ(proxy_flight_leave(f, &req[0]), 0);
        ASSERT_UEQ(proxy_flights_land(t, f, &w), 0);
        ASSERT_NULL(w);
        ASSERT_UEQ(proxy_flights_count(t), 0);
}

TEST(paths_in_flight_and_waiters_per_path_are_bounded) {
        _cleanup_(proxy_flights_freep) ProxyFlights *t = NULL;
        ProxyFlight *f[3] = {}, *extra = NULL;
        char key[16];

        ASSERT_OK(proxy_flights_new(3, 4, &t));
        for (int i = 0; i < 3; i++) {
                snprintf(key, sizeof key, "/k%d", i);
                ASSERT_OK(proxy_flights_open(t, key, NULL, &req[i], &f[i]));
        }
        ASSERT_ERROR(proxy_flights_open(t, "/k3", NULL, &req[3], &extra), -ENOSPC);
        ASSERT_NULL(extra);
        for (int i = 1; i < 4; i++)
                ASSERT_OK(proxy_flight_join(f[0], &req[i]));
        ASSERT_ERROR(proxy_flight_join(f[0], &req[4]), -ENOSPC);
        ASSERT_UEQ(proxy_flight_waiters(f[0]), 4);
        /* a landed flight frees its slot */
        {
                void **w = NULL;
                ASSERT_UEQ(proxy_flights_land(t, f[1], &w), 1);
                free(w);
        }
        ASSERT_OK(proxy_flights_open(t, "/k3", NULL, &req[3], &extra));
        ASSERT_UEQ(proxy_flights_count(t), 3);
        /* flights still in the table are freed with it (the sanitizers check) */
}

TEST(limits_of_zero_are_refused) {
        ProxyFlights *t = NULL;

        ASSERT_ERROR(proxy_flights_new(0, 4, &t), -EINVAL);
        ASSERT_ERROR(proxy_flights_new(4, 0, &t), -EINVAL);
        ASSERT_NULL(t);
}
