# SPDX-License-Identifier: BSD-3-Clause
"""The metrics that say whether credentials are healthy, read from a live /metrics."""

import json
import re

from k2i_testlib import http_get, wait_until
from node_env import BASE_ARN


def test_remaining_lifetime_of_credentials_handed_out_is_a_histogram(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.2", role="app-role")
    d = daemon_factory(node_env.daemon_args(f"--base-role-arn={BASE_ARN}"))
    wait_until(lambda: json.loads(http_get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    for _ in range(3):
        status, body = http_get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.2")
        assert status == 200, body
    text = http_get(d, "/metrics")[1].decode()
    assert "# TYPE kube2iam_credentials_remaining_seconds histogram" in text
    count = float(re.search(r"^kube2iam_credentials_remaining_seconds_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^kube2iam_credentials_remaining_seconds_sum (\S+)$", text, re.M).group(1))
    assert count == 3
    # fresh credentials: each had most of its life left (the fake STS issues an hour by default)
    assert 3 * 600 < total <= 3 * 43200
    below_60 = float(re.search(r'^kube2iam_credentials_remaining_seconds_bucket\{le="6e\+01"\} (\S+)$', text,
                               re.M).group(1))
    assert below_60 == 0


def test_time_requests_waited_for_their_pod_is_a_histogram(node_env, daemon_factory):
    d = daemon_factory(node_env.daemon_args(f"--base-role-arn={BASE_ARN}", "--backoff-max-elapsed-time=300ms",
                                            "--backoff-max-interval=100ms"))
    wait_until(lambda: json.loads(http_get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    # no pod has this address: the request waits for one until its deadline
    status, _ = http_get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.9")
    assert status == 404
    text = http_get(d, "/metrics")[1].decode()
    assert "# TYPE kube2iam_pod_wait_seconds histogram" in text
    count = float(re.search(r"^kube2iam_pod_wait_seconds_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^kube2iam_pod_wait_seconds_sum (\S+)$", text, re.M).group(1))
    assert count == 1
    assert total >= 0.25


def test_proxied_requests_count_by_category_and_status_and_time_the_upstream(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.2")
    d = daemon_factory(node_env.daemon_args())
    wait_until(lambda: json.loads(http_get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    assert http_get(d, "/latest/meta-data/instance-id", source="127.0.0.2")[0] == 200
    assert http_get(d, "/latest/meta-data/block-device-mapping/ephemeral9", source="127.0.0.2")[0] == 404
    text = http_get(d, "/metrics")[1].decode()
    assert re.search(r'^kube2iam_proxy_requests_total\{category="meta-data",status="200"\} 1$', text, re.M), text
    assert re.search(r'^kube2iam_proxy_requests_total\{category="meta-data",status="404"\} 1$', text, re.M)
    count = float(re.search(r"^kube2iam_upstream_imds_duration_seconds_count (\S+)$", text, re.M).group(1))
    assert count == 2
