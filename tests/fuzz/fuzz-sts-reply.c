/* SPDX-License-Identifier: BSD-3-Clause */
/* The STS AssumeRole reply parser (XML), success and error paths: the first input byte picks the
 * HTTP status the body came with, so one body is tried as a 200 and as the error statuses STS sends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const long statuses[] = { 200, 400, 403, 500, 503, 0, 200, 429 };
        Credentials *c = NULL;
        StsError *e = NULL;
        long status;

        if (size < 1 || size > 256 * 1024)
                return 0;
        log_set_max_level(LOG_EMERG);
        status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
        if (sts_reply_parse((const char *) data + 1, size - 1, status, 1, &c, &e) < 0)
                return 0;
        /* exactly one of the two is set */
        if (!!c == !!e)
                abort();
        if (c) {
                if (status != 200 || !credentials_access_key_valid(c->access_key_id) ||
                    !c->secret_access_key)
                        abort();
                credentials_unref(c);
        }
        if (e) {
                if (!e->code || strlen(e->code) > STS_ERROR_CODE_MAX ||
                    (e->message && strlen(e->message) > STS_ERROR_MESSAGE_MAX))
                        abort();
                if (e->class > STS_ERROR_DENIED)
                        abort();
                sts_error_free(e);
        }
        return 0;
}
