/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "restart-backoff.h"

/* "<failed starts in a row> <kind of the last start> <its CLOCK_BOOTTIME usec>\n" */
#define RESTART_BACKOFF_LINE_MAX 64U
/* Beyond this many failures in a row the pause stays at RESTART_BACKOFF_MAX; the count is kept
 * bounded so that the shift below cannot overflow. */
#define RESTART_BACKOFF_MAX_COUNT 32U

typedef struct History {
        unsigned failures; /* starts since the last clean exit or healthy run */
        unsigned kind;     /* RestartKind of the last start */
        usec_t started;    /* CLOCK_BOOTTIME */
} History;

/* *ret = NULL without a directory: no history is kept. */
static int history_path(const char *dir, char **ret) {
        *ret = NULL;
        if (!dir)
                return 0;
        return asprintf(ret, "%s/%s", dir, RESTART_BACKOFF_FILE) < 0 ? -ENOMEM : 0;
}

static int history_read(const char *path, History *ret) {
        char buf[RESTART_BACKOFF_LINE_MAX];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        uint64_t started;
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        if (sscanf(buf, "%u %u %" SCNu64, &ret->failures, &ret->kind, &started) != 3 ||
            ret->kind > RESTART_CONFIG_ERROR)
                return -EBADMSG;
        ret->started = started;
        if (ret->failures > RESTART_BACKOFF_MAX_COUNT)
                ret->failures = RESTART_BACKOFF_MAX_COUNT;
        return 0;
}

static int history_write(const char *path, const History *h) {
        char buf[RESTART_BACKOFF_LINE_MAX];
        _cleanup_free_ char *tmp = NULL;
        int n, r = 0;

        n = snprintf(buf, sizeof buf, "%u %u %" PRIu64 "\n", h->failures, h->kind, (uint64_t) h->started);
        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        {
                _cleanup_close_ int fd =
                        open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -errno;
                if (write(fd, buf, (size_t) n) != n)
                        r = errno > 0 ? -errno : -EIO;
        }
        /* rename: a crash while writing never leaves half a line */
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

static usec_t backoff_for(unsigned failures) {
        if (failures == 0)
                return 0;
        if (failures - 1 >= 8 * sizeof(usec_t) - 1 ||
            RESTART_BACKOFF_BASE << (failures - 1) > RESTART_BACKOFF_MAX)
                return RESTART_BACKOFF_MAX;
        return RESTART_BACKOFF_BASE << (failures - 1);
}

int restart_backoff_begin(const char *dir, RestartKind kind, usec_t now, usec_t *ret_delay) {
        _cleanup_free_ char *path = NULL;
        History h = {};
        unsigned failures = 0;
        int r;

        *ret_delay = 0;
        r = history_path(dir, &path);
        if (r < 0 || !path)
                return r;
        r = history_read(path, &h);
        if (r < 0 && r != -ENOENT)
                h = (History){}; /* unreadable: start afresh */
        else if (r >= 0 && h.failures > 0 && now >= h.started &&
                 now - h.started < RESTART_BACKOFF_HEALTHY_RUN &&
                 (kind == RESTART_CONFIG_ERROR) == (h.kind == RESTART_CONFIG_ERROR))
                failures = h.failures;
        *ret_delay = backoff_for(failures);
        /* this start counts as a failure until it exits cleanly or outlives the healthy run */
        h = (History){ .failures = failures < RESTART_BACKOFF_MAX_COUNT ? failures + 1 : failures,
                       .kind = kind,
                       .started = usec_add(now, *ret_delay) };
        return history_write(path, &h);
}

int restart_backoff_clean_exit(const char *dir) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = history_path(dir, &path);
        if (r < 0 || !path)
                return r;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
