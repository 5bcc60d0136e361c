/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int main(int argc, char *argv[]) {
        Config c;
        int r;

        if (config_init(&c) < 0)
                return EXIT_FAILURE;
        r = config_parse(&c, CONFIG_PROGRAM_NFT, argc, argv);
        if (r < 0) {
                config_done(&c);
                return CONFIG_EXIT_USAGE;
        }
        if (c.show_help)
                config_help(CONFIG_PROGRAM_NFT, stdout);
        config_done(&c);
        return 0;
}
