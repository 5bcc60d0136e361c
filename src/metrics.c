/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double metrics_kube2iam_buckets[14] = {
        0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
};

typedef struct Series Series;
struct Series {
        Series *next;
        char *values[METRICS_MAX_LABELS];
        double value; /* counter, gauge */
        double sum;   /* histogram */
        unsigned long long count;
        unsigned long long buckets[METRICS_MAX_BUCKETS];
};

struct MetricFamily {
        MetricFamily *next;
        Metrics *registry;
        char *name;
        char *help;
        MetricType type;
        char *labels[METRICS_MAX_LABELS];
        size_t n_labels;
        double bounds[METRICS_MAX_BUCKETS];
        size_t n_buckets;
        size_t max_series;
        size_t n_series;
        Series *series, *series_tail; /* in creation order, so output is stable */
        unsigned long long dropped;
};

struct Metrics {
        MetricFamily *families, *tail;
};

int metrics_new(Metrics **ret) {
        Metrics *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

static void series_free(Series *s, size_t n_labels) {
        for (size_t i = 0; i < n_labels; i++)
                free(s->values[i]);
        free(s);
}

static void family_free(MetricFamily *f) {
        while (f->series) {
                Series *n = f->series->next;
                series_free(f->series, f->n_labels);
                f->series = n;
        }
        for (size_t i = 0; i < f->n_labels; i++)
                free(f->labels[i]);
        free(f->name);
        free(f->help);
        free(f);
}

Metrics *metrics_free(Metrics *m) {
        if (!m)
                return NULL;
        while (m->families) {
                MetricFamily *n = m->families->next;
                family_free(m->families);
                m->families = n;
        }
        free(m);
        return NULL;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for labels. */
static bool name_valid(const char *s, bool label) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++) {
                bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                             (!label && *p == ':');
                if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
                        return false;
        }
        return !(label && startswith(s, "__"));
}

MetricFamily *metrics_find_family(Metrics *m, const char *name) {
        for (MetricFamily *f = m ? m->families : NULL; f; f = f->next)
                if (streq(f->name, name))
                        return f;
        return NULL;
}

int metrics_add_family(Metrics *m, const char *name, const char *help, MetricType type,
                       const char *const *label_names, const double *buckets, size_t n_buckets,
                       size_t max_series, MetricFamily **ret) {
        MetricFamily *f;

        if (!m || !name_valid(name, false) || !help)
                return -EINVAL;
        if (metrics_find_family(m, name))
                return -EEXIST;
        if (type == METRIC_HISTOGRAM ? (n_buckets == 0 || n_buckets > METRICS_MAX_BUCKETS || !buckets)
                                     : n_buckets != 0)
                return -EINVAL;
        for (size_t i = 1; i < n_buckets; i++)
                if (!(buckets[i] > buckets[i - 1]))
                        return -EINVAL;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->registry = m;
        f->type = type;
        f->max_series = max_series ?: METRICS_DEFAULT_MAX_SERIES;
        f->name = strdup(name);
        f->help = strdup(help);
        if (!f->name || !f->help) {
                family_free(f);
                return -ENOMEM;
        }
        for (size_t i = 0; label_names && label_names[i]; i++) {
                if (i >= METRICS_MAX_LABELS || !name_valid(label_names[i], true) ||
                    (type == METRIC_HISTOGRAM && streq(label_names[i], "le"))) {
                        family_free(f);
                        return -EINVAL;
                }
                f->labels[i] = strdup(label_names[i]);
                f->n_labels = i + 1;
                if (!f->labels[i]) {
                        family_free(f);
                        return -ENOMEM;
                }
        }
        if (n_buckets > 0)
                memcpy(f->bounds, buckets, n_buckets * sizeof(double));
        f->n_buckets = n_buckets;
        if (m->tail)
                m->tail->next = f;
        else
                m->families = f;
        m->tail = f;
        if (ret)
                *ret = f;
        return 0;
}

static bool series_matches(const MetricFamily *f, const Series *s, const char *const *values) {
        for (size_t i = 0; i < f->n_labels; i++)
                /* stored values are cut at the limit; compare the same prefix */
                if (strncmp(s->values[i], strempty(values[i]), METRICS_MAX_LABEL_VALUE) != 0)
                        return false;
        return true;
}

static int series_get(MetricFamily *f, const char *const *values, Series **ret) {
        Series *s;

        if (!f || (f->n_labels > 0 && !values))
                return -EINVAL;
        for (s = f->series; s; s = s->next)
                if (series_matches(f, s, values)) {
                        *ret = s;
                        return 0;
                }
        if (f->n_series >= f->max_series) {
                f->dropped++;
                return -ENOSPC;
        }
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < f->n_labels; i++) {
                s->values[i] = strndup(strempty(values[i]), METRICS_MAX_LABEL_VALUE);
                if (!s->values[i]) {
                        series_free(s, f->n_labels);
                        return -ENOMEM;
                }
        }
        if (f->series_tail)
                f->series_tail->next = s;
        else
                f->series = s;
        f->series_tail = s;
        f->n_series++;
        *ret = s;
        return 0;
}

int metrics_touch(MetricFamily *f, const char *const *label_values) {
        Series *s;
        return series_get(f, label_values, &s);
}

