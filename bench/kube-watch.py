#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Benchmark of the Kubernetes side (issue 4's "Done when" figures): the RSS of kube-watch
(KubeClient + Store, the daemon's Kubernetes half) with 250 pods on the node and 10,000
namespaces, and the rate at which watch events are applied to the store.

The fake API server (tests/fakes) holds the objects; kube-watch lists them over TLS with a
kubelet-style client certificate. For the rate, N pod updates are queued while the client is
disconnected, then the client re-watches and the server sends them as one burst of large
chunks; the rate is measured inside the client (first to last store change, CLOCK_MONOTONIC),
so it is the client's parse+apply speed, not the Python server's.

    /usr/bin/python3 bench/kube-watch.py [--pods 250] [--namespaces 10000] [--events 50000]

Set KUBE2IAM_BUILD_DIR to use another build (default: build/)."""

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))

from apiserver_harness import KubeWatch, kube_watch_binary, write_kubeconfig  # noqa: E402
from apiserver_pki import Pki  # noqa: E402
from fake_apiserver import FakeApiServer  # noqa: E402


def stats(kw):
    return kw.command("stats", "stats")["stats"]


def measure(pods, namespaces, events):
    """Runs kube-watch against a fake API server holding pods pods on the node and namespaces
    namespaces; returns the RSS figures (KiB), the initial sync time and the event rate."""
    a = argparse.Namespace(pods=pods, namespaces=namespaces, events=events)
    with tempfile.TemporaryDirectory() as d:
        pki = Pki(os.path.join(d, "pki"))
        srv = FakeApiServer(pki, tokens=set(), bookmark_interval=3600).start()
        try:
            cert, key, combined, _ = pki.issue_kubelet("kubelet")
            kc = os.path.join(d, "kubelet.conf")
            write_kubeconfig(kc, srv.url, ca=pki.ca_cert, cert=combined, key=combined)

            # baseline: an empty cluster
            kw0 = KubeWatch(["--kubeconfig", kc], env={"KUBE_WATCH_QUIET": "1"})
            kw0.wait_for(lambda o: o.get("event") == "status" and o.get("pods_synced") and
                         o.get("namespaces_synced"))
            rss_empty = stats(kw0)["rss_kb"]
            kw0.stop()

            uids = [srv.add_pod("pod-%d" % i, namespace="ns-%d" % (i % a.namespaces),
                                ip="10.%d.%d.%d" % (1 + i // 65536, (i // 256) % 256, i % 256),
                                role="role-%d" % i) for i in range(a.pods)]
            srv.add_namespaces_bulk("ns-%d" % i for i in range(a.namespaces))

            t0 = time.monotonic()
            kw = KubeWatch(["--kubeconfig", kc], env={"KUBE_WATCH_QUIET": "1"})
            kw.wait_for(lambda o: o.get("event") == "status" and o.get("pods_synced") and
                        o.get("namespaces_synced") and o.get("namespaces") == a.namespaces, timeout=120)
            sync_s = time.monotonic() - t0
            s = stats(kw)
            assert s["pods"] == a.pods and s["namespaces"] == a.namespaces, s
            rss_synced = s["rss_kb"]

            # the rate: queue N updates while the client is away, then let it catch up in one burst
            assert srv.wait_watches("pods")
            srv.stall_watches()
            for i in range(a.events):
                srv.update_pod(uids[i % a.pods], role="role-%d-v%d" % (i % a.pods, i // a.pods))
            srv.drop_watches()
            end = time.monotonic() + 300
            while time.monotonic() < end:
                s = stats(kw)
                if s["pods_changed"] >= a.events:
                    break
                time.sleep(0.2)
            assert s["pods_changed"] >= a.events, s
            elapsed = (s["last_change_usec"] - s["first_change_usec"]) / 1e6
            rate = (s["pods_changed"] - 1) / elapsed if elapsed > 0 else float("inf")
            rss_after = s["rss_kb"]
            kw.stop()
        finally:
            srv.stop()

    return {"rss_empty_kb": rss_empty, "rss_synced_kb": rss_synced, "rss_after_kb": rss_after,
            "sync_s": sync_s, "events": a.events, "events_s": elapsed, "events_per_s": rate}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=250)
    ap.add_argument("--namespaces", type=int, default=10000)
    ap.add_argument("--events", type=int, default=50000)
    a = ap.parse_args()
    if not os.path.exists(kube_watch_binary()):
        sys.exit("build %s first" % kube_watch_binary())
    m = measure(a.pods, a.namespaces, a.events)
    print("kube-watch (%s)" % kube_watch_binary())
    print("  RSS, empty cluster:                         %6d KiB" % m["rss_empty_kb"])
    print("  RSS, %d pods + %d namespaces synced:     %6d KiB" % (a.pods, a.namespaces, m["rss_synced_kb"]))
    print("  RSS after %d watch events:                %6d KiB" % (a.events, m["rss_after_kb"]))
    print("  initial list (pods + namespaces, TLS):      %6.2f s" % m["sync_s"])
    print("  watch events applied:                        %d in %.3f s = %.0f events/s" % (
        a.events, m["events_s"], m["events_per_s"]))


if __name__ == "__main__":
    main()
