"""kube2iam under a real systemd (issue 7): a node's first boot with the package baked into the image,
pods served through the redirect across restarts and a kill -9, kubelet guarded by the drop-in, then
the package's removal. One container per module; the tests run in file order.

The fakes (upstream IMDS at 169.254.169.254:80, STS, API server) run in the test process inside the
node namespace the container shares; the pod is a network namespace beside it, its client the
host's curl and /usr/bin/aws with no endpoint override.
"""
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

from nspawn_helpers import APP_PORT, BASE_ARN, IMDS, NODE_SECRETS, POD_IP, POD_NAME, POD_ROLE, run
from k2i_testlib import message_ids

READY_WAIT = 20     # seconds: bounded wait for the daemon's READY=1 (it waits at most 10 s for pods)
SERVE_WAIT = 30     # seconds: bounded wait for a pod to be served (loaded CI machines)
CREDS = f"http://{IMDS}/latest/meta-data/iam/security-credentials/"
CREDS_ISSUED = message_ids()["CREDS_ISSUED"]


@pytest.fixture(scope="module")
def ready(node):
    """Waits (bounded) for kube2iam.service to become active; returns its properties either way."""
    node.wait_for(lambda: node.show("kube2iam.service", "ActiveState") == "active", READY_WAIT,
                  "kube2iam.service active")
    return node.show("kube2iam.service", "ActiveState", "SubState", "StatusText",
                     "ActiveEnterTimestampMonotonic", "ExecMainStatus", "ExecMainCode", "MainPID",
                     "NRestarts", "Result")


def pod_curl(node, url=CREDS, timeout=5):
    """curl in the pod namespace: (curl's exit status, HTTP status, body)."""
    p = run(["ip", "netns", "exec", node.ns_pod, "curl", "-sS", "-m", timeout, "-o", "-", "-w",
             "\n%{http_code}", url], check=False, timeout=timeout + 30)
    body, _, code = p.stdout.rpartition("\n")
    return p.returncode, code, body


def served_role(node, timeout=SERVE_WAIT):
    deadline = time.monotonic() + timeout
    while True:
        rc, code, body = pod_curl(node)
        if rc == 0 and code == "200":
            return body
        assert time.monotonic() < deadline, (rc, code, body)
        time.sleep(0.3)


def pod_never_reached_upstream(node):
    """Nothing the pod sent ever arrived at the fake upstream IMDS (at any path)."""
    return [r["path"] for r in node.env.imds.requests() if r["client"] == POD_IP] == []


def kubelet_start(node):
    return node.show("kubelet.service", "ExecMainStartTimestampMonotonic", "MainPID", "ActiveState")


def test_socket_listens_on_8181_at_boot_and_accepts_pod_connections(node):
    assert node.show("kube2iam.socket", "ActiveState") == "active"
    listen = node.show("kube2iam.socket", "Listen")
    assert listen.startswith(f"[::]:{APP_PORT}") or listen.startswith(f"0.0.0.0:{APP_PORT}"), listen
    # Accepted into the kernel's backlog whether or not the daemon is up (docs/design.md, invariant 2).
    assert node.pod_connect()


def test_daemon_starts_inside_its_sandbox(node, ready):
    # 226/NAMESPACE, 218/CAPABILITIES or a seccomp kill would mean the unit's sandbox cannot be
    # set up (or is too tight for the binary's start-up).
    state = node.show("kube2iam.service", "MainPID", "ExecMainCode", "ExecMainStatus",
                      "ExecMainStartTimestampMonotonic")
    assert state["MainPID"] != "0", state
    assert state["ExecMainStartTimestampMonotonic"] not in ("", "0"), "ExecStart= never ran"
    log = node.sh("journalctl -b --no-pager -o cat -u kube2iam.service").stdout
    assert not re.search(r"status=(2[0-4]\d)/|code=(killed|dumped)", log), log


