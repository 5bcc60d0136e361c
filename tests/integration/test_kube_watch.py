# SPDX-License-Identifier: BSD-3-Clause
"""The Kubernetes side (kube-client + store, through tests/tools/kube-watch) against the fake API
server: authentication forms, re-lists, reconnects, RBAC gaps, late kubeconfig, IP reuse.
Loopback only. Run: /usr/bin/python3 -m pytest tests/integration/test_kube_watch.py"""

import os
import stat
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))

from apiserver_harness import KubeWatch, kube_watch_binary, write_kubeconfig  # noqa: E402
from apiserver_pki import Pki  # noqa: E402
from fake_apiserver import FakeApiServer  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(kube_watch_binary()),
                                reason="build tests/tools/kube-watch first (ninja -C build)")

ROLE = "arn:aws:iam::123456789012:role/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki):
    srv = FakeApiServer(pki, tokens={"good-token"}).start()
    yield srv
    srv.stop()


@pytest.fixture
def watchers():
    started = []

    def start(args, env=None):
        kw = KubeWatch(args, env)
        started.append(kw)
        return kw
    yield start
    reports = []
    for kw in started:
        reports += kw.stop()
    assert not reports, "".join(reports)  # an ASan build (KUBE2IAM_BUILD_DIR) reports here


def kubelet_kubeconfig(tmp_path, server, pki, name="kubelet"):
    """A kubeadm-style kubeconfig: CA file and kubelet-client-current.pem holding cert and key."""
    cert, key, combined, serial = pki.issue_kubelet(name)
    pem = str(tmp_path / "kubelet-client-current.pem")
    with open(pem, "w") as f:
        f.write(open(combined).read())
    os.chmod(pem, 0o600)
    path = str(tmp_path / "kubelet.conf")
    write_kubeconfig(path, server.url, ca=pki.ca_cert, cert=pem, key=pem)
    return path, pem, serial


def is_event(kind, name):
    return lambda o: o.get("event") == kind and o.get("name") == name


def test_client_certificate_auth_lists_and_watches_pods_of_this_node(tmp_path, server, pki, watchers):
    server.add_pod("before", ip="10.0.0.5", role=ROLE + "before")
    server.add_pod("elsewhere", node="node-2", ip="10.0.0.99", role=ROLE + "other")
    server.add_namespace("default", {"iam.amazonaws.com/allowed-roles": '["before"]'})
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert kw.lookup("10.0.0.5")["role"] == ROLE + "before"
    assert kw.lookup("10.0.0.99")["status"] == "not_found"  # another node's pod is not listed
    assert all(who == "cert" for (_, _, who) in server.requests)
    assert any("fieldSelector=spec.nodeName%3Dnode-1" in p for (_, p, _) in server.requests)

    assert server.wait_watches("pods")
    uid = server.add_pod("during", ip="10.0.0.6", role=ROLE + "during")
    kw.wait_for(is_event("added", "during"))
    assert kw.lookup("10.0.0.6")["role"] == ROLE + "during"
    server.delete_pod(uid)
    kw.wait_for(is_event("removed", "during"))
    lk = kw.lookup("10.0.0.6")
    assert lk["status"] == "not_found"
    assert lk["error"] == 'pod with specificed IP "10.0.0.6" not found'

    kw.wait_for(lambda o: o.get("event") == "status" and o.get("namespaces_synced"))
    dump = kw.command("dump", "debug_store")["debug_store"]
    assert dump == {"namespaceByIP": {"10.0.0.5": "default"}, "rolesByIP": {"10.0.0.5": ROLE + "before"},
                    "rolesByNamespace": {"default": ["before"]}}


def test_token_auth_and_token_file(tmp_path, server, pki, watchers):
    server.add_pod("p", ip="10.0.1.1", role="r")
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="good-token")
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert kw.lookup("10.0.1.1")["role"] == "r"
    assert {who for (_, _, who) in server.requests} == {"token"}

    token_file = tmp_path / "token"
    token_file.write_text("good-token\n")
    path2 = str(tmp_path / "kubeconfig2")
    write_kubeconfig(path2, server.url, ca=pki.ca_cert, token_file=str(token_file))
    kw2 = watchers(["--kubeconfig", path2])
    kw2.wait_synced()
    assert kw2.lookup("10.0.1.1")["role"] == "r"


