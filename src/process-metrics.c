/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics.h"
#include "process-metrics.h"
#include "string-util.h"

/* /proc/self/stat is one line of 52 numbers and a command name of at most 16 bytes; /proc/stat's
 * btime line is within its first few kilobytes on machines with hundreds of CPUs. */
#define PROC_STAT_LINE_MAX 1024
#define PROC_STAT_BTIME_SCAN_MAX (256 * 1024)

int process_stat_parse(const char *line, ProcessStat *ret) {
        const char *p = strrchr(line, ')');
        unsigned long long utime, stime, start, vsize;
        long long rss;

        /* after the name: state (3), then fields 4..24 */
        if (!p || sscanf(p + 1,
                         " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                         "%llu %llu %lld",
                         &utime, &stime, &start, &vsize, &rss) != 5)
                return -EINVAL;
        *ret = (ProcessStat){ .utime_ticks = utime,
                              .stime_ticks = stime,
                              .start_ticks = start,
                              .vsize_bytes = vsize,
                              .rss_pages = rss };
        return 0;
}

static int read_line(const char *path, char *buf, size_t size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");

        if (!f)
                return -errno;
        if (!fgets(buf, (int) size, f))
                return -EIO;
        return 0;
}

static int boot_time(uint64_t *ret) {
        _cleanup_fclose_ FILE *f = fopen("/proc/stat", "re");
        char line[PROC_STAT_LINE_MAX];
        size_t seen = 0;

        if (!f)
                return -errno;
        while (seen < PROC_STAT_BTIME_SCAN_MAX && fgets(line, sizeof line, f)) {
                unsigned long long b;
                seen += strlen(line);
                if (sscanf(line, "btime %llu", &b) == 1) {
                        *ret = b;
                        return 0;
                }
        }
        return -ENOENT;
}

static int count_fds(unsigned *ret) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        *ret = n > 0 ? n - 1 : 0; /* not the directory's own fd */
        return 0;
}

int process_metrics_register(Metrics *m) {
        static const struct {
                const char *name, *help;
                MetricType type;
        } families[] = {
                { "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                  METRIC_COUNTER },
                { "process_open_fds", "Number of open file descriptors.", METRIC_GAUGE },
                { "process_max_fds", "Maximum number of open file descriptors.", METRIC_GAUGE },
                { "process_virtual_memory_bytes", "Virtual memory size in bytes.", METRIC_GAUGE },
                { "process_resident_memory_bytes", "Resident memory size in bytes.", METRIC_GAUGE },
                { "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                  METRIC_GAUGE },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                r = metrics_add_family(m, families[i].name, families[i].help, families[i].type, NULL, NULL,
                                       0, 0, NULL);
                if (r < 0)
                        return r;
        }
        return process_metrics_update(m);
}

int process_metrics_update(Metrics *m) {
        char line[PROC_STAT_LINE_MAX];
        long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        MetricFamily *cpu = metrics_find_family(m, "process_cpu_seconds_total");
        struct rlimit rl;
        ProcessStat st;
        uint64_t btime = 0;
        unsigned fds = 0;
        double secs;
        int r;

        if (ticks <= 0 || page <= 0)
                return -EINVAL;
        r = read_line("/proc/self/stat", line, sizeof line);
        if (r >= 0)
                r = process_stat_parse(line, &st);
        if (r < 0)
                return r;
        /* a counter only goes up: add what was used since the last scrape (adding 0 creates the
         * series, so a process that has not used a clock tick yet still exports it) */
        secs = (double) (st.utime_ticks + st.stime_ticks) / (double) ticks;
        if (cpu)
                (void) metrics_counter_add(cpu, NULL, MAX(secs - metrics_get(cpu, NULL), 0.0));
        (void) metrics_gauge_set(metrics_find_family(m, "process_virtual_memory_bytes"), NULL,
                                 (double) st.vsize_bytes);
        (void) metrics_gauge_set(metrics_find_family(m, "process_resident_memory_bytes"), NULL,
                                 (double) st.rss_pages * (double) page);
        if (boot_time(&btime) >= 0)
                (void) metrics_gauge_set(metrics_find_family(m, "process_start_time_seconds"), NULL,
                                         (double) btime + (double) st.start_ticks / (double) ticks);
        if (count_fds(&fds) >= 0)
                (void) metrics_gauge_set(metrics_find_family(m, "process_open_fds"), NULL, (double) fds);
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0)
                (void) metrics_gauge_set(metrics_find_family(m, "process_max_fds"), NULL,
                                         rl.rlim_cur == RLIM_INFINITY ? -1 : (double) rl.rlim_cur);
        return 0;
}
