/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Metrics: a small Prometheus registry every module writes to, rendered in the text exposition
 * format 0.0.4 (HELP, TYPE, escaped label values, histograms as _bucket{le}/_sum/_count).
 * Owns the families (counter, gauge, histogram with fixed buckets) and their series. Series are
 * created on first use and bounded per family: beyond the limit a new series is not created, its
 * update is dropped and kube2iam_metrics_series_dropped_total{family} counts it, so a caller that
 * labels by something remote (a role ARN from a pod annotation) cannot grow memory without end.
 * Label values are ordinary strings; secrets never become labels. */

#include <stddef.h>

#include "string-util.h"

/* Prometheus practice: a handful of labels per family. */
#define METRICS_MAX_LABELS 4
/* Buckets of one histogram (kube2iam's have 14). */
#define METRICS_MAX_BUCKETS 32
/* Default series limit per family: the role ARNs of one node's pods, with a wide margin. */
#define METRICS_DEFAULT_MAX_SERIES 1000
/* Label values longer than this are cut: role ARNs are at most 2048 bytes. */
#define METRICS_MAX_LABEL_VALUE 2048

typedef enum MetricType {
        METRIC_COUNTER,
        METRIC_GAUGE,
        METRIC_HISTOGRAM,
} MetricType;

typedef struct Metrics Metrics;
typedef struct MetricFamily MetricFamily;

int metrics_new(Metrics **ret);
Metrics *metrics_free(Metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Metrics *, metrics_free);

/* label_names: NULL-terminated (NULL for none). buckets: ascending upper bounds, histograms only.
 * max_series 0 means METRICS_DEFAULT_MAX_SERIES. The family is owned by m. -EEXIST for a name
 * already registered, -EINVAL for a bad name, label or bucket list. */
int metrics_add_family(Metrics *m, const char *name, const char *help, MetricType type,
                       const char *const *label_names, const double *buckets, size_t n_buckets,
                       size_t max_series, MetricFamily **ret);
MetricFamily *metrics_find_family(Metrics *m, const char *name);

/* label_values: as many as the family has label names (NULL when it has none).
 * Return -ENOSPC when the series limit dropped the update. */
int metrics_counter_add(MetricFamily *f, const char *const *label_values, double v);
static inline int metrics_counter_inc(MetricFamily *f, const char *const *label_values) {
        return metrics_counter_add(f, label_values, 1);
}
int metrics_gauge_set(MetricFamily *f, const char *const *label_values, double v);
int metrics_gauge_add(MetricFamily *f, const char *const *label_values, double v);
int metrics_histogram_observe(MetricFamily *f, const char *const *label_values, double v);
/* Creates the series with zero values so it is exported before its first event (kube2iam
 * pre-initialises some). */
int metrics_touch(MetricFamily *f, const char *const *label_values);
/* The current value of a counter or gauge series, or the count of a histogram series; 0 when the
 * series does not exist. For tests and /debug. */
double metrics_get(MetricFamily *f, const char *const *label_values);

/* Appends the whole registry in text format 0.0.4. */
int metrics_render(Metrics *m, StrBuf *out);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* 0.001 * 2^k for k = 0..13: kube2iam's buckets for its duration histograms. */
extern const double metrics_kube2iam_buckets[14];