def test_service_becomes_active_once_daemon_sends_ready_with_a_status_line(node, ready):
    assert ready["ActiveState"] == "active" and ready["SubState"] == "running", ready
    assert ready["StatusText"], "no STATUS= line"
    status = node.sh("SYSTEMD_COLORS=0 systemctl status --no-pager -n0 kube2iam.service",
                     check=False).stdout
    print("\n" + status)
    assert re.search(r"^\s*Active: active \(running\)", status, re.M), status
    assert re.search(r"^\s*Status: \".+\"", status, re.M), status
    ready_usec = int(ready["ActiveEnterTimestampMonotonic"])
    print(f"boot to READY: {(ready_usec - node.boot_usec) / 1e6:.3f} s "
          f"(UserspaceTimestampMonotonic -> kube2iam.service ActiveEnterTimestampMonotonic)")
    print(node.sh("systemd-analyze critical-chain --no-pager kube2iam.service", check=False).stdout)
    # the real, booted unit as systemd scores it
    sec = node.sh("systemd-analyze security --no-pager kube2iam.service", check=False).stdout
    print([l for l in sec.splitlines() if "Overall exposure" in l])


def test_kubelet_dropin_wants_orders_and_checks_without_requiring(node):
    props = node.show("kubelet.service", "After", "Wants", "Requires", "DropInPaths", "ExecStartPre")
    assert "kube2iam.service" in props["After"].split()
    assert "kube2iam.service" in props["Wants"].split()
    assert "kube2iam.service" not in props["Requires"].split()
    assert "/usr/sbin/kube2iam-nft" in props["ExecStartPre"] and "check" in props["ExecStartPre"]
    # /lib or /usr/lib, depending on whether the rootfs is merged-/usr.
    assert any(p.endswith("/lib/systemd/system/kubelet.service.d/10-kube2iam.conf")
               for p in props["DropInPaths"].split()), props["DropInPaths"]
    # And kube2iam is ordered before kubelet from its side as well.
    assert "kubelet.service" in node.show("kube2iam.service", "Before").split()


UNITS = ["kube2iam.service", "kube2iam.socket", "kube2iam-metrics.socket"]


def enablement(node):
    return {u: node.sh(f"systemctl is-enabled {u}", check=False).stdout.strip() for u in UNITS}


def test_preset_agrees_with_the_package_and_disabling_the_service_takes_the_socket_along(node):
    installed = enablement(node)
    assert installed == {"kube2iam.service": "enabled", "kube2iam.socket": "enabled",
                         "kube2iam-metrics.socket": "disabled"}, installed
    # what the .rpm's %post (systemctl preset) would have done: the same
    node.sh("systemctl preset " + " ".join(UNITS))
    assert enablement(node) == installed
    # Also=kube2iam.socket: the listener is not left enabled behind a disabled service
    node.sh("systemctl disable kube2iam.service")
    assert enablement(node)["kube2iam.socket"] == "disabled"
    node.sh("systemctl enable kube2iam.service")
    assert enablement(node) == installed


def test_kubelet_started_once_after_the_redirect_existed(node, ready):
    assert node.wait_for(lambda: node.show("kubelet.service", "ActiveState") == "active",
                         READY_WAIT, "kubelet active")
    starts = node.sh("cat /var/log/fake-kubelet/starts").stdout.split()
    assert starts[1::2] == ["present"], starts
    kubelet_start = int(node.show("kubelet.service", "ExecMainStartTimestampMonotonic"))
    assert kubelet_start >= int(ready["ActiveEnterTimestampMonotonic"])


def test_redirect_installed_at_boot_exactly_as_configured(node, ready):
    assert node.rule_present()
    # the same comparison kubelet's ExecStartPre= makes, with the node's own settings
    assert node.sh(". /etc/default/kube2iam; KUBE2IAM_ARGS=\"$KUBE2IAM_ARGS\" "
                   "/usr/sbin/kube2iam-nft check", check=False).returncode == 0


def test_journal_has_the_units_lines(node, ready):
    log = node.sh("journalctl -b --no-pager -o cat -u kube2iam.service").stdout
    assert "kube2iam IAM roles for pods over the EC2 metadata API" in log, log


def test_pod_gets_its_role_with_curl_and_awscli_without_endpoint_override(node, ready):
    assert served_role(node) == POD_ROLE
    rc, code, body = pod_curl(node, CREDS + POD_ROLE)
    assert rc == 0 and code == "200", (rc, code, body)
    issued = {c["access_key_id"] for c in node.env.sts.calls()
              if c["role_arn"] == BASE_ARN + POD_ROLE and c.get("result") == "Success"}
    assert json.loads(body)["AccessKeyId"] in issued
    home = tempfile.mkdtemp(prefix="k2i-aws-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": home, "AWS_CONFIG_FILE": f"{home}/none", "AWS_SHARED_CREDENTIALS_FILE": f"{home}/none",
                "AWS_DEFAULT_REGION": "us-east-1"})
    p = run(["ip", "netns", "exec", node.ns_pod, "/usr/bin/aws", "configure", "export-credentials",
             "--format", "env"], check=False, env=env, timeout=120)
    assert p.returncode == 0, p.stdout
    key = [x for x in p.stdout.splitlines() if "AWS_ACCESS_KEY_ID" in x][0].split("=", 1)[1]
    assert key in issued
    assert pod_never_reached_upstream(node)


