# SPDX-License-Identifier: BSD-3-Clause
"""Warm restarts through systemd's fd store (issue 16, docs/warm-restart.md), on loopback: a stand-in
for PID 1's notify socket keeps what the daemon stores (FDSTORE=1, FDNAME=, FDSTOREREMOVE=1, BARRIER=1)
and hands it to the next run the way systemd does (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID). The
same behaviour under the real systemd 252 is proven by tests/nspawn."""

import hashlib
import json
import os
import fcntl
import struct
import time

import pytest

from k2i_testlib import Daemon, FdStore, assert_no_secrets, wait_until
from node_env import BASE_ARN

from test_credentials import FAST, get, served_by_sts
from test_explain import explain, explain_json

POD_IP = "127.0.0.1"
CREDS = "/latest/meta-data/iam/security-credentials/app-role"


def start(node_env, store, runtime_dir, wait_synced=True, extra=()):
    """A run of the daemon handed what the store holds, as systemd hands it over."""
    env, fds = store.handoff_env()
    env["RUNTIME_DIRECTORY"] = runtime_dir
    # --log-level=warning: the restore must not depend on what is logged (it once sat inside log_info())
    args = node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}", "--log-level=warning", *extra)
    d = Daemon(args, env=env, notify=store, wait=False, fds=fds)
    wait_until(lambda: store.wait_for("READY=1", timeout=0.1) or d.proc.poll() is not None, timeout=30,
               what="READY=1")
    assert d.proc.poll() is None, "the daemon exited before READY=1:\n" + d.output()[-3000:]
    if wait_synced:
        wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    return d


def close(store, runs):
    """A failed test's daemons are not left running."""
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    store.close()


def status(store):
    return [a for a in store.assignments() if a.startswith("STATUS=")]


def wait_status(store, text):
    """STATUS= says text (the line follows READY=1 in its own message: wait for it)."""
    wait_until(lambda: any(text in s for s in status(store)), what=f"STATUS= with {text!r}")


def sts_calls(node_env):
    return len(served_by_sts(node_env, BASE_ARN + "app-role"))


def first_run(node_env, store, runtime_dir, daemon_factory_cleanup):
    node_env.add_pod("app", POD_IP, role="app-role")
    d = start(node_env, store, runtime_dir)
    daemon_factory_cleanup.append(d)
    r, body = get(d, CREDS, source=POD_IP)
    assert r.status == 200, body
    # the snapshot pushed at start holds the token key only; wait for the one with the role
    wait_until(lambda: any(b"app-role" in store.stored(fd) for fd in store.snapshot()),
               what="a snapshot with the role in the fd store")
    return d


