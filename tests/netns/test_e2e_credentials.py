# SPDX-License-Identifier: BSD-3-Clause
"""End to end in namespaces (issue 6): the daemon and the fakes of the outside world in a "node"
namespace, clients in "pod" namespaces joined to it by veth pairs, the redirect written by
kube2iam-nft (or by the daemon's own --iptables) in the node's real nftables.

The fake upstream IMDS listens on 169.254.169.254:80 inside the node namespace, as the real one
answers a real node: a pod request that escaped the redirect would reach it (and get the node's
role), so "never reaches the upstream" is observed, not assumed. The test process holds the
daemon's listening socket, as systemd's kube2iam.socket does, so a killed daemon leaves pods'
connections waiting in the backlog (a timeout, never an RST)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))

from netns_util import in_netns  # noqa: E402
from node_env import BASE_ARN, NodeEnv  # noqa: E402

IMDS = "169.254.169.254"
APP_PORT = 8181
CREDS = f"http://{IMDS}/latest/meta-data/iam/security-credentials/"
# curl's exit statuses: what a pod saw
CURL_REFUSED = 7
CURL_TIMEOUT = 28
SERVE_WAIT = 30     # seconds: bounded waits for the daemon to serve a pod (loaded CI machines)

def kube2iam_path():
    build = os.environ.get("KUBE2IAM_BUILD_DIR",
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
    path = os.path.join(build, "kube2iam")
    if not os.path.exists(path):
        pytest.fail(f"{path} not built (set KUBE2IAM_BUILD_DIR or run meson/ninja)")
    return path


def hermetic_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LISTEN_", "NOTIFY_SOCKET", "JOURNAL_STREAM", "KUBE2IAM_"))
           and k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    return env


class NodeDaemon:
    """kube2iam inside the node namespace. With a held listener (listener=socket) it gets the fd as
    systemd passes it (LISTEN_FDS, LISTEN_PID of the daemon itself); otherwise it binds its own."""

    def __init__(self, ns, args, listener=None, notify=None, runtime_dir=None):
        self.log = tempfile.NamedTemporaryFile(prefix="k2i-e2e-", suffix=".log", delete=False)
        env = hermetic_env()
        if runtime_dir is not None:
            env["RUNTIME_DIRECTORY"] = runtime_dir
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
        pass_fds = ()
        if listener is not None:
            os.set_inheritable(listener.fileno(), True)
            # the fd must be 3 (SD_LISTEN_FDS_START) and LISTEN_PID the daemon's pid: bash (dash
            # cannot name fds above 9) sets both and execs the daemon in its own place
            script = (f'exec 3<&{listener.fileno()} {listener.fileno()}<&-; '
                      'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=kube2iam; exec "$@"')
            cmd = ["ip", "netns", "exec", ns, "bash", "-c", script, "bash", kube2iam_path(), *args]
            pass_fds = (listener.fileno(),)
        else:
            cmd = ["ip", "netns", "exec", ns, kube2iam_path(), *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=pass_fds)

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        os.unlink(self.log.name)


@pytest.fixture
def world(node, make_pod):
    """The node namespace with the fakes, a pod on an interface the redirect matches (cali…) and a
    pod on one it does not (lxc…), both known to the API server with their own roles."""
    run_ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)  # noqa: E731
    run_ip("-n", node.name, "addr", "add", f"{IMDS}/32", "dev", "lo")
    tmp = tempfile.mkdtemp(prefix="k2i-e2e-")
    with in_netns(node.name):
        env = NodeEnv(workdir=tmp, imds_host=IMDS, imds_port=80)
    daemons = []
    held = []
    try:
        pod = make_pod("cali" + os.urandom(4).hex(), "10.201.1")
        stray = make_pod("lxc" + os.urandom(4).hex(), "10.201.2")
        env.add_pod("app", pod.ip, role="app-role")
        env.add_pod("stray", stray.ip, role="stray-role")

        def daemon(*extra, hold=True, listener=None, notify=None, runtime_dir=None):
            if hold and listener is None:
                with in_netns(node.name):
                    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    listener.bind(("0.0.0.0", APP_PORT))
                    listener.listen(128)
                held.append(listener)
            args = env.daemon_args(f"--base-role-arn={BASE_ARN}", f"--host-ip={pod.node_ip}",
                                   f"--app-port={APP_PORT}", "--backoff-max-elapsed-time=300ms",
                                   "--backoff-max-interval=100ms", *extra)
            d = NodeDaemon(node.name, args, listener, notify, runtime_dir)
            d.listener = listener
            d.args = args
            daemons.append(d)
            return d

        yield {"node": node, "env": env, "pod": pod, "stray": stray, "daemon": daemon,
               "pattern": pod.node_if[:4] + "+"}
    finally:
        for d in daemons:
            d.close()
        for s in held:
            s.close()
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def curl(ns, url, timeout=3):
    return ns.exec("curl", "-sS", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}", url,
                   timeout=timeout + 30)


def served_role(ns, daemon=None, timeout=SERVE_WAIT):
    """The role the pod's metadata request returns, waiting (bounded) for the daemon to know it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = curl(ns, CREDS)
        body, _, code = last.stdout.rpartition("\n")
        if last.returncode == 0 and code == "200":
            return body
        time.sleep(0.3)
    raise AssertionError(f"the pod was never served: exit {last.returncode} {last.stdout} {last.stderr}\n"
                         + (daemon.output() if daemon else ""))


