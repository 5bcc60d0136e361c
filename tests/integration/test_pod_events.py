# SPDX-License-Identifier: BSD-3-Clause
"""--pod-events: a pod refused a role, or whose AssumeRole failed, gets one core/v1 Event that says
why (reason and message), posted with the node's identity (the kubelet's client certificate) to
the fake API server, which validates it as the API server does and records it. Pods are loopback
addresses (127.0.0.x)."""

import pytest

from k2i_testlib import caches_synced, http_get, metric_value, wait_namespaces, wait_until
from node_env import BASE_ARN

CREDS = "/latest/meta-data/iam/security-credentials/"


def start(node_env, daemon_factory, *extra):
    d = daemon_factory(node_env.daemon_args(f"--base-role-arn={BASE_ARN}", *extra))
    wait_until(lambda: caches_synced(d), what="pod cache sync")
    return d


def events(node_env, reason=None):
    with node_env.api.lock:
        return [e for e in node_env.api.events if reason is None or e["reason"] == reason]


def event_posts(node_env):
    with node_env.api.lock:
        return [r for r in node_env.api.requests if r[0] == "POST" and r[1].endswith("/events")]


def wait_events(node_env, reason, n=1):
    wait_until(lambda: len(events(node_env, reason)) >= n, what=f"{n} {reason} Event(s)")
    return events(node_env, reason)


def test_namespace_denial_posts_an_IAMRoleDenied_event_on_the_pod(node_env, daemon_factory):
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": '["other"]'})
    uid = node_env.add_pod("app", "127.0.0.4", role="app-role", namespace="restricted")
    d = start(node_env, daemon_factory, "--pod-events", "--namespace-restrictions")
    wait_namespaces(d)
    assert http_get(d, CREDS, source="127.0.0.4")[0] == 404

    (ev,) = wait_events(node_env, "IAMRoleDenied")
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "restricted",
                                    "name": "app", "uid": uid}
    assert ev["metadata"]["namespace"] == "restricted" and ev["type"] == "Warning"
    assert BASE_ARN + "app-role" in ev["message"] and "namespace restriction" in ev["message"]
    assert ev["source"] == {"component": "kube2iam", "host": node_env.node}
    assert ev["count"] == 1 and ev["firstTimestamp"] == ev["lastTimestamp"]
    # created with the node's identity: the kubelet's client certificate, as the watches
    assert all(who == "cert" for _, _, who in event_posts(node_env))
    assert not node_env.api.rejected_events


def test_sts_failure_posts_an_AssumeRoleFailed_event_with_the_sts_code(node_env, daemon_factory):
    node_env.sts.configure(deny_roles=[BASE_ARN + "forbidden"])
    node_env.add_pod("app", "127.0.0.8", role="forbidden")
    d = start(node_env, daemon_factory, "--pod-events")
    assert http_get(d, CREDS + "forbidden", source="127.0.0.8")[0] == 500

    (ev,) = wait_events(node_env, "AssumeRoleFailed")
    assert ev["involvedObject"]["name"] == "app"
    assert BASE_ARN + "forbidden" in ev["message"] and "AccessDenied" in ev["message"]
    for secret in node_env.secrets():
        assert secret not in ev["message"]


def test_a_flood_of_denials_posts_one_event_per_pod_and_reason(node_env, daemon_factory):
    node_env.add_pod("norole", "127.0.0.5")
    node_env.add_pod("app", "127.0.0.6", role="app-role")
    d = start(node_env, daemon_factory, "--pod-events")
    for _ in range(30):
        assert http_get(d, CREDS, source="127.0.0.5")[0] == 404
    (ev,) = wait_events(node_env, "IAMRoleNotFound")
    assert "no annotation iam.amazonaws.com/role" in ev["message"]
    # another pod's refusal, started after the flood, arrives: the flood's would have by then
    assert http_get(d, CREDS + "other-role", source="127.0.0.6")[0] == 403
    (mismatch,) = wait_events(node_env, "IAMRoleMismatch")
    assert "other-role" in mismatch["message"] and mismatch["involvedObject"]["name"] == "app"
    assert len(events(node_env, "IAMRoleNotFound")) == 1
    assert len(event_posts(node_env)) == 2
    # the de-duplicated 29 are neither posted nor dropped
    posted = 'kube2iam_pod_events_total{result="posted"}'
    wait_until(lambda: metric_value(d, posted) == 2, what="2 posted Events in /metrics")
    assert metric_value(d, 'kube2iam_pod_events_total{result="dropped"}') == 0


@pytest.mark.parametrize("flag", [[], ["--pod-events=false"]], ids=["default", "false"])
def test_without_the_flag_no_event_is_posted(node_env, daemon_factory, flag):
    node_env.add_pod("norole", "127.0.0.5")
    d = start(node_env, daemon_factory, *flag)
    assert http_get(d, CREDS, source="127.0.0.5")[0] == 404
    # the daemon would have started the POST before it answered; a later round trip on the
    # loop leaves time for it to reach the fake
    assert caches_synced(d)
    assert event_posts(node_env) == [] and events(node_env) == []
