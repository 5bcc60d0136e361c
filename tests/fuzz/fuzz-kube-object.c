/* SPDX-License-Identifier: BSD-3-Clause */
/* A single Pod or Namespace object as the API server returns it in a list or a watch event: the
 * conversions must reject garbage (wrong types, missing fields, huge arrays) without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube-object.h"
#include "log.h"
#include "watch-parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const KubeObjectKeys keys = {
                .role_key = "iam.amazonaws.com/role",
                .external_id_key = "iam.amazonaws.com/external-id",
                .namespace_key = "iam.amazonaws.com/allowed-roles",
                .default_role_key = KUBE_NAMESPACE_DEFAULT_ROLE_ANNOTATION,
        };
        _cleanup_(json_deletep) cJSON *j = NULL;
        KubeNamespaceFields f;
        KubeServiceAccountFields sa;
        KubePod *pod = NULL;

        if (size > 256 * 1024)
                return 0;
        log_set_max_level(LOG_EMERG);
        j = cJSON_ParseWithLength((const char *) data, size);
        if (!j)
                return 0;
        if (kube_pod_from_json(j, &keys, &pod) >= 0) {
                if (!pod || !pod->uid || !pod->namespace || !pod->name || !pod->phase)
                        abort();
                for (char **ip = pod->ips; ip && *ip; ip++)
                        if (strlen(*ip) == 0)
                                abort();
                kube_pod_free(pod);
        } else if (pod)
                abort(); /* no ret_ output on failure */
        if (kube_namespace_from_json(j, &keys, &f) >= 0 && !f.name)
                abort();
        if (kube_service_account_from_json(j, &sa) >= 0 && (isempty(sa.namespace) || isempty(sa.name)))
                abort();
        (void) kube_object_uid(j);
        return 0;
}
