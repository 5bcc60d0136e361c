/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "metrics.h"
#include "process-metrics.h"
#include "tap.h"

TEST(metrics_render_text_format_with_escaping) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_strbuf_ StrBuf out = {};
        MetricFamily *hits, *up, *dur;
        static const double b[] = { 0.5, 1 };

        ASSERT_OK(metrics_new(&m));
        ASSERT_OK(metrics_add_family(m, "t_hits_total", "Hits.\nSecond line \\ here", METRIC_COUNTER,
                                     (const char *const[]){ "role_arn", NULL }, NULL, 0, 0, &hits));
        ASSERT_OK(metrics_add_family(m, "t_up", "Up.", METRIC_GAUGE, NULL, NULL, 0, 0, &up));
        ASSERT_OK(metrics_add_family(m, "t_seconds", "Durations.", METRIC_HISTOGRAM,
                                     (const char *const[]){ "code", NULL }, b, 2, 0, &dur));
        ASSERT_OK(metrics_counter_inc(hits, (const char *const[]){ "a\"b\\c\nd" }));
        ASSERT_OK(metrics_counter_add(hits, (const char *const[]){ "a\"b\\c\nd" }, 2));
        ASSERT_OK(metrics_gauge_set(up, NULL, 1));
        ASSERT_OK(metrics_histogram_observe(dur, (const char *const[]){ "Success" }, 0.25));
        ASSERT_OK(metrics_histogram_observe(dur, (const char *const[]){ "Success" }, 0.75));
        ASSERT_OK(metrics_histogram_observe(dur, (const char *const[]){ "Success" }, 3));
        ASSERT_OK(metrics_render(m, &out));
        ASSERT_STREQ(strbuf_str(&out), "# HELP t_hits_total Hits.\\nSecond line \\\\ here\n"
                                       "# TYPE t_hits_total counter\n"
                                       "t_hits_total{role_arn=\"a\\\"b\\\\c\\nd\"} 3\n"
                                       "# HELP t_up Up.\n"
                                       "# TYPE t_up gauge\n"
                                       "t_up 1\n"
                                       "# HELP t_seconds Durations.\n"
                                       "# TYPE t_seconds histogram\n"
                                       "t_seconds_bucket{code=\"Success\",le=\"0.5\"} 1\n"
                                       "t_seconds_bucket{code=\"Success\",le=\"1\"} 2\n"
                                       "t_seconds_bucket{code=\"Success\",le=\"+Inf\"} 3\n"
                                       "t_seconds_sum{code=\"Success\"} 4\n"
                                       "t_seconds_count{code=\"Success\"} 3\n"
                                       "# HELP kube2iam_metrics_series_dropped_total Metric updates dropped "
                                       "because a family reached "
                                       "its series limit.\n"
                                       "# TYPE kube2iam_metrics_series_dropped_total counter\n"
                                       "kube2iam_metrics_series_dropped_total{family=\"t_hits_total\"} 0\n"
                                       "kube2iam_metrics_series_dropped_total{family=\"t_up\"} 0\n"
                                       "kube2iam_metrics_series_dropped_total{family=\"t_seconds\"} 0\n");
}

TEST(metrics_kube2iam_buckets_render_as_go_does) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_strbuf_ StrBuf out = {};
        MetricFamily *f;

        ASSERT_OK(metrics_new(&m));
        ASSERT_OK(metrics_add_family(m, "d", "D.", METRIC_HISTOGRAM, NULL, metrics_kube2iam_buckets, 14, 0,
                                     &f));
        ASSERT_OK(metrics_touch(f, NULL));
        ASSERT_OK(metrics_render(m, &out));
        ASSERT_NOT_NULL(strstr(strbuf_str(&out), "d_bucket{le=\"0.008\"} 0\n"));
        ASSERT_NOT_NULL(strstr(strbuf_str(&out), "d_bucket{le=\"8.192\"} 0\n"));
        ASSERT_NOT_NULL(strstr(strbuf_str(&out), "d_count 0\n"));
}

