# SPDX-License-Identifier: BSD-3-Clause
"""systemd integration without PID 1: socket activation, sd_notify, the watchdog, SIGTERM drain."""

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from k2i_testlib import binary, free_port, start_with_pods, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                reason="systemd-socket-activate not installed")


def get(d, path, timeout=10):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_socket_activation_serves_on_the_passed_socket_and_notifies_ready(node_env, notify_socket, daemon_factory):
    # the client (127.0.0.1) is a pod of the node: only pods get metadata
    d = start_with_pods(node_env, daemon_factory, ["127.0.0.1"], socket_activate=True,
                        notify=notify_socket)
    r, body = get(d, "/latest/meta-data/instance-id")
    assert r.status == 200 and body == b"i-0123456789abcdef0"
    assert notify_socket.wait_for("READY=1") is not None
    status = notify_socket.wait_for("STATUS=Serving")
    assert status is not None, notify_socket.assignments()
    assert "socket(s) passed by systemd" in d.output()


def test_passed_socket_on_another_port_than_app_port_is_refused_naming_both(fake_imds, notify_socket,
                                                                          daemon_factory):
    """The redirect sends pods to --app-port: a daemon serving a socket on another port would leave
    every pod unanswered, so it refuses to start with the configuration-error status."""
    from k2i_testlib import free_port

    other = free_port()
    # (systemd-socket-activate starts the daemon on the factory's first connection)
    d = daemon_factory([f"--metadata-addr={fake_imds.addr}", f"--app-port={other}"], socket_activate=True,
                       notify=notify_socket)
    rc = d.proc.wait(timeout=20)
    out = d.output()
    assert rc == 2, out
    assert f"listens on port {d.port} but --app-port is {other}" in out, out
    assert notify_socket.wait_for("READY=1", timeout=0.5) is None


def test_watchdog_pings_when_asked(fake_imds, notify_socket, daemon_factory):
    d = daemon_factory([f"--metadata-addr={fake_imds.addr}"], socket_activate=True, notify=notify_socket,
                       env={"WATCHDOG_USEC": "200000"})
    get(d, "/healthz")
    assert notify_socket.wait_for("WATCHDOG=1", timeout=5) is not None


def test_sigterm_drains_requests_in_progress_and_exits_0(node_env, notify_socket, daemon_factory):
    fake_imds = node_env.imds
    d = start_with_pods(node_env, daemon_factory, ["127.0.0.1"], notify=notify_socket)
    assert notify_socket.wait_for("READY=1")
    fake_imds.configure(delay=1.0)
    results = []

    def slow():
        results.append(get(d, "/latest/meta-data/local-ipv4"))

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 5
    while (not any(r["path"] == "/latest/meta-data/local-ipv4" for r in fake_imds.requests())
           and time.monotonic() < deadline):
        time.sleep(0.01)
    rc = d.stop(signal.SIGTERM)
    t.join(10)
    assert rc == 0
    assert results and results[0][0].status == 200 and results[0][1] == b"10.0.0.1"
    assert notify_socket.wait_for("STOPPING=1") is not None


def test_connections_during_restart_wait_in_the_backlog_and_are_served(node_env, notify_socket, daemon_factory):
    """Under socket activation the listening socket outlives the process: a connection made while
    no daemon runs waits in the backlog and is answered by the next one. systemd-socket-activate
    keeps the socket only while its child runs, so the test holds the socket itself (as systemd
    does) and hands a duplicate to each daemon instance."""
    import os
    import socket
    import subprocess

    node_env.add_pod("client", "127.0.0.1")  # only pods get metadata
    port = free_port()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(128)
    fd = lsock.fileno()

    def start():
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="kube2iam")
        env.pop("KUBE2IAM_ARGS", None)
        # the shell moves the socket to fd 3 and sets LISTEN_PID to its own pid, which exec keeps
        return subprocess.Popen(["/bin/bash", "-c", f'exec 3<&{fd}; exec {fd}<&-; LISTEN_PID=$$ exec "$0" "$@"',
                                 binary("kube2iam"), *node_env.daemon_args(f"--app-port={port}")],
                                env=env, pass_fds=(fd,),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    p1 = start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=1)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if c.recv(100).startswith(b"HTTP/1.1 200"):
                    c.close()
                    break
                c.close()
            except OSError:
                time.sleep(0.05)
        p1.send_signal(signal.SIGTERM)
        assert p1.wait(10) == 0
        # no daemon now: the connection is accepted by the kernel and waits
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        p2 = start()
        try:
            c.settimeout(10)
            data = b""
            while b"i-0123456789abcdef0" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data
            assert b"i-0123456789abcdef0" in data
        finally:
            c.close()
            p2.send_signal(signal.SIGTERM)
            p2.wait(10)
    finally:
        if p1.poll() is None:
            p1.kill()
        lsock.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root for unshare -n")
def test_iptables_flag_left_in_the_args_is_noted_once_under_socket_activation():
    # the daemon runs in a network namespace of its own (unshare -n execs in place, so systemd's
    # LISTEN_PID still matches): if it tried to install the redirect, it would not touch the host
    port = free_port()
    log = tempfile.TemporaryFile()
    cmd = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "unshare", "-n", binary("kube2iam"),
           "--iptables=true", f"--app-port={port}", "--host-interface=cali+", "--metadata-addr=127.0.0.1:9",
           "--node=node-1", "--sts-endpoint=http://127.0.0.1:9",
           "--kubeconfig=" + os.path.join(tempfile.gettempdir(), "k2i-no-such-kubeconfig")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LISTEN_", "KUBE2IAM_"))}
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        assert wait_for_port("127.0.0.1", port, proc=p)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/healthz")  # answered by the daemon itself, from inside its namespace
        r = c.getresponse()
        assert r.status == 200 and b"hostIP" in r.read()
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)
        log.seek(0)
        out = log.read().decode(errors="replace")
    assert out.count("--iptables: the redirect is installed by kube2iam-nft") == 1, out
    assert "nf_tables" not in out
    assert f"Listening on port {port} " in out, out
