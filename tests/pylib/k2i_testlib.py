# SPDX-License-Identifier: BSD-3-Clause
"""Test helpers shared by every pytest suite: where the built binaries are, free ports, the
daemon as a process, a systemd notify socket. (Fixtures live in tests/conftest.py; this is a
plain module so suites with their own conftest.py can import it without a name clash.)"""

import array
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))


def build_dir():
    return os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(REPO, "build"))


def binary(name):
    path = os.path.join(build_dir(), name)
    if not os.path.exists(path):
        pytest.fail(f"{path} not built (set KUBE2IAM_BUILD_DIR or run meson/ninja)")
    return path


def message_ids():
    """The daemon's MESSAGE_IDs by name ("CREDS_ISSUED": "36ae..."), read from src/basic/log.h so
    that tests and the journal catalog cannot drift from the code."""
    import re
    with open(os.path.join(REPO, "src", "basic", "log.h"), encoding="utf-8") as f:
        text = f.read()
    return dict(re.findall(r'#define LOG_MESSAGE_ID_([A-Z_]+) "([0-9a-f]{32})"', text))


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="k2i-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode(errors="replace"))

    def assignments(self):
        out = []
        with self.lock:
            for m in self.messages:
                out.extend(line for line in m.split("\n") if line)
        return out

    def wait_for(self, prefix, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for a in self.assignments():
                if a.startswith(prefix):
                    return a
            time.sleep(0.02)
        return None

    def close(self):
        self.stopping = True
        self.thread.join(timeout=1)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FdStore(NotifySocket):
    """NOTIFY_SOCKET with systemd's fd store: named fds kept across runs of the daemon."""

    def __init__(self):
        self.fds = []  # [(name, fd)]
        self.removals = 0
        super().__init__()

    def _run(self):
        while not self.stopping:
            fds = array.array("i")
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
            except socket.timeout:
                continue
            except OSError:
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            text = data.decode(errors="replace")
            fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
            with self.lock:
                if fields.get("FDSTOREREMOVE") == "1":
                    self.removals += 1
                    for n, fd in [x for x in self.fds if x[0] == fields.get("FDNAME")]:
                        os.close(fd)
                        self.fds.remove((n, fd))
                if fields.get("FDSTORE") == "1":
                    self.fds.extend((fields.get("FDNAME", "stored"), fd) for fd in fds)
                else:
                    for fd in fds:  # BARRIER=1's pipe: closing it releases the barrier
                        os.close(fd)
                self.messages.append(text)

    def snapshot(self):
        with self.lock:
            return [fd for name, fd in self.fds if name == "snapshot"]

    def stored(self, fd):
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            return f.read()

    def clear_messages(self):
        with self.lock:
            self.messages.clear()

    def close(self):
        super().close()
        for _, fd in self.fds:
            os.close(fd)
        self.fds = []

    def sync(self, timeout=10.0):
        """Returns once every datagram sent before this call was handled (a marker sent after them
        came through): what a daemon that has exited stored is then in the store."""
        marker = f"K2I_TEST_SYNC={time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(marker.encode(), self.path)
        if self.wait_for(marker, timeout) is None:
            raise RuntimeError("the fd store stand-in stopped reading")

    def handoff_env(self):
        """LISTEN_FDS and LISTEN_FDNAMES for a run handed what the store holds (Daemon(fds=...))."""
        self.sync()
        with self.lock:
            if not self.fds:
                return {}, []
            return ({"LISTEN_FDS": str(len(self.fds)), "LISTEN_FDNAMES": ":".join(n for n, _ in self.fds)},
                    [fd for _, fd in self.fds])


class Daemon:
    """kube2iam as a child process, with its output kept in a file."""

    def __init__(self, args, env=None, port=None, socket_activate=False, notify=None, host="127.0.0.1",
                 binary_name="kube2iam", wait=True, default_node=True, fds=None):
        self.port = port or free_port()
        self.host = host
        self.notify = notify
        self.logfile = tempfile.NamedTemporaryFile(prefix="k2i-daemon-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        # hermetic: no credentials, region or proxy of the machine running the tests
        for k in list(full_env):
            if k.startswith("AWS_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
                full_env.pop(k)
        full_env.pop("KUBE2IAM_ARGS", None)
        full_env.pop("JOURNAL_STREAM", None)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("LISTEN_FDS", None)
        full_env.update(env or {})
        if notify is not None:
            full_env["NOTIFY_SOCKET"] = notify.path
        cmd = [binary(binary_name)]
        # never reach a real AWS endpoint, API server or metadata service: loopback stand-ins
        # unless the test names its own
        args = list(args)
        if binary_name == "kube2iam":
            given = " ".join(args)
            if "--metadata-addr" not in given:
                args.append("--metadata-addr=127.0.0.1:9")
            if "--sts-endpoint" not in given:
                args.append("--sts-endpoint=http://127.0.0.1:9")
            if "--kubeconfig" not in given and "--api-server" not in given:
                args.append("--kubeconfig=" + os.path.join(tempfile.gettempdir(), "k2i-no-such-kubeconfig"))
            # default_node=False: the daemon picks the node name itself (certificate, host name)
            if "--node" not in given and default_node:
                args.append("--node=node-1")
        if socket_activate:
            cmd = ["systemd-socket-activate", "-l", f"{host}:{self.port}"]
            if notify is not None:
                cmd += ["-E", "NOTIFY_SOCKET"]
            for k in (env or {}):
                cmd += ["-E", k]
            cmd += [binary(binary_name)]
            # the daemon refuses a passed socket on another port than --app-port
            if not any(a.startswith("--app-port") for a in args):
                args = [f"--app-port={self.port}"] + list(args)
        else:
            args = [f"--app-port={self.port}"] + list(args)
            if not any(a.startswith("--listen-address") for a in args):
                args.append(f"--listen-address={host}")
        self.cmd = cmd + args
        preexec, keep = None, ()
        if fds:
            # handed over as systemd does: fd 3 onwards, LISTEN_PID the daemon's own (sh execs it)
            self.cmd = ["sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "sh"] + self.cmd
            keep = tuple(range(3, 3 + len(fds)))

            def preexec():
                high = [os.dup2(fd, 100 + i) for i, fd in enumerate(fds)]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)
        self.proc = subprocess.Popen(self.cmd, env=full_env, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=preexec, pass_fds=keep)
        if wait and not socket_activate:
            if not wait_for_port(host, self.port, proc=self.proc):
                out = self.output()
                self.kill()
                raise RuntimeError(f"daemon did not start: {self.cmd}\n{out}")
        elif wait and socket_activate:
            wait_for_port(host, self.port, proc=self.proc)

    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"

    def output(self):
        with open(self.logfile.name, "r", errors="replace") as f:
            return f.read()

    def send(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.send(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def sanitizer_report(self):
        out = self.output()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in out:
                return out[out.index(marker) - 200 if out.index(marker) > 200 else 0:][:6000]
        return None

    def cleanup(self):
        """Stops the daemon the way systemd would (SIGTERM), so sanitizers get to report at exit."""
        if self.proc.poll() is None:
            try:
                self.stop(signal.SIGTERM, timeout=15)
            except subprocess.TimeoutExpired:
                pass
        report = self.sanitizer_report()
        try:
            os.unlink(self.logfile.name)
        except OSError:
            pass
        return report




def assert_no_secrets(text, env):
    for s in env.secrets():
        assert s not in text, "a secret issued by the fakes appears in the daemon's output"


def http_get(d, path, source="127.0.0.1", timeout=10.0):
    """One GET on a new connection from `source` (a pod is a loopback address): (status, body)."""
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(pred, timeout=20.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def caches_synced(d):
    """The daemon's /healthz says its pod store is synced with the API server."""
    import http.client
    import json
    c = http.client.HTTPConnection(d.host, d.port, timeout=5)
    try:
        c.request("GET", "/healthz")
        return bool(json.loads(c.getresponse().read()).get("cachesSynced"))
    finally:
        c.close()


def start_with_pods(env, daemon_factory, pods, *args, **kw):
    """The daemon on a node (tests/fakes/node_env.py) where each address in pods is a pod of this
    node without a role: only pods get metadata, so a test of the proxy's mechanics makes its
    clients pods. kw goes to the Daemon. Returns once the pod store is synced."""
    for i, ip in enumerate(pods):
        env.add_pod(f"client-{i}", ip)
    d = daemon_factory(env.daemon_args(*args), **kw)
    wait_until(lambda: caches_synced(d), what="pod cache sync")
    return d


def client_key_lines(env):
    """The base64 lines of the kubelet client key the daemon reads: none may reach its output."""
    text = open(env.kubelet_pem).read()
    key = text[text.index("PRIVATE KEY-----"):]
    return [ln for ln in key.splitlines()[1:] if ln and "-----" not in ln][:4]


def assert_clean_output(out, env):
    """None of the fakes' secrets in the daemon's output: STS and IMDS keys and tokens, and the
    kubelet client key the daemon reads for the API server."""
    assert_no_secrets(out, env)
    for ln in client_key_lines(env):
        assert ln not in out, "the API server client key appears in the daemon's output"


def metric_value(d, name):
    """The value of an unlabelled metric on the daemon's /metrics, or None."""
    for line in http_get(d, "/metrics")[1].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_namespaces(d, n=1):
    """Waits until the daemon knows n namespaces: synced (caches_synced) means the pod list; the
    namespace list may land later, and a pod of a namespace not known yet is refused with another
    message than the one a test of namespace annotations expects."""
    wait_until(lambda: (metric_value(d, "kube2iam_namespaces_known") or 0) >= n, what=f"{n} namespace(s) known")