def test_wrong_token_is_not_served_and_retried(tmp_path, server, pki, watchers):
    server.add_pod("p", ip="10.0.1.2", role="r")
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="bad-token")
    kw = watchers(["--kubeconfig", path])
    kw.wait_for(lambda o: o.get("event") == "status" and "401" in o.get("status", ""))
    assert kw.lookup("10.0.1.2")["status"] == "not_found"
    # the operator fixes the kubeconfig: the next retry picks it up
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="good-token")
    kw.wait_synced(timeout=60)
    assert kw.lookup("10.0.1.2")["role"] == "r"


def test_exec_plugin_token_cached_and_rerun_on_401(tmp_path, server, pki, watchers):
    server.add_pod("p", ip="10.0.2.1", role="r")
    counter = tmp_path / "runs"
    plugin = tmp_path / "get-token"
    plugin.write_text("#!/bin/sh\n"
                      "echo run >> %s\n"
                      "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 2;; esac\n"
                      "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
                      "\"status\":{\"token\":\"'$TOKEN_FROM_ENV'\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}'\n"
                      % counter)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server.url, ca=pki.ca_cert, exec_command=str(plugin), exec_args=["eks", "get-token"],
                     exec_env={"TOKEN_FROM_ENV": "good-token"})
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert kw.lookup("10.0.2.1")["role"] == "r"
    assert server.wait_watches("pods") and server.wait_watches("namespaces")
    runs = len(counter.read_text().split())
    assert runs == 1  # cached: the pod list, the namespace list and both watches shared one run

    server.unauthorized_next = 1
    server.drop_watches()
    server.add_pod("q", ip="10.0.2.2", role="r2")
    kw.wait_for(is_event("added", "q"))
    # The 401 may land on the namespace watch while the pod watch, still on the cached token, delivers q
    # first: the rerun then follows q. Wait for it rather than assume an order between the two watches.
    deadline = time.monotonic() + 20
    while len(counter.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.unauthorized_next == 0
    assert len(counter.read_text().split()) >= 2  # the 401 made it run again


def test_certificate_rotation_is_picked_up_without_restart(tmp_path, server, pki, watchers):
    path, pem, serial1 = kubelet_kubeconfig(tmp_path, server, pki)
    server.node_cert_serials = {serial1}
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert server.wait_watches("pods")

    # kubelet rotates: a new certificate in the same file; the API server stops accepting the old one
    _, _, combined2, serial2 = pki.issue_kubelet("kubelet-rotated")
    tmp = pem + ".new"
    with open(tmp, "w") as f:
        f.write(open(combined2).read())
    os.rename(tmp, pem)
    server.node_cert_serials = {serial2}
    server.drop_watches()
    server.add_pod("after-rotation", ip="10.0.3.1", role="r")
    kw.wait_for(is_event("added", "after-rotation"))
    assert kw.lookup("10.0.3.1")["role"] == "r"


def test_http_410_relists_and_drops_pods_deleted_meanwhile(tmp_path, server, pki, watchers):
    gone = server.add_pod("gone", ip="10.0.4.1", role="old")
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert kw.lookup("10.0.4.1")["role"] == "old"
    assert server.wait_watches("pods")
    lists_before = len([p for (_, p, _) in server.requests if "/pods" in p and "watch=1" not in p])

    # silent watches: neither "new" nor a bookmark may move the daemon's resourceVersion past the
    # compaction (a watch from the compacted resourceVersion itself is valid, and no 410 would come)
    server.stall_watches()
    server.delete_pod(gone, silently=True)  # the watch never hears of it
    server.add_pod("new", ip="10.0.4.2", role="new")
    server.compact()
    server.drop_watches()  # the re-watch from the old resourceVersion gets HTTP 410
    kw.wait_for(is_event("removed", "gone"))
    kw.wait_for(is_event("added", "new"))
    assert kw.lookup("10.0.4.1")["status"] == "not_found"
    lists_after = len([p for (_, p, _) in server.requests if "/pods" in p and "watch=1" not in p])
    assert lists_after > lists_before


def test_in_stream_410_relists(tmp_path, server, pki, watchers):
    gone = server.add_pod("gone", ip="10.0.5.1", role="old")
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert server.wait_watches("pods")
    server.delete_pod(gone, silently=True)
    server.send_in_stream_410()
    kw.wait_for(is_event("removed", "gone"))
    assert kw.lookup("10.0.5.1")["status"] == "not_found"


def test_dropped_and_stalled_streams_reconnect(tmp_path, server, pki, watchers):
    server.bookmark_interval = 3600  # silence means a stall, not a quiet cluster
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path], env={"KUBE_WATCH_IDLE_SEC": "2"})
    kw.wait_synced()
    assert server.wait_watches("pods")

    server.drop_watches()
    server.add_pod("after-drop", ip="10.0.6.1", role="r")
    kw.wait_for(is_event("added", "after-drop"))

    assert server.wait_watches("pods")
    watches_before = len([p for (_, p, _) in server.requests if "/pods" in p and "watch=1" in p])
    server.stall_watches()
    server.add_pod("after-stall", ip="10.0.6.2", role="r")  # queued on the stalled stream
    kw.wait_for(is_event("added", "after-stall"), timeout=30)
    watches_after = len([p for (_, p, _) in server.requests if "/pods" in p and "watch=1" in p])
    assert watches_after > watches_before


