/* SPDX-License-Identifier: BSD-3-Clause */
/* The upstream IMDS credentials document (JSON) the daemon reads for the node's own role. */
#include <stdint.h>
#include <stdlib.h>

#include "upstream-client.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Credentials *c = NULL;

        if (size > UPSTREAM_REPLY_MAX_BYTES)
                return 0;
        log_set_max_level(LOG_EMERG);
        if (upstream_parse_credentials((const char *) data, size, 1, &c) >= 0) {
                if (!c || !credentials_access_key_valid(c->access_key_id) || !c->secret_access_key)
                        abort();
                credentials_unref(c);
        } else if (c)
                abort();
        return 0;
}