def upstream_requests_from(env, ip):
    return [r for r in env.imds.requests() if r["client"] == ip]


def aws_export(ns):
    home = tempfile.mkdtemp(prefix="k2i-aws-")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"HOME": home, "AWS_CONFIG_FILE": os.path.join(home, "none"),
                    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none"),
                    "AWS_DEFAULT_REGION": "us-east-1"})
        return ns.exec("/usr/bin/aws", "configure", "export-credentials", "--format", "env", env=env,
                       timeout=120)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def issued_keys(env, role):
    return {c["access_key_id"] for c in env.sts.calls()
            if c["role_arn"] == BASE_ARN + role and c.get("result") == "Success"}


def install_redirect(world):
    node, pod = world["node"], world["pod"]
    res = node.helper("--host-ip", pod.node_ip, "--host-interface", world["pattern"],
                      "--app-port", str(APP_PORT), "install")
    assert res.returncode == 0, res.stderr


def test_pod_gets_its_role_through_the_redirect_with_curl_and_awscli(world):
    node, env, pod = world["node"], world["env"], world["pod"]
    install_redirect(world)
    table = node.nft("list", "table", "ip", "kube2iam").stdout
    print("\n# nft list table ip kube2iam (as kube2iam-nft install wrote it)\n" + table)
    d = world["daemon"]()

    # no endpoint override anywhere: the pod talks to 169.254.169.254 as on EC2
    assert served_role(pod.ns, d) == "app-role"
    r = curl(pod.ns, CREDS + "app-role")
    body, _, code = r.stdout.rpartition("\n")
    assert code == "200", r.stdout
    creds = json.loads(body)
    assert creds["Code"] == "Success" and creds["AccessKeyId"] in issued_keys(env, "app-role")

    r = aws_export(pod.ns)
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if "AWS_ACCESS_KEY_ID" in x][0]
    assert line.split("=", 1)[1] in issued_keys(env, "app-role")

    # The daemon saw the pod's own address: the API server has "app" at the veth address and at
    # no other, and the daemon logged that address; the upstream saw nothing from the pod.
    assert pod.ip in d.output(), d.output()
    assert upstream_requests_from(env, pod.ip) == []
    for s in env.secrets():
        assert s not in d.output(), "a secret issued by the fakes appears in the daemon's output"