# The running daemon's own view: its mount namespace, entered as root without capabilities, which
# is what the unit makes it (CapabilityBoundingSet= empty). Paths from nspawn_helpers.NODE_SECRETS.
DAEMON_MUST_NOT_READ = ["/etc/shadow", "/etc/gshadow", *NODE_SECRETS]
DAEMON_MUST_READ = ["/var/lib/kubelet/kubelet.conf", "/etc/kubernetes/pki/ca.crt", "/etc/ld.so.cache",
                    "/etc/nsswitch.conf", "/proc/self/net/route"]


def daemon_can(node, command):
    pid = node.show("kube2iam.service", "MainPID")
    assert pid != "0"
    return node.sh(f"nsenter -t {pid} -m -- setpriv --bounding-set=-all --inh-caps=-all -- {command} "
                   ">/dev/null 2>&1", check=False).returncode == 0


def test_running_daemon_reads_only_its_allow_list_and_still_serves(node, ready):
    for path in DAEMON_MUST_NOT_READ + DAEMON_MUST_READ[:-1]:
        assert node.sh(f"test -e {path}", check=False).returncode == 0, f"{path} missing on the node"
    readable = [p for p in DAEMON_MUST_NOT_READ if daemon_can(node, f"cat {p}")]
    assert readable == [], readable
    for listing in ("/var/log/pods", "/var/log", "/var/lib/dpkg", "/etc/kubernetes/pki/etcd", "/root"):
        assert not daemon_can(node, f"ls {listing}"), listing
    unreadable = [p for p in DAEMON_MUST_READ if not daemon_can(node, f"cat {p}")]
    assert unreadable == [], unreadable
    # and with that view it serves, and checks the pods' routes without complaint
    assert served_role(node) == POD_ROLE
    log = node.sh("journalctl -b --no-pager -o cat -u kube2iam.service").stdout
    assert "Cannot read /proc/self/net/route" not in log and "routed through interfaces" not in log, log


def test_journal_has_the_daemons_structured_lines(node, ready):
    out = node.sh("journalctl -b --no-pager -o json -u kube2iam.service _COMM=kube2iam").stdout
    entries = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert entries, "no journal entry written by the kube2iam process"
    issued = [e for e in entries if e.get("MESSAGE_ID") == CREDS_ISSUED]
    assert issued, [e.get("MESSAGE") for e in entries]
    e = issued[0]
    print("\n" + json.dumps({k: e[k] for k in ("MESSAGE", "MESSAGE_ID", "POD_NAMESPACE", "POD_NAME",
                                               "POD_IP", "ROLE_ARN", "RESULT", "PRIORITY")}, indent=1))
    assert e["POD_NAME"] == POD_NAME and e["POD_NAMESPACE"] == "default"
    assert e["ROLE_ARN"] == BASE_ARN + POD_ROLE and e["RESULT"] == "issued"
    assert POD_IP in e["POD_IP"]


def test_journalctl_x_explains_the_daemons_entries_from_the_installed_catalog(node, ready):
    """The package's catalog is compiled by the systemd package's trigger on install, so that
    `journalctl -x -u kube2iam` shows what each MESSAGE_ID means."""
    started = message_ids()["STARTED"]
    out = node.sh(f"journalctl -b -x --no-pager -u kube2iam.service MESSAGE_ID={started}").stdout
    assert "kube2iam serves pods' instance-metadata requests" in out, out
    assert "Documentation: man:kube2iam(8)" in out, out
    listed = node.sh("journalctl --list-catalog --no-pager").stdout
    for name, mid in message_ids().items():
        assert f"{mid} kube2iam: " in listed, name


