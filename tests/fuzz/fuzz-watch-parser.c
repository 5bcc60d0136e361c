/* SPDX-License-Identifier: BSD-3-Clause */
/* The watch stream parser: the input is split into chunks at boundaries chosen by the input itself
 * (the first bytes), so one event spans chunks and one chunk holds several, as on the wire. Each
 * event's object also goes through the Pod and Namespace conversions the daemon applies to it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube-object.h"
#include "log.h"
#include "watch-parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A small limit so the fuzzer reaches -E2BIG without megabyte inputs. */
#define FUZZ_WATCH_EVENT_MAX 4096
/* Split descriptors taken from the head of the input. */
#define FUZZ_WATCH_SPLITS 16

static int on_event(const WatchEvent *ev, void *userdata) {
        static const KubeObjectKeys keys = {
                .role_key = "iam.amazonaws.com/role",
                .external_id_key = "iam.amazonaws.com/external-id",
                .namespace_key = "iam.amazonaws.com/allowed-roles",
        };
        unsigned *n = userdata;
        KubeNamespaceFields f;
        KubePod *pod = NULL;

        if (ev->type > WATCH_EVENT_ERROR || !watch_event_type_to_string(ev->type))
                abort();
        if (ev->type != WATCH_EVENT_ERROR && !ev->object)
                abort();
        if (ev->object) {
                if (kube_pod_from_json(ev->object, &keys, &pod) >= 0) {
                        if (!pod || !pod->uid || !pod->namespace || !pod->name)
                                abort();
                        kube_pod_free(pod);
                }
                if (kube_namespace_from_json(ev->object, &keys, &f) >= 0 && !f.name)
                        abort();
                (void) kube_object_uid(ev->object);
        }
        /* the handler may stop the stream; do so now and then to exercise that path */
        return ++*n % 7 == 0 ? -ECANCELED : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(watch_parser_freep) WatchParser *p = NULL;
        uint8_t splits[FUZZ_WATCH_SPLITS];
        size_t n_splits, off = 0, i = 0;
        unsigned events = 0;
        int r = 0;

        if (size > 256 * 1024)
                return 0;
        log_set_max_level(LOG_EMERG);
        n_splits = size < FUZZ_WATCH_SPLITS ? size : FUZZ_WATCH_SPLITS;
        memcpy(splits, data, n_splits);
        data += n_splits;
        size -= n_splits;

        if (watch_parser_new(FUZZ_WATCH_EVENT_MAX, &p) < 0)
                return 0;
        while (off < size) {
                size_t chunk = n_splits > 0 ? (size_t) splits[i++ % n_splits] + 1 : size;
                if (chunk > size - off)
                        chunk = size - off;
                r = watch_parser_feed(p, (const char *) data + off, chunk, on_event, &events);
                off += chunk;
                if (watch_parser_pending(p) > FUZZ_WATCH_EVENT_MAX)
                        abort();
                if (r < 0) {
                        /* what the client does: forget the stream, carry on with a new one */
                        watch_parser_reset(p);
                        if (watch_parser_pending(p) != 0)
                                abort();
                }
        }
        (void) watch_parser_finish(p, on_event, &events);
        return 0;
}
