# SPDX-License-Identifier: BSD-3-Clause
"""contrib/grafana: the dashboard is valid JSON and every metric it queries is one the daemon
exports (names taken from a live /metrics)."""

import json
import os
import re

from k2i_testlib import REPO

DASHBOARD = os.path.join(REPO, "contrib", "grafana", "kube2iam-dashboard.json")


def test_dashboard_queries_only_exported_metrics(node_env, daemon_factory):
    import http.client
    d = daemon_factory(node_env.daemon_args())
    c = http.client.HTTPConnection(d.host, d.port, timeout=10)
    c.request("GET", "/metrics")
    exported = c.getresponse().read().decode()
    names = set(re.findall(r"^# TYPE (\S+)", exported, re.M))
    series = set()
    for n in names:
        series |= {n, n + "_bucket", n + "_count", n + "_sum"}
    doc = json.load(open(DASHBOARD))
    assert doc["title"] == "kube2iam" and doc["panels"]
    used = set()
    for p in doc["panels"]:
        for t in p["targets"]:
            used |= set(re.findall(r"\b(kube2iam_[a-z0-9_]+)", t["expr"]))
    assert used, "no kube2iam metric queried"
    missing = used - series
    assert not missing, missing