# A pod's client that loops until told to stop: a new connection per request, as SDKs make them,
# one JSON line per request (status and body, or the error). The socket timeout is far above a
# restart so that "waited in the backlog" and "refused" are told apart.
LOOP_CLIENT = r"""
import http.client, json, os, sys, time
stop = sys.argv[1]
while not os.path.exists(stop):
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("169.254.169.254", 80, timeout=30)
        c.request("GET", "/latest/meta-data/iam/security-credentials/")
        r = c.getresponse()
        out = {"status": r.status, "body": r.read().decode(errors="replace")}
        c.close()
    except Exception as e:
        out = {"error": type(e).__name__ + ": " + str(e)}
    out["t"] = round(time.monotonic() - t, 3)
    out["end"] = time.monotonic()  # CLOCK_MONOTONIC, as systemd's *TimestampMonotonic
    print(json.dumps(out), flush=True)
    time.sleep(0.05)
"""


class PodClientLoop:
    def __init__(self, node):
        self.dir = tempfile.mkdtemp(prefix="k2i-loop-")
        self.stop_file = os.path.join(self.dir, "stop")
        self.results = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", node.ns_pod, "/usr/bin/python3", "-c",
                                      LOOP_CLIENT, self.stop_file], stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.results.append(json.loads(line))

    def wait_count(self, n, timeout=SERVE_WAIT):
        deadline = time.monotonic() + timeout
        while len(self.results) < n:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.results[-5:]
            time.sleep(0.05)

    def finish(self):
        open(self.stop_file, "w").close()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)
        return self.results


class RuleWatch:
    """Samples the redirect from the host every 50 ms: did it ever leave?"""

    def __init__(self, node):
        self.node = node
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.samples.append(self.node.rule_present())
            self.stop.wait(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)
        return self.samples


def test_restart_while_a_pod_client_loops_refuses_nothing_and_leaves_kubelet_alone(node, ready):
    kubelet_before = kubelet_start(node)
    assert kubelet_before["ActiveState"] == "active"
    pid_before = node.show("kube2iam.service", "MainPID")
    loop = PodClientLoop(node)
    watch = RuleWatch(node)
    try:
        loop.wait_count(3)
        node.sh("systemctl restart kube2iam.service")
        assert node.show("kube2iam.service", "ActiveState") == "active"
        after = len(loop.results)
        loop.wait_count(after + 5)
    finally:
        results = loop.finish()
        samples = watch.finish()
    assert node.show("kube2iam.service", "MainPID") != pid_before, "the daemon was not restarted"
    bad = [r for r in results if r.get("status") != 200 or r.get("body") != POD_ROLE]
    assert not bad, bad
    print(f"\n{len(results)} requests across the restart, slowest {max(r['t'] for r in results)} s")
    assert samples and all(samples), "the redirect left during the restart"
    assert kubelet_start(node) == kubelet_before, "restarting kube2iam restarted kubelet"
    assert pod_never_reached_upstream(node)


def pod_imdsv2(node, *curl_args):
    p = run(["ip", "netns", "exec", node.ns_pod, "curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}",
             *curl_args], check=False, timeout=40)
    body, _, code = p.stdout.rpartition("\n")
    return code, body


def test_imdsv2_token_survives_a_restart_through_the_runtime_directory(node, ready):
    code, token = pod_imdsv2(node, "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 600",
                             f"http://{IMDS}/latest/api/token")
    assert code == "200" and token, (code, token)
    # the key behind the token is in /run/kube2iam (RuntimeDirectory=, kept by
    # RuntimeDirectoryPreserve=yes), not in the process
    assert node.sh("test -d /run/kube2iam && [ -n \"$(ls -A /run/kube2iam)\" ]", check=False).returncode == 0
    node.sh("systemctl restart kube2iam.service")
    assert node.sh("test -d /run/kube2iam", check=False).returncode == 0
    code, body = pod_imdsv2(node, "-H", f"X-aws-ec2-metadata-token: {token}", CREDS)
    assert (code, body) == ("200", POD_ROLE)
    # and a token it never minted is still refused, so the 200 above was the token's
    code, _ = pod_imdsv2(node, "-H", "X-aws-ec2-metadata-token: " + "A" * len(token), CREDS)
    assert code == "401"