def test_restart_serves_cached_roles_and_tokens_without_an_sts_call(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        d = first_run(node_env, store, str(tmp_path), runs)
        r, token = get(d, "/latest/api/token", source=POD_IP, method="PUT",
                       headers={"X-aws-ec2-metadata-token-ttl-seconds": "600"})
        assert r.status == 200
        assert any(s.startswith("STATUS=Serving; ") and "; cold start (no snapshot" in s
                   for s in status(store)), status(store)
        assert d.stop() == 0
        store.sync()  # what it pushed at SIGTERM is in the store
        before = sts_calls(node_env)
        assert before == 1
        store.clear_messages()
        started = time.monotonic()
        d2 = start(node_env, store, str(tmp_path), wait_synced=False)
        runs.append(d2)
        wait_until(lambda: get(d2, CREDS, source=POD_IP)[0].status == 200, what="served after the restart")
        print(f"\nfirst answer {1000 * (time.monotonic() - started):.0f} ms after the restart began")
        r, body = get(d2, CREDS, source=POD_IP, headers={"X-aws-ec2-metadata-token": token.decode()})
        assert r.status == 200, body
        assert sts_calls(node_env) == before, node_env.sts.calls()
        wait_status(store, "warm start (1 role(s), token key")
        # consumed once: out of the store before the restore, a new one after it
        daemons = [m for m in store.messages if not m.startswith("K2I_TEST_SYNC=")]
        assert daemons[0].startswith("FDSTOREREMOVE=1"), daemons[:3]
        wait_until(lambda: len(store.snapshot()) == 1, what="a new snapshot")
        for run in runs:
            assert_no_secrets(run.output(), node_env)
            assert run.cleanup() is None
    finally:
        close(store, runs)


def test_corrupt_snapshot_is_dropped_and_the_start_is_cold(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        d = first_run(node_env, store, str(tmp_path), runs)
        assert d.stop() == 0
        store.sync()  # what it pushed at SIGTERM is in the store
        fd = store.snapshot()[0]
        data = bytearray(store.stored(fd))
        data[len(data) // 2] ^= 0xFF
        mfd = os.memfd_create("bad", os.MFD_ALLOW_SEALING)
        os.write(mfd, bytes(data))
        fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_SEAL)
        with store.lock:
            os.close(fd)
            store.fds = [("snapshot", mfd)]
        store.clear_messages()
        before = sts_calls(node_env)
        d2 = start(node_env, store, str(tmp_path))
        runs.append(d2)
        wait_status(store, "cold start (corrupt snapshot dropped)")
        r, _ = get(d2, CREDS, source=POD_IP)
        assert r.status == 200
        assert sts_calls(node_env) == before + 1
        for run in runs:
            assert run.cleanup() is None
    finally:
        close(store, runs)


def test_snapshot_that_crashed_the_previous_start_is_dropped(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        d = first_run(node_env, store, str(tmp_path), runs)
        assert d.stop() == 0
        store.sync()  # what it pushed at SIGTERM is in the store
        # the previous start died restoring this very snapshot, before PID 1 read its FDSTOREREMOVE
        checksum = store.stored(store.snapshot()[0])[-32:].hex()
        (tmp_path / "snapshot-restoring").write_text(checksum)
        store.clear_messages()
        d2 = start(node_env, store, str(tmp_path))
        runs.append(d2)
        wait_status(store, "cold start (snapshot dropped: it crashed the previous start)")
        assert not (tmp_path / "snapshot-restoring").exists()
        assert get(d2, CREDS, source=POD_IP)[0].status == 200
        for run in runs:
            assert run.cleanup() is None
    finally:
        close(store, runs)


@pytest.mark.parametrize("flag,expect", [("--session-tags=kubernetes-namespace", "tags"),
                                         ("--session-name=pod", "session_name")])
def test_tagged_and_pod_named_sessions_survive_a_restart_without_an_sts_call(node_env, tmp_path, flag, expect):
    store, runs = FdStore(), []
    try:
        node_env.api.add_namespace("payments")
        node_env.add_pod("api-0", POD_IP, role="app-role", namespace="payments")
        d = start(node_env, store, str(tmp_path), extra=(flag,))
        runs.append(d)
        wait_until(lambda: get(d, CREDS, source=POD_IP)[0].status == 200, what="the first answer")
        calls = served_by_sts(node_env, BASE_ARN + "app-role")
        assert len(calls) == 1, calls
        # the key is not kube2iam's default one: tags, or the pod's own session name
        assert calls[0]["tags"] if expect == "tags" else calls[0]["session_name"] == "payments.api-0", calls
        key = json.loads(get(d, CREDS, source=POD_IP)[1])["AccessKeyId"]
        wait_until(lambda: any(b"app-role" in store.stored(fd) for fd in store.snapshot()),
                   what="a snapshot with the session")
        assert d.stop() == 0
        store.sync()  # what it pushed at SIGTERM is in the store
        store.clear_messages()
        d2 = start(node_env, store, str(tmp_path), wait_synced=False, extra=(flag,))
        runs.append(d2)
        wait_until(lambda: get(d2, CREDS, source=POD_IP)[0].status == 200, what="served after the restart")
        assert json.loads(get(d2, CREDS, source=POD_IP)[1])["AccessKeyId"] == key
        assert sts_calls(node_env) == 1, node_env.sts.calls()
        wait_status(store, "warm start (1 role(s)")
        for run in runs:
            assert_no_secrets(run.output(), node_env)
            assert run.cleanup() is None
    finally:
        close(store, runs)


# ---- the pod and namespace view: restored unconfirmed, the watches resumed (docs/warm-restart.md) ----

POD_PATH = "/api/v1/namespaces/default/pods/app"


def debug_store(d):
    r, body = get(d, "/debug/store")
    assert r.status == 200, body
    return json.loads(body)


def run_then_stop(node_env, store, runtime_dir, runs, extra=()):
    """A first run that served the pod and stored a snapshot holding its credentials and the view."""
    uid = node_env.add_pod("app", POD_IP, role="app-role")
    d = start(node_env, store, runtime_dir, extra=("--debug", *extra))
    runs.append(d)
    r, body = get(d, CREDS, source=POD_IP)
    assert r.status == 200, body
    wait_until(lambda: any(b"app-role" in store.stored(fd) and uid.encode() in store.stored(fd)
                           for fd in store.snapshot()), what="a snapshot with the role and the pod")
    assert d.stop() == 0
    store.sync()  # what it pushed at SIGTERM is in the store
    store.clear_messages()
    return uid


def restart(node_env, store, runtime_dir, runs, extra=()):
    """The next run; returns it and the API server's request count when it started."""
    mark = len(node_env.api.requests)
    d = start(node_env, store, runtime_dir, wait_synced=False, extra=("--debug", *extra))
    runs.append(d)
    return d, mark


def requests_since(node_env, mark):
    with node_env.api.lock:
        return list(node_env.api.requests[mark:])


def lists_since(node_env, mark):
    return [p for (m, p, _) in requests_since(node_env, mark)
            if p.split("?")[0] in ("/api/v1/pods", "/api/v1/namespaces") and "watch=1" not in p]


def gets_since(node_env, mark, path=POD_PATH):
    return [p for (m, p, _) in requests_since(node_env, mark) if p == path]


def finish(runs, node_env):
    for run in runs:
        assert_no_secrets(run.output(), node_env)
        assert run.cleanup() is None


def test_warm_start_makes_no_list_and_a_get_confirms_the_restored_pod(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        run_then_stop(node_env, store, str(tmp_path), runs)
        before = sts_calls(node_env)
        d2, mark = restart(node_env, store, str(tmp_path), runs)
        wait_status(store, "1 pod(s) to confirm")
        # explain says so (docs/explain.md): restored, not yet confirmed
        wait_until(lambda: os.path.exists(os.path.join(str(tmp_path), "explain.sock")), what="explain socket")
        code, e = explain_json(str(tmp_path), POD_IP)
        assert e["pod"]["unconfirmed"] is True and "confirms it" in e["reason"], e
        assert "unconfirmed" in explain(str(tmp_path), POD_IP).stdout
        r, body = get(d2, CREDS, source=POD_IP)
        assert r.status == 200, body
        assert len(gets_since(node_env, mark)) == 1  # the live GET that vouched for it
        code, e = explain_json(str(tmp_path), POD_IP)
        assert e["pod"]["unconfirmed"] is False and e["credentials"] is True, e
        assert sts_calls(node_env) == before
        # both watches resumed from the snapshot's resourceVersions: no list at all
        wait_until(lambda: node_env.api.n_watches("pods") >= 1 and node_env.api.n_watches("namespaces") >= 1,
                   what="both watches")
        lists = lists_since(node_env, mark)
        print(f"\nlist requests on a warm start: {len(lists)}")
        assert lists == [], lists
        finish(runs, node_env)
    finally:
        close(store, runs)


def test_get_404_for_a_restored_pod_is_never_served(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        uid = run_then_stop(node_env, store, str(tmp_path), runs)
        node_env.api.delete_pod(uid, silently=True)  # no event: only the GET can tell
        d2, mark = restart(node_env, store, str(tmp_path), runs)
        r, body = get(d2, CREDS, source=POD_IP)
        assert r.status == 404, body
        assert len(gets_since(node_env, mark)) >= 1
        assert POD_IP not in debug_store(d2)["rolesByIP"]
        finish(runs, node_env)
    finally:
        close(store, runs)


def test_deletion_while_down_is_replayed_before_the_pod_is_vouched_for(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        uid = run_then_stop(node_env, store, str(tmp_path), runs)
        node_env.api.delete_pod(uid)
        # its address reused by a pod of another namespace with another role
        node_env.api.add_namespace("other")
        node_env.add_pod("intruder", POD_IP, role="other-role", namespace="other")
        d2, mark = restart(node_env, store, str(tmp_path), runs)
        wait_until(lambda: debug_store(d2)["namespaceByIP"].get(POD_IP) == "other",
                   what="the replayed deletion and addition")
        assert gets_since(node_env, mark) == []  # the watch said it, not a GET
        r, body = get(d2, CREDS, source=POD_IP)
        assert r.status != 200 or b"other-role" not in body  # never the old role
        r, body = get(d2, "/latest/meta-data/iam/security-credentials/", source=POD_IP)
        assert r.status == 200 and body == b"other-role", body
        assert lists_since(node_env, mark) == []
        finish(runs, node_env)
    finally:
        close(store, runs)


def test_annotation_change_while_down_is_replayed(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        uid = run_then_stop(node_env, store, str(tmp_path), runs)
        node_env.api.update_pod(uid, role="new-role")
        d2, mark = restart(node_env, store, str(tmp_path), runs)
        wait_until(lambda: debug_store(d2)["rolesByIP"].get(POD_IP) == "new-role", what="the replayed change")
        r, body = get(d2, "/latest/meta-data/iam/security-credentials/", source=POD_IP)
        assert r.status == 200 and body == b"new-role", body
        assert gets_since(node_env, mark) == []  # a watch event confirms the pod too
        r, _ = get(d2, CREDS, source=POD_IP)
        assert r.status == 403  # the old role is no longer the pod's
        finish(runs, node_env)
    finally:
        close(store, runs)


def test_410_on_resume_relists_and_drops_the_restored_pods(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        uid = run_then_stop(node_env, store, str(tmp_path), runs)
        node_env.api.delete_pod(uid, silently=True)
        node_env.api.compact()  # the snapshot's resourceVersion is too old now
        d2, mark = restart(node_env, store, str(tmp_path), runs)
        wait_until(lambda: lists_since(node_env, mark), what="a list after the 410")
        wait_until(lambda: POD_IP not in debug_store(d2)["rolesByIP"], what="the restored pod dropped")
        assert gets_since(node_env, mark) == []
        r, _ = get(d2, CREDS, source=POD_IP)
        assert r.status == 404
        finish(runs, node_env)
    finally:
        close(store, runs)


def test_namespace_restriction_changed_while_down_is_not_served_from_the_snapshot(node_env, tmp_path):
    store, runs = FdStore(), []
    allowed = {"iam.amazonaws.com/allowed-roles": json.dumps(["app-role"])}
    try:
        node_env.api.add_namespace("default", annotations=allowed)
        run_then_stop(node_env, store, str(tmp_path), runs, extra=("--namespace-restrictions",))
        # while down the namespace stops allowing the role; no event reaches the next run
        with node_env.api.lock:
            node_env.api.namespaces["default"]["metadata"]["annotations"] = {
                "iam.amazonaws.com/allowed-roles": json.dumps(["another-role"])}
        d2, mark = restart(node_env, store, str(tmp_path), runs, extra=("--namespace-restrictions",))
        r, _ = get(d2, CREDS, source=POD_IP)
        assert r.status == 404  # the live GET of the namespace decided, not the snapshot
        assert gets_since(node_env, mark, "/api/v1/namespaces/default") != []
        finish(runs, node_env)
    finally:
        close(store, runs)


# ---- a snapshot that really crashes the restore (-Dtest_faults=true builds) ----

CRASH_BUILD = b"test-fault: crash at restore"  # WARM_START_FAULT_CRASH_AT_RESTORE


def built_with_test_faults():
    path = os.path.join(os.environ.get("KUBE2IAM_BUILD_DIR", "build"), "meson-info", "intro-buildoptions.json")
    try:
        with open(path) as f:
            return any(o["name"] == "test_faults" and o["value"] is True for o in json.load(f))
    except OSError:
        return False


def with_build(data, build):
    """The snapshot data re-encoded as written by build: the same records, a valid checksum."""
    head = 8 + 4
    (n,) = struct.unpack_from("<I", data, head)
    body = data[:head] + struct.pack("<I", len(build)) + build + data[head + 4 + n:-32]
    return body + hashlib.sha256(body).digest()


def sealed_memfd(data):
    mfd = os.memfd_create("crafted", os.MFD_ALLOW_SEALING)
    os.write(mfd, data)
    fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
                | fcntl.F_SEAL_SEAL)
    return mfd


def put_snapshot(store, data):
    with store.lock:
        for _, fd in store.fds:
            os.close(fd)
        store.fds = [("snapshot", sealed_memfd(data))]


@pytest.mark.skipif(not built_with_test_faults(), reason="needs a -Dtest_faults=true build (scripts/test.sh has one)")
def test_snapshot_that_crashes_the_restore_is_dropped_by_the_next_start(node_env, tmp_path):
    store, runs = FdStore(), []
    try:
        d = first_run(node_env, store, str(tmp_path), runs)
        assert d.stop() == 0
        store.sync()  # what it pushed at SIGTERM is in the store
        crash = with_build(store.stored(store.snapshot()[0]), CRASH_BUILD)
        put_snapshot(store, crash)
        store.clear_messages()
        env, fds = store.handoff_env()
        env["RUNTIME_DIRECTORY"] = str(tmp_path)
        d2 = Daemon(node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}"), env=env, notify=store,
                    wait=False, fds=fds)
        runs.append(d2)
        assert d2.proc.wait(timeout=30) != 0  # aborted inside the restore
        assert "Test fault point: aborting in the middle of the restore" in d2.output()
        store.sync()
        # consumed once: PID 1 dropped it before the restore began ...
        assert store.snapshot() == []
        # ... and the marker names it, for when PID 1 had not read FDSTOREREMOVE yet: hand it over again
        assert (tmp_path / "snapshot-restoring").read_text() == crash[-32:].hex()
        put_snapshot(store, crash)
        before = sts_calls(node_env)
        d3 = start(node_env, store, str(tmp_path))
        runs.append(d3)
        wait_status(store, "cold start (snapshot dropped: it crashed the previous start)")
        assert not (tmp_path / "snapshot-restoring").exists()
        assert get(d3, CREDS, source=POD_IP)[0].status == 200
        assert sts_calls(node_env) == before + 1  # cold: nothing of the crashing snapshot was used
        for run in runs:
            assert run.cleanup() is None
    finally:
        close(store, runs)
