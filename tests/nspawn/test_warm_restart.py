"""Warm restarts under the real systemd 252 (issue 16, docs/warm-restart.md): the daemon's snapshot
(credential cache, IMDSv2 key, pod and namespace view with their resourceVersions) lives in PID 1's fd
store, so restarts, crashes and package upgrades serve cached roles at once with no STS call and no
list (the watches resume); `systemctl stop` empties the store (a cold start). A restored pod is served
only once the API server confirmed it (a replayed watch event or a live GET).
One container for the module; the tests run in file order."""
import json
import re

from nspawn_helpers import BASE_ARN, POD_IP, POD_NAME, POD_ROLE
from test_node import CREDS, PodClientLoop, pod_curl, ready, served_role  # noqa: F401 (ready: the fixture)

SNAPSHOT_WAIT = 10  # seconds: a new role's snapshot is pushed within 1 s (coalesced)


def sts_calls(node):
    return [c for c in node.env.sts.calls() if c.get("result") == "Success"]


def snapshot_in_store(node):
    """The memfd PID 1 holds for kube2iam (its name is the daemon's memfd_create name)."""
    out = node.sh("ls -l /proc/1/fd 2>/dev/null", check=False).stdout
    return out.count("memfd:kube2iam-snapshot")


def snapshot_holds(node, text):
    """The snapshot PID 1 holds names text (a role): the one pushed after its credentials arrived,
    not the key-only one every start pushes first."""
    m = re.search(r" (\d+) -> /memfd:kube2iam-snapshot", node.sh("ls -l /proc/1/fd", check=False).stdout)
    return bool(m) and node.sh(f"grep -q {text} /proc/1/fd/{m.group(1)}", check=False).returncode == 0


def status(node):
    return node.show("kube2iam.service", "StatusText")


def wait_warm_state(node, pid_before):
    def restarted():
        now = node.show("kube2iam.service", "MainPID", "ActiveState")
        return now["ActiveState"] == "active" and now["MainPID"] not in ("0", pid_before)
    assert node.wait_for(restarted, 30, "kube2iam restarted")


def first_answer_ms(node, results):
    """From the new process's start (systemd's timestamp) to the first 200 a pod got after it, and
    when that request was sent (ms, negative: before the start). Sent before the start, it waited
    in the socket's backlog, and the client loop's pause between requests is not in the figure."""
    start = int(node.show("kube2iam.service", "ExecMainStartTimestampMonotonic")) / 1e6
    after = [r for r in results if r.get("status") == 200 and r["end"] > start]
    if not after:
        return None, None
    first = min(after, key=lambda r: r["end"])
    return round(1000 * (first["end"] - start)), round(1000 * (first["end"] - first["t"] - start))


def start_phases_ms(node):
    """Where the new process's start went, from the journal (ms after systemd started it): its
    first line, the snapshot consumed (after PID 1 confirmed dropping it), and "Listening on port"
    (just before READY=1)."""
    start = int(node.show("kube2iam.service", "ExecMainStartTimestampMonotonic"))
    pid = node.show("kube2iam.service", "MainPID")
    out = node.sh(f"journalctl -o json --no-pager _PID={pid}", check=False).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    stamps = [(int(e["__MONOTONIC_TIMESTAMP"]), str(e.get("MESSAGE", ""))) for e in entries]
    first = min((t for t, _ in stamps), default=None)
    restoring = min((t for t, m in stamps if m.startswith("Restoring a snapshot")), default=None)
    listening = min((t for t, m in stamps if m.startswith("Listening on port")), default=None)
    return tuple(None if t is None else round((t - start) / 1000) for t in (first, restoring, listening))


def restart_while_pods_loop(node, command, what):
    """Runs command (which restarts the daemon) while a pod loops on credential requests; asserts
    no request failed and no STS call was made; returns the first-answer figure in ms."""
    calls = len(sts_calls(node))
    lists = len(node.env.api.lists("pods")) + len(node.env.api.lists("namespaces"))
    pid = node.show("kube2iam.service", "MainPID")
    loop = PodClientLoop(node)
    try:
        loop.wait_count(3)
        node.sh(command)
        wait_warm_state(node, pid)
        loop.wait_count(len(loop.results) + 5)
    finally:
        results = loop.finish()
    bad = [r for r in results if r.get("status") != 200 or r.get("body") != POD_ROLE]
    assert not bad, bad
    assert len(sts_calls(node)) == calls, sts_calls(node)[calls:]
    lists = len(node.env.api.lists("pods")) + len(node.env.api.lists("namespaces")) - lists
    assert lists == 0, "a warm start resumes the watches from the snapshot's resourceVersions"
    first, sent = first_answer_ms(node, results)
    log, restoring, listening = start_phases_ms(node)
    print(f"\n{what}: {len(results)} requests, 0 failed, 0 STS calls, 0 list requests, first answer {first} ms "
          f"after the new process started (to a request sent at {sent} ms; its first journal line at {log} ms, "
          f"the snapshot taken from the store at {restoring} ms, listening at {listening} ms)")
    return first