def test_kill_9_systemd_restarts_the_daemon_pods_served_again_rule_never_left(node, ready):
    kubelet_before = kubelet_start(node)
    before = node.show("kube2iam.service", "MainPID", "NRestarts")
    watch = RuleWatch(node)
    waiting = None
    try:
        node.sh(f"kill -9 {before['MainPID']}")
        # asked while no daemon runs: waits in the socket's backlog, answered after the restart
        waiting = subprocess.Popen(["ip", "netns", "exec", node.ns_pod, "curl", "-sS", "-m", "60",
                                    "-o", "-", "-w", "\n%{http_code}", CREDS],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def restarted():
            now = node.show("kube2iam.service", "MainPID", "NRestarts", "ActiveState")
            return (now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])
                    and int(now["NRestarts"]) > int(before["NRestarts"]))

        assert node.wait_for(restarted, SERVE_WAIT, "systemd restarted kube2iam")
        out, err = waiting.communicate(timeout=90)
        assert served_role(node) == POD_ROLE
    finally:
        samples = watch.finish()
        if waiting and waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0 and out.rpartition("\n")[0] == POD_ROLE, (waiting.returncode, out, err)
    assert samples and all(samples), "the redirect left after kill -9"
    assert kubelet_start(node) == kubelet_before, "a crash of kube2iam restarted kubelet"
    assert pod_never_reached_upstream(node)


def test_kubelet_cannot_start_without_the_redirect(node, ready):
    starts_before = node.sh("cat /var/log/fake-kubelet/starts").stdout
    try:
        node.sh("/usr/sbin/kube2iam-nft remove")
        assert not node.rule_present()
        r = node.sh("systemctl restart kubelet.service", check=False)
        assert r.returncode != 0
        assert node.show("kubelet.service", "ActiveState") == "failed"
        assert node.sh("cat /var/log/fake-kubelet/starts").stdout == starts_before, "kubelet ran"
        log = node.sh("journalctl -b --no-pager -o cat -u kubelet.service -n 20").stdout
        print("\n" + log)
        assert re.search(r"Control process exited|ExecStartPre|code=exited", log), log
    finally:
        # kube2iam's restart puts the rule back; then kubelet may start again
        node.sh("systemctl restart kube2iam.service")
        node.sh("systemctl reset-failed kubelet.service; systemctl start kubelet.service", check=False)
    assert node.rule_present()
    assert node.show("kubelet.service", "ActiveState") == "active"
    assert node.sh("tail -n1 /var/log/fake-kubelet/starts").stdout.split()[1] == "present"


SNAP_KUBELET = "snap.kubelet-eks.daemon.service"


def test_ubuntu_eks_snap_kubelet_gets_the_same_dropin_and_cannot_start_without_the_redirect(node, ready):
    """Ubuntu's EKS images run kubelet as the snap's service, which snapd writes into
    /etc/systemd/system; the package's drop-in for it must apply exactly as kubelet.service's does."""
    unit = f"/etc/systemd/system/{SNAP_KUBELET}"
    node.sh(f"printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' >{unit}; "
            "systemctl daemon-reload")
    try:
        props = node.show(SNAP_KUBELET, "After", "Wants", "Requires", "DropInPaths", "ExecStartPre")
        assert "kube2iam.service" in props["After"].split()
        assert "kube2iam.service" in props["Wants"].split()
        assert "kube2iam.service" not in props["Requires"].split()
        assert "/usr/sbin/kube2iam-nft" in props["ExecStartPre"] and "check" in props["ExecStartPre"]
        assert any(p.endswith(f"/lib/systemd/system/{SNAP_KUBELET}.d/10-kube2iam.conf")
                   for p in props["DropInPaths"].split()), props["DropInPaths"]
        node.sh(f"systemctl start {SNAP_KUBELET}")
        assert node.show(SNAP_KUBELET, "ActiveState") == "active"
        node.sh(f"systemctl stop {SNAP_KUBELET}; /usr/sbin/kube2iam-nft remove")
        assert node.sh(f"systemctl start {SNAP_KUBELET}", check=False).returncode != 0
        assert node.show(SNAP_KUBELET, "ActiveState") == "failed"
    finally:
        node.sh("systemctl restart kube2iam.service")
        node.sh(f"systemctl stop {SNAP_KUBELET}; systemctl reset-failed {SNAP_KUBELET}; rm -f {unit}; "
                "systemctl daemon-reload", check=False)
    assert node.rule_present()


