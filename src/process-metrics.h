/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The process_* series that Go's default Prometheus registry gave kube2iam (its process
 * collector), read from /proc/self on every scrape: dashboards built for kube2iam chart memory,
 * CPU, file descriptors and restarts from them. Owns only the reading and parsing of /proc; the
 * families live in the Metrics registry (metrics.h). */

#include <stdint.h>

typedef struct Metrics Metrics;

/* The fields of /proc/<pid>/stat that the series need (proc(5)). */
typedef struct ProcessStat {
        uint64_t utime_ticks; /* field 14 */
        uint64_t stime_ticks; /* field 15 */
        uint64_t start_ticks; /* field 22: after boot, in clock ticks */
        uint64_t vsize_bytes; /* field 23 */
        int64_t rss_pages;    /* field 24 */
} ProcessStat;

/* Parses one /proc/<pid>/stat line; the command name (field 2) may hold spaces and ')'. */
int process_stat_parse(const char *line, ProcessStat *ret);

/* Registers process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes and process_start_time_seconds. */
int process_metrics_register(Metrics *m);
/* Reads /proc/self and updates the series (call before rendering). */
int process_metrics_update(Metrics *m);
