/* SPDX-License-Identifier: BSD-3-Clause */
/* Request targets as pods send them: decoding, path cleaning, route matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        RouterOptions o = { .debug = true, .metrics = true };
        RouteMatch m = {};
        char *s, *q;

        if (size > 70000)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        q = strchr(s, '?');
        if (q)
                *q++ = '\0';
        if (router_match(&o, s, q, &m) >= 0) {
                if (m.id == ROUTE_REDIRECT && !m.location)
                        abort();
                if (m.id == ROUTE_ROLE_CREDENTIALS && !m.role)
                        abort();
                route_match_done(&m);
        }
        free(router_clean_path(s));
        free(s);
        return 0;
}