int metrics_counter_add(MetricFamily *f, const char *const *label_values, double v) {
        Series *s;
        int r;

        if (!f || f->type != METRIC_COUNTER || !(v >= 0))
                return -EINVAL;
        r = series_get(f, label_values, &s);
        if (r < 0)
                return r;
        s->value += v;
        return 0;
}

static int gauge_update(MetricFamily *f, const char *const *label_values, double v, bool add) {
        Series *s;
        int r;

        if (!f || f->type != METRIC_GAUGE)
                return -EINVAL;
        r = series_get(f, label_values, &s);
        if (r < 0)
                return r;
        s->value = add ? s->value + v : v;
        return 0;
}

int metrics_gauge_set(MetricFamily *f, const char *const *label_values, double v) {
        return gauge_update(f, label_values, v, false);
}

int metrics_gauge_add(MetricFamily *f, const char *const *label_values, double v) {
        return gauge_update(f, label_values, v, true);
}

int metrics_histogram_observe(MetricFamily *f, const char *const *label_values, double v) {
        Series *s;
        int r;

        if (!f || f->type != METRIC_HISTOGRAM || isnan(v))
                return -EINVAL;
        r = series_get(f, label_values, &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->n_buckets; i++)
                if (v <= f->bounds[i])
                        s->buckets[i]++;
        s->sum += v;
        s->count++;
        return 0;
}

double metrics_get(MetricFamily *f, const char *const *label_values) {
        for (Series *s = f ? f->series : NULL; s; s = s->next)
                if (series_matches(f, s, label_values))
                        return f->type == METRIC_HISTOGRAM ? (double) s->count : s->value;
        return 0;
}

/* The shortest representation that reads back as the same double, as Go's strconv does. */
static void append_number(StrBuf *out, double v) {
        char buf[64];

        if (isinf(v)) {
                strbuf_append(out, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        if (isnan(v)) {
                strbuf_append(out, "NaN");
                return;
        }
        for (int prec = 1; prec <= 17; prec++) {
                (void) snprintf(buf, sizeof buf, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        strbuf_append(out, buf);
}

static void append_escaped(StrBuf *out, const char *s, bool quote) {
        for (const char *p = s; *p; p++)
                if (*p == '\\')
                        strbuf_append(out, "\\\\");
                else if (*p == '\n')
                        strbuf_append(out, "\\n");
                else if (quote && *p == '"')
                        strbuf_append(out, "\\\"");
                else
                        strbuf_append_char(out, *p);
}

/* {a="x",b="y"[,le="0.5"]} */
static void append_labels(StrBuf *out, const MetricFamily *f, const Series *s, const char *le) {
        if (f->n_labels == 0 && !le)
                return;
        strbuf_append_char(out, '{');
        for (size_t i = 0; i < f->n_labels; i++) {
                strbuf_appendf(out, "%s%s=\"", i > 0 ? "," : "", f->labels[i]);
                append_escaped(out, s->values[i], true);
                strbuf_append_char(out, '"');
        }
        if (le)
                strbuf_appendf(out, "%sle=\"%s\"", f->n_labels > 0 ? "," : "", le);
        strbuf_append_char(out, '}');
}

static const char *type_name(MetricType t) {
        return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

int metrics_render(Metrics *m, StrBuf *out) {
        if (!m || !out)
                return -EINVAL;
        for (MetricFamily *f = m->families; f; f = f->next) {
                strbuf_appendf(out, "# HELP %s ", f->name);
                append_escaped(out, f->help, false);
                strbuf_appendf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
                for (Series *s = f->series; s; s = s->next) {
                        if (f->type != METRIC_HISTOGRAM) {
                                strbuf_append(out, f->name);
                                append_labels(out, f, s, NULL);
                                strbuf_append_char(out, ' ');
                                append_number(out, s->value);
                                strbuf_append_char(out, '\n');
                                continue;
                        }
                        for (size_t i = 0; i <= f->n_buckets; i++) {
                                StrBuf le = {};
                                if (i < f->n_buckets)
                                        append_number(&le, f->bounds[i]);
                                else
                                        strbuf_append(&le, "+Inf");
                                strbuf_appendf(out, "%s_bucket", f->name);
                                append_labels(out, f, s, strbuf_str(&le));
                                strbuf_appendf(out, " %llu\n", i < f->n_buckets ? s->buckets[i] : s->count);
                                strbuf_done(&le);
                        }
                        strbuf_appendf(out, "%s_sum", f->name);
                        append_labels(out, f, s, NULL);
                        strbuf_append_char(out, ' ');
                        append_number(out, s->sum);
                        strbuf_appendf(out, "\n%s_count", f->name);
                        append_labels(out, f, s, NULL);
                        strbuf_appendf(out, " %llu\n", s->count);
                }
        }
        strbuf_append(out,
                      "# HELP kube2iam_metrics_series_dropped_total Metric updates dropped because a family "
                      "reached its series limit.\n# TYPE kube2iam_metrics_series_dropped_total counter\n");
        for (MetricFamily *f = m->families; f; f = f->next)
                strbuf_appendf(out, "kube2iam_metrics_series_dropped_total{family=\"%s\"} %llu\n", f->name,
                               f->dropped);
        return strbuf_error(out);
}