def test_restart_while_pods_loop_is_warm_no_failure_no_sts_call(node, ready):
    assert served_role(node) == POD_ROLE
    assert node.wait_for(lambda: snapshot_in_store(node) == 1 and snapshot_holds(node, POD_ROLE), SNAPSHOT_WAIT,
                         "a snapshot with the role in the store")
    restart_while_pods_loop(node, "systemctl restart kube2iam.service", "restart")
    assert "warm start (1 role(s), token key" in status(node), status(node)
    # consumed once, pushed again: still exactly one snapshot
    assert node.wait_for(lambda: snapshot_in_store(node) == 1, SNAPSHOT_WAIT, "one snapshot")
    # the store now carries the token key: the copy on tmpfs is gone
    assert node.sh("test -e /run/kube2iam/imds-token.key", check=False).returncode != 0


def test_package_upgrade_is_warm(node, ready):
    restart_while_pods_loop(node, "dpkg -i --force-confold /var/tmp/kube2iam.deb", "upgrade")
    assert "warm start" in status(node), status(node)


def test_kill_9_restarts_warm(node, ready):
    calls = len(sts_calls(node))
    pid = node.show("kube2iam.service", "MainPID")
    node.sh(f"kill -9 {pid}")
    wait_warm_state(node, pid)
    assert served_role(node) == POD_ROLE
    assert len(sts_calls(node)) == calls
    assert "warm start" in status(node), status(node)


def test_snapshot_recorded_as_crashing_the_restore_is_dropped_next_start(node, ready):
    """What a start that died inside the restore leaves: its marker naming the snapshot it was
    restoring, and (had PID 1 not yet read FDSTOREREMOVE) the snapshot itself. Injected here with
    the checksum of the snapshot PID 1 holds, then the daemon is killed."""
    assert node.wait_for(lambda: snapshot_in_store(node) == 1, SNAPSHOT_WAIT, "a snapshot")
    fd = re.search(r" (\d+) -> /memfd:kube2iam-snapshot", node.sh("ls -l /proc/1/fd").stdout).group(1)
    node.sh(f"tail -c 32 /proc/1/fd/{fd} | od -An -tx1 | tr -d ' \\n' >/run/kube2iam/snapshot-restoring")
    calls = len(sts_calls(node))
    pid = node.show("kube2iam.service", "MainPID")
    node.sh(f"kill -9 {pid}")
    wait_warm_state(node, pid)
    assert "cold start (snapshot dropped: it crashed the previous start)" in status(node), status(node)
    assert served_role(node) == POD_ROLE
    # cold: the role is assumed again (prefetched when the list arrives: wait for the call)
    assert node.wait_for(lambda: len(sts_calls(node)) > calls, SNAPSHOT_WAIT, "the role assumed again")
    assert len(sts_calls(node)) == calls + 1
    assert node.sh("test -e /run/kube2iam/snapshot-restoring", check=False).returncode != 0


def test_pod_deleted_while_down_and_its_ip_reused_is_never_served_the_old_role(node, ready):
    assert node.wait_for(lambda: snapshot_in_store(node) == 1, SNAPSHOT_WAIT, "a snapshot")
    api = node.env.api
    uid = next(u for u, p in api.pods.items() if p["metadata"]["name"] == POD_NAME)
    pid = node.show("kube2iam.service", "MainPID")
    # "down": frozen, so it sees nothing of what follows, then killed
    node.sh(f"kill -STOP {pid}")
    try:
        api.delete_pod(uid)
        api.add_namespace("other")
        api.add_pod("intruder", namespace="other", node=node.env.node, ip=POD_IP, role="other-role")
    finally:
        node.sh(f"kill -9 {pid}")
    wait_warm_state(node, pid)
    assert "warm start" in status(node), status(node)
    for _ in range(5):
        rc, code, body = pod_curl(node)
        assert body != POD_ROLE, (rc, code, body)
    assert served_role(node) == "other-role"
    rc, code, _ = pod_curl(node, CREDS + "other-role")
    assert (rc, code) == (0, "200")
    # the new pod's role is assumed (prefetch or its request), never taken from the old pod's entry
    assert node.wait_for(lambda: any(c["role_arn"] == BASE_ARN + "other-role" for c in sts_calls(node)),
                         SNAPSHOT_WAIT, "an STS call for the new pod's role")


def test_stop_then_start_is_cold_and_works(node, ready):
    node.sh("systemctl stop kube2iam.service")
    assert snapshot_in_store(node) == 0  # systemd 252 empties the store on stop
    node.sh("systemctl start kube2iam.service")
    assert node.wait_for(lambda: node.show("kube2iam.service", "ActiveState") == "active", 30, "active")
    assert "cold start (no snapshot" in status(node), status(node)
    assert served_role(node) == "other-role"
    assert node.wait_for(lambda: snapshot_in_store(node) == 1, SNAPSHOT_WAIT, "a snapshot again")
