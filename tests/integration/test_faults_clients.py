# SPDX-License-Identifier: BSD-3-Clause
"""Hostile and numerous clients: 1,000 idle connections, slowloris headers, pipelining, 64 KB
paths, invalid UTF-8 and NUL bytes in paths and headers, 500 source addresses while pods churn.
Throughout, a known pod's credential request is answered within its deadline. Loopback only:
pods are 127.x.y.z source addresses."""

import ctypes
import json
import os
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from k2i_testlib import assert_clean_output, http_get, wait_until
from node_env import BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]
CREDS = "/latest/meta-data/iam/security-credentials/"
# A credential request waits at most IMDS_SERVICE_CREDS_WAIT (5 s), doubled for a loaded machine.
DEADLINE = 10
KNOWN = "127.0.0.2"
# src/main.c: the kernel holds a silent connection this long before the daemon sees it
DEFER_ACCEPT_SEC = 1
# src/http/server.h: a request head is due this long after the daemon took the connection
HEAD_DEADLINE_SEC = 10
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture



def get(d, path, source="127.0.0.1", timeout=DEADLINE):
    return http_get(d, path, source, timeout)


def known_pod_served(d):
    try:
        status, body = get(d, CREDS + "app-role", KNOWN)
    except socket.timeout:
        raise AssertionError(f"the known pod was not answered within {DEADLINE} s")
    assert status == 200, (status, body)
    assert json.loads(body)["Code"] == "Success"


