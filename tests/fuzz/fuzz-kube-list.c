/* SPDX-License-Identifier: BSD-3-Clause */
/* A pod or namespace list page as the API server returns it, possibly cut off at our page limit:
 * kube_list_scan() must hand out item spans inside the input only, never read past it, and name
 * any object from its first bytes without crashing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube-object.h"
#include "log.h"
#include "watch-parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Span {
        const char *start, *end;
        size_t n_incomplete;
} Span;

static int on_item(const char *item, size_t len, bool complete, void *userdata) {
        Span *s = userdata;
        _cleanup_free_ char *who = NULL;

        if (item < s->start || len == 0 || len > (size_t) (s->end - item))
                abort();
        if (!complete && ++s->n_incomplete > 1)
                abort(); /* only the last item can be cut off */
        if (kube_object_identity(item, len, &who) < 0 || !who)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *copy = NULL;
        cJSON *meta = NULL;
        Span s;
        int r;

        if (size > 256 * 1024)
                return 0;
        log_set_max_level(LOG_EMERG);
        /* an exact-size heap copy, so that a read past the end is caught by ASan */
        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        s = (Span){ .start = copy, .end = copy + size };
        r = kube_list_scan(copy, size, on_item, &s, &meta);
        if (r != 0 && r != 1 && r != -EBADMSG)
                abort();
        if (r < 0 && meta)
                abort(); /* no ret_ output on failure */
        if ((r == 1) != (s.n_incomplete == 1))
                abort();
        cJSON_Delete(meta);
        return 0;
}