def test_namespaces_forbidden_keeps_serving_pods_and_says_which_rbac(tmp_path, server, pki, watchers):
    server.forbid_namespaces = True
    server.add_namespace("default", {"iam.amazonaws.com/allowed-roles": '["r"]'})
    server.add_pod("p", ip="10.0.7.1", role="r")
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    st = kw.wait_for(lambda o: o.get("event") == "status" and o.get("namespaces_forbidden") and o.get("pods_synced"))
    assert "RBAC" in st["status"]
    assert kw.lookup("10.0.7.1")["role"] == "r"
    assert kw.command("dump", "debug_store")["debug_store"]["rolesByNamespace"] == {}
    # stderr is read by another thread: wait for the line rather than for a second
    said = lambda: any("namespaces" in line and "403" in line and "contrib/" in line for line in kw.stderr)  # noqa: E731
    deadline = time.monotonic() + 10
    while not said() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert said(), "".join(kw.stderr[-20:])


def test_kubeconfig_that_appears_later_is_used(tmp_path, server, pki, watchers):
    server.add_pod("p", ip="10.0.8.1", role="r")
    path = str(tmp_path / "kubeconfig")
    kw = watchers(["--kubeconfig", path])
    st = kw.wait_for(lambda o: o.get("event") == "status")
    assert "Waiting for kubeconfig" in st["status"] and path in st["status"]
    assert kw.lookup("10.0.8.1")["status"] == "not_found"
    time.sleep(5)  # kubelet's TLS bootstrap takes a while
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="good-token")
    kw.wait_synced()
    assert kw.lookup("10.0.8.1")["role"] == "r"


def test_pod_ip_reuse_never_serves_old_pod(tmp_path, server, pki, watchers):
    old = server.add_pod("old", ip="10.0.9.1", role="old-role")
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert server.wait_watches("pods")
    # the old pod's DELETED is lost; a new pod gets its IP
    server.delete_pod(old, silently=True)
    server.add_pod("new", ip="10.0.9.1", role="new-role")
    kw.wait_for(is_event("added", "new"))
    lk = kw.lookup("10.0.9.1")
    assert lk["status"] == "ambiguous"  # never the old role
    assert lk["error"] in ("2 pods ([old new]) with the ip 10.0.9.1 indexed",
                           "2 pods ([new old]) with the ip 10.0.9.1 indexed")
    # a re-list settles it
    server.send_in_stream_410()
    kw.wait_for(is_event("removed", "old"))
    assert kw.lookup("10.0.9.1")["role"] == "new-role"

    # terminating old pod + live new pod: the live one wins
    older = server.add_pod("older", ip="10.0.9.2", role="old-role")
    kw.wait_for(is_event("added", "older"))
    server.update_pod(older, deleting=True)
    server.add_pod("newer", ip="10.0.9.2", role="new-role")
    kw.wait_for(is_event("added", "newer"))
    assert kw.lookup("10.0.9.2")["role"] == "new-role"


