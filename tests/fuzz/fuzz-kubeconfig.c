/* SPDX-License-Identifier: BSD-3-Clause */
/* The kubeconfig reader (YAML): a wrong file must give -EINVAL, never a crash or a half-filled result. */
#include <stdint.h>
#include <stdlib.h>

#include "kubeconfig.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        KubeConfig *k = NULL;
        int r;

        if (size > 64 * 1024)
                return 0;
        log_set_max_level(LOG_EMERG);
        r = kubeconfig_parse((const char *) data, size, size % 2 ? "/etc/kubernetes/kubelet.conf" : NULL,
                             &k);
        if (r >= 0) {
                if (!k || !k->server)
                        abort();
                kubeconfig_free(k);
        } else if (k)
                abort();
        return 0;
}