def test_killed_daemon_leaves_the_rule_and_pods_wait_instead_of_reaching_upstream(world):
    node, env, pod = world["node"], world["env"], world["pod"]
    install_redirect(world)
    d = world["daemon"]()
    assert served_role(pod.ns, d) == "app-role"

    d.kill()
    assert node.exec("nft", "list", "table", "ip", "kube2iam").returncode == 0
    check = node.helper("--host-ip", pod.node_ip, "--host-interface", world["pattern"],
                        "--app-port", str(APP_PORT), "check")
    assert check.returncode == 0, check.stderr
    r = curl(pod.ns, CREDS, timeout=3)
    # queued in the held socket's backlog: no answer, no RST, nothing from the node's role
    assert r.returncode == CURL_TIMEOUT, (r.returncode, r.stdout, r.stderr)
    assert upstream_requests_from(env, pod.ip) == []

    # A request made while no daemon runs waits in the backlog and is answered by the next
    # daemon on the same socket (what systemd's restart does): not lost, not refused.
    waiting = pod.ns.popen("curl", "-sS", "-m", "60", "-o", "-", "-w", "\n%{http_code}", CREDS,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert waiting.poll() is None
        world["daemon"](listener=d.listener)
        out, err = waiting.communicate(timeout=90)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0 and out.rpartition("\n")[0] == "app-role", (waiting.returncode, out, err)
    assert upstream_requests_from(env, pod.ip) == []


def test_pod_on_an_interface_no_pattern_matches_is_not_redirected(world):
    env, pod, stray = world["env"], world["pod"], world["stray"]
    install_redirect(world)
    d = world["daemon"]()
    assert served_role(pod.ns, d) == "app-role"

    # the stray pod's request is not rewritten: it reaches what really is at 169.254.169.254 (here
    # the fake upstream, answering with the node's role), never the daemon
    r = curl(stray.ns, CREDS)
    body, _, code = r.stdout.rpartition("\n")
    assert r.returncode == 0 and code == "200", (r.returncode, r.stdout, r.stderr)
    assert body == env.imds.state.role
    assert [q["path"] for q in upstream_requests_from(env, stray.ip)] == [
        "/latest/meta-data/iam/security-credentials/"]
    # the daemon never saw the request (it only warns that the pod is routed outside the patterns)
    assert not [ln for ln in d.output().splitlines() if stray.ip in ln and "routed through" not in ln]


def test_daemon_iptables_flag_installs_the_same_redirect(world):
    node, env, pod = world["node"], world["env"], world["pod"]
    assert node.exec("nft", "list", "table", "ip", "kube2iam").returncode != 0
    d = world["daemon"]("--iptables", f"--host-interface={world['pattern']}", "--listen-address=0.0.0.0",
                        hold=False)
    # The pod must not ask before the daemon has installed the redirect: until then nothing
    # protects 169.254.169.254 (that is why the units install it before kubelet starts).
    deadline = time.monotonic() + SERVE_WAIT
    while node.exec("nft", "list", "table", "ip", "kube2iam").returncode != 0:
        assert d.proc.poll() is None and time.monotonic() < deadline, d.output()
        time.sleep(0.1)
    assert served_role(pod.ns, d) == "app-role"
    # exactly what kube2iam-nft install writes for the same settings
    check = node.helper("--host-ip", pod.node_ip, "--host-interface", world["pattern"],
                        "--app-port", str(APP_PORT), "check")
    assert check.returncode == 0, check.stderr
    assert upstream_requests_from(env, pod.ip) == []


def forwarded_for(env, ip):
    """What the fake upstream got on ip's behalf: the daemon forwards with X-Forwarded-For."""
    return [r for r in env.imds.requests() if any(k.lower() == "x-forwarded-for" and ip in v for k, v in r["headers"])]


def test_only_pods_of_the_node_get_metadata_and_the_extended_api_is_the_pods(world, make_pod):
    env, pod = world["env"], world["pod"]
    # another host of the network reaching the daemon's port directly: no pod the API server knows
    stranger = make_pod("cali" + os.urandom(4).hex(), "10.201.3")
    install_redirect(world)
    d = world["daemon"]("--listen-address=0.0.0.0")
    assert served_role(pod.ns, d) == "app-role"

    body, _, code = curl(pod.ns, f"http://{IMDS}/latest/meta-data/instance-id").stdout.rpartition("\n")
    assert (code, body) == ("200", "i-0123456789abcdef0")
    assert [r["path"] for r in forwarded_for(env, pod.ip)] == ["/latest/meta-data/instance-id"]
    # the SDKs' extended API answers with the pod's role, never the node's keys
    r = curl(pod.ns, f"http://{IMDS}/latest/meta-data/iam/security-credentials-extended/app-role")
    body, _, code = r.stdout.rpartition("\n")
    assert code == "200" and json.loads(body)["AccessKeyId"] in issued_keys(env, "app-role"), r.stdout
    assert env.imds.access_key not in r.stdout

    for path in ("/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/",
                 "/latest/user-data"):
        r = curl(stranger.ns, f"http://{stranger.node_ip}:{APP_PORT}{path}", timeout=10)
        body, _, code = r.stdout.rpartition("\n")
        assert r.returncode == 0 and code == "404", (path, r.stdout, r.stderr)
    assert forwarded_for(env, stranger.ip) == [] and upstream_requests_from(env, stranger.ip) == []


ROUTED_OUTSIDE = "are routed through interfaces that --host-interface="


@pytest.mark.parametrize("patterns, outside", [
    (None, ["app", "stray"]),           # an empty KUBE2IAM_ARGS: docker0 only, which no pod is behind
    ("{cali}", ["stray"]),              # the lxc… pod is missed
    ("{cali},lxc+", []),                # every pod's interface matches
])
def test_daemon_warns_in_journal_and_status_when_pods_are_routed_outside_host_interface(world, patterns,
                                                                                     outside):
    from k2i_testlib import NotifySocket

    notify = NotifySocket()
    runtime_dir = tempfile.mkdtemp(prefix="k2i-e2e-run-")
    try:
        extra = [f"--host-interface={patterns.format(cali=world['pattern'])}"] if patterns else []
        d = world["daemon"](*extra, notify=notify, runtime_dir=runtime_dir)
        # the check runs when the pod list is in, before the STATUS= line that says so
        assert notify.wait_for("STATUS=Serving; Synced 2 pods", timeout=SERVE_WAIT) is not None, (
            notify.assignments(), d.output())
        status = [a for a in notify.assignments() if a.startswith("STATUS=")]
        warned = [ln for ln in d.output().splitlines() if ROUTED_OUTSIDE in ln]
        print("\n" + "\n".join(warned + status[-1:]))
        if outside:
            assert warned, d.output()
            assert f"{len(outside)} of 2 pods" in warned[0], warned
            assert "WARNING" in status[-1] and "routed outside --host-interface" in status[-1], status
            assert any(f"default/{name}" in warned[0] for name in outside), warned
        else:
            assert not warned, warned
            assert not any("WARNING" in a for a in status), status

        # `kube2iam doctor` on the node says the same, from the daemon's explain socket
        doctor = world["node"].exec(kube2iam_path(), "doctor", *d.args, timeout=90,
                                    env={**hermetic_env(), "RUNTIME_DIRECTORY": runtime_dir})
        line = [ln for ln in doctor.stdout.splitlines() if ln.split()[1:2] == ["pod-interfaces"]]
        assert len(line) == 1, doctor.stdout + doctor.stderr
        if outside:
            assert line[0].startswith("FAIL ") and f"{len(outside)} of 2 pods" in line[0], line
            assert "-- fix: " in line[0] and doctor.returncode == 1, line
        else:
            assert line[0].startswith("PASS ") and "2 pods, all routed" in line[0], line
    finally:
        notify.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)