def test_configuration_error_stops_with_status_2_while_the_socket_keeps_pods_waiting(node, ready):
    settings = node.sh("cat /etc/default/kube2iam").stdout
    restarts = int(node.show("kube2iam.service", "NRestarts"))
    watch = RuleWatch(node)
    try:
        # a value the daemon refuses (kube2iam-nft, reading the same file, does not care)
        node.sh("sed -i 's/^KUBE2IAM_ARGS=\"/KUBE2IAM_ARGS=\"--iam-role-session-ttl=5m /' /etc/default/kube2iam")
        assert node.sh("systemctl restart kube2iam.service", check=False).returncode != 0
        st = node.show("kube2iam.service", "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert (st["ActiveState"], st["Result"], st["ExecMainStatus"]) == ("failed", "exit-code", "2"), st
        assert int(st["NRestarts"]) == restarts, "systemd restarted a configuration error"
        status = node.sh("SYSTEMD_COLORS=0 systemctl status --no-pager -n 5 kube2iam.service",
                         check=False).stdout
        print("\n" + status)
        assert "status=2/INVALIDARGUMENT" in status and "--iam-role-session-ttl" in status, status
        # the listener stays: a pod's request waits in the backlog (curl times out), it is neither
        # refused nor answered by the real metadata service
        assert node.show("kube2iam.socket", "ActiveState") == "active"
        rc, code, body = pod_curl(node, timeout=4)
        assert rc == 28, (rc, code, body)
        assert node.show("kube2iam.socket", "ActiveState") == "active"
    finally:
        node.sh(f"cat >/etc/default/kube2iam <<'EOF'\n{settings}EOF")
        node.sh("systemctl reset-failed kube2iam.service; systemctl restart kube2iam.service", check=False)
        samples = watch.finish()
    assert samples and all(samples), "the redirect left while the daemon was down"
    assert node.show("kube2iam.service", "ActiveState") == "active"
    assert served_role(node) == POD_ROLE
    assert pod_never_reached_upstream(node)


def test_crash_loop_restarts_with_a_growing_backoff(node, ready):
    backoff = re.compile(r"waiting (\d+)s before serving \(restart backoff\)")
    journal = "journalctl -b --no-pager -o cat -u kube2iam.service"
    node.sh("systemctl restart kube2iam.service")  # a clean exit: no failure history
    seen = len(backoff.findall(node.sh(journal).stdout))
    for _ in range(3):
        before = node.show("kube2iam.service", "MainPID", "NRestarts")
        node.sh(f"kill -9 {before['MainPID']}")

        def restarted():
            now = node.show("kube2iam.service", "MainPID", "NRestarts", "ActiveState")
            return (now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])
                    and int(now["NRestarts"]) > int(before["NRestarts"]))

        assert node.wait_for(restarted, SERVE_WAIT, "systemd restarted kube2iam"), node.show(
            "kube2iam.service", "ActiveState", "StatusText")
    log = node.sh(journal).stdout
    waits = backoff.findall(log)[seen:]
    print(f"\nbackoff after each kill -9: {waits} s")
    assert waits == ["1", "2", "4"], log
    assert served_role(node) == POD_ROLE
    node.sh("systemctl restart kube2iam.service")  # and a clean restart clears it again


# What the sandboxed daemon may and may not touch, proven by running a probe under the installed
# unit's own [Service] sandbox settings (a copy of kube2iam.service with only the ExecStart= and the
# service-type lines replaced). The files stand in for a node's kubelet state.
NOT_SANDBOX = ("Type=", "NotifyAccess=", "ExecStartPre=", "ExecStart=", "Restart", "WatchdogSec=",
               "TimeoutStopSec=")
PROBE = r"""
ok() { if "$@" >/dev/null 2>&1; then echo "yes $*"; else echo "no $*"; fi; }
ok cat /var/lib/kubelet/kubeconfig
ok cat /var/lib/kubelet/pki/kubelet-client-current.pem
ok cat /etc/kubernetes/pki/ca.crt
ok cat /var/lib/kubelet/pods/uid-1/volumes/secret/token
ok cat /var/lib/kubelet/pods/uid-2/volumes/kubernetes.io~secret/token/token
ok cat /var/lib/kubelet/mounted/file
ok ls /var/lib/dpkg
ok test -e /run/dbus/system_bus_socket
ok systemctl --no-pager show -p Version
ok busctl --system --no-pager list
ok test -e /run/containerd/containerd.sock
ok touch /etc/kube2iam-probe
ok touch /var/lib/kubelet/kube2iam-probe
ok touch /tmp/kube2iam-probe
ok ls /root
"""


