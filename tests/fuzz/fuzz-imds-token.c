/* SPDX-License-Identifier: BSD-3-Clause */
/* The IMDSv2 token checker and TTL header parser: both read what a pod sends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token-issuer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static TokenIssuer *t;
        unsigned ttl;
        char *s;

        if (size > 4096)
                return 0;
        if (!t && token_issuer_new(NULL, &t) < 0)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        /* a random input must never pass as a token */
        if (token_issuer_check(t, "10.0.0.1", s, 0) == 0)
                abort();
        (void) token_parse_ttl(s, &ttl);
        free(s);
        return 0;
}
