/* SPDX-License-Identifier: BSD-3-Clause */
#include "kube-freshness.h"

KubeRefresh kube_refresh_classify(long http_status, bool transport_error, bool rejected) {
        if (rejected)
                return KUBE_REFRESH_FAILED;
        /* a load balancer or proxy in front of the API server says the server is down */
        if (http_status == 0 || http_status == 502 || http_status == 503 || http_status == 504)
                return KUBE_REFRESH_UNREACHABLE;
        /* a stream the server had accepted broke in transit: a network or restart problem, and the
         * next watch resumes from the same resourceVersion */
        if (http_status >= 200 && http_status < 300)
                return transport_error ? KUBE_REFRESH_UNREACHABLE : KUBE_REFRESH_CONFIRMED;
        return KUBE_REFRESH_FAILED;
}

void kube_freshness_record(KubeFreshness *f, KubeRefresh outcome, usec_t now) {
        switch (outcome) {
        case KUBE_REFRESH_CONFIRMED:
                f->failing_since = 0;
                break;
        case KUBE_REFRESH_FAILED:
                if (f->failing_since == 0)
                        f->failing_since = now > 0 ? now : 1;
                break;
        case KUBE_REFRESH_UNREACHABLE:
                /* neither starts nor stops the clock: an outage after an answered failure does not
                 * make the store any more current */
                break;
        }
}

usec_t kube_freshness_deadline(const KubeFreshness *f, usec_t max_stale) {
        return f->failing_since == 0 ? USEC_INFINITY : usec_add(f->failing_since, max_stale);
}

bool kube_freshness_stale(const KubeFreshness *f, usec_t now, usec_t max_stale) {
        return now >= kube_freshness_deadline(f, max_stale);
}