def raw(d, data, source="127.0.0.1", timeout=DEADLINE):
    """Sends bytes, returns what comes back until the daemon closes or goes quiet."""
    with socket.create_connection((d.host, d.port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    s.settimeout(0.5)
        except socket.timeout:
            pass
        except ConnectionResetError:
            pass
        return out



@pytest.fixture
def served(node_env, daemon_factory):
    # 1,000 client sockets here and as many in the daemon (which inherits the limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 1,000 connections")
    node_env.add_pod("app", KNOWN, role="app-role")
    d = daemon_factory(node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}"))
    wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    known_pod_served(d)
    yield d
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert d.proc.poll() is None, "the daemon died"
    assert_clean_output(d.output(), node_env)


def test_1000_idle_connections_do_not_block_a_known_pod(served):
    d = served
    idle = []
    try:
        # 10 per address, well under HTTP_MAX_CONNECTIONS_PER_IP (128), from 100 addresses
        for i in range(1000):
            idle.append(socket.create_connection((d.host, d.port), timeout=DEADLINE,
                                                 source_address=(f"127.0.10.{1 + i // 10}", 0)))
        known_pod_served(d)
        # the idle ones are still open (not dropped to make room): a request on one is answered
        idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle[0].recv(100).startswith(b"HTTP/1.1 200")
        known_pod_served(d)
    finally:
        for s in idle:
            s.close()
    known_pod_served(d)


def listening_socket_of(d):
    """A duplicate of the daemon's listening socket (pidfd_getfd(2): this test started the daemon)."""
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    pidfd = os.pidfd_open(d.proc.pid)
    try:
        for name in os.listdir(f"/proc/{d.proc.pid}/fd"):
            fd = syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                continue
            try:
                s = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)  # not a socket
                continue
            if (s.family in (socket.AF_INET, socket.AF_INET6) and s.getsockname()[1] == d.port
                    and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                return s
            s.close()
    finally:
        os.close(pidfd)
    raise AssertionError(f"no listening socket on port {d.port} in the daemon")


def test_silent_connections_wait_in_the_kernel_then_meet_the_head_deadline(served):
    d = served
    with listening_socket_of(d) as listener:
        # a connection reaches the daemon with its request bytes (TCP_DEFER_ACCEPT), not before
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == DEFER_ACCEPT_SEC
    late = socket.create_connection((d.host, d.port), timeout=DEADLINE)
    silent = socket.create_connection((d.host, d.port),
                                      timeout=HEAD_DEADLINE_SEC + DEFER_ACCEPT_SEC + DEADLINE)
    opened = time.monotonic()
    try:
        # silent for longer than the kernel defers it: handed over, not dropped, and answered
        time.sleep(DEFER_ACCEPT_SEC + 1)
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert late.recv(100).startswith(b"HTTP/1.1 200")
        # one that never speaks is closed at its head deadline, which starts at the handover
        try:
            assert silent.recv(1) == b""
        except ConnectionResetError:
            pass
        took = time.monotonic() - opened
        assert took >= HEAD_DEADLINE_SEC, f"a silent connection was closed after {took:.1f} s"
    finally:
        late.close()
        silent.close()
    known_pod_served(d)


def test_slowloris_headers_do_not_block_a_known_pod(served):
    d = served
    slow = []
    try:
        for i in range(100):
            s = socket.create_connection((d.host, d.port), timeout=DEADLINE, source_address=(f"127.0.20.{i + 1}", 0))
            s.sendall(b"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n")
            slow.append(s)
        # one header byte per connection every 100 ms for 3 s, never finishing the headers
        for n in range(30):
            for s in slow:
                try:
                    s.sendall(b"X-Slow: a\r\n"[n % 11:n % 11 + 1])
                except OSError:
                    pass  # the daemon may hang up on them: that is allowed
            if n % 10 == 0:
                known_pod_served(d)
            time.sleep(0.1)
        known_pod_served(d)
    finally:
        for s in slow:
            s.close()


def test_pipelined_credential_requests_are_all_answered_in_order(served):
    d = served
    n = 50
    req = b"GET " + CREDS.encode() + b"app-role HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
    hc = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((d.host, d.port), timeout=DEADLINE, source_address=(KNOWN, 0)) as s:
        s.sendall((req + hc) * n)
        out = b""
        deadline = time.monotonic() + DEADLINE
        while out.count(b"HTTP/1.1 200") < 2 * n and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out.count(b"HTTP/1.1 200") == 2 * n, out[-300:]
    assert out.count(b'"Code" : "Success"') + out.count(b'"Code":"Success"') == n
    known_pod_served(d)


def status_of(out):
    """The status code of a raw response, or None when the daemon closed without answering."""
    if not out:
        return None
    assert out.startswith(b"HTTP/1.1 "), out[:100]
    return int(out[9:12])


def test_64k_paths_nul_bytes_and_invalid_utf8_are_refused_without_harm(served):
    d = served
    creds = CREDS.encode()
    own = creds + b"app-role"
    # (request, the statuses allowed). libmicrohttpd hands targets and header values over as C
    # strings, so a raw NUL cuts them short: the answer is then the one for the prefix, which the
    # pod could have asked for anyway (a NUL never widens what a pod gets). A percent-encoded NUL
    # reaches our router, which refuses it.
    cases = [
        (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {None, 400, 404, 414, 431}),
        (b"GET " + creds + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {None, 400, 403, 404, 414, 431}),
        (b"GET /latest/meta-data/\x00/iam HTTP/1.1\r\nHost: x\r\n\r\n", {200}),  # = /latest/meta-data/
        (b"GET " + own + b"\x00/../../other-role HTTP/1.1\r\nHost: x\r\n\r\n", {200}),  # its own role
        (b"GET " + creds + b"other-role\x00app-role HTTP/1.1\r\nHost: x\r\n\r\n", {403}),
        (b"GET " + creds + b"%00 HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
        (b"GET " + creds + b"\xff\xfe\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n", {403}),
        (b"GET " + creds + b"%ff%c3%28 HTTP/1.1\r\nHost: x\r\n\r\n", {403}),
        (b"GET /\xc0\xaf\xc0\xae HTTP/1.1\r\n\r\n", {400, 404}),
        (b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\x00y\r\nX-A: \xff\xfe\r\n\r\n", {200}),
        (b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nX-\x00: a\r\n\r\n", {400}),
        (b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 2\x0021600\r\n\r\n",
         {200, 400}),
        (b"GET /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: \xc3\x28\x00\r\n\r\n",
         {401}),
        (b"\x00\x00\x00\x00\r\n\r\n", {None, 400}),
    ]
    for i, (c, allowed) in enumerate(cases):
        out = raw(d, c, source=KNOWN)
        assert status_of(out) in allowed, (i, c[:80], out[:200])
        if own not in c:
            assert b"SecretAccessKey" not in out, i
        known_pod_served(d)


def test_500_source_addresses_while_pods_churn_a_known_pod_is_always_served(served, node_env):
    d, env = served, node_env
    stop = threading.Event()
    churned = [0]

    def churn():
        live = []
        i = 0
        while not stop.is_set():
            live.append(env.add_pod(f"churn-{i}", f"127.0.30.{i % 250 + 1}", role=f"churn-{i % 5}"))
            if len(live) > 10:
                env.api.delete_pod(live.pop(0))
            i += 1
            time.sleep(0.02)
        churned[0] = i

    def stranger(i):
        src = f"127.0.{40 + i // 250}.{i % 250 + 1}"
        try:
            status, _ = get(d, CREDS, src)
        except socket.timeout:
            return "timeout"
        return status

    t = threading.Thread(target=churn)
    t.start()
    try:
        with ThreadPoolExecutor(32) as ex:
            futures = [ex.submit(stranger, i) for i in range(500)]
            n_known = 0
            while not all(f.done() for f in futures):
                known_pod_served(d)
                n_known += 1
                time.sleep(0.05)
            results = [f.result() for f in futures]
    finally:
        stop.set()
        t.join()
    assert "timeout" not in results
    # no pod has those addresses: kube2iam's 404 once the backoff budget is spent
    assert set(results) == {404}, set(results)
    assert n_known > 5 and churned[0] > 20
    known_pod_served(d)


def test_hostile_bytes_in_requests_never_break_the_log_format(node_env, daemon_factory):
    """Pods choose the bytes of their paths and headers, and the daemon logs the role they asked
    for: every log line must stay valid UTF-8 and, with --log-format=json, valid JSON."""
    node_env.add_pod("app", KNOWN, role="app-role")
    for fmt in ("json", "text"):
        d = daemon_factory(node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}", f"--log-format={fmt}",
                                                "--verbose"))
        wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
        creds = CREDS.encode()
        for target in (creds + b"\xff\xfe\xc3\x28", creds + b"%ff%c3%28", creds + b"%e2%80%ae%0a%1b[31m",
                       b"/latest/\xc0\xaf" + b"%80" * 50, creds + b"ok%22%5c%0d%0a{}"):
            raw(d, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\x01\r\n\r\n", source=KNOWN)
        known_pod_served(d)
        d.stop()
        with open(d.logfile.name, "rb") as f:
            out = f.read()
        lines = out.splitlines()
        assert any(b"wrong-role" in ln or b"Invalid role" in ln for ln in lines), out[-2000:]
        for ln in lines:
            text = ln.decode("utf-8")  # raises on invalid UTF-8
            if fmt == "json":
                json.loads(text)
            else:
                assert text.startswith("time="), text
        assert_clean_output(out.decode(), node_env)
