# SPDX-License-Identifier: BSD-3-Clause
"""The pod store vouches only for what it can confirm (docs/pod-store.md), against the fake API
server (tests/fakes/fake_apiserver.py) and fake STS. A tenant's padded pods fill a list page past
our 64 MiB limit: lists recover with smaller pages, and after a routine 410 a pod of another
namespace that gets a deleted pod's address is never answered with the deleted pod's role. When
the API server answers but the list keeps failing, the store stops vouching after
--pod-store-max-stale and /healthz says cachesSynced false; when the API server cannot be reached
at all, the last view is served. Loopback only: pods are 127.0.0.x."""

import json
import time

from k2i_testlib import assert_clean_output, http_get, metric_value, wait_until
from node_env import BASE_ARN

CREDS = "/latest/meta-data/iam/security-credentials/"
# A request for an unknown address waits IMDS_SERVICE_CREDS_WAIT (5 s) for the pod, then 404;
# the socket deadline doubles it for a loaded machine.
DEADLINE = 10
# 47 pods of 1.45 MiB: 68 MiB, just over KUBE_LIST_PAGE_MAX_BYTES (64 MiB) in one page of 500,
# within etcd's default object limit of 1.5 MiB each (what a tenant can create).
PADDED_PODS = 47
PAD_BYTES = 1450 * 1024
# The bound used where the test waits for staleness: short, so the test is quick; long enough
# that the routine re-list in between is not mistaken for it on a loaded machine.
MAX_STALE = "2s"


def synced(d):
    return json.loads(http_get(d, "/healthz")[1])["cachesSynced"]


def role_of(d, ip):
    """The role the daemon names for a pod at ip, or the HTTP status when it names none."""
    status, body = http_get(d, CREDS, source=ip, timeout=DEADLINE)
    return body.decode().strip() if status == 200 else status


def start(env, daemon_factory, *extra, notify=None):
    d = daemon_factory(env.daemon_args(f"--base-role-arn={BASE_ARN}", *extra), notify=notify)
    wait_until(lambda: synced(d), timeout=60, what="pod cache sync")
    return d


def test_padded_pods_and_a_410_never_give_a_deleted_pods_ip_its_old_role(node_env, daemon_factory):
    env, api = node_env, node_env.api
    for ns in ("tenant", "payments", "web"):
        api.add_namespace(ns)
    old = env.add_pod("ledger", "127.0.0.5", role="payments-role", namespace="payments")
    d = start(env, daemon_factory)
    assert role_of(d, "127.0.0.5") == "payments-role"
    # a tenant creates padded pods; each arrives as a watch event within our per-event limit
    for i in range(PADDED_PODS):
        env.add_pod(f"padded-{i}", f"127.0.2.{i + 1}", namespace="tenant", pad_bytes=PAD_BYTES)
    wait_until(lambda: metric_value(d, "kube2iam_pods_known") == PADDED_PODS + 1, timeout=60,
               what="the padded pods' watch events")

    # a routine 410: the daemon must list again, through the padded pods
    mark = len(api.list_limits)
    api.send_in_stream_410()
    wait_until(lambda: len(api.list_limits) > mark, what="the re-list after 410")
    api.delete_pod(old)
    wait_until(lambda: metric_value(d, "kube2iam_pods_known") == PADDED_PODS, timeout=60,
               what="the daemon to drop the deleted pod (it keeps answering for it)")
    env.add_pod("frontend", "127.0.0.5", role="web-role", namespace="web")
    wait_until(lambda: role_of(d, "127.0.0.5") == "web-role", timeout=30, what="the new pod's own role")
    # never the deleted pod's role, by name or by its credentials
    assert http_get(d, CREDS + "payments-role", source="127.0.0.5", timeout=DEADLINE)[0] != 200
    assert synced(d)
    assert any(limit < 500 for limit in api.list_limits[mark:]), "the re-list never needed smaller pages"
    assert "asking for pages of" in d.output()
    assert_clean_output(d.output(), env)