@pytest.fixture(scope="module")
def sandbox_probe(node):
    node.sh("mkdir -p /var/lib/kubelet/pki /var/lib/kubelet/pods/uid-1/volumes/secret "
            "/etc/kubernetes/pki /run/containerd /root && "
            "echo kubeconfig >/var/lib/kubelet/kubeconfig && "
            "echo key >/var/lib/kubelet/pki/kubelet-client-current.pem && "
            "chmod 0600 /var/lib/kubelet/pki/kubelet-client-current.pem && "
            "echo ca >/etc/kubernetes/pki/ca.crt && "
            "echo secret >/var/lib/kubelet/pods/uid-1/volumes/secret/token && "
            "touch /run/containerd/containerd.sock")
    # file systems mounted below /var/lib/kubelet, as kubelet mounts a pod's secret volume (a
    # tmpfs): the sandbox binds the directory without them (norbind)
    for path in ("/var/lib/kubelet/pods/uid-2/volumes/kubernetes.io~secret/token/token",
                 "/var/lib/kubelet/mounted/file"):
        mnt = os.path.dirname(path)
        node.sh(f"mkdir -p '{mnt}' && (mountpoint -q '{mnt}' || mount -t tmpfs -o size=64k tmpfs '{mnt}') && "
                f"echo secret >'{path}'")
    unit = node.sh("systemctl cat kube2iam.service").stdout
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    keep = [l for l in service.splitlines()
            if l.strip() and not l.startswith("#") and not l.startswith(NOT_SANDBOX)]
    probe_unit = ("[Service]\nType=oneshot\nStandardOutput=file:/run/kube2iam-probe.out\n"
                  + "\n".join(keep) + "\nExecStart=/bin/sh /usr/local/sbin/kube2iam-probe\n")
    node.sh(f"cat >/usr/local/sbin/kube2iam-probe <<'EOF'\n{PROBE}\nEOF\n"
            f"cat >/run/systemd/system/kube2iam-probe.service <<'EOF'\n{probe_unit}EOF\n"
            "systemctl daemon-reload && systemctl start kube2iam-probe.service")
    out = node.sh("cat /run/kube2iam-probe.out").stdout
    return {l.split(" ", 1)[1]: l.startswith("yes") for l in out.splitlines() if " " in l}


def test_sandbox_reads_kubeconfig_and_kubelet_pki_as_root_without_capabilities(sandbox_probe):
    assert sandbox_probe["cat /var/lib/kubelet/kubeconfig"], sandbox_probe
    assert sandbox_probe["cat /var/lib/kubelet/pki/kubelet-client-current.pem"], sandbox_probe
    assert sandbox_probe["cat /etc/kubernetes/pki/ca.crt"], sandbox_probe


def test_sandbox_hides_pod_secrets_other_state_and_control_sockets(sandbox_probe):
    for hidden in ("cat /var/lib/kubelet/pods/uid-1/volumes/secret/token", "ls /var/lib/dpkg",
                   "cat /var/lib/kubelet/pods/uid-2/volumes/kubernetes.io~secret/token/token",
                   "cat /var/lib/kubelet/mounted/file",
                   "test -e /run/dbus/system_bus_socket",
                   # PID 1's private socket stays visible (a mode-0000 inode over it): what matters
                   # is that root without capabilities cannot talk to PID 1 or D-Bus through it.
                   "systemctl --no-pager show -p Version", "busctl --system --no-pager list",
                   "test -e /run/containerd/containerd.sock", "ls /root"):
        assert not sandbox_probe[hidden], (hidden, sandbox_probe)


def test_sandbox_is_read_only_but_for_a_private_tmp(sandbox_probe):
    assert not sandbox_probe["touch /etc/kube2iam-probe"]
    assert not sandbox_probe["touch /var/lib/kubelet/kube2iam-probe"]
    assert sandbox_probe["touch /tmp/kube2iam-probe"]


def listener(node):
    """The listening socket's inode on the app port: a new one means the port was closed."""
    out = node.sh(f"ss -Hltne 'sport = :{APP_PORT}'").stdout
    m = re.search(r"ino:(\d+)", out)
    return m.group(1) if m else None


def test_upgrade_restarts_the_service_but_keeps_the_socket_open(node, ready):
    sock_before = node.show("kube2iam.socket", "ActiveEnterTimestampMonotonic")
    ino_before = listener(node)
    assert ino_before, "nothing listens on the app port"
    kubelet_before = kubelet_start(node)
    # Reinstalling the same version runs the maintainer scripts of an upgrade ("configure <old>").
    node.sh("dpkg -i --force-confold /var/tmp/kube2iam.deb")
    assert node.show("kube2iam.socket", "ActiveState") == "active"
    assert node.show("kube2iam.socket", "ActiveEnterTimestampMonotonic") == sock_before
    assert listener(node) == ino_before
    assert node.pod_connect()
    assert kubelet_start(node) == kubelet_before, "the upgrade restarted kubelet"
    assert served_role(node) == POD_ROLE


