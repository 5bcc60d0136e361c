/* SPDX-License-Identifier: BSD-3-Clause */
/* Go-syntax durations and RFC 3339 timestamps, as flags and peers write them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "time-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s, buf[DURATION_MAX];
        usec_t u;

        if (size > 4096)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (parse_duration(s, &u) >= 0) {
                usec_t again;
                /* what we print, we parse back to the same value */
                format_duration(u, buf, sizeof buf);
                if (parse_duration(buf, &again) < 0 || again != u)
                        abort();
        }
        (void) parse_timestamp_rfc3339(s, &u);
        free(s);
        return 0;
}
