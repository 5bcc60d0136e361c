/* SPDX-License-Identifier: BSD-3-Clause */
/* The warm-restart snapshot parser: it reads what the fd store hands back, which a previous
 * (possibly broken) run wrote. The checksum would stop nearly every mutation at the door, so each
 * input is also tried with its trailer recomputed, which lets the record parser see it. Whatever
 * decodes must encode to a snapshot that decodes again. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_and_reencode(const uint8_t *data, size_t size) {
        Snapshot *s = NULL, *again = NULL;
        char *buf = NULL;
        size_t n = 0;

        if (snapshot_decode(data, size, &s) < 0)
                return;
        if (snapshot_encode(s, s->build, &buf, &n) < 0 || snapshot_decode(buf, n, &again) < 0 ||
            again->n_creds != s->n_creds || !again->token_key != !s->token_key)
                abort();
        erase_and_free_n(buf, n);
        snapshot_free(again);
        snapshot_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *copy;
        unsigned len = 0;

        if (size > 1024 * 1024)
                return 0;
        decode_and_reencode(data, size);
        if (size < SNAPSHOT_CHECKSUM_BYTES)
                return 0;
        copy = malloc(size);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (EVP_Digest(copy, size - SNAPSHOT_CHECKSUM_BYTES, copy + size - SNAPSHOT_CHECKSUM_BYTES, &len,
                       EVP_sha256(), NULL))
                decode_and_reencode(copy, size);
        free(copy);
        return 0;
}
