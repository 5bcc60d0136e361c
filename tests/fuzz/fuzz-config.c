/* SPDX-License-Identifier: BSD-3-Clause */
/* The flag parser: $KUBE2IAM_ARGS is split like a shell would, then parsed with argv. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FILE *devnull;
        char *s, *argv[] = { (char *) "kube2iam", NULL };
        FILE *saved;
        Config c;

        if (size > 8192)
                return 0;
        if (!devnull)
                devnull = fopen("/dev/null", "w");
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (config_init(&c) >= 0) {
                saved = stderr;
                stderr = devnull ?: saved;
                (void) config_parse_strv(&c, size % 2 ? CONFIG_PROGRAM_NFT : CONFIG_PROGRAM_DAEMON, s, 1,
                                         argv);
                stderr = saved;
                config_done(&c);
        }
        free(s);
        return 0;
}
