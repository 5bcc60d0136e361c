/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "string-util.h"
#include "strmap.h"
#include "tap.h"

#define N_KEYS 2000

/* Keys that are their own values (the map's keys point into values). */
static char keys[N_KEYS][16];

static void make_keys(void) {
        for (size_t i = 0; i < N_KEYS; i++)
                snprintf(keys[i], sizeof keys[i], "10.%zu.%zu", i / 256, i % 256);
}

static size_t count_entries(const StrMap *m) {
        size_t n = 0;
        STRMAP_FOREACH(e, m)
        n++;
        return n;
}

TEST(strmap_finds_every_key_through_growth_and_removals) {
        StrMap m;

        make_keys();
        ASSERT_OK(strmap_init(&m));
        for (size_t i = 0; i < N_KEYS; i++) {
                ASSERT_NULL(strmap_get(&m, keys[i]));
                ASSERT_OK(strmap_put(&m, keys[i], keys[i]));
        }
        ASSERT_UEQ(m.n, N_KEYS);
        ASSERT_TRUE(m.n * 4 <= m.n_slots * 3);
        /* every other key goes, in an order unrelated to the slots: each removal shifts runs back */
        for (size_t i = 0; i < N_KEYS; i += 2)
                ASSERT_TRUE(strmap_remove(&m, keys[(i * 7) % N_KEYS]) == keys[(i * 7) % N_KEYS]);
        ASSERT_UEQ(m.n, N_KEYS / 2);
        for (size_t i = 0; i < N_KEYS; i++)
                ASSERT_TRUE(strmap_get(&m, keys[i]) == (i % 2 ? keys[i] : NULL));
        ASSERT_NULL(strmap_remove(&m, keys[0]));
        ASSERT_UEQ(count_entries(&m), N_KEYS / 2);
        /* emptied, the grown table goes; the map is usable again */
        strmap_clear(&m, NULL);
        ASSERT_NULL(strmap_get(&m, keys[1]));
        ASSERT_UEQ(count_entries(&m), 0);
        ASSERT_OK(strmap_put(&m, keys[1], keys[1]));
        ASSERT_TRUE(strmap_get(&m, keys[1]) == keys[1]);
        strmap_done(&m, NULL);
        ASSERT_NULL(strmap_get(&m, keys[1]));
}

TEST(strmap_replace_swaps_the_value_in_place) {
        StrMap m;
        char a[] = "ns", b[] = "ns";

        ASSERT_OK(strmap_init(&m));
        ASSERT_NULL(strmap_replace(&m, "ns", b)); /* absent: nothing happens */
        ASSERT_OK(strmap_put(&m, a, a));
        ASSERT_TRUE(strmap_replace(&m, b, b) == a);
        ASSERT_TRUE(strmap_get(&m, "ns") == b);
        STRMAP_FOREACH(e, &m)
        ASSERT_TRUE(e->key == b); /* the key now points into the new value */
        ASSERT_UEQ(m.n, 1);
        strmap_done(&m, NULL);
}

TEST(strmap_foreach_break_leaves_the_whole_loop) {
        StrMap m;
        size_t seen = 0;

        make_keys();
        ASSERT_OK(strmap_init(&m));
        for (size_t i = 0; i < 100; i++)
                ASSERT_OK(strmap_put(&m, keys[i], keys[i]));
        STRMAP_FOREACH(e, &m) {
                seen++;
                if (seen == 3)
                        break;
        }
        ASSERT_UEQ(seen, 3);
        strmap_clear(&m, NULL);
        ASSERT_UEQ(count_entries(&m), 0);
        ASSERT_OK(strmap_put(&m, keys[5], keys[5])); /* usable after clear */
        ASSERT_TRUE(strmap_get(&m, keys[5]) == keys[5]);
        strmap_done(&m, NULL);
}