def test_api_answering_but_list_failing_stops_vouching_after_the_bound(node_env, daemon_factory, notify_socket):
    env, api = node_env, node_env.api
    for ns in ("payments", "web"):
        api.add_namespace(ns)
    old = env.add_pod("ledger", "127.0.0.6", role="payments-role", namespace="payments")
    d = start(env, daemon_factory, f"--pod-store-max-stale={MAX_STALE}", notify=notify_socket)
    assert role_of(d, "127.0.0.6") == "payments-role"

    # every request now gets 500 (the API server answers; we cannot refresh), and a routine 410
    api.error_next = 10 ** 9
    api.send_in_stream_410()
    # meanwhile the pod goes and its address goes to a pod of another namespace; we cannot see it
    api.delete_pod(old)
    env.add_pod("frontend", "127.0.0.6", role="web-role", namespace="web")
    wait_until(lambda: not synced(d), timeout=30, what="cachesSynced false once the store is stale")
    assert role_of(d, "127.0.0.6") == 404
    status, body = http_get(d, CREDS + "payments-role", source="127.0.0.6", timeout=DEADLINE)
    assert status == 404 and b"AccessKeyId" not in body
    assert "could not be refreshed" in d.output()
    assert notify_socket.wait_for("STATUS=Serving; Pod list of node node-1 not refreshed for over 2s")

    # the API server works again: the new pod gets its own role
    api.error_next = 0
    wait_until(lambda: synced(d), timeout=60, what="cachesSynced true after a complete list")
    assert role_of(d, "127.0.0.6") == "web-role"
    assert "is current again" in d.output()
    # the last STATUS= (a snapshot push, FDNAME=..., may come after it)
    wait_until(lambda: [a for a in notify_socket.assignments() if a.startswith("STATUS=")][-1]
               .startswith("STATUS=Serving; Synced "), what="STATUS= back to Synced")
    assert_clean_output(d.output(), env)


def test_unreachable_api_server_keeps_serving_the_last_view(node_env, daemon_factory):
    env, api = node_env, node_env.api
    env.add_pod("app", "127.0.0.7", role="app-role")
    d = start(env, daemon_factory, "--pod-store-max-stale=1s")
    assert role_of(d, "127.0.0.7") == "app-role"

    api.pause()
    try:
        # several times the bound, with reconnects failing all along
        def n_failures():
            out = d.output()
            return out.count("Failed to watch pods") + out.count("Failed to list pods")
        wait_until(lambda: n_failures() >= 3, timeout=60, what="reconnects to fail")
        assert synced(d)
        assert role_of(d, "127.0.0.7") == "app-role"
    finally:
        api.resume()
    assert role_of(d, "127.0.0.7") == "app-role"
    assert "could not be refreshed" not in d.output()


def test_pod_over_the_object_limit_or_malformed_is_named_and_never_served_while_the_rest_refreshes(
        node_env, daemon_factory):
    env, api = node_env, node_env.api
    api.add_namespace("tenant")
    env.add_pod("app", "127.0.0.8", role="app-role")
    # 5 MiB: over KUBE_OBJECT_MAX_BYTES (4 MiB), under a page (a real etcd refuses it; a broken or
    # hostile API server need not)
    env.add_pod("huge", "127.0.0.9", role="tenant-role", namespace="tenant", pad_bytes=5 * 1024 * 1024)
    # and one we cannot read: a field of the wrong type
    env.add_pod("odd", "127.0.0.13", role="tenant-role", namespace="tenant", host_network="yes")
    d = start(env, daemon_factory)
    assert "Leaving pod tenant/huge uid " in d.output()
    assert "Leaving pod tenant/odd uid " in d.output() and "malformed" in d.output()
    assert role_of(d, "127.0.0.8") == "app-role"
    assert role_of(d, "127.0.0.9") == 404
    assert role_of(d, "127.0.0.13") == 404

    # its watch event is over the limit too: the daemon re-lists, and still leaves it out
    mark = len(api.list_limits)
    env.add_pod("huge-2", "127.0.0.10", role="tenant-role", namespace="tenant", pad_bytes=5 * 1024 * 1024)
    env.add_pod("late", "127.0.0.11", role="late-role")
    wait_until(lambda: len(api.list_limits) > mark, what="the re-list after an event over the limit")
    wait_until(lambda: role_of(d, "127.0.0.11") == "late-role", timeout=30, what="the pod added meanwhile")
    assert "Leaving pod tenant/huge-2 uid " in d.output()
    assert role_of(d, "127.0.0.10") == 404
    assert synced(d)


def test_watch_accepted_after_a_failure_keeps_a_quiet_store_current(node_env, daemon_factory):
    """A server that sends no bookmarks and a node where nothing changes: after one failed watch
    request, the next watch being accepted is what confirms the store."""
    env, api = node_env, node_env.api
    env.add_pod("app", "127.0.0.12", role="app-role")
    d = start(env, daemon_factory, "--pod-store-max-stale=3s")
    api.bookmark_interval = 3600
    api.error_only = "/api/v1/pods"
    api.error_next = 1
    api.drop_watches()
    wait_until(lambda: api.error_next == 0 and api.n_watches("pods") == 1, what="the watch to be accepted again")
    time.sleep(4)  # past the bound, with no event and no bookmark since the failure
    assert synced(d)
    assert role_of(d, "127.0.0.12") == "app-role"
