/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restart-backoff.h"
#include "tap.h"

#define S USEC_PER_SEC

static char dir[] = "/tmp/k2i-backoff-XXXXXX";
static bool dir_made;

static void fresh_dir(void) {
        char path[sizeof dir + sizeof RESTART_BACKOFF_FILE + 1];

        /* made once: mkdtemp's random part may itself end in 'X', so the name says nothing */
        if (!dir_made) {
                ASSERT_NOT_NULL(mkdtemp(dir));
                dir_made = true;
        }
        snprintf(path, sizeof path, "%s/%s", dir, RESTART_BACKOFF_FILE);
        (void) unlink(path);
}

static usec_t start(RestartKind kind, usec_t now) {
        usec_t delay = 12345;

        ASSERT_OK(restart_backoff_begin(dir, kind, now, &delay));
        return delay;
}

TEST(quick_failures_double_the_pause_up_to_the_maximum) {
        usec_t t = 1000 * S, want[] = { 0, 1 * S, 2 * S, 4 * S, 8 * S, 16 * S, 16 * S, 16 * S };

        fresh_dir();
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                usec_t d = start(RESTART_SERVE, t);
                ASSERT_UEQ(d, want[i]);
                t += d + 2 * S; /* it waited, then crashed two seconds later */
        }
}

TEST(clean_exit_and_healthy_run_clear_the_history) {
        fresh_dir();
        ASSERT_UEQ(start(RESTART_SERVE, 100 * S), 0);
        ASSERT_UEQ(start(RESTART_SERVE, 101 * S), 1 * S);
        ASSERT_OK(restart_backoff_clean_exit(dir));
        ASSERT_UEQ(start(RESTART_SERVE, 110 * S), 0);
        ASSERT_UEQ(start(RESTART_SERVE, 111 * S), 1 * S);
        /* the last instance served for longer than a healthy run before it crashed */
        ASSERT_UEQ(start(RESTART_SERVE, 112 * S + RESTART_BACKOFF_HEALTHY_RUN + 1), 0);
        ASSERT_OK(restart_backoff_clean_exit(dir));
        ASSERT_OK(restart_backoff_clean_exit(dir)); /* nothing to clear: fine */
}

TEST(configuration_errors_delay_each_other_but_never_a_corrected_start) {
        fresh_dir();
        ASSERT_UEQ(start(RESTART_CONFIG_ERROR, 100 * S), 0);
        ASSERT_UEQ(start(RESTART_CONFIG_ERROR, 101 * S), 1 * S);
        ASSERT_UEQ(start(RESTART_CONFIG_ERROR, 103 * S), 2 * S);
        /* the operator fixed the flag and restarted: serve at once */
        ASSERT_UEQ(start(RESTART_SERVE, 106 * S), 0);
        /* and a crash loop does not make the next configuration error wait */
        ASSERT_UEQ(start(RESTART_SERVE, 107 * S), 1 * S);
        ASSERT_UEQ(start(RESTART_CONFIG_ERROR, 109 * S), 0);
}

TEST(no_directory_no_history_and_a_damaged_file_starts_afresh) {
        usec_t delay = 7;
        char path[sizeof dir + sizeof RESTART_BACKOFF_FILE + 1];
        FILE *f;

        ASSERT_OK(restart_backoff_begin(NULL, RESTART_SERVE, 100 * S, &delay));
        ASSERT_UEQ(delay, 0);
        ASSERT_OK(restart_backoff_clean_exit(NULL));

        fresh_dir();
        snprintf(path, sizeof path, "%s/%s", dir, RESTART_BACKOFF_FILE);
        f = fopen(path, "w");
        ASSERT_NOT_NULL(f);
        fputs("garbage\n", f);
        fclose(f);
        ASSERT_UEQ(start(RESTART_SERVE, 100 * S), 0);
        ASSERT_UEQ(start(RESTART_SERVE, 101 * S), 1 * S);
        /* a clock that went backwards (another boot would have emptied the directory) */
        ASSERT_UEQ(start(RESTART_SERVE, 50 * S), 0);
        ASSERT_ERROR(restart_backoff_begin("/nonexistent/k2i", RESTART_SERVE, 100 * S, &delay), -ENOENT);
        ASSERT_UEQ(delay, 0);
        ASSERT_OK(restart_backoff_clean_exit(dir));
        ASSERT_OK(rmdir(dir));
}