def test_upgrade_leaves_an_enabled_metrics_socket_listening(node, ready):
    # as the unit's comment says: systemd refuses to start a socket whose service runs
    r = node.sh("systemctl enable kube2iam-metrics.socket && systemctl stop kube2iam.service && "
                "systemctl start kube2iam-metrics.socket kube2iam.service", check=False)
    assert r.returncode == 0, r.stdout + node.sh("journalctl -b --no-pager -n 40 -u kube2iam.service").stdout
    before = node.show("kube2iam-metrics.socket", "ActiveState", "ActiveEnterTimestampMonotonic")
    assert before["ActiveState"] == "active"
    node.sh("dpkg -i --force-confold /var/tmp/kube2iam.deb")
    assert node.show("kube2iam-metrics.socket", "ActiveState", "ActiveEnterTimestampMonotonic") == before
    assert node.sh("systemctl is-enabled kube2iam-metrics.socket").stdout.strip() == "enabled"
    assert "kube2iam_" in node.sh("curl -sS -m 10 http://127.0.0.1:9181/metrics").stdout


@pytest.fixture(scope="module")
def removal(node, ready):
    """Removes the package (dpkg -r, then -P) on the running node; records before and after."""
    before = {"rule": node.rule_present(),
              "unit": node.sh("test -e /lib/systemd/system/kube2iam.service", check=False).returncode == 0}
    # a daemon-only flag in the settings must not trouble the maintainer scripts
    node.sh("sed -i 's/^KUBE2IAM_ARGS=\"/KUBE2IAM_ARGS=\"--iam-role-session-ttl=5m /' /etc/default/kube2iam")
    removed = node.sh("dpkg -r kube2iam 2>&1", check=False)
    after = {
        "dpkg_r": removed.returncode, "dpkg_r_out": removed.stdout,
        "rule": node.rule_present(),
        "service": node.show("kube2iam.service", "LoadState"),
        "socket": node.show("kube2iam.socket", "LoadState"),
        "socket_file": node.sh("test -e /lib/systemd/system/kube2iam.socket", check=False).returncode == 0,
        "dropin": node.show("kubelet.service", "DropInPaths"),
        "listening": node.sh(f"ss -Hltn 'sport = :{APP_PORT}'").stdout.strip(),
        "envfile_after_remove": node.sh("test -e /etc/default/kube2iam", check=False).returncode == 0,
    }
    purged = node.sh("dpkg -P kube2iam 2>&1", check=False)
    after["dpkg_p"] = purged.returncode
    after["dpkg_p_out"] = purged.stdout
    after["rule_after_purge"] = node.rule_present()
    after["envfile_after_purge"] = node.sh("test -e /etc/default/kube2iam", check=False).returncode == 0
    return before, after


def test_removal_removes_units_dropin_and_listener(removal):
    before, after = removal
    assert before["unit"]
    assert after["dpkg_r"] == 0, after["dpkg_r_out"]
    assert after["service"] == "not-found" and after["socket"] == "not-found", after
    assert not after["socket_file"]
    assert "10-kube2iam.conf" not in after["dropin"]
    assert after["listening"] == "", after["listening"]


def test_purge_removes_environment_file_kept_by_remove(removal):
    _, after = removal
    assert after["envfile_after_remove"], "dpkg -r must keep the conffile"
    assert after["dpkg_p"] == 0 and not after["envfile_after_purge"]


def test_removal_keeps_the_redirect_and_says_so_purge_deletes_it(removal):
    before, after = removal
    assert before["rule"], "the redirect was never installed"
    # kubelet's pods outlive the package: without the rule they would reach the node's role
    assert after["rule"], "dpkg -r deleted the redirect"
    print("\n" + after["dpkg_r_out"])
    assert "the nftables redirect of 169.254.169.254 stays after removal" in after["dpkg_r_out"]
    assert after["dpkg_p"] == 0, after["dpkg_p_out"]
    assert not after["rule_after_purge"], after["dpkg_p_out"]
    assert "deleted the nftables redirect (table ip kube2iam)" in after["dpkg_p_out"]