TEST(metrics_series_limit_drops_and_counts) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_strbuf_ StrBuf out = {};
        MetricFamily *f;
        char v[16];

        ASSERT_OK(metrics_new(&m));
        ASSERT_OK(metrics_add_family(m, "x_total", "X.", METRIC_COUNTER, (const char *const[]){ "k", NULL },
                                     NULL, 0, 3, &f));
        for (int i = 0; i < 5; i++) {
                snprintf(v, sizeof v, "v%d", i);
                if (i < 3)
                        ASSERT_OK(metrics_counter_inc(f, (const char *const[]){ v }));
                else
                        ASSERT_ERROR(metrics_counter_inc(f, (const char *const[]){ v }), -ENOSPC);
        }
        ASSERT_OK(metrics_counter_inc(f, (const char *const[]){ "v0" }));
        ASSERT_EQ(metrics_get(f, (const char *const[]){ "v0" }), 2);
        ASSERT_OK(metrics_render(m, &out));
        ASSERT_NOT_NULL(
                strstr(strbuf_str(&out), "kube2iam_metrics_series_dropped_total{family=\"x_total\"} 2\n"));
        ASSERT_NULL(strstr(strbuf_str(&out), "v3"));
}

TEST(metrics_reject_bad_definitions) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        static const double bad[] = { 1, 0.5 };
        MetricFamily *f;

        ASSERT_OK(metrics_new(&m));
        ASSERT_ERROR(metrics_add_family(m, "1bad", "x", METRIC_COUNTER, NULL, NULL, 0, 0, &f), -EINVAL);
        ASSERT_ERROR(metrics_add_family(m, "h", "x", METRIC_HISTOGRAM, NULL, bad, 2, 0, &f), -EINVAL);
        ASSERT_ERROR(metrics_add_family(m, "h", "x", METRIC_HISTOGRAM, (const char *const[]){ "le", NULL },
                                        metrics_kube2iam_buckets, 14, 0, &f),
                     -EINVAL);
        ASSERT_OK(metrics_add_family(m, "c", "x", METRIC_COUNTER, NULL, NULL, 0, 0, &f));
        ASSERT_ERROR(metrics_add_family(m, "c", "x", METRIC_COUNTER, NULL, NULL, 0, 0, &f), -EEXIST);
        ASSERT_ERROR(metrics_counter_add(f, NULL, -1), -EINVAL);
        ASSERT_ERROR(metrics_gauge_set(f, NULL, 1), -EINVAL);
}

TEST(process_stat_parse_reads_fields_after_a_name_with_spaces_and_parens) {
        static const char line[] =
                "4242 (kube (2) iam) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 125 0 0 20 0 1 0 98765 "
                "123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        ProcessStat st;

        ASSERT_OK(process_stat_parse(line, &st));
        ASSERT_UEQ(st.utime_ticks, 250);
        ASSERT_UEQ(st.stime_ticks, 125);
        ASSERT_UEQ(st.start_ticks, 98765);
        ASSERT_UEQ(st.vsize_bytes, 123456789);
        ASSERT_EQ(st.rss_pages, 2048);
        ASSERT_EQ(process_stat_parse("4242 (cut", &st), -EINVAL);
        ASSERT_EQ(process_stat_parse("4242 (x) S 1 2", &st), -EINVAL);
}

TEST(process_series_as_gos_default_registry_exports_them) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_strbuf_ StrBuf b = {};
        static const char *const names[] = { "process_cpu_seconds_total",
                                             "process_open_fds",
                                             "process_max_fds",
                                             "process_virtual_memory_bytes",
                                             "process_resident_memory_bytes",
                                             "process_start_time_seconds" };

        ASSERT_OK(metrics_new(&m));
        ASSERT_OK(process_metrics_register(m));
        ASSERT_OK(process_metrics_update(m));
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                ASSERT_NOT_NULL(metrics_find_family(m, names[i]));
        ASSERT_TRUE(metrics_get(metrics_find_family(m, "process_open_fds"), NULL) >= 3);
        /* qemu-user (the arm64 run: meson sets MESON_EXE_WRAPPER) writes /proc/self/stat itself,
         * with 0 for the resident set: there only the series' presence is checked */
        if (!getenv("MESON_EXE_WRAPPER"))
                ASSERT_TRUE(metrics_get(metrics_find_family(m, "process_resident_memory_bytes"), NULL) > 0);
        ASSERT_TRUE(metrics_get(metrics_find_family(m, "process_start_time_seconds"), NULL) > 1.6e9);
        ASSERT_OK(metrics_render(m, &b));
        ASSERT_NOT_NULL(strstr(b.s, "# TYPE process_cpu_seconds_total counter\n"));
}
