/* SPDX-License-Identifier: BSD-3-Clause */
/* kube2iam-nft: installs, removes or checks the nftables redirect of the metadata service to
 * kube2iam (ExecStartPre=+kube2iam-nft install in kube2iam.service). The work is in redirect.c;
 * this maps its result to the exit statuses `--help` documents. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "nft/redirect.h"

static int run(const Config *c) {
        RedirectOptions o;
        int r;

        config_redirect_options(c, &o);
        if (streq(c->command, "install"))
                return redirect_exit_status(redirect_install(&o));
        if (streq(c->command, "remove"))
                return redirect_exit_status(redirect_remove(&o));
        r = redirect_check(&o);
        if (r < 0)
                return redirect_exit_status(r);
        return r > 0 ? REDIRECT_EXIT_OK : REDIRECT_EXIT_MISMATCH;
}

int main(int argc, char *argv[]) {
        Config c;
        int r;

        if (config_init(&c) < 0)
                return REDIRECT_EXIT_REJECTED;
        r = config_parse(&c, CONFIG_PROGRAM_NFT, argc, argv);
        if (r < 0) {
                config_done(&c);
                return r == -ENOMEM ? REDIRECT_EXIT_REJECTED : CONFIG_EXIT_USAGE;
        }
        if (c.show_help) {
                config_help(CONFIG_PROGRAM_NFT, stdout);
                config_done(&c);
                return 0;
        }
        if (c.show_version) {
                printf("Version: %s\n", KUBE2IAM_VERSION);
                config_done(&c);
                return 0;
        }
        log_set_max_level(c.log_level);
        log_set_format(c.log_json ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);

        r = run(&c);
        config_done(&c);
        return r;
}