def test_paged_list_and_live_resolve(tmp_path, pki, watchers):
    srv = FakeApiServer(pki, tokens={"good-token"}, page_size=2).start()
    try:
        for i in range(7):
            srv.add_pod("p%d" % i, ip="10.0.10.%d" % i, role="r%d" % i)
        path = str(tmp_path / "kubeconfig")
        write_kubeconfig(path, srv.url, ca=pki.ca_cert, token="good-token")
        kw = watchers(["--kubeconfig", path])
        kw.wait_synced()
        assert kw.wait_for(lambda o: o.get("event") == "status" and o.get("pods") == 7)
        assert any("continue=" in p for (_, p, _) in srv.requests)
        for i in range(7):
            assert kw.lookup("10.0.10.%d" % i)["role"] == "r%d" % i
        res = kw.command("resolve 10.0.10.3", "resolve")
        assert res["error"] == 0 and res["name"] == "p3"
        res = kw.command("resolve 10.9.9.9", "resolve")
        assert res["error"] < 0
    finally:
        srv.stop()


def test_malformed_event_forces_relist(tmp_path, server, pki, watchers):
    gone = server.add_pod("gone", ip="10.0.11.1", role="old")
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert server.wait_watches("pods")
    server.delete_pod(gone, silently=True)
    server.send_raw('{"type":"ADDED","object":{"metadata":{"name":"x"}}\n')  # not JSON: one brace short
    kw.wait_for(is_event("removed", "gone"))
    assert any("Malformed pods watch stream" in line for line in kw.stderr)


def test_observers_may_start_transfers(tmp_path, server, pki, watchers):
    """The credential prefetch starts STS calls from the pod observer: that must work while the
    event came in on a watch stream (libcurl refuses new transfers from its own callbacks)."""
    path, _, _ = kubelet_kubeconfig(tmp_path, server, pki)
    kw = watchers(["--kubeconfig", path], env={"KUBE_WATCH_RESOLVE_ON_ADD": "1"})
    kw.wait_synced()
    assert server.wait_watches("pods")
    server.add_pod("watched", ip="10.0.12.1", role="r")
    res = kw.wait_for(lambda o: o.get("resolve") == "10.0.12.1")
    assert res["error"] == 0 and res["name"] == "watched"


def test_expired_continue_token_restarts_the_list(tmp_path, pki, watchers):
    srv = FakeApiServer(pki, tokens={"good-token"}, page_size=2).start()
    try:
        for i in range(5):
            srv.add_pod("p%d" % i, ip="10.0.13.%d" % i, role="r")
        srv.expire_next_continue = True
        path = str(tmp_path / "kubeconfig")
        write_kubeconfig(path, srv.url, ca=pki.ca_cert, token="good-token")
        kw = watchers(["--kubeconfig", path])
        kw.wait_for(lambda o: o.get("event") == "status" and o.get("pods_synced") and o.get("pods") == 5)
        assert any("continue token expired" in line for line in kw.stderr)
    finally:
        srv.stop()


def test_throttled_requests_wait_and_recover(tmp_path, server, pki, watchers):
    server.add_pod("p", ip="10.0.14.1", role="r")
    server.throttle_next = 3
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="good-token")
    kw = watchers(["--kubeconfig", path])
    kw.wait_synced()
    assert kw.lookup("10.0.14.1")["role"] == "r"
    assert any("429" in line for line in kw.stderr)


def test_kubeconfig_ca_is_the_only_trust_anchor(tmp_path, server, pki, watchers):
    """The kubeconfig's CA is what the API server is checked against, not the system bundle or
    nothing: with another CA in the kubeconfig, no pod is ever listed. Also proves the
    CURLOPT_SSL_CTX_FUNCTION path (libcurl < 7.77, RHEL 9) when built with -Dcurl_ca_callback=true."""
    server.add_pod("p", ip="10.0.9.1", role="r")
    other = Pki(tmp_path / "other-pki")
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server.url, ca=other.ca_cert, token="good-token")
    kw = watchers(["--kubeconfig", path])
    kw.wait_for(lambda o: o.get("event") == "status" and "pods_synced" in o)
    time.sleep(1.5)  # several connection attempts: none may succeed
    assert not any(o.get("event") == "status" and o.get("pods_synced") for o in kw.lines)
    assert server.requests == []
    # the right CA in the same kind of kubeconfig: listed
    write_kubeconfig(path, server.url, ca=pki.ca_cert, token="good-token")
    kw2 = watchers(["--kubeconfig", path])
    kw2.wait_synced()
    assert kw2.lookup("10.0.9.1")["role"] == "r"
